//! Reads one monophonic Humdrum `**kern` song into notes, rests, ties, key and metadata.
//!
//! Input is bytes: ESAC files are Latin-1, and every byte maps to one `char`, so reading never
//! fails on encoding. Where the Humdrum specification leaves a token's reading open (a stray byte
//! inside a note, `1.5a`), the reader does what music21 does, because the reference encodings were
//! made with music21: the first run of digits is the duration, every `.` in the token is a dot,
//! the first run of pitch letters is the pitch.
//!
//! Errors carry the line number and the token; the corpus reader adds the file name.

mod duration;
mod token;

pub use duration::QuarterLength;
pub use token::{parse_token, Pitch};

use std::fmt;

/// A song as written: the events in order plus what the interpretations and records declare.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Song {
    /// `!!!OTL`: the title.
    pub title: Option<String>,
    /// `!!!SCT`: the catalogue id (ESAC's `E0001`).
    pub id: Option<String>,
    /// `!!!ARE`: the region.
    pub region: Option<String>,
    /// The first meter, `*M3/4` → (3, 4); odd meters such as `*MX` are ignored.
    pub meter: Option<(u32, u32)>,
    /// Each later meter with the number of events before it.
    pub meter_changes: Vec<(usize, (u32, u32))>,
    /// Each barline (`=…`) as the number of events before it, in order, each position once. A
    /// song that starts with a pickup has no barline at 0.
    pub barlines: Vec<usize>,
    /// Every key designation (`*G:`, `*f#:`) in order; the first one is the song's key.
    pub keys: Vec<KeyDesignation>,
    pub events: Vec<Event>,
}

/// A key designation: `*G:` is G major, `*f#:` is F♯ minor; ABC's `K:Ddor` is D dorian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyDesignation {
    /// The tonic's letter (0 = C … 6 = B) and alteration in semitones.
    pub step: u8,
    pub alter: i8,
    pub mode: Mode,
}

/// The modes a key may name, as music21 names them (`ionian` and `major` are kept apart, as
/// music21 keeps them, though their scale is the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Major,
    Minor,
    Ionian,
    Aeolian,
    Dorian,
    Phrygian,
    Lydian,
    Mixolydian,
    Locrian,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Major => "major",
            Mode::Minor => "minor",
            Mode::Ionian => "ionian",
            Mode::Aeolian => "aeolian",
            Mode::Dorian => "dorian",
            Mode::Phrygian => "phrygian",
            Mode::Lydian => "lydian",
            Mode::Mixolydian => "mixolydian",
            Mode::Locrian => "locrian",
        }
    }

    /// The scale of natural minor: what a minor key designation means.
    pub fn is_minor(self) -> bool {
        matches!(self, Mode::Minor | Mode::Aeolian)
    }

    /// The white-key tonic of the mode, in semitones above C: the notes of C major read from
    /// it (major C, dorian D … locrian B).
    pub fn white_key_tonic(self) -> i32 {
        match self {
            Mode::Major | Mode::Ionian => 0,
            Mode::Dorian => 2,
            Mode::Phrygian => 4,
            Mode::Lydian => 5,
            Mode::Mixolydian => 7,
            Mode::Minor | Mode::Aeolian => 9,
            Mode::Locrian => 11,
        }
    }

    /// Fifths from the mode's tonic up to the tonic of the major key with the same signature:
    /// dorian 2 (D → C is two fifths down), lydian −1.
    pub fn fifths_below_major(self) -> i32 {
        match self {
            Mode::Major | Mode::Ionian => 0,
            Mode::Mixolydian => 1,
            Mode::Dorian => 2,
            Mode::Minor | Mode::Aeolian => 3,
            Mode::Phrygian => 4,
            Mode::Locrian => 5,
            Mode::Lydian => -1,
        }
    }
}

impl KeyDesignation {
    /// Parses the text between `*` and `:`, e.g. `B-` or `f#`.
    pub fn parse(text: &str) -> Option<KeyDesignation> {
        let mut chars = text.chars();
        let letter = chars.next()?;
        let step = token::step_of(letter.to_ascii_lowercase())?;
        let mut alter = 0i8;
        for c in chars {
            // Checked: a forged run of accidentals is no key rather than an overflow.
            alter = alter.checked_add(match c {
                '#' => 1,
                '-' => -1,
                _ => return None,
            })?;
        }
        Some(KeyDesignation {
            step,
            alter,
            mode: if letter.is_ascii_lowercase() {
                Mode::Minor
            } else {
                Mode::Major
            },
        })
    }

    /// The tonic as music21 names it: `B-`, `F#`, `C`.
    pub fn tonic_name(&self) -> String {
        let mut name = String::from(b"CDEFGAB"[self.step as usize] as char);
        let sign = if self.alter > 0 { '#' } else { '-' };
        for _ in 0..self.alter.unsigned_abs() {
            name.push(sign);
        }
        name
    }

    /// The tonic's pitch in semitones above C4, spelling kept: `B#` is 12, `C-` is −1.
    pub fn tonic_semitones(&self) -> i32 {
        token::STEP_SEMITONES[self.step as usize] as i32 + self.alter as i32
    }
}

/// A note or a rest.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    /// `None` for a rest.
    pub pitch: Option<Pitch>,
    /// Zero for a grace note.
    pub duration: QuarterLength,
    pub tie: Tie,
    /// 1-based line in the file.
    pub line: usize,
}

/// Tie marks of the `**kern` specification: `[` starts, `_` continues, `]` ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tie {
    None,
    Start,
    Continue,
    Stop,
}

/// Why a file could not be read as one monophonic song.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernError {
    /// 1-based line; 0 when the error concerns the whole file.
    pub line: usize,
    pub kind: ErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No `**kern` exclusive interpretation before the first data line.
    NotKern,
    /// Several spines, a spine split or a chord: a skip reason rather than a defect.
    NotMonophonic(String),
    /// A data token that is neither a note, a rest nor a null token.
    BadToken { token: String, why: &'static str },
    /// The file holds no note and no rest.
    Empty,
}

impl KernError {
    fn at(line: usize, kind: ErrorKind) -> KernError {
        KernError { line, kind }
    }
}

impl fmt::Display for KernError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        match &self.kind {
            ErrorKind::NotKern => write!(f, "not a **kern file (no **kern spine before the data)"),
            ErrorKind::NotMonophonic(what) => write!(f, "not monophonic: {what}"),
            ErrorKind::BadToken { token, why } => write!(f, "{why} in token {token:?}"),
            ErrorKind::Empty => write!(f, "no notes or rests"),
        }
    }
}

impl std::error::Error for KernError {}

/// Parses a whole `**kern` file.
pub fn parse(bytes: &[u8]) -> Result<Song, KernError> {
    let text: String = bytes.iter().map(|&b| b as char).collect();
    let mut song = Song::default();
    let mut in_kern = false;
    let mut ended = false;
    for (index, raw_line) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if let Some(record) = line.strip_prefix("!!!") {
            read_reference_record(record, &mut song);
            continue;
        }
        if line.starts_with('!') || line.trim().is_empty() || ended {
            continue;
        }
        if line.contains('\t') {
            let what = if in_kern {
                "several spines"
            } else {
                "several spines in the header"
            };
            return Err(KernError::at(
                line_no,
                ErrorKind::NotMonophonic(what.into()),
            ));
        }
        if let Some(exclusive) = line.strip_prefix("**") {
            if exclusive != "kern" {
                return Err(KernError::at(line_no, ErrorKind::NotKern));
            }
            in_kern = true;
            continue;
        }
        if !in_kern {
            return Err(KernError::at(line_no, ErrorKind::NotKern));
        }
        if let Some(interpretation) = line.strip_prefix('*') {
            ended = read_interpretation(interpretation, line_no, &mut song)?;
        } else if line.starts_with('=') {
            if song.barlines.last() != Some(&song.events.len()) {
                song.barlines.push(song.events.len());
            }
        } else if line == "." {
            // A null token holds no event.
        } else if line.contains(' ') {
            return Err(KernError::at(
                line_no,
                ErrorKind::NotMonophonic(format!("chord {line:?}")),
            ));
        } else {
            let event = parse_token(line).map_err(|why| {
                KernError::at(
                    line_no,
                    ErrorKind::BadToken {
                        token: line.into(),
                        why,
                    },
                )
            })?;
            song.events.push(Event {
                line: line_no,
                ..event
            });
        }
    }
    if !in_kern {
        return Err(KernError::at(0, ErrorKind::NotKern));
    }
    if song.events.is_empty() {
        return Err(KernError::at(0, ErrorKind::Empty));
    }
    Ok(song)
}

fn read_reference_record(record: &str, song: &mut Song) {
    let Some((key, value)) = record.split_once(':') else {
        return;
    };
    let slot = match key.trim() {
        "OTL" => &mut song.title,
        "SCT" => &mut song.id,
        "ARE" => &mut song.region,
        _ => return,
    };
    if slot.is_none() {
        *slot = Some(value.trim().to_string());
    }
}

/// Reads a tandem interpretation (the text after `*`); returns true at the spine end `*-`.
fn read_interpretation(text: &str, line_no: usize, song: &mut Song) -> Result<bool, KernError> {
    match text {
        "-" => return Ok(true),
        "^" | "v" | "+" | "x" => {
            let what = format!("spine manipulator *{text}");
            return Err(KernError::at(line_no, ErrorKind::NotMonophonic(what)));
        }
        _ => {}
    }
    if let Some(meter) = text.strip_prefix('M').and_then(parse_meter) {
        if song.meter.is_none() {
            song.meter = Some(meter);
        } else {
            song.meter_changes.push((song.events.len(), meter));
        }
    } else if let Some(tonic) = text.strip_suffix(':') {
        if let Some(key) = KeyDesignation::parse(tonic) {
            song.keys.push(key);
        }
    }
    // Key signatures, clefs, instruments, section labels and tempi change no encoded symbol.
    Ok(false)
}

/// `3/4` → (3, 4); `X`, `FREI4/4` and other odd meters → None.
fn parse_meter(text: &str) -> Option<(u32, u32)> {
    let (count, unit) = text.split_once('/')?;
    Some((count.parse().ok()?, unit.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn song(body: &str) -> Result<Song, KernError> {
        parse(format!("**kern\n{body}\n*-\n").as_bytes())
    }

    #[test]
    fn reads_records_interpretations_and_events() {
        let text = "!!!OTL: ES FREIT EIN WILDER WASSERMANN\n!!!ARE: Europa, Schlesien\n!!!SCT: E0001\n\
                    !! a comment\n**kern\n*ICvox\n*Ivox\n*M2/4\n*k[b-]\n*F:\n{8c\n=1\n8f\n.\n4r}\n==\n*-\n\
                    !!!AGN: Sage\n";
        let song = parse(text.as_bytes()).unwrap();
        assert_eq!(
            song.title.as_deref(),
            Some("ES FREIT EIN WILDER WASSERMANN")
        );
        assert_eq!(song.id.as_deref(), Some("E0001"));
        assert_eq!(song.region.as_deref(), Some("Europa, Schlesien"));
        assert_eq!(song.meter, Some((2, 4)));
        assert_eq!(
            song.keys,
            vec![KeyDesignation {
                step: 3,
                alter: 0,
                mode: Mode::Major
            }]
        );
        let midi: Vec<Option<i32>> = song
            .events
            .iter()
            .map(|e| e.pitch.map(|p| p.midi()))
            .collect();
        assert_eq!(midi, vec![Some(60), Some(65), None]);
        assert_eq!(song.events[2].duration, QuarterLength::new(1, 1));
        assert_eq!(
            song.events.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![11, 13, 15]
        );
    }

    #[test]
    fn key_designations_major_minor_and_accidentals() {
        let keys = song("*G:\n*a:\n*B-:\n*f#:\n4c").unwrap().keys;
        let names: Vec<(String, bool, i32)> = keys
            .iter()
            .map(|k| (k.tonic_name(), k.mode.is_minor(), k.tonic_semitones()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("G".into(), false, 7),
                ("A".into(), true, 9),
                ("B-".into(), false, 10),
                ("F#".into(), true, 6)
            ]
        );
    }

    #[test]
    fn odd_meters_are_tolerated_and_first_meter_wins() {
        assert_eq!(song("*MX\n*M3/4\n*M2/4\n4c").unwrap().meter, Some((3, 4)));
        assert_eq!(song("*MFREI4/4\n4c").unwrap().meter, None);
        assert_eq!(song("*M5/1%%%2+3%\n4c").unwrap().meter, None);
    }

    #[test]
    fn barlines_of_every_kind_are_counted_once_per_position() {
        let song = song("=\n4c\n=12\n4d\n==\n=:|!\n=3a\n4e").unwrap();
        assert_eq!(song.events.len(), 3);
        assert_eq!(song.barlines, vec![0, 1, 2]);
    }

    #[test]
    fn a_pickup_has_no_barline_at_the_start_and_meter_changes_keep_their_place() {
        let song = song("*M2/4\n8c\n=1\n4f\n4f\n=2\n*M3/4\n*MX\n2.g\n==").unwrap();
        assert_eq!(song.barlines, vec![1, 3, 4]);
        assert_eq!(song.meter, Some((2, 4)));
        assert_eq!(song.meter_changes, vec![(3, (3, 4))]);
    }

    #[test]
    fn crlf_line_endings() {
        let song = parse(b"**kern\r\n*C:\r\n4cc\r\n*-\r\n").unwrap();
        assert_eq!(song.events[0].pitch.unwrap().midi(), 72);
    }

    #[test]
    fn latin1_bytes_never_fail() {
        let mut bytes = b"!!!OTL: GR".to_vec();
        bytes.push(0xdc); // Ü in Latin-1
        bytes.extend_from_slice(b"N\n**kern\n4c\n*-\n");
        assert_eq!(parse(&bytes).unwrap().title.as_deref(), Some("GRÜN"));
    }

    #[test]
    fn empty_file_is_not_kern() {
        assert_eq!(parse(b"").unwrap_err().kind, ErrorKind::NotKern);
    }

    #[test]
    fn binary_garbage_is_not_kern() {
        let garbage: Vec<u8> = (0..=255u8).rev().cycle().take(1000).collect();
        let err = parse(&garbage).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotKern);
    }

    #[test]
    fn header_only_has_no_events() {
        assert_eq!(song("*M3/4").unwrap_err().kind, ErrorKind::Empty);
    }

    #[test]
    fn a_chord_is_not_monophonic_and_names_its_line() {
        let err = song("4c\n4c 4e").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(matches!(err.kind, ErrorKind::NotMonophonic(_)));
        assert_eq!(err.to_string(), "line 3: not monophonic: chord \"4c 4e\"");
    }

    #[test]
    fn two_spines_are_not_monophonic() {
        let err = parse(b"**kern\t**kern\n4c\t4e\n*-\t*-\n").unwrap_err();
        assert_eq!(
            (err.line, matches!(err.kind, ErrorKind::NotMonophonic(_))),
            (1, true)
        );
    }

    #[test]
    fn a_spine_split_is_not_monophonic() {
        let err = song("4c\n*^").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3: not monophonic: spine manipulator *^"
        );
    }

    #[test]
    fn other_exclusive_interpretation_is_not_kern() {
        assert_eq!(
            parse(b"**text\nla\n*-\n").unwrap_err().kind,
            ErrorKind::NotKern
        );
    }

    #[test]
    fn a_non_numeric_duration_is_an_error_with_line_and_token() {
        let err = song("4c\nxc").unwrap_err();
        assert_eq!(err.line, 3);
        assert_eq!(err.to_string(), "line 3: no duration in token \"xc\"");
    }

    #[test]
    fn a_truncated_last_line_is_an_error() {
        let err = parse(b"**kern\n4c\n8").unwrap_err();
        assert_eq!(err.to_string(), "line 3: no pitch or rest in token \"8\"");
    }

    #[test]
    fn content_after_the_spine_end_is_ignored() {
        assert_eq!(song("4c").unwrap().events.len(), 1);
        let song = parse(b"**kern\n4c\n*-\n4d\n").unwrap();
        assert_eq!(song.events.len(), 1);
    }
}
