//! `engine`: the command line. Each subcommand parses its options and calls the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use rand::rngs::StdRng;
use rand::SeedableRng;

use melody_engine::args;
use melody_engine::atomic;
use melody_engine::corpus;
use melody_engine::dataset::{all_window_starts, sample_window_starts, Dataset, Split};
use melody_engine::encode::{encode_song, Vocabulary, DELIMITER};
use melody_engine::encode::{Options, DEFAULT_DURATIONS};
use melody_engine::engine::{self, Device};
use melody_engine::evaluate::evaluate_windows;
use melody_engine::generate::{self, GenerateOptions};
use melody_engine::kern::QuarterLength;
use melody_engine::kern::{self, KeyDesignation};
use melody_engine::key;
use melody_engine::melody;
use melody_engine::midi;
use melody_engine::model::checkpoint;
use melody_engine::optim::Adam;
use melody_engine::plot;
use melody_engine::sample::{Sampler, SamplingConfig, Temperature};
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
    Train(TrainOptions),
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
        #[arg(long, default_value_t = 0.1, value_parser = args::share)]
        val_fraction: f64,
        /// Evaluate a fixed-seed sample of this many windows instead of all.
        #[arg(long, value_parser = args::at_least_one)]
        max_windows: Option<usize>,
        /// Print {"windows", "loss", "accuracy", "perplexity"} as JSON.
        #[arg(long)]
        json: bool,
        /// The engine: cuda, cpu, or auto (CUDA when a device opens, else the CPU).
        #[arg(long, value_enum, default_value_t = Device::Auto)]
        device: Device,
    },
    /// Generate melodies from a seed and write them as MIDI and **kern.
    ///
    /// As the reference work: 64 `/` before the seed, each next symbol predicted from the last 64
    /// symbols from a zero state, drawn with the temperature and biases below, until `/` or
    /// --steps. Prints the whole melody (seed and generated part) as symbols on stdout; the files
    /// hold exactly that melody. Without --seed or --seed-file the melody starts from `/` alone.
    Generate(GenerateArgs),
    /// Compare generated melodies with a corpus's held-out songs, feature by feature.
    ///
    /// The method of Yang & Lerch 2018 (mgeval): per melody, pitch count and range, pitch-class
    /// histogram and transitions, average interval, note count, average inter-onset interval,
    /// note-length histogram and transitions, rest ratio, share of notes on the C major scale
    /// and longest repeat. For each feature, the distances between reference melodies
    /// (intra-set) and between generated and reference melodies (inter-set) are smoothed by a
    /// Gaussian kernel density estimate and compared: overlapping area OA (1 =
    /// indistinguishable) and KL(intra ‖ inter). Beside each result, the ceiling: the corpus's
    /// held-out songs against its training songs.
    Assess(melody_engine::assess::AssessArgs),
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Checkpoint [default: the bundled models/erk.safetensors].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Seed melody in the model's symbols, e.g. "67 _ 67 _ 67 _ _ 65 64 _ 64 _ 64 _ _".
    #[arg(long, conflicts_with = "seed_file")]
    seed: Option<String>,
    /// Seed from a **kern song: its first --seed-steps symbols, encoded as in preprocessing
    /// (transposed to C major / A minor).
    #[arg(long)]
    seed_file: Option<PathBuf>,
    #[arg(long, default_value_t = 16, value_parser = args::at_least_one)]
    seed_steps: usize,
    /// Most symbols to generate after the seed.
    #[arg(long, default_value_t = 500, value_parser = args::at_least_one)]
    steps: usize,
    /// Output file; the format follows the extension (.mid, .krn, .txt) unless --format says.
    /// A .mid file gets a .krn beside it.
    #[arg(long, default_value = "melody.mid")]
    out: PathBuf,
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Generate N melodies at once (batched), written to --out-dir as melody-001.mid, ….
    #[arg(long, default_value_t = 1, value_parser = args::at_least_one)]
    count: usize,
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Sampling temperature T: p′ᵢ ∝ exp(log pᵢ / T). Near 0: always the most likely symbol;
    /// 1: the model's distribution; above 1: more surprising.
    #[arg(long, default_value_t = 1.0, value_parser = args::non_negative, allow_negative_numbers = true)]
    temperature: f32,
    /// Follow the distribution's entropy at every step instead of a fixed T: with h = H(p)/ln V,
    /// T = t_max − h·(t_max − t_min). A confident model (low entropy, risk of loops) is sampled
    /// hotter; an undecided one (high entropy) cooler, for coherence.
    #[arg(long)]
    dynamic_temperature: bool,
    #[arg(long, default_value_t = 0.5, value_parser = args::non_negative, allow_negative_numbers = true)]
    t_min: f32,
    #[arg(long, default_value_t = 1.5, value_parser = args::non_negative, allow_negative_numbers = true)]
    t_max: f32,
    /// Down-weights rests: p(r) × (1 − penalty)^(1 + k), k = rest steps just before (0 … 1).
    #[arg(long, default_value_t = 0.0, value_parser = args::zero_to_one, allow_negative_numbers = true)]
    rest_penalty: f32,
    /// Forbid leaps larger than this many semitones from the last sounding pitch.
    #[arg(long)]
    max_leap: Option<u8>,
    /// Favour the seven tones of C major / A minor: their probability × (1 + bias).
    #[arg(long, default_value_t = 0.0, value_parser = args::non_negative, allow_negative_numbers = true)]
    scale_bias: f32,
    /// `/` (end of melody) is impossible before this many symbols, seed included. The default,
    /// two bars of 4/4, scored best against the corpus (`engine assess`, README).
    #[arg(long, default_value_t = 32)]
    min_steps: usize,
    /// Same seed, same melody.
    #[arg(long, default_value_t = 1)]
    rng_seed: u64,
    /// MIDI tempo in quarter notes per minute (4 … 60,000,000).
    #[arg(long, default_value_t = 120, value_parser = args::beats_per_minute)]
    bpm: u32,
    /// General MIDI program (0 = piano, 73 = flute; up to 127).
    #[arg(long, default_value_t = 0, value_parser = args::midi_program)]
    program: u8,
    /// Meter of the **kern output, e.g. 3/4.
    #[arg(long, default_value = "4/4", value_parser = parse_meter)]
    meter: (u32, u32),
    /// Move the result from C major / A minor to this key (kern designation: G, B-, f#).
    #[arg(long)]
    transpose_to: Option<String>,
    /// Draw the (first) melody as a piano roll into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// The engine: cuda, cpu, or auto (CUDA when a device opens, else the CPU).
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    device: Device,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Midi,
    Kern,
    Txt,
}

fn parse_meter(text: &str) -> Result<(u32, u32), String> {
    text.split_once('/')
        .and_then(|(n, d)| Some((n.parse().ok()?, d.parse().ok()?)))
        .filter(|&(n, d): &(u32, u32)| n > 0 && d > 0)
        .ok_or_else(|| format!("{text:?} is not a meter such as 4/4 or 6/8"))
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
        Command::Train(options) => run_train(&options),
        Command::Evaluate {
            model,
            data,
            split,
            val_fraction,
            max_windows,
            json,
            device,
        } => evaluate(
            &model,
            &data,
            split,
            val_fraction,
            max_windows,
            json,
            device,
        ),
        Command::Generate(args) => generate(&args),
        Command::Assess(args) => melody_engine::assess::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn preprocess(input: &[PathBuf], out: &Path, options: Options, strict: bool) -> Result<(), String> {
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
        Stop::EarlyStopped => "stopped early: no better held-out loss for --patience epochs",
        Stop::Interrupted => "interrupted; continue with --resume",
    };
    eprintln!(
        "{how} after {} epochs, {} steps; checkpoint {}, metrics {}",
        report.epochs,
        report.steps,
        options.out.display(),
        train::metrics_path(options).display()
    );
    if let Some((epoch, loss)) = report.best {
        eprintln!(
            "best held-out loss {loss:.4} at epoch {epoch}: {}",
            train::best_path(&options.out).display()
        );
    }
    Ok(())
}

fn evaluate(
    model: &Path,
    data_dir: &Path,
    split: Split,
    val_fraction: f64,
    max_windows: Option<usize>,
    json: bool,
    device: Device,
) -> Result<(), String> {
    let saved = checkpoint::load(model).map_err(|e| e.to_string())?;
    let vocab = Vocabulary::from_ordered(saved.vocab.clone())
        .ok_or_else(|| format!("{}: the vocabulary repeats a symbol", model.display()))?;
    let data = Dataset::load(data_dir)?.remap(&vocab).map_err(|unknown| {
        format!(
            "{} does not know the symbols {} of {}",
            model.display(),
            unknown.join(" "),
            data_dir.display()
        )
    })?;
    let window = saved.config.window;
    let stream = data.split(split, val_fraction);
    let starts = match max_windows {
        Some(n) => sample_window_starts(stream.len(), window, n, &mut StdRng::seed_from_u64(0)),
        None => all_window_starts(stream.len(), window),
    };
    let num_params = saved.config.model().num_params();
    let (mut backend, device) = engine::open(device, saved.params, Adam::new(num_params))?;
    eprintln!("{device}");
    let bar = indicatif::ProgressBar::new(starts.len() as u64);
    let report = evaluate_windows(&mut *backend, &data.vocab, &stream, &starts, window, |n| {
        bar.inc(n as u64)
    });
    bar.finish_and_clear();
    let report = report?;
    if json {
        println!("{}", serde_json::to_string(&report).expect("plain numbers"));
        return Ok(());
    }
    println!(
        "{} windows: loss {:.4}, accuracy {:.2} %, perplexity {:.3}; baseline (`/` after `/`, else `_`) {:.2} %",
        report.all.windows,
        report.all.loss,
        100.0 * report.all.accuracy,
        report.all.perplexity,
        100.0 * report.baseline_accuracy
    );
    for (name, m) in [
        ("without `/` runs", report.excluding_delimiter_runs),
        ("events (pitch, r)", report.events),
        ("holds (_)", report.holds),
        ("song ends", report.song_ends),
        ("`/` runs", report.delimiter_runs),
    ] {
        println!(
            "  {name:<18} {:>7} targets  accuracy {:>6.2} %  loss {:.4}  perplexity {:.3}",
            m.windows,
            100.0 * m.accuracy,
            m.loss,
            m.perplexity
        );
    }
    Ok(())
}

/// The bundled model: `models/erk.safetensors` under the working directory, else in the source
/// tree the binary was built from.
fn default_model() -> PathBuf {
    let local = PathBuf::from("models/erk.safetensors");
    if local.is_file() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/erk.safetensors")
}

fn generate(args: &GenerateArgs) -> Result<(), String> {
    if args.count > 1 && args.out_dir.is_none() {
        return Err("--count above 1 needs --out-dir".into());
    }
    if args.dynamic_temperature && args.t_min > args.t_max {
        return Err(format!(
            "--t-min {} is above --t-max {}",
            args.t_min, args.t_max
        ));
    }
    let model = args.model.clone().unwrap_or_else(default_model);
    let saved = checkpoint::load(&model).map_err(|e| e.to_string())?;
    let vocab = Vocabulary::from_ordered(saved.vocab.clone())
        .ok_or_else(|| format!("{}: the vocabulary repeats a symbol", model.display()))?;
    let seed_symbols: Vec<String> = match (&args.seed, &args.seed_file) {
        (Some(seed), _) => seed.split_whitespace().map(String::from).collect(),
        (None, Some(path)) => seed_from_kern(path, args.seed_steps)?,
        (None, None) => Vec::new(),
    };
    melody::check_vocabulary(&seed_symbols, &vocab).map_err(|e| format!("--seed: {e}"))?;
    let seed: Vec<u32> = seed_symbols
        .iter()
        .map(|s| vocab.id(s).expect("checked"))
        .collect();
    let temperature = if args.dynamic_temperature {
        Temperature::Dynamic {
            t_min: args.t_min,
            t_max: args.t_max,
        }
    } else {
        Temperature::Fixed(args.temperature)
    };
    let config = SamplingConfig {
        temperature,
        rest_penalty: args.rest_penalty,
        max_leap: args.max_leap,
        scale_bias: args.scale_bias,
        min_steps: args.min_steps,
    };
    let sampler = Sampler::new(config, &vocab)?;
    let num_params = saved.config.model().num_params();
    let (mut backend, device) = engine::open(args.device, saved.params, Adam::new(num_params))?;
    eprintln!("{device}");
    let options = GenerateOptions {
        steps: args.steps,
        count: args.count,
        rng_seed: args.rng_seed,
        window: saved.config.window,
    };
    let delimiter = vocab
        .id(DELIMITER)
        .ok_or("the model's vocabulary has no `/`")?;
    let melodies = generate::generate(&mut *backend, delimiter, &seed, &sampler, &options)?;
    // Checked before anything is printed or written, so that a batch is all there or not at all.
    let empty: Vec<String> = melodies
        .iter()
        .enumerate()
        .filter(|(_, melody)| melody.is_empty())
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    if !empty.is_empty() {
        return Err(format!(
            "melody {}: the model ended it before its first note (raise --min-steps or give a \
             --seed)",
            empty.join(", ")
        ));
    }
    let shift =
        match &args.transpose_to {
            Some(key) => melody::semitones_to(KeyDesignation::parse(key).ok_or_else(|| {
                format!("--transpose-to {key:?} is not a key such as G, B- or f#")
            })?),
            None => 0,
        };
    for (i, ids) in melodies.iter().enumerate() {
        let symbols: Vec<String> = ids.iter().map(|&id| vocab.symbol(id).to_string()).collect();
        let symbols = melody::merge_rests(&melody::transpose(&symbols, shift)?);
        println!("{}", symbols.join(" "));
        let out = match &args.out_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let extension = args.out.extension().unwrap_or_default();
                dir.join(format!("melody-{:03}", i + 1))
                    .with_extension(extension)
            }
            None => args.out.clone(),
        };
        write_melody(&out, &symbols, args, shift)?;
        if let (Some(plot), 0) = (&args.plot, i) {
            let svg = plot::piano_roll(&plot::PianoRoll {
                title: &out.display().to_string(),
                spans: &melody::spans(&symbols)?,
                seed_steps: seed.len() as u32,
                steps_per_bar: args.meter.0 * 16 / args.meter.1,
            });
            atomic::write(plot, svg.as_bytes()).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// The first `steps` symbols of a **kern song, encoded as in preprocessing.
fn seed_from_kern(path: &Path, steps: usize) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let song = kern::parse(&bytes).map_err(|e| format!("{}:{e}", path.display()))?;
    let mut encoded = encode_song(&song, &Options::default())
        .map_err(|e| format!("{}: cannot be used as a seed: {e}", path.display()))?;
    encoded.symbols.truncate(steps);
    Ok(encoded.symbols)
}

/// Writes the melody in the format the extension (or --format) names; a MIDI file gets its
/// **kern twin beside it.
fn write_melody(
    out: &Path,
    symbols: &[String],
    args: &GenerateArgs,
    shift: i32,
) -> Result<(), String> {
    let format = args
        .format
        .unwrap_or_else(|| match out.extension().and_then(|e| e.to_str()) {
            Some("krn") => Format::Kern,
            Some("txt") => Format::Txt,
            _ => Format::Midi,
        });
    let write = |path: &Path, bytes: &[u8]| atomic::write(path, bytes).map_err(|e| e.to_string());
    match format {
        Format::Midi => {
            write(out, &midi::write_midi(symbols, args.bpm, args.program)?)?;
            write(
                &out.with_extension("krn"),
                kern_text(symbols, args, shift)?.as_bytes(),
            )
        }
        Format::Kern => write(out, kern_text(symbols, args, shift)?.as_bytes()),
        Format::Txt => write(out, format!("{}\n", symbols.join(" ")).as_bytes()),
    }
}

/// The melody as **kern, with the key its notes suggest: C major or A minor before --transpose-to
/// (the Krumhansl–Schmuckler estimate decides the mode), moved with it.
fn kern_text(symbols: &[String], args: &GenerateArgs, shift: i32) -> Result<String, String> {
    let mut histogram = [0.0; 12];
    for span in melody::spans(symbols)? {
        if let Some(pitch) = span.pitch {
            histogram[(pitch as i32 - shift).rem_euclid(12) as usize] += span.steps as f64;
        }
    }
    let minor = key::estimate_from_histogram(&histogram).minor;
    let home = if minor { "a" } else { "C" };
    let key = match &args.transpose_to {
        Some(target)
            if target
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase())
                == minor =>
        {
            KeyDesignation::parse(target).expect("parsed before")
        }
        _ => KeyDesignation::parse(home).expect("static key"),
    };
    kern::write::write_kern(symbols, args.meter, key, Some("generated by melody-engine"))
}
