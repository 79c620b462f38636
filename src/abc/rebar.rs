//! music21's `reBar` (`abcFormat.translate`, 10.5.1), which the reference encodings carry: a
//! measure longer than the bar of the last time signature is split once at the bar's length.
//!
//! A note across the split becomes two tied pieces, each of which the duration filter sees (a
//! 6.0 in 4/4 passes as 4.0 + 2.0, and the tie merges it back into one 6.0); a rest across it
//! becomes two rests (`r _ r _` where the tune wrote `r _ _ _`). The second piece is not split
//! again, however long. A tune with no time signature before its first bar line is left as
//! written, as music21 gives up there. A meter field right after a bar line and right before a
//! note (`d2:|` newline `M:9/8` newline `B|`) is lost to music21's measure splitter
//! (`ABCHandler.splitByMeasure` clips a field that starts a measure), so the split goes on at
//! the old meter: ABC 2.1 §3.1.6 says the meter changes there, but the reference's repeats,
//! which follow the split measures, need music21's reading (O'Neill's 964, "Paddy the Piper").

use super::Item;
use crate::kern::{Event, QuarterLength, Tie};

/// The tune's items with every over-long measure split, an [`Item::Split`] at the split.
pub(super) fn rebar(items: &[&Item]) -> Vec<Item> {
    let mut out = Vec::with_capacity(items.len() + 8);
    let mut bar: Option<QuarterLength> = None;
    let mut start = 0;
    for measure in items.split_inclusive(|item| matches!(item, Item::Bar(_))) {
        for (i, item) in (start..).zip(measure) {
            if let Item::Meter((n, d)) = item {
                if !lost_to_the_splitter(items, i) {
                    bar = Some(QuarterLength::new(4 * *n as u64, *d as u64));
                }
            }
        }
        start += measure.len();
        let Some(bar) = bar else {
            out.extend(items[out.len()..].iter().map(|item| (*item).clone()));
            return out;
        };
        split_measure(measure, bar, &mut out);
    }
    out
}

/// Whether music21's measure splitter drops the field at `i`: one right after a bar line and
/// right before a note.
fn lost_to_the_splitter(items: &[&Item], i: usize) -> bool {
    i > 0
        && matches!(items[i - 1], Item::Bar(_))
        && matches!(
            items.get(i + 1),
            Some(Item::Note { .. } | Item::Chord { .. } | Item::BadLength { .. })
        )
}

/// One measure (its closing bar line included) into `out`, split at `bar` when it is longer.
/// Forged lengths whose sums do not fit in 64 bits leave the measure as written.
fn split_measure(measure: &[&Item], bar: QuarterLength, out: &mut Vec<Item>) {
    let end = measure.iter().try_fold(QuarterLength::ZERO, |end, item| {
        end.checked_add(item.sounding().map_or(QuarterLength::ZERO, |e| e.duration))
    });
    if end.is_none_or(|end| end <= bar) {
        out.extend(measure.iter().map(|item| (*item).clone()));
        return;
    }
    let mut offset = QuarterLength::ZERO;
    let mut split = false;
    for item in measure {
        let Some(event) = item.sounding().filter(|_| !split) else {
            out.push((*item).clone());
            continue;
        };
        let start = offset;
        let Some(next) = offset.checked_add(event.duration) else {
            out.push((*item).clone());
            split = true;
            continue;
        };
        offset = next;
        if start == bar {
            out.push(Item::Split);
            out.push((*item).clone());
            split = true;
        } else if start < bar && offset > bar {
            match pieces(event, bar.checked_sub(start), offset.checked_sub(bar)) {
                Some((head, tail)) => out.extend([head, Item::Split, tail]),
                None => out.push((*item).clone()),
            }
            split = true;
        } else {
            out.push((*item).clone());
        }
    }
}

/// The two pieces of a note split after `head` quarters, tied as music21 ties them; a rest's
/// pieces are two rests. None where a piece's length does not fit in 64 bits.
fn pieces(
    event: &Event,
    head: Option<QuarterLength>,
    tail: Option<QuarterLength>,
) -> Option<(Item, Item)> {
    let (head_tie, tail_tie) = match (event.pitch, event.tie) {
        (None, tie) => (tie, tie),
        (Some(_), Tie::None) => (Tie::Start, Tie::Stop),
        (Some(_), Tie::Start) => (Tie::Start, Tie::Continue),
        (Some(_), Tie::Stop) => (Tie::Continue, Tie::Stop),
        (Some(_), Tie::Continue) => (Tie::Continue, Tie::Continue),
    };
    let piece = |duration, tie| Item::Note {
        event: Event {
            duration,
            tie,
            ..*event
        },
        grace: false,
    };
    Some((piece(head?, head_tie), piece(tail?, tail_tie)))
}

#[cfg(test)]
mod tests {
    use crate::abc::parse;

    /// (duration in quarters, is a rest) of every event of the first tune.
    fn events(abc: &str) -> Vec<(f64, bool)> {
        let tunes = parse(abc.as_bytes(), false);
        let song = tunes[0].song.as_ref().unwrap();
        song.events
            .iter()
            .map(|e| (e.duration.as_f64(), e.pitch.is_none()))
            .collect()
    }

    #[test]
    fn an_over_long_measure_splits_once_at_the_bar() {
        // music21 10.5.1: `C8 D2 z3 E` in 2/4 → C 2.0 (tie start) | C 6.0 … : the first piece
        // ends at the bar, the rest stays whole; a rest across the bar becomes two rests.
        let song = "X:1\nM:2/4\nL:1/4\nK:C\nC8 D2 z3 E | z3 E |]\n";
        assert_eq!(
            events(song),
            vec![
                (2.0, false),
                (6.0, false),
                (2.0, false),
                (3.0, true),
                (1.0, false),
                (2.0, true),
                (1.0, true),
                (1.0, false),
            ]
        );
    }

    #[test]
    fn a_missing_bar_line_splits_a_rest() {
        let song = "X:25\nM:3/8\nL:1/16\nK:D\nA | A2AAAA | A2AAAA\nB4A2 | E4z4\nE2F2 | d4z\n";
        let rests: Vec<f64> = events(song)
            .into_iter()
            .filter(|(_, rest)| *rest)
            .map(|(d, _)| d)
            .collect();
        assert_eq!(rests, vec![0.5, 0.5, 0.25]);
    }
}
