//! Our preprocessing against music21's, song for song, over all of ESAC `deutschl`
//! (`../shared/reference/deutschl.jsonl`, made by `m21_encode.py`).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use melody_engine::corpus::{find_kern_files, process_file};
use melody_engine::encode::Options;
use serde_json::Value;

fn reference(shared: &std::path::Path) -> HashMap<String, Value> {
    let text = std::fs::read_to_string(shared.join("reference/deutschl.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            (record["file"].as_str().unwrap().to_string(), record)
        })
        .collect()
}

/// Compares every file in one mode; `field` is the reference encoding for that mode.
fn compare(keep_tie_onsets: bool, field: &str) {
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let reference = reference(&shared);
    let root = shared.join("data/essen/deutschl");
    let files = find_kern_files(&[PathBuf::from(&root)]).unwrap();
    assert_eq!(files.len(), 5365);
    let options = Options {
        keep_tie_onsets,
        ..Options::default()
    };
    let mut mismatches = Vec::new();
    for file in &files {
        let ours = process_file(file, &options).remove(0);
        let theirs = &reference[&ours.file];
        let expected = (
            theirs["kept"].as_bool().unwrap(),
            theirs["reason"].as_str().map(String::from),
            theirs["tonic"].as_str().map(String::from),
            theirs["mode"].as_str().map(String::from),
            theirs["shift"].as_i64().map(|s| s as i32),
            theirs[field].as_str().map(String::from),
        );
        let actual = (
            ours.kept,
            ours.reason.clone(),
            ours.tonic.clone(),
            ours.mode.map(String::from),
            ours.shift,
            ours.encoding.clone(),
        );
        if expected != actual {
            mismatches.push(format!(
                "{}:\n  music21: {expected:?}\n  ours:    {actual:?}",
                ours.file
            ));
        }
    }
    let agree = files.len() - mismatches.len();
    println!(
        "{field}: {agree} of {} files agree with music21",
        files.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn tied_encoding_equals_music21_for_every_file() {
    compare(false, "tied");
}

#[test]
fn raw_encoding_equals_music21_for_every_file() {
    compare(true, "raw");
}

/// Bar starts come from the kern barlines: after a pickup the first bar starts at the pickup's
/// length, and a song in one meter has bars of that meter's length between its barlines, except
/// where the file's own barlines disagree with its meter or a barline stands before a pickup
/// (`=1` then a quarter in 3/4: the short first bar is the file's).
/// (`benches/peers/bar_starts_check.py` compares them with music21's measures.)
#[test]
fn bar_starts_follow_the_barlines() {
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let root = shared.join("data/essen/deutschl");
    let files = find_kern_files(&[PathBuf::from(&root)]).unwrap();
    let records: Vec<_> = files
        .iter()
        .flat_map(|file| process_file(file, &Options::default()))
        .filter(|record| record.kept)
        .collect();
    let starts = |name: &str| {
        let record = records.iter().find(|r| r.file == name).unwrap();
        record.bar_starts.clone().unwrap()
    };
    // 2/4 with an eighth's pickup; `=1` before a quarter's pickup in 3/4.
    assert_eq!(starts("erk/deut0567.krn")[..4], [2, 10, 18, 26]);
    assert_eq!(starts("allerkbd/deut3756.krn")[..4], [0, 4, 16, 28]);

    let mut regular = 0;
    let mut irregular = Vec::new();
    for record in records.iter().filter(|r| r.meter_changes.is_empty()) {
        let Some((count, unit)) = record.meter.as_deref().and_then(|m| m.split_once('/')) else {
            continue;
        };
        let bar = count.parse::<u64>().unwrap() * 16 / unit.parse::<u64>().unwrap();
        let starts = record.bar_starts.as_ref().unwrap();
        if starts.windows(2).all(|pair| pair[1] - pair[0] == bar) {
            regular += 1;
        } else {
            irregular.push(record.file.as_str());
        }
    }
    println!(
        "{regular} songs in one meter have regular bars; {} do not: {irregular:?}",
        irregular.len()
    );
    // ballad/deut3282.krn, for one: its bar 1 holds three quarters in 4/4.
    assert!(irregular.contains(&"ballad/deut3282.krn"));
    assert_eq!((regular, irregular.len()), (4559, 41));
}
