//! Symbols → a one-spine `**kern` score that Verovio, music21 and the Humdrum tools open: header,
//! measures with barlines, notes split at barlines and into single kern values with ties.

use super::notation::{key_fifths, measure_steps, note_value, pieces, spell, NOTE_VALUES};
use crate::kern::KeyDesignation;
use crate::melody::spans;

/// The kern reciprocal duration of each of [`NOTE_VALUES`] (lengths in sixteenth steps).
const KERN_VALUES: [&str; NOTE_VALUES.len()] = ["1", "2.", "2", "4.", "4", "8.", "8", "16"];

/// Writes the first melody of `symbols` (up to the first `/`) as `**kern`.
///
/// Layout: `!!!OTL:` (if a title), `**kern`, `*M<meter>`, the key signature `*k[…]`, the key
/// designation (`*C:`, `*a:`), `=1-`, then the events with `=2`, `=3`… at every measure start,
/// `==` and `*-`. The melody starts on the downbeat, or after a pickup of `pickup` steps (less
/// than a measure): then no `=1-`, and `=1` where the first whole measure starts. Its last
/// measure may be incomplete.
///
/// A note crossing a barline, or lasting a length that is no single kern value (5 sixteenths =
/// `4` + `16`), is written as tied pieces: `[` first, `_` middle, `]` last; pieces are taken
/// longest first. Rests are split the same way but without ties, as kern has none for rests, so
/// reading the score back restarts the rest at each piece (`r _ _ _ _` → `r _ _ _ r`), which is
/// how the encoder reads any rest written across a barline. Pitches are spelled as in the key's
/// scale; other pitches take sharps in sharp keys and C major, flats in flat keys.
///
/// Errors on unreadable symbols, an empty melody, or a meter whose measure is not a whole
/// number of sixteenths.
pub fn write_kern<S: AsRef<str>>(
    symbols: &[S],
    meter: (u32, u32),
    pickup: u32,
    key: KeyDesignation,
    title: Option<&str>,
) -> Result<String, String> {
    let (count, unit) = meter;
    let measure = measure_steps(meter)?;
    if pickup >= measure {
        return Err(format!(
            "a pickup of {pickup} steps is no shorter than a {count}/{unit} measure"
        ));
    }
    let spans = spans(symbols)?;
    if spans.is_empty() {
        return Err("no notes or rests to write".into());
    }

    let mut lines: Vec<String> = Vec::new();
    if let Some(title) = title {
        // A record is one line.
        lines.push(format!("!!!OTL: {}", title.replace(['\r', '\n'], " ")));
    }
    lines.push("**kern".into());
    lines.push(format!("*M{count}/{unit}"));
    lines.push(format!("*k[{}]", key_signature(key)));
    lines.push(format!("*{}:", key_name(key)));
    // Measures are numbered from the first whole one; a pickup is measure 0.
    let first_number = if pickup == 0 {
        lines.push("=1-".into());
        1
    } else {
        0
    };

    let fifths = key_fifths(key);
    // Steps from the start of the pickup's measure, had it been whole.
    let mut position = (measure - pickup) % measure;
    let start = position;
    for span in &spans {
        let pitch = span.pitch.map(|midi| kern_pitch(midi, fifths));
        let pieces = pieces(span, position, measure);
        for (i, &steps) in pieces.iter().enumerate() {
            if position > start && position.is_multiple_of(measure) {
                lines.push(format!("={}", position / measure + first_number));
            }
            let duration = KERN_VALUES[note_value(steps)];
            lines.push(match &pitch {
                None => format!("{duration}r"),
                Some(name) => {
                    let (open, close) = match (i, pieces.len()) {
                        (_, 1) => ("", ""),
                        (0, _) => ("[", ""),
                        (i, n) if i + 1 == n => ("", "]"),
                        _ => ("", "_"),
                    };
                    format!("{open}{duration}{name}{close}")
                }
            });
            position += steps;
        }
    }
    lines.push("==".into());
    lines.push("*-".into());
    Ok(lines.join("\n") + "\n")
}

/// `*k[…]` contents: sharps in the order f c g d a e b, flats in b e a d g c f; beyond seven,
/// the letters take double accidentals in the same order.
fn key_signature(key: KeyDesignation) -> String {
    let fifths = key_fifths(key);
    let (order, sign) = if fifths >= 0 {
        ("fcgdaeb", "#")
    } else {
        ("beadgcf", "-")
    };
    let n = fifths.unsigned_abs() as usize;
    order
        .chars()
        .enumerate()
        .take(n)
        .map(|(i, letter)| format!("{letter}{}", sign.repeat((n - i).div_ceil(7))))
        .collect()
}

/// `C`, `B-`, or lowercase for minor: `a`, `f#`.
fn key_name(key: KeyDesignation) -> String {
    let name = key.tonic_name();
    if key.mode.is_minor() {
        name.to_lowercase()
    } else {
        name
    }
}

/// The kern name of a MIDI pitch (`c` = C4, `cc#` = C♯5, `B-` = B♭3) in a key of `fifths`.
fn kern_pitch(midi: u8, fifths: i32) -> String {
    let spelling = spell(midi, fifths);
    let letter = spelling.letter;
    let letters = if spelling.octave >= 4 {
        letter
            .to_ascii_lowercase()
            .to_string()
            .repeat((spelling.octave - 3) as usize)
    } else {
        letter.to_string().repeat((4 - spelling.octave) as usize)
    };
    let accidental = if spelling.alter >= 0 { "#" } else { "-" };
    letters + &accidental.repeat(spelling.alter.unsigned_abs() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{encode_song, Options};
    use crate::kern::parse;
    use crate::melody::transpose;

    fn words(text: &str) -> Vec<&str> {
        text.split_whitespace().collect()
    }

    fn key(text: &str) -> KeyDesignation {
        KeyDesignation::parse(text).unwrap()
    }

    /// symbols → kern → reader → encoder (ties merged), with the shift the encoder applied.
    fn read_back(kern: &str) -> (i32, String) {
        let song = parse(kern.as_bytes()).unwrap();
        let options = Options {
            keep_tie_onsets: false,
            ..Options::default()
        };
        let encoded = encode_song(&song, &options).unwrap();
        (encoded.shift, encoded.symbols.join(" "))
    }

    fn round_trip(melody: &str, meter: (u32, u32), key_text: &str) -> (i32, String) {
        read_back(&write_kern(&words(melody), meter, 0, key(key_text), None).unwrap())
    }

    #[test]
    fn exact_score_with_ties_across_barlines_and_split_durations() {
        // 2/4: 8 steps a measure. 62 lasts 5 steps from step 4, crossing the barline at 8.
        // 64 lasts 13 steps from step 10: 6 to the barline, then 6 + 1; the rest crosses too.
        let kern = write_kern(
            &words("60 _ _ _ _ 62 _ _ _ _ 64 _ _ _ _ _ _ _ _ _ _ _ _ r _ _"),
            (2, 4),
            0,
            key("C"),
            Some("Test\nsong"),
        )
        .unwrap();
        let expected = "!!!OTL: Test song\n**kern\n*M2/4\n*k[]\n*C:\n=1-\n\
                        [4c\n16c]\n[8.d\n=2\n8d]\n[4.e\n=3\n4.e_\n16e]\n16r\n=4\n8r\n==\n*-\n";
        assert_eq!(kern, expected);
    }

    #[test]
    fn a_pickup_puts_the_first_barline_after_it() {
        // 3/4 after an eighth's pickup: the 60 fills measure 1 and is tied over into measure 2.
        let melody = "67 _ 60 _ _ _ _ _ _ _ _ _ _ _ _ _ 64 _ _ _ _ _ _ _ _ _";
        let kern = write_kern(&words(melody), (3, 4), 2, key("C"), None).unwrap();
        let expected = "**kern\n*M3/4\n*k[]\n*C:\n8g\n=1\n[2.c\n=2\n8c]\n[2e\n8e]\n==\n*-\n";
        assert_eq!(kern, expected);
        let song = parse(kern.as_bytes()).unwrap();
        let encoded = encode_song(&song, &Options::default()).unwrap();
        assert_eq!(encoded.bar_starts, [2, 14]);
        assert_eq!(encoded.symbols.join(" "), melody);
        assert!(write_kern(&words(melody), (3, 4), 12, key("C"), None)
            .unwrap_err()
            .contains("no shorter than a 3/4 measure"));
    }

    #[test]
    fn c_major_melodies_read_back_identically() {
        for (melody, meter) in [
            // A note across the barline, 5- and 7-step notes, a whole measure, a rest inside.
            (
                "60 _ _ _ _ _ _ _ _ _ _ _ 64 _ _ _ _ 65 _ _ _ _ _ _ \
                 67 _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ r _ 72",
                (4, 4),
            ),
            // 3/4, a 9-step note across two barlines, a repeated pitch, chromatic notes.
            (
                "67 67 _ _ 66 _ _ _ _ _ _ _ _ 70 _ r _ _ _ \
                 61 _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _",
                (3, 4),
            ),
            // 6/8 with an incomplete last measure and low and high octaves.
            ("36 _ _ _ _ _ _ 96 _ _ _ _ _ 48", (6, 8)),
        ] {
            assert_eq!(round_trip(melody, meter, "C"), (0, melody.to_string()));
        }
    }

    #[test]
    fn a_minor_melody_reads_back_identically() {
        let melody = "69 _ _ _ 71 _ 72 _ _ _ _ _ 68 _ _ _ _ _ _ 69 _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _";
        let kern = write_kern(&words(melody), (4, 4), 0, key("a"), None).unwrap();
        assert!(kern.contains("\n*k[]\n*a:\n"));
        assert!(
            kern.contains("\n[4g#\n=2\n8.g#]\n"),
            "sharp for the leading tone"
        );
        assert_eq!(read_back(&kern), (0, melody.to_string()));
    }

    #[test]
    fn a_rest_restarts_at_each_barline_and_each_split() {
        // 2/4: the rest from step 4 crosses the barline; the 5-step rest is 4 + 16.
        assert_eq!(
            round_trip("60 _ _ _ r _ _ _ _ _ 62 _ r _ _ _ _ 64", (2, 4), "C").1,
            "60 _ _ _ r _ _ _ r _ 62 _ r _ _ _ r 64"
        );
        assert_eq!(round_trip("r _ _ _ _ 60", (4, 4), "C").1, "r _ _ _ r 60");
    }

    #[test]
    fn a_transposed_melody_in_its_new_key_reads_back_to_the_original() {
        let melody = "60 _ _ _ 62 _ 64 _ _ _ _ _ 65 _ 71 _ 72 _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _";
        let in_f = transpose(&words(melody), 5).unwrap();
        let kern = write_kern(&in_f, (4, 4), 0, key("F"), None).unwrap();
        assert!(kern.contains("\n*k[b-]\n*F:\n"));
        assert!(kern.contains("\n8b-\n"), "B flat is spelled from the key");
        assert_eq!(read_back(&kern), (-5, melody.to_string()));
    }

    #[test]
    fn key_signatures_and_names() {
        let signature = |text: &str| (key_signature(key(text)), key_name(key(text)));
        assert_eq!(signature("G"), ("f#".into(), "G".into()));
        assert_eq!(signature("e"), ("f#".into(), "e".into()));
        assert_eq!(signature("d"), ("b-".into(), "d".into()));
        assert_eq!(signature("B-"), ("b-e-".into(), "B-".into()));
        assert_eq!(signature("f#"), ("f#c#g#".into(), "f#".into()));
        assert_eq!(signature("C#"), ("f#c#g#d#a#e#b#".into(), "C#".into()));
        assert_eq!(signature("G#").0, "f##c#g#d#a#e#b#");
        assert_eq!(signature("c").0, "b-e-a-");
    }

    #[test]
    fn pitch_spelling_follows_the_key() {
        let spelled = |key_text: &str, pitches: [u8; 6]| {
            let fifths = key_fifths(key(key_text));
            pitches.map(|m| kern_pitch(m, fifths)).join(" ")
        };
        let chromatic = [60, 61, 63, 66, 70, 71];
        assert_eq!(spelled("C", chromatic), "c c# d# f# a# b");
        assert_eq!(spelled("F", chromatic), "c d- e- g- b- b");
        assert_eq!(spelled("E", chromatic), "c c# d# f# a# b");
        assert_eq!(
            spelled("C#", [60, 65, 48, 84, 59, 35]),
            "B# e# BB# bb# B BBB"
        );
        assert_eq!(
            spelled("G-", [71, 59, 64, 72, 47, 24]),
            "cc- c- e cc C- CCC"
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(write_kern(&words("60"), (3, 32), 0, key("C"), None).is_err());
        assert!(write_kern(&words("60"), (0, 4), 0, key("C"), None).is_err());
        assert!(write_kern(&words("/ 60"), (4, 4), 0, key("C"), None).is_err());
        assert!(write_kern(&words("60 x"), (4, 4), 0, key("C"), None).is_err());
    }
}
