//! Symbol-level operations on encoded melodies: reading symbols, grouping them into notes and
//! rests, transposing, checking them against a vocabulary, and splitting a stream into songs.

use std::fmt;

use crate::encode::{Vocabulary, DELIMITER, HOLD, REST};
use crate::kern::KeyDesignation;

/// Pitch classes of C major, the same set as A natural minor: C D E F G A B.
pub const C_MAJOR_PITCH_CLASSES: [u8; 7] = [0, 2, 4, 5, 7, 9, 11];

/// One symbol of the encoded stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symbol {
    /// A note onset, by MIDI number.
    Pitch(u8),
    /// A rest onset (`r`).
    Rest,
    /// The previous onset lasts one more step (`_`).
    Hold,
    /// Between songs (`/`).
    Delimiter,
}

impl Symbol {
    /// `60` → a pitch, `r`, `_`, `/`; anything else (including numbers above 127) → None.
    pub fn parse(text: &str) -> Option<Symbol> {
        match text {
            REST => Some(Symbol::Rest),
            HOLD => Some(Symbol::Hold),
            DELIMITER => Some(Symbol::Delimiter),
            _ => text
                .parse::<u8>()
                .ok()
                .filter(|&m| m <= 127)
                .map(Symbol::Pitch),
        }
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Symbol::Pitch(midi) => write!(f, "{midi}"),
            Symbol::Rest => f.write_str(REST),
            Symbol::Hold => f.write_str(HOLD),
            Symbol::Delimiter => f.write_str(DELIMITER),
        }
    }
}

/// An onset and how many grid steps it lasts: a note (`pitch` is Some) or a rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub pitch: Option<u8>,
    pub steps: u32,
}

/// The same melody with every rest onset that follows a rest turned into a hold: `r _ r _` →
/// `r _ _ _`. Both sound the same, and MIDI (silence has no onsets) and **kern (a long rest is
/// written as several) cannot tell them apart, so this is the form a melody leaves the engine in.
pub fn merge_rests<S: AsRef<str>>(symbols: &[S]) -> Vec<String> {
    let mut resting = false;
    symbols
        .iter()
        .map(|symbol| {
            let symbol = symbol.as_ref();
            let merged = if symbol == REST && resting {
                HOLD
            } else {
                symbol
            };
            if symbol != HOLD {
                resting = symbol == REST;
            }
            merged.to_string()
        })
        .collect()
}

/// Groups the first melody (everything before the first `/`) into notes and rests.
///
/// A `_` with nothing before it to hold is silence, so it starts a rest. Adjacent spans are
/// kept apart: `r _ r` is two rests, `60 60` two notes. Errors list the unreadable symbols.
pub fn spans<S: AsRef<str>>(symbols: &[S]) -> Result<Vec<Span>, String> {
    let parsed = parse_all(symbols)?;
    let mut spans: Vec<Span> = Vec::new();
    for symbol in parsed {
        match symbol {
            Symbol::Delimiter => break,
            Symbol::Hold => match spans.last_mut() {
                Some(span) => span.steps += 1,
                None => spans.push(Span {
                    pitch: None,
                    steps: 1,
                }),
            },
            Symbol::Rest => spans.push(Span {
                pitch: None,
                steps: 1,
            }),
            Symbol::Pitch(midi) => spans.push(Span {
                pitch: Some(midi),
                steps: 1,
            }),
        }
    }
    Ok(spans)
}

/// The inverse of [`spans`]: each span is its onset symbol followed by `steps − 1` holds.
pub fn symbols_of(spans: &[Span]) -> Vec<String> {
    let mut symbols = Vec::new();
    for span in spans {
        let onset = span.pitch.map_or(Symbol::Rest, Symbol::Pitch);
        symbols.push(onset.to_string());
        symbols.extend((1..span.steps).map(|_| HOLD.to_string()));
    }
    symbols
}

/// Moves every pitch by `semitones`; holds, rests and delimiters stay. Errors on an unreadable
/// symbol or a pitch that would leave MIDI's 0…127.
pub fn transpose<S: AsRef<str>>(symbols: &[S], semitones: i32) -> Result<Vec<String>, String> {
    parse_all(symbols)?
        .into_iter()
        .map(|symbol| match symbol {
            Symbol::Pitch(midi) => {
                let moved = midi as i32 + semitones;
                (0..=127)
                    .contains(&moved)
                    .then(|| moved.to_string())
                    .ok_or_else(|| {
                        format!("pitch {midi} transposed by {semitones} is {moved}, outside 0…127")
                    })
            }
            other => Ok(other.to_string()),
        })
        .collect()
}

/// Semitones that take a melody in C major (or A minor, for a minor key) to `key`, the nearest
/// way: the result lies in −5…+6 (G major → −5, F major → +5, F♯ major → +6, E minor → −5).
pub fn semitones_to(key: KeyDesignation) -> i32 {
    let from = if key.mode.is_minor() { 9 } else { 0 };
    (key.tonic_semitones() - from + 5).rem_euclid(12) - 5
}

/// Ok if every symbol is in the vocabulary; otherwise an error naming each unknown symbol once,
/// in order of first appearance.
pub fn check_vocabulary<S: AsRef<str>>(symbols: &[S], vocab: &Vocabulary) -> Result<(), String> {
    let mut unknown: Vec<&str> = Vec::new();
    for symbol in symbols.iter().map(AsRef::as_ref) {
        if vocab.id(symbol).is_none() && !unknown.contains(&symbol) {
            unknown.push(symbol);
        }
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} symbol(s) not in the vocabulary: {}",
            unknown.len(),
            quoted_list(&unknown)
        ))
    }
}

/// The songs of a stream: the pieces between runs of `/`, empty pieces dropped.
pub fn split_songs<S: AsRef<str>>(symbols: &[S]) -> Vec<&[S]> {
    symbols
        .split(|s| s.as_ref() == DELIMITER)
        .filter(|song| !song.is_empty())
        .collect()
}

/// Reads every symbol, or an error listing each unreadable one once.
fn parse_all<S: AsRef<str>>(symbols: &[S]) -> Result<Vec<Symbol>, String> {
    let mut parsed = Vec::with_capacity(symbols.len());
    let mut bad: Vec<&str> = Vec::new();
    for text in symbols.iter().map(AsRef::as_ref) {
        match Symbol::parse(text) {
            Some(symbol) => parsed.push(symbol),
            None if !bad.contains(&text) => bad.push(text),
            None => {}
        }
    }
    if bad.is_empty() {
        Ok(parsed)
    } else {
        Err(format!(
            "not a melody symbol (MIDI 0…127, {REST}, {HOLD}, {DELIMITER}): {}",
            quoted_list(&bad)
        ))
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rests_after_rests_become_holds() {
        let merged = merge_rests(&["r", "_", "r", "60", "r", "r", "_", "/", "r", "_"]);
        assert_eq!(merged, ["r", "_", "_", "60", "r", "_", "_", "/", "r", "_"]);
    }

    fn words(text: &str) -> Vec<&str> {
        text.split_whitespace().collect()
    }

    fn note(midi: u8, steps: u32) -> Span {
        Span {
            pitch: Some(midi),
            steps,
        }
    }

    fn rest(steps: u32) -> Span {
        Span { pitch: None, steps }
    }

    #[test]
    fn symbols_parse_and_print_back() {
        for text in ["0", "60", "127", "r", "_", "/"] {
            assert_eq!(Symbol::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Symbol::parse("128"), None);
        assert_eq!(Symbol::parse("-1"), None);
        assert_eq!(Symbol::parse("C4"), None);
    }

    #[test]
    fn spans_group_onsets_with_their_holds_and_stop_at_the_delimiter() {
        let spans = spans(&words("_ 60 _ _ r _ 60 62 / 64 _")).unwrap();
        assert_eq!(
            spans,
            vec![rest(1), note(60, 3), rest(2), note(60, 1), note(62, 1)]
        );
        assert_eq!(
            symbols_of(&spans).join(" "),
            "r 60 _ _ r _ 60 62",
            "a leading hold is silence"
        );
    }

    #[test]
    fn spans_report_unreadable_symbols_once() {
        assert_eq!(
            spans(&words("60 x 200 x")).unwrap_err(),
            "not a melody symbol (MIDI 0…127, r, _, /): \"x\", \"200\""
        );
    }

    #[test]
    fn transpose_moves_pitches_only() {
        assert_eq!(
            transpose(&words("60 _ r 71 /"), 5).unwrap().join(" "),
            "65 _ r 76 /"
        );
        assert_eq!(
            transpose(&words("60 120"), 8).unwrap_err(),
            "pitch 120 transposed by 8 is 128, outside 0…127"
        );
        assert!(transpose(&words("2"), -3).is_err());
    }

    #[test]
    fn semitones_to_a_key_take_the_nearest_way() {
        let to = |text: &str| semitones_to(KeyDesignation::parse(text).unwrap());
        assert_eq!(
            [to("C"), to("G"), to("F"), to("F#"), to("G-"), to("B-")],
            [0, -5, 5, 6, 6, -2]
        );
        assert_eq!([to("a"), to("e"), to("d"), to("c")], [0, -5, 5, 3]);
    }

    #[test]
    fn vocabulary_check_lists_unknown_symbols() {
        let vocab = Vocabulary::from_symbols(["60", "62"]);
        assert_eq!(check_vocabulary(&words("60 _ r 62 /"), &vocab), Ok(()));
        assert_eq!(
            check_vocabulary(&words("60 61 99 61"), &vocab).unwrap_err(),
            "2 symbol(s) not in the vocabulary: \"61\", \"99\""
        );
    }

    #[test]
    fn split_songs_drops_delimiter_runs() {
        let stream = words("/ / 60 _ / / / 62 r /");
        let songs = split_songs(&stream);
        assert_eq!(songs, vec![&["60", "_"][..], &["62", "r"][..]]);
        assert!(split_songs::<&str>(&[]).is_empty());
    }
}
