//! A MIDI file written by another program: MuseScore 3's export (`mscore3 -o melody.mid
//! melody.musicxml`) of the MusicXML score `engine generate --out melody.musicxml --rng-seed 5
//! --meter 3/4` wrote. MuseScore's conventions differ from our writer's: format 1 with a tempo
//! track before the notes, 480 ticks per quarter, note-offs as velocity-0 note-ons, a key
//! signature, and a second time signature (2/4) at the short last bar.

use std::path::Path;

use melody_engine::melody::merge_rests;
use melody_engine::melody_file::read_melodies;

/// The melody `engine generate` printed for that score.
const PRINTED: &str = "55 _ 55 _ 60 _ _ _ _ _ 62 _ 64 _ 64 _ 62 _ 64 _ r _ _ _ _ _ _ _ _ _ 59 _ \
    57 _ _ _ 55 _ _ _ _ _ 60 _ 59 _ _ 57 55 _ 53 _ 52 _ _ _ r _ _ _ _ _ _ _ 59 _ 60 _ 62 _ _ _ \
    _ _ 55 _ 57 _ 59 _ 60 _ _ _ r _ _ _ _ _ 55 _ 52 _ 55 _ 60 _ 64 _ 64 _ 64 _ 62 _ _ _ r _ _ _ \
    62 _ _ _ 62 _ _ 64 64 _ _ _ 62 _ _ _ r _ 55 _ 64 _ _ _ 62 _ 64 _ 65 _ 55 _ 59 _ _ _ 60 _ _ \
    _ _ _ _ _ r _ _ _ _ _ _ _";

#[test]
fn musescores_export_of_our_score_reads_back_as_the_printed_melody() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/musescore-export.mid");
    let melodies = read_melodies(&path, None, None).unwrap();
    assert_eq!(melodies.len(), 1);
    // A rest the score writes in pieces (across a barline) comes back as that many rests.
    let read = merge_rests(&melodies[0]);
    // The final rest is silence after the last note-off, which MuseScore's file marks with no
    // event: the melody read ends with its last note.
    let printed = PRINTED.strip_suffix(" r _ _ _ _ _ _ _").unwrap();
    let printed: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(read.join(" "), printed.join(" "));
}

#[test]
fn musescores_export_seeds_generation_with_its_first_steps() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/musescore-export.mid");
    let seed = melody_engine::generate::seed_from_file(&path, None, 16).unwrap();
    let printed: Vec<&str> = PRINTED.split_whitespace().take(16).collect();
    assert_eq!(seed.symbols, printed);
    // MIDI has no barlines: its bars start at its first step.
    assert_eq!(seed.pickup, 0);
}
