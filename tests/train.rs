//! The training loop end to end on a small synthetic corpus: learning, determinism, exact resume,
//! metrics, and clear errors.

use std::fs;
use std::ops::Range;

use melody_engine::backend::{Backend, Batch, CpuBackend, EngineError};
use melody_engine::cpu::BatchStats;
use melody_engine::dataset::Dataset;
use melody_engine::encode::Vocabulary;
use melody_engine::model::{checkpoint, Config, Objective, Params};
use melody_engine::optim::AdamState;
use melody_engine::train::{self, train, Stop, TrainOptions};

mod common;
use common::{corpus, metrics, options};

#[test]
fn same_seed_same_checkpoint_and_resume_is_exact() {
    let data = corpus("resume");
    let straight = options(&data, "straight.safetensors");
    let report = train(&straight).unwrap();
    assert_eq!((report.stop, report.epochs), (Stop::Finished, 3));

    let again = options(&data, "again.safetensors");
    train(&again).unwrap();
    assert_eq!(
        fs::read(&straight.out).unwrap(),
        fs::read(&again.out).unwrap(),
        "same seed, same bytes"
    );

    // Stop in the middle of the second epoch, then resume to the end.
    let steps_per_epoch = report.steps / 3;
    let interrupted = TrainOptions {
        max_steps: Some(steps_per_epoch + 2),
        ..options(&data, "resumed.safetensors")
    };
    let first = train(&interrupted).unwrap();
    assert_eq!(
        (first.stop, first.steps),
        (Stop::MaxSteps, steps_per_epoch + 2)
    );
    let saved = checkpoint::load(&interrupted.out).unwrap();
    assert_eq!(
        (saved.config.epoch, saved.config.step),
        (1, steps_per_epoch + 2)
    );
    let resumed = TrainOptions {
        resume: true,
        max_steps: None,
        ..interrupted.clone()
    };
    let second = train(&resumed).unwrap();
    assert_eq!((second.stop, second.steps), (Stop::Finished, report.steps));
    assert_eq!(
        fs::read(&straight.out).unwrap(),
        fs::read(&resumed.out).unwrap(),
        "resume is exact"
    );
    assert_eq!(
        fs::read(checkpoint::adam_path(&straight.out)).unwrap(),
        fs::read(checkpoint::adam_path(&resumed.out)).unwrap()
    );
    fs::remove_dir_all(&data).unwrap();
}

#[test]
fn learns_the_corpus_and_logs_every_epoch() {
    let data = corpus("learn");
    let opts = TrainOptions {
        epochs: 40,
        dropout: 0.0,
        hidden: 32,
        ..options(&data, "model.safetensors")
    };
    let report = train(&opts).unwrap();
    let lines = metrics(&data.join("model.metrics.jsonl"));
    assert_eq!(lines.len(), 40);
    let curve = fs::read_to_string(data.join("model.curve.svg")).unwrap();
    assert_eq!(
        curve.matches("<polyline").count(),
        4,
        "train, held-out, baseline, events"
    );
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["epoch"], i + 1);
        for field in [
            "train_loss",
            "train_accuracy",
            "val_loss",
            "val_accuracy",
            "val_perplexity",
            "step_samples_per_s",
            "wall_s",
        ] {
            assert!(line[field].as_f64().unwrap().is_finite(), "{field}");
        }
    }
    let first = lines[0]["train_loss"].as_f64().unwrap();
    let last = report.last.unwrap();
    assert!(
        last.train.all.loss < first / 2.0,
        "loss {first} → {}",
        last.train.all.loss
    );
    // Three melodies, each fully determined once its first two symbols are known: all but the
    // first symbols after `/` are predictable.
    assert!(
        last.train.all.accuracy > 0.9,
        "train accuracy {}",
        last.train.all.accuracy
    );
    assert!((last.val.all.perplexity - last.val.all.loss.exp()).abs() < 1e-9);
    fs::remove_dir_all(&data).unwrap();
}

#[test]
fn the_checkpoint_folder_is_created() {
    let data = corpus("folder");
    let opts = TrainOptions {
        epochs: 1,
        ..options(&data, "runs/first/m.safetensors")
    };
    train(&opts).unwrap();
    assert_eq!(checkpoint::load(&opts.out).unwrap().config.epoch, 1);
    assert_eq!(metrics(&data.join("runs/first/m.metrics.jsonl")).len(), 1);
    fs::remove_dir_all(&data).unwrap();
}

#[test]
fn resume_with_other_options_is_a_clear_error() {
    let data = corpus("mismatch");
    let opts = TrainOptions {
        epochs: 1,
        ..options(&data, "m.safetensors")
    };
    train(&opts).unwrap();
    let other = TrainOptions {
        hidden: 8,
        resume: true,
        ..opts.clone()
    };
    let err = train(&other).unwrap_err();
    assert!(
        err.contains("hidden 16") && err.contains("pass the same options"),
        "{err}"
    );
    let missing = TrainOptions {
        resume: true,
        ..options(&data, "none.safetensors")
    };
    assert!(train(&missing).unwrap_err().contains("none.safetensors"));
    fs::remove_dir_all(&data).unwrap();
}

#[test]
fn a_diverging_loss_stops_and_keeps_the_last_good_checkpoint() {
    let data = corpus("nan");
    let good = TrainOptions {
        epochs: 1,
        ..options(&data, "n.safetensors")
    };
    train(&good).unwrap();
    let wild = TrainOptions {
        learning_rate: 1e30,
        epochs: 50,
        resume: true,
        ..good.clone()
    };
    let err = train(&wild).unwrap_err();
    assert!(
        err.contains("the loss became") && err.contains("keeps the last good checkpoint"),
        "{err}"
    );
    let after = checkpoint::load(&good.out).unwrap();
    assert!(after.params.as_slice().iter().all(|p| p.is_finite()));
    assert!(after.config.epoch >= 1);
    fs::remove_dir_all(&data).unwrap();
}

/// The CPU engine, except that its training steps fail from the `fail_at`-th on, as a GPU's do
/// once it runs out of memory.
struct FailingDevice {
    engine: CpuBackend,
    steps: u64,
    fail_at: u64,
}

const OUT_OF_MEMORY: &str = "CUDA: allocating device memory: CUDA_ERROR_OUT_OF_MEMORY";

impl Backend for FailingDevice {
    fn train_step(
        &mut self,
        batch: &Batch<'_>,
        objective: Objective,
        seed: u64,
    ) -> Result<BatchStats, EngineError> {
        self.steps += 1;
        if self.steps >= self.fail_at {
            return Err(EngineError::OutOfMemory {
                action: "allocating device memory".to_string(),
                message: "CUDA_ERROR_OUT_OF_MEMORY".to_string(),
            });
        }
        self.engine.train_step(batch, objective, seed)
    }
    fn predict_last(
        &mut self,
        inputs: &[u32],
        batch: usize,
        out: &mut [f32],
    ) -> Result<(), EngineError> {
        self.engine.predict_last(inputs, batch, out)
    }
    fn config(&self) -> Config {
        self.engine.config()
    }
    fn params(&self) -> Result<Params<f32>, EngineError> {
        self.engine.params()
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
        self.engine.stream_step(rows, inputs)
    }
    fn stream_probs(&mut self, rows: &[usize], out: &mut [f32]) -> Result<(), EngineError> {
        self.engine.stream_probs(rows, out)
    }
    fn adam_state(&self) -> Result<AdamState, EngineError> {
        self.engine.adam_state()
    }
}

#[test]
fn a_device_failure_stops_with_its_message_and_keeps_the_last_checkpoint() {
    let data = corpus("device-failure");
    let one_epoch = TrainOptions {
        epochs: 1,
        ..options(&data, "one.safetensors")
    };
    let steps_per_epoch = train(&one_epoch).unwrap().steps;
    let opts = options(&data, "d.safetensors");
    let (params, dataset, adam, start) =
        train::initial_state(&opts, Dataset::load(&data).unwrap()).unwrap();
    let fail_at = steps_per_epoch + 2; // in the second epoch
    let mut device = FailingDevice {
        engine: CpuBackend::new(params, adam),
        steps: 0,
        fail_at,
    };
    let err = train::train_with(&mut device, &dataset, &opts, start).unwrap_err();
    let expected = format!(
        "{OUT_OF_MEMORY}; stopped at step {fail_at}, {} keeps the last checkpoint",
        opts.out.display()
    );
    assert_eq!(err, expected);
    // The first epoch's checkpoint and metrics line are there, and nothing after them.
    assert_eq!(checkpoint::load(&opts.out).unwrap().config.epoch, 1);
    assert_eq!(metrics(&data.join("d.metrics.jsonl")).len(), 1);
    fs::remove_dir_all(&data).unwrap();
}

#[test]
fn early_stopping_keeps_the_best_checkpoint() {
    let data = corpus("patience");
    // A learning rate this high makes held-out loss stop improving within a few epochs.
    let opts = TrainOptions {
        epochs: 60,
        patience: Some(2),
        learning_rate: 0.1,
        ..options(&data, "p.safetensors")
    };
    let report = train(&opts).unwrap();
    assert_eq!(report.stop, Stop::EarlyStopped);
    let (best_epoch, best_loss) = report.best.unwrap();
    assert_eq!(
        report.epochs,
        best_epoch + 2,
        "stops two epochs after the best"
    );
    let best = checkpoint::load(&melody_engine::train::best_path(&opts.out)).unwrap();
    assert_eq!(best.config.epoch, best_epoch);
    let losses: Vec<f64> = metrics(&data.join("p.metrics.jsonl"))
        .iter()
        .map(|line| line["val_loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), report.epochs);
    assert_eq!(
        losses.iter().cloned().fold(f64::INFINITY, f64::min),
        best_loss
    );
    fs::remove_dir_all(&data).unwrap();
}

#[test]
fn fine_tuning_refuses_or_extends_unknown_symbols() {
    let data = corpus("finetune");
    let base = TrainOptions {
        epochs: 2,
        ..options(&data, "base.safetensors")
    };
    train(&base).unwrap();
    // A new corpus with a pitch the base model never saw.
    let new_corpus = corpus("finetune-new");
    let text = fs::read_to_string(new_corpus.join("dataset.txt"))
        .unwrap()
        .replace("65", "71");
    fs::write(new_corpus.join("dataset.txt"), text).unwrap();
    let vocab = Vocabulary::from_symbols(["60", "62", "64", "67", "71"]);
    fs::write(new_corpus.join("vocab.json"), vocab.to_json()).unwrap();

    let refuse = TrainOptions {
        init: Some(base.out.clone()),
        epochs: 1,
        ..options(&new_corpus, "tuned.safetensors")
    };
    let err = train(&refuse).unwrap_err();
    assert!(
        err.contains("does not know the symbols 71") && err.contains("--extend-vocab"),
        "{err}"
    );

    let extend = TrainOptions {
        extend_vocab: true,
        ..refuse.clone()
    };
    train(&extend).unwrap();
    let tuned = checkpoint::load(&extend.out).unwrap();
    let base_model = checkpoint::load(&base.out).unwrap();
    assert_eq!(tuned.vocab[..base_model.vocab.len()], base_model.vocab[..]);
    assert_eq!(tuned.vocab.last().map(String::as_str), Some("71"));
    assert_eq!(tuned.config.hidden, 16);
    // The fine-tuned model generates in its extended vocabulary.
    let vocab = Vocabulary::from_ordered(tuned.vocab.clone()).unwrap();
    let mut backend =
        melody_engine::backend::CpuBackend::new(tuned.params, melody_engine::optim::Adam::new(0));
    let sampler = melody_engine::sample::Sampler::new(Default::default(), &vocab).unwrap();
    let options = melody_engine::generate::GenerateOptions {
        steps: 16,
        count: 1,
        rng_seed: 1,
        window: 8,
        features: None,
    };
    let melody = melody_engine::generate::generate(
        &mut backend,
        vocab.id("/").unwrap(),
        &[],
        &sampler,
        &options,
    )
    .unwrap();
    assert!(!melody[0].is_empty() && melody[0].iter().all(|&id| (id as usize) < vocab.len()));
    fs::remove_dir_all(&data).unwrap();
    fs::remove_dir_all(&new_corpus).unwrap();
}
