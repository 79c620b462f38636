//! A tune's notes as written, or with its repeats and alternative endings played out.

use std::fmt;

use super::lex::Bar;
use super::Item;
use crate::kern::Event;

/// Why repeats cannot be played out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepeatError {
    /// A first ending that no `:|` closes.
    OpenEnding,
    /// A second ending with no first ending before it.
    LoneEnding,
}

impl fmt::Display for RepeatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RepeatError::OpenEnding => "a first ending that no :| closes",
            RepeatError::LoneEnding => "a second ending without a first",
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

/// The notes with every `|: … :|` section played twice; a section with a first ending `[1` plays
/// it the first time and skips it the second, going on at the `[2` after the `:|`. A `:|` with
/// no `|:` before it repeats from the start of the tune or from the previous `:|`.
pub(super) fn expand(items: &[Item]) -> Result<Vec<Event>, (usize, RepeatError)> {
    let mut out = Vec::new();
    let mut section_start = 0;
    let mut first_ending: Option<usize> = None;
    let mut line = 0;
    for (i, item) in items.iter().enumerate() {
        if let Some(event) = item.sounding().copied() {
            line = event.line;
            out.push(event);
            continue;
        }
        match item {
            Item::Bar(Bar::RepeatStart) => {
                section_start = i;
                first_ending = None;
            }
            Item::Bar(Bar::Ending(1)) => first_ending = Some(i),
            Item::Bar(Bar::Ending(_)) if first_ending.is_none() && section_start == 0 => {
                return Err((line, RepeatError::LoneEnding))
            }
            Item::Bar(Bar::RepeatEnd) => {
                let replay_end = first_ending.take().unwrap_or(i);
                out.extend(
                    items[section_start..replay_end]
                        .iter()
                        .filter_map(|it| it.sounding().copied()),
                );
                section_start = i;
            }
            _ => {}
        }
    }
    if first_ending.is_some() {
        return Err((line, RepeatError::OpenEnding));
    }
    Ok(out)
}
