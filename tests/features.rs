//! The feature inputs on real songs of ESAC `erk`: rows checked by hand for a 2/4 song with a
//! pickup, a 3/4 song and a 6/8 song in minor; generation's tracker against the stream's rows on
//! every song with regular bars; the split; and `none` as the reference model's input.

mod common;

use std::path::{Path, PathBuf};

use melody_engine::dataset::{songs, Dataset, Split};
use melody_engine::encode::Vocabulary;
use melody_engine::features::{
    load_songs, songs_of_split, stream_features, FeatureSet, FeatureTracker, SongInfo, MAX_BAR,
    MAX_POSITION,
};
use melody_engine::kern::QuarterLength;

const ALL: &str = "lookback,position,mode,meter,phrase,bar,accidentals";

/// K with every group.
const K: usize = 18;

fn sixteenth() -> QuarterLength {
    QuarterLength::new(1, 4)
}

/// `erk` preprocessed into a temporary directory of its own for each test, with the file of each
/// kept song.
fn erk(shared: &Path, test: &str) -> (PathBuf, Vec<String>) {
    let out = std::env::temp_dir().join(format!("features-{test}-{}", std::process::id()));
    let records = common::preprocess(&[shared.join("data/essen/deutschl/erk")], &out);
    let kept = records.iter().filter(|r| r.kept).map(|r| r.file.clone());
    (out, kept.collect())
}

/// One row in words: `symbol | one bar back, two bars back | repeat flags | position, downbeat |
/// mode, meter | four bars back, repeat flag | bar | C♯ E♭ F♯ G♯ B♭ heard (0 not yet, 1 within four
/// bars, 2 earlier) leaves the scale (0 no, 1 yes, 2 none)`, read back from the index layout the
/// module documents.
fn describe(row: &[u32], vocab: &Vocabulary) -> String {
    let v = vocab.len() as u32;
    let places = MAX_POSITION as u32 + 2;
    // Each block's rows, in order; each index minus the rows before its block.
    let bars = MAX_BAR as u32 + 2;
    let heard = 3;
    let blocks = [v, v + 1, v + 1, 2, 2, places, 2, 3, 6, v + 1, 2, bars];
    let blocks = blocks.into_iter().chain([heard; 6]);
    let mut before = 0;
    let at: Vec<u32> = (row.iter().zip(blocks))
        .map(|(&index, rows)| {
            let at = index - before;
            assert!(at < rows, "index {index} outside its block");
            before += rows;
            at
        })
        .collect();
    let symbol_or_none = |at: u32| match at {
        at if at == v => "none".to_string(),
        at => vocab.symbol(at).to_string(),
    };
    let position = match at[5] {
        at if at == places - 1 => "none".to_string(),
        at if at == places - 2 => "overflow".to_string(),
        at => at.to_string(),
    };
    let bar = match at[11] {
        at if at == bars - 1 => "none".to_string(),
        at if at == bars - 2 => "later".to_string(),
        at => at.to_string(),
    };
    let mode = ["major", "minor", "none"][at[7] as usize];
    let meter = [
        "duple",
        "triple",
        "compound duple",
        "compound triple",
        "other",
        "none",
    ];
    format!(
        "{} | {} {} | {}{} | {position} {} | {mode} {} | {} {} | {bar} | {}{}{}{}{} {}",
        vocab.symbol(at[0]),
        symbol_or_none(at[1]),
        symbol_or_none(at[2]),
        at[3],
        at[4],
        at[6],
        meter[at[8] as usize],
        symbol_or_none(at[9]),
        at[10],
        at[12],
        at[13],
        at[14],
        at[15],
        at[16],
        at[17],
    )
}

struct Erk {
    dir: PathBuf,
    files: Vec<String>,
    data: Dataset,
    infos: Vec<SongInfo>,
    rows: Vec<u32>,
    /// Where each song starts in the stream.
    starts: Vec<usize>,
}

fn load(shared: &Path, test: &str) -> Erk {
    let (dir, files) = erk(shared, test);
    let data = Dataset::load(&dir).unwrap();
    let infos = load_songs(&dir, &data, sixteenth()).unwrap();
    let set = FeatureSet::parse(ALL).unwrap();
    let delimiter = data.delimiter();
    let rows = stream_features(&set, &data.vocab, &data.stream, delimiter, &infos).unwrap();
    let mut starts = Vec::new();
    let mut at = 0;
    for unit in songs(&data.stream, delimiter) {
        starts.push(at);
        at += unit.len();
    }
    Erk {
        dir,
        files,
        data,
        infos,
        rows,
        starts,
    }
}

impl Erk {
    /// Row `t` of the song from `file`, in words.
    fn row(&self, file: &str, t: usize) -> String {
        let song = self.files.iter().position(|f| f == file).unwrap();
        let at = (self.starts[song] + t) * K;
        describe(&self.rows[at..at + K], &self.data.vocab)
    }
}

#[test]
fn rows_of_a_pickup_song_a_3_4_song_and_a_6_8_song_in_minor() {
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let erk = load(&shared, "rows");
    assert_eq!(erk.files.len(), 1683);
    assert_eq!((erk.data.vocab.len(), erk.rows.len()), (38, 362_242 * K));
    let row = |file: &str, t| erk.row(file, t);
    // deut0567, 2/4 with an eighth's pickup: bar_starts [2, 10, 18, 26, …], 8 steps a bar.
    // 55 _ | 60 _ 60 _ 60 _ | 62 _ 64 _ 62 _ 60 _ | _ _ 64 _ …
    let song = "deut0567.krn";
    assert_eq!(
        row(song, 0),
        "55 | none none | 00 | 7 0 | major duple | none 0 | none | 00000 0"
    );
    assert_eq!(
        row(song, 1),
        "_ | none none | 00 | 0 1 | major duple | none 0 | 0 | 00000 0"
    );
    assert_eq!(
        row(song, 7),
        "_ | 55 none | 00 | 6 0 | major duple | none 0 | 0 | 00000 0"
    );
    assert_eq!(
        row(song, 8),
        "62 | _ none | 00 | 7 0 | major duple | none 0 | 0 | 00000 0"
    );
    assert_eq!(
        row(song, 9),
        "_ | 60 none | 10 | 0 1 | major duple | none 0 | 1 | 00000 0"
    );
    assert_eq!(
        row(song, 15),
        "_ | 62 55 | 10 | 6 0 | major duple | none 0 | 1 | 00000 0"
    );
    assert_eq!(
        row(song, 17),
        "_ | 64 60 | 11 | 0 1 | major duple | none 0 | 2 | 00000 0"
    );
    // Four bars back (32 steps) from the next step, and bars counted from the first barline.
    assert_eq!(
        row(song, 33),
        "_ | 67 64 | 11 | 0 1 | major duple | 60 1 | 4 | 00000 0"
    );
    assert_eq!(
        row(song, 41),
        "_ | 72 67 | 11 | 0 1 | major duple | 64 1 | 5 | 00000 0"
    );
    // The last step predicts the first `/`: its position runs on in the last bar (106 + 6), and
    // it looks back to steps 104 and 96, both 62.
    assert_eq!(
        row(song, 111),
        "_ | 62 62 | 11 | 6 0 | major duple | 67 1 | 13 | 00000 0"
    );
    // The run after it leads into deut0568, also 2/4 major.
    assert_eq!(
        row(song, 112),
        "/ | none none | 00 | none 0 | major duple | none 0 | none | 00000 0"
    );
    assert_eq!(
        row(song, 112 + 63),
        "/ | none none | 00 | none 0 | major duple | none 0 | none | 00000 0"
    );

    // deut0617, 3/4, bar_starts [2, 14, 26, …]: 55 _ | 60 _ _ 60 60 _ 64 _ 67 _ | 60 _ 64 _
    // 62 60 59 _ _ _ r _ | 62 _ 65 _ _ 65 65 _ …
    let song = "deut0617.krn";
    assert_eq!(
        row(song, 0),
        "55 | none none | 00 | 11 0 | major triple | none 0 | none | 00000 0"
    );
    assert_eq!(
        row(song, 1),
        "_ | none none | 00 | 0 1 | major triple | none 0 | 0 | 00000 0"
    );
    assert_eq!(
        row(song, 12),
        "60 | _ none | 00 | 11 0 | major triple | none 0 | 0 | 00000 0"
    );
    assert_eq!(
        row(song, 16),
        "62 | 60 none | 00 | 3 0 | major triple | none 0 | 1 | 00000 0"
    );
    assert_eq!(
        row(song, 17),
        "60 | 60 none | 10 | 4 0 | major triple | none 0 | 1 | 00000 0"
    );
    assert_eq!(
        row(song, 29),
        "65 | 59 60 | 00 | 4 0 | major triple | none 0 | 2 | 00000 0"
    );

    // deut0711, 6/8 in minor, bar_starts [2, 14, 26, …]: 64 _ | 69 _ 69 _ 71 _ 72 _ 71 _ 72 _ |
    // 69 _ _ 71 72 _ 71 _ _ _ 64 _ | 69 _ …
    let song = "deut0711.krn";
    assert_eq!(
        row(song, 0),
        "64 | none none | 00 | 11 0 | minor compound duple | none 0 | none | 00000 1"
    );
    assert_eq!(
        row(song, 13),
        "_ | 69 none | 10 | 0 1 | minor compound duple | none 0 | 1 | 00000 1"
    );
    assert_eq!(
        row(song, 24),
        "64 | _ _ | 01 | 11 0 | minor compound duple | none 0 | 1 | 00000 1"
    );
    assert_eq!(
        row(song, 25),
        "_ | 69 69 | 11 | 0 1 | minor compound duple | none 0 | 2 | 00000 1"
    );
    // G♯ at step 28, a minor song's leading tone: the fourth block.
    assert_eq!(
        row(song, 28),
        "68 | 71 _ | 00 | 3 0 | minor compound duple | none 0 | 2 | 00010 1"
    );

    // deut0654, 6/8 major: one F♯, at step 36 (bar_starts [2, 14, 26, 38, …]). It is recent up to
    // the input at 83, whose next step 84 reaches four bars (48 steps) back to it, then earlier.
    let song = "deut0654.krn";
    let rows: Vec<String> = [35, 36, 83, 84].map(|t| row(song, t)).into();
    assert_eq!(
        rows,
        [
            "_ | 67 72 | 11 | 10 0 | major compound duple | none 0 | 2 | 00000 1",
            "66 | _ _ | 00 | 11 0 | major compound duple | none 0 | 2 | 00100 1",
            "_ | 62 72 | 11 | 10 0 | major compound duple | 66 1 | 6 | 00100 1",
            "62 | _ _ | 10 | 11 0 | major compound duple | _ 0 | 6 | 00200 1",
        ]
    );
    std::fs::remove_dir_all(&erk.dir).unwrap();
}

#[test]
fn the_tracker_reproduces_every_song_with_regular_bars() {
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let erk = load(&shared, "tracker");
    let set = FeatureSet::parse(ALL).unwrap();
    let delimiter = erk.data.delimiter();
    let units: Vec<&[u32]> = songs(&erk.data.stream, delimiter).collect();
    let mut row = [0u32; K];
    let mut checked = 0;
    for (i, (info, unit)) in erk.infos.iter().zip(&units).enumerate() {
        let (Some(meter), Some(mode)) = (info.meter, info.mode) else {
            continue;
        };
        let notes = unit.iter().take_while(|&&s| s != delimiter).count();
        let measure = info.bars.measure_at(0);
        // Regular: one meter throughout, and the bars where a tracker in it puts them.
        let regular = (0..=notes).all(|t| {
            info.bars.measure_at(t) == measure
                && info.bars.position(t) == (info.bars.position(0) + t) % measure
        });
        if !regular {
            continue;
        }
        let mut tracker = FeatureTracker::new(
            set,
            &erk.data.vocab,
            delimiter,
            meter,
            mode,
            info.bars.position(0),
            sixteenth(),
        )
        .unwrap()
        .leaving_scale(info.leaves_scale);
        let stream_row = |t: usize| &erk.rows[(erk.starts[i] + t) * K..][..K];
        if i > 0 {
            // The run before the song leads into it.
            tracker.context_row(&mut row);
            let before = (erk.starts[i] - 1) * K;
            assert_eq!(row, erk.rows[before..before + K], "{}", erk.files[i]);
        }
        for (t, &symbol) in unit[..notes].iter().enumerate() {
            tracker.push(symbol, &mut row);
            assert_eq!(row, stream_row(t), "{} step {t}", erk.files[i]);
        }
        assert_eq!(
            tracker.pickup(),
            (measure - info.bars.position(0)) % measure
        );
        checked += 1;
    }
    assert_eq!(checked, 1618);
    std::fs::remove_dir_all(&erk.dir).unwrap();
}

#[test]
fn a_split_keeps_each_song_s_rows_and_none_is_the_symbols() {
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let erk = load(&shared, "split");
    let delimiter = erk.data.delimiter();
    let vocab = &erk.data.vocab;
    let none = stream_features(
        &FeatureSet::NONE,
        vocab,
        &erk.data.stream,
        delimiter,
        &erk.infos,
    );
    assert_eq!(none.unwrap(), erk.data.stream);

    let set = FeatureSet::parse(ALL).unwrap();
    let val = erk.data.split(Split::Val, 0.1);
    let val_infos = songs_of_split(&erk.infos, Split::Val, 0.1);
    assert_eq!(val_infos.len(), 168);
    let rows = stream_features(&set, vocab, &val, delimiter, &val_infos).unwrap();
    assert_eq!(rows.len(), val.len() * K);
    // Held-out song 1 is song 19 of the corpus: its notes' rows are the same in both streams.
    let unit = songs(&val, delimiter).next().unwrap().len();
    let second = songs(&val, delimiter).nth(1).unwrap();
    let notes = second.iter().take_while(|&&s| s != delimiter).count();
    assert_eq!(
        rows[unit * K..(unit + notes) * K],
        erk.rows[erk.starts[19] * K..(erk.starts[19] + notes) * K]
    );
    std::fs::remove_dir_all(&erk.dir).unwrap();
}

#[test]
fn songs_jsonl_must_match_the_dataset() {
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let (dir, _) = erk(&shared, "mismatch");
    let data = Dataset::load(&dir).unwrap();
    let path = dir.join("songs.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    // Line 2 (deut0568) takes line 1's encoding.
    let mut swapped = lines.clone();
    let encoding = |line: &str| {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        record["encoding"].as_str().unwrap().to_string()
    };
    swapped[1] = swapped[1].replace(&encoding(&lines[1]), &encoding(&lines[0]));
    std::fs::write(&path, swapped.join("\n")).unwrap();
    let error = load_songs(&dir, &data, sixteenth()).unwrap_err();
    assert!(
        error.contains(
            "songs.jsonl line 2: \"deut0568.krn\"'s encoding is not song 2 of dataset.txt"
        ),
        "{error}"
    );
    let last_kept = lines
        .iter()
        .rposition(|l| l.contains("\"kept\":true"))
        .unwrap();
    let mut fewer = lines.clone();
    fewer.remove(last_kept);
    std::fs::write(&path, fewer.join("\n")).unwrap();
    let error = load_songs(&dir, &data, sixteenth()).unwrap_err();
    assert!(
        error.contains("1682 kept songs, but dataset.txt holds more"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
