//! A model with every feature group, end to end on a small `**kern` corpus: training records the
//! groups and the common meter and mode and resumes exactly; `engine evaluate` reads the same
//! rows the training log's evaluation read; errors name what is wrong.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;

use melody_engine::backend::{Backend, Batch, CpuBackend, EngineError};
use melody_engine::corpus::{find_kern_files, process_all, write_outputs};
use melody_engine::cpu::BatchStats;
use melody_engine::encode::{Options, Vocabulary};
use melody_engine::features::{
    grid_step, stream_features, Bars, FeatureSet, FeatureTracker, ModeClass, SongInfo,
};
use melody_engine::generate::{generate, GenerateOptions};
use melody_engine::kern;
use melody_engine::model::checkpoint::{self, FeatureRecord};
use melody_engine::model::{Config, Objective, Params};
use melody_engine::optim::{Adam, AdamState};
use melody_engine::sample::{Sampler, SamplingConfig};
use melody_engine::train::{train, Stop, TrainOptions};
use rand::rngs::StdRng;
use rand::SeedableRng;

mod common;
use common::{metrics, options};

const ALL: &str = "lookback,position,mode,meter";

/// 2/4 in G major with an eighth's pickup.
const PICKUP_2_4: &str =
    "**kern\n*M2/4\n*G:\n8d\n=1\n4g\n8a\n8b\n=2\n4.dd\n8r\n=3\n4b\n4a\n=4\n2g\n==\n*-\n";
/// 3/4 in A minor.
const MINOR_3_4: &str =
    "**kern\n*M3/4\n*a:\n=1\n4a\n4b\n4cc\n=2\n2ee\n4r\n=3\n4a\n8g\n8f\n4e\n=4\n2.a\n==\n*-\n";
/// 6/8 in F major.
const COMPOUND_6_8: &str =
    "**kern\n*M6/8\n*F:\n=1\n4f\n8g\n4a\n8f\n=2\n4.cc\n4.a\n=3\n8g\n8a\n8g\n4f\n8r\n==\n*-\n";

/// 40 songs preprocessed as `engine preprocess` does: the 2/4 song, the 3/4 one, the 6/8 one and
/// the 2/4 one again, in turn, so that 2/4 and major are the most common in the training split.
fn kern_corpus(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("feature-model-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let scores = dir.join("scores");
    fs::create_dir_all(&scores).unwrap();
    for i in 0..40 {
        let text = [PICKUP_2_4, MINOR_3_4, COMPOUND_6_8, PICKUP_2_4][i % 4];
        fs::write(scores.join(format!("song{i:02}.krn")), text).unwrap();
    }
    let records = process_all(
        &find_kern_files(&[scores]).unwrap(),
        &Options::default(),
        false,
    );
    assert!(records.iter().all(|r| r.kept), "every song is kept");
    let data = dir.join("data");
    write_outputs(&data, &records).unwrap();
    data
}

fn with_features(data: &Path, out: &str) -> TrainOptions {
    TrainOptions {
        features: FeatureSet::parse(ALL).unwrap(),
        eval_windows: 5000,
        ..options(data, out)
    }
}

#[test]
fn a_feature_model_records_its_inputs_and_resumes_exactly() {
    let data = kern_corpus("resume");
    let straight = with_features(&data, "straight.safetensors");
    let report = train(&straight).unwrap();
    assert_eq!((report.stop, report.epochs), (Stop::Finished, 3));
    let saved = checkpoint::load(&straight.out).unwrap();
    // D and K as features.rs lays the blocks out for this corpus's V symbols.
    let v = saved.config.vocab_size;
    assert_eq!(
        (saved.config.input_width, saved.config.inputs_per_step),
        (v + 2 * (v + 1) + 4 + 36 + 3 + 6, 9)
    );
    assert_eq!(
        saved.config.features,
        Some(FeatureRecord {
            groups: ALL.split(',').map(String::from).collect(),
            common_meter: Some("2/4".into()),
            common_mode: Some("major".into()),
            // The training split holds 36 of the 40 songs: every tenth is held out (songs 9, 19,
            // 29 and 39: two in 3/4 minor, two in 2/4 major).
            conditions: Some(vec![
                (Some("2/4".into()), Some("major".into()), 18),
                (Some("6/8".into()), Some("major".into()), 10),
                (Some("3/4".into()), Some("minor".into()), 8),
            ]),
        })
    );

    let steps_per_epoch = report.steps / 3;
    let interrupted = TrainOptions {
        max_steps: Some(steps_per_epoch + 2),
        ..with_features(&data, "resumed.safetensors")
    };
    assert_eq!(train(&interrupted).unwrap().stop, Stop::MaxSteps);
    let resumed = TrainOptions {
        resume: true,
        max_steps: None,
        ..interrupted.clone()
    };
    assert_eq!(train(&resumed).unwrap().steps, report.steps);
    assert_eq!(
        fs::read(&straight.out).unwrap(),
        fs::read(&resumed.out).unwrap(),
        "resume is exact"
    );
    assert_eq!(
        fs::read(checkpoint::adam_path(&straight.out)).unwrap(),
        fs::read(checkpoint::adam_path(&resumed.out)).unwrap()
    );

    // Resuming or fine-tuning with other groups names both sets.
    let other = TrainOptions {
        features: FeatureSet::parse("lookback,meter").unwrap(),
        ..resumed.clone()
    };
    let error = train(&other).unwrap_err();
    assert!(
        error.contains(&format!(
            "reads features {ALL}, but --features asks for lookback,meter"
        )),
        "{error}"
    );
    let tune = TrainOptions {
        init: Some(straight.out.clone()),
        features: FeatureSet::NONE,
        ..options(&data, "tuned.safetensors")
    };
    let error = train(&tune).unwrap_err();
    assert!(
        error.starts_with("--init") && error.contains("asks for none"),
        "{error}"
    );
    // A feature model's rows are laid out by its vocabulary: it cannot grow one.
    let other_corpus = common::corpus("feature-extend");
    let text = fs::read_to_string(other_corpus.join("dataset.txt")).unwrap();
    fs::write(other_corpus.join("dataset.txt"), text.replace("65", "73")).unwrap();
    let vocab = Vocabulary::from_symbols(["60", "62", "64", "67", "73"]);
    fs::write(other_corpus.join("vocab.json"), vocab.to_json()).unwrap();
    let extend = TrainOptions {
        init: Some(straight.out.clone()),
        extend_vocab: true,
        ..with_features(&other_corpus, "extended.safetensors")
    };
    let error = train(&extend).unwrap_err();
    assert!(
        error.contains("--init --extend-vocab") && error.contains("cannot learn new symbols"),
        "{error}"
    );
    fs::remove_dir_all(&other_corpus).unwrap();
    fs::remove_dir_all(data.parent().unwrap()).unwrap();
}

#[test]
fn evaluate_reads_the_rows_the_training_log_read() {
    let data = kern_corpus("evaluate");
    let opts = with_features(&data, "model.safetensors");
    train(&opts).unwrap();
    let logged = metrics(&data.join("model.metrics.jsonl"));
    let last = logged.last().unwrap();
    // With more --eval-windows than the held-out split has, the log evaluated all its windows:
    // the windows `engine evaluate --split val` reads, from the same checkpoint.
    let output = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["evaluate", "--device", "cpu", "--split", "val", "--json"])
        .arg("--model")
        .arg(&opts.out)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for (field, logged_field) in [
        ("loss", "val_loss"),
        ("accuracy", "val_accuracy"),
        ("windows", "val_windows"),
    ] {
        assert!(report[field].is_number(), "{field}");
        assert_eq!(report[field], last[logged_field], "{field}");
    }
    assert!(report["events"]["windows"].as_u64().unwrap() > 0);
    assert_eq!(report["events"]["accuracy"], last["val_events_accuracy"]);
    assert_eq!(report["song_ends"]["loss"], last["val_song_ends_loss"]);

    // Without songs.jsonl the rows cannot be made: the error says what the features need.
    fs::remove_file(data.join("songs.jsonl")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["evaluate", "--device", "cpu"])
        .arg("--model")
        .arg(&opts.out)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && error.contains(&format!(
                "features {ALL} read each song's meter, mode and barlines from songs.jsonl"
            )),
        "{error}"
    );
    fs::remove_dir_all(data.parent().unwrap()).unwrap();
}

/// The CPU engine, recording the input row of stream row 0 (melody 0's) at every step.
struct Recording {
    engine: CpuBackend,
    row_zero: Vec<Vec<u32>>,
}

impl Backend for Recording {
    fn train_step(
        &mut self,
        _: &Batch<'_>,
        _: Objective,
        _: u64,
    ) -> Result<BatchStats, EngineError> {
        unreachable!("generation only")
    }
    fn predict_last(&mut self, _: &[u32], _: usize, _: &mut [f32]) -> Result<(), EngineError> {
        unreachable!("generation only")
    }
    fn config(&self) -> Config {
        self.engine.config()
    }
    fn params(&self) -> Result<Params<f32>, EngineError> {
        self.engine.params()
    }
    fn adam_state(&self) -> Result<AdamState, EngineError> {
        self.engine.adam_state()
    }
    fn stream_reset(&mut self, rows: usize) -> Result<(), EngineError> {
        self.engine.stream_reset(rows)
    }
    fn stream_zero_rows(&mut self, rows: &[usize]) -> Result<(), EngineError> {
        self.engine.stream_zero_rows(rows)
    }
    fn stream_copy_row(&mut self, from: usize, to: &[usize]) -> Result<(), EngineError> {
        self.engine.stream_copy_row(from, to)
    }
    fn stream_step(&mut self, rows: Range<usize>, inputs: &[u32]) -> Result<(), EngineError> {
        let k = self.engine.config().inputs_per_step;
        assert_eq!(rows.start, 0);
        self.row_zero.push(inputs[..k].to_vec());
        self.engine.stream_step(rows, inputs)
    }
    fn stream_probs(&mut self, rows: &[usize], out: &mut [f32]) -> Result<(), EngineError> {
        self.engine.stream_probs(rows, out)
    }
}

#[test]
fn generation_feeds_the_rows_stream_features_gives_its_melody() {
    let vocab = Vocabulary::from_symbols(["60", "62", "64", "65", "67"]);
    let (v, delimiter) = (vocab.len(), vocab.id("/").unwrap());
    let set = FeatureSet::parse(ALL).unwrap();
    let config =
        Config::one_hot(v, 12, 1, 0.0).multi_hot(set.input_width(v), set.inputs_per_step());
    let params = Params::init(config, &mut StdRng::seed_from_u64(5));
    let mut backend = Recording {
        engine: CpuBackend::new(params, Adam::new(config.num_params())),
        row_zero: Vec::new(),
    };
    // 3/4 in minor, the seed's first step the last eighth of a bar (a pickup of 2 steps).
    let first_position = 10;
    let tracker = FeatureTracker::new(
        set,
        v,
        delimiter,
        (3, 4),
        ModeClass::Minor,
        first_position,
        grid_step(),
    )
    .unwrap();
    assert_eq!(tracker.pickup(), 2);
    let window = 8;
    let options = GenerateOptions {
        steps: 60,
        count: 3,
        rng_seed: 2,
        window,
        features: Some(vec![tracker; 3]),
    };
    let sampler = Sampler::new(
        SamplingConfig {
            min_steps: 40,
            ..Default::default()
        },
        &vocab,
    )
    .unwrap();
    let seed: Vec<u32> = ["64", "_", "62", "_"]
        .iter()
        .map(|s| vocab.id(s).unwrap())
        .collect();
    let melody = generate(&mut backend, delimiter, &seed, &sampler, &options)
        .unwrap()
        .remove(0);
    assert!(melody.len() >= 40, "{} symbols", melody.len());

    // The stream training would read: a `/` run leading into the melody, then the melody.
    let stream: Vec<u32> = (std::iter::repeat_n(delimiter, window))
        .chain(melody.iter().copied())
        .chain([delimiter])
        .collect();
    let song = SongInfo {
        meter: Some((3, 4)),
        mode: Some(ModeClass::Minor),
        bars: Bars::regular(12, first_position),
    };
    let rows = stream_features(&set, v, &stream, delimiter, &[song.clone(), song]).unwrap();
    let expected: Vec<&[u32]> = rows.chunks_exact(set.inputs_per_step()).collect();
    let fed = &backend.row_zero;
    // Every step of the context and the melody is read, except perhaps its last symbol.
    assert!(
        fed.len() + 1 >= window + melody.len() && fed.len() <= window + melody.len(),
        "{} rows fed for {} steps",
        fed.len(),
        window + melody.len()
    );
    for (step, (fed, expected)) in fed.iter().zip(&expected).enumerate() {
        assert_eq!(&fed[..], *expected, "step {step}");
    }
}

/// The grid step at which each barline of a `**kern` score lies.
fn barline_steps(song: &kern::Song) -> Vec<u64> {
    let mut at = vec![0];
    for event in &song.events {
        at.push(at.last().unwrap() + event.duration.steps_of(grid_step()).unwrap());
    }
    song.barlines.iter().map(|&events| at[events]).collect()
}

#[test]
fn asked_meter_and_mode_reach_the_score() {
    let data = kern_corpus("generate");
    let opts = with_features(&data, "model.safetensors");
    train(&opts).unwrap();
    let out = data.join("melody.krn");
    let generate = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_engine"))
            .args(["generate", "--device", "cpu", "--seed", "60 _ _ _"])
            .args(["--steps", "80", "--min-steps", "60", "--rng-seed", "3"])
            .arg("--model")
            .arg(&opts.out)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    let output = generate(&["--meter", "3/4", "--mode", "minor"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let song = kern::parse(&fs::read(&out).unwrap()).unwrap();
    assert_eq!(song.meter, Some((3, 4)));
    assert!(song.keys[0].mode.is_minor(), "{:?}", song.keys);
    // The seed starts on a downbeat: a barline every 12 steps, none elsewhere but the end.
    let melody_steps: u64 = (song.events.iter())
        .map(|e| e.duration.steps_of(grid_step()).unwrap())
        .sum();
    assert!(melody_steps >= 60, "{melody_steps} steps");
    let inner: Vec<u64> = (barline_steps(&song).into_iter())
        .filter(|&at| at > 0 && at < melody_steps)
        .collect();
    assert_eq!(
        inner,
        (1..)
            .map(|bar| 12 * bar)
            .take(inner.len())
            .collect::<Vec<_>>()
    );
    assert_eq!(inner.len() as u64, (melody_steps - 1) / 12);

    // Without --meter and --mode: the training songs' most common, 2/4 in major.
    assert!(generate(&[]).status.success());
    let song = kern::parse(&fs::read(&out).unwrap()).unwrap();
    assert_eq!(song.meter, Some((2, 4)));
    assert!(!song.keys[0].mode.is_minor(), "{:?}", song.keys);

    // A seed score gives its meter, mode and pickup: 2/4 in major, bars after an eighth.
    let seed = data.join("seed.krn");
    fs::write(&seed, PICKUP_2_4).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args([
            "generate",
            "--device",
            "cpu",
            "--steps",
            "60",
            "--min-steps",
            "40",
        ])
        .args(["--mode", "minor", "--model"])
        .arg(&opts.out)
        .arg("--seed-file")
        .arg(&seed)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let song = kern::parse(&fs::read(&out).unwrap()).unwrap();
    assert_eq!(song.meter, Some((2, 4)));
    assert!(song.keys[0].mode.is_minor(), "--mode wins over the seed's");
    let melody_steps: u64 = (song.events.iter())
        .map(|e| e.duration.steps_of(grid_step()).unwrap())
        .sum();
    let inner: Vec<u64> = (barline_steps(&song).into_iter())
        .filter(|&at| at > 0 && at < melody_steps)
        .collect();
    assert_eq!(
        inner,
        (0..)
            .map(|bar| 2 + 8 * bar)
            .take(inner.len())
            .collect::<Vec<_>>()
    );
    assert_eq!(inner.len() as u64, (melody_steps - 3) / 8 + 1);

    // The reference model reads no mode: asking for one is an error that says why.
    let reference = options(&data, "reference.safetensors");
    train(&reference).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["generate", "--device", "cpu", "--mode", "minor", "--model"])
        .arg(&reference.out)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && error.contains("does not read the mode (its features: none"),
        "{error}"
    );
    fs::remove_dir_all(data.parent().unwrap()).unwrap();
}
