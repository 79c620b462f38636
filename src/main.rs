//! `engine`: the command line. Each subcommand parses its options and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

use melody_engine::corpus;
use melody_engine::encode::{Options, DEFAULT_DURATIONS};
use melody_engine::kern::QuarterLength;

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
