//! Generated melodies as Standard MIDI Files. (Reading MIDI is `midi_in`'s job.)

use midly::num::{u15, u24, u28, u4, u7};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};

use crate::melody::spans;

/// Ticks per quarter note in written files.
pub const TICKS_PER_QUARTER: u16 = 480;
/// One grid step, a sixteenth note.
pub const TICKS_PER_STEP: u32 = TICKS_PER_QUARTER as u32 / 4;
pub const VELOCITY: u8 = 80;
const CHANNEL: u8 = 0;

/// The tempi a MIDI file can hold: 60,000,000 / bpm µs per quarter must fit 24 bits.
pub const BPM_RANGE: std::ops::RangeInclusive<u32> = 4..=60_000_000;

/// What a file says about the notation beside its notes, each if given: a time signature and a
/// key signature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signatures {
    /// `(3, 4)`: the unit must be a power of two, as the event stores its logarithm.
    pub meter: Option<(u32, u32)>,
    /// Sharps (flats negative, −7 … 7) and whether the key is minor, as the event holds them.
    pub key: Option<(i8, bool)>,
}

/// Writes the first melody of `symbols` (up to the first `/`) as an SMF type 1 file.
///
/// Track 0 holds the tempo (60 000 000 / `bpm` µs per quarter), then the time and key
/// signatures that `signatures` gives, all at tick 0 (the click on the meter's unit, 8 32nds a
/// quarter); track 1 the program change and the notes, one grid step = 120 ticks, velocity 80,
/// each note-off before a note-on at the same tick. Track 1 ends at the melody's last step, so a
/// trailing rest survives in the end-of-track time. Errors on unreadable symbols, a bpm outside
/// 4…60 000 000 (the tempo's 24-bit range), or a signature the events cannot hold.
pub fn write_midi<S: AsRef<str>>(
    symbols: &[S],
    bpm: u32,
    program: u8,
    signatures: Signatures,
) -> Result<Vec<u8>, String> {
    if !BPM_RANGE.contains(&bpm) {
        return Err(format!("tempo {bpm} bpm is outside 4…60000000"));
    }
    let program = u7::try_from(program).ok_or(format!("program {program} is not 0…127"))?;
    let mut tempo_track = vec![at(0, meta(MetaMessage::Tempo(u24::new(60_000_000 / bpm))))];
    if let Some((beats, unit)) = signatures.meter {
        let count = u8::try_from(beats).ok().filter(|&c| c > 0);
        let (Some(count), true) = (count, unit.is_power_of_two() && unit <= 64) else {
            return Err(format!(
                "meter {beats}/{unit} is no time signature: 1…255 beats of a power of two"
            ));
        };
        let clocks_per_click = (96 / unit).max(1) as u8;
        tempo_track.push(at(
            0,
            meta(MetaMessage::TimeSignature(
                count,
                unit.trailing_zeros() as u8,
                clocks_per_click,
                8,
            )),
        ));
    }
    if let Some((sharps, minor)) = signatures.key {
        if !(-7..=7).contains(&sharps) {
            return Err(format!(
                "a key signature of {sharps} sharps is outside −7…7"
            ));
        }
        tempo_track.push(at(0, meta(MetaMessage::KeySignature(sharps, minor))));
    }
    tempo_track.push(at(0, meta(MetaMessage::EndOfTrack)));

    let mut note_track = vec![at(
        0,
        channel_message(MidiMessage::ProgramChange { program }),
    )];
    // Deltas accumulate across rests: `pending` ticks since the last written event.
    let mut pending = 0;
    for span in spans(symbols)? {
        let ticks = span.steps * TICKS_PER_STEP;
        let Some(midi) = span.pitch else {
            pending += ticks;
            continue;
        };
        let key = u7::new(midi);
        let vel = u7::new(VELOCITY);
        note_track.push(at(
            pending,
            channel_message(MidiMessage::NoteOn { key, vel }),
        ));
        note_track.push(at(
            ticks,
            channel_message(MidiMessage::NoteOff { key, vel }),
        ));
        pending = 0;
    }
    note_track.push(at(pending, meta(MetaMessage::EndOfTrack)));

    let header = Header::new(
        Format::Parallel,
        Timing::Metrical(u15::new(TICKS_PER_QUARTER)),
    );
    let mut smf = Smf::new(header);
    smf.tracks = vec![tempo_track, note_track];
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes)
        .map_err(|e| format!("writing MIDI: {e}"))?;
    Ok(bytes)
}

fn at(delta: u32, kind: TrackEventKind<'static>) -> TrackEvent<'static> {
    TrackEvent {
        delta: u28::new(delta),
        kind,
    }
}

fn meta(message: MetaMessage<'static>) -> TrackEventKind<'static> {
    TrackEventKind::Meta(message)
}

fn channel_message(message: MidiMessage) -> TrackEventKind<'static> {
    TrackEventKind::Midi {
        channel: u4::new(CHANNEL),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::melody::{symbols_of, Span};

    fn words(text: &str) -> Vec<&str> {
        text.split_whitespace().collect()
    }

    /// Writes `text` and reads it back with the MIDI reader, untransposed.
    fn round_trip(text: &str) -> String {
        let bytes = write_midi(&words(text), 120, 0, Signatures::default()).unwrap();
        let song = crate::midi_in::parse(&bytes, None).unwrap();
        let step = crate::kern::QuarterLength::new(1, 4);
        let spans: Vec<Span> = song
            .events
            .iter()
            .map(|e| Span {
                pitch: e.pitch.map(|p| p.midi() as u8),
                steps: e.duration.steps_of(step).unwrap() as u32,
            })
            .collect();
        symbols_of(&spans).join(" ")
    }

    #[test]
    fn symbols_survive_write_and_read() {
        for melody in [
            "60 _ _ _ 62 _ 64 _ _ _ _ _ _ _ 67 _",
            "r _ _ _ 60 _ 62",
            "60 60 60 _ 60",
            "69 _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ 72 _ _ _ _",
            "60 _ r _ _ 65 r 67 _ _",
            "72 _ 71 _ 69 r _ _ _",
            "r _ 0 127 r",
        ] {
            assert_eq!(round_trip(melody), melody);
        }
    }

    #[test]
    fn writing_stops_at_the_delimiter_and_a_leading_hold_is_silence() {
        assert_eq!(round_trip("_ _ 60 _ / 62 _"), "r _ 60 _");
    }

    #[test]
    fn header_tempo_and_events() {
        let bytes = write_midi(&words("r 60 _ 60 r"), 120, 73, Signatures::default()).unwrap();
        let smf = Smf::parse(&bytes).unwrap();
        assert_eq!(smf.header.format, Format::Parallel);
        assert_eq!(smf.header.timing, Timing::Metrical(u15::new(480)));
        assert_eq!(smf.tracks.len(), 2);
        assert_eq!(
            smf.tracks[0][0].kind,
            meta(MetaMessage::Tempo(u24::new(500_000)))
        );
        let key = u7::new(60);
        let vel = u7::new(80);
        let expected = vec![
            at(
                0,
                channel_message(MidiMessage::ProgramChange {
                    program: u7::new(73),
                }),
            ),
            at(120, channel_message(MidiMessage::NoteOn { key, vel })),
            at(240, channel_message(MidiMessage::NoteOff { key, vel })),
            // The repeated pitch: its note-off comes before the next note-on, at the same tick.
            at(0, channel_message(MidiMessage::NoteOn { key, vel })),
            at(120, channel_message(MidiMessage::NoteOff { key, vel })),
            at(120, meta(MetaMessage::EndOfTrack)),
        ];
        assert_eq!(smf.tracks[1], expected);
    }

    #[test]
    fn signatures_are_meta_events_at_tick_0_that_the_reader_takes_back() {
        let signatures = Signatures {
            meter: Some((6, 8)),
            key: Some((-2, false)),
        };
        let bytes = write_midi(&words("60 _ 62"), 120, 0, signatures).unwrap();
        let smf = Smf::parse(&bytes).unwrap();
        assert_eq!(
            smf.tracks[0],
            vec![
                at(0, meta(MetaMessage::Tempo(u24::new(500_000)))),
                at(0, meta(MetaMessage::TimeSignature(6, 3, 12, 8))),
                at(0, meta(MetaMessage::KeySignature(-2, false))),
                at(0, meta(MetaMessage::EndOfTrack)),
            ]
        );
        let song = crate::midi_in::parse(&bytes, None).unwrap();
        let b_flat = crate::kern::KeyDesignation::parse("B-").unwrap();
        assert_eq!((song.meter, song.keys), (Some((6, 8)), vec![b_flat]));
        let bad = |meter, key| Signatures { meter, key };
        for signatures in [
            bad(Some((3, 5)), None),
            bad(Some((0, 4)), None),
            bad(None, Some((8, true))),
        ] {
            assert!(write_midi(&words("60"), 120, 0, signatures).is_err());
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(write_midi(&words("60"), 0, 0, Signatures::default()).is_err());
        assert!(write_midi(&words("60"), 120, 128, Signatures::default()).is_err());
        assert!(write_midi(&words("60 C4"), 120, 0, Signatures::default())
            .unwrap_err()
            .contains("\"C4\""));
    }
}
