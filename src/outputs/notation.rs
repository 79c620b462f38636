//! Staff notation of our symbols, whatever file it is written to: the measure a meter makes on
//! the sixteenth grid, spans cut at barlines into single note values, and pitches spelled in a
//! key.

use crate::features;
use crate::kern::KeyDesignation;
use crate::melody::Span;

/// Lengths in sixteenth steps that one written note or rest can have, longest first: whole,
/// dotted half, half, dotted quarter, quarter, dotted eighth, eighth, sixteenth. They are
/// exactly the encoder's accepted durations (`encode::DEFAULT_DURATIONS`), so a written score is
/// never filtered out when it is read back.
pub const NOTE_VALUES: [u32; 8] = [16, 12, 8, 6, 4, 3, 2, 1];

/// Where a piece's length (one of [`pieces`]) is in [`NOTE_VALUES`], and so in a format's table
/// of how it writes each.
pub fn note_value(steps: u32) -> usize {
    NOTE_VALUES
        .iter()
        .position(|&length| length == steps)
        .expect("pieces are note values")
}

/// The length of a measure of `meter` on the sixteenth grid the outputs write
/// ([`features::measure_steps`]); errors when it is not a whole, positive number of steps.
pub fn measure_steps(meter: (u32, u32)) -> Result<u32, String> {
    let (count, unit) = meter;
    features::measure_steps(meter, features::grid_step())
        .map(|steps| steps as u32)
        .ok_or_else(|| format!("meter {count}/{unit} is not a whole number of sixteenths"))
}

/// The lengths, in steps, a span starting `start` steps into the melody is written as: cut at
/// every barline, then each part into [`NOTE_VALUES`], longest first. A note written as several
/// pieces is tied from each to the next.
pub fn pieces(span: &Span, start: u32, measure: u32) -> Vec<u32> {
    let mut pieces = Vec::new();
    let mut position = start;
    let end = start + span.steps;
    while position < end {
        let to_barline = measure - position % measure;
        let mut part = to_barline.min(end - position);
        position += part;
        while part > 0 {
            let length = *NOTE_VALUES
                .iter()
                .find(|&&length| length <= part)
                .expect("a sixteenth fits any part");
            pieces.push(length);
            part -= length;
        }
    }
    pieces
}

/// The key's place on the line of fifths, which is its signature: sharps > 0, flats < 0.
/// Major: C 0, G 1, F −1…; any other mode has the signature of its relative major (A minor 0,
/// D dorian 0).
pub fn key_fifths(key: KeyDesignation) -> i32 {
    const LETTER_FIFTHS: [i32; 7] = [0, 2, 4, -1, 1, 3, 5]; // C D E F G A B
    LETTER_FIFTHS[key.step as usize] + 7 * key.alter as i32 - key.mode.fifths_below_major()
}

/// A written pitch: letter (`C` … `B`), alteration in semitones (♯ 1, ♭ −1) and octave (C4 is
/// middle C, MIDI 60).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spelling {
    pub letter: char,
    pub alter: i32,
    pub octave: i32,
}

/// The spelling of a MIDI pitch in a key of `fifths`.
///
/// Each spelling is a place f on the line of fifths (F −1, C 0, G 1 … F♯ 6; letter
/// `FCGDAEB[(f + 1) mod 7]`, alteration ⌊(f + 1) / 7⌋) and pitch class 7f mod 12. The key's scale
/// is f ∈ [fifths − 1, fifths + 5]; other pitches use f ∈ [−1, 10] (naturals and sharps) in
/// sharp keys and C, f ∈ [−6, 5] (naturals and flats) in flat keys.
pub fn spell(midi: u8, fifths: i32) -> Spelling {
    let class = midi as i32 % 12;
    // 7 · 7 ≡ 1 (mod 12), so the place with pitch class c is 7c mod 12, give or take 12.
    let place_mod_12 = 7 * class % 12;
    let lowest = if (fifths - 1..=fifths + 5).any(|f| (f - place_mod_12) % 12 == 0) {
        fifths - 1
    } else if fifths >= 0 {
        -1
    } else {
        -6
    };
    let place = lowest + (place_mod_12 - lowest).rem_euclid(12);
    let alter = (place + 1).div_euclid(7);
    Spelling {
        letter: b"FCGDAEB"[(place + 1).rem_euclid(7) as usize] as char,
        alter,
        octave: (midi as i32 - alter).div_euclid(12) - 1,
    }
}

/// The alteration the key signature of `fifths` gives `letter`: the letter's place in the
/// key's scale, f ∈ [fifths − 1, fifths + 5], is its natural place plus 7 per sharp.
pub fn signature_alter(letter: char, fifths: i32) -> i32 {
    let natural = "FCGDAEB".find(letter).expect("a letter A…G") as i32 - 1;
    (fifths + 5 - natural).div_euclid(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_alterations_match_the_spelling_of_the_scale() {
        for fifths in -7i32..=7 {
            for degree in fifths - 1..=fifths + 5 {
                let class = (7 * degree).rem_euclid(12) as u8;
                let spelling = spell(60 + class, fifths);
                assert_eq!(signature_alter(spelling.letter, fifths), spelling.alter);
            }
        }
        assert_eq!(signature_alter('B', -1), -1);
        assert_eq!(signature_alter('F', 1), 1);
        assert_eq!(signature_alter('E', 0), 0);
    }

    #[test]
    fn spans_are_cut_at_barlines_into_note_values() {
        let span = |steps| Span {
            pitch: Some(60),
            steps,
        };
        assert_eq!(pieces(&span(5), 4, 8), [4, 1]);
        assert_eq!(pieces(&span(13), 10, 8), [6, 6, 1]);
        assert_eq!(pieces(&span(11), 0, 16), [8, 3]);
        assert_eq!(pieces(&span(7), 0, 12), [6, 1]);
    }

    #[test]
    fn measures_are_whole_numbers_of_sixteenths() {
        assert_eq!(measure_steps((4, 4)), Ok(16));
        assert_eq!(measure_steps((6, 8)), Ok(12));
        assert_eq!(measure_steps((3, 4)), Ok(12));
        assert!(measure_steps((3, 32)).is_err());
        assert!(measure_steps((0, 4)).is_err());
        assert!(measure_steps((4, 0)).is_err());
    }
}
