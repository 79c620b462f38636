//! ABC text → tokens, the way music21's `ABCHandler.tokenize` cuts it, so that notes, bars and
//! fields fall where the reference encodings say they do.

/// One token and the 1-based line it starts on.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Token {
    pub kind: Kind,
    pub line: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Kind {
    /// A header line (`K: G`) or an inline field (`[K:G]`): the tag and the text after the colon,
    /// comment removed and trimmed.
    Field {
        tag: char,
        data: String,
        inline: bool,
    },
    Bar(Bar),
    /// `(p:q:r`: p notes in the time of q, for the next r notes (`q`, `r` absent when not written).
    Tuplet {
        p: u32,
        q: Option<u32>,
        r: Option<u32>,
    },
    /// `>`, `<<`, …: the run as written.
    Broken(String),
    Tie,
    /// A note or rest as written (`^c'3/2`, `"Am"z`); `carried` is the accidental an earlier
    /// note of the bar left (ABC 2 files only).
    Note {
        text: String,
        carried: String,
    },
    /// `[ceg]2`; `notes` is false for brackets holding no pitch.
    Chord {
        text: String,
        notes: bool,
    },
    GraceStart,
    GraceStop,
    /// A slur, decoration or articulation: nothing sounds, but it stands between notes (a broken
    /// rhythm mark needs a note on each side).
    Mark,
}

/// Bar lines, after music21's rewriting: `::` is `:|` then `|:`, `|1` is `|` then `[1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bar {
    /// `|`
    Plain,
    /// `||`, `|]`, `[|`, or a dotted bar `:`.
    Styled,
    RepeatStart,
    RepeatEnd,
    /// `[1`, `[2`: the start of an alternative ending.
    Ending(u8),
}

/// Bar symbols in music21's matching order: three characters, then two, then one.
const BARS: [(&str, &[Bar]); 14] = [
    (":|1", &[Bar::RepeatEnd, Bar::Ending(1)]),
    (":|2", &[Bar::RepeatEnd, Bar::Ending(2)]),
    ("|]", &[Bar::Styled]),
    ("||", &[Bar::Styled]),
    ("[|", &[Bar::Styled]),
    ("[1", &[Bar::Ending(1)]),
    ("[2", &[Bar::Ending(2)]),
    ("|1", &[Bar::Plain, Bar::Ending(1)]),
    ("|2", &[Bar::Plain, Bar::Ending(2)]),
    (":|", &[Bar::RepeatEnd]),
    ("|:", &[Bar::RepeatStart]),
    ("::", &[Bar::RepeatEnd, Bar::RepeatStart]),
    ("|", &[Bar::Plain]),
    (":", &[Bar::Styled]),
];

const ACCIDENTALS: &str = "^=_";
const DECORATIONS_AND_ACCIDENTALS: &str = ".~^=_HLMOPSTuv";
/// Letters that never start a pitch after a decoration.
const NOT_PITCH_AFTER_DECORATION: &str = "~wuvhHLTSN";
/// Whole tokens music21 reads as decorations or ignores (`x`, `Z`: invisible and multi-bar
/// rests, which it leaves out).
const IGNORED: [&str; 37] = [
    "w", "u", "v", "v.", "h", "H", "vk", "uk", "U", "~", ".", "=", "V", "S", "s", "i", "I", "ui",
    "u.", "Q", "Hy", "Hx", "r", "m", "M", "n", "N", "o", "O", "P", "l", "L", "R", "y", "T", "t",
    "x",
];

/// Cuts a whole file into tokens. `propagate` is true for ABC 2 files (`%abc-2…` in the first
/// 100 characters), where an accidental lasts to the bar line; in older files it marks its note
/// only, as music21 reads them.
pub(super) fn tokenize(text: &[char], propagate: bool) -> Vec<Token> {
    let mut lexer = Lexer {
        s: text,
        line: 1,
        counted_to: 0,
        tokens: Vec::new(),
    };
    lexer.run(propagate);
    lexer.tokens
}

struct Lexer<'a> {
    s: &'a [char],
    /// The line of `counted_to`.
    line: usize,
    counted_to: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn at(&self, i: usize) -> Option<char> {
        self.s.get(i).copied()
    }

    fn line_of(&mut self, pos: usize) -> usize {
        let end = pos.min(self.s.len());
        if end > self.counted_to {
            self.line += self.s[self.counted_to..end]
                .iter()
                .filter(|&&c| c == '\n')
                .count();
            self.counted_to = end;
        }
        self.line
    }

    fn push(&mut self, pos: usize, kind: Kind) {
        let line = self.line_of(pos);
        self.tokens.push(Token { kind, line });
    }

    fn line_end(&self, pos: usize) -> usize {
        self.s[pos..]
            .iter()
            .position(|&c| c == '\n')
            .map_or(self.s.len(), |n| pos + n)
    }

    fn run(&mut self, propagate: bool) {
        let n = self.s.len();
        let mut chord_symbol = String::new();
        // Accidentals written earlier in the bar, by pitch letter (ABC 2 files only).
        let mut accidentalized: Vec<(char, String)> = Vec::new();
        let mut accidental = String::new();
        let mut abc_pitch = String::new();
        let mut pos = 0;
        while pos < n {
            let c = self.s[pos];
            let (next, next_next) = (self.at(pos + 1), self.at(pos + 2));
            if c == '%' {
                pos = self.line_end(pos) + 1;
                continue;
            }
            if next == Some(':')
                && next_next.is_some_and(|c| c != '|')
                && (c == 'w' || c.is_ascii_uppercase())
            {
                let end = self.line_end(pos);
                let line: String = self.s[pos + 2..end].iter().collect();
                let data = line
                    .split('%')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                self.push(
                    pos,
                    Kind::Field {
                        tag: c,
                        data,
                        inline: false,
                    },
                );
                pos = end + 1;
                continue;
            }
            if !c.is_whitespace() && !c.is_alphanumeric() && c != '~' && c != '(' {
                let matched = BARS.iter().find(|(symbol, _)| {
                    symbol
                        .chars()
                        .enumerate()
                        .all(|(k, b)| self.at(pos + k) == Some(b))
                });
                if let Some((symbol, bars)) = matched {
                    accidentalized.clear();
                    accidental.clear();
                    for &bar in bars.iter() {
                        self.push(pos, Kind::Bar(bar));
                    }
                    pos += symbol.len();
                    continue;
                }
            }
            if c == '(' && next.is_some_and(|d| d.is_ascii_digit()) {
                pos = self.tuplet(pos);
                continue;
            }
            if c == '<' || c == '>' {
                let mut j = pos + 1;
                while j < n.saturating_sub(1) && matches!(self.s[j], '<' | '>') {
                    j += 1;
                }
                self.push(pos, Kind::Broken(self.s[pos..j].iter().collect()));
                pos = j;
                continue;
            }
            if c == '!' {
                // A decoration `!trill!`: skipped whole when it closes within 20 characters.
                let close = (pos + 1..(pos + 20).min(n)).find(|&j| self.s[j] == '!');
                if let Some(j) = close {
                    if matches!(
                        self.s[pos..=j].iter().collect::<String>().as_str(),
                        "!crescendo(!" | "!crescendo)!" | "!diminuendo(!" | "!diminuendo)!"
                    ) {
                        self.push(pos, Kind::Mark);
                    }
                    pos = j;
                }
                pos += 1;
                continue;
            }
            match c {
                '(' | ')' | '.' | 'u' | 'v' | 'K' | 'k' | 'M' => {
                    self.push(pos, Kind::Mark);
                    pos += 1;
                    continue;
                }
                '-' => {
                    self.push(pos, Kind::Tie);
                    pos += 1;
                    continue;
                }
                '{' => {
                    self.push(pos, Kind::GraceStart);
                    pos += 1;
                    continue;
                }
                '}' => {
                    self.push(pos, Kind::GraceStop);
                    pos += 1;
                    continue;
                }
                '"' => {
                    let mut j = pos + 1;
                    while j < n.saturating_sub(1) && self.s[j] != '"' {
                        j += 1;
                    }
                    let end = (j + 1).min(n);
                    chord_symbol.extend(&self.s[pos..end]);
                    pos = end;
                    continue;
                }
                '[' => {
                    pos = self.bracket(pos, &mut chord_symbol);
                    continue;
                }
                _ => {}
            }
            if c.is_alphabetic() || "~^=_".contains(c) {
                let mut found = c.is_alphabetic() && !DECORATIONS_AND_ACCIDENTALS.contains(c);
                if found {
                    abc_pitch = c.to_string();
                }
                if ACCIDENTALS.contains(c) {
                    accidental = c.to_string();
                }
                let mut j = pos + 1;
                while let Some(cj) = self.at(j) {
                    if !found && DECORATIONS_AND_ACCIDENTALS.contains(cj) {
                        j += 1;
                        if let Some(a) = self.at(j).filter(|a| ACCIDENTALS.contains(*a)) {
                            accidental.push(a);
                        }
                    } else if !found
                        && cj.is_alphabetic()
                        && !NOT_PITCH_AFTER_DECORATION.contains(cj)
                    {
                        found = true;
                        abc_pitch = cj.to_string();
                        j += 1;
                    } else if cj.is_ascii_digit() || matches!(cj, ',' | '/' | '\'') {
                        if matches!(cj, ',' | '\'') {
                            abc_pitch.push(cj);
                        }
                        j += 1;
                    } else {
                        break;
                    }
                }
                let j = j.min(n);
                let mut text = std::mem::take(&mut chord_symbol);
                text.extend(&self.s[pos..j]);
                pos = j;
                if ignored(&text) {
                    continue;
                }
                let mut carried = String::new();
                if let Some(letter) = abc_pitch.chars().next().map(|l| l.to_ascii_uppercase()) {
                    if !accidental.is_empty() {
                        if propagate {
                            accidentalized.retain(|(l, _)| *l != letter);
                            accidentalized.push((letter, accidental.clone()));
                        }
                        accidental.clear();
                    } else if let Some((_, a)) = accidentalized.iter().find(|(l, _)| *l == letter) {
                        carried = a.clone();
                    }
                }
                self.push(j - 1, Kind::Note { text, carried });
                continue;
            }
            pos += 1;
        }
    }

    /// `(3`, `(3:2`, `(3:2:3`, `(3::2`: one digit each, as music21 reads them.
    fn tuplet(&mut self, pos: usize) -> usize {
        let digit = |c: Option<char>| c.and_then(|c| c.to_digit(10));
        let p = digit(self.at(pos + 1)).unwrap_or(0);
        let mut j = pos + 2;
        let (mut q, mut r) = (None, None);
        if self.at(j) == Some(':') {
            j += 1;
            if let Some(d) = digit(self.at(j)) {
                q = Some(d);
                j += 1;
            }
            if self.at(j) == Some(':') {
                j += 1;
                if let Some(d) = digit(self.at(j)) {
                    r = Some(d);
                    j += 1;
                }
            }
        }
        self.push(pos, Kind::Tuplet { p, q, r });
        j
    }

    /// `[ceg]2`, `[K:Gm]`: a chord or an inline field (the bar forms `[|`, `[1` are matched
    /// before). A pending chord symbol goes with the chord.
    fn bracket(&mut self, pos: usize, chord_symbol: &mut String) -> usize {
        let n = self.s.len();
        let mut j = pos + 1;
        while j < n.saturating_sub(1) && self.s[j] != ']' {
            j += 1;
        }
        let inner: String = self.s[pos + 1..j.min(n)].iter().collect();
        j = (j + 1).min(n);
        let mut chars = inner.chars();
        if let (Some(tag), Some(':')) = (chars.next(), chars.next()) {
            if tag.is_ascii_alphabetic() {
                let data = chars.as_str().trim().to_string();
                self.push(
                    pos,
                    Kind::Field {
                        tag,
                        data,
                        inline: true,
                    },
                );
                return j;
            }
        }
        while j < n && (self.s[j].is_ascii_digit() || self.s[j] == '/') {
            j += 1;
        }
        let mut text = std::mem::take(chord_symbol);
        text.extend(&self.s[pos..j]);
        let notes = inner.contains(|c: char| "abcdefgABCDEFG".contains(c));
        self.push(pos, Kind::Chord { text, notes });
        j
    }
}

/// music21's list of note-like strings that are not notes.
fn ignored(text: &str) -> bool {
    if IGNORED.contains(&text) || text.starts_with(['x', 'H', 'Z']) {
        return true;
    }
    if text.starts_with('"')
        && (text.ends_with(['u', 'v', 'k', 'K', 'Q', '.', 'y', 'T', 'w', 'h', 'x']))
    {
        return true;
    }
    let mut chars = text.chars();
    chars.next() == Some('=') && chars.next().is_some_and(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind> {
        let chars: Vec<char> = text.chars().collect();
        tokenize(&chars, false)
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn note(text: &str) -> Kind {
        Kind::Note {
            text: text.into(),
            carried: String::new(),
        }
    }

    #[test]
    fn notes_bars_fields_and_marks() {
        assert_eq!(
            kinds("K: G % key\n\"Am\"^c'3/2 B,>A |: (3z2 :|2 {g}[ce]2 -\n"),
            vec![
                Kind::Field {
                    tag: 'K',
                    data: "G".into(),
                    inline: false
                },
                note("\"Am\"^c'3/2"),
                note("B,"),
                Kind::Broken(">".into()),
                note("A"),
                Kind::Bar(Bar::RepeatStart),
                Kind::Tuplet {
                    p: 3,
                    q: None,
                    r: None
                },
                note("z2"),
                Kind::Bar(Bar::RepeatEnd),
                Kind::Bar(Bar::Ending(2)),
                Kind::GraceStart,
                note("g"),
                Kind::GraceStop,
                Kind::Chord {
                    text: "[ce]2".into(),
                    notes: true
                },
                Kind::Tie,
            ]
        );
    }

    #[test]
    fn decorations_and_invisible_rests_are_not_notes() {
        assert_eq!(
            kinds("!trill!~G Hx Z T"),
            vec![note("~G")],
            "x and Z are left out, as music21 leaves them out"
        );
    }

    #[test]
    fn inline_fields_and_tuplet_ratios() {
        assert_eq!(
            kinds("[L:1/16](3:2:4"),
            vec![
                Kind::Field {
                    tag: 'L',
                    data: "1/16".into(),
                    inline: true
                },
                Kind::Tuplet {
                    p: 3,
                    q: Some(2),
                    r: Some(4)
                }
            ]
        );
    }

    #[test]
    fn accidentals_carry_to_the_bar_line_in_abc_2_only() {
        let chars: Vec<char> = "^F F | F".chars().collect();
        let carried: Vec<String> = tokenize(&chars, true)
            .into_iter()
            .filter_map(|t| match t.kind {
                Kind::Note { carried, .. } => Some(carried),
                _ => None,
            })
            .collect();
        assert_eq!(carried, ["", "^", ""]);
        assert!(kinds("^F F").iter().all(|k| match k {
            Kind::Note { carried, .. } => carried.is_empty(),
            _ => true,
        }));
    }

    #[test]
    fn line_numbers_follow_the_text() {
        let chars: Vec<char> = "X:1\nK:C\nC D\n\nE".chars().collect();
        let lines: Vec<usize> = tokenize(&chars, false).iter().map(|t| t.line).collect();
        assert_eq!(lines, [1, 2, 3, 3, 5]);
    }
}
