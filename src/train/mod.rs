//! The training loop, written once for every backend: epochs of shuffled windows, a metrics line
//! and an atomic checkpoint after each epoch, early stopping on held-out loss, exact resume,
//! fine-tuning from a checkpoint, Ctrl-C and NaN handling.

mod metrics;
mod start;
mod stopping;

pub use metrics::{curve_path, metrics_path, EpochMetrics};
pub use start::{initial_state, Start};
pub use stopping::EarlyStopping;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::backend::{Backend, Batch};
use crate::cpu::BatchStats;
use crate::dataset::{
    all_window_starts, fill_batch, sample_window_starts, tiled_window_starts, Dataset, Split,
};
use crate::engine::{self, Device};
use crate::evaluate::evaluate_windows;
use crate::features::{self, FeatureSet, SplitInputs};
use crate::model::checkpoint::{self, CheckpointConfig, FeatureRecord};
use crate::model::Objective;

/// What and how to train (`engine train`'s options).
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Directory with dataset.txt and vocab.json (from `engine preprocess`).
    pub data: PathBuf,
    /// Checkpoint to write (safetensors; PyTorch loads it as nn.LSTM + nn.Linear).
    pub out: PathBuf,
    /// Metrics log, one JSON object per epoch [default: OUT with extension .metrics.jsonl].
    pub metrics: Option<PathBuf>,
    /// LSTM units per layer.
    pub hidden: usize,
    /// The engine: `cuda` (an NVIDIA GPU), `cpu`, or `auto` (CUDA when a device opens, else
    /// the CPU). Both write the same checkpoints and agree to rounding; an exact --resume needs
    /// the engine the run started on.
    pub device: Device,
    /// The CUDA engine's weight gradients on TF32 tensor cores (sm_80+) instead of strict fp32:
    /// faster products, each within about 2⁻¹⁰ of Σ|a·b| of the fp32 one. Checkpoints record
    /// nothing of it.
    pub tf32: bool,
    /// Stacked LSTM layers.
    pub layers: usize,
    /// Dropout probability on the last LSTM layer's output.
    pub dropout: f32,
    /// `all`: a loss at every position of each window (windows tiled from a random offset
    /// each epoch); `last`: the reference work's, every window predicts only the symbol after
    /// it (64× the compute for the same predictions).
    pub objective: Objective,
    /// Windows per optimiser step.
    pub batch_size: usize,
    /// Symbols per training window.
    pub window: usize,
    /// Passes over the training windows (counted from the start when resuming).
    pub epochs: usize,
    /// Stop after this many optimiser steps in all.
    pub max_steps: Option<u64>,
    /// Same seed, same machine → bit-identical checkpoint.
    pub seed: u64,
    /// Adam's learning rate.
    pub learning_rate: f32,
    /// Scale gradients down to this global norm when larger.
    pub clip: Option<f32>,
    /// Share of songs held out for validation.
    pub val_fraction: f64,
    /// Windows sampled (fixed) from each split for the per-epoch accuracies.
    pub eval_windows: usize,
    /// Stop after this many epochs without a new best held-out loss. The best epoch's
    /// checkpoint is kept as OUT with extension .best.safetensors either way.
    pub patience: Option<usize>,
    /// Fine-tune: start from this checkpoint's weights, vocabulary and architecture
    /// (--hidden, --layers and --dropout come from it) on the --data corpus.
    pub init: Option<PathBuf>,
    /// With --init: give symbols the checkpoint does not know new rows and columns instead
    /// of refusing them.
    pub extend_vocab: bool,
    /// Continue from OUT and its Adam state (same options as the run that wrote them).
    pub resume: bool,
    /// The inputs besides the symbol (`--features`); none: the reference model. --resume and
    /// --init must name the checkpoint's.
    pub features: FeatureSet,
    /// Progress bars and a line per epoch on stderr.
    pub progress: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Finished,
    MaxSteps,
    EarlyStopped,
    Interrupted,
}

#[derive(Clone, Debug)]
pub struct TrainReport {
    pub stop: Stop,
    pub epochs: usize,
    pub steps: u64,
    /// The epoch with the lowest held-out loss so far, and that loss.
    pub best: Option<(usize, f64)>,
    pub last: Option<EpochMetrics>,
}

/// `model.safetensors` → `model.best.safetensors`.
pub fn best_path(out: &Path) -> PathBuf {
    out.with_extension("best.safetensors")
}

/// Trains on the engine `options.device` picks. See [`train_with`].
pub fn train(options: &TrainOptions) -> Result<TrainReport, String> {
    let data = Dataset::load(&options.data)?;
    let (params, data, adam, start) = initial_state(options, data)?;
    let (mut backend, device) = engine::open(options.device, params, adam, options.tf32)?;
    if options.progress {
        eprintln!("{device}");
    }
    let report = train_with(&mut *backend, &data, options, start);
    // Under ENGINE_GPU_TIMINGS=1, where the CUDA engine's time went.
    if let Some(table) = backend.timings_table()? {
        eprintln!("{table}");
    }
    report
}

/// Trains `backend` from `start` until `options.epochs` epochs, `options.max_steps` steps,
/// early stopping or Ctrl-C. After every epoch: evaluation on a fixed sample of train and
/// held-out windows, a line in the metrics log, and an atomic checkpoint (and the best one). A
/// non-finite loss stops training with an error and leaves the last good checkpoint in place.
pub fn train_with(
    backend: &mut dyn Backend,
    data: &Dataset,
    options: &TrainOptions,
    start: Start,
) -> Result<TrainReport, String> {
    stopping::catch_interrupt();
    let set = &options.features;
    let model = backend.config();
    if (model.input_width, model.inputs_per_step)
        != (set.input_width(model.vocab_size), set.inputs_per_step())
    {
        return Err(format!(
            "features {set} need {} indices of {} input columns a step; the model reads {} of {}",
            set.inputs_per_step(),
            set.input_width(model.vocab_size),
            model.inputs_per_step,
            model.input_width
        ));
    }
    let songs = features::songs_for(set, &options.data, data)?;
    let inputs_of =
        |split| SplitInputs::of(set, data, songs.as_deref(), split, options.val_fraction);
    let (train, val) = (inputs_of(Split::Train)?, inputs_of(Split::Val)?);
    // A feature model records its groups, and the training songs' meters and modes.
    let record = songs.as_deref().map(|songs| {
        let train_songs = features::songs_of_split(songs, Split::Train, options.val_fraction);
        FeatureRecord::of(set, &train_songs)
    });
    let write_checkpoint = |path: &Path, backend: &dyn Backend, epoch, step| {
        save(path, backend, data, options, record.clone(), epoch, step)
    };
    for (name, split) in [("training", &train.symbols), ("held-out", &val.symbols)] {
        if split.len() <= options.window {
            return Err(format!(
                "{}: the {name} split has {} symbols, too few for one window of {} and the \
                 symbol after it",
                options.data.display(),
                split.len(),
                options.window
            ));
        }
    }
    let mut sample_rng = StdRng::seed_from_u64(options.seed);
    let (t, b) = (options.window, options.batch_size);
    let train_sample = sample_window_starts(
        train.symbols.len(),
        t,
        options.eval_windows,
        &mut sample_rng,
    );
    let val_sample =
        sample_window_starts(val.symbols.len(), t, options.eval_windows, &mut sample_rng);

    let metrics_path = metrics_path(options);
    for path in [&options.out, &metrics_path] {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    if !options.resume {
        fs::write(&metrics_path, "").map_err(|e| format!("{}: {e}", metrics_path.display()))?;
    }
    let steps_before: u64 = (0..start.epoch)
        .map(|e| steps_in_epoch(train.symbols.len(), options, e))
        .sum();
    // A resumed run skips the batches of its last epoch it had already trained on.
    let mut skip = (start.step - steps_before) as usize;
    let mut early_stopping = start.early_stopping;
    let started = Instant::now();
    let mut report = TrainReport {
        stop: Stop::Finished,
        epochs: start.epoch,
        steps: start.step,
        best: early_stopping.best(),
        last: None,
    };

    for epoch in start.epoch..options.epochs {
        let epoch_started = Instant::now();
        let run = run_epoch(backend, &train, options, epoch, skip, report.steps)?;
        skip = 0;
        let epoch_seconds = epoch_started.elapsed().as_secs_f64();
        report.steps += run.steps as u64;
        let step = report.steps;
        if let Some(stop) = run.stopped {
            report.stop = stop;
            write_checkpoint(&options.out, backend, epoch, step)?;
            return Ok(report);
        }
        let evaluate = |backend: &mut dyn Backend, split: &SplitInputs, sample: &[usize]| {
            evaluate_windows(backend, &data.vocab, split, sample, t, |_| {})
                .map_err(|e| stopped_by(options, &e, step))
        };
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            step,
            objective_loss: run.stats.loss_sum / run.stats.count.max(1) as f64,
            train: evaluate(backend, &train, &train_sample)?,
            val: evaluate(backend, &val, &val_sample)?,
            step_samples_per_s: (run.steps * b * t) as f64 / epoch_seconds,
            wall_s: started.elapsed().as_secs_f64(),
        };
        metrics::append_line(&metrics_path, &metrics)?;
        metrics::write_curve(&metrics_path, &curve_path(&options.out))?;
        write_checkpoint(&options.out, backend, epoch + 1, step)?;
        let (improved, stop) = early_stopping.observe(epoch + 1, metrics.val.all.loss);
        if improved {
            let best = best_path(&options.out);
            write_checkpoint(&best, backend, epoch + 1, step)?;
        }
        if options.progress {
            eprintln!(
                "epoch {:>3}  train acc {:.2} %  val acc {:.2} % (events {:.2} %)  val loss {:.4}{}  {:.0} step-samples/s",
                metrics.epoch,
                100.0 * metrics.train.all.accuracy,
                100.0 * metrics.val.all.accuracy,
                100.0 * metrics.val.events.accuracy,
                metrics.val.all.loss,
                if improved { " (best)" } else { "" },
                metrics.step_samples_per_s
            );
        }
        report.epochs = epoch + 1;
        report.best = early_stopping.best();
        report.last = Some(metrics);
        if stop {
            report.stop = Stop::EarlyStopped;
            break;
        }
    }
    Ok(report)
}

/// What one epoch's optimiser steps did.
struct EpochRun {
    stats: BatchStats,
    steps: usize,
    /// The steps whose statistics the engine has reported (up to one fewer than `steps` while
    /// the last is in flight).
    reported: usize,
    /// Why the epoch ended before its last batch, if it did.
    stopped: Option<Stop>,
}

impl EpochRun {
    /// Adds the statistics of the next reported step, the run's step `first_step + reported + 1`;
    /// a non-finite loss is an error naming that step.
    fn report(
        &mut self,
        stats: BatchStats,
        first_step: u64,
        options: &TrainOptions,
    ) -> Result<(), String> {
        self.reported += 1;
        if !stats.loss_sum.is_finite() {
            return Err(format!(
                "the loss became {} at step {}; stopped, {} keeps the last good checkpoint (try a lower --learning-rate or --clip 1)",
                stats.loss_sum,
                first_step + self.reported as u64,
                options.out.display()
            ));
        }
        self.stats.loss_sum += stats.loss_sum;
        self.stats.count += stats.count;
        Ok(())
    }
}

/// The optimiser steps of one epoch after its first `skip` batches, from step `step`; stops
/// early at `options.max_steps` or Ctrl-C.
fn run_epoch(
    backend: &mut dyn Backend,
    train: &SplitInputs,
    options: &TrainOptions,
    epoch: usize,
    skip: usize,
    mut step: u64,
) -> Result<EpochRun, String> {
    let (t, b) = (options.window, options.batch_size);
    let windows = epoch_windows(train.symbols.len(), options, epoch);
    let batches: Vec<&[usize]> = windows.chunks_exact(b).skip(skip).collect();
    let bar = progress_bar(options.progress, batches.len(), epoch, options.epochs);
    let mut inputs = vec![0u32; b * t * options.features.inputs_per_step()];
    let mut targets = vec![0u32; b * t];
    let mut run = EpochRun {
        stats: BatchStats::default(),
        steps: 0,
        reported: 0,
        stopped: None,
    };
    let first_step = step;
    let started = Instant::now();
    for starts in batches {
        if options.max_steps.is_some_and(|max| step >= max) {
            run.stopped = Some(Stop::MaxSteps);
            break;
        }
        if stopping::interrupted() {
            run.stopped = Some(Stop::Interrupted);
            break;
        }
        fill_batch(
            &train.symbols,
            &train.rows,
            starts,
            t,
            &mut inputs,
            &mut targets,
        );
        let batch = Batch {
            inputs: &inputs,
            targets: &targets,
            batch: b,
            steps: t,
        };
        // The engine may report a step late (the CUDA engine does, so that the device never
        // waits for the host): `run.reported` counts the steps whose statistics arrived.
        let reported = backend
            .queue_train_step(&batch, options.objective, options.seed)
            .map_err(|e| {
                bar.abandon();
                stopped_by(options, &e, step + 1)
            })?;
        step += 1;
        run.steps += 1;
        if let Some(stats) = reported {
            run.report(stats, first_step, options)
                .inspect_err(|_| bar.abandon())?;
        }
        let mean = run.stats.loss_sum / run.stats.count.max(1) as f64;
        let rate = (run.steps * b * t) as f64 / started.elapsed().as_secs_f64();
        bar.set_message(format!("loss {mean:.4}  {rate:.0} step-samples/s"));
        bar.inc(1);
    }
    let last = backend
        .finish_train_steps()
        .map_err(|e| stopped_by(options, &e, step))
        .inspect_err(|_| bar.abandon())?;
    if let Some(stats) = last {
        run.report(stats, first_step, options)
            .inspect_err(|_| bar.abandon())?;
    }
    bar.finish_and_clear();
    Ok(run)
}

/// A device failure (out of memory, a failed launch) ends the run; the checkpoint on disk is the
/// last epoch's.
fn stopped_by(options: &TrainOptions, error: &dyn std::fmt::Display, step: u64) -> String {
    format!(
        "{error}; stopped at step {step}, {} keeps the last checkpoint",
        options.out.display()
    )
}

/// The windows of one epoch in training order, a pure function of (seed, epoch) so that a
/// resumed run sees the same ones.
fn epoch_windows(len: usize, options: &TrainOptions, epoch: usize) -> Vec<usize> {
    let epoch_seed = (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = StdRng::seed_from_u64(options.seed ^ epoch_seed);
    match options.objective {
        Objective::All => tiled_window_starts(len, options.window, &mut rng),
        Objective::Last => {
            let mut starts = all_window_starts(len, options.window);
            starts.shuffle(&mut rng);
            starts
        }
    }
}

fn steps_in_epoch(len: usize, options: &TrainOptions, epoch: usize) -> u64 {
    (epoch_windows(len, options, epoch).len() / options.batch_size) as u64
}

fn progress_bar(visible: bool, len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let bar = if visible {
        ProgressBar::new(len as u64)
    } else {
        ProgressBar::hidden()
    };
    let template = format!(
        "epoch {}/{epochs} {{bar:30}} {{pos}}/{{len}} {{msg}}",
        epoch + 1
    );
    bar.set_style(ProgressStyle::with_template(&template).expect("static template"));
    bar
}

/// Writes a checkpoint to `path` and the Adam state beside it.
fn save(
    path: &Path,
    backend: &dyn Backend,
    data: &Dataset,
    options: &TrainOptions,
    features: Option<FeatureRecord>,
    epoch: usize,
    step: u64,
) -> Result<(), String> {
    let params = backend.params()?;
    let config = CheckpointConfig {
        features,
        ..CheckpointConfig::new(
            *params.config(),
            options.window,
            options.objective,
            epoch,
            step,
        )
    };
    checkpoint::save(path, &params, data.vocab.symbols(), &config).map_err(|e| e.to_string())?;
    checkpoint::save_adam(&checkpoint::adam_path(path), &backend.adam_state()?)
        .map_err(|e| e.to_string())
}
