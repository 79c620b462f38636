//! Generated melodies against a corpus, feature by feature, with the method of
//! Yang & Lerch 2018 ("On the evaluation of generative models in music", the mgeval toolbox).
//!
//! For each feature ([`descriptors`]) two samples of distances are drawn: intra-set, between
//! reference melodies (every melody against every other, mgeval's leave-one-out), and inter-set,
//! between every generated and every reference melody. A distance is the Euclidean norm of the
//! difference of two melodies' feature values (|a − b| for a number, the Frobenius norm for a
//! matrix). Above [`MAX_PAIRS`] pairs a side draws that many at random, with a fixed seed. The
//! two samples are compared by their kernel density estimates ([`density`]): the overlapping
//! area OA (1: the generated melodies sit among the reference ones as the reference ones sit
//! among themselves) and KL(intra ‖ inter).
//!
//! The ceiling is the same measurement for real melodies: a corpus's held-out songs as the
//! "generated" side against its training songs. It is the OA a perfect generator would reach.
//!
//! Beside the features, what `engine generate --mode` / `--meter` ask for is counted on both sets
//! ([`conditioning`]): the melodies whose key estimate is minor, and the complete bars of a meter.

pub mod conditioning;
pub mod density;
pub mod descriptors;

use std::fs;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::SeedableRng;
use rayon::prelude::*;
use serde_json::{json, Value};

use crate::atomic;
use crate::dataset::{Dataset, Split};
use crate::features::{grid_step, load_songs, measure_steps, songs_of_split};
use crate::melody::{spans, split_songs, Span};
use crate::melody_file::{self, read_each_melody, read_melodies};
use crate::plot::{line_chart, Series};
use conditioning::{count_bars, BarCount, Barring, KeyCount, Reading};
use density::{compare, Densities};
use descriptors::{Feature, MelodyFeatures, Shape};

/// Most pairs in one distance sample; larger sets are subsampled.
pub const MAX_PAIRS: usize = 10_000;
/// Seed of the pair subsample: the same sets always give the same numbers.
const PAIR_SEED: u64 = 0;

/// What to assess: generated melodies against one split of a preprocessed corpus.
#[derive(Clone, Debug)]
pub struct AssessOptions {
    /// Melody files and directories, as [`read_generated`] reads them.
    pub generated: Vec<PathBuf>,
    /// Preprocessed corpus directory (dataset.txt and vocab.json).
    pub reference: PathBuf,
    /// Which of the corpus's songs are the reference.
    pub split: Split,
    /// Share of songs held out, as in training.
    pub val_fraction: f64,
    /// The track of each MIDI file; `None`: its first track with notes.
    pub track: Option<usize>,
    /// Stop at the first file or melody that cannot be read instead of skipping it.
    pub strict: bool,
    /// Count the bars in this meter: every generated melody, and the reference songs in it.
    /// None: each melody in its file's meter, each song in its own.
    pub meter: Option<(u32, u32)>,
}

/// The generated melodies that could be read, and why the others could not.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    pub melodies: Vec<Vec<Span>>,
    /// Each melody's meter and pickup, as its file gives them.
    pub barrings: Vec<Barring>,
    /// One reason per skipped file or melody, naming the file (and line where there is one).
    pub skipped: Vec<String>,
}

/// The generated melodies' assessment, and the ceiling beside it: the corpus's held-out songs
/// against its training songs.
#[derive(Clone, Debug)]
pub struct AssessReport {
    pub assessment: Assessment,
    pub ceiling: Assessment,
    /// The generated files or melodies left out, with their reasons.
    pub skipped: Vec<String>,
    /// Minor key estimates among the generated melodies and among the reference songs.
    pub generated_keys: KeyCount,
    pub reference_keys: KeyCount,
    /// The meter the bars were read in ([`AssessOptions::meter`]); None: each melody's own.
    pub meter: Option<(u32, u32)>,
    /// The generated melodies' bars, and the reference songs' (those in [`Self::meter`] when
    /// there is one); None for a corpus without `songs.jsonl`, which records the songs' meters
    /// and barlines.
    pub generated_bars: BarCount,
    pub reference_bars: Option<BarCount>,
}

impl AssessReport {
    /// The assessment's JSON ([`Assessment::to_json`]) with the ceiling's under `ceiling`, the
    /// reasons of the skipped files under `skipped`, and the counts of [`conditioning`]:
    /// `"key_estimate": {"generated": {"minor", "melodies"}, "reference": …}` and `"bars":
    /// {"meter": "3/4" or null (each its own), "generated": {"melodies", "bars", "complete",
    /// "complete_share", "ending_on_barline", "ending_share"}, "reference": … or null}`.
    pub fn to_json(&self) -> Value {
        let mut object = self.assessment.to_json();
        object["ceiling"] = self.ceiling.to_json();
        object["skipped"] = json!(self.skipped);
        object["key_estimate"] = json!({
            "generated": self.generated_keys.to_json(),
            "reference": self.reference_keys.to_json(),
        });
        object["bars"] = json!({
            "meter": self.meter.map(meter_name),
            "generated": self.generated_bars.to_json(),
            "reference": self.reference_bars.as_ref().map(BarCount::to_json),
        });
        object
    }
}

/// One feature's verdict.
#[derive(Clone, Debug)]
pub struct FeatureResult {
    pub feature: Feature,
    /// Overlapping area of the intra-set and inter-set distance densities.
    pub overlap: f64,
    /// KL(intra ‖ inter), in nats.
    pub kl_divergence: f64,
    /// Per value (one for a number, each entry of a histogram or matrix): mean and standard
    /// deviation over the melodies of each side.
    pub generated_mean: Vec<f64>,
    pub generated_std: Vec<f64>,
    pub reference_mean: Vec<f64>,
    pub reference_std: Vec<f64>,
    /// `first`: intra-set density, `second`: inter-set density.
    pub densities: Densities,
}

/// Every feature's verdict for one generated set against one reference set.
#[derive(Clone, Debug)]
pub struct Assessment {
    pub generated_melodies: usize,
    pub reference_melodies: usize,
    /// In the order of [`Feature::ALL`].
    pub features: Vec<FeatureResult>,
}

impl Assessment {
    pub fn feature(&self, feature: Feature) -> &FeatureResult {
        self.features
            .iter()
            .find(|result| result.feature == feature)
            .expect("every feature is assessed")
    }

    /// The mean OA over all features.
    pub fn mean_overlap(&self) -> f64 {
        self.features.iter().map(|r| r.overlap).sum::<f64>() / self.features.len() as f64
    }

    /// `{"generated_melodies", "reference_melodies", "mean_oa", "features": {NAME: {"oa", "kl",
    /// "generated_mean", "generated_std", "reference_mean", "reference_std"}}}`; means of a
    /// histogram are arrays, of a matrix arrays of rows.
    pub fn to_json(&self) -> Value {
        let features: serde_json::Map<String, Value> = self
            .features
            .iter()
            .map(|r| {
                let shaped = |values: &[f64]| shaped_json(r.feature.shape(), values);
                let entry = json!({
                    "oa": r.overlap,
                    "kl": r.kl_divergence,
                    "generated_mean": shaped(&r.generated_mean),
                    "generated_std": shaped(&r.generated_std),
                    "reference_mean": shaped(&r.reference_mean),
                    "reference_std": shaped(&r.reference_std),
                });
                (r.feature.name().to_string(), entry)
            })
            .collect();
        json!({
            "generated_melodies": self.generated_melodies,
            "reference_melodies": self.reference_melodies,
            "mean_oa": self.mean_overlap(),
            "features": features,
        })
    }
}

/// Assesses `generated` against `reference`: needs one generated and two reference melodies.
pub fn assess(
    generated: &[MelodyFeatures],
    reference: &[MelodyFeatures],
) -> Result<Assessment, String> {
    if generated.is_empty() {
        return Err("no generated melodies to assess".into());
    }
    if reference.len() < 2 {
        return Err(format!(
            "{} reference melodies: the intra-set distances need at least 2",
            reference.len()
        ));
    }
    let intra_pairs = intra_set_pairs(reference.len());
    let inter_pairs = inter_set_pairs(generated.len(), reference.len());
    let features = Feature::ALL
        .par_iter()
        .map(|&feature| {
            let values = |set: &[MelodyFeatures]| -> Vec<Vec<f64>> {
                set.iter().map(|f| feature.values(f).to_vec()).collect()
            };
            let (generated_values, reference_values) = (values(generated), values(reference));
            let distances = |a: &[Vec<f64>], pairs: &[(usize, usize)]| -> Vec<f64> {
                pairs
                    .iter()
                    .map(|&(i, j)| euclidean(&a[i], &reference_values[j]))
                    .collect()
            };
            let intra = distances(&reference_values, &intra_pairs);
            let inter = distances(&generated_values, &inter_pairs);
            let comparison = compare(&intra, &inter);
            let (generated_mean, generated_std) = mean_and_std(&generated_values);
            let (reference_mean, reference_std) = mean_and_std(&reference_values);
            FeatureResult {
                feature,
                overlap: comparison.overlap,
                kl_divergence: comparison.kl_divergence,
                generated_mean,
                generated_std,
                reference_mean,
                reference_std,
                densities: comparison.densities,
            }
        })
        .collect();
    Ok(Assessment {
        generated_melodies: generated.len(),
        reference_melodies: reference.len(),
        features,
    })
}

/// Reads the generated melodies and the corpus's songs, and assesses them and the ceiling.
pub fn assess_files(options: &AssessOptions) -> Result<AssessReport, String> {
    if let Some(meter) = options
        .meter
        .filter(|&m| measure_steps(m, grid_step()).is_none())
    {
        return Err(format!(
            "--meter {}: a bar is no whole number of sixteenths",
            meter_name(meter)
        ));
    }
    let generated = read_generated(&options.generated, options.track, options.strict)?;
    let data = Dataset::load(&options.reference)?;
    let songs = |split| corpus_songs(&data, split, options.val_fraction);
    let reference = songs(options.split)?;
    let assessment = assess(&features_of(&generated.melodies), &features_of(&reference))?;
    let ceiling = assess(
        &features_of(&songs(Split::Val)?),
        &features_of(&songs(Split::Train)?),
    )
    .map_err(|e| format!("ceiling (held-out against training songs): {e}"))?;

    let (generated_reading, reference_reading) = match options.meter {
        Some(meter) => (Reading::Every(meter), Reading::Only(meter)),
        None => (Reading::Own, Reading::Own),
    };
    let generated_bars = count_bars(
        (generated.melodies.iter().map(Vec::as_slice)).zip(generated.barrings.iter().copied()),
        generated_reading,
    );
    let reference_bars = reference_barrings(options, &data, reference.len())?.map(|barrings| {
        count_bars(
            reference.iter().map(Vec::as_slice).zip(barrings),
            reference_reading,
        )
    });
    Ok(AssessReport {
        assessment,
        ceiling,
        skipped: generated.skipped,
        generated_keys: KeyCount::of(generated.melodies.iter().map(Vec::as_slice)),
        reference_keys: KeyCount::of(reference.iter().map(Vec::as_slice)),
        meter: options.meter,
        generated_bars,
        reference_bars,
    })
}

/// The meter and pickup of each of the `count` reference songs, from the corpus's `songs.jsonl`;
/// None when the corpus has none (preprocessed by an engine before it recorded them).
fn reference_barrings(
    options: &AssessOptions,
    data: &Dataset,
    count: usize,
) -> Result<Option<Vec<Barring>>, String> {
    if !options.reference.join("songs.jsonl").is_file() {
        return Ok(None);
    }
    let songs = load_songs(&options.reference, data, grid_step())?;
    let split = songs_of_split(&songs, options.split, options.val_fraction);
    assert_eq!(
        split.len(),
        count,
        "songs.jsonl is checked against dataset.txt"
    );
    Ok(Some(
        split
            .iter()
            .map(|song| Barring {
                meter: song.meter,
                pickup: song.bars.first_start(),
            })
            .collect(),
    ))
}

/// `3/4`.
fn meter_name((count, unit): (u32, u32)) -> String {
    format!("{count}/{unit}")
}

/// The terminal table: per feature OA and KL beside the ceiling's, and mean ± std of both sides.
pub fn table(assessment: &Assessment, ceiling: &Assessment) -> String {
    let mut lines = vec![
        format!(
            "ceiling: {} held-out songs against {} training songs\n",
            ceiling.generated_melodies, ceiling.reference_melodies
        ),
        format!(
            "{:<30} {:>6} {:>8} {:>7} {:>8} {:>18} {:>18}",
            "feature", "OA", "ceiling", "KL", "ceiling", "generated", "reference"
        ),
    ];
    for (result, best) in assessment.features.iter().zip(&ceiling.features) {
        let spread = |mean: &[f64], std: &[f64]| match result.feature.shape() {
            Shape::Scalar => format!("{:.3} ± {:.3}", mean[0], std[0]),
            Shape::Vector | Shape::Matrix { .. } => "(see --json)".into(),
        };
        lines.push(format!(
            "{:<30} {:>6.3} {:>8.3} {:>7.3} {:>8.3} {:>18} {:>18}",
            result.feature.name(),
            result.overlap,
            best.overlap,
            result.kl_divergence,
            best.kl_divergence,
            spread(&result.generated_mean, &result.generated_std),
            spread(&result.reference_mean, &result.reference_std),
        ));
    }
    lines.push(format!(
        "{:<30} {:>6.3} {:>8.3}",
        "mean over features",
        assessment.mean_overlap(),
        ceiling.mean_overlap()
    ));
    lines.push(
        "\nOA: overlap of the intra-set (reference) and inter-set (generated vs reference) \
         distance densities, 1 = indistinguishable; KL(intra ‖ inter) in nats."
            .into(),
    );
    lines.join("\n") + "\n"
}

/// The counts of [`conditioning`] as lines of text: minor key estimates, and complete bars.
pub fn conditioning_table(report: &AssessReport) -> String {
    let percent = |part: usize, whole: usize| {
        if whole == 0 {
            format!("{part} of {whole}")
        } else {
            format!(
                "{part} of {whole} ({:.1} %)",
                100.0 * part as f64 / whole as f64
            )
        }
    };
    let (generated, reference) = (report.generated_keys, report.reference_keys);
    let mut lines = vec![
        "minor key estimates (Krumhansl–Schmuckler from the notes, whatever key a file declares):"
            .to_string(),
        format!(
            "  generated {}, reference {}",
            percent(generated.minor, generated.melodies),
            percent(reference.minor, reference.melodies)
        ),
        match report.meter {
            Some(meter) => format!(
                "bars of {}, from each melody's first barline (reference: its songs in {0}):",
                meter_name(meter)
            ),
            None => "bars of each melody's own meter, from its first barline:".to_string(),
        },
    ];
    let bars = |side: &str, bars: &BarCount| {
        format!(
            "  {side:<10} complete bars {}, melodies ending on a barline {}",
            percent(bars.complete, bars.bars),
            percent(bars.ending_on_barline, bars.melodies)
        )
    };
    lines.push(bars("generated", &report.generated_bars));
    lines.push(match &report.reference_bars {
        Some(counts) => bars("reference", counts),
        None => "  reference: no songs.jsonl in the corpus to read its meters and barlines from \
                 (preprocess it again)"
            .to_string(),
    });
    lines.push(
        "A complete bar lasts the whole measure and begins with a note or rest; the pickup \
         before the first barline is no bar."
            .into(),
    );
    lines.join("\n") + "\n"
}

/// The features of each melody.
pub fn features_of(melodies: &[Vec<Span>]) -> Vec<MelodyFeatures> {
    melodies.iter().map(|m| MelodyFeatures::of(m)).collect()
}

/// The songs of one split of a preprocessed corpus.
pub fn corpus_songs(
    data: &Dataset,
    split: Split,
    val_fraction: f64,
) -> Result<Vec<Vec<Span>>, String> {
    let symbols: Vec<&str> = data
        .split(split, val_fraction)
        .iter()
        .map(|&id| data.vocab.symbol(id))
        .collect();
    split_songs(&symbols).into_iter().map(spans).collect()
}

/// The melodies of every file and directory given, in order (a directory's files by name). A
/// file or melody that cannot be read is skipped with its reason, or with `strict` ends the
/// reading with it. Errors when no melody is left.
pub fn read_generated(
    paths: &[PathBuf],
    track: Option<usize>,
    strict: bool,
) -> Result<Generated, String> {
    let mut generated = Generated {
        melodies: Vec::new(),
        barrings: Vec::new(),
        skipped: Vec::new(),
    };
    for path in paths {
        let files = if path.is_dir() {
            melody_files_in(path)?
        } else {
            vec![path.clone()]
        };
        for file in files {
            // A file that cannot be read is one reason; in a readable one, each melody (each
            // tune of an ABC file) is.
            let melodies = read_each_melody(&file, track, None).map(|melodies| {
                let in_file = |i: usize, e| format!("{}: melody {}: {e}", file.display(), i + 1);
                let read = melodies.into_iter().enumerate().map(|(i, melody)| {
                    let melody = melody?;
                    let barring = Barring {
                        meter: melody.meter,
                        pickup: melody.pickup,
                    };
                    Ok((spans(&melody.symbols).map_err(|e| in_file(i, e))?, barring))
                });
                read.collect::<Vec<_>>()
            });
            for melody in melodies.unwrap_or_else(|e| vec![Err(e)]) {
                match melody {
                    Ok((melody, barring)) => {
                        generated.melodies.push(melody);
                        generated.barrings.push(barring);
                    }
                    Err(reason) if strict => return Err(format!("{reason} (--strict)")),
                    Err(reason) => generated.skipped.push(reason),
                }
            }
        }
    }
    if generated.melodies.is_empty() {
        let mut message = "no melodies in the --generated files".to_string();
        for reason in &generated.skipped {
            message += &format!("\nskipped {reason}");
        }
        return Err(message);
    }
    Ok(generated)
}

/// The melodies of one file, as [`read_melodies`] reads them (a score transposed to C major /
/// A minor, every duration accepted; a rest the score writes in pieces, as across a barline,
/// comes back as that many rests).
pub fn read_melody_file(path: &Path, track: Option<usize>) -> Result<Vec<Vec<Span>>, String> {
    read_melodies(path, track, None)?
        .iter()
        .map(|symbols| spans(symbols).map_err(|e| format!("{}: {e}", path.display())))
        .collect()
}

/// A directory's melody files sorted by name, one per name without extension (the first of
/// [`melody_file::EXTENSIONS`] that is there).
fn melody_files_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<(PathBuf, usize)> = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let preference = path
            .extension()
            .and_then(|e| e.to_str())
            .and_then(|e| melody_file::EXTENSIONS.iter().position(|&known| known == e));
        if let (Some(preference), true) = (preference, path.is_file()) {
            files.push((path, preference));
        }
    }
    files.sort_by(|(a, a_rank), (b, b_rank)| {
        (a.with_extension(""), a_rank).cmp(&(b.with_extension(""), b_rank))
    });
    files.dedup_by(|(later, _), (kept, _)| later.with_extension("") == kept.with_extension(""));
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

/// Intra-set pairs of a set of n: every ordered pair (i, j), i ≠ j; pair k is i = k div (n − 1)
/// and the (k mod (n − 1))-th index other than i.
fn intra_set_pairs(n: usize) -> Vec<(usize, usize)> {
    sample_pairs(n * (n - 1), |k| {
        let (i, j) = (k / (n - 1), k % (n - 1));
        (i, if j >= i { j + 1 } else { j })
    })
}

/// Inter-set pairs (generated g, reference r) of sets of `generated` and `reference` melodies.
fn inter_set_pairs(generated: usize, reference: usize) -> Vec<(usize, usize)> {
    sample_pairs(generated * reference, |k| (k / reference, k % reference))
}

/// Pairs `pair_of(k)` for every k below `total`, or for [`MAX_PAIRS`] of them drawn without
/// replacement with a fixed seed.
fn sample_pairs(total: usize, pair_of: impl Fn(usize) -> (usize, usize)) -> Vec<(usize, usize)> {
    if total <= MAX_PAIRS {
        return (0..total).map(pair_of).collect();
    }
    let mut rng = StdRng::seed_from_u64(PAIR_SEED);
    rand::seq::index::sample(&mut rng, total, MAX_PAIRS)
        .into_iter()
        .map(pair_of)
        .collect()
}

/// √Σ (aᵢ − bᵢ)².
fn euclidean(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Per position: the mean and the (population) standard deviation over the rows.
fn mean_and_std(rows: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len() as f64;
    let width = rows.first().map_or(0, Vec::len);
    let column = |j: usize| rows.iter().map(move |row| row[j]);
    let means: Vec<f64> = (0..width).map(|j| column(j).sum::<f64>() / n).collect();
    let stds = (0..width)
        .map(|j| (column(j).map(|x| (x - means[j]).powi(2)).sum::<f64>() / n).sqrt())
        .collect();
    (means, stds)
}

/// A number, an array, or an array of rows, as the feature's shape says.
fn shaped_json(shape: Shape, values: &[f64]) -> Value {
    match shape {
        Shape::Scalar => json!(values[0]),
        Shape::Vector => json!(values),
        Shape::Matrix { side } => json!(values.chunks(side).collect::<Vec<_>>()),
    }
}

/// One SVG per feature, `DIR/NAME.svg`: the reference intra-set density, the inter-set density
/// and the ceiling's inter-set density (held-out against training songs).
pub fn write_plots(dir: &Path, report: &AssessReport) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (assessment, ceiling) = (&report.assessment, &report.ceiling);
    for (result, best) in assessment.features.iter().zip(&ceiling.features) {
        let name = result.feature.name();
        let title = format!(
            "{name}: OA {:.3} (ceiling {:.3}), KL {:.3}",
            result.overlap, best.overlap, result.kl_divergence
        );
        let series = |name, grid: &[f64], density: &[f64]| Series {
            name,
            points: grid.iter().copied().zip(density.iter().copied()).collect(),
        };
        let (ours, ceiling) = (&result.densities, &best.densities);
        let svg = line_chart(
            &title,
            "Euclidean distance between two melodies' feature values",
            "density",
            &[
                series("intra-set: reference", &ours.grid, &ours.first),
                series("inter-set: generated", &ours.grid, &ours.second),
                series("ceiling: held-out", &ceiling.grid, &ceiling.second),
            ],
        );
        let path = dir.join(format!("{name}.svg"));
        atomic::write(&path, svg.as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euclidean_mean_and_std() {
        assert_eq!(euclidean(&[0.0, 3.0], &[4.0, 0.0]), 5.0);
        let (mean, std) = mean_and_std(&[vec![1.0, 0.0], vec![3.0, 0.0]]);
        assert_eq!((mean, std), (vec![2.0, 0.0], vec![1.0, 0.0]));
    }

    #[test]
    fn small_sets_use_every_pair_and_large_ones_a_fixed_sample() {
        assert_eq!(
            intra_set_pairs(3),
            [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
        );
        assert_eq!(inter_set_pairs(2, 2), [(0, 0), (0, 1), (1, 0), (1, 1)]);
        let large = intra_set_pairs(200);
        assert_eq!(large.len(), MAX_PAIRS);
        assert!(large.iter().all(|&(i, j)| i != j && i < 200 && j < 200));
        assert_eq!(large, intra_set_pairs(200), "the same sample every time");
    }

    #[test]
    fn json_keeps_the_shape_of_each_feature() {
        assert_eq!(shaped_json(Shape::Scalar, &[2.5]), json!(2.5));
        assert_eq!(shaped_json(Shape::Vector, &[1.0, 2.0]), json!([1.0, 2.0]));
        assert_eq!(
            shaped_json(Shape::Matrix { side: 2 }, &[1.0, 2.0, 3.0, 4.0]),
            json!([[1.0, 2.0], [3.0, 4.0]])
        );
    }
}
