//! `engine assess`: its options, the table or JSON it prints, and the density plots.

use std::path::PathBuf;

use clap::ValueEnum;
use melody_engine::assess::{self, AssessOptions};
use melody_engine::features::parse_meter;

use super::args::{self, SplitArg};

#[derive(clap::Args)]
pub struct AssessArgs {
    /// Generated melodies: files or directories. A .txt file holds our symbols, one melody per
    /// line (as `engine generate` prints them); .mid and .krn files hold one melody each; an
    /// .abc file one per tune (X:), as written. A directory gives its .txt, .mid, .krn and .abc
    /// files; files that differ only in extension are one melody, read from the first of .txt,
    /// .mid, .krn, .abc. A file or melody (an ABC tune) that cannot be read is skipped and
    /// listed with its reason.
    #[arg(long, required = true, num_args = 1..)]
    generated: Vec<PathBuf>,
    /// Preprocessed corpus directory (dataset.txt and vocab.json) to compare with.
    #[arg(long)]
    reference: PathBuf,
    /// Which of the corpus's songs are the reference; `val`: the held-out songs, which the model
    /// never saw.
    #[arg(long, value_enum, default_value_t = SplitArg::Val)]
    split: SplitArg,
    /// Share of songs held out, as in training.
    #[arg(long, default_value_t = 0.1, value_parser = args::share)]
    val_fraction: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// The track of each MIDI file (0 = the file's first); default: its first track with notes.
    #[arg(long)]
    track: Option<usize>,
    /// Stop with an error at the first file or melody that cannot be read instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Write the distance densities as SVG, one file per feature, into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Count complete bars of this meter (e.g. 3/4), to check `engine generate --meter`: every
    /// generated melody is read in its bars from its first barline (its first step in a file
    /// without barlines, such as .txt or .mid), and so are the reference songs in this meter. A
    /// bar is complete when it lasts the whole measure and begins with a note or rest (nothing
    /// held over its barline). Default: each melody in its file's meter (`*M`), melodies
    /// without one left out, and each reference song in its own
    #[arg(long, value_parser = parse_meter)]
    meter: Option<(u32, u32)>,
}

pub fn run(args: AssessArgs) -> Result<(), String> {
    let options = AssessOptions {
        generated: args.generated,
        reference: args.reference,
        split: args.split.into(),
        val_fraction: args.val_fraction,
        track: args.track,
        strict: args.strict,
        meter: args.meter,
    };
    let report = assess::assess_files(&options)?;
    if let Some(dir) = &args.plot {
        assess::write_plots(dir, &report)?;
    }
    if args.json {
        println!("{}", report.to_json());
        return Ok(());
    }
    let split = args
        .split
        .to_possible_value()
        .expect("no variant is skipped");
    println!(
        "{} generated melodies against {} reference songs ({} songs of {})",
        report.assessment.generated_melodies,
        report.assessment.reference_melodies,
        split.get_name(),
        options.reference.display()
    );
    print!("{}", assess::table(&report.assessment, &report.ceiling));
    print!("\n{}", assess::conditioning_table(&report));
    if !report.skipped.is_empty() {
        println!("\nskipped {} (not assessed):", report.skipped.len());
        for reason in &report.skipped {
            println!("  {reason}");
        }
    }
    Ok(())
}
