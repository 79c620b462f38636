//! The training loop, written once for every backend: epochs of shuffled windows, a metrics line
//! and an atomic checkpoint after each epoch, exact resume, Ctrl-C and NaN handling.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use crate::backend::{Backend, Batch, CpuBackend};
use crate::cpu::BatchStats;
use crate::dataset::{
    all_window_starts, fill_batch, sample_window_starts, tiled_window_starts, Dataset, Split,
};
use crate::evaluate::{evaluate_windows, Metrics};
use crate::model::checkpoint::{self, CheckpointConfig};
use crate::model::{Config, Objective, Params};
use crate::optim::Adam;

#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Directory with `dataset.txt` and `vocab.json`.
    pub data: PathBuf,
    /// The checkpoint; the Adam state goes beside it.
    pub out: PathBuf,
    /// One JSON object per epoch; default `OUT` with extension `metrics.jsonl`.
    pub metrics: Option<PathBuf>,
    pub hidden: usize,
    pub layers: usize,
    pub dropout: f32,
    pub objective: Objective,
    pub batch_size: usize,
    pub window: usize,
    pub epochs: usize,
    pub max_steps: Option<u64>,
    pub seed: u64,
    pub learning_rate: f32,
    pub clip: Option<f32>,
    pub val_fraction: f64,
    pub eval_windows: usize,
    pub resume: bool,
    pub progress: bool,
}

/// One line of the metrics log.
#[derive(Clone, Debug, Serialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub step: u64,
    /// Mean training-objective loss over the epoch's batches (with dropout).
    pub objective_loss: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_perplexity: f64,
    /// Batch × window per second of forward + backward + update.
    pub step_samples_per_s: f64,
    pub wall_s: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Finished,
    MaxSteps,
    Interrupted,
}

#[derive(Clone, Debug)]
pub struct TrainReport {
    pub stop: Stop,
    pub epochs: usize,
    pub steps: u64,
    pub last: Option<EpochMetrics>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static HANDLER: Once = Once::new();

/// The windows of one epoch in training order, a pure function of (seed, epoch) so that a
/// resumed run sees the same ones.
fn epoch_windows(len: usize, options: &TrainOptions, epoch: usize) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(
        options.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
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

pub fn metrics_path(options: &TrainOptions) -> PathBuf {
    options
        .metrics
        .clone()
        .unwrap_or_else(|| options.out.with_extension("metrics.jsonl"))
}

/// Trains on the CPU. See [`train_with`].
pub fn train(options: &TrainOptions) -> Result<TrainReport, String> {
    let data = Dataset::load(&options.data)?;
    let (params, adam, start) = initial_state(options, &data)?;
    let mut backend = CpuBackend::new(params, adam);
    train_with(&mut backend, &data, options, start)
}

/// Where training starts: fresh parameters, or the checkpoint and Adam state of a resumed run.
#[derive(Clone, Copy, Debug)]
pub struct Start {
    pub epoch: usize,
    pub step: u64,
}

pub fn initial_state(
    options: &TrainOptions,
    data: &Dataset,
) -> Result<(Params<f32>, Adam, Start), String> {
    let config = Config {
        vocab_size: data.vocab.len(),
        hidden: options.hidden,
        layers: options.layers,
        dropout: options.dropout,
    };
    let mut adam = Adam::new(config.num_params());
    adam.learning_rate = options.learning_rate;
    adam.clip = options.clip;
    if !options.resume {
        let params = Params::init(config, &mut StdRng::seed_from_u64(options.seed));
        return Ok((params, adam, Start { epoch: 0, step: 0 }));
    }
    let saved = checkpoint::load(&options.out).map_err(|e| format!("--resume: {e}"))?;
    if saved.vocab != data.vocab.symbols() {
        return Err(format!(
            "--resume: {} was trained on another vocabulary than {}",
            options.out.display(),
            options.data.display()
        ));
    }
    if saved.config.model() != config || saved.config.objective != options.objective {
        return Err(format!(
            "--resume: {} has layers {}, hidden {}, dropout {}, objective {:?}; pass the same options to resume",
            options.out.display(),
            saved.config.layers,
            saved.config.hidden,
            saved.config.dropout,
            saved.config.objective
        ));
    }
    let adam_path = checkpoint::adam_path(&options.out);
    adam.state = checkpoint::load_adam(&adam_path, config.num_params())
        .map_err(|e| format!("--resume: {e}"))?;
    if adam.state.step != saved.config.step {
        return Err(format!(
            "--resume: {} is at step {} but {} at step {}",
            adam_path.display(),
            adam.state.step,
            options.out.display(),
            saved.config.step
        ));
    }
    Ok((
        saved.params,
        adam,
        Start {
            epoch: saved.config.epoch,
            step: saved.config.step,
        },
    ))
}

/// Trains `backend` from `start` until `options.epochs` epochs or `options.max_steps` steps, or
/// Ctrl-C. After every epoch: evaluation on a fixed sample of train and held-out windows, a line
/// in the metrics log, and an atomic checkpoint. A non-finite loss stops training with an error
/// and leaves the last good checkpoint in place.
pub fn train_with(
    backend: &mut dyn Backend,
    data: &Dataset,
    options: &TrainOptions,
    start: Start,
) -> Result<TrainReport, String> {
    HANDLER.call_once(|| {
        // Without a handler Ctrl-C still stops training, only without the last checkpoint.
        let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    });
    let train = data.split(Split::Train, options.val_fraction);
    let val = data.split(Split::Val, options.val_fraction);
    if train.len() <= options.window {
        return Err(format!(
            "{}: the training split has {} symbols, fewer than a window of {}",
            options.data.display(),
            train.len(),
            options.window
        ));
    }
    let mut sample_rng = StdRng::seed_from_u64(options.seed);
    let train_sample = sample_window_starts(
        train.len(),
        options.window,
        options.eval_windows,
        &mut sample_rng,
    );
    let val_sample = sample_window_starts(
        val.len(),
        options.window,
        options.eval_windows,
        &mut sample_rng,
    );

    let metrics_path = metrics_path(options);
    if !options.resume {
        fs::write(&metrics_path, "").map_err(|e| format!("{}: {e}", metrics_path.display()))?;
    }
    let (b, t) = (options.batch_size, options.window);
    let mut inputs = vec![0u32; b * t];
    let mut targets = vec![0u32; b * t];
    let mut step = start.step;
    let mut skip = step
        - (0..start.epoch)
            .map(|e| steps_in_epoch(train.len(), options, e))
            .sum::<u64>();
    let started = Instant::now();
    let mut report = TrainReport {
        stop: Stop::Finished,
        epochs: start.epoch,
        steps: step,
        last: None,
    };

    for epoch in start.epoch..options.epochs {
        let windows = epoch_windows(train.len(), options, epoch);
        let batches: Vec<&[usize]> = windows.chunks_exact(b).skip(skip as usize).collect();
        skip = 0;
        let bar = progress_bar(options.progress, batches.len(), epoch, options.epochs);
        let mut epoch_stats = BatchStats::default();
        let mut epoch_steps = 0;
        let epoch_started = Instant::now();
        for starts in batches {
            if options.max_steps.is_some_and(|max| step >= max) {
                report.stop = Stop::MaxSteps;
                break;
            }
            if INTERRUPTED.load(Ordering::SeqCst) {
                report.stop = Stop::Interrupted;
                break;
            }
            fill_batch(&train, starts, t, &mut inputs, &mut targets);
            let batch = Batch {
                inputs: &inputs,
                targets: &targets,
                batch: b,
                steps: t,
            };
            let stats = backend.train_step(&batch, options.objective, options.seed);
            if !stats.loss_sum.is_finite() {
                bar.abandon();
                return Err(format!(
                    "the loss became {} at step {}; stopped, {} keeps the last good checkpoint (try a lower --learning-rate or --clip 1)",
                    stats.loss_sum,
                    step + 1,
                    options.out.display()
                ));
            }
            step += 1;
            epoch_stats.loss_sum += stats.loss_sum;
            epoch_stats.correct += stats.correct;
            epoch_stats.count += stats.count;
            epoch_steps += 1;
            let mean = epoch_stats.loss_sum / epoch_stats.count as f64;
            let rate = (epoch_steps * b * t) as f64 / epoch_started.elapsed().as_secs_f64();
            bar.set_message(format!("loss {mean:.4}  {rate:.0} step-samples/s"));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let epoch_seconds = epoch_started.elapsed().as_secs_f64();
        report.steps = step;
        if report.stop != Stop::Finished {
            save(backend, data, options, epoch, step)?;
            return Ok(report);
        }
        let train_metrics = evaluate_windows(backend, &train, &train_sample, t, |_| {});
        let val_metrics = evaluate_windows(backend, &val, &val_sample, t, |_| {});
        let line = EpochMetrics {
            epoch: epoch + 1,
            step,
            objective_loss: Metrics::from_stats(epoch_stats).loss,
            train_loss: train_metrics.loss,
            train_accuracy: train_metrics.accuracy,
            val_loss: val_metrics.loss,
            val_accuracy: val_metrics.accuracy,
            val_perplexity: val_metrics.perplexity,
            step_samples_per_s: (epoch_steps * b * t) as f64 / epoch_seconds,
            wall_s: started.elapsed().as_secs_f64(),
        };
        append_line(
            &metrics_path,
            &serde_json::to_string(&line).expect("plain numbers"),
        )?;
        save(backend, data, options, epoch + 1, step)?;
        if options.progress {
            eprintln!(
                "epoch {:>3}  train acc {:.2} %  val acc {:.2} %  val loss {:.4}  {:.0} step-samples/s",
                line.epoch,
                100.0 * line.train_accuracy,
                100.0 * line.val_accuracy,
                line.val_loss,
                line.step_samples_per_s
            );
        }
        report.epochs = epoch + 1;
        report.last = Some(line);
    }
    Ok(report)
}

fn progress_bar(visible: bool, len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let bar = if visible {
        ProgressBar::new(len as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "epoch {}/{epochs} {{bar:30}} {{pos}}/{{len}} {{msg}}",
            epoch + 1
        ))
        .expect("static template"),
    );
    bar
}

fn save(
    backend: &dyn Backend,
    data: &Dataset,
    options: &TrainOptions,
    epoch: usize,
    step: u64,
) -> Result<(), String> {
    let params = backend.params();
    let model = *params.config();
    let config = CheckpointConfig {
        layers: model.layers,
        hidden: model.hidden,
        dropout: model.dropout,
        vocab_size: model.vocab_size,
        window: options.window,
        objective: options.objective,
        epoch,
        step,
    };
    checkpoint::save(&options.out, &params, data.vocab.symbols(), &config)
        .map_err(|e| e.to_string())?;
    checkpoint::save_adam(&checkpoint::adam_path(&options.out), &backend.adam_state())
        .map_err(|e| e.to_string())
}

fn append_line(path: &Path, line: &str) -> Result<(), String> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(file, "{line}").map_err(|e| format!("{}: {e}", path.display()))
}
