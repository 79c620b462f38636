//! Every kind of melody file, read by its extension: `.krn` (`**kern`) and `.mid` (Standard MIDI)
//! scores become a [`Song`]; `.txt` holds our symbols, one melody per line.

use std::fs;
use std::path::Path;

use crate::encode::{encode_song, Options};
use crate::kern::{self, Song};
use crate::melody::split_songs;
use crate::midi_in;

/// Extensions of melody files, in the order a directory prefers them when one melody comes in
/// several (`engine generate` writes `melody-001.mid` and its twin `melody-001.krn`).
pub const EXTENSIONS: [&str; 3] = ["txt", "mid", "krn"];

/// Whether `path` names a score: a file [`read_song`] reads.
pub fn is_score(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "krn" || e == "mid")
}

/// Reads a `.krn` or `.mid` score; a MIDI file's melody is `track`, else its first track with
/// notes. The error is the reason without the path (a kern error starts with its line).
pub fn read_song(path: &Path, track: Option<usize>) -> Result<Song, String> {
    let bytes = fs::read(path).map_err(|e| format!("unreadable: {e}"))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("krn") => kern::parse(&bytes).map_err(|e| e.to_string()),
        Some("mid") => midi_in::parse(&bytes, track).map_err(|e| e.to_string()),
        _ => Err("not a .mid or .krn file".into()),
    }
}

/// The melodies of one file as symbols: each line of a `.txt` file (a `/` also separates
/// melodies), or a score encoded as in preprocessing, transposed to C major / A minor, with
/// `options` (`None`: on the sixteenth grid with every duration accepted). Errors name the file,
/// and its line where there is one.
pub fn read_melodies(
    path: &Path,
    track: Option<usize>,
    options: Option<&Options>,
) -> Result<Vec<Vec<String>>, String> {
    let in_file = |e: String| match e.strip_prefix("line ") {
        Some(at_line) => format!("{}:{at_line}", path.display()),
        None => format!("{}: {e}", path.display()),
    };
    if path.extension().is_some_and(|e| e == "txt") {
        let bytes = fs::read(path).map_err(|e| in_file(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|e| in_file(e.to_string()))?;
        let mut melodies = Vec::new();
        for line in text.lines() {
            let words: Vec<&str> = line.split_ascii_whitespace().collect();
            for song in split_songs(&words) {
                melodies.push(song.iter().map(|s| s.to_string()).collect());
            }
        }
        return Ok(melodies);
    }
    if !is_score(path) {
        return Err(in_file("not a .txt, .mid or .krn file".into()));
    }
    let song = read_song(path, track).map_err(in_file)?;
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
    Ok(vec![encoded.symbols])
}
