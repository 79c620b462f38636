//! A song → the time series the model learns: filter by duration, transpose to C major / A minor,
//! sample on a fixed grid (MIDI number at an onset, `r` at a rest onset, `_` for each further
//! step); and the vocabulary that maps those symbols to ids.

use std::collections::HashMap;
use std::fmt;

use crate::kern::{Event, Pitch, QuarterLength, Song, Tie};
use crate::key::{song_key, Key};

/// Held for one more step.
pub const HOLD: &str = "_";
/// Rest onset.
pub const REST: &str = "r";
/// Song delimiter; the reference work writes 64 of them after every song, one training window.
pub const DELIMITER: &str = "/";
pub const DELIMITER_RUN: usize = 64;
/// Most steps a song may span: a longer one is forged or no song, and its symbols would not fit
/// in memory (a folk song spans a few hundred).
pub const MAX_STEPS: u64 = 1 << 16;

/// The reference work's accepted durations, in quarter lengths.
pub const DEFAULT_DURATIONS: [&str; 8] = ["0.25", "0.5", "0.75", "1", "1.5", "2", "3", "4"];

#[derive(Clone, Debug)]
pub struct Options {
    /// A song with any note or rest of another duration is dropped.
    pub durations: Vec<QuarterLength>,
    /// The grid, in quarter lengths (a sixteenth: 0.25).
    pub step: QuarterLength,
    /// Each notated note restarts, even when tied (the reference work's behaviour).
    pub keep_tie_onsets: bool,
    /// ABC tunes are read with their repeats and alternative endings played out.
    pub expand_repeats: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            durations: DEFAULT_DURATIONS
                .iter()
                .map(|d| QuarterLength::parse(d).unwrap())
                .collect(),
            step: QuarterLength::new(1, 4),
            keep_tie_onsets: false,
            expand_repeats: false,
        }
    }
}

/// A kept song.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    pub key: Key,
    /// Semitones applied (see [`Key::shift`]).
    pub shift: i32,
    pub symbols: Vec<String>,
    /// The step where each bar starts, from the song's barlines (none at 0 after a pickup).
    pub bar_starts: Vec<u64>,
    /// Each meter change after the first meter, at the step where it takes effect.
    pub meter_changes: Vec<(u64, (u32, u32))>,
}

impl Encoded {
    /// The steps before the first bar start: the pickup; 0 for a song without barlines.
    pub fn pickup(&self) -> usize {
        self.bar_starts.first().map_or(0, |&start| start as usize)
    }
}

/// Why a song is not kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The song is fine but outside what the options accept (a triplet, a breve).
    Filtered(String),
    /// The song cannot be encoded at all (no notes, a pitch out of MIDI range).
    Bad(String),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Filtered(reason) | Skip::Bad(reason) => f.write_str(reason),
        }
    }
}

/// Filters, transposes and encodes one song, in the reference's order of checks.
pub fn encode_song(song: &Song, options: &Options) -> Result<Encoded, Skip> {
    if let Some(event) = song
        .events
        .iter()
        .find(|e| !options.durations.contains(&e.duration))
    {
        return Err(Skip::Filtered(format!("duration {}", event.duration)));
    }
    let key = song_key(song).ok_or_else(|| Skip::Bad("no notes".into()))?;
    let shift = key.shift();
    let events = if options.keep_tie_onsets {
        song.events.clone()
    } else {
        merge_ties(&song.events)
    };
    let mut symbols = Vec::new();
    let mut total_steps = 0;
    for event in &events {
        let steps = event.duration.steps_of(options.step).ok_or_else(|| {
            Skip::Filtered(format!(
                "duration {} is not a whole number of {}-quarter steps (line {})",
                event.duration, options.step, event.line
            ))
        })?;
        if steps == 0 {
            continue;
        }
        total_steps += steps;
        if total_steps > MAX_STEPS {
            return Err(Skip::Bad(format!("longer than {MAX_STEPS} steps")));
        }
        symbols.push(match event.pitch {
            None => REST.to_string(),
            Some(pitch) => {
                let midi = pitch.midi() + shift;
                if !(0..=127).contains(&midi) {
                    return Err(Skip::Bad(format!(
                        "line {}: MIDI pitch {midi} out of range",
                        event.line
                    )));
                }
                midi.to_string()
            }
        });
        symbols.extend(std::iter::repeat_n(HOLD.to_string(), steps as usize - 1));
    }
    // Where each event starts, on the grid where it lies on it. Every duration passed the
    // filter, so these sums stay small fractions.
    let mut onsets = Vec::with_capacity(song.events.len() + 1);
    let mut offset = QuarterLength::ZERO;
    for event in &song.events {
        onsets.push(offset.steps_of(options.step));
        offset = offset + event.duration;
    }
    onsets.push(offset.steps_of(options.step));
    let step_of_event = |index: usize| onsets.get(index).copied().flatten();
    let mut bar_starts: Vec<u64> = song
        .barlines
        .iter()
        .filter_map(|&index| step_of_event(index))
        .filter(|&step| step < total_steps)
        .collect();
    bar_starts.dedup();
    let meter_changes = song
        .meter_changes
        .iter()
        .filter_map(|&(index, meter)| Some((step_of_event(index)?, meter)))
        .collect();
    Ok(Encoded {
        key,
        shift,
        symbols,
        bar_starts,
        meter_changes,
    })
}

/// Merges tied notes into one, as music21's `stripTies` does for a single voice: a `[` opens a
/// group, `_` continues it, and the group closes at a `]` or at the next note of the same
/// spelled pitch right after a group member; the first note takes the total duration. A lone `]`
/// or `[` with nothing to join changes nothing.
pub fn merge_ties(events: &[Event]) -> Vec<Event> {
    let mut merged: Vec<Option<Event>> = events.iter().copied().map(Some).collect();
    let mut group: Vec<usize> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let previous_in_group = i > 0 && group.last() == Some(&(i - 1));
        let closes = event.tie == Tie::Stop
            || (previous_in_group && same_pitch(events[i - 1].pitch, event.pitch));
        let ends_group = match event.tie {
            Tie::Start => {
                if !previous_in_group {
                    group.clear();
                }
                group.push(i);
                false
            }
            Tie::Continue => {
                if !group.is_empty() && !closes {
                    group.clear();
                }
                group.push(i);
                false
            }
            Tie::None | Tie::Stop => closes,
        };
        if ends_group {
            group.push(i);
            if let [first, rest @ ..] = group.as_slice() {
                if !rest.is_empty() {
                    let total = rest
                        .iter()
                        .fold(events[*first].duration, |sum, &j| sum + events[j].duration);
                    merged[*first]
                        .as_mut()
                        .expect("group head is never merged away")
                        .duration = total;
                    rest.iter().for_each(|&j| merged[j] = None);
                }
            }
            group.clear();
        }
    }
    merged.into_iter().flatten().collect()
}

/// music21 compares letter, octave and accidental, so `c` and `cn` differ.
fn same_pitch(a: Option<Pitch>, b: Option<Pitch>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a == b)
}

/// Symbol ↔ id. The order is fixed so that the same corpus always gives the same ids:
/// `/`, `_`, `r`, then MIDI numbers ascending, then any other symbol in byte order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    symbols: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocabulary {
    /// The vocabulary of the given symbols plus the three structural ones.
    pub fn from_symbols<'a>(symbols: impl IntoIterator<Item = &'a str>) -> Vocabulary {
        let distinct: std::collections::HashSet<&str> =
            [DELIMITER, HOLD, REST].into_iter().chain(symbols).collect();
        let mut all: Vec<String> = distinct.into_iter().map(str::to_string).collect();
        all.sort_by_key(|s| sort_key(s));
        Vocabulary::from_ordered(all).expect("distinct symbols")
    }

    /// A vocabulary in the given id order; None if a symbol repeats.
    pub fn from_ordered(symbols: Vec<String>) -> Option<Vocabulary> {
        let ids: HashMap<String, u32> = symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        (ids.len() == symbols.len()).then_some(Vocabulary { symbols, ids })
    }

    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    pub fn id(&self, symbol: &str) -> Option<u32> {
        self.ids.get(symbol).copied()
    }

    pub fn symbol(&self, id: u32) -> &str {
        &self.symbols[id as usize]
    }

    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// `{"/": 0, "_": 1, …}` in id order.
    pub fn to_json(&self) -> String {
        let entries: Vec<String> = self
            .symbols
            .iter()
            .enumerate()
            .map(|(i, s)| format!("  {}: {i}", serde_json::Value::from(s.as_str())))
            .collect();
        format!("{{\n{}\n}}\n", entries.join(",\n"))
    }

    /// Reads `vocab.json`; the ids must be 0…n−1, each once.
    pub fn from_json(text: &str) -> Result<Vocabulary, String> {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
        let mut symbols = vec![None; map.len()];
        for (symbol, id) in map {
            let slot = id
                .as_u64()
                .and_then(|id| symbols.get_mut(id as usize))
                .ok_or_else(|| format!("symbol {symbol:?} has id {id}, expected 0…n−1"))?;
            if slot.replace(symbol.clone()).is_some() {
                return Err(format!("id {id} is used twice"));
            }
        }
        let symbols = symbols
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or("ids leave a gap")?;
        Ok(Vocabulary::from_ordered(symbols).expect("keys of a JSON object are unique"))
    }
}

fn sort_key(symbol: &str) -> (u8, i64, String) {
    match symbol {
        DELIMITER => (0, 0, String::new()),
        HOLD => (1, 0, String::new()),
        REST => (2, 0, String::new()),
        _ => match symbol.parse::<i64>() {
            Ok(midi) => (3, midi, String::new()),
            Err(_) => (4, 0, symbol.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kern;

    fn song(body: &str) -> Song {
        kern::parse(format!("**kern\n{body}\n*-\n").as_bytes()).unwrap()
    }

    fn encode(body: &str, keep_tie_onsets: bool) -> Result<String, Skip> {
        let options = Options {
            keep_tie_onsets,
            ..Options::default()
        };
        encode_song(&song(body), &options).map(|e| e.symbols.join(" "))
    }

    #[test]
    fn sixteenth_grid_with_holds_and_rests() {
        assert_eq!(
            encode("*C:\n4c\n8.d\n16e\n8r\n2g", false).unwrap(),
            "60 _ _ _ 62 _ _ 64 r _ 67 _ _ _ _ _ _ _"
        );
    }

    #[test]
    fn bar_starts_follow_the_barlines_through_a_pickup_ties_and_a_meter_change() {
        // A 2/4 pickup of an eighth, a bar with a note tied over the barline into a 3/4 bar,
        // then the final barline, where no bar starts.
        let body = "*M2/4\n*C:\n8c\n=1\n4f\n[4f\n=2\n*M3/4\n4f]\n2g\n==";
        let encoded = encode_song(&song(body), &Options::default()).unwrap();
        assert_eq!(
            encoded.symbols.join(" "),
            "60 _ 65 _ _ _ 65 _ _ _ _ _ _ _ 67 _ _ _ _ _ _ _"
        );
        assert_eq!(encoded.bar_starts, vec![2, 10]);
        assert_eq!(encoded.meter_changes, vec![(10, (3, 4))]);
    }

    #[test]
    fn transposes_to_c_major_and_a_minor() {
        assert_eq!(encode("*G:\n8g\n8b", false).unwrap(), "60 _ 64 _");
        assert_eq!(encode("*c:\n8c\n8e-", false).unwrap(), "69 _ 72 _");
        assert_eq!(encode("*b-:\n8B-\n8d-", false).unwrap(), "57 _ 60 _");
    }

    #[test]
    fn ties_merge_by_default_and_restart_on_request() {
        let body = "*C:\n[4c\n8c]\n8d";
        assert_eq!(encode(body, false).unwrap(), "60 _ _ _ _ _ 62 _");
        assert_eq!(encode(body, true).unwrap(), "60 _ _ _ 60 _ 62 _");
        assert_eq!(encode("*C:\n[8c\n8c_\n8c]", false).unwrap(), "60 _ _ _ _ _");
    }

    #[test]
    fn music21_tie_quirks() {
        // A tie start followed by the same pitch without a stop still merges.
        assert_eq!(encode("*C:\n[8c\n8c\n8c", false).unwrap(), "60 _ _ _ 60 _");
        // `c` and `cn` are different spellings to music21: no merge without `]`.
        assert_eq!(encode("*C:\n[8c\n8cn", false).unwrap(), "60 _ 60 _");
        // A lone stop changes nothing.
        assert_eq!(encode("*C:\n8c]\n8c", false).unwrap(), "60 _ 60 _");
        // A different pitch between start and stop stays; the stop joins the start.
        assert_eq!(encode("*C:\n[8c\n8d\n8c]", false).unwrap(), "60 _ _ _ 62 _");
    }

    #[test]
    fn duration_filter_names_the_first_bad_duration() {
        assert_eq!(
            encode("*C:\n4c\n12d\n1.e", false),
            Err(Skip::Filtered("duration 1/3".into()))
        );
        assert_eq!(
            encode("*C:\n1.e", false),
            Err(Skip::Filtered("duration 6.0".into()))
        );
        assert_eq!(
            encode("*C:\n0e", false),
            Err(Skip::Filtered("duration 8.0".into()))
        );
    }

    #[test]
    fn custom_durations_and_step() {
        let options = Options {
            durations: vec![QuarterLength::new(1, 3), QuarterLength::new(1, 1)],
            step: QuarterLength::new(1, 12),
            ..Options::default()
        };
        let encoded = encode_song(&song("*C:\n12c\n4d"), &options).unwrap();
        assert_eq!(
            encoded.symbols.join(" "),
            "60 _ _ _ 62 _ _ _ _ _ _ _ _ _ _ _"
        );
        let coarse = Options {
            step: QuarterLength::new(1, 2),
            ..options
        };
        assert!(matches!(
            encode_song(&song("*C:\n12c"), &coarse),
            Err(Skip::Filtered(_))
        ));
    }

    #[test]
    fn a_song_of_rests_has_no_notes() {
        assert_eq!(encode("4r\n4r", false), Err(Skip::Bad("no notes".into())));
    }

    #[test]
    fn vocabulary_order_and_json_round_trip() {
        let vocab = Vocabulary::from_symbols(["72", "60", "r", "_", "65", "60"]);
        assert_eq!(vocab.symbols(), ["/", "_", "r", "60", "65", "72"]);
        assert_eq!((vocab.id("65"), vocab.symbol(5)), (Some(4), "72"));
        let json = vocab.to_json();
        assert!(json.starts_with("{\n  \"/\": 0,\n  \"_\": 1,"));
        assert_eq!(Vocabulary::from_json(&json).unwrap(), vocab);
    }

    #[test]
    fn vocabulary_json_errors() {
        assert!(Vocabulary::from_json("[1]")
            .unwrap_err()
            .contains("not a JSON object"));
        assert!(Vocabulary::from_json(r#"{"a": 0, "b": 0}"#)
            .unwrap_err()
            .contains("used twice"));
        assert!(Vocabulary::from_json(r#"{"a": 0, "b": 5}"#)
            .unwrap_err()
            .contains("expected"));
    }
}
