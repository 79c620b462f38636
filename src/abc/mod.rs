//! Reads the tunes of an ABC file, each into the [`Song`] the `**kern` reader makes, so the same
//! filter, transposition and encoding run after it.
//!
//! A file holds many tunes, each from its `X:` field; a tune is a song or the reason it is none,
//! with its line. The reading is music21's (`converter.parse(...)`, 10.5.1), because the reference
//! encodings were made with it: the tokens fall where its tokenizer cuts them, a tune takes the
//! default length, meter and key the file last declared until it declares its own, an accidental
//! lasts to the bar line only in files that say they are ABC 2 (`%abc-2.1`), invisible (`x`) and
//! multi-bar (`Z`) rests are left out, grace notes are read and left out, and a broken rhythm
//! mark changes the notes right beside it. Where music21 ignores what the ABC standard 2.1 says,
//! the standard wins: inline fields (`[K:…]`, `[L:…]`, `[M:…]`) take effect. `tests/abc.rs`
//! lists every tune where the two readings differ.
//!
//! Input is bytes: UTF-8 where it decodes, else Latin-1 (every byte one `char`), so reading never
//! fails on encoding.

mod lex;
mod rebar;
mod repeats;

use std::fmt;

use crate::kern::{Event, KeyDesignation, Mode, Pitch, QuarterLength, Song, Tie};
use lex::{Kind, Token};
pub use repeats::RepeatError;

/// Durations beyond this many quarters, and default lengths or tuplet ratios beyond it, are
/// forged, not music; refusing them keeps every fraction inside 64 bits.
const MAX_NUMBER: u64 = 1 << 16;

/// One `X:` tune of a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Tune {
    /// Index in the file, from 0, in the order written.
    pub index: usize,
    /// The `X:` reference number, when it is a number.
    pub x: Option<u32>,
    /// The first `T:`.
    pub title: Option<String>,
    /// The line of the `X:` field.
    pub line: usize,
    pub song: Result<Song, AbcError>,
}

/// Why a tune is no monophonic song.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbcError {
    /// 1-based line.
    pub line: usize,
    pub kind: ErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A chord: a skip reason rather than a defect.
    NotMonophonic(String),
    /// A note whose length cannot be read (`c/0`) or is forged.
    BadLength(String),
    /// The tune holds no note and no rest.
    Empty,
    /// `--expand-repeats` on repeats that do not pair up.
    Repeats(RepeatError),
}

impl fmt::Display for AbcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.kind {
            ErrorKind::NotMonophonic(what) => write!(f, "not monophonic: {what}"),
            ErrorKind::BadLength(note) => write!(f, "unreadable note length in {note:?}"),
            ErrorKind::Empty => write!(f, "no notes or rests"),
            ErrorKind::Repeats(why) => write!(f, "repeats cannot be played out: {why}"),
        }
    }
}

impl std::error::Error for AbcError {}

/// Reads every tune of a file: as written, or with repeats and endings played out. A file with
/// no `X:` is one tune.
pub fn parse(bytes: &[u8], expand_repeats: bool) -> Vec<Tune> {
    let text = decode(bytes);
    let chars: Vec<char> = text.chars().collect();
    let head: String = chars.iter().take(100).collect();
    let tokens = lex::tokenize(&chars, head.contains("%abc-2"));
    let items = Reader::default().read(&tokens);
    split_tunes(&tokens, &items)
        .into_iter()
        .enumerate()
        .map(|(index, tune)| tune.finish(index, expand_repeats))
        .collect()
}

/// UTF-8 where the bytes are UTF-8, else Latin-1.
pub fn decode(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// What a token leaves in the tune after its context is applied.
#[derive(Clone, Debug, PartialEq)]
enum Item {
    /// A note or rest; grace notes are read (they take part in ties and tuplets) but left out.
    Note {
        event: Event,
        grace: bool,
    },
    Bar(lex::Bar),
    Chord {
        text: String,
        line: usize,
    },
    BadLength {
        text: String,
        line: usize,
    },
    /// A meter field that names a meter (`M:6/8`, `M:C`), for music21's re-barring.
    Meter((u32, u32)),
    /// A key field with a mode (`K:G`, `K:Ador`); `K:none` and its like name no key.
    Key(KeyDesignation),
    /// Any other field: music21 cuts measures at fields too.
    Field,
    /// Where music21's `reBar` split an over-long measure in two.
    Split,
    None,
}

impl Item {
    /// The note or rest that sounds: grace notes and everything else are none.
    fn sounding(&self) -> Option<&Event> {
        match self {
            Item::Note {
                event,
                grace: false,
            } => Some(event),
            _ => None,
        }
    }
}

/// The context music21 carries through the whole file: default length, meter, key signature.
#[derive(Default)]
struct Reader {
    default_length: Option<QuarterLength>,
    meter: Option<(u32, u32)>,
    /// Alteration of each letter C … B under the active key signature.
    signature: [i8; 7],
}

/// A note token's state while tokens are processed: music21's `ABCNote` attributes.
#[derive(Clone, Copy, Default)]
struct NoteState {
    tie: Option<Tie>,
    grace: bool,
    /// (numerator, denominator) of the tuplet ratio applied.
    tuplet: Option<(u64, u64)>,
    /// Factor of a broken rhythm: (numerator, denominator).
    broken: Option<(u64, u64)>,
}

impl Reader {
    fn read(&mut self, tokens: &[Token]) -> Vec<Item> {
        let is_note = |t: Option<&Token>| {
            t.is_some_and(|t| matches!(t.kind, Kind::Note { .. } | Kind::Chord { .. }))
        };
        let mut states = vec![NoteState::default(); tokens.len()];
        // A broken rhythm mark needs a note on each side; the last mark to reach a note wins.
        for (i, token) in tokens.iter().enumerate() {
            if let Kind::Broken(marks) = &token.kind {
                if i > 0 && is_note(tokens.get(i - 1)) && is_note(tokens.get(i + 1)) {
                    let (left, right) = broken_factors(marks);
                    states[i - 1].broken = Some(left);
                    states[i + 1].broken = Some(right);
                }
            }
        }
        let mut tuplet: Option<(u64, u64, u32)> = None; // (p, q, notes left)
        let mut pending_tie = false;
        let mut in_grace = false;
        let mut last_note: Option<usize> = None;
        // The default length and signature each note was written under.
        let mut contexts = vec![None; tokens.len()];
        let mut items = Vec::with_capacity(tokens.len());
        for (i, token) in tokens.iter().enumerate() {
            let mut item = Item::None;
            match &token.kind {
                Kind::Field { tag, data, inline } => item = self.field(*tag, data, *inline),
                Kind::Tuplet { p, q, r } => {
                    let p = (*p).max(1);
                    let q = q.unwrap_or_else(|| self.tuplet_normal(p)).max(1);
                    tuplet = Some((p as u64, q as u64, r.unwrap_or(p)));
                }
                Kind::Tie => {
                    if let Some(last) = last_note {
                        states[last].tie = Some(match states[last].tie {
                            Some(Tie::Stop) => Tie::Continue,
                            _ => Tie::Start,
                        });
                    }
                    pending_tie = true;
                }
                Kind::GraceStart => in_grace = true,
                Kind::GraceStop => in_grace = false,
                Kind::Bar(bar) => item = Item::Bar(*bar),
                Kind::Note { .. } | Kind::Chord { .. } => {
                    let state = &mut states[i];
                    if std::mem::take(&mut pending_tie) {
                        state.tie = Some(Tie::Stop);
                    }
                    state.grace = in_grace;
                    tuplet = match tuplet {
                        Some((_, _, 0)) | None => None,
                        Some((p, q, left)) => {
                            state.tuplet = Some((q, p));
                            Some((p, q, left - 1))
                        }
                    };
                    last_note = Some(i);
                    contexts[i] = Some((self.default_length(), self.signature));
                }
                Kind::Broken(_) | Kind::Mark => {}
            }
            items.push(item);
        }
        // Notes are read once their ties are known, as music21 parses after processing.
        for (i, token) in tokens.iter().enumerate() {
            match (&token.kind, contexts[i]) {
                (Kind::Note { text, carried }, Some((length, signature))) => {
                    items[i] = note(text, carried, token.line, states[i], length, &signature)
                }
                (Kind::Chord { text, notes: true }, _) => {
                    items[i] = Item::Chord {
                        text: text.clone(),
                        line: token.line,
                    }
                }
                _ => {}
            }
        }
        items
    }
}

impl Reader {
    /// The default length: `L:`, else the first meter's (a sixteenth below 3/4, else an eighth).
    fn default_length(&self) -> QuarterLength {
        self.default_length.unwrap_or(QuarterLength::new(1, 2))
    }

    fn field(&mut self, tag: char, data: &str, inline: bool) -> Item {
        match tag {
            'L' => {
                if let Some(length) = parse_unit_length(data) {
                    self.default_length = Some(length);
                }
            }
            'M' => {
                self.meter = parse_meter(data);
                // music21 takes a default length from a meter only until one is set; an inline
                // meter changes the meter alone.
                if self.default_length.is_none() && !inline {
                    self.default_length = Some(match self.meter {
                        Some((n, d)) if (n as u64) * 4 < 3 * d as u64 => QuarterLength::new(1, 4),
                        _ => QuarterLength::new(1, 2),
                    });
                }
                if let Some(meter) = self.meter {
                    return Item::Meter(meter);
                }
            }
            'K' => {
                let (tonic, mode) = parse_key(data);
                let sharps = tonic.fifths() - mode.map_or(0, Mode::fifths_below_major);
                self.signature = signature(sharps);
                if let Some(mode) = mode {
                    return Item::Key(KeyDesignation {
                        step: tonic.step,
                        alter: tonic.alter,
                        mode,
                    });
                }
            }
            _ => {}
        }
        Item::Field
    }

    /// The `q` of `(p` when not written: music21's table, 5, 7 and 9 depending on the meter.
    fn tuplet_normal(&self, p: u32) -> u32 {
        let compound = matches!(self.meter, Some((n, d)) if n % 3 == 0 && (n > 3 || d >= 8));
        match p {
            1 => 1,
            2 | 4 | 8 => 3,
            3 | 6 => 2,
            _ if compound => 3,
            _ => 2,
        }
    }
}

/// A key's tonic as written in `K:`: letter and alteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tonic {
    step: u8,
    alter: i8,
}

impl Tonic {
    /// Place on the line of fifths of the major key on this tonic: C 0, G 1, F −1, B♭ −2.
    fn fifths(self) -> i32 {
        const LETTER_FIFTHS: [i32; 7] = [0, 2, 4, -1, 1, 3, 5];
        LETTER_FIFTHS[self.step as usize] + 7 * self.alter as i32
    }
}

/// `K:` data → tonic and mode, as music21 reads it: the longest tonic name that starts the text
/// (`Bb`, `F#`, `G`; anything else is C), then a mode from the first letters of the rest (`m`,
/// `min`, `dor`, `Mix`…); a rest that names no mode (`K:D =c`, `K:none`) gives a signature but
/// no key. `HP` is C and `Hp` is D, both without a mode (highland pipes).
fn parse_key(data: &str) -> (Tonic, Option<Mode>) {
    const NAMES: [&str; 20] = [
        "f#", "g#", "a#", "bb", "eb", "d#", "ab", "e#", "db", "c#", "gb", "cb", "hp", "c", "g",
        "d", "a", "e", "b", "f",
    ];
    let lower = data.to_lowercase();
    let name = NAMES.iter().find(|name| lower.starts_with(*name));
    let rest = name.map_or(data, |name| &data[name.len()..]).trim();
    let tonic = |name: &str| {
        let mut chars = name.chars();
        let step = chars.next().and_then(|c| "cdefgab".find(c)).unwrap_or(0) as u8;
        let alter = match chars.next() {
            Some('#') => 1,
            Some('b') => -1,
            _ => 0,
        };
        Tonic { step, alter }
    };
    if name == Some(&"hp") {
        let highland = if data.starts_with("HP") { "c" } else { "d" };
        return (tonic(highland), None);
    }
    let mode = if rest.is_empty() {
        Some(Mode::Major)
    } else {
        let rest = rest.to_lowercase();
        [
            ("dor", Mode::Dorian),
            ("phr", Mode::Phrygian),
            ("lyd", Mode::Lydian),
            ("mix", Mode::Mixolydian),
            ("maj", Mode::Major),
            ("ion", Mode::Ionian),
            ("aeo", Mode::Aeolian),
            ("loc", Mode::Locrian),
            ("m", Mode::Minor),
        ]
        .into_iter()
        .find(|(prefix, _)| rest.starts_with(prefix))
        .map(|(_, mode)| mode)
    };
    (tonic(name.copied().unwrap_or("c")), mode)
}

/// The alteration of each letter C … B under a signature of `sharps` (flats negative); past
/// seven the signature doubles (eight sharps: F𝄪).
fn signature(sharps: i32) -> [i8; 7] {
    const SHARP_ORDER: [usize; 7] = [3, 0, 4, 1, 5, 2, 6]; // F C G D A E B
    let mut alter = [0i8; 7];
    for k in 0..sharps.unsigned_abs().min(14) as usize {
        if sharps > 0 {
            alter[SHARP_ORDER[k % 7]] += 1;
        } else {
            alter[SHARP_ORDER[6 - k % 7]] -= 1;
        }
    }
    alter
}

/// `L:1/8` → half a quarter; music21 reads `1/G` (found in Essen files) as `1/4`.
fn parse_unit_length(data: &str) -> Option<QuarterLength> {
    let (n, d) = data.split_once('/')?;
    let n: u64 = n.trim().parse().ok()?;
    let d: u64 = match d.trim() {
        "G" => 4,
        d => d.parse().ok()?,
    };
    (d > 0 && n <= MAX_NUMBER && d <= MAX_NUMBER).then(|| QuarterLength::new(4 * n, d))
}

/// `M:6/8` → (6, 8); `C` is 4/4, `C|` 2/2; `none` and the unreadable give none. Digits are taken
/// from each side as music21 takes them (`FREI4/4` is 4/4).
fn parse_meter(data: &str) -> Option<(u32, u32)> {
    match data {
        "C" => return Some((4, 4)),
        "C|" => return Some((2, 2)),
        _ => {}
    }
    let (n, d) = data.split_once('/')?;
    let number = |s: &str| -> Option<u32> {
        let digits: String = s.chars().filter(char::is_ascii_digit).collect();
        digits.parse().ok().filter(|&v| v > 0)
    };
    Some((number(n)?, number(d)?))
}

/// The two factors of a broken rhythm mark, for the note before and the note after it.
fn broken_factors(marks: &str) -> ((u64, u64), (u64, u64)) {
    match marks {
        ">" => ((3, 2), (1, 2)),
        "<" => ((1, 2), (3, 2)),
        ">>" => ((7, 4), (1, 4)),
        "<<" => ((1, 4), (7, 4)),
        ">>>" => ((15, 8), (1, 8)),
        "<<<" => ((1, 8), (15, 8)),
        _ => ((1, 1), (1, 1)),
    }
}

/// A note or rest token under its context → an item.
fn note(
    text: &str,
    carried: &str,
    line: usize,
    state: NoteState,
    default_length: QuarterLength,
    signature: &[i8; 7],
) -> Item {
    // Chord symbols and annotations (`"Am"`) come first; what follows is the note.
    let body = text.rfind('"').map_or(text, |at| &text[at + 1..]);
    let Some(duration) = note_length(body, default_length, state) else {
        return Item::BadLength {
            text: text.to_string(),
            line,
        };
    };
    let mut letters = body;
    if letters.len() > 1 && letters.starts_with(['u', 'T']) {
        letters = &letters[1..];
    }
    let Some(letter) = letters
        .chars()
        .filter(|&c| c != 'T')
        .find(|c| "abcdefgABCDEFGz".contains(*c))
    else {
        return Item::None;
    };
    let pitch = (letter != 'z').then(|| {
        let count = |c: char| body.chars().filter(|&b| b == c).count() as i32;
        let step = "cdefgab"
            .find(letter.to_ascii_lowercase())
            .expect("a pitch letter") as u8;
        let octave = if letter.is_ascii_lowercase() { 5 } else { 4 } - count(',') + count('\'');
        let written = if carried.is_empty() { body } else { carried };
        let (sharps, flats, naturals) = (
            written.matches('^').count() as i32,
            written.matches('_').count() as i32,
            written.matches('=').count(),
        );
        let alter = if sharps + flats > 0 || naturals > 0 {
            sharps - flats
        } else {
            signature[step as usize] as i32
        };
        Pitch {
            step,
            alter: alter.clamp(-4, 4) as i8,
            octave: octave.clamp(-10, 20) as i8,
            natural: naturals > 0,
        }
    });
    Item::Note {
        event: Event {
            pitch,
            duration,
            tie: state.tie.unwrap_or(Tie::None),
            line,
        },
        grace: state.grace,
    }
}

/// The length of a note: the default length times what the digits and slashes say (`3`, `/`,
/// `//`, `/4`, `3/2`, `3/`), then the tuplet's and the broken rhythm's factors. None where it
/// cannot be read (`c/0`) or is forged.
fn note_length(body: &str, default: QuarterLength, state: NoteState) -> Option<QuarterLength> {
    let written: String = body
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '/')
        .collect();
    let number = |s: &str| -> Option<u64> { s.parse().ok().filter(|&v| v <= MAX_NUMBER) };
    let (n, d) = match written.as_str() {
        "" => (1, 1),
        "/" => (1, 2),
        "//" => (1, 4),
        "///" => (1, 8),
        w if w.starts_with('/') => (1, number(w.split('/').nth(1)?)?),
        w if w.ends_with('/') => (number(w.split('/').next()?)?, 2),
        w if w.matches('/').count() == 2 => (1, 1),
        w => match w.split_once('/') {
            Some((n, d)) => (number(n)?, number(d)?),
            None => (number(w)?, 1),
        },
    };
    let (tn, td) = state.tuplet.unwrap_or((1, 1));
    let (bn, bd) = state.broken.unwrap_or((1, 1));
    let length = default.scaled(
        n.checked_mul(tn)?.checked_mul(bn)?,
        d.checked_mul(td)?.checked_mul(bd)?,
    )?;
    (length <= QuarterLength::new(MAX_NUMBER, 1)).then_some(length)
}

/// A tune's share of the file: its fields and items, with the file's header (before the first
/// `X:`) in front, as music21 prepends it.
struct TuneItems<'a> {
    x: Option<u32>,
    line: usize,
    fields: Vec<(char, &'a str)>,
    items: Vec<&'a Item>,
}

fn split_tunes<'a>(tokens: &'a [Token], items: &'a [Item]) -> Vec<TuneItems<'a>> {
    let mut header = TuneItems {
        x: None,
        line: 1,
        fields: Vec::new(),
        items: Vec::new(),
    };
    let mut tunes: Vec<TuneItems> = Vec::new();
    for (token, item) in tokens.iter().zip(items) {
        if let Kind::Field {
            tag: 'X',
            data,
            inline: false,
        } = &token.kind
        {
            tunes.push(TuneItems {
                x: data.parse().ok(),
                line: token.line,
                fields: header.fields.clone(),
                items: header.items.clone(),
            });
        }
        let tune = tunes.last_mut().unwrap_or(&mut header);
        if let Kind::Field { tag, data, .. } = &token.kind {
            tune.fields.push((*tag, data));
        }
        tune.items.push(item);
    }
    if tunes.is_empty() {
        tunes.push(header);
    }
    tunes
}

impl TuneItems<'_> {
    fn field(&self, tag: char) -> Option<String> {
        self.fields
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, data)| data.to_string())
    }

    fn finish(self, index: usize, expand_repeats: bool) -> Tune {
        let song = self.song(expand_repeats);
        Tune {
            index,
            x: self.x,
            title: self.field('T'),
            line: self.line,
            song,
        }
    }

    fn song(&self, expand_repeats: bool) -> Result<Song, AbcError> {
        let mut keys = Vec::new();
        for item in &self.items {
            match item {
                Item::Chord { text, line } => {
                    return Err(AbcError {
                        line: *line,
                        kind: ErrorKind::NotMonophonic(format!("chord {text}")),
                    })
                }
                Item::BadLength { text, line } => {
                    return Err(AbcError {
                        line: *line,
                        kind: ErrorKind::BadLength(text.clone()),
                    })
                }
                Item::Key(key) => keys.push(*key),
                _ => {}
            }
        }
        let items = rebar::rebar(&self.items);
        let events = if expand_repeats {
            repeats::expand(&items).map_err(|(line, why)| AbcError {
                line,
                kind: ErrorKind::Repeats(why),
            })?
        } else {
            repeats::as_written(&items)
        };
        if events.is_empty() {
            return Err(AbcError {
                line: self.line,
                kind: ErrorKind::Empty,
            });
        }
        Ok(Song {
            title: self.field('T'),
            id: None,
            region: self.field('O'),
            meter: self.field('M').as_deref().and_then(parse_meter),
            // TODO(#15): the tune's bar lines and inline meters.
            meter_changes: Vec::new(),
            barlines: Vec::new(),
            keys,
            events,
        })
    }
}
