//! `engine preprocess`: a corpus of `**kern`, MIDI and ABC songs → songs.jsonl, dataset.txt,
//! vocab.json.

use std::path::PathBuf;
use std::time::Instant;

use melody_engine::corpus;
use melody_engine::encode::{Options, DEFAULT_DURATIONS};
use melody_engine::kern::QuarterLength;

use super::args;

#[derive(clap::Args)]
pub struct PreprocessArgs {
    /// Directories searched recursively for *.krn, *.mid and *.abc files (a MIDI file's melody:
    /// its first track with notes; an ABC file: every X: tune, one songs.jsonl line each, with
    /// its index in the file as "tune" and its X: number as "x").
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Accepted note and rest durations in quarter lengths (decimals or fractions like 1/3).
    #[arg(long, num_args = 1.., default_values = DEFAULT_DURATIONS, value_parser = args::quarter_length)]
    durations: Vec<QuarterLength>,
    /// Grid step in quarter lengths (0.25 = a sixteenth note).
    #[arg(long, default_value = "0.25", value_parser = args::quarter_length)]
    step: QuarterLength,
    /// Restart every tied note instead of holding it (the reference work's behaviour).
    #[arg(long)]
    keep_tie_onsets: bool,
    /// Play ABC repeats (|: :|) and first/second endings ([1 [2) out, as music21's
    /// expandRepeats() does; by default a tune is read as written.
    #[arg(long)]
    expand_repeats: bool,
    /// Stop with an error at the first defective file (unreadable, not kern, not
    /// monophonic, no notes) instead of recording it as dropped.
    #[arg(long)]
    strict: bool,
}

pub fn run(args: PreprocessArgs) -> Result<(), String> {
    let start = Instant::now();
    let options = Options {
        durations: args.durations,
        step: args.step,
        keep_tie_onsets: args.keep_tie_onsets,
        expand_repeats: args.expand_repeats,
    };
    let files = corpus::find_kern_files(&args.input).map_err(|e| e.to_string())?;
    if files.is_empty() {
        return Err(format!(
            "no *.krn, *.mid or *.abc files under {}",
            args.input
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let records = corpus::process_all(&files, &options, true);
    if args.strict {
        if let Some((file, record)) = files.iter().zip(&records).find(|(_, r)| r.defective) {
            let reason = record.reason.as_deref().unwrap_or_default();
            let reason = reason
                .strip_prefix("line ")
                .map_or(reason.to_string(), |r| r.to_string());
            return Err(format!("{}:{reason} (--strict)", file.path.display()));
        }
    }
    let summary = corpus::write_outputs(&args.out, &records).map_err(|e| e.to_string())?;
    print!("{summary}");
    println!(
        "wrote {} in {:.2} s",
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
