//! `engine generate`: its options, the checks made before generating, and the melodies printed
//! and written.

use std::path::PathBuf;

use clap::ValueEnum;
use melody_engine::encode::DELIMITER;
use melody_engine::engine;
use melody_engine::features::{self, Condition, FeatureSet, FeatureTracker, ModeClass};
use melody_engine::generate::{self, GenerateOptions};
use melody_engine::kern::KeyDesignation;
use melody_engine::melody;
use melody_engine::model::checkpoint::{self, CheckpointConfig};
use melody_engine::outputs::{self, Conditioning, Format, WriteOptions};
use melody_engine::sample::{Sampler, SamplingConfig, Temperature};

use super::args::{self, DeviceArg};

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Checkpoint [default: the bundled models/erk.safetensors].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Seed melody in the model's symbols, e.g. "67 _ 67 _ 67 _ _ 65 64 _ 64 _ 64 _ _".
    #[arg(long, conflicts_with = "seed_file")]
    seed: Option<String>,
    /// Seed from a melody file: a .krn, .mid or .abc score's first --seed-steps symbols, encoded
    /// as in preprocessing (transposed to C major, A minor or the mode's white-key tonic), or a
    /// .txt file's first melody.
    #[arg(long)]
    seed_file: Option<PathBuf>,
    /// The track of a MIDI --seed-file (0 = the file's first); default: its first with notes.
    #[arg(long, requires = "seed_file", conflicts_with = "tune")]
    track: Option<usize>,
    /// The tune of an ABC --seed-file by its index in the file (0 = the file's first tune, the
    /// default; the index, not the X: number, since X: numbers may repeat or be missing).
    #[arg(long, requires = "seed_file")]
    tune: Option<usize>,
    #[arg(long, default_value_t = 16, value_parser = args::at_least_one)]
    seed_steps: usize,
    /// Most symbols to generate after the seed.
    #[arg(long, default_value_t = 500, value_parser = args::at_least_one)]
    steps: usize,
    /// Output file; the format follows the extension (.mid, .krn, .musicxml, .txt) unless
    /// --format says.
    /// A .mid file gets a .krn beside it.
    #[arg(long, default_value = "melody.mid")]
    out: PathBuf,
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Generate N melodies at once (batched), written to --out-dir as melody-001.mid, ….
    #[arg(long, default_value_t = 1, value_parser = args::at_least_one)]
    count: usize,
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Sampling temperature T: p′ᵢ ∝ exp(log pᵢ / T). Near 0: always the most likely symbol;
    /// 1: the model's distribution; above 1: more surprising. The default, 1.2 with --top-p 0.9
    /// and --rest-penalty 0.3, gave the bundled model's melodies closest to the songs: mean OA
    /// 0.953 over nine sets of 200, with a mean longest repeat of 25.7 steps, where the model's
    /// own distribution (`--temperature 1 --top-p 1 --rest-penalty 0`) gave 0.946 and 26.1 over
    /// three (README, "Feature inputs, measured").
    #[arg(long, default_value_t = 1.2, value_parser = args::non_negative, allow_negative_numbers = true)]
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
    /// The default, 0.3, brings the bundled model's share of rest steps at the default
    /// temperature and top-p from 6 % to 5 % (the songs: 4.4 %).
    #[arg(long, default_value_t = 0.3, value_parser = args::zero_to_one, allow_negative_numbers = true)]
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
    /// Nucleus sampling: draw only from the most likely symbols that together hold this share
    /// of the probability (after temperature and biases), cutting the tail of unlikely ones.
    /// 1 keeps every symbol; 0 is greedy. A temperature above 1 spreads the pitches and the cut
    /// keeps the tail it raises from breaking repeats; the default, 0.9 with --temperature 1.2,
    /// is the sampling described under --temperature.
    #[arg(long, default_value_t = 0.9, value_parser = args::zero_to_one, allow_negative_numbers = true)]
    top_p: f32,
    /// Same seed, same melody.
    #[arg(long, default_value_t = 1)]
    rng_seed: u64,
    /// MIDI tempo in quarter notes per minute (4 … 60,000,000).
    #[arg(long, default_value_t = 120, value_parser = args::beats_per_minute)]
    bpm: u32,
    /// General MIDI program (0 = piano, 73 = flute; up to 127).
    #[arg(long, default_value_t = 0, value_parser = args::midi_program)]
    program: u8,
    /// The meter, e.g. 3/4. A model trained with --features writes its bars in it: the bar
    /// positions and lookback it reads follow it, and the MIDI, **kern and MusicXML files carry
    /// it with barlines where the model's bars fall [default: the seed score's meter, else the
    /// training songs' most common]. For the reference model it is only the meter the **kern
    /// and MusicXML output is notated in [default: 4/4].
    #[arg(long, value_parser = features::parse_meter)]
    meter: Option<(u32, u32)>,
    /// Ask a model trained with --features mode for a melody in major or minor (modes read by
    /// their third: dorian is minor). The files are written in C major or A minor (or moved
    /// there by --transpose-to) with that key signature [default: the seed score's mode, else
    /// the training songs' most common]. An error for a model that does not read the mode.
    #[arg(long, value_parser = ModeClass::parse)]
    mode: Option<ModeClass>,
    /// Give each melody the meter and mode of a training song drawn at random, so that a batch
    /// has the training songs' mixture (of 200 melodies, about 50 in 3/4 minor when a quarter of
    /// the songs are): what to compare with a corpus of mixed meters (`engine assess`). A model
    /// trained with --features records the mixture (one trained before it did: train it again);
    /// a song without a meter or mode counts as the most common one. Melody i's draw follows from
    /// --rng-seed + i alone, and `--meter M --mode X --rng-seed` that number generates the same
    /// melody alone (bit for bit on the CPU). Not with --meter or --mode, which fix one for
    /// every melody.
    #[arg(long)]
    training_mixture: bool,
    /// Move the result from C major / A minor to this key (kern designation: G, B-, f#).
    #[arg(long)]
    transpose_to: Option<String>,
    /// Draw the (first) melody as a piano roll into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// The engine: cuda, cpu, or auto (CUDA when a device opens, else the CPU).
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
}

/// `--format`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Midi,
    Kern,
    /// MusicXML 4.0, which MuseScore opens.
    #[value(name = "musicxml")]
    MusicXml,
    Txt,
}

impl From<FormatArg> for Format {
    fn from(format: FormatArg) -> Format {
        match format {
            FormatArg::Midi => Format::Midi,
            FormatArg::Kern => Format::Kern,
            FormatArg::MusicXml => Format::MusicXml,
            FormatArg::Txt => Format::Txt,
        }
    }
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

pub fn run(args: GenerateArgs) -> Result<(), String> {
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
    let (saved, vocab) = checkpoint::load_with_vocabulary(&model).map_err(|e| e.to_string())?;
    let from_symbols = |symbols: Vec<String>| generate::Seed {
        symbols,
        meter: None,
        mode: None,
        pickup: 0,
    };
    let seed_melody = match (&args.seed, &args.seed_file) {
        (Some(seed), _) => from_symbols(seed.split_whitespace().map(String::from).collect()),
        (None, Some(path)) => {
            generate::seed_from_file(path, args.track.or(args.tune), args.seed_steps)?
        }
        (None, None) => from_symbols(Vec::new()),
    };
    let seed_symbols = &seed_melody.symbols;
    melody::check_vocabulary(seed_symbols, &vocab).map_err(|e| format!("--seed: {e}"))?;
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
        top_p: args.top_p,
    };
    let sampler = Sampler::new(config, &vocab)?;
    let delimiter = vocab
        .id(DELIMITER)
        .ok_or("the model's vocabulary has no `/`")?;
    let set = (saved.config.feature_set()).map_err(|e| format!("{}: {e}", model.display()))?;
    if !set.mode && args.mode.is_some() {
        return Err(format!(
            "--mode: {} does not read the mode (its features: {set}; train with --features \
             including mode), so there is no mode to ask it for",
            model.display()
        ));
    }
    if args.training_mixture && (args.meter.is_some() || args.mode.is_some()) {
        return Err(
            "--training-mixture draws each melody's meter and mode from the training \
                    songs, so --meter and --mode would contradict it: give one or the other"
                .into(),
        );
    }
    // Each melody's meter and mode, or None for the reference model.
    let conditions: Option<Vec<((u32, u32), ModeClass)>> = match set {
        FeatureSet::NONE if args.training_mixture => {
            return Err(format!(
                "--training-mixture: {} reads no meter or mode (its features: none; train with \
                 --features), so there is no mixture to follow",
                model.display()
            ))
        }
        FeatureSet::NONE => None,
        _ => {
            let recorded = |e: String| format!("{}: {e}", model.display());
            let common_meter = saved.config.common_meter().map_err(recorded)?;
            let common_mode = saved.config.common_mode().map_err(recorded)?;
            // What a melody is asked for, else the training songs' most common.
            let or_common = |(meter, mode): Condition| {
                (
                    meter.or(common_meter).unwrap_or((4, 4)),
                    mode.or(common_mode).unwrap_or(ModeClass::Major),
                )
            };
            if args.training_mixture {
                let weighted = (saved.config.conditions().map_err(recorded)?)
                    .filter(|weighted| weighted.iter().any(|&(_, count)| count > 0))
                    .ok_or_else(|| {
                        format!(
                            "--training-mixture: {} does not record its training songs' meters \
                             and modes (trained before they were recorded): train it again",
                            model.display()
                        )
                    })?;
                let drawn = generate::draw_weighted(&weighted, args.count, args.rng_seed);
                Some(drawn.into_iter().map(or_common).collect())
            } else {
                let asked = (
                    args.meter.or(seed_melody.meter),
                    args.mode.or(seed_melody.mode),
                );
                Some(vec![or_common(asked); args.count])
            }
        }
    };
    // Each melody's tracker, and the meter and conditioning its files carry.
    let (trackers, written) = match &conditions {
        Some(conditions) => {
            let leaving = leaving_scale(set, &saved.config, conditions, args.rng_seed)
                .map_err(|e| format!("{}: {e}", model.display()))?;
            let (mut trackers, mut written) = (Vec::new(), Vec::new());
            for (&(meter, mode), leaves_scale) in conditions.iter().zip(leaving) {
                let asked = if args.training_mixture {
                    format!("meter {}/{}", meter.0, meter.1)
                } else {
                    format!("--meter {}/{}", meter.0, meter.1)
                };
                let measure = features::measure_steps(meter, features::grid_step())
                    .ok_or_else(|| format!("{asked}: not whole sixteenths"))?;
                // The seed's first step lies as far before a downbeat as its score's pickup.
                let first_position = (measure - seed_melody.pickup % measure) % measure;
                let tracker = FeatureTracker::new(
                    set,
                    &vocab,
                    delimiter,
                    meter,
                    mode,
                    first_position,
                    features::grid_step(),
                )
                .map_err(|e| format!("{asked}: {e}"))?
                .leaving_scale(leaves_scale);
                let pickup = tracker.pickup() as u32;
                trackers.push(tracker);
                written.push((meter, Some(Conditioning { mode, pickup })));
            }
            eprintln!(
                "features {set}: {}",
                describe(conditions, args.training_mixture)
            );
            (Some(trackers), written)
        }
        None => (None, vec![(args.meter.unwrap_or((4, 4)), None); args.count]),
    };
    let (mut backend, device) = engine::open_for_inference(args.device.into(), saved.params)?;
    eprintln!("{device}");
    let options = GenerateOptions {
        steps: args.steps,
        count: args.count,
        rng_seed: args.rng_seed,
        window: saved.config.window,
        features: trackers,
    };
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
    let transpose_to =
        match &args.transpose_to {
            Some(key) => Some(KeyDesignation::parse(key).ok_or_else(|| {
                format!("--transpose-to {key:?} is not a key such as G, B- or f#")
            })?),
            None => None,
        };
    for (i, (ids, &(meter, conditioning))) in melodies.iter().zip(&written).enumerate() {
        let write_options = WriteOptions {
            format: args.format.map(Format::from),
            bpm: args.bpm,
            program: args.program,
            meter,
            transpose_to,
            conditioning,
        };
        let symbols: Vec<String> = ids.iter().map(|&id| vocab.symbol(id).to_string()).collect();
        let symbols = outputs::as_written(&symbols, transpose_to)?;
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
        outputs::write_melody(&out, &symbols, &write_options)?;
        if let (Some(plot), 0) = (&args.plot, i) {
            let title = out.display().to_string();
            outputs::write_piano_roll(plot, &title, &symbols, seed.len(), meter)?;
        }
    }
    Ok(())
}

/// Whether each melody leaves the scale: drawn from its mode's training songs for a model that
/// reads `accidentals` (reported on stderr), else false, which such a model does not read.
fn leaving_scale(
    set: FeatureSet,
    config: &CheckpointConfig,
    conditions: &[((u32, u32), ModeClass)],
    rng_seed: u64,
) -> Result<Vec<bool>, String> {
    if !set.accidentals {
        return Ok(vec![false; conditions.len()]);
    }
    let shares = (conditions.iter())
        .map(|&(_, mode)| config.leaving_scale_share(mode))
        .collect::<Option<Vec<f64>>>()
        .ok_or(
            "it reads accidentals but does not record how many of its training songs leave the \
             scale (trained before that was recorded): train it again",
        )?;
    let leaving = generate::draw_leaving_scale(&shares, rng_seed);
    let count = leaving.iter().filter(|&&leaves| leaves).count();
    eprintln!(
        "{count} of {} melodies leave the scale (drawn as often as their mode's training songs do)",
        leaving.len()
    );
    Ok(leaving)
}

/// The melodies' meters and modes in words: the one all share, or for a batch in the training
/// songs' mixture, how many were drawn in each, most first.
fn describe(conditions: &[((u32, u32), ModeClass)], mixture: bool) -> String {
    if !mixture {
        let ((count, unit), mode) = conditions[0];
        return format!("melodies in {count}/{unit}, {}", mode.name());
    }
    let parts: Vec<String> = (features::tally(conditions.iter().copied()).into_iter())
        .map(|(((count, unit), mode), melodies)| {
            format!("{melodies} in {count}/{unit} {}", mode.name())
        })
        .collect();
    format!(
        "{} melodies in the training songs' meters and modes: {}",
        conditions.len(),
        parts.join(", ")
    )
}
