//! `engine evaluate`: a checkpoint on a preprocessed dataset with the reference protocol, printed
//! as a table or JSON.

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::SeedableRng;

use melody_engine::dataset::{all_window_starts, sample_window_starts, Dataset};
use melody_engine::engine;
use melody_engine::evaluate::{evaluate_windows, Report};
use melody_engine::features::{self, SplitInputs};
use melody_engine::model::checkpoint;

use super::args::{self, DeviceArg, SplitArg};

#[derive(clap::Args)]
pub struct EvaluateArgs {
    #[arg(long)]
    model: PathBuf,
    /// Directory with dataset.txt and vocab.json, and songs.jsonl for a model with --features.
    #[arg(long)]
    data: PathBuf,
    /// `all`: dataset.txt as is; `train` / `val`: the songs of that side of the split.
    #[arg(long, value_enum, default_value_t = SplitArg::All)]
    split: SplitArg,
    /// Must match the training run's to evaluate its held-out songs.
    #[arg(long, default_value_t = 0.1, value_parser = args::share)]
    val_fraction: f64,
    /// Evaluate a fixed-seed sample of this many windows instead of all.
    #[arg(long, value_parser = args::at_least_one)]
    max_windows: Option<usize>,
    /// Print {"windows", "loss", "accuracy", "perplexity"} as JSON.
    #[arg(long)]
    json: bool,
    /// The engine: cuda, cpu, or auto (CUDA when a device opens, else the CPU).
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
}

pub fn run(args: EvaluateArgs) -> Result<(), String> {
    let (saved, vocab) =
        checkpoint::load_with_vocabulary(&args.model).map_err(|e| e.to_string())?;
    let data = Dataset::load(&args.data)?
        .remap(&vocab)
        .map_err(|unknown| {
            format!(
                "{} does not know the symbols {} of {}",
                args.model.display(),
                unknown.join(" "),
                args.data.display()
            )
        })?;
    let window = saved.config.window;
    let set = saved
        .config
        .feature_set()
        .map_err(|e| format!("{}: {e}", args.model.display()))?;
    let songs = features::songs_for(&set, &args.data, &data)?;
    let split = SplitInputs::of(
        &set,
        &data,
        songs.as_deref(),
        args.split.into(),
        args.val_fraction,
    )?;
    let len = split.symbols.len();
    let starts = match args.max_windows {
        Some(n) => sample_window_starts(len, window, n, &mut StdRng::seed_from_u64(0)),
        None => all_window_starts(len, window),
    };
    let (mut backend, device) = engine::open_for_inference(args.device.into(), saved.params)?;
    eprintln!("{device}");
    let bar = indicatif::ProgressBar::new(starts.len() as u64);
    let report = evaluate_windows(&mut *backend, &data.vocab, &split, &starts, window, |n| {
        bar.inc(n as u64)
    });
    bar.finish_and_clear();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string(&report).expect("plain numbers"));
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

/// The overall figures beside the baseline, then a line per kind of target.
fn table(report: &Report) -> String {
    let mut lines = vec![format!(
        "{} windows: loss {:.4}, accuracy {:.2} %, perplexity {:.3}; baseline (`/` after `/`, else `_`) {:.2} %",
        report.all.windows,
        report.all.loss,
        100.0 * report.all.accuracy,
        report.all.perplexity,
        100.0 * report.baseline_accuracy
    )];
    for (name, m) in [
        ("without `/` runs", report.excluding_delimiter_runs),
        ("events (pitch, r)", report.events),
        ("holds (_)", report.holds),
        ("song ends", report.song_ends),
        ("`/` runs", report.delimiter_runs),
    ] {
        lines.push(format!(
            "  {name:<18} {:>7} targets  accuracy {:>6.2} %  loss {:.4}  perplexity {:.3}",
            m.windows,
            100.0 * m.accuracy,
            m.loss,
            m.perplexity
        ));
    }
    lines.join("\n") + "\n"
}
