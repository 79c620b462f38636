//! The `engine` binary as a user runs it: the README's first command, and the errors a user sees.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use melody_engine::encode::{encode_song, Options};
use melody_engine::{corpus, kern, melody, midi, midi_in};

fn engine(args: &[&str], dir: &Path) -> Output {
    common::engine()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the engine binary runs")
}

fn temp_dir(name: &str) -> PathBuf {
    common::fresh_dir(&format!("cli-{name}"))
}

fn stdout(output: &Output) -> String {
    common::assert_succeeded(output);
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// What `engine generate` prints for 8 steps after the first `seed_steps` of `seed_file`, with
/// `extra` options, run in `dir` (into m.txt there).
fn generate_from_seed_file(
    seed_file: &str,
    seed_steps: &str,
    extra: &[&str],
    dir: &Path,
) -> String {
    let args = [
        "generate",
        "--seed-file",
        seed_file,
        "--seed-steps",
        seed_steps,
    ];
    let out = ["--steps", "8", "--out", "m.txt"];
    stdout(&engine(&[&args[..], extra, &out].concat(), dir))
}

/// `engine preprocess` of `input` into `out`, run in `dir`.
fn preprocess(input: &Path, out: &str, dir: &Path) {
    let input = input.to_str().unwrap();
    stdout(&engine(
        &["preprocess", "--input", input, "--out", out],
        dir,
    ));
}

#[test]
fn generate_with_the_bundled_model_writes_exactly_the_printed_melody() {
    let dir = temp_dir("generate");
    // Run outside the repository: the bundled model is found beside the sources.
    let out = engine(
        &[
            "generate",
            "--out",
            "melody.mid",
            "--steps",
            "120",
            "--rng-seed",
            "5",
        ],
        &dir,
    );
    let printed: Vec<String> = stdout(&out).split_whitespace().map(String::from).collect();
    assert!(printed.len() > 16, "{printed:?}");

    // Read back as preprocessing reads a MIDI file (every duration accepted): transposed by the
    // shift its estimated key asks for.
    let song = midi_in::parse(&fs::read(dir.join("melody.mid")).unwrap(), None).unwrap();
    let every_duration = Options {
        durations: song.events.iter().map(|e| e.duration).collect(),
        ..Options::default()
    };
    let from_midi = encode_song(&song, &every_duration).unwrap();
    assert_eq!(
        from_midi.symbols,
        melody::transpose(&printed, from_midi.shift).unwrap(),
        "the MIDI file holds the printed melody"
    );
    let song = kern::parse(&fs::read(dir.join("melody.krn")).unwrap()).unwrap();
    let reencoded = encode_song(&song, &Options::default()).unwrap();
    // A long rest is written as several kern rests; merged, they read back as one.
    assert_eq!(
        melody::merge_rests(&reencoded.symbols),
        printed,
        "the kern file holds the melody"
    );

    let again = engine(
        &[
            "generate",
            "--out",
            "again.mid",
            "--steps",
            "120",
            "--rng-seed",
            "5",
        ],
        &dir,
    );
    assert_eq!(
        stdout(&again).split_whitespace().collect::<Vec<_>>(),
        printed,
        "same seed, same melody"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// The default sampling is T 1.2 with nucleus 0.9 and rest penalty 0.3 (README, "Feature
/// inputs, measured"): the same melody as asking for them, another than without any one of
/// them.
#[test]
fn generate_samples_at_temperature_1_2_top_p_0_9_rest_penalty_0_3_by_default() {
    let dir = temp_dir("sampling-defaults");
    let melody = |flags: &[&str]| {
        let common = [
            "generate", "--device", "cpu", "--steps", "200", "--out", "m.mid",
        ];
        stdout(&engine(&[&common[..], flags].concat(), &dir))
    };
    let default = melody(&[]);
    let asked = [
        "--temperature",
        "1.2",
        "--top-p",
        "0.9",
        "--rest-penalty",
        "0.3",
    ];
    assert_eq!(default, melody(&asked));
    // Each value in turn as the model's own distribution has it: T 1, every symbol, no penalty.
    for (value, neutral) in [(1, "1"), (3, "1"), (5, "0")] {
        let mut other = asked;
        other[value] = neutral;
        assert_ne!(default, melody(&other), "{other:?}");
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn generate_rejects_symbols_outside_the_vocabulary() {
    let dir = temp_dir("bad-seed");
    let out = engine(
        &["generate", "--seed", "60 _ 130 x 62", "--out", "m.mid"],
        &dir,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("130") && err.contains("\"x\""), "{err}");
    assert!(!dir.join("m.mid").exists());
    fs::remove_dir_all(&dir).unwrap();
}

/// Sampling options out of range are refused before any work, with what was wrong; so is a
/// melody the model ends before its first note.
#[test]
fn generate_refuses_bad_options_before_generating() {
    let dir = temp_dir("bad-options");
    let cases: [(&[&str], &str); 7] = [
        (&["--temperature", "-1"], "\"-1\" is not a number ≥ 0"),
        (&["--bpm", "3"], "\"3\" is not a tempo from 4 to 60000000"),
        (&["--scale-bias", "nan"], "\"nan\" is not a number ≥ 0"),
        (
            &["--rest-penalty", "2"],
            "\"2\" is not a number from 0 to 1",
        ),
        (
            &["--dynamic-temperature", "--t-min", "2", "--t-max", "1"],
            "--t-min 2 is above --t-max 1",
        ),
        (&["--count", "3"], "--count above 1 needs --out-dir"),
        (
            &["--temperature", "0", "--min-steps", "0"],
            "melody 1: the model ended it before its first note",
        ),
    ];
    for (options, message) in cases {
        let args = [&["generate", "--device", "cpu", "--out", "m.mid"], options].concat();
        let out = engine(&args, &dir);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(message),
            "{options:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{options:?}: nothing generated");
        assert!(!dir.join("m.mid").exists(), "{options:?}: nothing written");
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// `engine train`'s numbers out of range are refused as the arguments are read.
#[test]
fn train_refuses_out_of_range_options() {
    let dir = temp_dir("train-options");
    let cases = [
        ("--hidden", "0", "\"0\" is not a whole number ≥ 1"),
        (
            "--dropout",
            "1",
            "\"1\" is not a number from 0 up to (not including) 1",
        ),
        ("--learning-rate", "-1", "\"-1\" is not a number > 0"),
        (
            "--val-fraction",
            "0",
            "\"0\" is not a number between 0 and 1 (both excluded)",
        ),
    ];
    for (option, value, message) in cases {
        let args = [
            "train",
            "--data",
            "d",
            "--out",
            "m.safetensors",
            option,
            value,
        ];
        let out = engine(&args, &dir);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{option} {value}: {err}");
        assert!(err.contains(message), "{option} {value}: {err}");
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_seed_file_starts_the_melody() {
    let dir = temp_dir("seed-file");
    fs::write(
        dir.join("seed.krn"),
        "**kern\n*G:\n4g\n4a\n8b\n8cc\n4dd\n*-\n",
    )
    .unwrap();
    let printed = generate_from_seed_file("seed.krn", "8", &[], &dir);
    // G major moves to C major: g a → 60 62.
    assert!(printed.starts_with("60 _ _ _ 62 _ _ _"), "{printed}");
    assert_eq!(fs::read_to_string(dir.join("m.txt")).unwrap(), printed);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn preprocess_strict_names_the_file_and_line() {
    let dir = temp_dir("strict");
    fs::create_dir_all(dir.join("in")).unwrap();
    fs::write(dir.join("in/good.krn"), "**kern\n*C:\n4c\n*-\n").unwrap();
    fs::write(dir.join("in/chord.krn"), "**kern\n*C:\n4c\n4c 4e\n*-\n").unwrap();
    let lenient = engine(&["preprocess", "--input", "in", "--out", "out"], &dir);
    assert!(stdout(&lenient).starts_with("2 files: 1 kept, 1 dropped"));
    let strict = engine(
        &["preprocess", "--input", "in", "--out", "strict", "--strict"],
        &dir,
    );
    assert!(!strict.status.success());
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(err.contains("chord.krn:4: not monophonic"), "{err}");
    assert!(!dir.join("strict/dataset.txt").exists(), "nothing written");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn assess_skips_a_file_it_cannot_use_and_strict_stops_at_it() {
    let dir = temp_dir("assess-skip");
    let corpus = common::corpus("assess-skip");
    fs::create_dir_all(dir.join("gen")).unwrap();
    fs::write(dir.join("gen/a.txt"), "60 _ 62 _ 64 _\n67 _ 65 _\n").unwrap();
    fs::write(
        dir.join("gen/b.krn"),
        "**kern\n*C:\n4c\n12d\n12e\n12f\n*-\n",
    )
    .unwrap();
    fs::write(dir.join("gen/c.mid"), b"MThd not really").unwrap();
    let melody = ["60", "_", "64", "_", "67", "_", "_", "_"];
    fs::write(
        dir.join("gen/d.mid"),
        midi::write_midi(&melody, 120, 0, midi::Signatures::default()).unwrap(),
    )
    .unwrap();
    let corpus = corpus.to_str().unwrap();
    let args = ["assess", "--generated", "gen", "--reference", corpus];
    let table = stdout(&engine(&args, &dir));
    assert!(table.starts_with("3 generated melodies"), "{table}");
    assert!(table.contains("skipped 2 (not assessed):"), "{table}");
    assert!(
        table.contains("b.krn: duration 1/3 is not a whole number of 0.25-quarter steps (line 4)"),
        "{table}"
    );
    assert!(table.contains("c.mid: not a MIDI file"), "{table}");

    let json = stdout(&engine(&[&args[..], &["--json"]].concat(), &dir));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["generated_melodies"], 3);
    assert_eq!(json["skipped"].as_array().unwrap().len(), 2);

    let strict = engine(&[&args[..], &["--strict"]].concat(), &dir);
    assert_eq!(strict.status.code(), Some(1));
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(
        err.contains("b.krn: duration 1/3") && err.contains("(--strict)"),
        "{err}"
    );
    fs::remove_dir_all(corpus).unwrap();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn preprocess_reads_midi_files_beside_kern_files() {
    let dir = temp_dir("preprocess-midi");
    fs::create_dir_all(dir.join("in")).unwrap();
    fs::write(dir.join("in/a.krn"), "**kern\n*C:\n4c\n4e\n*-\n").unwrap();
    let melody = ["60", "_", "_", "_", "64", "_", "r", "_"];
    fs::write(
        dir.join("in/b.mid"),
        midi::write_midi(&melody, 120, 0, midi::Signatures::default()).unwrap(),
    )
    .unwrap();
    fs::write(dir.join("in/c.mid"), b"not MIDI").unwrap();
    let out = engine(&["preprocess", "--input", "in", "--out", "out"], &dir);
    assert!(stdout(&out).starts_with("3 files: 2 kept, 1 dropped"));
    let songs = fs::read_to_string(dir.join("out/songs.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = songs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[1]["file"], "b.mid");
    assert_eq!(lines[1]["encoding"], "60 _ _ _ 64 _ r _");
    assert_eq!(lines[2]["kept"], false);
    assert!(lines[2]["reason"]
        .as_str()
        .unwrap()
        .starts_with("not a MIDI file"));
    fs::remove_dir_all(&dir).unwrap();
}

/// The issue's case: the kinder collection holds triplets, which the erk corpus never has.
#[test]
fn assess_of_the_kinder_collection_completes_and_lists_its_triplets() {
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let dir = temp_dir("assess-kinder");
    let essen = shared.join("data/essen/deutschl");
    let erk = essen.join("erk");
    preprocess(&erk, "erk", &dir);
    let kinder = essen.join("kinder");
    let out = engine(
        &[
            "assess",
            "--generated",
            kinder.to_str().unwrap(),
            "--reference",
            "erk",
        ],
        &dir,
    );
    let table = stdout(&out);
    assert!(
        table.contains(
            "kindr053.krn: duration 1/3 is not a whole number of 0.25-quarter steps (line 13)"
        ),
        "{table}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// A MIDI seed in another program's conventions: format 0, 192 ticks per quarter, a tempo map,
/// running status, note-offs as note-ons at velocity 0, a key signature (G major) and a meter.
#[test]
fn a_midi_seed_file_from_another_program_starts_the_melody() {
    let dir = temp_dir("seed-midi");
    #[rustfmt::skip]
    let track: &[u8] = &[
        0x00, 0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20, // tempo 500000 µs per quarter
        0x00, 0xFF, 0x58, 0x04, 0x03, 0x02, 0x18, 0x08, // 3/4
        0x00, 0xFF, 0x59, 0x02, 0x01, 0x00, // one sharp, major: G major
        0x00, 0x90, 0x43, 0x50, // G4 on
        0x81, 0x40, 0x43, 0x00, // a quarter later, off (running status, velocity 0)
        0x00, 0x45, 0x50, // A4
        0x60, 0x45, 0x00, // an eighth
        0x00, 0xFF, 0x51, 0x03, 0x06, 0x1A, 0x80, // tempo 400000
        0x00, 0x90, 0x47, 0x50, // B4
        0x60, 0x47, 0x00,
        0x00, 0x48, 0x50, // C5
        0x60, 0x48, 0x00,
        0x81, 0x40, 0x4A, 0x50, // a quarter's rest, then D5
        0x00, 0xFF, 0x51, 0x03, 0x09, 0x27, 0xC0, // tempo 600000 while it sounds
        0x83, 0x00, 0x80, 0x4A, 0x00, // a half later, off (a real note-off)
        0x00, 0xFF, 0x2F, 0x00,
    ];
    let mut bytes = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\xC0MTrk".to_vec();
    bytes.extend_from_slice(&(track.len() as u32).to_be_bytes());
    bytes.extend_from_slice(track);
    fs::write(dir.join("seed.mid"), &bytes).unwrap();
    let printed = generate_from_seed_file("seed.mid", "22", &[], &dir);
    // G major moves to C major: g a b c d → 60 62 64 65 67.
    assert!(
        printed.starts_with("60 _ _ _ 62 _ 64 _ 65 _ r _ _ _ 67 _ _ _ _ _ _ _"),
        "{printed}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// `--device cuda` without a usable GPU is an error that says why, not a panic; `auto` falls back
/// to the CPU and says so. (Where a GPU opens, both run on it.)
#[test]
fn device_choice_is_reported_and_a_missing_gpu_is_a_clear_error() {
    let dir = temp_dir("device");
    let gpu = melody_engine::gpu::open();
    let cuda = engine(&["generate", "--device", "cuda", "--out", "a.mid"], &dir);
    let auto = engine(&["generate", "--steps", "8", "--out", "b.mid"], &dir);
    let auto_stderr = String::from_utf8_lossy(&auto.stderr);
    assert!(auto.status.success(), "{auto_stderr}");
    match gpu {
        Ok(_) => {
            assert!(cuda.status.success());
            assert!(auto_stderr.contains("device: CUDA"), "{auto_stderr}");
        }
        Err(reason) => {
            let stderr = String::from_utf8_lossy(&cuda.stderr);
            assert_eq!(cuda.status.code(), Some(1), "{stderr}");
            assert!(
                stderr.contains(&format!("error: --device cuda: {reason}")),
                "{stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(
                auto_stderr.contains("device: CPU, ") && auto_stderr.contains(&reason.to_string()),
                "{auto_stderr}"
            );
        }
    }
}

/// The issue's case: a model trained on O'Neill's tunes (ABC) generates from an ABC seed, the
/// tune chosen with --tune.
#[test]
fn a_model_trained_on_oneills_generates_from_an_abc_seed() {
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let dir = temp_dir("oneills");
    let oneills = shared.join("data/abc/oneills1850");
    preprocess(&oneills, "data", &dir);
    let trained = engine(
        &[
            "train",
            "--data",
            "data",
            "--out",
            "m.safetensors",
            "--hidden",
            "16",
            "--layers",
            "1",
            "--window",
            "32",
            "--batch-size",
            "4",
            "--max-steps",
            "3",
        ],
        &dir,
    );
    stdout(&trained);
    // The first kept tune after the file's first, as preprocessing encodes it.
    let seed = oneills.join("0001-0050.abc");
    let files = corpus::find_kern_files(std::slice::from_ref(&oneills)).unwrap();
    let file = files.iter().find(|f| f.path == seed).unwrap();
    let record = corpus::process_file(file, &Options::default())
        .into_iter()
        .find(|r| r.kept && r.tune > Some(0))
        .unwrap();
    let tune = record.tune.unwrap().to_string();
    let printed = generate_from_seed_file(
        seed.to_str().unwrap(),
        "16",
        &["--model", "m.safetensors", "--tune", &tune],
        &dir,
    );
    let symbols: Vec<&str> = record.encoding.as_deref().unwrap().split(' ').collect();
    let head = symbols[..16].join(" ");
    assert!(printed.starts_with(&head), "{head}\n{printed}");
    fs::remove_dir_all(&dir).unwrap();
}
