//! A model with every feature group, end to end on a small `**kern` corpus: training records the
//! groups, the common meter and mode and the training songs' mixture of them, and resumes
//! exactly; `engine evaluate` reads the same rows the training log's evaluation read, and PyTorch
//! fed the rows it computes itself agrees with it; a batch in the training mixture carries each
//! melody's drawn meter and mode; errors name what is wrong.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;

use melody_engine::backend::{Backend, Batch, CpuBackend, EngineError};
use melody_engine::cpu::BatchStats;
use melody_engine::encode::Vocabulary;
use melody_engine::features::{
    condition_counts, grid_step, stream_features, Bars, FeatureSet, FeatureTracker, ModeClass,
    SongInfo, GROUPS,
};
use melody_engine::generate::{draw_leaving_scale, draw_weighted, generate, GenerateOptions};
use melody_engine::kern;
use melody_engine::model::checkpoint::{self, CheckpointConfig, FeatureRecord};
use melody_engine::model::{Config, Objective, Params};
use melody_engine::optim::{Adam, AdamState};
use melody_engine::sample::{Sampler, SamplingConfig};
use melody_engine::train::{train, Stop, TrainOptions};
use rand::rngs::StdRng;
use rand::SeedableRng;

mod common;
use common::{engine, failed, json_of, metrics, options, succeeded};

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

/// 2/4 in C major whose first barline comes after three quarters: bar 0 starts at its second
/// quarter, counted back from the barline, and its first quarter is a pickup.
const LATE_BARLINE_2_4: &str = "**kern\n*M2/4\n*C:\n4c\n4d\n4e\n=1\n4f\n4g\n=2\n2c\n==\n*-\n";

/// 4/4 in C major with F♯, G♯ and B♭ in its first bars and none in the four bars after them.
const ACCIDENTALS_4_4: &str = "**kern\n*M4/4\n*C:\n=1\n4c\n4d\n4e\n4f#\n=2\n2g\n4g#\n4a\n=3\n\
                               4b-\n4a\n2g\n=4\n1c\n=5\n1d\n=6\n1e\n=7\n2f\n2e\n=8\n1c\n==\n*-\n";

/// 3/4 in D minor, 20 bars: more than features::MAX_BAR, so the last bars share the "later" row.
fn long_3_4() -> String {
    let bars: String = (0..20)
        .map(|bar| ["4d\n4f\n4a\n", "4g\n4e\n4c#\n", "2d\n4r\n"][bar % 3])
        .enumerate()
        .map(|(i, notes)| format!("={}\n{notes}", i + 1))
        .collect();
    format!("**kern\n*M3/4\n*d:\n{bars}==\n*-\n")
}

/// 40 songs preprocessed as `engine preprocess` does: the 2/4 song, the 3/4 one, the 6/8 one and
/// the 2/4 one again, in turn, so that 2/4 and major are the most common in the training split.
fn kern_corpus(name: &str) -> PathBuf {
    corpus_of(name, &[PICKUP_2_4, MINOR_3_4, COMPOUND_6_8, PICKUP_2_4])
}

/// 40 songs of `texts` in turn, preprocessed.
fn corpus_of(name: &str, texts: &[&str]) -> PathBuf {
    let scores: Vec<&str> = (0..40).map(|i| texts[i % texts.len()]).collect();
    common::kern_corpus(&format!("feature-model-{name}"), &scores)
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
            // Recorded only for a model that reads accidentals.
            leaving_scale: None,
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
    let report = json_of(
        engine()
            .args(["evaluate", "--device", "cpu", "--split", "val", "--json"])
            .arg("--model")
            .arg(&opts.out)
            .arg("--data")
            .arg(&data),
    );
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
    let error = failed(
        engine()
            .args(["evaluate", "--device", "cpu"])
            .arg("--model")
            .arg(&opts.out)
            .arg("--data")
            .arg(&data),
    );
    assert!(
        error.contains(&format!(
            "features {ALL} read each song's meter, mode and barlines from songs.jsonl"
        )),
        "{error}"
    );
    fs::remove_dir_all(data.parent().unwrap()).unwrap();
}

/// benches/peers/torch_check.py computes each step's indices from songs.jsonl itself (in Python,
/// from the layout features.rs documents) and gives `engine evaluate`'s loss, accuracy and events
/// accuracy: for a model of all seven groups, on the whole stream (2/4 with a pickup, 3/4 minor,
/// 6/8, 20 bars of 3/4, a first barline a bar and more in) and on the held-out split (whose `/`
/// runs lead into the split's next song), and for a model of each group alone on the whole
/// stream, so that every block's place is checked. Skipped without torch.
#[test]
fn pytorch_computes_the_feature_rows_and_agrees_with_evaluate() {
    let Some(peer) = common::torch_peer() else {
        return;
    };
    let long = long_3_4();
    let texts = [
        PICKUP_2_4,
        MINOR_3_4,
        COMPOUND_6_8,
        &long,
        LATE_BARLINE_2_4,
        MINOR_3_4,
        ACCIDENTALS_4_4,
    ];
    let data = corpus_of("torch", &texts);
    let every = GROUPS.join(",");
    let alone = GROUPS.map(|group| (group, "all"));
    for (groups, split) in [(&*every, "all"), (&*every, "val")]
        .into_iter()
        .chain(alone)
    {
        let opts = TrainOptions {
            features: FeatureSet::parse(groups).unwrap(),
            ..with_features(&data, &format!("{}.safetensors", groups.replace(',', "_")))
        };
        train(&opts).unwrap();
        let ours = json_of(
            engine()
                .args(["evaluate", "--device", "cpu", "--json", "--split", split])
                .arg("--model")
                .arg(&opts.out)
                .arg("--data")
                .arg(&data),
        );
        let torch = json_of(
            Command::new("python3")
                .arg(&peer)
                .args(["--split", split])
                .arg("--model")
                .arg(&opts.out)
                .arg("--data")
                .arg(&data),
        );
        let (loss, torch_loss) = (
            ours["loss"].as_f64().unwrap(),
            torch["loss"].as_f64().unwrap(),
        );
        println!("{groups} on {split}: loss ours {loss} torch {torch_loss}");
        // Both sides' probabilities are f32: −ln p of a near-certain target is good to about
        // 1e-7 absolute, so small losses are compared absolutely.
        assert!(
            (loss - torch_loss).abs() <= 1e-6 * loss.max(1.0),
            "{groups} on {split}"
        );
        for field in ["windows", "accuracy", "baseline_accuracy"] {
            assert_eq!(ours[field], torch[field], "{groups} on {split}: {field}");
        }
        for subset in ["events", "holds", "song_ends", "delimiter_runs"] {
            let (count, accuracy) = (&ours[subset]["windows"], &ours[subset]["accuracy"]);
            assert_eq!(count, &torch[subset]["windows"], "{groups}: {subset}");
            assert_eq!(accuracy, &torch[subset]["accuracy"], "{groups}: {subset}");
        }
    }
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
    let vocab = Vocabulary::from_symbols(["60", "62", "64", "65", "66", "67", "68"]);
    let (v, delimiter) = (vocab.len(), vocab.id("/").unwrap());
    let set = FeatureSet::ALL;
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
        &vocab,
        delimiter,
        (3, 4),
        ModeClass::Minor,
        first_position,
        grid_step(),
    )
    .unwrap()
    .leaving_scale(true);
    assert_eq!(tracker.pickup(), 2);
    let window = 8;
    let options = GenerateOptions {
        steps: 60,
        count: 3,
        rng_seed: 3,
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
    // It sounds a pitch off the scale, so the accidentals blocks change as it goes.
    let off_scale = ["66", "68"].map(|s| vocab.id(s).unwrap());
    assert!(melody.iter().any(|s| off_scale.contains(s)));

    // The stream training would read: a `/` run leading into the melody, then the melody.
    let stream: Vec<u32> = (std::iter::repeat_n(delimiter, window))
        .chain(melody.iter().copied())
        .chain([delimiter])
        .collect();
    let song = SongInfo {
        meter: Some((3, 4)),
        mode: Some(ModeClass::Minor),
        bars: Bars::regular(12, first_position),
        leaves_scale: true,
    };
    let rows = stream_features(&set, &vocab, &stream, delimiter, &[song.clone(), song]).unwrap();
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

/// A `**kern` score's length in grid steps, and the grid step of each barline strictly inside
/// it.
fn inner_barlines(song: &kern::Song) -> (u64, Vec<u64>) {
    let mut at = vec![0];
    for event in &song.events {
        at.push(at.last().unwrap() + event.duration.steps_of(grid_step()).unwrap());
    }
    let steps = *at.last().unwrap();
    let inner = (song.barlines.iter())
        .map(|&events| at[events])
        .filter(|&step| step > 0 && step < steps)
        .collect();
    (steps, inner)
}

#[test]
fn asked_meter_and_mode_reach_the_score() {
    let data = kern_corpus("generate");
    let opts = with_features(&data, "model.safetensors");
    train(&opts).unwrap();
    let out = data.join("melody.krn");
    let generate = |extra: &[&str]| {
        let mut command = engine();
        command
            .args(["generate", "--device", "cpu", "--seed", "60 _ _ _"])
            .args(["--steps", "80", "--min-steps", "60", "--rng-seed", "3"])
            .arg("--model")
            .arg(&opts.out)
            .arg("--out")
            .arg(&out)
            .args(extra);
        command
    };
    succeeded(&mut generate(&["--meter", "3/4", "--mode", "minor"]));
    let song = kern::parse(&fs::read(&out).unwrap()).unwrap();
    assert_eq!(song.meter, Some((3, 4)));
    assert!(song.keys[0].mode.is_minor(), "{:?}", song.keys);
    // The seed starts on a downbeat: a barline every 12 steps, none elsewhere but the end.
    let (melody_steps, inner) = inner_barlines(&song);
    assert!(melody_steps >= 60, "{melody_steps} steps");
    assert_eq!(
        inner,
        (1..)
            .map(|bar| 12 * bar)
            .take(inner.len())
            .collect::<Vec<_>>()
    );
    assert_eq!(inner.len() as u64, (melody_steps - 1) / 12);

    // Without --meter and --mode: the training songs' most common, 2/4 in major.
    succeeded(&mut generate(&[]));
    let song = kern::parse(&fs::read(&out).unwrap()).unwrap();
    assert_eq!(song.meter, Some((2, 4)));
    assert!(!song.keys[0].mode.is_minor(), "{:?}", song.keys);

    // A seed score gives its meter, mode and pickup: 2/4 in major, bars after an eighth.
    let seed = data.join("seed.krn");
    fs::write(&seed, PICKUP_2_4).unwrap();
    succeeded(
        engine()
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
            .arg(&out),
    );
    let song = kern::parse(&fs::read(&out).unwrap()).unwrap();
    assert_eq!(song.meter, Some((2, 4)));
    assert!(song.keys[0].mode.is_minor(), "--mode wins over the seed's");
    let (melody_steps, inner) = inner_barlines(&song);
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
    let error = failed(
        engine()
            .args(["generate", "--device", "cpu", "--mode", "minor", "--model"])
            .arg(&reference.out)
            .arg("--out")
            .arg(&out),
    );
    assert!(
        error.contains("does not read the mode (its features: none"),
        "{error}"
    );
    fs::remove_dir_all(data.parent().unwrap()).unwrap();
}

#[test]
fn the_record_counts_every_training_songs_meter_and_mode() {
    let song = |meter, mode| SongInfo {
        meter,
        mode,
        bars: Bars::regular(8, 0),
        leaves_scale: false,
    };
    let songs = [
        song(Some((3, 4)), None),
        song(Some((2, 4)), Some(ModeClass::Major)),
        song(None, Some(ModeClass::Minor)),
        song(Some((2, 4)), Some(ModeClass::Major)),
        song(Some((3, 4)), None),
        song(Some((2, 4)), Some(ModeClass::Major)),
    ];
    // Most common first, ties in the order first seen; a missing meter or mode is its own slot.
    assert_eq!(
        condition_counts(&songs),
        [
            ((Some((2, 4)), Some(ModeClass::Major)), 3),
            ((Some((3, 4)), None), 2),
            ((None, Some(ModeClass::Minor)), 1),
        ]
    );
    let record = FeatureRecord::of(&FeatureSet::parse("mode,meter").unwrap(), &songs);
    assert_eq!(
        serde_json::to_string(&record).unwrap(),
        r#"{"groups":["mode","meter"],"common_meter":"2/4","common_mode":"major","conditions":[["2/4","major",3],["3/4",null,2],[null,"minor",1]]}"#
    );
    // With accidentals, per mode: the songs, and those of them that leave the scale.
    let mut songs = songs.to_vec();
    songs[1].leaves_scale = true;
    songs[2].leaves_scale = true;
    let record = FeatureRecord::of(&FeatureSet::parse("mode,accidentals").unwrap(), &songs);
    let mode = |name: &str| Some(name.to_string());
    assert_eq!(
        record.leaving_scale,
        Some(vec![
            (mode("major"), 3, 1),
            (None, 2, 0),
            (mode("minor"), 1, 1)
        ])
    );
    let config = |record: FeatureRecord| CheckpointConfig {
        layers: 1,
        hidden: 8,
        dropout: 0.0,
        vocab_size: 5,
        input_width: 5,
        inputs_per_step: 1,
        window: 8,
        objective: Objective::All,
        epoch: 0,
        step: 0,
        features: Some(record),
    };
    let shares = |config: CheckpointConfig| {
        [ModeClass::Major, ModeClass::Minor].map(|mode| config.leaving_scale_share(mode))
    };
    assert_eq!(shares(config(record)), [Some(1.0 / 3.0), Some(1.0)]);
    // No training song in minor: a minor melody leaves the scale as often as all the songs do.
    let without_minor = FeatureRecord::of(&FeatureSet::ALL, &songs[..2]);
    assert_eq!(shares(config(without_minor)), [Some(1.0), Some(0.5)]);
    let without_accidentals = FeatureRecord::of(
        &FeatureSet {
            accidentals: false,
            ..FeatureSet::ALL
        },
        &songs,
    );
    assert_eq!(shares(config(without_accidentals)), [None, None]);
}

#[test]
fn the_leaving_scale_draw_follows_the_shares_and_the_seed() {
    let drawn = draw_leaving_scale(&[0.25; 4000], 7);
    let leaving = drawn.iter().filter(|&&leaves| leaves).count();
    // 1,000 expected; the binomial's standard deviation is 27.
    assert!((900..=1100).contains(&leaving), "{leaving} of 4,000");
    let certain = draw_leaving_scale(&[0.0, 1.0, 0.0, 1.0], 3);
    assert_eq!(certain, [false, true, false, true]);
    // Melody i's draw follows from its own seed, rng_seed + i, alone.
    assert_eq!(drawn[5], draw_leaving_scale(&[0.25], 12)[0]);
    assert_ne!(drawn, draw_leaving_scale(&[0.25; 4000], 8));
}

#[test]
fn the_mixture_draw_follows_the_counts_and_the_seed() {
    let weighted = [("4/4", 3), ("5/4", 0), ("3/4", 1)];
    let batch = draw_weighted(&weighted, 4000, 7);
    let in_4_4 = batch.iter().filter(|&&meter| meter == "4/4").count();
    // 3,000 expected; the binomial's standard deviation is 27.
    assert!((2900..=3100).contains(&in_4_4), "{in_4_4} of 4,000 in 4/4");
    assert!(!batch.contains(&"5/4"), "a weight of 0 is never drawn");
    assert_eq!(
        batch,
        draw_weighted(&weighted, 4000, 7),
        "same seed, same batch"
    );
    assert_ne!(batch, draw_weighted(&weighted, 4000, 8));
    // Melody i's draw follows from its own seed, rng_seed + i, alone.
    assert_eq!(&batch[..10], &draw_weighted(&weighted, 10, 7)[..]);
    for i in [0, 1, 2, 999] {
        assert_eq!(
            batch[i],
            draw_weighted(&weighted, 1, 7 + i as u64)[0],
            "melody {i}"
        );
    }
}

#[test]
fn a_batch_in_the_training_mixture_carries_each_melodys_meter_and_key() {
    let data = kern_corpus("mixture");
    let opts = with_features(&data, "model.safetensors");
    train(&opts).unwrap();
    let generate = |model: &Path, extra: &[&str]| {
        let mut command = engine();
        command
            .args(["generate", "--device", "cpu", "--seed", "60 _ _ _"])
            .args(["--steps", "60", "--min-steps", "40"])
            .arg("--model")
            .arg(model)
            .args(extra);
        command
    };
    let dir = data.join("mixture");
    let batch_args = ["--count", "12", "--rng-seed", "5", "--out", "melody.krn"];
    let mixture = [
        &batch_args[..],
        &["--training-mixture", "--out-dir", dir.to_str().unwrap()],
    ]
    .concat();
    let output = succeeded(&mut generate(&opts.out, &mixture));
    let stderr = String::from_utf8_lossy(&output.stderr);

    // The draw the checkpoint's counts (18 : 10 : 8) give the seed.
    let saved = checkpoint::load(&opts.out).unwrap();
    let drawn = draw_weighted(&saved.config.conditions().unwrap().unwrap(), 12, 5);
    let asked = |meter: (u32, u32)| drawn.iter().filter(|&&(m, _)| m == Some(meter)).count();
    assert_eq!(
        [asked((2, 4)), asked((6, 8)), asked((3, 4))],
        [6, 2, 4],
        "this seed draws every meter of the mixture"
    );
    assert!(
        stderr.contains(&format!(
            "features {ALL}: 12 melodies in the training songs' meters and modes: 6 in 2/4 \
             major, 4 in 3/4 minor, 2 in 6/8 major"
        )),
        "{stderr}"
    );
    for (i, &(meter, mode)) in drawn.iter().enumerate() {
        let (meter, mode) = (meter.unwrap(), mode.unwrap());
        let path = dir.join(format!("melody-{:03}.krn", i + 1));
        let written = fs::read(&path).unwrap();
        let song = kern::parse(&written).unwrap();
        assert_eq!(song.meter, Some(meter), "{}", path.display());
        assert_eq!(
            song.keys[0].mode.is_minor(),
            mode == ModeClass::Minor,
            "{}: {:?}",
            path.display(),
            song.keys
        );
        // The same melody, asked for alone with its meter, mode and seed.
        let alone = data.join("alone.krn");
        let meter = format!("{}/{}", meter.0, meter.1);
        let seed = (5 + i).to_string();
        succeeded(&mut generate(
            &opts.out,
            &[
                "--meter",
                &meter,
                "--mode",
                mode.name(),
                "--rng-seed",
                &seed,
                "--out",
                alone.to_str().unwrap(),
            ],
        ));
        assert_eq!(fs::read(&alone).unwrap(), written, "melody {}", i + 1);
    }

    // --meter or --mode with it is an error that says why.
    let error = failed(&mut generate(
        &opts.out,
        &[&mixture[..], &["--mode", "minor"]].concat(),
    ));
    assert!(
        error.contains(
            "--training-mixture draws each melody's meter and mode from the \
                               training songs, so --meter and --mode would contradict it"
        ),
        "{error}"
    );
    // A checkpoint written before the mixture was recorded still generates, but has no mixture.
    let old = data.join("old.safetensors");
    let mut config = saved.config.clone();
    config.features.as_mut().unwrap().conditions = None;
    checkpoint::save(&old, &saved.params, &saved.vocab, &config).unwrap();
    assert_eq!(
        checkpoint::load(&old).unwrap().config.conditions(),
        Ok(None)
    );
    succeeded(&mut generate(
        &old,
        &["--out", data.join("old.krn").to_str().unwrap()],
    ));
    let error = failed(&mut generate(&old, &mixture));
    assert!(
        error.contains(
            "does not record its training songs' meters and modes (trained \
                               before they were recorded): train it again"
        ),
        "{error}"
    );
    // The reference model reads no meter or mode.
    let reference = options(&data, "reference.safetensors");
    train(&reference).unwrap();
    let error = failed(&mut generate(&reference.out, &mixture));
    assert!(
        error.contains("reads no meter or mode (its features: none"),
        "{error}"
    );
    fs::remove_dir_all(data.parent().unwrap()).unwrap();
}

/// `engine train` reads every group unless told otherwise; `--features` names fewer, `none` is
/// the reference model; `--resume` (and `--init`) without `--features` take the checkpoint's
/// groups.
#[test]
fn train_defaults_to_every_group_and_resume_to_the_checkpoints() {
    let data = kern_corpus("defaults");
    let groups_of = |out: &Path| {
        let saved = checkpoint::load(out).unwrap();
        saved.config.feature_set().unwrap().to_string()
    };
    // A small, quick model: `extra` names the checkpoint and the steps.
    let train = |extra: &[&str]| {
        let mut command = engine();
        command
            .args(["train", "--device", "cpu", "--data"])
            .arg(&data);
        command.args(["--hidden", "8", "--eval-windows", "16"]);
        succeeded(command.args(extra));
    };
    let six = "lookback,position,mode,meter,phrase,bar";
    let every = GROUPS.join(",");
    for (asked, expected) in [
        (None, every.as_str()),
        (Some(six), six),
        (Some("none"), "none"),
    ] {
        let out = data.join(format!("{expected}.safetensors"));
        let out = out.to_str().unwrap();
        match asked {
            Some(set) => train(&["--out", out, "--max-steps", "2", "--features", set]),
            None => train(&["--out", out, "--max-steps", "2"]),
        }
        assert_eq!(groups_of(Path::new(out)), expected);
        train(&["--out", out, "--max-steps", "4", "--resume"]);
        assert_eq!(groups_of(Path::new(out)), expected, "resumed");
        let tuned = data.join(format!("{expected}-tuned.safetensors"));
        train(&[
            "--out",
            tuned.to_str().unwrap(),
            "--max-steps",
            "1",
            "--init",
            out,
        ]);
        assert_eq!(groups_of(&tuned), expected, "fine-tuned");
    }
    // The default model (with accidentals) draws whether each melody leaves the scale from its
    // training songs, none of which does here.
    let all = data.join(format!("{every}.safetensors"));
    let output = succeeded(
        engine()
            .args([
                "generate", "--device", "cpu", "--steps", "8", "--count", "4",
            ])
            .args(["--training-mixture", "--out-dir"])
            .arg(data.join("melodies"))
            .arg("--model")
            .arg(&all),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("0 of 4 melodies leave the scale"),
        "{stderr}"
    );
    fs::remove_dir_all(data.parent().unwrap()).unwrap();
}
