//! Where the shared corpus lives, and what a test does when it is absent; a tiny synthetic
//! corpus and training options for the training tests; the `engine` binary and `**kern` scores
//! preprocessed as it does.

// Each test crate uses some of these helpers.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use melody_engine::corpus::{find_kern_files, process_all, write_outputs, SongRecord};
use melody_engine::encode::{Options, Vocabulary};
use melody_engine::engine::Device;
use melody_engine::features::FeatureSet;
use melody_engine::model::Objective;
use melody_engine::train::TrainOptions;

/// Whether this is CI (`CI=true`), where what a test needs must be there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Metrics lines of a training run, one JSON object per epoch.
pub fn metrics(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// `../shared` beside the repository, if it is there. Without it a test says so and skips,
/// except under `CI=true`, where a missing corpus is a failure.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if dir.join("data/essen/deutschl").is_dir() {
        return Some(dir);
    }
    if in_ci() {
        panic!(
            "CI=true but the shared corpus is missing at {}",
            dir.display()
        );
    }
    eprintln!("skipped: no shared corpus at {}", dir.display());
    None
}

/// `benches/peers/torch_check.py`, where python3 has torch to run it. Without torch, and in CI
/// (which does not install it), a test says so and skips.
pub fn torch_peer() -> Option<PathBuf> {
    let has_torch = std::process::Command::new("python3")
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|out| out.status.success());
    if in_ci() || !has_torch {
        eprintln!("skipped: python3 with torch is not here");
        return None;
    }
    Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/peers/torch_check.py"))
}

/// An empty directory `NAME-PID` in the system's temporary directory, made afresh.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A preprocessed dataset in `dir`: `stream` (the songs' symbols, each song followed by its `/`
/// run) as dataset.txt, and a vocab.json of its symbols.
pub fn write_dataset(dir: &Path, stream: &[String]) {
    let vocab = Vocabulary::from_symbols(stream.iter().map(String::as_str));
    fs::write(dir.join("dataset.txt"), stream.join(" ")).unwrap();
    fs::write(dir.join("vocab.json"), vocab.to_json()).unwrap();
}

/// A corpus of 40 short songs drawn from three melodies, each followed by 8 `/`.
pub fn corpus(name: &str) -> PathBuf {
    let dir = fresh_dir(&format!("train-test-{name}"));
    let melodies = [
        "60 _ 62 _ 64 _ 60 _",
        "67 _ _ _ 65 64 62 _",
        "64 _ 62 _ 60 _ _ _ r _",
    ];
    let stream: Vec<String> = (0..40)
        .flat_map(|i| melodies[i % 3].split(' ').chain(["/"; 8]))
        .map(String::from)
        .collect();
    write_dataset(&dir, &stream);
    dir
}

/// The scores under `inputs` preprocessed into `out` as `engine preprocess` does with its
/// default options (songs.jsonl, dataset.txt, vocab.json); one record per file.
pub fn preprocess(inputs: &[PathBuf], out: &Path) -> Vec<SongRecord> {
    let records = process_all(
        &find_kern_files(inputs).unwrap(),
        &Options::default(),
        false,
    );
    write_outputs(out, &records).unwrap();
    records
}

/// `scores` (`**kern` texts) written as song00.krn, song01.krn … into DIR/scores and
/// preprocessed into DIR/data, DIR being `fresh_dir(name)`; every song must be kept. Returns
/// DIR/data.
pub fn kern_corpus(name: &str, scores: &[&str]) -> PathBuf {
    let dir = fresh_dir(name);
    let scores_dir = dir.join("scores");
    fs::create_dir_all(&scores_dir).unwrap();
    for (i, text) in scores.iter().enumerate() {
        fs::write(scores_dir.join(format!("song{i:02}.krn")), text).unwrap();
    }
    let data = dir.join("data");
    let records = preprocess(&[scores_dir], &data);
    assert!(records.iter().all(|r| r.kept), "every song is kept");
    data
}

/// The `engine` binary, for a test to give its arguments.
pub fn engine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_engine"))
}

/// Panics with the command's stderr unless it succeeded.
pub fn assert_succeeded(output: &Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What `command` wrote, once it has run and succeeded.
pub fn succeeded(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert_succeeded(&output);
    output
}

/// The JSON `command` prints, once it has succeeded: `engine … --json`, or a peer script.
pub fn json_of(command: &mut Command) -> serde_json::Value {
    serde_json::from_slice(&succeeded(command).stdout).unwrap()
}

/// What `command` wrote to stderr, once it has run and failed.
pub fn failed(command: &mut Command) -> String {
    let output = command.output().unwrap();
    let error = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "it succeeded: {error}");
    error
}

pub fn options(data: &Path, out: &str) -> TrainOptions {
    TrainOptions {
        data: data.to_path_buf(),
        out: data.join(out),
        metrics: None,
        hidden: 16,
        device: Device::Cpu,
        tf32: false,
        layers: 1,
        dropout: 0.2,
        objective: Objective::All,
        batch_size: 4,
        window: 8,
        epochs: 3,
        max_steps: None,
        seed: 7,
        learning_rate: 1e-2,
        clip: None,
        val_fraction: 0.1,
        eval_windows: 200,
        patience: None,
        init: None,
        extend_vocab: false,
        resume: false,
        features: FeatureSet::NONE,
        progress: false,
    }
}

/// `n` symbol ids drawn uniformly from a vocabulary of `vocab`.
pub fn random_symbols(rng: &mut rand::rngs::StdRng, n: usize, vocab: usize) -> Vec<u32> {
    use rand::Rng;
    (0..n).map(|_| rng.gen_range(0..vocab as u32)).collect()
}

/// `steps` steps of `per_step` input indices each, drawn uniformly below `width`; every third
/// step gives its first index twice (an index repeated within a step counts twice).
pub fn random_multi_hot(
    rng: &mut rand::rngs::StdRng,
    steps: usize,
    width: usize,
    per_step: usize,
) -> Vec<u32> {
    let mut indices = random_symbols(rng, steps * per_step, width);
    if per_step > 1 {
        for step in indices.chunks_exact_mut(per_step).step_by(3) {
            step[1] = step[0];
        }
    }
    indices
}
