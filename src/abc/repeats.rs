//! A tune's notes as written, or with its repeats and alternative endings played out the way
//! music21 10.5.1 plays them (`Stream.expandRepeats()`), because the reference encodings carry
//! its reading.
//!
//! music21 works on measures, not on bar lines: its ABC translation cuts the tune into measures
//! (`ABCHandler.splitByMeasure`, `mergeLeadingMetaData`, `abcToStreamPart`), a `|:` becoming the
//! left bar line of the measure after it, a `:|` the right bar line of the measure before it, and
//! `[1`/`[2` opening repeat brackets that a `:|` or the next ending closes; `reBar` then splits
//! over-long measures, moving the right bar line to the left of the second piece. The
//! `repeat.Expander` pass then plays the innermost repeat out again and again, each time from
//! the last `|:` before the first `:|` (from the start of the tune where there is none, so a
//! `:|` without `|:` replays everything before it, repeats already played out included), and
//! plays first and second endings once each. This module ports those steps; where music21 raises,
//! the tune gets the matching [`RepeatError`].

use std::collections::HashSet;
use std::fmt;

use super::lex::Bar;
use super::Item;
use crate::kern::Event;

/// Why repeats cannot be played out: where music21's `expandRepeats()` raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepeatError {
    /// Start and end repeats that do not pair up (`Expander.repeatBarsAreCoherent`).
    UnpairedRepeats,
    /// Endings that no end repeat closes, or numbered out of order
    /// (`Expander._repeatBracketsAreCoherent`).
    UnpairedEndings,
    /// A repeat or ending whose end cannot be found while playing it out.
    LostEnd,
    /// Played out, more than 65,536 measures or notes: each `:|` without `|:` doubles what
    /// comes before it, so forged input would never end.
    TooLong,
}

impl fmt::Display for RepeatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RepeatError::UnpairedRepeats => "start and end repeats that do not pair up",
            RepeatError::UnpairedEndings => "an ending that no :| closes, or endings out of order",
            RepeatError::LostEnd => "a repeat whose end cannot be found",
            RepeatError::TooLong => "more than 65,536 measures or notes played out",
        })
    }
}

/// The notes in written order, grace notes left out.
pub(super) fn as_written(items: &[Item]) -> Vec<Event> {
    items
        .iter()
        .filter_map(|item| item.sounding().copied())
        .collect()
}

/// The notes with repeats and endings played out as music21 plays them; the error carries the
/// line of the tune's last note.
pub(super) fn expand(items: &[Item]) -> Result<Vec<Event>, (usize, RepeatError)> {
    let events = as_written(items);
    let line = events.last().map_or(0, |e| e.line);
    let (measures, brackets) = measures(items);
    let expander = Expander {
        brackets,
        next_id: measures.len(),
    };
    let played = expander.process(measures).map_err(|why| (line, why))?;
    Ok(played
        .iter()
        .flat_map(|m| events[m.events.clone()].iter().copied())
        .collect())
}

/// A music21 measure: its notes (a range of the tune's sounding events) and its repeat bar
/// lines. `id` stands for the Python object's identity, which repeat brackets refer to: a
/// measure copied while a repeat is played out gets a new one.
#[derive(Clone, Debug)]
struct Measure {
    id: usize,
    events: std::ops::Range<usize>,
    left: Option<Repeat>,
    /// A `:|` closes the measure.
    right_end: bool,
}

/// A repeat sign on a measure's left side: `|:`, or a `:|` that `reBar` moved there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeat {
    Start,
    End,
}

impl Measure {
    /// `Expander._stripRepeatBarlines`.
    fn strip(&mut self) {
        self.left = None;
        self.right_end = false;
    }
}

/// A first or second ending: its number and the measures it spans, in the order music21 added
/// them (the first and the closing one only, as its ABC translation adds them).
#[derive(Debug)]
struct Bracket {
    number: u8,
    measures: Vec<usize>,
}

impl Bracket {
    fn first(&self) -> usize {
        self.measures[0]
    }

    fn last(&self) -> usize {
        *self.measures.last().expect("a bracket spans a measure")
    }
}

/// What music21's measure splitter sees of an item.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Bar(Bar),
    Field,
    Note,
    Other,
}

fn class(item: &Item) -> Option<Class> {
    Some(match item {
        Item::Bar(bar) => Class::Bar(*bar),
        Item::Field | Item::Meter(_) | Item::Key(_) => Class::Field,
        Item::Note { .. } | Item::Chord { .. } | Item::BadLength { .. } => Class::Note,
        Item::None => Class::Other,
        Item::Split => return None,
    })
}

/// One measure's share of the items before merging: its bars and its items (indices).
#[derive(Clone, Default)]
struct Handler {
    left: Option<Bar>,
    right: Option<Bar>,
    items: Vec<usize>,
    has_notes: bool,
}

impl Handler {
    /// `ABCHandlerBar.__add__`: the other's bar wins where both have one.
    fn merge(mut self, other: Handler) -> Handler {
        self.items.extend(other.items);
        self.left = other.left.or(self.left);
        self.right = other.right.or(self.right);
        self.has_notes |= other.has_notes;
        self
    }
}

/// The tune's measures and complete repeat brackets, as music21's ABC translation and `reBar`
/// make them (`reBar`'s split is the [`Item::Split`] that `rebar` left).
fn measures(items: &[Item]) -> (Vec<Measure>, Vec<Bracket>) {
    // Positions of the tokens music21 has (split marks are ours).
    let tokens: Vec<(usize, Class)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| Some((i, class(item)?)))
        .collect();
    let handlers = merge_leading_fields(split_by_measure(&tokens));
    let mut event_index = vec![0; items.len() + 1];
    for (i, item) in items.iter().enumerate() {
        event_index[i + 1] = event_index[i] + usize::from(item.sounding().is_some());
    }
    let mut measures: Vec<Measure> = Vec::new();
    let mut brackets: Vec<(Bracket, bool)> = Vec::new(); // (bracket, complete)
    for handler in handlers.iter().filter(|h| h.has_notes) {
        let id = measures.len();
        let open = brackets.iter().position(|(_, complete)| !complete);
        if let Some(Bar::Ending(number)) = handler.left {
            let at = match open {
                None => {
                    brackets.push((
                        Bracket {
                            number,
                            measures: vec![id],
                        },
                        false,
                    ));
                    brackets.len() - 1
                }
                Some(at) => {
                    brackets[at].0.measures.push(id);
                    brackets[at].1 = true;
                    at
                }
            };
            // An ABC second ending closes at once.
            if number == 2 {
                brackets[at].1 = true;
            }
        }
        let right_end = handler.right == Some(Bar::RepeatEnd);
        if right_end {
            if let Some((bracket, complete)) = brackets.iter_mut().find(|(_, c)| !c) {
                if bracket.last() != id {
                    bracket.measures.push(id);
                }
                *complete = true;
            }
        }
        let (first, last) = (handler.items[0], *handler.items.last().expect("items"));
        let mut measure = Measure {
            id,
            events: event_index[first]..event_index[last + 1],
            left: (handler.left == Some(Bar::RepeatStart)).then_some(Repeat::Start),
            right_end,
        };
        // reBar's second piece: a measure of its own, after the first in the stream, that takes
        // the right bar line to its left and belongs to no bracket.
        let split = (first..=last).find(|&i| matches!(items[i], Item::Split));
        if let Some(at) = split {
            let second = Measure {
                id: id + 1,
                events: event_index[at]..measure.events.end,
                left: measure.right_end.then_some(Repeat::End),
                right_end: false,
            };
            measure.events.end = event_index[at];
            measure.right_end = false;
            measures.extend([measure, second]);
        } else {
            measures.push(measure);
        }
    }
    let complete = brackets
        .into_iter()
        .filter(|(_, complete)| *complete)
        .map(|(bracket, _)| bracket)
        .collect();
    (measures, complete)
}

/// `ABCHandler.splitByMeasure`: the tokens between bar lines (and before the note after a field),
/// with the bars at each end.
fn split_by_measure(tokens: &[(usize, Class)]) -> Vec<Handler> {
    let is_note = |k: usize| tokens.get(k).is_some_and(|t| t.1 == Class::Note);
    let bar_indices: Vec<usize> = (0..tokens.len())
        .filter(|&k| {
            matches!(tokens[k].1, Class::Bar(_)) || tokens[k].1 == Class::Field && is_note(k + 1)
        })
        .collect();
    let Some(last) = tokens.len().checked_sub(1) else {
        return Vec::new();
    };
    // `_buildMeasureBoundaryIndices`: adjacent bar positions make no measure.
    let mut pairs = Vec::new();
    let mut i = bar_indices.first().copied().unwrap_or(last);
    pairs.push((0, i));
    for &j in bar_indices.iter().skip(1) {
        if j != i + 1 {
            pairs.push((i, j));
        }
        i = j;
    }
    if i != last {
        pairs.push((i, last));
    }
    let mut handlers = Vec::new();
    for (x, y) in pairs {
        let mut handler = Handler::default();
        let mut from = x;
        match tokens[x].1 {
            Class::Bar(bar) => {
                // An end repeat on the left was the previous measure's right bar.
                if bar != Bar::RepeatEnd {
                    handler.left = Some(bar);
                }
                from = x + 1;
            }
            Class::Field if x != 0 => from = x + 1,
            _ => {}
        }
        let mut to = y + 1;
        match tokens[y].1 {
            Class::Bar(bar) => {
                if bar != Bar::RepeatStart {
                    handler.right = Some(bar);
                }
                to = y;
            }
            Class::Field => {}
            Class::Note if y == last => {}
            _ => to = y,
        }
        if from >= to {
            continue;
        }
        let (first, end) = (tokens[from].0, tokens[to - 1].0);
        handler.items = (first..=end).collect();
        handler.has_notes = tokens[from..to].iter().any(|t| t.1 == Class::Note);
        handlers.push(handler);
    }
    handlers
}

/// `mergeLeadingMetaData`: a measure without notes joins the next one; with one measure of
/// notes or none, the tune is one measure (where music21 makes none and cannot play it out).
fn merge_leading_fields(handlers: Vec<Handler>) -> Vec<Handler> {
    if handlers.iter().filter(|h| h.has_notes).count() <= 1 {
        return handlers
            .into_iter()
            .reduce(Handler::merge)
            .into_iter()
            .collect();
    }
    let mut merged = Vec::with_capacity(handlers.len());
    let mut rest = handlers.into_iter().peekable();
    while let Some(handler) = rest.next() {
        match rest.peek() {
            Some(_) if !handler.has_notes => {
                let next = rest.next().expect("peeked");
                merged.push(handler.merge(next));
            }
            _ => merged.push(handler),
        }
    }
    merged
}

/// music21's `repeat.Expander`, on measures.
struct Expander {
    brackets: Vec<Bracket>,
    next_id: usize,
}

/// `Expander.process`'s safety bound on passes.
const MAX_PASSES: usize = 100;

/// Our bound on the measures, and on the notes, played out: a tune that long is past the 65,536
/// steps `encode` takes anyway (every note it keeps fills at least one step), and a few
/// kilobytes of `:|` would otherwise ask for gigabytes.
const MAX_PLAYED: usize = 1 << 16;

impl Expander {
    fn process(mut self, source: Vec<Measure>) -> Result<Vec<Measure>, RepeatError> {
        if !has_repeat(&source) {
            return Ok(source);
        }
        if !repeat_bars_are_coherent(&source) {
            return Err(RepeatError::UnpairedRepeats);
        }
        if !self.brackets_are_coherent(&source) {
            return Err(RepeatError::UnpairedEndings);
        }
        let mut stream = source;
        let mut used = HashSet::new();
        for _ in 0..MAX_PASSES {
            stream = self.innermost_repeats_and_brackets(stream, &mut used)?;
            let notes: usize = stream.iter().map(|m| m.events.len()).sum();
            if stream.len() > MAX_PLAYED || notes > MAX_PLAYED {
                return Err(RepeatError::TooLong);
            }
            if !has_repeat(&stream) {
                break;
            }
        }
        Ok(stream)
    }

    /// `_groupRepeatBracketIndices`: the brackets in the order their first measures come, a new
    /// group starting where a number comes again.
    fn groups(&self, stream: &[Measure]) -> Vec<Vec<usize>> {
        let mut groups = Vec::new();
        let mut group: Vec<usize> = Vec::new();
        let mut numbers = Vec::new();
        for measure in stream {
            for (b, bracket) in self.brackets.iter().enumerate() {
                if bracket.first() == measure.id {
                    if numbers.contains(&bracket.number) {
                        groups.push(std::mem::take(&mut group));
                        numbers.clear();
                    }
                    numbers.push(bracket.number);
                    group.push(b);
                }
            }
        }
        groups.push(group);
        groups
    }

    /// `_repeatBracketsAreCoherent`.
    fn brackets_are_coherent(&self, stream: &[Measure]) -> bool {
        let right_end = |id: usize| {
            stream
                .iter()
                .find(|m| m.id == id)
                .is_some_and(|m| m.right_end)
        };
        for group in self.groups(stream) {
            if group.is_empty() {
                return true;
            }
            if group.len() > 1 {
                let numbers: Vec<u8> = group.iter().map(|&b| self.brackets[b].number).collect();
                let max = numbers.iter().copied().max().unwrap_or(0);
                if numbers != (1..=max).collect::<Vec<u8>>() {
                    return false;
                }
            }
            let mut spanned = HashSet::new();
            for (count, &b) in group.iter().enumerate() {
                let bracket = &self.brackets[b];
                if !bracket.measures.iter().all(|&id| spanned.insert(id)) {
                    return false;
                }
                if !right_end(bracket.last()) && (group.len() == 1 || count < group.len() - 1) {
                    return false;
                }
            }
        }
        true
    }

    /// `_processInnermostRepeatsAndBrackets`: the innermost repeat played out, with its
    /// endings when a bracket not yet used starts or ends it.
    fn innermost_repeats_and_brackets(
        &mut self,
        stream: Vec<Measure>,
        used: &mut HashSet<usize>,
    ) -> Result<Vec<Measure>, RepeatError> {
        let innermost = innermost_repeat(&stream);
        let focus = match (innermost.first(), innermost.last()) {
            (Some(&start), Some(&end)) => {
                let ends = [stream[start].id, stream[end].id];
                self.groups(&stream).into_iter().find(|group| {
                    group
                        .iter()
                        .take_while(|b| !used.contains(*b))
                        .any(|&b| self.brackets[b].measures.iter().any(|id| ends.contains(id)))
                })
            }
            _ => None,
        };
        let Some(group) = focus else {
            return self.innermost_repeat_bars(&stream, None, false);
        };
        let start = innermost[0];
        let index_of = |id: usize| stream.iter().position(|m| m.id == id);
        let mut boundaries: Vec<(Vec<usize>, Vec<usize>)> = Vec::new(); // (indices, bracket's)
        for &b in &group {
            used.insert(b);
            let bracket = &self.brackets[b];
            let (Some(end), Some(bracket_start)) =
                (index_of(bracket.last()), index_of(bracket.first()))
            else {
                return Err(RepeatError::LostEnd);
            };
            let indices = (start..=end)
                .filter(|q| !boundaries.iter().any(|(_, taken)| taken.contains(q)))
                .collect();
            boundaries.push((indices, (bracket_start..=end).collect()));
        }
        let mut played: Vec<Measure> = stream[..start].to_vec();
        let mut highest = None;
        for (indices, _) in boundaries {
            let section = self.innermost_repeat_bars(&stream, Some((&indices, 1)), true)?;
            played.extend(section.into_iter().map(|mut m| {
                m.strip();
                m
            }));
            highest = Some(indices.iter().copied().max().ok_or(RepeatError::LostEnd)?);
        }
        let after = highest.map_or(stream.len(), |h| h + 1);
        played.extend(stream.into_iter().skip(after));
        Ok(played)
    }

    /// `processInnermostRepeatBars`: the measures at `indices` (the innermost repeat when none
    /// are given) played `times` times (as the repeat says when not given), the rest kept unless
    /// `expansion_only`.
    fn innermost_repeat_bars(
        &mut self,
        stream: &[Measure],
        forced: Option<(&[usize], usize)>,
        expansion_only: bool,
    ) -> Result<Vec<Measure>, RepeatError> {
        let found;
        let indices: &[usize] = match forced {
            Some((indices, _)) => indices,
            None => {
                found = innermost_repeat(stream);
                &found
            }
        };
        let mut played = Vec::new();
        let (Some(&first), Some(&last)) = (indices.first(), indices.last()) else {
            return Ok(played);
        };
        let mut strip_next = false;
        let mut i = 0;
        while i < stream.len() {
            if i != first {
                if !expansion_only {
                    let mut measure = stream[i].clone();
                    if std::mem::take(&mut strip_next) {
                        measure.strip();
                    }
                    played.push(measure);
                }
                i += 1;
                continue;
            }
            let (times, end_on_next) = match (end_repeat_bar(stream, last), forced) {
                (Ok(end_on_next), Some((_, times))) => (times, end_on_next),
                (Ok(end_on_next), None) => (2, end_on_next),
                (Err(_), Some((_, times))) => (times, false),
                (Err(why), None) => return Err(why),
            };
            for _ in 0..times {
                for &j in indices {
                    let mut copy = stream[j].clone();
                    copy.id = self.next_id;
                    self.next_id += 1;
                    if j == first || j == last {
                        copy.strip();
                    }
                    played.push(copy);
                }
            }
            strip_next = end_on_next;
            i = last + 1;
        }
        Ok(played)
    }
}

/// `_hasRepeat`: a repeat sign left to play out.
fn has_repeat(stream: &[Measure]) -> bool {
    stream.iter().any(|m| m.left.is_some() || m.right_end)
}

/// `repeatBarsAreCoherent`: an end without a start before it counts as if the start were there.
fn repeat_bars_are_coherent(stream: &[Measure]) -> bool {
    let (mut starts, mut ends, mut balance) = (0i64, 0i64, 0i64);
    let mut end = |starts: &mut i64, balance: &mut i64| {
        if *balance == 0 {
            *starts += 1;
            *balance += 1;
        }
        ends += 1;
        *balance -= 1;
    };
    for measure in stream {
        match measure.left {
            Some(Repeat::Start) => {
                starts += 1;
                balance += 1;
            }
            Some(Repeat::End) => end(&mut starts, &mut balance),
            None => {}
        }
        if measure.right_end {
            end(&mut starts, &mut balance);
        }
    }
    (0..=1).contains(&balance) && (starts == ends || starts == ends - 1)
}

/// `findInnermostRepeatIndices`: from the last `|:` before the first end repeat (the start of
/// the tune without one) to that end; empty when no end repeat comes.
fn innermost_repeat(stream: &[Measure]) -> Vec<usize> {
    let mut last_start = None;
    for (i, measure) in stream.iter().enumerate() {
        match measure.left {
            Some(Repeat::Start) => last_start = Some(i),
            Some(Repeat::End) => return (last_start.unwrap_or(0)..i).collect(),
            None => {}
        }
        if measure.right_end {
            return (last_start.unwrap_or(0)..=i).collect();
        }
    }
    Vec::new()
}

/// `_getEndRepeatBar`: whether the end repeat of the section ending at `index` sits on the left
/// of the next measure (true) or on the right of this one (false).
fn end_repeat_bar(stream: &[Measure], index: usize) -> Result<bool, RepeatError> {
    if stream[index].right_end {
        return Ok(false);
    }
    match stream.get(index + 1) {
        Some(next) if next.left == Some(Repeat::End) => Ok(true),
        _ => Err(RepeatError::LostEnd),
    }
}

#[cfg(test)]
mod tests {
    use crate::abc::{parse, ErrorKind};

    use super::RepeatError;

    /// The letters of the first tune's notes, played out.
    fn played(abc: &str) -> Result<String, ErrorKind> {
        let tunes = parse(abc.as_bytes(), true);
        let song = tunes[0].song.clone().map_err(|e| e.kind)?;
        Ok(song
            .events
            .iter()
            .map(|e| b"CDEFGAB"[e.pitch.unwrap().step as usize] as char)
            .collect())
    }

    #[test]
    fn an_end_repeat_without_a_start_replays_from_the_top_repeats_included() {
        // music21 10.5.1 plays the measures 0 1 0a 1a 2 3 0 1 0a 1a 2 4: the endings' `:|` has
        // no `|:`, so the first ending's repeat starts at the top, the played-out repeat again.
        let tune = "X:1\nM:2/4\nL:1/8\nK:C\n|: AB cd | e4 :| f2 g2 |1 a4 :|2 b4 |]\n";
        assert_eq!(played(tune).unwrap(), "ABCDEABCDEFGAABCDEABCDEFGB");
    }

    #[test]
    fn a_double_repeat_ends_one_section_and_starts_the_next() {
        // music21 10.5.1: measures 0 1 0a 1a 2 3 2a 3a 4.
        let tune = "X:1\nM:2/4\nL:1/8\nK:C\nAB cd | e2 f2 :: g2 a2 | b2 c2 :| d4 |]\n";
        assert_eq!(played(tune).unwrap(), "ABCDEFABCDEFGABCGABCD");
    }

    #[test]
    fn an_end_repeat_moved_by_a_split_measure_leaves_its_ending_open() {
        // music21 raises: reBar moves the first ending's `:|` to the measure it splits off.
        let tune = "X:1\nM:2/4\nL:1/8\nK:C\n|: AB cd | e4 :| f2 g2 |1 a4 b4 :|2 b4 |]\n";
        assert_eq!(
            played(tune),
            Err(ErrorKind::Repeats(RepeatError::UnpairedEndings))
        );
    }

    #[test]
    fn a_long_measure_doubled_stops_at_the_note_bound() {
        // 5,000 notes in one measure (no meter: nothing splits it) and 15 end repeats: about
        // 32,000 copies of it, 160 million notes, were it played out; the bound stops at 65,536.
        let tune = format!(
            "X:1\nL:1/8\nK:C\n{} |{}\n",
            "A".repeat(5000),
            " B :|".repeat(15)
        );
        assert_eq!(played(&tune), Err(ErrorKind::Repeats(RepeatError::TooLong)));
    }

    #[test]
    fn doubling_end_repeats_stop_at_the_bound() {
        let tune = format!("X:1\nM:2/4\nL:1/8\nK:C\n{}\n", "AB cd | e4 :|".repeat(40));
        assert_eq!(played(&tune), Err(ErrorKind::Repeats(RepeatError::TooLong)));
    }
}
