//! What is measured on one melody, its descriptors: the per-melody features of Yang & Lerch 2018
//! (mgeval) on the sixteenth grid, plus rest ratio, share of onsets on the C major scale and
//! longest repeat. (The model's input features are another thing, the `features` module.)
//!
//! Every feature is read from the melody's notes and rests ([`crate::melody::spans`]). Pitch and
//! rhythm features count notes only, as mgeval does; a rest lengthens the interval between the
//! onsets around it but is not a note. Histograms and transition matrices are normalised to sum
//! to 1 (mgeval's `normalize=2`), so that they describe a melody's proportions, not its length.
//! A feature with nothing to count (no notes, one note for an interval) is 0.

use crate::melody::{Span, Symbol, C_MAJOR_PITCH_CLASSES};

/// Note lengths in sixteenth steps that have a class of their own: the encoder's accepted
/// durations (16th, 8th, dotted 8th, quarter, dotted quarter, half, dotted half, whole). Every
/// other length falls in one more class, the last.
pub const NOTE_LENGTH_STEPS: [u32; 8] = [1, 2, 3, 4, 6, 8, 12, 16];
/// The classes of the note-length histogram: [`NOTE_LENGTH_STEPS`] and "any other length".
pub const NOTE_LENGTH_CLASSES: usize = NOTE_LENGTH_STEPS.len() + 1;

/// One feature, by the name reports give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    PitchCount,
    PitchRange,
    PitchClassHistogram,
    PitchClassTransitionMatrix,
    AveragePitchInterval,
    NoteCount,
    AverageInterOnsetInterval,
    NoteLengthHistogram,
    NoteLengthTransitionMatrix,
    RestRatio,
    OnScaleShare,
    LongestRepeat,
}

/// How a feature's values are laid out: one number, a vector, or a square matrix (row-major).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Scalar,
    Vector,
    Matrix { side: usize },
}

impl Feature {
    pub const ALL: [Feature; 12] = [
        Feature::PitchCount,
        Feature::PitchRange,
        Feature::PitchClassHistogram,
        Feature::PitchClassTransitionMatrix,
        Feature::AveragePitchInterval,
        Feature::NoteCount,
        Feature::AverageInterOnsetInterval,
        Feature::NoteLengthHistogram,
        Feature::NoteLengthTransitionMatrix,
        Feature::RestRatio,
        Feature::OnScaleShare,
        Feature::LongestRepeat,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Feature::PitchCount => "pitch_count",
            Feature::PitchRange => "pitch_range",
            Feature::PitchClassHistogram => "pitch_class_histogram",
            Feature::PitchClassTransitionMatrix => "pitch_class_transition_matrix",
            Feature::AveragePitchInterval => "average_pitch_interval",
            Feature::NoteCount => "note_count",
            Feature::AverageInterOnsetInterval => "average_inter_onset_interval",
            Feature::NoteLengthHistogram => "note_length_histogram",
            Feature::NoteLengthTransitionMatrix => "note_length_transition_matrix",
            Feature::RestRatio => "rest_ratio",
            Feature::OnScaleShare => "on_scale_share",
            Feature::LongestRepeat => "longest_repeat",
        }
    }

    pub fn shape(self) -> Shape {
        match self {
            Feature::PitchClassHistogram | Feature::NoteLengthHistogram => Shape::Vector,
            Feature::PitchClassTransitionMatrix => Shape::Matrix { side: 12 },
            Feature::NoteLengthTransitionMatrix => Shape::Matrix {
                side: NOTE_LENGTH_CLASSES,
            },
            _ => Shape::Scalar,
        }
    }

    /// The feature's values in `features`, flattened (a matrix row by row).
    pub fn values(self, features: &MelodyFeatures) -> &[f64] {
        match self {
            Feature::PitchCount => std::slice::from_ref(&features.pitch_count),
            Feature::PitchRange => std::slice::from_ref(&features.pitch_range),
            Feature::PitchClassHistogram => &features.pitch_class_histogram,
            Feature::PitchClassTransitionMatrix => {
                features.pitch_class_transition_matrix.as_flattened()
            }
            Feature::AveragePitchInterval => std::slice::from_ref(&features.average_pitch_interval),
            Feature::NoteCount => std::slice::from_ref(&features.note_count),
            Feature::AverageInterOnsetInterval => {
                std::slice::from_ref(&features.average_inter_onset_interval)
            }
            Feature::NoteLengthHistogram => &features.note_length_histogram,
            Feature::NoteLengthTransitionMatrix => {
                features.note_length_transition_matrix.as_flattened()
            }
            Feature::RestRatio => std::slice::from_ref(&features.rest_ratio),
            Feature::OnScaleShare => std::slice::from_ref(&features.on_scale_share),
            Feature::LongestRepeat => std::slice::from_ref(&features.longest_repeat),
        }
    }
}

/// Every feature of one melody. Lengths and times are in sixteenth steps.
#[derive(Clone, Debug, PartialEq)]
pub struct MelodyFeatures {
    /// Distinct MIDI pitches among the notes.
    pub pitch_count: f64,
    /// Highest − lowest MIDI pitch.
    pub pitch_range: f64,
    /// Share of notes on each pitch class C, C♯, …, B (a note counts once, whatever its length).
    pub pitch_class_histogram: [f64; 12],
    /// Row a, column b: share of consecutive note pairs (rests skipped) going from class a to b.
    pub pitch_class_transition_matrix: [[f64; 12]; 12],
    /// Mean |pₖ₊₁ − pₖ| in semitones over consecutive notes (rests skipped).
    pub average_pitch_interval: f64,
    pub note_count: f64,
    /// Mean of onsetₖ₊₁ − onsetₖ over consecutive notes, a rest between them included.
    pub average_inter_onset_interval: f64,
    /// Share of notes in each length class ([`NOTE_LENGTH_STEPS`], then any other length).
    pub note_length_histogram: [f64; NOTE_LENGTH_CLASSES],
    /// Row a, column b: share of consecutive note pairs going from length class a to b.
    pub note_length_transition_matrix: [[f64; NOTE_LENGTH_CLASSES]; NOTE_LENGTH_CLASSES],
    /// Share of the melody's steps that are a rest or hold a rest.
    pub rest_ratio: f64,
    /// Share of notes on a pitch class of C major / A minor (C D E F G A B).
    pub on_scale_share: f64,
    /// The longest run of symbols that occurs twice without overlapping, in steps.
    pub longest_repeat: f64,
}

impl MelodyFeatures {
    /// The features of the melody made of `spans`.
    pub fn of(spans: &[Span]) -> MelodyFeatures {
        // (onset step, pitch, length) of every note.
        let mut notes: Vec<(u32, u8, u32)> = Vec::new();
        let mut onset = 0;
        for span in spans {
            if let Some(pitch) = span.pitch {
                notes.push((onset, pitch, span.steps));
            }
            onset += span.steps;
        }
        let total_steps = onset;
        let rest_steps: u32 = spans
            .iter()
            .filter(|s| s.pitch.is_none())
            .map(|s| s.steps)
            .sum();

        let pitches: Vec<u8> = notes.iter().map(|&(_, pitch, _)| pitch).collect();
        let classes: Vec<usize> = pitches.iter().map(|&p| (p % 12) as usize).collect();
        let length_classes: Vec<usize> = notes
            .iter()
            .map(|&(_, _, length)| length_class(length))
            .collect();
        let mut distinct = pitches.clone();
        distinct.sort_unstable();
        distinct.dedup();

        MelodyFeatures {
            pitch_count: distinct.len() as f64,
            pitch_range: match (distinct.first(), distinct.last()) {
                (Some(&low), Some(&high)) => (high - low) as f64,
                _ => 0.0,
            },
            pitch_class_histogram: histogram(&classes),
            pitch_class_transition_matrix: transition_matrix(&classes),
            average_pitch_interval: mean_step(&pitches, |a, b| (b as f64 - a as f64).abs()),
            note_count: notes.len() as f64,
            average_inter_onset_interval: mean_step(&notes, |a, b| (b.0 - a.0) as f64),
            note_length_histogram: histogram(&length_classes),
            note_length_transition_matrix: transition_matrix(&length_classes),
            rest_ratio: share(rest_steps as usize, total_steps as usize),
            on_scale_share: share(
                pitches
                    .iter()
                    .filter(|&&p| C_MAJOR_PITCH_CLASSES.contains(&(p % 12)))
                    .count(),
                pitches.len(),
            ),
            longest_repeat: longest_repeat(&steps_of(spans)) as f64,
        }
    }
}

/// The class of a note `length` steps long: its index in [`NOTE_LENGTH_STEPS`], else the last.
pub fn length_class(length: u32) -> usize {
    NOTE_LENGTH_STEPS
        .iter()
        .position(|&steps| steps == length)
        .unwrap_or(NOTE_LENGTH_STEPS.len())
}

/// The longest run that occurs twice without overlap: for every shift d, the longest stretch of
/// positions i with s[i] = s[i + d], capped at d so the two copies do not overlap. O(n²).
pub fn longest_repeat<T: PartialEq>(symbols: &[T]) -> usize {
    let mut longest = 0;
    for shift in 1..symbols.len() {
        let mut run = 0;
        for i in 0..symbols.len() - shift {
            if symbols[i] == symbols[i + shift] {
                run += 1;
                longest = longest.max(run.min(shift));
            } else {
                run = 0;
            }
        }
    }
    longest
}

/// The melody step by step: its onset symbol, then a hold for each further step.
fn steps_of(spans: &[Span]) -> Vec<Symbol> {
    spans
        .iter()
        .flat_map(|span| {
            let onset = span.pitch.map_or(Symbol::Rest, Symbol::Pitch);
            std::iter::once(onset).chain((1..span.steps).map(|_| Symbol::Hold))
        })
        .collect()
}

/// count / total, or 0 when there is nothing to count.
fn share(count: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

/// Mean of `step(xₖ, xₖ₊₁)` over consecutive items; 0 with fewer than two.
fn mean_step<T: Copy>(items: &[T], step: impl Fn(T, T) -> f64) -> f64 {
    let steps: Vec<f64> = items.windows(2).map(|w| step(w[0], w[1])).collect();
    if steps.is_empty() {
        0.0
    } else {
        steps.iter().sum::<f64>() / steps.len() as f64
    }
}

/// Share of each class among `classes` (each < N).
fn histogram<const N: usize>(classes: &[usize]) -> [f64; N] {
    let mut counts = [0.0; N];
    for &class in classes {
        counts[class] += 1.0;
    }
    counts.map(|count| count / classes.len().max(1) as f64)
}

/// Share of each (from, to) pair among consecutive classes.
fn transition_matrix<const N: usize>(classes: &[usize]) -> [[f64; N]; N] {
    let mut counts = [[0.0; N]; N];
    for pair in classes.windows(2) {
        counts[pair[0]][pair[1]] += 1.0;
    }
    let transitions = classes.len().saturating_sub(1).max(1) as f64;
    counts.map(|row| row.map(|count| count / transitions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::melody::spans;

    /// Two bars: a leading rest, the phrase 60 62 64 twice, a lone F♯ and a closing rest.
    const MELODY: &str = "r _ 60 _ _ _ 62 _ 64 _ _ _ _ 60 _ _ _ 62 _ 64 _ _ _ _ 66 r";

    fn features(text: &str) -> MelodyFeatures {
        let symbols: Vec<&str> = text.split_whitespace().collect();
        MelodyFeatures::of(&spans(&symbols).unwrap())
    }

    #[test]
    fn every_feature_of_a_hand_counted_melody() {
        // Notes (onset, pitch, length): (2,60,4) (6,62,2) (8,64,5) (13,60,4) (17,62,2)
        // (19,64,5) (24,66,1); rests of 2 and 1 steps; 26 steps.
        let f = features(MELODY);
        assert_eq!(f.pitch_count, 4.0);
        assert_eq!(f.pitch_range, 6.0);
        let mut pitch_classes = [0.0; 12];
        pitch_classes[0] = 2.0 / 7.0;
        pitch_classes[2] = 2.0 / 7.0;
        pitch_classes[4] = 2.0 / 7.0;
        pitch_classes[6] = 1.0 / 7.0;
        assert_eq!(f.pitch_class_histogram, pitch_classes);
        // C→D, D→E, E→C, C→D, D→E, E→F♯.
        let mut pitch_transitions = [[0.0; 12]; 12];
        pitch_transitions[0][2] = 2.0 / 6.0;
        pitch_transitions[2][4] = 2.0 / 6.0;
        pitch_transitions[4][0] = 1.0 / 6.0;
        pitch_transitions[4][6] = 1.0 / 6.0;
        assert_eq!(f.pitch_class_transition_matrix, pitch_transitions);
        // |2| |2| |−4| |2| |2| |2|
        assert_eq!(f.average_pitch_interval, 14.0 / 6.0);
        assert_eq!(f.note_count, 7.0);
        // 4 2 5 4 2 5
        assert_eq!(f.average_inter_onset_interval, 22.0 / 6.0);
        // Lengths 4 2 5 4 2 5 1: classes quarter, eighth, other, …, sixteenth.
        let (sixteenth, eighth, quarter, other) = (0, 1, 3, 8);
        let mut lengths = [0.0; NOTE_LENGTH_CLASSES];
        lengths[sixteenth] = 1.0 / 7.0;
        lengths[eighth] = 2.0 / 7.0;
        lengths[quarter] = 2.0 / 7.0;
        lengths[other] = 2.0 / 7.0;
        assert_eq!(f.note_length_histogram, lengths);
        let mut length_transitions = [[0.0; NOTE_LENGTH_CLASSES]; NOTE_LENGTH_CLASSES];
        length_transitions[quarter][eighth] = 2.0 / 6.0;
        length_transitions[eighth][other] = 2.0 / 6.0;
        length_transitions[other][quarter] = 1.0 / 6.0;
        length_transitions[other][sixteenth] = 1.0 / 6.0;
        assert_eq!(f.note_length_transition_matrix, length_transitions);
        assert_eq!(f.rest_ratio, 3.0 / 26.0);
        assert_eq!(f.on_scale_share, 6.0 / 7.0);
        // "60 _ _ _ 62 _ 64 _ _ _ _" at steps 2 and 13.
        assert_eq!(f.longest_repeat, 11.0);
    }

    #[test]
    fn feature_values_follow_the_feature_list() {
        let f = features(MELODY);
        let lengths: Vec<usize> = Feature::ALL.iter().map(|x| x.values(&f).len()).collect();
        assert_eq!(lengths, [1, 1, 12, 144, 1, 1, 1, 9, 81, 1, 1, 1]);
        assert_eq!(Feature::PitchRange.values(&f), [6.0]);
        assert_eq!(
            Feature::PitchClassTransitionMatrix.values(&f)[2],
            2.0 / 6.0,
            "row 0 (C), column 2 (D)"
        );
    }

    #[test]
    fn empty_and_silent_melodies_are_all_zero_but_the_rests() {
        let empty = features("");
        assert!(Feature::ALL
            .iter()
            .all(|x| x.values(&empty).iter().all(|&v| v == 0.0)));
        let silent = features("r _ r _");
        assert_eq!(silent.rest_ratio, 1.0);
        assert_eq!(silent.note_count, 0.0);
        assert_eq!(silent.longest_repeat, 2.0, "`r _` twice");
    }

    #[test]
    fn longest_repeat_does_not_let_the_copies_overlap() {
        assert_eq!(longest_repeat(&[1, 1, 1, 1, 1]), 2);
        assert_eq!(longest_repeat(&[1, 2, 3, 1, 2, 3, 1]), 3);
        assert_eq!(longest_repeat(&[1, 2, 3]), 0);
        assert_eq!(longest_repeat::<u8>(&[]), 0);
    }

    #[test]
    fn note_lengths_outside_the_encoder_durations_share_one_class() {
        assert_eq!(
            [1, 3, 16, 5, 32].map(length_class),
            [0, 2, 7, NOTE_LENGTH_STEPS.len(), NOTE_LENGTH_STEPS.len()]
        );
    }
}
