//! Whether melodies are in the mode and the meter `engine generate --mode` / `--meter` ask for:
//! how many read as minor by the Krumhansl–Schmuckler estimate, and how many of their bars are
//! complete bars of a meter.
//!
//! The key is estimated from the notes alone, whatever key a file declares ([`crate::key`] on
//! the steps each pitch class sounds). Bars are cut on the sixteenth grid from the melody's first
//! barline (its score's; the first step when it has none) every measure of the meter, to its end.
//! A bar is complete when the melody lasts to its end and a note or rest begins on its first step:
//! nothing is held over its barline. The pickup before the first barline is no bar; the last bar
//! is one, incomplete when the melody stops inside it.

use std::ops::AddAssign;

use serde_json::{json, Value};

use crate::features::{grid_step, measure_steps};
use crate::key::estimate_from_histogram;
use crate::melody::Span;

/// How many melodies of a set the key estimate reads as minor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyCount {
    /// Melodies whose estimate is minor.
    pub minor: usize,
    /// Melodies with a note to estimate from (one of only rests has no key).
    pub melodies: usize,
}

impl KeyCount {
    /// Counts the estimates of `melodies`.
    pub fn of<'a>(melodies: impl IntoIterator<Item = &'a [Span]>) -> KeyCount {
        let mut count = KeyCount::default();
        for minor in melodies.into_iter().filter_map(estimate_is_minor) {
            count.melodies += 1;
            count.minor += minor as usize;
        }
        count
    }

    /// `{"minor", "melodies"}`.
    pub fn to_json(&self) -> Value {
        json!({"minor": self.minor, "melodies": self.melodies})
    }
}

/// Whether the Krumhansl–Schmuckler estimate of a melody is minor; None without notes.
pub fn estimate_is_minor(melody: &[Span]) -> Option<bool> {
    let mut histogram = [0.0; 12];
    for span in melody {
        if let Some(pitch) = span.pitch {
            histogram[usize::from(pitch % 12)] += f64::from(span.steps);
        }
    }
    (histogram.iter().sum::<f64>() > 0.0).then(|| estimate_from_histogram(&histogram).is_minor())
}

/// How the melodies of a set fill the bars of a meter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BarCount {
    /// Melodies read in bars.
    pub melodies: usize,
    /// Their bars after the pickup, the last one counted even when a melody stops inside it.
    pub bars: usize,
    /// Bars that last the whole measure and begin with a note or rest.
    pub complete: usize,
    /// Melodies whose end falls on a barline (with at least one bar).
    pub ending_on_barline: usize,
}

impl BarCount {
    /// One melody in bars of `measure` steps, the first starting at step `pickup`.
    pub fn of(melody: &[Span], measure: usize, pickup: usize) -> BarCount {
        let length: usize = melody.iter().map(|span| span.steps as usize).sum();
        let mut onsets = vec![false; length];
        let mut step = 0;
        for span in melody {
            onsets[step] = true;
            step += span.steps as usize;
        }
        let starts = (pickup..length).step_by(measure);
        let mut count = BarCount {
            melodies: 1,
            ending_on_barline: usize::from(
                length > pickup && (length - pickup).is_multiple_of(measure),
            ),
            ..BarCount::default()
        };
        for start in starts {
            count.bars += 1;
            count.complete += usize::from(start + measure <= length && onsets[start]);
        }
        count
    }

    /// Share of the bars that are complete; 0 without bars.
    pub fn complete_share(&self) -> f64 {
        share(self.complete, self.bars)
    }

    /// Share of the melodies that end on a barline; 0 without melodies.
    pub fn ending_share(&self) -> f64 {
        share(self.ending_on_barline, self.melodies)
    }

    /// `{"melodies", "bars", "complete", "complete_share", "ending_on_barline", "ending_share"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "melodies": self.melodies,
            "bars": self.bars,
            "complete": self.complete,
            "complete_share": self.complete_share(),
            "ending_on_barline": self.ending_on_barline,
            "ending_share": self.ending_share(),
        })
    }
}

impl AddAssign for BarCount {
    fn add_assign(&mut self, other: BarCount) {
        self.melodies += other.melodies;
        self.bars += other.bars;
        self.complete += other.complete;
        self.ending_on_barline += other.ending_on_barline;
    }
}

/// Where a melody's file puts its bars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Barring {
    /// The file's meter; None where it gives none.
    pub meter: Option<(u32, u32)>,
    /// The steps before its first barline.
    pub pickup: usize,
}

/// Which melodies are read in which meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// Every melody in this meter (`--meter` for the generated set).
    Every((u32, u32)),
    /// The melodies whose own meter is this one (`--meter` for the reference songs: bars of
    /// another meter say nothing about it).
    Only((u32, u32)),
    /// Each melody in its own meter; those without one are left out.
    Own,
}

/// The bars of `melodies`, each read as `reading` says, on the sixteenth grid. A melody whose
/// meter is no whole number of sixteenths (1/32) is left out.
pub fn count_bars<'a>(
    melodies: impl IntoIterator<Item = (&'a [Span], Barring)>,
    reading: Reading,
) -> BarCount {
    let mut count = BarCount::default();
    for (melody, barring) in melodies {
        let meter = match reading {
            Reading::Every(meter) => Some(meter),
            Reading::Only(meter) => barring.meter.filter(|&own| own == meter),
            Reading::Own => barring.meter,
        };
        if let Some(measure) = meter.and_then(|meter| measure_steps(meter, grid_step())) {
            count += BarCount::of(melody, measure, barring.pickup);
        }
    }
    count
}

/// `part / whole`, 0 when `whole` is.
fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spans of `(pitch, steps)`, 0 a rest.
    fn melody(spans: &[(u8, u32)]) -> Vec<Span> {
        (spans.iter())
            .map(|&(pitch, steps)| Span {
                pitch: (pitch > 0).then_some(pitch),
                steps,
            })
            .collect()
    }

    const MEASURE_3_4: usize = 12;

    #[test]
    fn whole_3_4_bars_are_complete_and_end_on_a_barline() {
        // | 60 64 67 quarters | 72 half, 67 quarter | 60 dotted half |
        let bars = melody(&[(60, 4), (64, 4), (67, 4), (72, 8), (67, 4), (60, 12)]);
        let expected = BarCount {
            melodies: 1,
            bars: 3,
            complete: 3,
            ending_on_barline: 1,
        };
        assert_eq!(BarCount::of(&bars, MEASURE_3_4, 0), expected);
    }

    #[test]
    fn a_note_held_over_a_barline_and_a_last_bar_cut_short_are_incomplete() {
        // | 60 64 quarters, 67 half | held, 65 64 quarters | rest, 62 quarters, and the melody
        // stops 8 steps into bar 3.
        let held = melody(&[(60, 4), (64, 4), (67, 8), (65, 4), (64, 4), (0, 4), (62, 4)]);
        let count = BarCount::of(&held, MEASURE_3_4, 0);
        assert_eq!(
            count,
            BarCount {
                melodies: 1,
                bars: 3,
                complete: 1,
                ending_on_barline: 0
            }
        );
        assert_eq!(count.complete_share(), 1.0 / 3.0);
        // A rest that begins bar 3 makes it complete when the melody fills it.
        let rest_first = melody(&[(60, 12), (64, 12), (0, 4), (62, 8)]);
        assert_eq!(BarCount::of(&rest_first, MEASURE_3_4, 0).complete, 3);
    }

    #[test]
    fn the_pickup_is_no_bar() {
        // A quarter's pickup, two whole bars.
        let pickup = melody(&[(67, 4), (72, 4), (71, 4), (69, 4), (67, 12)]);
        let from_barline = BarCount::of(&pickup, MEASURE_3_4, 4);
        assert_eq!((from_barline.bars, from_barline.complete), (2, 2));
        assert_eq!(from_barline.ending_on_barline, 1);
        // Read from the first step instead: bars 0–12 and 12–24 begin with notes, 24–28 is cut
        // short, and the melody no longer ends on a barline.
        let from_start = BarCount::of(&pickup, MEASURE_3_4, 0);
        assert_eq!((from_start.bars, from_start.complete), (3, 2));
        assert_eq!(from_start.ending_on_barline, 0);
        // A melody that is all pickup has no bar.
        assert_eq!(BarCount::of(&pickup[..1], MEASURE_3_4, 4).bars, 0);
    }

    #[test]
    fn each_reading_picks_its_melodies_and_meters() {
        let waltz = melody(&[(60, 12), (64, 12)]);
        let march = melody(&[(60, 16), (64, 16)]);
        let barring = |meter| Barring { meter, pickup: 0 };
        let set = [
            (waltz.as_slice(), barring(Some((3, 4)))),
            (march.as_slice(), barring(Some((4, 4)))),
            (march.as_slice(), barring(None)),
        ];
        let in_3_4 = count_bars(set, Reading::Every((3, 4)));
        // The march in 3/4: bars at 0, 12 (inside the first note), 24 (cut short at 32).
        assert_eq!((in_3_4.melodies, in_3_4.bars, in_3_4.complete), (3, 8, 4));
        let only = count_bars(set, Reading::Only((3, 4)));
        assert_eq!((only.melodies, only.bars, only.complete), (1, 2, 2));
        let own = count_bars(set, Reading::Own);
        assert_eq!((own.melodies, own.bars, own.complete), (2, 4, 4));
        assert_eq!(own.ending_share(), 1.0);
    }

    #[test]
    fn minor_and_major_melodies_are_told_apart_from_their_notes() {
        // An A minor arpeggio and scale, tonic and fifth long; a C major one; rests between.
        let a_minor = melody(&[
            (57, 8),
            (60, 4),
            (64, 8),
            (0, 4),
            (62, 2),
            (65, 2),
            (67, 2),
            (69, 12),
            (64, 8),
            (57, 12),
        ]);
        let c_major = melody(&[
            (60, 8),
            (64, 4),
            (67, 8),
            (0, 4),
            (65, 2),
            (69, 2),
            (71, 2),
            (72, 12),
            (67, 8),
            (60, 12),
        ]);
        assert_eq!(estimate_is_minor(&a_minor), Some(true));
        assert_eq!(estimate_is_minor(&c_major), Some(false));
        assert_eq!(estimate_is_minor(&melody(&[(0, 16)])), None);
        let rests = melody(&[(0, 4)]);
        let count = KeyCount::of([
            a_minor.as_slice(),
            c_major.as_slice(),
            a_minor.as_slice(),
            rests.as_slice(),
        ]);
        assert_eq!(
            count,
            KeyCount {
                minor: 2,
                melodies: 3
            }
        );
        assert_eq!(count.to_json(), json!({"minor": 2, "melodies": 3}));
    }
}
