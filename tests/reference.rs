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
