//! The song's key: the first key designation, else an estimate by the Krumhansl–Schmuckler method
//! with the Aarden–Essen profiles, as music21's `analyze('key')` does; and the transposition that
//! takes it to its mode's white-key tonic (C major, A minor, D dorian … B locrian).

use crate::kern::{Event, Mode, Song};

/// Aarden–Essen key profiles, tonic first (Humdrum `keycor` documentation; music21's values).
const MAJOR_PROFILE: [f64; 12] = [
    17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587, 0.291248, 22.062, 0.145624, 8.15494,
    0.232998, 4.95122,
];
const MINOR_PROFILE: [f64; 12] = [
    18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362, 0.702494, 18.6161, 4.56621, 1.93186,
    7.37619, 1.75623,
];

/// How music21 spells an estimated tonic, by pitch class.
const MAJOR_TONICS: [&str; 12] = [
    "C", "C#", "D", "E-", "E", "F", "F#", "G", "A-", "A", "B-", "B",
];
const MINOR_TONICS: [&str; 12] = [
    "C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    Declared,
    Estimated,
}

impl KeySource {
    pub fn as_str(&self) -> &'static str {
        match self {
            KeySource::Declared => "declared",
            KeySource::Estimated => "estimated",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// music21's name of the tonic: `G`, `B-`, `F#`.
    pub tonic: String,
    /// The tonic in semitones above C, spelling kept (`C-` is −1, `B#` is 12).
    pub tonic_semitones: i32,
    pub mode: Mode,
    pub source: KeySource,
}

impl Key {
    pub fn is_minor(&self) -> bool {
        self.mode.is_minor()
    }

    /// Semitones that take the tonic to its mode's white-key tonic (C major, A minor, D dorian,
    /// E phrygian, F lydian, G mixolydian, B locrian): music21's
    /// `Interval(tonic, Pitch(target)).semitones`. Both pitches sit in octave 4, so the shift
    /// lies in −11…+11 and follows the spelling: G major → −7, C minor → +9, B♭ minor → −1,
    /// A mixolydian → −2, G dorian → −5.
    pub fn shift(&self) -> i32 {
        self.mode.white_key_tonic() - self.tonic_semitones
    }
}

/// The first key designation, else the estimate; None for a song with no notes.
pub fn song_key(song: &Song) -> Option<Key> {
    match song.keys.first() {
        Some(declared) => Some(Key {
            tonic: declared.tonic_name(),
            tonic_semitones: declared.tonic_semitones(),
            mode: declared.mode,
            source: KeySource::Declared,
        }),
        None => estimate(&song.events),
    }
}

/// Krumhansl–Schmuckler: correlate the duration-weighted pitch-class histogram with the profile
/// rotated to each of the 24 keys and take the best (Pearson's r). Ties go to the first key in
/// the order C major … B major, C minor … B minor.
pub fn estimate(events: &[Event]) -> Option<Key> {
    pitch_class_histogram(events).map(|histogram| estimate_from_histogram(&histogram))
}

/// The estimate for a histogram of quarter lengths (or steps) per pitch class, C first.
pub fn estimate_from_histogram(histogram: &[f64; 12]) -> Key {
    let (mut best_r, mut tonic, mut minor) = (f64::NEG_INFINITY, 0, false);
    for (mode_minor, profile) in [(false, &MAJOR_PROFILE), (true, &MINOR_PROFILE)] {
        for candidate in 0..12 {
            let rotated: [f64; 12] = std::array::from_fn(|pc| profile[(pc + 12 - candidate) % 12]);
            let r = pearson(histogram, &rotated);
            if r > best_r {
                (best_r, tonic, minor) = (r, candidate, mode_minor);
            }
        }
    }
    let name = if minor {
        MINOR_TONICS[tonic]
    } else {
        MAJOR_TONICS[tonic]
    };
    // Every name above sits inside the octave, so its semitones are the pitch class.
    Key {
        tonic: name.to_string(),
        tonic_semitones: tonic as i32,
        mode: if minor { Mode::Minor } else { Mode::Major },
        source: KeySource::Estimated,
    }
}

/// Quarter lengths spent on each pitch class; None without notes.
fn pitch_class_histogram(events: &[Event]) -> Option<[f64; 12]> {
    let mut histogram = [0.0; 12];
    let mut any = false;
    for event in events {
        if let Some(pitch) = event.pitch {
            histogram[pitch.midi().rem_euclid(12) as usize] += event.duration.as_f64();
            any = true;
        }
    }
    any.then_some(histogram)
}

fn pearson(x: &[f64; 12], y: &[f64; 12]) -> f64 {
    let mean = |v: &[f64; 12]| v.iter().sum::<f64>() / 12.0;
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kern;

    fn parse(body: &str) -> Song {
        kern::parse(format!("**kern\n{body}\n*-\n").as_bytes()).unwrap()
    }

    #[test]
    fn shift_follows_music21_interval_rule() {
        // (designation, shift) as deutschl.jsonl records them.
        let cases = [
            ("*G:", -7),
            ("*F:", -5),
            ("*A:", -9),
            ("*B-:", -10),
            ("*A-:", -8),
            ("*D-:", -1),
            ("*a:", 0),
            ("*c:", 9),
            ("*d:", 7),
            ("*e-:", 6),
            ("*f#:", 3),
            ("*b-:", -1),
            ("*b:", -2),
        ];
        for (designation, shift) in cases {
            let key = song_key(&parse(&format!("{designation}\n4c"))).unwrap();
            assert_eq!(key.shift(), shift, "{designation}");
            assert_eq!(key.source, KeySource::Declared);
        }
    }

    #[test]
    fn first_designation_wins() {
        let key = song_key(&parse("*C:\n4c\n*G:\n4g")).unwrap();
        assert_eq!((key.tonic.as_str(), key.is_minor()), ("C", false));
    }

    #[test]
    fn estimate_finds_the_scale_of_a_plain_melody() {
        // G major scale with G and D emphasised.
        let g_major = parse("2g\n4a\n4b\n4cc\n2dd\n4ee\n4ff#\n2gg\n2d\n1G");
        let key = song_key(&g_major).unwrap();
        assert_eq!(
            (key.tonic.as_str(), key.is_minor(), key.source),
            ("G", false, KeySource::Estimated)
        );
        assert_eq!(key.shift(), -7);
        // A natural minor with the tonic triad weighted.
        let a_minor = parse("2a\n4b\n2cc\n4dd\n2ee\n4ff\n4gg\n2aa\n2e\n2c\n1A");
        let key = song_key(&a_minor).unwrap();
        assert_eq!((key.tonic.as_str(), key.is_minor()), ("A", true));
    }

    #[test]
    fn estimate_weights_by_duration() {
        // The same notes; only which ones are long changes: C–E–G long says C major, A–C–E long
        // says A minor.
        let c = estimate(&parse("1c\n8d\n1e\n8f\n1g\n8a\n8b").events).unwrap();
        let a = estimate(&parse("8c\n8d\n1e\n8f\n8g\n1a\n8b\n1cc\n1A").events).unwrap();
        assert_eq!((c.tonic.as_str(), c.is_minor()), ("C", false));
        assert_eq!((a.tonic.as_str(), a.is_minor()), ("A", true));
    }

    #[test]
    fn pearson_of_a_rotated_profile_with_itself_is_one() {
        assert!((pearson(&MAJOR_PROFILE, &MAJOR_PROFILE) - 1.0).abs() < 1e-12);
        let flat = [1.0; 12];
        assert_eq!(pearson(&flat, &MAJOR_PROFILE), 0.0);
    }
}
