//! What each step's input is, as indices into the model's input rows: the symbol itself and, with
//! `--features`, where the bar lies and what it played a bar ago, the song's mode and meter, and
//! the pitches off the scale it has sounded.
//! The same rows for a whole stream (training) and for one melody as it is written (generation).
//!
//! # Index layout
//!
//! With V symbols, every step reads exactly K indices, one per block, and the input term of the
//! first layer is the sum of those K columns of W_ih. The blocks follow in this fixed order; a
//! group left out takes no rows and no index:
//!
//! | block                      | rows                                             | indices |
//! |----------------------------|--------------------------------------------------|---------|
//! | symbol                     | V: the input symbol                              | 1       |
//! | lookback (`lookback`)      | V + 1: the symbol one bar before the next step, or none |  |
//! |                            | V + 1: the symbol two bars before it, or none    |         |
//! |                            | 2: the input repeats the symbol one bar before it (no, yes) | |
//! |                            | 2: the input repeats the symbol two bars before it (no, yes) | 4 |
//! | position (`position`)      | [`MAX_POSITION`] + 2: the next step's place in its bar, 0 … 31, then overflow, none | |
//! |                            | 2: the next step is a downbeat (no, yes)         | 2       |
//! | mode (`mode`)              | 3: major, minor, none                            | 1       |
//! | meter (`meter`)            | 6: duple, triple, compound duple, compound triple, other, none | 1 |
//! | phrase (`phrase`)          | V + 1: the symbol four bars before the next step, or none |   |
//! |                            | 2: the input repeats the symbol four bars before it (no, yes) | 2 |
//! | bar (`bar`)                | [`MAX_BAR`] + 2: the next step's bar in the song, 0 … 15, then later, none | 1 |
//! | accidentals (`accidentals`) | 3 for each of C♯, E♭, F♯, G♯, B♭: not yet in the song, within the last four bars, earlier | |
//! |                            | 3: the song leaves the scale (no, yes, none)     | 6       |
//!
//! So D = V + 3V + 9 + 36 + 3 + 6 + 18 + 18 with every group, K = 18; with none, D = V and K = 1
//! (the reference model's one-hot input).
//!
//! # Choices
//!
//! - **Lookback** follows Magenta's Lookback RNN: the input at step t (predicting t + 1) carries
//!   the symbols one and two bars before t + 1, "the event that would come next if the melody
//!   repeated", and flags saying whether the symbol at t repeats the one a bar and two bars
//!   before t. Magenta fixes a bar at 16 steps; here a bar is the measure of the meter in force
//!   on the grid (3/4 → 12 sixteenths), and two bars back is one bar back from one bar back, so
//!   a meter change is honoured. A step before the song's first is none.
//! - **Phrase** is lookback four bars back: the phrase of four bars is where `erk`'s songs repeat
//!   most. The shift of a song's longest repeat (the `longest_repeat` of `engine assess`) is four
//!   bars in 601 of its 1,618 songs with meters, two bars in 304, eight in 164, one in 74; one and
//!   two bars back alone cannot see a phrase come round again.
//! - **Bar** counts the bars from the first bar start (0 is the first whole bar; a pickup before
//!   it is none; bars before a late first barline are counted back from it, as positions are): the songs are mostly 8, 12 or 16 bars of four-bar phrases, and where a
//!   phrase begins and ends (a repeat four bars back is a fifth as likely at a phrase's last bar
//!   as at its other bars in `erk`) is not in a 64-step window's reach.
//! - **Accidentals** say which pitch classes off the scale the song has sounded, up to and
//!   including the input, and whether within the four bars before t + 1. Preprocessing
//!   transposes every song to C major or A minor, so these are the five black keys. A song
//!   leaves the scale for a passage (a modulation, a leading tone that comes back), not for one
//!   note: 12.5 % of `erk`'s held-out songs have a note off the scale, 3.0 such notes each. The
//!   model without this group, which reads 64 steps, writes 1.3 such notes in a melody that has
//!   any. The group also says whether the song leaves the scale at all, a condition of the whole
//!   song like its mode: without it the model, having heard no accidental yet, makes the first
//!   one rarer still, and truncated sampling cuts most first ones. Generation draws it for each
//!   melody from the training songs of its mode (the checkpoint records their shares).
//! - **Position** is where t + 1 lies in its bar: steps since the latest bar start, counted
//!   modulo the measure, so a bar longer than its measure (a barline missing) restarts at each
//!   whole measure. Bar starts are the song's barlines (`bar_starts`), so a pickup's steps sit
//!   at the end of a bar; before the first barline the bars are counted back from it. The
//!   downbeat flag is position 0. Magenta's binary counter is replaced by a one-hot, which is
//!   one row of W_ih like every other input.
//! - **Mode** is the song's, by its third: major, ionian, lydian and mixolydian are major; minor,
//!   aeolian, dorian, phrygian and locrian are minor.
//! - **Meter** is the song's first meter by its count: 2 and 4 duple (4/4 counts as duple), 3
//!   triple, 6 and 12 compound duple, 9 compound triple, anything else other.
//! - **The `/` runs** between songs: a run leads into the song after it, so every `/` row carries
//!   that song's mode and meter (a melody is asked for in a mode and meter before its first
//!   note) and every other group's none row (no position, no lookback, flags no). All rows of a
//!   run are equal, so a window that starts inside a run reads the same rows wherever it starts.
//!   The run after the stream's last song leads into no song: mode and meter none too.
//! - **Songs without barlines** (MIDI, ABC for now) have bars from the meter starting at their
//!   first step; songs without a meter have 4/4 bars (a MIDI file's default) and meter none.

use std::fmt;
use std::fs;
use std::path::Path;

use crate::dataset::{is_held_out, songs, Dataset, Split};
use crate::encode::Vocabulary;
use crate::kern::{Mode, QuarterLength};
use crate::melody::Symbol;

/// The feature groups, in their block order; also their names in `--features` and checkpoints.
pub const GROUPS: [&str; 7] = [
    "lookback",
    "position",
    "mode",
    "meter",
    "phrase",
    "bar",
    "accidentals",
];

/// Positions in a bar with a row of their own: a bar of 4/2 or 8/4 on the sixteenth grid. Longer
/// bars share the overflow row from here on.
pub const MAX_POSITION: usize = 32;

/// Bars from the first with a row of their own; later ones share the row after them.
pub const MAX_BAR: usize = 16;

/// The meter a song without one is counted in: a MIDI file's default.
const DEFAULT_METER: (u32, u32) = (4, 4);

const FLAG_ROWS: usize = 2;
const POSITION_ROWS: usize = MAX_POSITION + 2;
const BAR_ROWS: usize = MAX_BAR + 2;
const MODE_ROWS: usize = 3;
const METER_ROWS: usize = 6;

/// The pitch classes off the scale of C major and A minor
/// ([`C_MAJOR_PITCH_CLASSES`](crate::melody::C_MAJOR_PITCH_CLASSES)), which every song is
/// transposed to: C♯, E♭, F♯, G♯, B♭. Each has its block of the accidentals group.
const OFF_SCALE: [u8; 5] = [1, 3, 6, 8, 10];
/// The bars before the next step within which an accidental is recent: a phrase.
const RECENT_BARS: usize = 4;
/// No, yes, none (a `/` run after the last song).
const LEAVES_SCALE_ROWS: usize = 3;

/// Which groups of inputs a model reads besides the symbol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeatureSet {
    pub lookback: bool,
    pub position: bool,
    pub mode: bool,
    pub meter: bool,
    pub phrase: bool,
    pub bar: bool,
    pub accidentals: bool,
}

impl FeatureSet {
    /// The reference model: the symbol alone.
    pub const NONE: FeatureSet = FeatureSet {
        lookback: false,
        position: false,
        mode: false,
        meter: false,
        phrase: false,
        bar: false,
        accidentals: false,
    };

    /// Every group: `engine train`'s default and the bundled model's (README, "Feature inputs,
    /// measured").
    pub const ALL: FeatureSet = FeatureSet {
        lookback: true,
        position: true,
        mode: true,
        meter: true,
        phrase: true,
        bar: true,
        accidentals: true,
    };

    /// Parses `--features`: group names separated by commas, in any order; `all` is every
    /// group; `none` or nothing is the reference model.
    pub fn parse(text: &str) -> Result<FeatureSet, String> {
        let mut set = FeatureSet::NONE;
        let names: Vec<&str> = text.split(',').map(str::trim).collect();
        if names == [""] || names == ["none"] {
            return Ok(set);
        }
        if names == ["all"] {
            return Ok(FeatureSet::ALL);
        }
        for name in names {
            let flag = match name {
                "lookback" => &mut set.lookback,
                "position" => &mut set.position,
                "mode" => &mut set.mode,
                "meter" => &mut set.meter,
                "phrase" => &mut set.phrase,
                "bar" => &mut set.bar,
                "accidentals" => &mut set.accidentals,
                _ => {
                    return Err(format!(
                        "{name:?} is no feature group: name all, or any of {} separated by \
                         commas, or none",
                        GROUPS.join(", ")
                    ))
                }
            };
            if std::mem::replace(flag, true) {
                return Err(format!("feature group {name:?} is named twice"));
            }
        }
        Ok(set)
    }

    /// The groups it holds, in block order: what a checkpoint stores.
    pub fn names(&self) -> Vec<&'static str> {
        let on = [
            self.lookback,
            self.position,
            self.mode,
            self.meter,
            self.phrase,
            self.bar,
            self.accidentals,
        ];
        GROUPS
            .iter()
            .zip(on)
            .filter_map(|(&name, on)| on.then_some(name))
            .collect()
    }

    /// K: the indices every step reads.
    pub fn inputs_per_step(&self) -> usize {
        1 + 4 * self.lookback as usize
            + 2 * self.position as usize
            + self.mode as usize
            + self.meter as usize
            + 2 * self.phrase as usize
            + self.bar as usize
            + (OFF_SCALE.len() + 1) * self.accidentals as usize
    }

    /// D: the input rows, for a vocabulary of `vocab_len` symbols.
    pub fn input_width(&self, vocab_len: usize) -> usize {
        vocab_len
            + self.lookback as usize * lookback_rows(vocab_len)
            + self.position as usize * (POSITION_ROWS + FLAG_ROWS)
            + self.mode as usize * MODE_ROWS
            + self.meter as usize * METER_ROWS
            + self.phrase as usize * (vocab_len + 1 + FLAG_ROWS)
            + self.bar as usize * BAR_ROWS
            + self.accidentals as usize * (OFF_SCALE.len() * Heard::ROWS + LEAVES_SCALE_ROWS)
    }

    /// Lays out one step's row of K indices into `row`.
    fn write_row(&self, vocab_len: usize, symbol: u32, step: &StepFeatures, row: &mut [u32]) {
        let mut slots = row.iter_mut();
        let mut offset = 0;
        // Each block: the index of its row `at`, then the next block starts `rows` further.
        let mut block = |at: usize, rows: usize| {
            debug_assert!(at < rows);
            *slots.next().expect("K slots") = (offset + at) as u32;
            offset += rows;
        };
        let symbol_or_none = |s: Option<u32>| s.map_or(vocab_len, |s| s as usize);
        block(symbol as usize, vocab_len);
        if self.lookback {
            block(symbol_or_none(step.one_bar_back), vocab_len + 1);
            block(symbol_or_none(step.two_bars_back), vocab_len + 1);
            block(step.repeats_one_bar as usize, FLAG_ROWS);
            block(step.repeats_two_bars as usize, FLAG_ROWS);
        }
        if self.position {
            let place = step
                .position
                .map_or(MAX_POSITION + 1, |p| p.min(MAX_POSITION));
            block(place, POSITION_ROWS);
            block((step.position == Some(0)) as usize, FLAG_ROWS);
        }
        if self.mode {
            block(step.mode.map_or(2, |m| m as usize), MODE_ROWS);
        }
        if self.meter {
            block(step.meter.map_or(5, |m| m as usize), METER_ROWS);
        }
        if self.phrase {
            block(symbol_or_none(step.four_bars_back), vocab_len + 1);
            block(step.repeats_four_bars as usize, FLAG_ROWS);
        }
        if self.bar {
            block(step.bar.map_or(MAX_BAR + 1, |b| b.min(MAX_BAR)), BAR_ROWS);
        }
        if self.accidentals {
            for heard in step.accidentals {
                block(heard as usize, Heard::ROWS);
            }
            block(step.leaves_scale.map_or(2, usize::from), LEAVES_SCALE_ROWS);
        }
        debug_assert_eq!(row.len(), self.inputs_per_step());
    }
}

impl fmt::Display for FeatureSet {
    /// `lookback,position`, or `none`: what `--features` takes back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.names() {
            names if names.is_empty() => f.write_str("none"),
            names => f.write_str(&names.join(",")),
        }
    }
}

fn lookback_rows(vocab_len: usize) -> usize {
    2 * (vocab_len + 1) + 2 * FLAG_ROWS
}

/// A mode by its third, the two the model is conditioned on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModeClass {
    Major = 0,
    Minor = 1,
}

impl ModeClass {
    /// Major, ionian, lydian and mixolydian have a major third; the other modes a minor one.
    pub fn of(mode: Mode) -> ModeClass {
        match mode {
            Mode::Major | Mode::Ionian | Mode::Lydian | Mode::Mixolydian => ModeClass::Major,
            Mode::Minor | Mode::Aeolian | Mode::Dorian | Mode::Phrygian | Mode::Locrian => {
                ModeClass::Minor
            }
        }
    }

    /// `major` or `minor`: what [`ModeClass::parse`] reads back.
    pub fn name(self) -> &'static str {
        match self {
            ModeClass::Major => "major",
            ModeClass::Minor => "minor",
        }
    }

    /// Parses `--mode`: `major` or `minor`.
    pub fn parse(text: &str) -> Result<ModeClass, String> {
        match text {
            "major" => Ok(ModeClass::Major),
            "minor" => Ok(ModeClass::Minor),
            _ => Err(format!(
                "{text:?} is not a mode to ask for: major or minor (a melody in another mode is \
                 read as major or minor by its third: dorian is minor, mixolydian major)"
            )),
        }
    }

    /// The class of a mode as `songs.jsonl` names it (`major`, `dorian`, …).
    fn of_name(name: &str) -> Option<ModeClass> {
        const MODES: [Mode; 9] = [
            Mode::Major,
            Mode::Minor,
            Mode::Ionian,
            Mode::Aeolian,
            Mode::Dorian,
            Mode::Phrygian,
            Mode::Lydian,
            Mode::Mixolydian,
            Mode::Locrian,
        ];
        MODES
            .into_iter()
            .find(|mode| mode.name() == name)
            .map(ModeClass::of)
    }
}

/// A meter by its count of beats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MeterClass {
    /// 2/4, 4/4, 2/2, …
    Duple = 0,
    /// 3/4, 3/8, 3/2.
    Triple = 1,
    /// 6/8, 6/4, and 12/8.
    CompoundDuple = 2,
    /// 9/8.
    CompoundTriple = 3,
    /// 5/4, 7/8, …
    Other = 4,
}

impl MeterClass {
    pub fn of((count, _unit): (u32, u32)) -> MeterClass {
        match count {
            2 | 4 => MeterClass::Duple,
            3 => MeterClass::Triple,
            6 | 12 => MeterClass::CompoundDuple,
            9 => MeterClass::CompoundTriple,
            _ => MeterClass::Other,
        }
    }
}

/// Parses `--meter`: `count/unit` such as 3/4 or 6/8, the count 1 … 255 and the unit a power of
/// two up to 64, as a time signature can hold them.
pub fn parse_meter(text: &str) -> Result<(u32, u32), String> {
    let meter: Option<(u32, u32)> = text
        .split_once('/')
        .and_then(|(count, unit)| Some((count.trim().parse().ok()?, unit.trim().parse().ok()?)));
    match meter {
        Some((count, unit))
            if (1..=255).contains(&count) && unit <= 64 && unit.is_power_of_two() =>
        {
            Ok((count, unit))
        }
        _ => Err(format!(
            "{text:?} is not a meter such as 4/4, 3/4 or 6/8: beats (1 … 255) / the beat's note \
             value (1, 2, 4, 8, 16, 32 or 64)"
        )),
    }
}

/// The length of a bar of `meter` in grid steps of `step` quarter lengths: 3/4 on sixteenths is
/// 12. None when it is not a whole, positive number of steps.
pub fn measure_steps(meter: (u32, u32), step: QuarterLength) -> Option<usize> {
    let (count, unit) = meter;
    if unit == 0 {
        return None;
    }
    let steps = QuarterLength::new(4 * count as u64, unit as u64).steps_of(step)?;
    (steps > 0).then_some(steps as usize)
}

/// Where a melody's bars lie on the grid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bars {
    /// `(first step, measure in steps)` of each meter in force, in order, the first at step 0.
    measures: Vec<(usize, usize)>,
    /// The steps where a bar starts, ascending. Beyond them bars start every measure, and before
    /// the first they are counted back from it.
    starts: Vec<usize>,
}

impl Bars {
    /// Bars of `measure` steps, step 0 lying `position` steps into its bar.
    pub fn regular(measure: usize, position: usize) -> Bars {
        Bars {
            measures: vec![(0, measure)],
            starts: vec![(measure - position % measure) % measure],
        }
    }

    /// The step where the first bar starts: the length of the pickup, 0 without one.
    pub fn first_start(&self) -> usize {
        self.starts.first().copied().unwrap_or(0)
    }

    /// The measure in force at `step`.
    pub fn measure_at(&self, step: usize) -> usize {
        let later = self.measures.partition_point(|&(from, _)| from <= step);
        self.measures[later.saturating_sub(1)].1
    }

    /// Where `step` lies in its bar, 0 on a downbeat.
    pub fn position(&self, step: usize) -> usize {
        let later = self.starts.partition_point(|&start| start <= step);
        let anchor = match later {
            0 => self.starts.first().copied().unwrap_or(0),
            n => self.starts[n - 1],
        };
        (step as i64 - anchor as i64).rem_euclid(self.measure_at(step) as i64) as usize
    }

    /// Which bar `step` lies in, 0 from the first bar start on, None before it (a pickup). Bars
    /// before the first barline are counted back from it, as [`Bars::position`] counts them, so
    /// the first bar starts within the first measure.
    fn bar_number(&self, step: usize) -> Option<usize> {
        let measure = self.measure_at(0);
        let written = self.starts.first().copied().unwrap_or(0);
        let counted_back = written / measure;
        let first = written - counted_back * measure;
        let later = self.starts.partition_point(|&start| start <= step);
        match later {
            0 => step.checked_sub(first).map(|s| s / measure),
            n => {
                let last = self.starts[n - 1];
                Some(counted_back + n - 1 + (step - last) / self.measure_at(step))
            }
        }
    }

    /// The step `bars` bars before `step`, if the melody has one: one bar back at a time, so a
    /// meter change is honoured.
    fn bars_before(&self, step: usize, bars: usize) -> Option<usize> {
        (0..bars).try_fold(step, |step, _| step.checked_sub(self.measure_at(step)))
    }
}

/// One song's metadata that the features need, from its `songs.jsonl` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SongInfo {
    /// The song's first meter, `(3, 4)`; None where the score gives none.
    pub meter: Option<(u32, u32)>,
    /// None where the line names no mode.
    pub mode: Option<ModeClass>,
    /// The song's bars on the grid.
    pub bars: Bars,
    /// Whether any of its pitches is off the scale ([`OFF_SCALE`]).
    pub leaves_scale: bool,
}

impl SongInfo {
    fn meter_class(&self) -> Option<MeterClass> {
        self.meter.map(MeterClass::of)
    }

    fn condition(&self) -> SongCondition {
        (self.mode, self.meter_class(), Some(self.leaves_scale))
    }
}

/// The kept songs of `DIR/songs.jsonl`, in order, checked against the dataset's stream: there must
/// be as many as the stream has songs, and each line's `encoding` must be its song's symbols.
/// `step` is the grid preprocessing used (`--step`, a sixteenth by default), on which the meters
/// become measures. Errors name the file and line.
pub fn load_songs(
    dir: &Path,
    dataset: &Dataset,
    step: QuarterLength,
) -> Result<Vec<SongInfo>, String> {
    let path = dir.join("songs.jsonl");
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let delimiter = dataset.delimiter();
    let mut stream_songs = songs(&dataset.stream, delimiter);
    let mut infos = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = |why: String| format!("{} line {}: {why}", path.display(), i + 1);
        let record: serde_json::Value =
            serde_json::from_str(line).map_err(|e| at(format!("not JSON: {e}")))?;
        if record["kept"] != serde_json::Value::Bool(true) {
            continue;
        }
        let Some(song) = stream_songs.next() else {
            return Err(at(format!(
                "kept song {} of songs.jsonl, but dataset.txt holds only {}",
                infos.len() + 1,
                infos.len()
            )));
        };
        let notes = song.iter().take_while(|&&s| s != delimiter);
        let stream_symbols: Vec<&str> = notes.map(|&s| dataset.vocab.symbol(s)).collect();
        let encoding: Vec<&str> = record["encoding"]
            .as_str()
            .ok_or_else(|| at("a kept song without an encoding".into()))?
            .split(' ')
            .collect();
        if encoding != stream_symbols {
            let differ = (encoding.iter().zip(&stream_symbols))
                .position(|(a, b)| a != b)
                .unwrap_or(encoding.len().min(stream_symbols.len()));
            return Err(at(format!(
                "{}'s encoding is not song {} of dataset.txt: they differ from symbol {differ} \
                 ({} symbols against {}); preprocess again",
                record["file"],
                infos.len() + 1,
                encoding.len(),
                stream_symbols.len()
            )));
        }
        infos.push(song_info(&record, &stream_symbols, step).map_err(at)?);
    }
    if stream_songs.next().is_some() {
        return Err(format!(
            "{}: {} kept songs, but dataset.txt holds more; preprocess again",
            path.display(),
            infos.len()
        ));
    }
    Ok(infos)
}

/// A `songs.jsonl` line's meter, mode and bars, for its song of `symbols`.
fn song_info(
    record: &serde_json::Value,
    symbols: &[&str],
    step: QuarterLength,
) -> Result<SongInfo, String> {
    let len = symbols.len();
    let meter_of = |value: &serde_json::Value| {
        let text = value.as_str().ok_or("a meter that is not a string")?;
        parse_meter(text)
    };
    let measure_of = |meter: (u32, u32)| {
        measure_steps(meter, step).ok_or_else(|| {
            format!(
                "meter {}/{} is not a whole number of {step}-quarter steps",
                meter.0, meter.1
            )
        })
    };
    let meter = match &record["meter"] {
        serde_json::Value::Null => None,
        value => Some(meter_of(value)?),
    };
    let mut measures = vec![(0, measure_of(meter.unwrap_or(DEFAULT_METER))?)];
    for change in record["meter_changes"].as_array().into_iter().flatten() {
        let at = change[0]
            .as_u64()
            .ok_or("a meter change without its step")?;
        measures.push((at as usize, measure_of(meter_of(&change[1])?)?));
    }
    let starts: Vec<usize> = match record["bar_starts"].as_array() {
        Some(starts) => (starts.iter())
            .map(|s| {
                s.as_u64()
                    .map(|s| s as usize)
                    .ok_or("a bar start that is no step")
            })
            .collect::<Result<_, _>>()?,
        None => vec![0],
    };
    if !starts.windows(2).all(|w| w[0] < w[1]) || starts.iter().any(|&s| s >= len) {
        return Err(format!(
            "bar starts {starts:?} are not ascending steps of the song's {len}"
        ));
    }
    // A meter may be declared again at the same step (a repeated `*M3/4`): the last one holds.
    if !measures.windows(2).all(|w| w[0].0 <= w[1].0) {
        return Err("meter changes out of order".into());
    }
    let mode = match &record["mode"] {
        serde_json::Value::Null => None,
        value => Some(
            value
                .as_str()
                .and_then(ModeClass::of_name)
                .ok_or_else(|| format!("mode {value} is none this engine knows"))?,
        ),
    };
    Ok(SongInfo {
        meter,
        mode,
        bars: Bars { measures, starts },
        leaves_scale: symbols
            .iter()
            .any(|symbol| off_scale_block(symbol).is_some()),
    })
}

/// The grid the features count bars on: preprocessing's default, the sixteenth (a dataset does
/// not record its `--step`, and generation writes sixteenths).
pub fn grid_step() -> QuarterLength {
    crate::encode::Options::default().step
}

/// The songs' metadata a model reading `set` needs: none for the reference model, else
/// `DIR/songs.jsonl` on the [`grid_step`], which must record meters or barlines when the bars
/// matter. Errors say what is missing and how to get it.
pub fn songs_for(
    set: &FeatureSet,
    dir: &Path,
    dataset: &Dataset,
) -> Result<Option<Vec<SongInfo>>, String> {
    if *set == FeatureSet::NONE {
        return Ok(None);
    }
    let need = |e: String| {
        format!(
            "features {set} read each song's meter, mode and barlines from songs.jsonl: {e} \
             (`--features none` trains the reference model, which needs none of them)"
        )
    };
    let songs = load_songs(dir, dataset, grid_step()).map_err(need)?;
    let unbarred = Bars::regular(measure_steps(DEFAULT_METER, grid_step()).expect("4/4"), 0);
    let bars_matter = set.lookback || set.position || set.meter;
    if bars_matter && (songs.iter()).all(|song| song.meter.is_none() && song.bars == unbarred) {
        return Err(need(format!(
            "{} records no song's meter or barlines (written by an engine before features? run \
             `engine preprocess` again)",
            dir.join("songs.jsonl").display()
        )));
    }
    if set.mode && songs.iter().all(|song| song.mode.is_none()) {
        return Err(need(format!(
            "{} records no song's mode",
            dir.join("songs.jsonl").display()
        )));
    }
    Ok(Some(songs))
}

/// The songs of one split, as [`Dataset::split`] takes them: with these, [`stream_features`] of
/// the split's stream gives each of its `/` runs the mode and meter of the song it leads into
/// there.
pub fn songs_of_split(songs: &[SongInfo], split: Split, val_fraction: f64) -> Vec<SongInfo> {
    if split == Split::All {
        return songs.to_vec();
    }
    let want_val = split == Split::Val;
    (songs.iter().enumerate())
        .filter(|(i, _)| is_held_out(*i, val_fraction) == want_val)
        .map(|(_, song)| song.clone())
        .collect()
}

/// The most common meter and mode of `songs` (ties to the one seen first), None where no song
/// has one: what generation asks for when the user and the seed say nothing.
pub fn most_common(songs: &[SongInfo]) -> (Option<(u32, u32)>, Option<ModeClass>) {
    let meters = tally(songs.iter().filter_map(|song| song.meter));
    let modes = tally(songs.iter().filter_map(|song| song.mode));
    (
        meters.first().map(|&(meter, _)| meter),
        modes.first().map(|&(mode, _)| mode),
    )
}

/// A song's meter and mode, None where it has none.
pub type Condition = (Option<(u32, u32)>, Option<ModeClass>);

/// How many of `songs` have each (meter, mode) pair, None where a song has none, most common
/// first: the mixture a batch generated in the training songs' meters and modes draws from.
pub fn condition_counts(songs: &[SongInfo]) -> Vec<(Condition, usize)> {
    tally(songs.iter().map(|song| (song.meter, song.mode)))
}

/// Each distinct value of `values` with how often it occurs, most often first, ties in the
/// order first seen.
pub fn tally<T: PartialEq>(values: impl IntoIterator<Item = T>) -> Vec<(T, usize)> {
    let mut counts: Vec<(T, usize)> = Vec::new();
    for value in values {
        match counts.iter_mut().find(|(seen, _)| *seen == value) {
            Some((_, count)) => *count += 1,
            None => counts.push((value, 1)),
        }
    }
    // A stable sort: equal counts keep the order first seen.
    counts.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
    counts
}

/// A split's stream and the input row of each of its steps: what its windows read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitInputs {
    /// The split's symbols: the windows' targets.
    pub symbols: Vec<u32>,
    /// `[symbols.len()][K]`: the symbols themselves for the reference model (K = 1), else
    /// [`stream_features`] of the split.
    pub rows: Vec<u32>,
}

impl SplitInputs {
    /// The rows of `split` of `dataset` for a model reading `set`; `songs` are all the dataset's
    /// songs ([`load_songs`]), needed unless `set` is none. The split is taken before the rows
    /// are, so that each `/` run leads into the song that follows it in the split.
    pub fn of(
        set: &FeatureSet,
        dataset: &Dataset,
        songs: Option<&[SongInfo]>,
        split: Split,
        val_fraction: f64,
    ) -> Result<SplitInputs, String> {
        let symbols = dataset.split(split, val_fraction);
        let rows = match songs {
            _ if *set == FeatureSet::NONE => symbols.clone(),
            Some(songs) => stream_features(
                set,
                &dataset.vocab,
                &symbols,
                dataset.delimiter(),
                &songs_of_split(songs, split, val_fraction),
            )?,
            None => return Err(format!("features {set} need the songs' metadata")),
        };
        Ok(SplitInputs { symbols, rows })
    }
}

/// What a step's input says besides its symbol, before it is laid out as indices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct StepFeatures {
    one_bar_back: Option<u32>,
    two_bars_back: Option<u32>,
    repeats_one_bar: bool,
    repeats_two_bars: bool,
    four_bars_back: Option<u32>,
    repeats_four_bars: bool,
    /// Of the next step, in its bar.
    position: Option<usize>,
    /// The next step's bar, from the first barline.
    bar: Option<usize>,
    mode: Option<ModeClass>,
    meter: Option<MeterClass>,
    /// Of each pitch class of [`OFF_SCALE`], up to the input.
    accidentals: [Heard; OFF_SCALE.len()],
    /// Whether the song has a pitch off the scale anywhere.
    leaves_scale: Option<bool>,
}

/// Whether a song has sounded a pitch class, as of a step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Heard {
    #[default]
    NotYet = 0,
    /// Within the [`RECENT_BARS`] bars before the next step.
    Recently = 1,
    /// Only before them.
    Earlier = 2,
}

impl Heard {
    const ROWS: usize = 3;
}

/// Which block of [`OFF_SCALE`] each symbol of `vocab` sounds: None for a pitch on the scale, a
/// rest, a hold or a `/`.
fn off_scale_blocks(vocab: &Vocabulary) -> Vec<Option<usize>> {
    (vocab.symbols().iter())
        .map(|symbol| off_scale_block(symbol))
        .collect()
}

/// The block of [`OFF_SCALE`] a symbol sounds, None for any other symbol.
fn off_scale_block(symbol: &str) -> Option<usize> {
    let Some(Symbol::Pitch(pitch)) = Symbol::parse(symbol) else {
        return None;
    };
    OFF_SCALE.iter().position(|&class| class == pitch % 12)
}

/// The latest step of a melody at which each pitch class off the scale began, as it is read.
#[derive(Clone, Debug, Default)]
struct Accidentals {
    latest: [Option<usize>; OFF_SCALE.len()],
}

impl Accidentals {
    /// Reads the melody's symbol at `step`, whose block of [`OFF_SCALE`] is `block`.
    fn hear(&mut self, step: usize, block: Option<usize>) {
        if let Some(block) = block {
            self.latest[block] = Some(step);
        }
    }

    /// Each pitch class as heard so far: recently when it last began at step `recent_from` or
    /// later (None: the melody does not reach [`RECENT_BARS`] bars back, and every step is).
    fn as_of(&self, recent_from: Option<usize>) -> [Heard; OFF_SCALE.len()] {
        self.latest.map(|latest| match latest {
            None => Heard::NotYet,
            Some(step) if step >= recent_from.unwrap_or(0) => Heard::Recently,
            Some(_) => Heard::Earlier,
        })
    }
}

/// The features of a melody's latest step, whose symbol ends `melody`; it predicts the next.
/// `accidentals` have read the whole melody; `song` is its mode, meter class and whether it
/// leaves the scale.
fn melody_step(
    bars: &Bars,
    melody: &[u32],
    accidentals: &Accidentals,
    song: SongCondition,
) -> StepFeatures {
    let (mode, meter, leaves_scale) = song;
    let now = melody.len() - 1;
    let next = now + 1;
    let repeats = |then: Option<usize>| then.is_some_and(|s| melody[s] == melody[now]);
    StepFeatures {
        one_bar_back: bars.bars_before(next, 1).map(|s| melody[s]),
        two_bars_back: bars.bars_before(next, 2).map(|s| melody[s]),
        repeats_one_bar: repeats(bars.bars_before(now, 1)),
        repeats_two_bars: repeats(bars.bars_before(now, 2)),
        four_bars_back: bars.bars_before(next, 4).map(|s| melody[s]),
        repeats_four_bars: repeats(bars.bars_before(now, 4)),
        position: Some(bars.position(next)),
        bar: bars.bar_number(next),
        mode,
        meter,
        accidentals: accidentals.as_of(bars.bars_before(next, RECENT_BARS)),
        leaves_scale,
    }
}

/// What a song's every step says of it: its mode, meter class and whether it leaves the scale.
type SongCondition = (Option<ModeClass>, Option<MeterClass>, Option<bool>);

/// A `/` of a run that leads into a song of this condition (none after the last song).
fn delimiter_step((mode, meter, leaves_scale): SongCondition) -> StepFeatures {
    StepFeatures {
        mode,
        meter,
        leaves_scale,
        ..StepFeatures::default()
    }
}

/// The input indices of every step of `stream` (songs, each followed by its run of `/`, as
/// `dataset.txt` holds them): `[stream.len()][K]`, row-major, so that a training window's inputs
/// are its rows and its targets the symbols, as without features. `songs` are the stream's songs
/// in order ([`load_songs`], [`songs_of_split`]).
pub fn stream_features(
    set: &FeatureSet,
    vocab: &Vocabulary,
    stream: &[u32],
    delimiter: u32,
    songs_info: &[SongInfo],
) -> Result<Vec<u32>, String> {
    let k = set.inputs_per_step();
    let units: Vec<&[u32]> = songs(stream, delimiter).collect();
    if units.len() != songs_info.len() {
        return Err(format!(
            "the stream holds {} songs but their metadata {}",
            units.len(),
            songs_info.len()
        ));
    }
    let vocab_len = vocab.len();
    let off_scale = off_scale_blocks(vocab);
    let mut rows = vec![0u32; stream.len() * k];
    let mut rows_left = rows.chunks_exact_mut(k);
    for (i, (unit, info)) in units.iter().zip(songs_info).enumerate() {
        let notes = unit.iter().take_while(|&&s| s != delimiter).count();
        let mut accidentals = Accidentals::default();
        for t in 0..notes {
            accidentals.hear(t, off_scale[unit[t] as usize]);
            let melody = &unit[..=t];
            let step = melody_step(&info.bars, melody, &accidentals, info.condition());
            set.write_row(
                vocab_len,
                unit[t],
                &step,
                rows_left.next().expect("a row a step"),
            );
        }
        let next = songs_info.get(i + 1);
        let run = delimiter_step(next.map_or((None, None, None), SongInfo::condition));
        for &symbol in &unit[notes..] {
            set.write_row(
                vocab_len,
                symbol,
                &run,
                rows_left.next().expect("a row a step"),
            );
        }
    }
    Ok(rows)
}

/// The input indices of a melody as generation writes it, one step at a time: the same rows
/// [`stream_features`] gives a song of this meter and mode, its bars regular from the first.
#[derive(Clone, Debug)]
pub struct FeatureTracker {
    set: FeatureSet,
    vocab_len: usize,
    delimiter: u32,
    /// Of each symbol, as [`off_scale_blocks`].
    off_scale: Vec<Option<usize>>,
    bars: Bars,
    mode: ModeClass,
    meter: MeterClass,
    melody: Vec<u32>,
    accidentals: Accidentals,
    leaves_scale: bool,
}

impl FeatureTracker {
    /// A melody in `meter` and `mode`, its first step `first_position` steps into its bar (0:
    /// on a downbeat; a seed from a song takes the place its first step has there), on a grid of
    /// `step` quarter lengths.
    pub fn new(
        set: FeatureSet,
        vocab: &Vocabulary,
        delimiter: u32,
        meter: (u32, u32),
        mode: ModeClass,
        first_position: usize,
        step: QuarterLength,
    ) -> Result<FeatureTracker, String> {
        let measure = measure_steps(meter, step).ok_or_else(|| {
            format!(
                "meter {}/{} is not a whole number of {step}-quarter steps",
                meter.0, meter.1
            )
        })?;
        Ok(FeatureTracker {
            set,
            vocab_len: vocab.len(),
            delimiter,
            off_scale: off_scale_blocks(vocab),
            bars: Bars::regular(measure, first_position),
            mode,
            meter: MeterClass::of(meter),
            melody: Vec::new(),
            accidentals: Accidentals::default(),
            leaves_scale: false,
        })
    }

    /// The melody is to leave the scale: what the `accidentals` group's rows say of it
    /// throughout (false unless set).
    pub fn leaving_scale(self, leaves_scale: bool) -> FeatureTracker {
        FeatureTracker {
            leaves_scale,
            ..self
        }
    }

    fn condition(&self) -> SongCondition {
        (Some(self.mode), Some(self.meter), Some(self.leaves_scale))
    }

    /// K: the indices of each row it writes.
    pub fn inputs_per_step(&self) -> usize {
        self.set.inputs_per_step()
    }

    /// Writes the row of a `/` of the context before the melody into `row` (K indices).
    pub fn context_row(&self, row: &mut [u32]) {
        let step = delimiter_step(self.condition());
        self.set
            .write_row(self.vocab_len, self.delimiter, &step, row);
    }

    /// Appends the melody's next symbol and writes the row of the step that reads it into `row`.
    pub fn push(&mut self, symbol: u32, row: &mut [u32]) {
        self.accidentals
            .hear(self.melody.len(), self.off_scale[symbol as usize]);
        self.melody.push(symbol);
        let step = melody_step(
            &self.bars,
            &self.melody,
            &self.accidentals,
            self.condition(),
        );
        self.set.write_row(self.vocab_len, symbol, &step, row);
    }

    /// The melody's steps before its first bar start: 0 when it starts on a downbeat. Its files
    /// put their barlines there and every measure after.
    pub fn pickup(&self) -> usize {
        self.bars.starts[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sixteenth() -> QuarterLength {
        QuarterLength::new(1, 4)
    }

    #[test]
    fn feature_sets_parse_in_any_order_and_print_in_block_order() {
        let set = FeatureSet::parse("meter, lookback").unwrap();
        assert_eq!(set.names(), ["lookback", "meter"]);
        assert_eq!(set.to_string(), "lookback,meter");
        assert_eq!(FeatureSet::parse(&set.to_string()), Ok(set));
        assert_eq!(FeatureSet::parse("none"), Ok(FeatureSet::NONE));
        assert_eq!(FeatureSet::parse(""), Ok(FeatureSet::NONE));
        assert_eq!(FeatureSet::NONE.to_string(), "none");
        let all = FeatureSet::parse("phrase,lookback,accidentals,bar,position,mode,meter").unwrap();
        assert_eq!(all.names(), GROUPS);
        assert_eq!(FeatureSet::parse("all"), Ok(all));
        assert_eq!(FeatureSet::ALL, all);
        assert!(FeatureSet::parse("lookback,beat").unwrap_err().contains(
            "\"beat\" is no feature group: name all, or any of lookback, position, mode, meter, \
             phrase, bar, accidentals"
        ));
        assert!(FeatureSet::parse("mode,mode")
            .unwrap_err()
            .contains("named twice"));
        assert!(FeatureSet::parse("none,mode").is_err());
    }

    #[test]
    fn widths_and_indices_per_step_for_a_vocabulary_of_38() {
        let width = |text: &str| {
            let set = FeatureSet::parse(text).unwrap();
            (set.input_width(38), set.inputs_per_step())
        };
        assert_eq!(width("none"), (38, 1));
        assert_eq!(width("lookback"), (38 + 39 + 39 + 2 + 2, 5));
        assert_eq!(width("position"), (38 + 34 + 2, 3));
        assert_eq!(width("mode"), (41, 2));
        assert_eq!(width("meter"), (44, 2));
        assert_eq!(width("phrase"), (38 + 39 + 2, 3));
        assert_eq!(width("lookback,position,mode,meter"), (165, 9));
        assert_eq!(width("bar"), (38 + 18, 2));
        assert_eq!(width("lookback,position,mode,meter,phrase"), (165 + 41, 11));
        assert_eq!(
            width("lookback,position,mode,meter,phrase,bar"),
            (165 + 41 + 18, 12)
        );
        assert_eq!(width("accidentals"), (38 + 5 * 3 + 3, 7));
        assert_eq!(width("all"), (224 + 18, 18));
    }

    #[test]
    fn every_index_lies_in_its_own_block() {
        let set = FeatureSet::ALL;
        let v = 5;
        let step = StepFeatures {
            one_bar_back: Some(4),
            two_bars_back: None,
            repeats_one_bar: true,
            repeats_two_bars: false,
            four_bars_back: Some(2),
            repeats_four_bars: true,
            position: Some(40),
            bar: Some(20),
            mode: Some(ModeClass::Minor),
            meter: None,
            accidentals: [
                Heard::NotYet,
                Heard::Earlier,
                Heard::Recently,
                Heard::NotYet,
                Heard::Earlier,
            ],
            leaves_scale: Some(true),
        };
        let mut row = [0; 18];
        set.write_row(v, 3, &step, &mut row);
        // symbol 0…4 | one bar 5…10 | two bars 11…16 | flags 17…18, 19…20 | position 21…54 |
        // downbeat 55…56 | mode 57…59 | meter 60…65 | four bars 66…71 | flag 72…73 | bar 74…91 |
        // C♯ 92…94 | E♭ 95…97 | F♯ 98…100 | G♯ 101…103 | B♭ 104…106 | leaves the scale 107…109
        let indices = [3, 9, 16, 18, 19, 21 + 32, 55, 58, 65, 68, 73, 74 + 16];
        assert_eq!(row[..12], indices);
        assert_eq!(row[12..], [92, 97, 99, 101, 106, 108]);
        assert_eq!(set.input_width(v), 110);
    }

    #[test]
    fn accidentals_are_the_black_keys_heard_recently_or_earlier() {
        let vocab = Vocabulary::from_symbols(["60", "61", "66", "67", "70", "73", "78"]);
        let id = |symbol: &str| vocab.id(symbol).unwrap();
        // The off-scale classes are the twelve less the scale's.
        let scale = crate::melody::C_MAJOR_PITCH_CLASSES;
        let classes = (0..12).filter(|class| !scale.contains(class));
        assert_eq!(classes.collect::<Vec<u8>>(), OFF_SCALE);
        let blocks = off_scale_blocks(&vocab);
        let block_of = |symbol: &str| blocks[id(symbol) as usize];
        // C♯ in two octaves is one pitch class; G and C are on the scale, `_` and `r` no pitch.
        assert_eq!(
            ["61", "73", "66", "78", "70", "60", "67", "_", "r", "/"].map(block_of),
            [
                Some(0),
                Some(0),
                Some(2),
                Some(2),
                Some(4),
                None,
                None,
                None,
                None,
                None
            ]
        );
        // 2/4 bars: F♯ at step 1, C♯ at step 30; four bars before step 34 begin at step 2.
        let bars = Bars::regular(8, 0);
        let mut melody = vec![id("60"), id("66")];
        melody.resize(30, id("_"));
        melody.extend([id("61"), id("_"), id("_"), id("_")]);
        let mut accidentals = Accidentals::default();
        let mut heard = Vec::new();
        for (t, &symbol) in melody.iter().enumerate() {
            accidentals.hear(t, blocks[symbol as usize]);
            let step = melody_step(&bars, &melody[..=t], &accidentals, (None, None, None));
            heard.push(step.accidentals);
        }
        use Heard::{Earlier, NotYet, Recently};
        assert_eq!(heard[0], [NotYet; 5]);
        // F♯ is recent while step 1 lies within the four bars before the next step: up to the
        // input at 32, whose next step 33 reaches back to 1.
        assert_eq!(heard[1], [NotYet, NotYet, Recently, NotYet, NotYet]);
        assert_eq!(heard[32][2], Recently);
        assert_eq!(heard[33], [Recently, NotYet, Earlier, NotYet, NotYet]);
        assert_eq!(heard[29], [NotYet, NotYet, Recently, NotYet, NotYet]);
    }

    #[test]
    fn meters_and_modes_by_class() {
        let class = |meter| MeterClass::of(meter);
        assert_eq!(class((4, 4)), MeterClass::Duple);
        assert_eq!(class((2, 2)), MeterClass::Duple);
        assert_eq!(class((3, 8)), MeterClass::Triple);
        assert_eq!(class((6, 4)), MeterClass::CompoundDuple);
        assert_eq!(class((12, 8)), MeterClass::CompoundDuple);
        assert_eq!(class((9, 8)), MeterClass::CompoundTriple);
        assert_eq!(class((5, 4)), MeterClass::Other);
        assert_eq!(ModeClass::of_name("dorian"), Some(ModeClass::Minor));
        assert_eq!(ModeClass::of_name("mixolydian"), Some(ModeClass::Major));
        assert_eq!(ModeClass::of_name("blues"), None);
    }

    #[test]
    fn meter_and_mode_arguments_teach() {
        assert_eq!(parse_meter("3/4"), Ok((3, 4)));
        assert_eq!(parse_meter("12/8"), Ok((12, 8)));
        for bad in ["3-4", "3/5", "0/4", "3/", "3/128", "x/4"] {
            assert!(
                parse_meter(bad)
                    .unwrap_err()
                    .contains("such as 4/4, 3/4 or 6/8"),
                "{bad}"
            );
        }
        assert_eq!(ModeClass::parse("minor"), Ok(ModeClass::Minor));
        assert!(ModeClass::parse("dorian")
            .unwrap_err()
            .contains("major or minor"));
        assert_eq!(measure_steps((3, 4), sixteenth()), Some(12));
        assert_eq!(measure_steps((6, 8), QuarterLength::new(1, 2)), Some(6));
        assert_eq!(measure_steps((3, 32), sixteenth()), None);
    }

    #[test]
    fn positions_count_from_the_barlines_and_on_by_the_measure() {
        // 2/4 with an eighth's pickup, a bar starting at 2 and at 10, then no more barlines.
        let bars = Bars {
            measures: vec![(0, 8)],
            starts: vec![2, 10],
        };
        let positions: Vec<usize> = (0..20).map(|s| bars.position(s)).collect();
        assert_eq!(
            positions,
            [6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1]
        );
        let numbers = |bars: &Bars, steps: &[usize]| -> Vec<Option<usize>> {
            steps.iter().map(|&s| bars.bar_number(s)).collect()
        };
        assert_eq!(
            numbers(&bars, &[0, 1, 2, 9, 10, 17, 18, 26]),
            [
                None,
                None,
                Some(0),
                Some(0),
                Some(1),
                Some(1),
                Some(2),
                Some(3)
            ]
        );
        // The first barline written late, at 18: the bars before it are counted back to step 2.
        let late = Bars {
            measures: vec![(0, 8)],
            starts: vec![18, 26],
        };
        assert_eq!(
            numbers(&late, &[0, 1, 2, 17, 18, 26, 34]),
            [None, None, Some(0), Some(1), Some(2), Some(3), Some(4)]
        );
        // A change to 3/4 at the bar starting at 6.
        let changing = Bars {
            measures: vec![(0, 4), (6, 12)],
            starts: vec![2, 6],
        };
        let positions: Vec<usize> = (0..20).map(|s| changing.position(s)).collect();
        assert_eq!(
            positions,
            [2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1]
        );
        assert_eq!(
            (changing.bars_before(18, 1), changing.bars_before(5, 1)),
            (Some(6), Some(1))
        );
        // 17 → 5 (3/4 back) → 1 (2/4 back); 18 → 6, whose 3/4 bar reaches before the song.
        assert_eq!(
            (changing.bars_before(17, 2), changing.bars_before(18, 2)),
            (Some(1), None)
        );
        assert_eq!(
            Bars::regular(12, 10),
            Bars {
                measures: vec![(0, 12)],
                starts: vec![2]
            }
        );
        assert_eq!(Bars::regular(12, 0).starts, [0]);
    }
}
