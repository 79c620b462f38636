//! `engine`: the command line. Each subcommand parses its options and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use rand::rngs::StdRng;
use rand::SeedableRng;

use melody_engine::backend::CpuBackend;
use melody_engine::corpus;
use melody_engine::dataset::{all_window_starts, sample_window_starts, Dataset, Split};
use melody_engine::encode::{Options, DEFAULT_DURATIONS};
use melody_engine::evaluate::evaluate_windows;
use melody_engine::kern::QuarterLength;
use melody_engine::model::{checkpoint, Objective};
use melody_engine::optim::Adam;
use melody_engine::train::{self, Stop, TrainOptions};

#[derive(Parser)]
#[command(
    name = "engine",
    version,
    about = "Learns folk melodies from **kern scores and writes new ones as MIDI."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Turn a corpus of **kern songs into a dataset: songs.jsonl, dataset.txt, vocab.json.
    ///
    /// Finds *.krn files under each input directory, drops songs with a note or rest of a
    /// duration outside --durations, transposes to C major / A minor (first key designation, else
    /// a Krumhansl–Schmuckler estimate), and encodes each song on a grid of --step quarter notes:
    /// a MIDI number at a note onset, `r` at a rest onset, `_` for every further step. The
    /// dataset joins the kept songs, each followed by 64 `/`.
    Preprocess {
        /// Directories searched recursively for *.krn files.
        #[arg(long, required = true, num_args = 1..)]
        input: Vec<PathBuf>,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Accepted note and rest durations in quarter lengths (decimals or fractions like 1/3).
        #[arg(long, num_args = 1.., default_values = DEFAULT_DURATIONS, value_parser = parse_quarter_length)]
        durations: Vec<QuarterLength>,
        /// Grid step in quarter lengths (0.25 = a sixteenth note).
        #[arg(long, default_value = "0.25", value_parser = parse_quarter_length)]
        step: QuarterLength,
        /// Restart every tied note instead of holding it (the reference work's behaviour).
        #[arg(long)]
        keep_tie_onsets: bool,
        /// Stop with an error at the first defective file (unreadable, not kern, not
        /// monophonic, no notes) instead of recording it as dropped.
        #[arg(long)]
        strict: bool,
    },
    /// Train the LSTM on a preprocessed dataset; writes a safetensors checkpoint every epoch.
    ///
    /// The model: one-hot symbols → --layers LSTM layers of --hidden units → dropout → dense
    /// softmax over the vocabulary, trained with Adam. Songs are split into training and
    /// held-out sets by a fixed rule (--val-fraction). After every epoch the checkpoint (and the
    /// Adam state beside it, *.adam.safetensors) is written atomically and one JSON line is
    /// appended to the metrics log. Ctrl-C writes a checkpoint and stops; --resume continues
    /// exactly where it stopped.
    Train {
        /// Directory with dataset.txt and vocab.json (from `engine preprocess`).
        #[arg(long)]
        data: PathBuf,
        /// Checkpoint to write (safetensors; PyTorch loads it as nn.LSTM + nn.Linear).
        #[arg(long)]
        out: PathBuf,
        /// Metrics log, one JSON object per epoch [default: OUT with extension .metrics.jsonl].
        #[arg(long)]
        metrics: Option<PathBuf>,
        #[arg(long, default_value_t = 256)]
        hidden: usize,
        #[arg(long, default_value_t = 1)]
        layers: usize,
        /// Dropout probability on the last LSTM layer's output.
        #[arg(long, default_value_t = 0.2)]
        dropout: f32,
        /// `all`: a loss at every position of each window (windows tiled from a random offset
        /// each epoch); `last`: the reference work's, every window predicts only the symbol after
        /// it (64× the compute for the same predictions).
        #[arg(long, value_enum, default_value_t = ObjectiveArg::All)]
        objective: ObjectiveArg,
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        /// Symbols per training window.
        #[arg(long, default_value_t = 64)]
        window: usize,
        #[arg(long, default_value_t = 50)]
        epochs: usize,
        /// Stop after this many optimiser steps in all.
        #[arg(long)]
        max_steps: Option<u64>,
        /// Same seed, same machine → bit-identical checkpoint.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 1e-3)]
        learning_rate: f32,
        /// Scale gradients down to this global norm when larger.
        #[arg(long)]
        clip: Option<f32>,
        /// Share of songs held out for validation.
        #[arg(long, default_value_t = 0.1)]
        val_fraction: f64,
        /// Windows sampled (fixed) from each split for the per-epoch accuracies.
        #[arg(long, default_value_t = 5000)]
        eval_windows: usize,
        /// Continue from OUT and its Adam state (same options as the run that wrote them).
        #[arg(long)]
        resume: bool,
    },
    /// Loss, accuracy and perplexity of a checkpoint with the reference protocol: every window of
    /// 64 consecutive symbols, from a zero state, predicts the symbol after it.
    Evaluate {
        #[arg(long)]
        model: PathBuf,
        /// Directory with dataset.txt and vocab.json.
        #[arg(long)]
        data: PathBuf,
        /// `all`: dataset.txt as is; `train` / `val`: the songs of that side of the split.
        #[arg(long, value_enum, default_value_t = Split::All)]
        split: Split,
        /// Must match the training run's to evaluate its held-out songs.
        #[arg(long, default_value_t = 0.1)]
        val_fraction: f64,
        /// Evaluate a fixed-seed sample of this many windows instead of all.
        #[arg(long)]
        max_windows: Option<usize>,
        /// Print {"windows", "loss", "accuracy", "perplexity"} as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ObjectiveArg {
    All,
    Last,
}

impl From<ObjectiveArg> for Objective {
    fn from(arg: ObjectiveArg) -> Objective {
        match arg {
            ObjectiveArg::All => Objective::All,
            ObjectiveArg::Last => Objective::Last,
        }
    }
}

fn parse_quarter_length(text: &str) -> Result<QuarterLength, String> {
    match QuarterLength::parse(text) {
        Some(q) if !q.is_zero() => Ok(q),
        _ => Err(format!(
            "{text:?} is not a positive quarter length such as 0.25, 1.5 or 1/3"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Preprocess {
            input,
            out,
            durations,
            step,
            keep_tie_onsets,
            strict,
        } => preprocess(
            &input,
            &out,
            Options {
                durations,
                step,
                keep_tie_onsets,
            },
            strict,
        ),
        Command::Train {
            data,
            out,
            metrics,
            hidden,
            layers,
            dropout,
            objective,
            batch_size,
            window,
            epochs,
            max_steps,
            seed,
            learning_rate,
            clip,
            val_fraction,
            eval_windows,
            resume,
        } => run_train(&TrainOptions {
            data,
            out,
            metrics,
            hidden,
            layers,
            dropout,
            objective: objective.into(),
            batch_size,
            window,
            epochs,
            max_steps,
            seed,
            learning_rate,
            clip,
            val_fraction,
            eval_windows,
            resume,
            progress: true,
        }),
        Command::Evaluate {
            model,
            data,
            split,
            val_fraction,
            max_windows,
            json,
        } => evaluate(&model, &data, split, val_fraction, max_windows, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn preprocess(
    input: &[PathBuf],
    out: &PathBuf,
    options: Options,
    strict: bool,
) -> Result<(), String> {
    let start = Instant::now();
    let files = corpus::find_kern_files(input).map_err(|e| e.to_string())?;
    if files.is_empty() {
        return Err(format!(
            "no *.krn files under {}",
            input
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let records = corpus::process_all(&files, &options, true);
    if strict {
        if let Some((file, record)) = files.iter().zip(&records).find(|(_, r)| r.defective) {
            let reason = record.reason.as_deref().unwrap_or_default();
            let reason = reason
                .strip_prefix("line ")
                .map_or(reason.to_string(), |r| r.to_string());
            return Err(format!("{}:{reason} (--strict)", file.path.display()));
        }
    }
    let summary = corpus::write_outputs(out, &records).map_err(|e| e.to_string())?;
    print!("{summary}");
    println!(
        "wrote {} in {:.2} s",
        out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_train(options: &TrainOptions) -> Result<(), String> {
    let report = train::train(options)?;
    let how = match report.stop {
        Stop::Finished => "finished",
        Stop::MaxSteps => "stopped at --max-steps",
        Stop::Interrupted => "interrupted; continue with --resume",
    };
    eprintln!(
        "{how} after {} epochs, {} steps; checkpoint {}, metrics {}",
        report.epochs,
        report.steps,
        options.out.display(),
        train::metrics_path(options).display()
    );
    Ok(())
}

fn evaluate(
    model: &PathBuf,
    data_dir: &PathBuf,
    split: Split,
    val_fraction: f64,
    max_windows: Option<usize>,
    json: bool,
) -> Result<(), String> {
    let saved = checkpoint::load(model).map_err(|e| e.to_string())?;
    let data = Dataset::load(data_dir)?;
    if saved.vocab != data.vocab.symbols() {
        return Err(format!(
            "{} was trained on another vocabulary than {}",
            model.display(),
            data_dir.display()
        ));
    }
    let window = saved.config.window;
    let stream = data.split(split, val_fraction);
    let starts = match max_windows {
        Some(n) => sample_window_starts(stream.len(), window, n, &mut StdRng::seed_from_u64(0)),
        None => all_window_starts(stream.len(), window),
    };
    let num_params = saved.config.model().num_params();
    let mut backend = CpuBackend::new(saved.params, Adam::new(num_params));
    let bar = indicatif::ProgressBar::new(starts.len() as u64);
    let metrics = evaluate_windows(&mut backend, &stream, &starts, window, |n| bar.inc(n as u64));
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string(&metrics).expect("plain numbers"));
    } else {
        println!(
            "{} windows: loss {:.4}, accuracy {:.2} %, perplexity {:.3}",
            metrics.windows,
            metrics.loss,
            100.0 * metrics.accuracy,
            metrics.perplexity
        );
    }
    Ok(())
}
