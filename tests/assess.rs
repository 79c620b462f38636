//! `engine assess` on small sets with known answers: identical sets, transposed copies, one
//! hand-counted melody read from each file format, and the command line end to end.

use std::fs;
use std::path::{Path, PathBuf};

use melody_engine::assess::conditioning::{BarCount, Barring};
use melody_engine::assess::descriptors::{Feature, MelodyFeatures};
use melody_engine::assess::{assess, corpus_songs, read_generated, read_melody_file};
use melody_engine::dataset::{Dataset, Split};
use melody_engine::kern::KeyDesignation;
use melody_engine::melody::{spans, symbols_of, Span};
use melody_engine::midi::{write_midi, Signatures};
use melody_engine::outputs::kern::write_kern;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod common;
use common::{engine, json_of};

/// A leading rest, the phrase 60 62 64 twice, a lone F♯ and a closing rest (26 steps).
const MELODY: &str = "r _ 60 _ _ _ 62 _ 64 _ _ _ _ 60 _ _ _ 62 _ 64 _ _ _ _ 66 r";

const PITCH_FEATURES: [Feature; 3] = [
    Feature::PitchClassHistogram,
    Feature::PitchClassTransitionMatrix,
    Feature::OnScaleShare,
];

fn words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

/// `count` random melodies on the C major scale (C4…G5): a walk of up to two scale steps at a
/// time, notes of the encoder's lengths, a rest now and then.
fn c_major_melodies(count: usize, seed: u64) -> Vec<Vec<Span>> {
    const SCALE: [u8; 12] = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79];
    const LENGTHS: [u32; 6] = [1, 2, 2, 4, 4, 8];
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let mut degree: i32 = 0;
            (0..rng.gen_range(24..48))
                .map(|_| {
                    degree = (degree + rng.gen_range(-2..=2)).clamp(0, SCALE.len() as i32 - 1);
                    Span {
                        pitch: (rng.gen::<f64>() > 0.1).then_some(SCALE[degree as usize]),
                        steps: LENGTHS[rng.gen_range(0..LENGTHS.len())],
                    }
                })
                .collect()
        })
        .collect()
}

fn transposed(melodies: &[Vec<Span>], semitones: u8) -> Vec<Vec<Span>> {
    melodies
        .iter()
        .map(|m| {
            m.iter()
                .map(|s| Span {
                    pitch: s.pitch.map(|p| p + semitones),
                    ..*s
                })
                .collect()
        })
        .collect()
}

fn features(melodies: &[Vec<Span>]) -> Vec<MelodyFeatures> {
    melodies.iter().map(|m| MelodyFeatures::of(m)).collect()
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn identical_sets_are_indistinguishable() {
    let set = features(&c_major_melodies(40, 1));
    let result = assess(&set, &set).unwrap();
    for r in &result.features {
        // The inter-set holds every intra-set distance twice plus 40 zeros (each melody
        // against itself), 2.5 % of the pairs: OA ≥ 0.975 and KL ≤ −ln 0.975 ≈ 0.025 up to
        // smoothing.
        let name = r.feature.name();
        assert!(r.overlap > 0.96, "{name}: OA {}", r.overlap);
        assert!(r.kl_divergence < 0.03, "{name}: KL {}", r.kl_divergence);
        assert_eq!(r.generated_mean, r.reference_mean, "{name}");
        assert_eq!(r.generated_std, r.reference_std, "{name}");
    }
    assert_eq!(result.generated_melodies, 40);
    assert!(result.mean_overlap() > 0.97, "{}", result.mean_overlap());
}

#[test]
fn transposed_copies_move_the_pitch_features_only() {
    let melodies = c_major_melodies(40, 2);
    let reference = features(&melodies);
    let same = assess(&reference, &reference).unwrap();
    let moved = assess(&features(&transposed(&melodies, 5)), &reference).unwrap();
    for feature in PITCH_FEATURES {
        let (before, after) = (same.feature(feature), moved.feature(feature));
        assert!(
            after.overlap < 0.6 && after.overlap < before.overlap - 0.35,
            "{}: OA {} → {}",
            feature.name(),
            before.overlap,
            after.overlap
        );
        assert!(after.kl_divergence > 0.5, "{}", feature.name());
    }
    // Up a fourth, only F (→ B♭) leaves the scale.
    let scale = moved.feature(Feature::OnScaleShare);
    assert_eq!(scale.reference_mean, [1.0]);
    assert!(scale.generated_mean[0] < 0.95 && scale.generated_mean[0] > 0.8);
    // The same melodies' rhythm, range and intervals (every feature but the pitch ones): the
    // very same distances.
    let invariant = Feature::ALL
        .into_iter()
        .filter(|f| !PITCH_FEATURES.contains(f));
    for feature in invariant {
        let (before, after) = (same.feature(feature), moved.feature(feature));
        assert_eq!(after.overlap, before.overlap, "{}", feature.name());
        assert_eq!(
            after.kl_divergence,
            before.kl_divergence,
            "{}",
            feature.name()
        );
        assert_eq!(
            after.generated_mean,
            after.reference_mean,
            "{}",
            feature.name()
        );
    }
}

#[test]
fn a_hand_counted_melody_reads_the_same_from_txt_midi_and_kern() {
    let dir = scratch_dir("assess-formats");
    let symbols = words(MELODY);
    let txt = dir.join("melody.txt");
    let mid = dir.join("melody.mid");
    let krn = dir.join("melody.krn");
    fs::write(&txt, format!("{MELODY}\n")).unwrap();
    fs::write(
        &mid,
        write_midi(&symbols, 120, 0, Signatures::default()).unwrap(),
    )
    .unwrap();
    let c_major = KeyDesignation::parse("C").unwrap();
    fs::write(
        &krn,
        write_kern(&symbols, (4, 4), 0, c_major, None).unwrap(),
    )
    .unwrap();

    let expected = spans(&symbols).unwrap();
    for path in [&txt, &mid, &krn] {
        let melodies = read_melody_file(path, None).unwrap();
        assert_eq!(
            melodies,
            std::slice::from_ref(&expected),
            "{}",
            path.display()
        );
        let f = MelodyFeatures::of(&melodies[0]);
        assert_eq!(
            [f.pitch_count, f.pitch_range, f.note_count, f.longest_repeat],
            [4.0, 6.0, 7.0, 11.0]
        );
        assert_eq!(f.average_pitch_interval, 14.0 / 6.0);
        assert_eq!(f.average_inter_onset_interval, 22.0 / 6.0);
        assert_eq!(f.rest_ratio, 3.0 / 26.0);
        assert_eq!(f.on_scale_share, 6.0 / 7.0);
        assert_eq!(f.pitch_class_histogram[6], 1.0 / 7.0, "one F♯ of 7 notes");
        assert_eq!(
            f.note_length_histogram,
            [1.0, 2.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 2.0].map(|n| n / 7.0),
            "16th, 2 8ths, 2 quarters, 2 of 5 steps"
        );
    }
}

#[test]
fn a_kern_score_in_another_key_is_moved_to_c_major_like_the_corpus() {
    let dir = scratch_dir("assess-kern-key");
    let in_g: Vec<String> = melody_engine::melody::transpose(&words(MELODY), 7).unwrap();
    let path = dir.join("in-g.krn");
    let g_major = KeyDesignation::parse("G").unwrap();
    fs::write(&path, write_kern(&in_g, (4, 4), 0, g_major, None).unwrap()).unwrap();
    let read = read_melody_file(&path, None).unwrap();
    let pitches: Vec<u8> = read[0].iter().filter_map(|s| s.pitch).collect();
    assert_eq!(pitches, [60, 62, 64, 60, 62, 64, 66]);
}

#[test]
fn a_directory_reads_each_melody_once_and_txt_lines_are_melodies() {
    let dir = scratch_dir("assess-directory");
    let symbols = words(MELODY);
    // `engine generate` writes a MIDI file and its kern twin: one melody.
    fs::write(
        dir.join("melody-001.mid"),
        write_midi(&symbols, 120, 0, Signatures::default()).unwrap(),
    )
    .unwrap();
    let c_major = KeyDesignation::parse("C").unwrap();
    fs::write(
        dir.join("melody-001.krn"),
        write_kern(&symbols, (4, 4), 0, c_major, None).unwrap(),
    )
    .unwrap();
    fs::write(dir.join("more.txt"), "60 _ 62 _\n\n64 _ _ _ / 67\n").unwrap();
    fs::write(dir.join("notes.md"), "not a melody").unwrap();
    let melodies = read_generated(std::slice::from_ref(&dir), None, false)
        .unwrap()
        .melodies;
    let texts: Vec<String> = melodies.iter().map(|m| symbols_of(m).join(" ")).collect();
    assert_eq!(texts, [MELODY, "60 _ 62 _", "64 _ _ _", "67"]);

    assert!(read_generated(&[dir.join("notes.md")], None, false)
        .unwrap_err()
        .contains("not a .txt, .mid, .krn or .abc file"));
    let empty = scratch_dir("assess-empty");
    assert_eq!(
        read_generated(&[empty], None, false).unwrap_err(),
        "no melodies in the --generated files"
    );
}

#[test]
fn each_tune_of_an_abc_file_is_its_own_melody_and_a_bad_one_skips_alone() {
    let dir = scratch_dir("assess-abc");
    let path = dir.join("tunes.abc");
    // Tune 2 holds a chord (not monophonic); tunes 1 and 3 are read, in C major.
    let abc = "X:1\nL:1/8\nK:C\nCDEF|G4|\n\nX:2\nL:1/8\nK:C\n[CEG]2 C2|\n\n\
               X:3\nL:1/8\nK:G\nGABc|d4|\n";
    fs::write(&path, abc).unwrap();
    let read = read_generated(std::slice::from_ref(&path), None, false).unwrap();
    let texts: Vec<String> = read
        .melodies
        .iter()
        .map(|m| symbols_of(m).join(" "))
        .collect();
    assert_eq!(texts, ["60 _ 62 _ 64 _ 65 _ 67 _ _ _ _ _ _ _"; 2]);
    assert_eq!(read.skipped.len(), 1);
    assert!(
        read.skipped[0].starts_with(&format!("{}:9: not monophonic", path.display())),
        "{}",
        read.skipped[0]
    );
    let strict = read_generated(&[path], None, true).unwrap_err();
    assert!(strict.contains(":9: not monophonic") && strict.ends_with("(--strict)"));
}

#[test]
fn too_few_melodies_is_an_error() {
    let one = features(&c_major_melodies(1, 3));
    assert!(assess(&[], &one).is_err());
    assert!(assess(&one, &one).unwrap_err().contains("at least 2"));
}

/// A preprocessed corpus (dataset.txt, vocab.json) of these songs.
fn write_corpus(dir: &Path, songs: &[Vec<Span>]) {
    let stream: Vec<String> = songs
        .iter()
        .flat_map(|song| {
            let mut symbols = symbols_of(song);
            symbols.extend(std::iter::repeat_n("/".to_string(), 64));
            symbols
        })
        .collect();
    common::write_dataset(dir, &stream);
}

#[test]
fn the_command_prints_json_with_the_ceiling_and_writes_one_plot_per_feature() {
    let corpus = scratch_dir("assess-corpus");
    write_corpus(&corpus, &c_major_melodies(60, 4));
    let generated = scratch_dir("assess-generated");
    let lines: Vec<String> = transposed(&c_major_melodies(12, 5), 5)
        .iter()
        .map(|m| symbols_of(m).join(" "))
        .collect();
    fs::write(generated.join("batch.txt"), lines.join("\n")).unwrap();
    let plots = scratch_dir("assess-plots");

    let json = json_of(
        engine()
            .args(["assess", "--generated"])
            .arg(&generated)
            .arg("--reference")
            .arg(&corpus)
            .arg("--json")
            .arg("--plot")
            .arg(&plots),
    );
    // 60 songs, every tenth held out: 6 reference songs, 54 training songs.
    assert_eq!(json["generated_melodies"], 12);
    assert_eq!(json["reference_melodies"], 6);
    assert_eq!(json["ceiling"]["generated_melodies"], 6);
    assert_eq!(json["ceiling"]["reference_melodies"], 54);
    for feature in Feature::ALL {
        let entry = &json["features"][feature.name()];
        for key in ["oa", "kl", "generated_mean", "generated_std"] {
            assert!(!entry[key].is_null(), "{} {key}", feature.name());
        }
        assert!(json["ceiling"]["features"][feature.name()]["oa"].is_f64());
        assert!(plots.join(format!("{}.svg", feature.name())).is_file());
    }
    let histogram = &json["features"]["pitch_class_histogram"];
    assert_eq!(histogram["reference_mean"].as_array().unwrap().len(), 12);
    let matrix = &json["features"]["pitch_class_transition_matrix"]["generated_mean"];
    assert_eq!(matrix.as_array().unwrap().len(), 12);
    assert_eq!(matrix[0].as_array().unwrap().len(), 12);
    // Transposed up a fourth: off the scale, unlike the corpus and its held-out songs.
    let oa = |side: &serde_json::Value| side["features"]["on_scale_share"]["oa"].as_f64().unwrap();
    assert!(oa(&json) < 0.2 && oa(&json["ceiling"]) > 0.9);

    let table = engine()
        .args(["assess", "--generated"])
        .arg(generated.join("batch.txt"))
        .arg("--reference")
        .arg(&corpus)
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("ceiling: 6 held-out songs against 54 training songs"));
    assert!(table.contains("mean over features"));
    assert_eq!(
        table
            .lines()
            .filter(|l| l.starts_with("pitch_class_"))
            .count(),
        2
    );
}

#[test]
fn assessment_json_has_one_entry_per_feature() {
    let set = features(&c_major_melodies(5, 6));
    let json = assess(&set, &set).unwrap().to_json();
    assert_eq!(
        json["features"].as_object().unwrap().len(),
        Feature::ALL.len()
    );
    assert_eq!(json["reference_melodies"], 5);
}

/// A 3/4 melody after a quarter's pickup: | 72 71 69 | 67 half, 64 | held over the barline, 60
/// quarter, and it stops 8 steps into that bar. Bars at steps 4, 16, 28; the last two begin
/// with a held note and stop short.
const WALTZ_WITH_PICKUP: &str =
    "67 _ _ _ 72 _ _ _ 71 _ _ _ 69 _ _ _ 67 _ _ _ _ _ _ _ 64 _ _ _ _ _ _ _ 60 _ _ _";
/// Two whole 4/4 bars: C half, E half | G whole. In 3/4 bars from step 0: 0 begins a note, 12
/// holds the E, 24 holds the G and stops short.
const MARCH: &str = "60 _ _ _ _ _ _ _ 64 _ _ _ _ _ _ _ 67 _ _ _ _ _ _ _ _ _ _ _ _ _ _ _";
/// An A minor arpeggio, no meter: in 3/4 bars 0 and 12 begin with notes, 24 stops short.
const A_MINOR: &str = "57 _ _ _ _ _ _ _ _ _ _ _ 60 _ _ _ 64 _ _ _ 57 _ _ _ _ _ _ _ _ _ _ _";

/// A directory of the three melodies above: two kern files as `engine generate` writes them
/// and a text file.
fn barred_melodies() -> PathBuf {
    let dir = scratch_dir("assess-bars");
    let c_major = KeyDesignation::parse("C").unwrap();
    let waltz = write_kern(&words(WALTZ_WITH_PICKUP), (3, 4), 4, c_major, None).unwrap();
    fs::write(dir.join("melody-001.krn"), waltz).unwrap();
    let march = write_kern(&words(MARCH), (4, 4), 0, c_major, None).unwrap();
    fs::write(dir.join("melody-002.krn"), march).unwrap();
    fs::write(dir.join("melody-003.txt"), A_MINOR).unwrap();
    dir
}

#[test]
fn each_generated_melody_keeps_its_files_meter_and_pickup() {
    let read = read_generated(&[barred_melodies()], None, false).unwrap();
    let texts: Vec<String> = read
        .melodies
        .iter()
        .map(|m| symbols_of(m).join(" "))
        .collect();
    assert_eq!(texts, [WALTZ_WITH_PICKUP, MARCH, A_MINOR]);
    let barring = |meter, pickup| Barring { meter, pickup };
    assert_eq!(
        read.barrings,
        [
            barring(Some((3, 4)), 4),
            barring(Some((4, 4)), 0),
            barring(None, 0)
        ]
    );
}

/// `engine assess --json` of the barred melodies against `corpus`, with `args`.
fn assess_json(corpus: &Path, args: &[&str]) -> serde_json::Value {
    json_of(
        engine()
            .args(["assess", "--json", "--generated"])
            .arg(barred_melodies())
            .arg("--reference")
            .arg(corpus)
            .args(args),
    )
}

#[test]
fn the_command_counts_minor_estimates_and_complete_bars() {
    let corpus = scratch_dir("assess-bars-corpus");
    let songs = c_major_melodies(60, 7);
    write_corpus(&corpus, &songs);
    // Without songs.jsonl the corpus's meters are unknown: no reference bars.
    let json = assess_json(&corpus, &["--meter", "3/4"]);
    assert_eq!(json["bars"]["reference"], serde_json::Value::Null);
    assert_eq!(
        json["key_estimate"]["generated"],
        serde_json::json!({"minor": 1, "melodies": 3})
    );

    // Songs 9, 29 and 49 (held-out songs 0, 2 and 4) in 3/4, the others in 2/4.
    let lines: Vec<String> = songs
        .iter()
        .enumerate()
        .map(|(i, song)| {
            let meter = if i % 20 == 9 { "3/4" } else { "2/4" };
            serde_json::json!({
                "kept": true,
                "encoding": symbols_of(song).join(" "),
                "meter": meter,
                "bar_starts": [0],
                "mode": null,
            })
            .to_string()
        })
        .collect();
    fs::write(corpus.join("songs.jsonl"), lines.join("\n") + "\n").unwrap();
    let held_out = corpus_songs(&Dataset::load(&corpus).unwrap(), Split::Val, 0.1).unwrap();
    let mut in_3_4 = BarCount::default();
    for i in [0, 2, 4] {
        in_3_4 += BarCount::of(&held_out[i], 12, 0);
    }
    assert_eq!(in_3_4.melodies, 3);

    let json = assess_json(&corpus, &["--meter", "3/4"]);
    let bars = &json["bars"];
    assert_eq!(bars["meter"], "3/4");
    // Every generated melody in 3/4: 2 + 1 + 2 complete bars of 3 each, none ending on one.
    let generated = &bars["generated"];
    assert_eq!(
        (
            &generated["melodies"],
            &generated["bars"],
            &generated["complete"]
        ),
        (&3.into(), &9.into(), &5.into())
    );
    assert_eq!(generated["ending_on_barline"], 0);
    assert_eq!(generated["complete_share"].as_f64().unwrap(), 5.0 / 9.0);
    assert_eq!(bars["reference"], in_3_4.to_json());
    let reference_keys = &json["key_estimate"]["reference"];
    assert_eq!(reference_keys["melodies"], 6);

    // Each in its own meter: the waltz as above, the march in two whole 4/4 bars that end on a
    // barline, the text melody (no meter) left out; the reference songs in 3/4 and 2/4.
    let json = assess_json(&corpus, &[]);
    let bars = &json["bars"];
    assert_eq!(bars["meter"], serde_json::Value::Null);
    assert_eq!(
        bars["generated"],
        BarCount {
            melodies: 2,
            bars: 5,
            complete: 4,
            ending_on_barline: 1
        }
        .to_json()
    );
    let mut own = in_3_4;
    for i in [1, 3, 5] {
        own += BarCount::of(&held_out[i], 8, 0);
    }
    assert_eq!(bars["reference"], own.to_json());

    let error = engine()
        .args([
            "assess",
            "--meter",
            "3/5",
            "--generated",
            "x",
            "--reference",
            "y",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&error.stderr).contains("not a meter such as 4/4"));
}
