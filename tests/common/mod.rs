//! Where the shared corpus lives, and what a test does when it is absent; a tiny synthetic
//! corpus and training options for the training tests.

// Each test crate uses some of these helpers.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use melody_engine::encode::Vocabulary;
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

/// A corpus of 40 short songs drawn from three melodies, each followed by 8 `/`.
pub fn corpus(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("train-test-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let melodies = [
        "60 _ 62 _ 64 _ 60 _",
        "67 _ _ _ 65 64 62 _",
        "64 _ 62 _ 60 _ _ _ r _",
    ];
    let songs: Vec<String> = (0..40)
        .map(|i| format!("{} {}", melodies[i % 3], ["/"; 8].join(" ")))
        .collect();
    fs::write(dir.join("dataset.txt"), songs.join(" ")).unwrap();
    let vocab = Vocabulary::from_symbols(["60", "62", "64", "65", "67"]);
    fs::write(dir.join("vocab.json"), vocab.to_json()).unwrap();
    dir
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
