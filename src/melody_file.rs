//! Every kind of melody file, read by its extension: `.krn` (`**kern`), `.mid` (Standard MIDI)
//! and `.abc` (many tunes a file) scores become [`Song`]s; `.txt` holds our symbols, one melody
//! per line.

use std::fs;
use std::path::Path;

use crate::abc;
use crate::encode::{encode_song, Encoded, Options};
use crate::kern::{self, Song};
use crate::melody::split_songs;
use crate::midi_in;

/// Extensions of melody files, in the order a directory prefers them when one melody comes in
/// several (`engine generate` writes `melody-001.mid` and its twin `melody-001.krn`).
pub const EXTENSIONS: [&str; 4] = ["txt", "mid", "krn", "abc"];

/// Whether `path` names a score: a file [`read_scores`] reads.
pub fn is_score(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "krn" || e == "mid" || e == "abc")
}

/// One song of a score file: an ABC file holds many.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreSong {
    /// Index of the tune in an ABC file; None for `.krn` and `.mid`.
    pub tune: Option<usize>,
    /// The ABC tune's `X:` number.
    pub x: Option<u32>,
    /// The ABC tune's `T:` (a kern song's title is in the song).
    pub title: Option<String>,
    /// The song, or the reason it is none (a kern or ABC error starts with its line).
    pub song: Result<Song, String>,
}

/// Reads a `.krn`, `.mid` or `.abc` score: one song, or one per ABC tune, with its repeats
/// played out if `expand_repeats`. A MIDI file's melody is `track`, else its first track with
/// notes. The error (the file unreadable) is the reason without the path.
pub fn read_scores(
    path: &Path,
    track: Option<usize>,
    expand_repeats: bool,
) -> Result<Vec<ScoreSong>, String> {
    let bytes = fs::read(path).map_err(|e| format!("unreadable: {e}"))?;
    let single = |song: Result<Song, String>| {
        vec![ScoreSong {
            tune: None,
            x: None,
            title: None,
            song,
        }]
    };
    Ok(match path.extension().and_then(|e| e.to_str()) {
        Some("krn") => single(kern::parse(&bytes).map_err(|e| e.to_string())),
        Some("mid") => single(midi_in::parse(&bytes, track).map_err(|e| e.to_string())),
        Some("abc") => abc::parse(&bytes, expand_repeats)
            .into_iter()
            .map(|tune| ScoreSong {
                tune: Some(tune.index),
                x: tune.x,
                title: tune.title,
                song: tune.song.map_err(|e| e.to_string()),
            })
            .collect(),
        _ => return Err("not a .mid, .krn or .abc file".into()),
    })
}

/// The melodies of one file as symbols: each line of a `.txt` file (a `/` also separates
/// melodies), or a score encoded as in preprocessing, transposed to its mode's white-key tonic,
/// with `options` (`None`: on the sixteenth grid with every duration accepted). `part` picks a
/// MIDI file's track or an ABC file's tune (index from 0); without it, a MIDI file's first track
/// with notes and every tune of an ABC file, as written. Errors name the file, and its line
/// where there is one; one melody that cannot be read fails the file ([`read_each_melody`]
/// keeps the others).
pub fn read_melodies(
    path: &Path,
    part: Option<usize>,
    options: Option<&Options>,
) -> Result<Vec<Vec<String>>, String> {
    read_each_melody(path, part, options)?
        .into_iter()
        .map(|melody| melody.map(|m| m.symbols))
        .collect()
}

/// One melody of a file: its symbols, and the meter and first barline its score gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMelody {
    pub symbols: Vec<String>,
    /// The score's first meter (`*M3/4`, a MIDI time signature, ABC's `M:`); None for a `.txt`
    /// melody or a score without one.
    pub meter: Option<(u32, u32)>,
    /// The steps before the score's first barline ([`Encoded::pickup`]); 0 for a `.txt` melody
    /// or a score without barlines (a MIDI file has none).
    pub pickup: usize,
}

/// The melodies of one file as [`read_melodies`] reads them, each its own result: a tune of a
/// many-tune ABC file that cannot be read is its own error, its line named, beside the others.
/// The outer error is the file's own (unreadable, unknown kind, no such tune).
pub fn read_each_melody(
    path: &Path,
    part: Option<usize>,
    options: Option<&Options>,
) -> Result<Vec<Result<FileMelody, String>>, String> {
    let in_file = |e: String| in_file(path, e);
    if path.extension().is_some_and(|e| e == "txt") {
        let bytes = fs::read(path).map_err(|e| in_file(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|e| in_file(e.to_string()))?;
        let mut melodies = Vec::new();
        for line in text.lines() {
            let words: Vec<&str> = line.split_ascii_whitespace().collect();
            for song in split_songs(&words) {
                melodies.push(Ok(FileMelody {
                    symbols: song.iter().map(|s| s.to_string()).collect(),
                    meter: None,
                    pickup: 0,
                }));
            }
        }
        return Ok(melodies);
    }
    if !is_score(path) {
        return Err(in_file("not a .txt, .mid, .krn or .abc file".into()));
    }
    let encoded = read_each_encoded(path, part, options)?;
    Ok(encoded
        .into_iter()
        .map(|song| {
            song.map(|(song, encoded)| FileMelody {
                meter: song.meter,
                pickup: encoded.pickup(),
                symbols: encoded.symbols,
            })
        })
        .collect())
}

/// The songs of a score (`.krn`, `.mid`, `.abc`) as [`read_melodies`] reads them, each with its
/// encoding: its symbols, and the key and bars a seed carries into generation. One song that
/// cannot be read fails the file.
pub fn read_encoded(
    path: &Path,
    part: Option<usize>,
    options: Option<&Options>,
) -> Result<Vec<(Song, Encoded)>, String> {
    read_each_encoded(path, part, options)?
        .into_iter()
        .collect()
}

/// A song of a score with its encoding, or why it has none.
type EncodedSong = Result<(Song, Encoded), String>;

/// [`read_encoded`], each song its own result.
fn read_each_encoded(
    path: &Path,
    part: Option<usize>,
    options: Option<&Options>,
) -> Result<Vec<EncodedSong>, String> {
    let in_file = |e: String| in_file(path, e);
    let mut songs = read_scores(path, part, false).map_err(in_file)?;
    if let Some(tune) = part.filter(|_| path.extension().is_some_and(|e| e == "abc")) {
        let count = songs.len();
        songs = vec![songs
            .into_iter()
            .nth(tune)
            .ok_or_else(|| in_file(format!("no tune {tune} (the file holds {count}, from 0)")))?];
    }
    Ok(songs
        .into_iter()
        .map(|score| {
            let song = score.song.map_err(in_file)?;
            let every_duration;
            let options = match options {
                Some(options) => options,
                None => {
                    every_duration = Options {
                        durations: song.events.iter().map(|e| e.duration).collect(),
                        ..Options::default()
                    };
                    &every_duration
                }
            };
            let encoded = encode_song(&song, options).map_err(|e| in_file(e.to_string()))?;
            Ok((song, encoded))
        })
        .collect())
}

/// An error about `path`, at its line where the reason starts with one.
fn in_file(path: &Path, e: String) -> String {
    match e.strip_prefix("line ") {
        Some(at_line) => format!("{}:{at_line}", path.display()),
        None => format!("{}: {e}", path.display()),
    }
}
