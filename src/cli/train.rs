//! `engine train`: its options, and the summary printed when training ends.

use std::path::PathBuf;

use melody_engine::features::FeatureSet;
use melody_engine::model::checkpoint;
use melody_engine::train::{self, Stop, TrainOptions};

use super::args::{self, DeviceArg, ObjectiveArg};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Directory with dataset.txt and vocab.json (from `engine preprocess`).
    #[arg(long)]
    data: PathBuf,
    /// Checkpoint to write (safetensors; PyTorch loads it as nn.LSTM + nn.Linear).
    #[arg(long)]
    out: PathBuf,
    /// Metrics log, one JSON object per epoch [default: OUT with extension .metrics.jsonl].
    #[arg(long)]
    metrics: Option<PathBuf>,
    /// LSTM units per layer.
    #[arg(long, default_value_t = 256, value_parser = args::at_least_one)]
    hidden: usize,
    /// The engine: `cuda` (an NVIDIA GPU), `cpu`, or `auto` (CUDA when a device opens, else
    /// the CPU). Both write the same checkpoints and agree to rounding; an exact --resume needs
    /// the engine the run started on.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// Run the CUDA engine's weight gradients (∂L/∂W_hh, ∂L/∂W_ih above layer 0) on TF32 tensor
    /// cores (compute capability 8.0+): operands rounded to 10 mantissa bits, sums in fp32, so
    /// each element within about 2⁻¹⁰·Σ|a·b| of strict fp32. Off by default: strict fp32 is the
    /// path checked against the CPU. An error with --device cpu; a GPU without tensor cores
    /// says so and runs fp32. Checkpoints record nothing of it.
    #[arg(long)]
    tf32: bool,
    /// Stacked LSTM layers.
    #[arg(long, default_value_t = 1, value_parser = args::at_least_one)]
    layers: usize,
    /// Dropout probability on the last LSTM layer's output.
    #[arg(long, default_value_t = 0.2, value_parser = args::below_one, allow_negative_numbers = true)]
    dropout: f32,
    /// `all`: a loss at every position of each window (windows tiled from a random offset
    /// each epoch); `last`: the reference work's, every window predicts only the symbol after
    /// it (64× the compute for the same predictions).
    #[arg(long, value_enum, default_value_t = ObjectiveArg::All)]
    objective: ObjectiveArg,
    /// Windows per optimiser step.
    #[arg(long, default_value_t = 64, value_parser = args::at_least_one)]
    batch_size: usize,
    /// Symbols per training window.
    #[arg(long, default_value_t = 64, value_parser = args::at_least_one)]
    window: usize,
    /// Passes over the training windows (counted from the start when resuming). On erk the
    /// defaults pass 87 % training accuracy near epoch 22 (`--features none` near epoch 53); the
    /// held-out loss is lowest near epoch 25, the generated melodies closest to the songs from
    /// epoch 60 on (README, "Feature inputs, measured").
    #[arg(long, default_value_t = 80, value_parser = args::at_least_one)]
    epochs: usize,
    /// Stop after this many optimiser steps in all.
    #[arg(long)]
    max_steps: Option<u64>,
    /// Same seed, same machine → bit-identical checkpoint.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Adam's learning rate. 3e-3 reaches 87 % training accuracy on erk in about half the
    /// epochs that Keras's 1e-3 needs, with a lower held-out loss at its best epoch.
    #[arg(long, default_value_t = 3e-3, value_parser = args::positive, allow_negative_numbers = true)]
    learning_rate: f32,
    /// Scale gradients down to this global norm when larger.
    #[arg(long, value_parser = args::positive, allow_negative_numbers = true)]
    clip: Option<f32>,
    /// Share of songs held out for validation.
    #[arg(long, default_value_t = 0.1, value_parser = args::share)]
    val_fraction: f64,
    /// Windows sampled (fixed) from each split for the per-epoch accuracies (each costs a
    /// 64-step forward pass: 2,000 per split keep the evaluation near a fifth of an epoch).
    #[arg(long, default_value_t = 2000, value_parser = args::at_least_one)]
    eval_windows: usize,
    /// Stop after this many epochs without a new best held-out loss. The best epoch's
    /// checkpoint is kept as OUT with extension .best.safetensors either way.
    #[arg(long, value_parser = args::at_least_one)]
    patience: Option<usize>,
    /// Fine-tune: start from this checkpoint's weights, vocabulary and architecture
    /// (--hidden, --layers and --dropout come from it) on the --data corpus.
    #[arg(long)]
    init: Option<PathBuf>,
    /// With --init: give symbols the checkpoint does not know new rows and columns instead
    /// of refusing them.
    #[arg(long, requires = "init")]
    extend_vocab: bool,
    /// Continue from OUT and its Adam state (same options as the run that wrote them).
    #[arg(long, conflicts_with = "init")]
    resume: bool,
    /// Inputs besides the symbol: any of `lookback,position,mode,meter,phrase,bar,accidentals`
    /// (comma-separated), `all` (every group), or `none`, the reference model (one-hot symbols
    /// only). lookback: the symbols one and two bars before the next step and whether the
    /// current one repeats them; position: the next step's place in its bar and a downbeat flag;
    /// mode: the song's major or minor; meter: its meter's class (duple, triple, compound …);
    /// phrase: lookback four bars back, where folk songs repeat most; bar: the next step's bar
    /// number in the song (0 … 15, then later; none in a pickup); accidentals: which pitches off
    /// the scale (C♯ E♭ F♯ G♯ B♭ after the transposition to C) the song has sounded, within the
    /// last four bars or earlier, and whether it leaves the scale at all (generation draws that
    /// for each melody as often as the training songs of its mode do). Bars follow each song's meter and barlines from songs.jsonl
    /// (on the default sixteenth grid). The checkpoint records the groups and the training
    /// songs' most common meter and mode (generation's defaults); --resume and --init need the
    /// same groups. [default: every group, the bundled model's (README, "Feature inputs,
    /// measured"); with --resume or --init, the checkpoint's]
    #[arg(long, value_parser = FeatureSet::parse)]
    features: Option<FeatureSet>,
}

/// The groups asked for, else those of the checkpoint to resume or fine-tune, else every group:
/// together they write melodies closest to `erk`'s held-out songs (README, "Feature inputs").
fn features_of(args: &TrainArgs) -> Result<FeatureSet, String> {
    if let Some(set) = args.features {
        return Ok(set);
    }
    let from = match (&args.init, args.resume) {
        (Some(init), _) => init,
        (None, true) => &args.out,
        (None, false) => return Ok(FeatureSet::ALL),
    };
    let saved = checkpoint::load(from).map_err(|e| e.to_string())?;
    saved
        .config
        .feature_set()
        .map_err(|e| format!("{}: {e}", from.display()))
}

impl TryFrom<TrainArgs> for TrainOptions {
    type Error = String;

    fn try_from(args: TrainArgs) -> Result<TrainOptions, String> {
        let features = features_of(&args)?;
        Ok(TrainOptions {
            data: args.data,
            out: args.out,
            metrics: args.metrics,
            hidden: args.hidden,
            device: args.device.into(),
            tf32: args.tf32,
            layers: args.layers,
            dropout: args.dropout,
            objective: args.objective.into(),
            batch_size: args.batch_size,
            window: args.window,
            epochs: args.epochs,
            max_steps: args.max_steps,
            seed: args.seed,
            learning_rate: args.learning_rate,
            clip: args.clip,
            val_fraction: args.val_fraction,
            eval_windows: args.eval_windows,
            patience: args.patience,
            init: args.init,
            extend_vocab: args.extend_vocab,
            resume: args.resume,
            features,
            progress: true,
        })
    }
}

pub fn run(args: TrainArgs) -> Result<(), String> {
    let options = TrainOptions::try_from(args)?;
    let report = train::train(&options)?;
    let how = match report.stop {
        Stop::Finished => "finished",
        Stop::MaxSteps => "stopped at --max-steps",
        Stop::EarlyStopped => "stopped early: no better held-out loss for --patience epochs",
        Stop::Interrupted => "interrupted; continue with --resume",
    };
    eprintln!(
        "{how} after {} epochs, {} steps; checkpoint {}, metrics {}",
        report.epochs,
        report.steps,
        options.out.display(),
        train::metrics_path(&options).display()
    );
    if let Some((epoch, loss)) = report.best {
        eprintln!(
            "best held-out loss {loss:.4} at epoch {epoch}: {}",
            train::best_path(&options.out).display()
        );
    }
    Ok(())
}
