//! Reads one monophonic melody from a Standard MIDI File into a [`Song`], the type the `**kern`
//! reader yields, so the same filter, transposition and encoding apply.
//!
//! One track is read: the first with notes, or the one asked for. Onsets must lie on the
//! sixteenth grid within [`GRID_TOLERANCE`] of a step (a played melody is never exact); ends are
//! rounded to the nearest step, at least one step after the onset. Gaps become rests, and the
//! track's end-of-track time a trailing rest. Tempo events change no symbol: the grid counts
//! beats, not seconds. The key comes from the first key-signature event of any track, the meter
//! from the first time-signature event.

use std::fmt;

use midly::{MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};

use crate::kern::{Event, KeyDesignation, Mode, Pitch, QuarterLength, Song, Tie};

/// Steps per quarter note: the grid is the sixteenth.
const STEPS_PER_QUARTER: u64 = 4;
/// An onset at most this share of a step off the grid is moved onto it.
pub const GRID_TOLERANCE: f64 = 0.25;

/// Why a MIDI file gives no melody.
#[derive(Clone, Debug, PartialEq)]
pub enum MidiError {
    /// Not a Standard MIDI File (midly's reason).
    NotMidi(String),
    /// Time in SMPTE frames, not beats.
    Smpte,
    /// `--track` names a track the file lacks.
    NoSuchTrack { track: usize, tracks: usize },
    /// No track holds a note.
    Empty,
    /// A note starts too far from a grid step.
    OffGrid { tick: u64, quarters: f64 },
    /// A note starts before the previous one ends, or two start together.
    NotMonophonic { tick: u64 },
}

impl fmt::Display for MidiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MidiError::NotMidi(why) => write!(f, "not a MIDI file: {why}"),
            MidiError::Smpte => write!(f, "MIDI file counts time in SMPTE frames, not beats"),
            MidiError::NoSuchTrack { track, tracks } => {
                write!(f, "no track {track}: the file has tracks 0…{}", tracks - 1)
            }
            MidiError::Empty => write!(f, "no track holds a note"),
            MidiError::OffGrid { tick, quarters } => write!(
                f,
                "note at tick {tick} is {quarters:.2} quarter off the sixteenth grid"
            ),
            MidiError::NotMonophonic { tick } => {
                write!(f, "not monophonic: a note at tick {tick} overlaps another")
            }
        }
    }
}

impl std::error::Error for MidiError {}

/// A note as played: pitch, onset and end in ticks.
struct Played {
    key: u8,
    start: u64,
    end: u64,
}

/// Reads the melody of `track` (an index into the file's tracks, 0 first), or of the first track
/// with notes.
pub fn parse(bytes: &[u8], track: Option<usize>) -> Result<Song, MidiError> {
    let smf = Smf::parse(bytes).map_err(|e| MidiError::NotMidi(e.to_string()))?;
    let Timing::Metrical(ticks_per_quarter) = smf.header.timing else {
        return Err(MidiError::Smpte);
    };
    let ticks_per_quarter = (ticks_per_quarter.as_int() as u64).max(1);
    let chosen = match track {
        Some(index) => smf.tracks.get(index).ok_or(MidiError::NoSuchTrack {
            track: index,
            tracks: smf.tracks.len(),
        })?,
        None => smf
            .tracks
            .iter()
            .find(|t| t.iter().any(|e| note_on(&e.kind).is_some()))
            .ok_or(MidiError::Empty)?,
    };
    let (played, track_end) = notes_of(chosen);
    if played.is_empty() {
        return Err(MidiError::Empty);
    }

    // Ticks → steps: exact rationals, so any resolution lands on the same grid.
    let ticks_per_step = ticks_per_quarter as f64 / STEPS_PER_QUARTER as f64;
    let nearest =
        |tick: u64| (tick * STEPS_PER_QUARTER + ticks_per_quarter / 2) / ticks_per_quarter;
    let mut song = Song::default();
    let mut now = 0;
    for note in &played {
        let start = nearest(note.start);
        let off = (note.start as f64 - start as f64 * ticks_per_step).abs() / ticks_per_step;
        if off > GRID_TOLERANCE {
            return Err(MidiError::OffGrid {
                tick: note.start,
                quarters: off / STEPS_PER_QUARTER as f64,
            });
        }
        // `now` is the previous note's end: starting before it is sounding with it.
        if start < now {
            return Err(MidiError::NotMonophonic { tick: note.start });
        }
        let end = nearest(note.end).max(start + 1);
        if start > now {
            song.events.push(rest(start - now));
        }
        song.events.push(Event {
            pitch: Some(spelled(note.key)),
            duration: QuarterLength::new(end - start, STEPS_PER_QUARTER),
            tie: Tie::None,
            line: 0,
        });
        now = end;
    }
    let end = nearest(track_end);
    if end > now {
        song.events.push(rest(end - now));
    }
    read_signatures(&smf, &mut song);
    Ok(song)
}

/// The key of a note-on with a velocity above 0.
fn note_on(kind: &TrackEventKind) -> Option<u8> {
    match kind {
        TrackEventKind::Midi {
            message: MidiMessage::NoteOn { key, vel },
            ..
        } if *vel > 0 => Some(key.as_int()),
        _ => None,
    }
}

/// A track's notes in onset order (channels merged; a note-on at velocity 0 is a note-off), and
/// its end-of-track tick. A note never switched off lasts to the end of the track.
fn notes_of(track: &[midly::TrackEvent]) -> (Vec<Played>, u64) {
    let mut tick = 0u64;
    let mut played: Vec<Played> = Vec::new();
    let mut sounding: Vec<usize> = Vec::new();
    for event in track {
        tick += event.delta.as_int() as u64;
        if let Some(key) = note_on(&event.kind) {
            sounding.push(played.len());
            played.push(Played {
                key,
                start: tick,
                end: tick,
            });
            continue;
        }
        if let TrackEventKind::Midi {
            message: MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. },
            ..
        } = event.kind
        {
            if let Some(i) = sounding.iter().position(|&n| played[n].key == key.as_int()) {
                played[sounding.remove(i)].end = tick;
            }
        }
    }
    for n in sounding {
        played[n].end = tick;
    }
    (played, tick)
}

fn rest(steps: u64) -> Event {
    Event {
        pitch: None,
        duration: QuarterLength::new(steps, STEPS_PER_QUARTER),
        tie: Tie::None,
        line: 0,
    }
}

/// A MIDI key spelled with sharps: 61 is C♯4.
fn spelled(key: u8) -> Pitch {
    const SPELLING: [(u8, i8); 12] = [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
        (2, 0),
        (3, 0),
        (3, 1),
        (4, 0),
        (4, 1),
        (5, 0),
        (5, 1),
        (6, 0),
    ];
    let (step, alter) = SPELLING[key as usize % 12];
    Pitch {
        step,
        alter,
        octave: (key / 12) as i8 - 1,
        natural: false,
    }
}

/// The first key signature and the first time signature of any track.
fn read_signatures(smf: &Smf, song: &mut Song) {
    for event in smf.tracks.iter().flatten() {
        match event.kind {
            TrackEventKind::Meta(MetaMessage::KeySignature(sharps, minor))
                if song.keys.is_empty() =>
            {
                song.keys.extend(key_of_signature(sharps, minor));
            }
            TrackEventKind::Meta(MetaMessage::TimeSignature(count, unit_log2, ..))
                if song.meter.is_none() =>
            {
                let unit = 1u32.checked_shl(unit_log2 as u32);
                song.meter = unit.map(|unit| (count as u32, unit));
            }
            _ => {}
        }
    }
}

/// The key a signature of `sharps` (flats negative) names: 2, major → D major; −3, minor → C minor.
fn key_of_signature(sharps: i8, minor: bool) -> Option<KeyDesignation> {
    if !(-7..=7).contains(&sharps) {
        return None;
    }
    // Position on the line of fifths F C G D A E B; the major tonic of 0 sharps is C, the minor A.
    const FIFTHS: [u8; 7] = [3, 0, 4, 1, 5, 2, 6];
    let position = sharps as i32 + if minor { 4 } else { 1 };
    Some(KeyDesignation {
        step: FIFTHS[position.rem_euclid(7) as usize],
        alter: position.div_euclid(7) as i8,
        mode: if minor { Mode::Minor } else { Mode::Major },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{encode_song, Options};
    use crate::melody::{merge_rests, transpose};
    use crate::midi::{write_midi, Signatures};
    use midly::num::{u15, u28, u4, u7};
    use midly::{Format, Header, TrackEvent};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A song's symbols as the encoder writes them, moved back from C major / A minor.
    fn symbols(song: &Song) -> Vec<String> {
        let options = Options {
            durations: song.events.iter().map(|e| e.duration).collect(),
            ..Options::default()
        };
        let encoded = encode_song(song, &options).unwrap();
        transpose(&encoded.symbols, -encoded.shift).unwrap()
    }

    /// A random melody: notes and rests of 1 to 40 steps, so long holds and trailing rests too.
    fn random_melody(rng: &mut StdRng) -> Vec<String> {
        let mut symbols = Vec::new();
        for _ in 0..rng.gen_range(1..40) {
            let onset = if rng.gen_bool(0.2) {
                "r".to_string()
            } else {
                rng.gen_range(40..90).to_string()
            };
            symbols.push(onset);
            let holds = if rng.gen_bool(0.1) { 39 } else { 7 };
            symbols.extend(std::iter::repeat_n(
                "_".to_string(),
                rng.gen_range(0..holds),
            ));
        }
        symbols
    }

    #[test]
    fn what_our_writer_writes_reads_back_to_the_same_symbols() {
        let mut rng = StdRng::seed_from_u64(18);
        for _ in 0..500 {
            let melody = random_melody(&mut rng);
            let bytes = write_midi(&melody, 120, 0, Signatures::default()).unwrap();
            if melody.iter().all(|s| s == "r" || s == "_") {
                assert_eq!(parse(&bytes, None), Err(MidiError::Empty));
                continue;
            }
            let song = parse(&bytes, None).unwrap();
            assert_eq!(symbols(&song), merge_rests(&melody), "{melody:?}");
        }
    }

    fn smf_bytes(ticks_per_quarter: u16, tracks: Vec<Vec<TrackEvent<'static>>>) -> Vec<u8> {
        let format = if tracks.len() == 1 {
            Format::SingleTrack
        } else {
            Format::Parallel
        };
        let mut smf = Smf::new(Header::new(
            format,
            Timing::Metrical(u15::new(ticks_per_quarter)),
        ));
        smf.tracks = tracks;
        let mut bytes = Vec::new();
        smf.write_std(&mut bytes).unwrap();
        bytes
    }

    fn event(delta: u32, kind: TrackEventKind<'static>) -> TrackEvent<'static> {
        TrackEvent {
            delta: u28::new(delta),
            kind,
        }
    }

    fn note(key: u8, vel: u8) -> TrackEventKind<'static> {
        TrackEventKind::Midi {
            channel: u4::new(0),
            message: MidiMessage::NoteOn {
                key: u7::new(key),
                vel: u7::new(vel),
            },
        }
    }

    #[test]
    fn signatures_a_played_grid_and_the_track_asked_for() {
        // 100 ticks per quarter, a step is 25: the second onset is 5 ticks late (0.2 of a step).
        let meta = TrackEventKind::Meta;
        let tracks = vec![
            vec![
                event(0, meta(MetaMessage::KeySignature(-1, true))),
                event(0, meta(MetaMessage::TimeSignature(6, 3, 24, 8))),
                event(0, meta(MetaMessage::EndOfTrack)),
            ],
            vec![
                event(0, note(62, 90)),
                event(48, note(62, 0)),
                event(7, note(65, 90)),
                event(40, note(65, 0)),
                event(50, meta(MetaMessage::EndOfTrack)),
            ],
            vec![event(0, note(40, 90)), event(100, note(40, 0))],
        ];
        let bytes = smf_bytes(100, tracks);
        let song = parse(&bytes, None).unwrap();
        assert_eq!(song.meter, Some((6, 8)));
        assert_eq!(song.keys[0].tonic_name(), "D");
        assert!(song.keys[0].mode.is_minor());
        // D minor moves up to A minor: 62 → 69.
        let encoded = encode_song(&song, &Options::default()).unwrap();
        assert_eq!(encoded.symbols.join(" "), "69 _ 72 _ r _");
        let third = parse(&bytes, Some(2)).unwrap();
        assert_eq!(third.events.len(), 1);
        assert_eq!(
            parse(&bytes, Some(3)).unwrap_err().to_string(),
            "no track 3: the file has tracks 0…2"
        );
    }

    #[test]
    fn off_grid_overlapping_and_empty_files_are_reasons() {
        let off_grid = smf_bytes(
            100,
            vec![vec![event(10, note(60, 90)), event(25, note(60, 0))]],
        );
        assert_eq!(
            parse(&off_grid, None).unwrap_err().to_string(),
            "note at tick 10 is 0.10 quarter off the sixteenth grid"
        );
        let chord = smf_bytes(
            100,
            vec![vec![
                event(0, note(60, 90)),
                event(0, note(64, 90)),
                event(100, note(60, 0)),
                event(0, note(64, 0)),
            ]],
        );
        assert_eq!(
            parse(&chord, None).unwrap_err(),
            MidiError::NotMonophonic { tick: 0 }
        );
        let overlap = smf_bytes(
            100,
            vec![vec![
                event(0, note(60, 90)),
                event(50, note(62, 90)),
                event(50, note(60, 0)),
                event(50, note(62, 0)),
            ]],
        );
        assert_eq!(
            parse(&overlap, None).unwrap_err(),
            MidiError::NotMonophonic { tick: 50 }
        );
        let empty = smf_bytes(
            100,
            vec![vec![event(
                0,
                TrackEventKind::Meta(MetaMessage::EndOfTrack),
            )]],
        );
        assert_eq!(parse(&empty, None).unwrap_err(), MidiError::Empty);
        assert!(matches!(parse(b"MThd", None), Err(MidiError::NotMidi(_))));
        // A frame rate of -128 (found by tests/fuzz.rs): an error, not midly's overflow.
        let forged = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x80\x00MTrk\x00\x00\x00\x00";
        assert!(matches!(parse(forged, None), Err(MidiError::NotMidi(_))));
    }

    #[test]
    fn signatures_name_their_keys() {
        let name = |sharps, minor| {
            let key = key_of_signature(sharps, minor).unwrap();
            (key.tonic_name(), key.mode.is_minor())
        };
        assert_eq!(name(0, false), ("C".into(), false));
        assert_eq!(name(0, true), ("A".into(), true));
        assert_eq!(name(2, false), ("D".into(), false));
        assert_eq!(name(-3, true), ("C".into(), true));
        assert_eq!(name(-7, false), ("C-".into(), false));
        assert_eq!(name(7, true), ("A#".into(), true));
        assert_eq!(name(6, false), ("F#".into(), false));
        assert_eq!(key_of_signature(8, false), None);
    }

    #[test]
    fn keys_are_spelled_with_sharps() {
        assert_eq!(spelled(61).midi(), 61);
        assert_eq!((spelled(61).step, spelled(61).alter), (0, 1));
        assert!((0..=127).all(|k| spelled(k).midi() == k as i32));
    }
}
