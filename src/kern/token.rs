//! One `**kern` data token → a note or a rest: pitch, duration, tie.

use super::{Event, QuarterLength, Tie};

/// The largest reciprocal (or `%` term) and the most dots a duration may have, the most letters
/// of an octave and the most accidentals: beyond them a token is forged, not music, and its
/// fractions or octaves would overflow.
const MAX_RECIPROCAL: u64 = 1024;
const MAX_DOTS: u32 = 8;
const MAX_RUN: usize = 10;

/// Semitones above C of each letter, C D E F G A B.
pub(crate) const STEP_SEMITONES: [u8; 7] = [0, 2, 4, 5, 7, 9, 11];

/// A spelled pitch, as written: letter, alteration and octave (scientific: C4 = middle C).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pitch {
    /// 0 = C … 6 = B.
    pub step: u8,
    pub alter: i8,
    pub octave: i8,
    /// An explicit `n`. music21 compares it when deciding whether two notes continue a tie.
    pub natural: bool,
}

impl Pitch {
    /// MIDI number: C4 = 60.
    pub fn midi(&self) -> i32 {
        12 * (self.octave as i32 + 1)
            + STEP_SEMITONES[self.step as usize] as i32
            + self.alter as i32
    }
}

pub(crate) fn step_of(letter: char) -> Option<u8> {
    "cdefgab".find(letter).map(|i| i as u8)
}

/// Parses a note or rest token such as `{8.cc#]`, `4r}` or `12B-`.
///
/// Phrase, slur, beam, articulation, ornament, stem and editorial marks are ignored. The line
/// number of the returned event is 0; the caller sets it.
pub fn parse_token(token: &str) -> Result<Event, &'static str> {
    let is_rest = token.contains('r');
    let pitch = if is_rest {
        None
    } else {
        Some(parse_pitch(token)?)
    };
    let tie = if token.contains('[') {
        Tie::Start
    } else if token.contains(']') {
        Tie::Stop
    } else if token.contains('_') {
        Tie::Continue
    } else {
        Tie::None
    };
    let grace = token.contains(['q', 'Q']);
    let duration = match parse_duration(token)? {
        Some(duration) if !grace => duration,
        _ if grace => QuarterLength::ZERO,
        _ => return Err("no duration"),
    };
    Ok(Event {
        pitch,
        duration,
        tie,
        line: 0,
    })
}

/// The first run of one pitch letter: its case and length give the octave (`c` = C4, `cc` = C5,
/// `C` = C3, `CC` = C2). The first run of `#` or `-` gives the alteration.
fn parse_pitch(token: &str) -> Result<Pitch, &'static str> {
    let start = token
        .find(|c: char| "abcdefgABCDEFG".contains(c))
        .ok_or("no pitch or rest")?;
    let letters: &str = token[start..]
        .split(|c: char| !"abcdefgABCDEFG".contains(c))
        .next()
        .unwrap_or_default();
    let first = letters.chars().next().ok_or("no pitch or rest")?;
    if letters.chars().any(|c| c != first) {
        return Err("mixed pitch letters");
    }
    let sharps = first_run_len(token, '#');
    let flats = first_run_len(token, '-');
    if letters.len() > MAX_RUN || sharps > MAX_RUN || flats > MAX_RUN {
        return Err("pitch out of range");
    }
    let count = letters.len() as i8;
    let octave = if first.is_ascii_lowercase() {
        3 + count
    } else {
        4 - count
    };
    let step = step_of(first.to_ascii_lowercase()).ok_or("no pitch or rest")?;
    let alter = match (sharps, flats) {
        (sharps, _) if sharps > 0 => sharps as i8,
        (_, flats) => -(flats as i8),
    };
    Ok(Pitch {
        step,
        alter,
        octave,
        natural: alter == 0 && token.contains('n'),
    })
}

fn first_run_len(token: &str, mark: char) -> usize {
    match token.find(mark) {
        Some(i) => token[i..].chars().take_while(|&c| c == mark).count(),
        None => 0,
    }
}

/// The first run of digits is the reciprocal duration (or `N%M`, a rational duration 4·M/N);
/// every `.` in the token is a dot. `Ok(None)`: no duration.
fn parse_duration(token: &str) -> Result<Option<QuarterLength>, &'static str> {
    let Some(start) = token.find(|c: char| c.is_ascii_digit()) else {
        return Ok(None);
    };
    let digits: String = token[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let dots = token.matches('.').count();
    let out_of_range = |n: u64| n > MAX_RECIPROCAL;
    let recip: u64 = digits.parse().unwrap_or(u64::MAX);
    if out_of_range(recip) || dots > MAX_DOTS as usize {
        return Err("duration out of range");
    }
    let after = &token[start + digits.len()..];
    let base = match after.strip_prefix('%') {
        Some(rest) if recip > 0 => {
            let numerator: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let Ok(numerator) = numerator.parse::<u64>() else {
                return Ok(None);
            };
            if out_of_range(numerator) {
                return Err("duration out of range");
            }
            QuarterLength::new(4 * numerator, recip)
        }
        Some(_) => return Ok(None),
        None => QuarterLength::reciprocal(recip, if recip == 0 { digits.len() } else { 0 }),
    };
    Ok(Some(base.dotted(dots as u32)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(token: &str) -> (i32, QuarterLength, Tie) {
        let e = parse_token(token).unwrap();
        (e.pitch.unwrap().midi(), e.duration, e.tie)
    }

    fn ql(n: u64, d: u64) -> QuarterLength {
        QuarterLength::new(n, d)
    }

    #[test]
    fn pitch_by_case_and_repetition() {
        assert_eq!(note("4c").0, 60);
        assert_eq!(note("4cc").0, 72);
        assert_eq!(note("4ccc").0, 84);
        assert_eq!(note("4C").0, 48);
        assert_eq!(note("4CC").0, 36);
        assert_eq!(note("4B").0, 59);
        assert_eq!(note("4a").0, 69);
    }

    #[test]
    fn accidentals_single_double_and_natural() {
        assert_eq!(note("4c#").0, 61);
        assert_eq!(note("4c##").0, 62);
        assert_eq!(note("4b-").0, 70);
        assert_eq!(note("4b--").0, 69);
        assert_eq!(note("4bn").0, 71);
        assert!(parse_token("4bn").unwrap().pitch.unwrap().natural);
        assert!(!parse_token("4b").unwrap().pitch.unwrap().natural);
    }

    #[test]
    fn durations_dots_tuplets_and_breve() {
        assert_eq!(note("4.c").1, ql(3, 2));
        assert_eq!(note("8..c").1, ql(7, 8));
        assert_eq!(note("16c").1, ql(1, 4));
        assert_eq!(note("1c").1, ql(4, 1));
        assert_eq!(note("0c").1, ql(8, 1));
        assert_eq!(note("3c").1, ql(4, 3));
        assert_eq!(note("6c").1, ql(2, 3));
        assert_eq!(note("12c").1, ql(1, 3));
        assert_eq!(note("24c").1, ql(1, 6));
        assert_eq!(note("3%2c").1, ql(8, 3));
    }

    #[test]
    fn rests() {
        let e = parse_token("4r}").unwrap();
        assert_eq!((e.pitch, e.duration), (None, ql(1, 1)));
        assert_eq!(parse_token("2.r").unwrap().duration, ql(3, 1));
    }

    #[test]
    fn ties_start_continue_stop() {
        assert_eq!(note("[4c").2, Tie::Start);
        assert_eq!(note("4c_").2, Tie::Continue);
        assert_eq!(note("4c]").2, Tie::Stop);
        assert_eq!(note("4c").2, Tie::None);
    }

    #[test]
    fn grace_notes_have_no_duration() {
        assert_eq!(note("8cq").1, QuarterLength::ZERO);
        assert_eq!(note("cQ").1, QuarterLength::ZERO);
    }

    #[test]
    fn marks_are_ignored() {
        assert_eq!(note("{(8.cc#L'~^;/]})"), (73, ql(3, 4), Tie::Stop));
        assert_eq!(note("4ffx#").0, 78);
    }

    #[test]
    fn what_music21_does_with_odd_tokens() {
        // `1.5a`: first digits, every dot: a dotted whole. A stray byte ends the pitch letters.
        assert_eq!(note("1.5a").1, ql(6, 1));
        assert_eq!(note("4.B\u{8}8G"), (59, ql(3, 2), Tie::None));
    }

    #[test]
    fn bad_tokens() {
        assert_eq!(parse_token("xc").unwrap_err(), "no duration");
        assert_eq!(parse_token("8").unwrap_err(), "no pitch or rest");
        assert_eq!(parse_token("4cd").unwrap_err(), "mixed pitch letters");
    }

    /// What the fuzz campaign found: a forged token's fraction overflowed (a zero denominator).
    #[test]
    fn forged_durations_and_pitches_are_reasons_not_overflows() {
        let dots = format!("4c{}", ".".repeat(62));
        assert_eq!(parse_token(&dots).unwrap_err(), "duration out of range");
        assert_eq!(
            parse_token("99999999999999999999c").unwrap_err(),
            "duration out of range"
        );
        assert_eq!(
            parse_token("4%99999999c").unwrap_err(),
            "duration out of range"
        );
        assert_eq!(
            parse_token(&format!("4{}", "c".repeat(200))).unwrap_err(),
            "pitch out of range"
        );
        assert_eq!(
            parse_token(&format!("4c{}", "#".repeat(200))).unwrap_err(),
            "pitch out of range"
        );
        assert_eq!(note("1024c").1, ql(1, 256));
    }
}
