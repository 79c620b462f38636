//! The training loop, written once for every backend: epochs of shuffled windows, a metrics line
//! and an atomic checkpoint after each epoch, early stopping on held-out loss, exact resume,
//! fine-tuning from a checkpoint, Ctrl-C and NaN handling.

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
use serde_json::{Map, Value};

use crate::args;
use crate::atomic;
use crate::backend::{Backend, Batch};
use crate::cpu::BatchStats;
use crate::dataset::{
    all_window_starts, fill_batch, sample_window_starts, tiled_window_starts, Dataset, Split,
};
use crate::encode::Vocabulary;
use crate::engine::{self, Device};
use crate::evaluate::{evaluate_windows, Report};
use crate::model::checkpoint::{self, CheckpointConfig};
use crate::model::{Config, Objective, Params};
use crate::optim::Adam;
use crate::plot::{self, Series};

/// `engine train`'s options (its `--help` is these doc comments).
#[derive(Clone, Debug, clap::Args)]
pub struct TrainOptions {
    /// Directory with dataset.txt and vocab.json (from `engine preprocess`).
    #[arg(long)]
    pub data: PathBuf,
    /// Checkpoint to write (safetensors; PyTorch loads it as nn.LSTM + nn.Linear).
    #[arg(long)]
    pub out: PathBuf,
    /// Metrics log, one JSON object per epoch [default: OUT with extension .metrics.jsonl].
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// LSTM units per layer.
    #[arg(long, default_value_t = 256, value_parser = args::at_least_one)]
    pub hidden: usize,
    /// The engine: `cuda` (an NVIDIA GPU), `cpu`, or `auto` (CUDA when a device opens, else
    /// the CPU). Both write the same checkpoints and agree to rounding; an exact --resume needs
    /// the engine the run started on.
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// Stacked LSTM layers.
    #[arg(long, default_value_t = 1, value_parser = args::at_least_one)]
    pub layers: usize,
    /// Dropout probability on the last LSTM layer's output.
    #[arg(long, default_value_t = 0.2, value_parser = args::below_one, allow_negative_numbers = true)]
    pub dropout: f32,
    /// `all`: a loss at every position of each window (windows tiled from a random offset
    /// each epoch); `last`: the reference work's, every window predicts only the symbol after
    /// it (64× the compute for the same predictions).
    #[arg(long, value_enum, default_value_t = Objective::All)]
    pub objective: Objective,
    /// Windows per optimiser step.
    #[arg(long, default_value_t = 64, value_parser = args::at_least_one)]
    pub batch_size: usize,
    /// Symbols per training window.
    #[arg(long, default_value_t = 64, value_parser = args::at_least_one)]
    pub window: usize,
    /// Passes over the training windows (counted from the start when resuming).
    #[arg(long, default_value_t = 50, value_parser = args::at_least_one)]
    pub epochs: usize,
    /// Stop after this many optimiser steps in all.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Same seed, same machine → bit-identical checkpoint.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3, value_parser = args::positive, allow_negative_numbers = true)]
    pub learning_rate: f32,
    /// Scale gradients down to this global norm when larger.
    #[arg(long, value_parser = args::positive, allow_negative_numbers = true)]
    pub clip: Option<f32>,
    /// Share of songs held out for validation.
    #[arg(long, default_value_t = 0.1, value_parser = args::share)]
    pub val_fraction: f64,
    /// Windows sampled (fixed) from each split for the per-epoch accuracies.
    #[arg(long, default_value_t = 5000, value_parser = args::at_least_one)]
    pub eval_windows: usize,
    /// Stop after this many epochs without a new best held-out loss. The best epoch's
    /// checkpoint is kept as OUT with extension .best.safetensors either way.
    #[arg(long, value_parser = args::at_least_one)]
    pub patience: Option<usize>,
    /// Fine-tune: start from this checkpoint's weights, vocabulary and architecture
    /// (--hidden, --layers and --dropout come from it) on the --data corpus.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// With --init: give symbols the checkpoint does not know new rows and columns instead
    /// of refusing them.
    #[arg(long, requires = "init")]
    pub extend_vocab: bool,
    /// Continue from OUT and its Adam state (same options as the run that wrote them).
    #[arg(long, conflicts_with = "init")]
    pub resume: bool,
    /// Progress bars and a line per epoch on stderr.
    #[arg(skip = true)]
    pub progress: bool,
}

/// One epoch's figures: a line of the metrics log.
#[derive(Clone, Debug)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub step: u64,
    /// Mean training-objective loss over the epoch's batches (with dropout).
    pub objective_loss: f64,
    /// The evaluate protocol on the fixed sample of training and held-out windows.
    pub train: Report,
    pub val: Report,
    /// Batch × window per second of forward + backward + update.
    pub step_samples_per_s: f64,
    pub wall_s: f64,
}

impl EpochMetrics {
    /// One flat JSON object: `train_loss`, `val_accuracy`, `val_events_accuracy`, ….
    pub fn to_json(&self) -> Value {
        let mut line = Map::new();
        line.insert("epoch".into(), self.epoch.into());
        line.insert("step".into(), self.step.into());
        line.insert("objective_loss".into(), self.objective_loss.into());
        for (prefix, report) in [("train", &self.train), ("val", &self.val)] {
            flatten(
                prefix,
                &serde_json::to_value(report).expect("numbers"),
                &mut line,
            );
        }
        line.insert("step_samples_per_s".into(), self.step_samples_per_s.into());
        line.insert("wall_s".into(), self.wall_s.into());
        Value::Object(line)
    }
}

fn flatten(prefix: &str, value: &Value, out: &mut Map<String, Value>) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                flatten(&format!("{prefix}_{name}"), field, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), value.clone());
        }
    }
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

/// Early stopping on held-out loss: training stops once `patience` epochs in a row bring no new
/// best. The best epoch's checkpoint is kept beside the last one.
#[derive(Clone, Debug, Default)]
pub struct EarlyStopping {
    patience: Option<usize>,
    best: Option<(usize, f64)>,
}

impl EarlyStopping {
    pub fn new(patience: Option<usize>) -> EarlyStopping {
        EarlyStopping {
            patience,
            best: None,
        }
    }

    /// Records an epoch's held-out loss; returns (is it a new best?, should training stop?).
    pub fn observe(&mut self, epoch: usize, val_loss: f64) -> (bool, bool) {
        let improved = self.best.is_none_or(|(_, best)| val_loss < best);
        if improved {
            self.best = Some((epoch, val_loss));
        }
        let (best_epoch, _) = self.best.expect("set above");
        let stop = self.patience.is_some_and(|p| epoch - best_epoch >= p);
        (improved, stop)
    }

    pub fn best(&self) -> Option<(usize, f64)> {
        self.best
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static HANDLER: Once = Once::new();

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

pub fn metrics_path(options: &TrainOptions) -> PathBuf {
    options
        .metrics
        .clone()
        .unwrap_or_else(|| options.out.with_extension("metrics.jsonl"))
}

/// `model.safetensors` → `model.curve.svg`: the training curve.
pub fn curve_path(out: &Path) -> PathBuf {
    out.with_extension("curve.svg")
}

/// Draws accuracy per epoch (train and held-out) from the metrics log.
fn write_curve(metrics: &Path, curve: &Path) -> Result<(), String> {
    let log = fs::read_to_string(metrics).map_err(|e| format!("{}: {e}", metrics.display()))?;
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let series = |name, field: &str| Series {
        name,
        points: lines
            .iter()
            .filter_map(|l| Some((l["epoch"].as_f64()?, l[field].as_f64()?)))
            .collect(),
    };
    let svg = plot::line_chart(
        "training curve",
        "epoch",
        "accuracy (reference protocol)",
        &[
            series("train accuracy", "train_accuracy"),
            series("held-out accuracy", "val_accuracy"),
            series("held-out baseline", "val_baseline_accuracy"),
            series("held-out events", "val_events_accuracy"),
        ],
    );
    atomic::write(curve, svg.as_bytes()).map_err(|e| e.to_string())
}

/// `model.safetensors` → `model.best.safetensors`.
pub fn best_path(out: &Path) -> PathBuf {
    out.with_extension("best.safetensors")
}

/// Trains on the engine `options.device` picks. See [`train_with`].
pub fn train(options: &TrainOptions) -> Result<TrainReport, String> {
    let data = Dataset::load(&options.data)?;
    let (params, data, adam, start) = initial_state(options, data)?;
    let (mut backend, device) = engine::open(options.device, params, adam)?;
    eprintln!("{device}");
    train_with(&mut *backend, &data, options, start)
}

/// Where training starts.
#[derive(Clone, Debug)]
pub struct Start {
    pub epoch: usize,
    pub step: u64,
    pub early_stopping: EarlyStopping,
}

/// Fresh parameters, a checkpoint to fine-tune (`init`), or the checkpoint and Adam state of a
/// run to resume; and the dataset in the model's vocabulary.
pub fn initial_state(
    options: &TrainOptions,
    data: Dataset,
) -> Result<(Params<f32>, Dataset, Adam, Start), String> {
    let fresh_start = Start {
        epoch: 0,
        step: 0,
        early_stopping: EarlyStopping::new(options.patience),
    };
    let adam = |config: &Config| {
        let mut adam = Adam::new(config.num_params());
        adam.learning_rate = options.learning_rate;
        adam.clip = options.clip;
        adam
    };
    if options.resume {
        return resume(options, data, adam);
    }
    if let Some(init) = &options.init {
        let (params, data) = fine_tuning_start(init, data, options)?;
        let adam = adam(params.config());
        return Ok((params, data, adam, fresh_start));
    }
    let config = Config {
        vocab_size: data.vocab.len(),
        hidden: options.hidden,
        layers: options.layers,
        dropout: options.dropout,
    };
    let params = Params::init(config, &mut StdRng::seed_from_u64(options.seed));
    Ok((params, data, adam(&config), fresh_start))
}

fn resume(
    options: &TrainOptions,
    data: Dataset,
    adam: impl Fn(&Config) -> Adam,
) -> Result<(Params<f32>, Dataset, Adam, Start), String> {
    let out = options.out.display();
    let saved = checkpoint::load(&options.out).map_err(|e| format!("--resume: {e}"))?;
    let vocab = Vocabulary::from_ordered(saved.vocab.clone())
        .ok_or_else(|| format!("--resume: {out} repeats a symbol in its vocabulary"))?;
    let data = in_vocabulary(data, &vocab, false)
        .map_err(|unknown| format!("--resume: {out} does not know {unknown}"))?;
    let model = saved.config.model();
    let wanted = (
        options.hidden,
        options.layers,
        options.dropout,
        options.objective,
    );
    if options.init.is_none()
        && (
            model.hidden,
            model.layers,
            model.dropout,
            saved.config.objective,
        ) != wanted
    {
        return Err(format!(
            "--resume: {out} has layers {}, hidden {}, dropout {}, objective {:?}; pass the same options to resume",
            model.layers, model.hidden, model.dropout, saved.config.objective
        ));
    }
    let mut adam = adam(&model);
    let adam_path = checkpoint::adam_path(&options.out);
    adam.state = checkpoint::load_adam(&adam_path, model.num_params())
        .map_err(|e| format!("--resume: {e}"))?;
    if adam.state.step != saved.config.step {
        return Err(format!(
            "--resume: {} is at step {} but {out} at step {}",
            adam_path.display(),
            adam.state.step,
            saved.config.step
        ));
    }
    // The held-out losses logged so far decide the best epoch, as if training had not stopped.
    let mut early_stopping = EarlyStopping::new(options.patience);
    let log = fs::read_to_string(metrics_path(options)).unwrap_or_default();
    for line in log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        if let (Some(epoch), Some(loss)) = (line["epoch"].as_u64(), line["val_loss"].as_f64()) {
            if (epoch as usize) <= saved.config.epoch {
                early_stopping.observe(epoch as usize, loss);
            }
        }
    }
    let start = Start {
        epoch: saved.config.epoch,
        step: saved.config.step,
        early_stopping,
    };
    Ok((saved.params, data, adam, start))
}

/// The checkpoint to fine-tune, its vocabulary extended by the corpus's new symbols if allowed.
fn fine_tuning_start(
    init: &Path,
    data: Dataset,
    options: &TrainOptions,
) -> Result<(Params<f32>, Dataset), String> {
    let saved = checkpoint::load(init).map_err(|e| format!("--init: {e}"))?;
    let mut symbols = saved.vocab.clone();
    let new: Vec<String> = data
        .vocab
        .symbols()
        .iter()
        .filter(|s| !saved.vocab.contains(s))
        .cloned()
        .collect();
    if !new.is_empty() && !options.extend_vocab {
        return Err(format!(
            "--init: {} does not know the symbols {} of {}; pass --extend-vocab to add them",
            init.display(),
            new.join(" "),
            options.data.display()
        ));
    }
    symbols.extend(new.iter().cloned());
    let vocab = Vocabulary::from_ordered(symbols)
        .ok_or_else(|| format!("--init: {} repeats a symbol", init.display()))?;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let params = saved.params.with_extra_symbols(new.len(), &mut rng);
    let data = in_vocabulary(data, &vocab, true).expect("every symbol was added");
    Ok((params, data))
}

/// The dataset with the ids of `vocab`; the symbols `vocab` lacks as an error. Unless `subset`,
/// the two vocabularies must be the same.
fn in_vocabulary(data: Dataset, vocab: &Vocabulary, subset: bool) -> Result<Dataset, String> {
    if !subset && data.vocab != *vocab {
        let unknown = data
            .vocab
            .symbols()
            .iter()
            .filter(|s| vocab.id(s).is_none())
            .cloned()
            .collect::<Vec<_>>();
        return Err(if unknown.is_empty() {
            "the same symbols in another order (the dataset was preprocessed again?)".to_string()
        } else {
            format!("the symbols {}", unknown.join(" "))
        });
    }
    data.remap(vocab)
        .map_err(|unknown| format!("the symbols {}", unknown.join(" ")))
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
    HANDLER.call_once(|| {
        // Without a handler Ctrl-C still stops training, only without the last checkpoint.
        let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    });
    let train = data.split(Split::Train, options.val_fraction);
    let val = data.split(Split::Val, options.val_fraction);
    for (name, split) in [("training", &train), ("held-out", &val)] {
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
    let train_sample = sample_window_starts(train.len(), t, options.eval_windows, &mut sample_rng);
    let val_sample = sample_window_starts(val.len(), t, options.eval_windows, &mut sample_rng);

    let metrics_path = metrics_path(options);
    for path in [&options.out, &metrics_path] {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    // A device failure (out of memory, a failed launch) ends the run; the checkpoint on disk is
    // the last epoch's.
    let stopped_by = |e: &str, step: u64| {
        format!(
            "{e}; stopped at step {step}, {} keeps the last checkpoint",
            options.out.display()
        )
    };
    if !options.resume {
        fs::write(&metrics_path, "").map_err(|e| format!("{}: {e}", metrics_path.display()))?;
    }
    let mut inputs = vec![0u32; b * t];
    let mut targets = vec![0u32; b * t];
    let mut step = start.step;
    let steps_before: u64 = (0..start.epoch)
        .map(|e| steps_in_epoch(train.len(), options, e))
        .sum();
    let mut skip = step - steps_before;
    let mut early_stopping = start.early_stopping;
    let started = Instant::now();
    let mut report = TrainReport {
        stop: Stop::Finished,
        epochs: start.epoch,
        steps: step,
        best: early_stopping.best(),
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
            let stats = backend
                .train_step(&batch, options.objective, options.seed)
                .map_err(|e| {
                    bar.abandon();
                    stopped_by(&e.to_string(), step + 1)
                })?;
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
            epoch_steps += 1;
            epoch_stats.loss_sum += stats.loss_sum;
            epoch_stats.count += stats.count;
            let mean = epoch_stats.loss_sum / epoch_stats.count as f64;
            let rate = (epoch_steps * b * t) as f64 / epoch_started.elapsed().as_secs_f64();
            bar.set_message(format!("loss {mean:.4}  {rate:.0} step-samples/s"));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let epoch_seconds = epoch_started.elapsed().as_secs_f64();
        report.steps = step;
        if report.stop != Stop::Finished {
            save(&options.out, backend, data, options, epoch, step)?;
            return Ok(report);
        }
        let vocab = &data.vocab;
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            step,
            objective_loss: epoch_stats.loss_sum / epoch_stats.count.max(1) as f64,
            train: evaluate_windows(backend, vocab, &train, &train_sample, t, |_| {})
                .map_err(|e| stopped_by(&e, step))?,
            val: evaluate_windows(backend, vocab, &val, &val_sample, t, |_| {})
                .map_err(|e| stopped_by(&e, step))?,
            step_samples_per_s: (epoch_steps * b * t) as f64 / epoch_seconds,
            wall_s: started.elapsed().as_secs_f64(),
        };
        append_line(&metrics_path, &metrics.to_json().to_string())?;
        write_curve(&metrics_path, &curve_path(&options.out))?;
        save(&options.out, backend, data, options, epoch + 1, step)?;
        let (improved, stop) = early_stopping.observe(epoch + 1, metrics.val.all.loss);
        if improved {
            save(
                &best_path(&options.out),
                backend,
                data,
                options,
                epoch + 1,
                step,
            )?;
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
    epoch: usize,
    step: u64,
) -> Result<(), String> {
    let params = backend.params()?;
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
    checkpoint::save(path, &params, data.vocab.symbols(), &config).map_err(|e| e.to_string())?;
    checkpoint::save_adam(&checkpoint::adam_path(path), &backend.adam_state()?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_stopping_on_a_synthetic_curve() {
        // Held-out loss falls to its minimum at epoch 4, then rises: with patience 3 training
        // stops at epoch 7, three epochs after the best.
        let curve = [1.0, 0.8, 0.7, 0.65, 0.66, 0.7, 0.75, 0.8, 0.9];
        let mut stopping = EarlyStopping::new(Some(3));
        let decisions: Vec<(bool, bool)> = curve
            .iter()
            .enumerate()
            .map(|(i, &loss)| stopping.observe(i + 1, loss))
            .take_while(|&(_, stop)| !stop)
            .collect();
        assert_eq!(decisions.len(), 6, "epochs 1–6 continue, epoch 7 stops");
        assert_eq!(
            decisions.iter().map(|d| d.0).collect::<Vec<_>>(),
            [true, true, true, true, false, false]
        );
        assert_eq!(stopping.best(), Some((4, 0.65)));
        let mut never = EarlyStopping::new(None);
        assert!(curve
            .iter()
            .enumerate()
            .all(|(i, &l)| !never.observe(i + 1, l).1));
    }

    #[test]
    fn metrics_lines_are_flat_and_named() {
        let metrics = EpochMetrics {
            epoch: 3,
            step: 30,
            objective_loss: 1.5,
            train: Report::default(),
            val: Report::default(),
            step_samples_per_s: 1000.0,
            wall_s: 2.0,
        };
        let json = metrics.to_json();
        for name in [
            "epoch",
            "train_loss",
            "train_accuracy",
            "val_loss",
            "val_accuracy",
            "val_perplexity",
            "val_baseline_accuracy",
            "val_events_accuracy",
            "val_holds_accuracy",
            "val_excluding_delimiter_runs_accuracy",
            "step_samples_per_s",
            "wall_s",
        ] {
            assert!(json.get(name).is_some(), "{name} missing from {json}");
        }
    }
}
