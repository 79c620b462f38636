//! MusicXML output: the measures, notes, ties and rests of written melodies, the key after
//! `--transpose-to`, and music21 reading a score back to the melody (when python3 has it).

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use melody_engine::kern::KeyDesignation;
use melody_engine::outputs::musicxml::write_musicxml;
use melody_engine::outputs::{self, Format, WriteOptions};

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(String::from).collect()
}

fn key(text: &str) -> KeyDesignation {
    KeyDesignation::parse(text).unwrap()
}

/// The text of the first `<name>…</name>` in `xml`.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..end])
}

/// Each measure as its notes: `C#4 quarter.` (pitch or `r`, type, a dot per `<dot/>`), `!` when
/// it shows an accidental, `(` when a tie starts and `)` when one stops. Checks that every
/// duration (in divisions of a sixteenth) is the one its type says.
fn measures(xml: &str) -> Vec<Vec<String>> {
    assert_eq!(element(xml, "divisions"), Some("4"));
    xml.split("<measure number=")
        .skip(1)
        .map(|measure| {
            measure
                .split("<note>")
                .skip(1)
                .map(|note| {
                    let note = &note[..note.find("</note>").unwrap()];
                    let kind = element(note, "type").unwrap();
                    let dots = note.matches("<dot/>").count();
                    let length = match kind {
                        "whole" => 16,
                        "half" => 8,
                        "quarter" => 4,
                        "eighth" => 2,
                        "16th" => 1,
                        other => panic!("type {other}"),
                    } * [2, 3][dots]
                        / [2, 2][dots];
                    let duration: u32 = element(note, "duration").unwrap().parse().unwrap();
                    assert_eq!(duration, length, "{note}");
                    let pitch = match element(note, "pitch") {
                        None => "r".to_string(),
                        Some(pitch) => {
                            let alter = element(pitch, "alter").map_or(0, |a| a.parse().unwrap());
                            let accidental = ["bb", "b", "", "#", "##"][(alter + 2) as usize];
                            let step = element(pitch, "step").unwrap();
                            format!("{step}{accidental}{}", element(pitch, "octave").unwrap())
                        }
                    };
                    let tie = |kind: &str| {
                        let tie = note.contains(&format!("<tie type=\"{kind}\"/>"));
                        let tied = note.contains(&format!("<tied type=\"{kind}\"/>"));
                        assert_eq!(tie, tied, "<tie> and <tied> agree: {note}");
                        tie
                    };
                    let mut text = format!("{pitch} {kind}{}", ".".repeat(dots));
                    if note.contains("<accidental>") {
                        text += "!";
                    }
                    if tie("stop") {
                        text += ")";
                    }
                    if tie("start") {
                        text += "(";
                    }
                    text
                })
                .collect()
        })
        .collect()
}

fn score(melody: &str, meter: (u32, u32), key_text: &str) -> String {
    write_musicxml(&words(melody), meter, key(key_text), "test", 0).unwrap()
}

#[test]
fn a_small_melody_has_its_header_measures_notes_and_rests() {
    let xml = score("60 _ _ _ 64 _ r _ 67 _ _ _ _ _ _ _ 72 _ _ _", (4, 4), "C");
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"));
    assert!(xml.contains("<score-partwise version=\"4.0\">"));
    assert_eq!(element(&xml, "work-title"), Some("test"));
    assert_eq!(element(&xml, "part-name"), Some("Melody"));
    assert_eq!(element(&xml, "midi-program"), Some("1"));
    assert_eq!(element(&xml, "fifths"), Some("0"));
    assert_eq!(element(&xml, "mode"), Some("major"));
    assert_eq!(element(&xml, "beats"), Some("4"));
    assert_eq!(element(&xml, "beat-type"), Some("4"));
    assert_eq!(xml.matches("<attributes>").count(), 1);
    assert!(xml.ends_with(
        "<bar-style>light-heavy</bar-style>\n      </barline>\n    </measure>\n  </part>\n\
         </score-partwise>\n"
    ));
    assert_eq!(
        measures(&xml),
        [
            vec!["C4 quarter", "E4 eighth", "r eighth", "G4 half"],
            vec!["C5 quarter"],
        ]
    );
}

#[test]
fn notes_crossing_barlines_are_tied_and_rests_split() {
    // 2/4: 8 steps a measure. 62 lasts 5 steps from step 4, crossing the barline at 8.
    // 64 lasts 13 steps from step 10: 6 to the barline, then 6 + 1; the rest crosses too.
    let xml = score(
        "60 _ _ _ _ 62 _ _ _ _ 64 _ _ _ _ _ _ _ _ _ _ _ _ r _ _",
        (2, 4),
        "C",
    );
    assert_eq!(
        measures(&xml),
        [
            vec!["C4 quarter(", "C4 16th)", "D4 eighth.("],
            vec!["D4 eighth)", "E4 quarter.("],
            vec!["E4 quarter.)(", "E4 16th)", "r 16th"],
            vec!["r eighth"],
        ]
    );
    let numbers: Vec<&str> = xml
        .match_indices("<measure number=\"")
        .map(|(i, m)| &xml[i + m.len()..i + m.len() + 1])
        .collect();
    assert_eq!(numbers, ["1", "2", "3", "4"]);
}

#[test]
fn three_four_and_six_eight() {
    // 12 steps a measure in both: a 9-step note from step 7 is 4 + 1 to the barline, then 4.
    let melody = "67 67 _ _ 66 _ _ 64 _ _ _ _ _ _ _ _ 62 _ _ _ r _ _ _ 60 _ _ _ _ _ _";
    let expected = [
        vec![
            "G4 16th",
            "G4 eighth.",
            "F#4 eighth.!",
            "E4 quarter(",
            "E4 16th)(",
        ],
        vec!["E4 quarter)", "D4 quarter", "r quarter"],
        vec!["C4 quarter.(", "C4 16th)"],
    ];
    for meter in [(3, 4), (6, 8)] {
        let xml = score(melody, meter, "C");
        assert_eq!(element(&xml, "beats").unwrap(), meter.0.to_string());
        assert_eq!(element(&xml, "beat-type").unwrap(), meter.1.to_string());
        assert_eq!(measures(&xml), expected, "{meter:?}");
    }
}

#[test]
fn accidentals_follow_the_key_and_last_to_the_barline() {
    // G major: F# is in the key; F natural needs a sign, then F# one again, in the same measure;
    // the tied C# shows its sharp only where it starts, a new measure starts from the key.
    let xml = score(
        "66 65 66 66 61 _ _ _ _ _ _ _ _ _ _ _ _ 61 65 66",
        (4, 4),
        "G",
    );
    assert_eq!(element(&xml, "fifths"), Some("1"));
    assert_eq!(
        measures(&xml),
        [
            vec![
                "F#4 16th",
                "F4 16th!",
                "F#4 16th!",
                "F#4 16th",
                "C#4 half.!("
            ],
            vec!["C#4 16th)", "C#4 16th!", "F4 16th!", "F#4 16th!"],
        ]
    );
}

/// The melody moved from C major / A minor to `target` and written as `engine generate
/// --format musicxml --transpose-to target` writes it.
fn written(melody: &str, target: &str, meter: (u32, u32)) -> String {
    let transpose_to = Some(key(target));
    let symbols = outputs::as_written(&words(melody), transpose_to).unwrap();
    let dir = std::env::temp_dir().join(format!("musicxml-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{target}.musicxml"));
    let options = WriteOptions {
        format: None,
        bpm: 120,
        program: 73,
        meter,
        transpose_to,
        conditioning: None,
    };
    assert_eq!(Format::of_path(&out), Format::MusicXml);
    outputs::write_melody(&out, &symbols, &options).unwrap();
    fs::read_to_string(out).unwrap()
}

#[test]
fn a_flat_key_after_transpose_to() {
    // C major moved to F major: B flat from the key; E flat and B natural with their signs.
    let xml = written(
        "60 _ _ _ 62 _ 64 _ 65 _ 70 _ 66 _ 72 _ _ _ _ _ _ _ 67 _ _ _ 60 _ _ _ _ _",
        "F",
        (4, 4),
    );
    assert_eq!(
        element(&xml, "work-title"),
        Some("generated by melody-engine")
    );
    assert_eq!(element(&xml, "midi-program"), Some("74"));
    assert_eq!(element(&xml, "fifths"), Some("-1"));
    assert_eq!(element(&xml, "mode"), Some("major"));
    assert_eq!(
        measures(&xml),
        [
            vec![
                "F4 quarter",
                "G4 eighth",
                "A4 eighth",
                "Bb4 eighth",
                "Eb5 eighth!",
                "B4 eighth!",
                "F5 eighth(",
            ],
            vec!["F5 quarter.)", "C5 quarter", "F4 quarter."],
        ]
    );
    // A minor moved to C minor in 3/4: three flats, the mode kept, B natural with its sign.
    let xml = written(
        "69 _ _ _ 71 _ 72 _ _ _ _ _ 68 _ _ _ _ _ _ 69 _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ 64 _ _ _",
        "c",
        (3, 4),
    );
    assert_eq!(element(&xml, "fifths"), Some("-3"));
    assert_eq!(element(&xml, "mode"), Some("minor"));
    assert_eq!(
        measures(&xml),
        [
            vec!["C5 quarter", "D5 eighth", "Eb5 quarter."],
            vec!["B4 quarter.!(", "B4 16th)", "C5 quarter(", "C5 16th)("],
            vec!["C5 half.)"],
            vec!["G4 quarter"],
        ]
    );
}

#[test]
fn titles_are_escaped_and_bad_input_is_an_error() {
    let xml = write_musicxml(&words("60"), (4, 4), key("C"), "a < b & \"c\"\n", 0).unwrap();
    assert_eq!(
        element(&xml, "work-title"),
        Some("a &lt; b &amp; &quot;c&quot; ")
    );
    assert!(write_musicxml(&words("60"), (3, 32), key("C"), "", 0).is_err());
    assert!(write_musicxml(&words("/ 60"), (4, 4), key("C"), "", 0).is_err());
    assert!(write_musicxml(&words("60 x"), (4, 4), key("C"), "", 0).is_err());
}

/// music21 (benches/peers/musicxml_check.py) reads written scores back to the melodies, when
/// python3 has it; never in CI, which does not install it.
#[test]
fn music21_reads_the_printed_melody_back() {
    let has_music21 = Command::new("python3")
        .args(["-c", "import music21"])
        .output()
        .is_ok_and(|out| out.status.success());
    if common::in_ci() || !has_music21 {
        eprintln!("skipped: python3 with music21 is not here (pip install music21==10.5.1)");
        return;
    }
    let peer = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/peers/musicxml_check.py");
    let dir = std::env::temp_dir().join(format!("musicxml-peer-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    for (melody, target, meter) in [
        (
            "60 _ _ _ _ 62 _ _ _ _ 64 _ _ _ _ _ _ _ _ _ _ _ _ r _ _ _ _ _ 61 _ 60",
            "E-",
            (2, 4),
        ),
        (
            "69 _ _ _ 71 _ 72 _ _ _ _ _ 68 _ _ _ _ _ _ r _ _ _ _ _ _ _ 69 _ 70 _",
            "f#",
            (3, 4),
        ),
        (
            "67 67 _ _ 66 _ _ 64 _ _ _ _ _ _ _ _ 62 _ _ _ r _ _ _ 60 _ _ _ _ _ _",
            "C",
            (6, 8),
        ),
    ] {
        let transpose_to = Some(key(target));
        let symbols = outputs::as_written(&words(melody), transpose_to).unwrap();
        let (xml, txt) = (dir.join("m.musicxml"), dir.join("m.txt"));
        let options = WriteOptions {
            format: None,
            bpm: 120,
            program: 0,
            meter,
            transpose_to,
            conditioning: None,
        };
        outputs::write_melody(&xml, &symbols, &options).unwrap();
        fs::write(&txt, symbols.join(" ")).unwrap();
        let out = Command::new("python3")
            .arg(&peer)
            .args([&xml, &txt])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{melody} → {target}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
