//! A corpus of `**kern`, MIDI and ABC files → `songs.jsonl`, `dataset.txt` and `vocab.json`, in
//! parallel over files.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

use crate::atomic;
use crate::encode::{encode_song, Options, Skip, Vocabulary, DELIMITER, DELIMITER_RUN};
use crate::melody_file::{is_score, read_scores, ScoreSong};

/// One song's outcome (a `.krn` or `.mid` file's, or one ABC tune's): a line of `songs.jsonl`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SongRecord {
    /// Path relative to its input directory, `/`-separated.
    pub file: String,
    /// An ABC tune's index in its file, from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tune: Option<usize>,
    /// An ABC tune's `X:` number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<u32>,
    pub kept: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tonic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<i32>,
    /// The song's symbols, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The first meter, `3/4`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meter: Option<String>,
    /// Later meters: `[step, "3/4"]` where each takes effect.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub meter_changes: Vec<(u64, String)>,
    /// The step where each bar starts, from the score's barlines (a pickup leaves 0 out);
    /// absent where the score has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bar_starts: Option<Vec<u64>>,
    /// The file is defective (unreadable, not kern, not monophonic, no notes), not merely
    /// filtered out; `--strict` stops on it.
    #[serde(skip)]
    pub defective: bool,
}

impl SongRecord {
    fn dropped(file: String, reason: String, defective: bool) -> SongRecord {
        SongRecord {
            file,
            tune: None,
            x: None,
            kept: false,
            reason: Some(reason),
            tonic: None,
            mode: None,
            key_source: None,
            shift: None,
            encoding: None,
            title: None,
            id: None,
            region: None,
            meter: None,
            meter_changes: Vec::new(),
            bar_starts: None,
            defective,
        }
    }
}

/// An input file: the directory it was found under and its path.
#[derive(Clone, Debug)]
pub struct KernFile {
    pub root: PathBuf,
    pub path: PathBuf,
}

impl KernFile {
    /// The path relative to its input directory, `/`-separated on every platform.
    pub fn relative(&self) -> String {
        let relative = self.path.strip_prefix(&self.root).unwrap_or(&self.path);
        relative
            .iter()
            .map(|part| part.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// Every score (`*.krn`, `*.mid`, `*.abc`) under each directory, recursively, sorted by relative path within each.
pub fn find_kern_files(inputs: &[PathBuf]) -> io::Result<Vec<KernFile>> {
    let mut files = Vec::new();
    for root in inputs {
        let mut found = Vec::new();
        collect(root, &mut found)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", root.display())))?;
        let mut found: Vec<KernFile> = found
            .into_iter()
            .map(|path| KernFile {
                root: root.clone(),
                path,
            })
            .collect();
        found.sort_by_key(KernFile::relative);
        files.extend(found);
    }
    Ok(files)
}

fn collect(dir: &Path, found: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, found)?;
        } else if is_score(&path) {
            found.push(path);
        }
    }
    Ok(())
}

/// Reads, filters and encodes one file: one record, or one per ABC tune. Never fails: a bad file
/// or tune becomes a dropped record.
pub fn process_file(file: &KernFile, options: &Options) -> Vec<SongRecord> {
    let name = file.relative();
    match read_scores(&file.path, None, options.expand_repeats) {
        Ok(songs) => songs
            .into_iter()
            .map(|song| song_record(name.clone(), song, options))
            .collect(),
        Err(reason) => vec![SongRecord::dropped(name, reason, true)],
    }
}

fn song_record(file: String, score: ScoreSong, options: &Options) -> SongRecord {
    let dropped = |reason, defective| SongRecord {
        tune: score.tune,
        x: score.x,
        title: score.title.clone(),
        ..SongRecord::dropped(file.clone(), reason, defective)
    };
    let song = match score.song {
        Ok(song) => song,
        Err(reason) => return dropped(reason, true),
    };
    let title = score.title.clone().or(song.title.clone());
    match encode_song(&song, options) {
        Ok(encoded) => SongRecord {
            file,
            tune: score.tune,
            x: score.x,
            kept: true,
            reason: None,
            tonic: Some(encoded.key.tonic.clone()),
            mode: Some(encoded.key.mode.name()),
            key_source: Some(encoded.key.source.as_str()),
            shift: Some(encoded.shift),
            encoding: Some(encoded.symbols.join(" ")),
            title,
            id: song.id,
            region: song.region,
            meter: song.meter.map(meter_name),
            meter_changes: (encoded.meter_changes.iter())
                .map(|&(step, meter)| (step, meter_name(meter)))
                .collect(),
            // MIDI has no barlines, and the ABC reader does not record them yet.
            bar_starts: (!song.barlines.is_empty()).then_some(encoded.bar_starts),
            defective: false,
        },
        Err(skip) => SongRecord {
            title,
            id: song.id,
            region: song.region,
            meter: song.meter.map(meter_name),
            ..dropped(skip.to_string(), matches!(skip, Skip::Bad(_)))
        },
    }
}

/// `(3, 4)` → `3/4`.
fn meter_name((count, unit): (u32, u32)) -> String {
    format!("{count}/{unit}")
}

/// Processes every file in parallel, with a progress bar on a terminal; records in file order,
/// an ABC file's tunes in the order written.
pub fn process_all(files: &[KernFile], options: &Options, progress: bool) -> Vec<SongRecord> {
    let bar = if progress {
        ProgressBar::new(files.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed} {msg}")
            .expect("static template"),
    );
    let records: Vec<Vec<SongRecord>> = files
        .par_iter()
        .map(|file| {
            let records = process_file(file, options);
            bar.inc(1);
            records
        })
        .collect();
    let records = records.into_iter().flatten().collect();
    bar.finish_and_clear();
    records
}

/// The counts printed after a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    /// Songs read: one per kern or MIDI file, one per tune of an ABC file.
    pub songs: usize,
    pub kept: usize,
    /// Dropped songs per reason (line numbers removed so that reasons group), most frequent first.
    pub dropped: Vec<(String, usize)>,
    pub symbols: usize,
    pub vocabulary: usize,
}

impl Summary {
    pub fn of(records: &[SongRecord], dataset_symbols: usize, vocabulary: usize) -> Summary {
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for record in records.iter().filter(|r| !r.kept) {
            let reason = record.reason.as_deref().unwrap_or_default();
            let general = reason
                .split_once(": ")
                .filter(|(at, _)| at.starts_with("line "))
                .map_or(reason, |(_, r)| r);
            *reasons.entry(general.to_string()).or_default() += 1;
        }
        let mut dropped: Vec<(String, usize)> = reasons.into_iter().collect();
        dropped.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let kept = records.iter().filter(|r| r.kept).count();
        let files = records
            .iter()
            .map(|r| &r.file)
            .collect::<BTreeSet<_>>()
            .len();
        Summary {
            files,
            songs: records.len(),
            kept,
            dropped,
            symbols: dataset_symbols,
            vocabulary,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.songs == self.files {
            write!(f, "{} files", self.files)?;
        } else {
            write!(f, "{} songs in {} files", self.songs, self.files)?;
        }
        writeln!(
            f,
            ": {} kept, {} dropped; {} symbols, vocabulary of {}",
            self.kept,
            self.songs - self.kept,
            self.symbols,
            self.vocabulary
        )?;
        for (reason, count) in &self.dropped {
            writeln!(f, "  {count:>6}  {reason}")?;
        }
        Ok(())
    }
}

/// Writes `songs.jsonl`, `dataset.txt` and `vocab.json` into `out` (created if needed), each
/// atomically. The dataset is the reference work's single file: the kept songs, each followed by
/// 64 `/`, one space between symbols.
pub fn write_outputs(out: &Path, records: &[SongRecord]) -> io::Result<Summary> {
    fs::create_dir_all(out)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", out.display())))?;
    atomic::write_with(&out.join("songs.jsonl"), |w| {
        for record in records {
            serde_json::to_writer(&mut *w, record)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })?;
    let encodings: Vec<&str> = records
        .iter()
        .filter_map(|r| r.encoding.as_deref())
        .collect();
    let delimiters = [DELIMITER; DELIMITER_RUN].join(" ");
    atomic::write_with(&out.join("dataset.txt"), |w| {
        for (i, encoding) in encodings.iter().enumerate() {
            let separator = if i == 0 { "" } else { " " };
            write!(w, "{separator}{encoding} {delimiters}")?;
        }
        Ok(())
    })?;
    let symbols = encodings.iter().flat_map(|e| e.split(' '));
    let vocabulary = Vocabulary::from_symbols(symbols.clone());
    atomic::write(&out.join("vocab.json"), vocabulary.to_json().as_bytes())?;
    let dataset_symbols = symbols.count() + encodings.len() * DELIMITER_RUN;
    Ok(Summary::of(records, dataset_symbols, vocabulary.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("corpus-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_summary_counts_tunes_apart_from_files() {
        let summary = |files, songs| Summary {
            files,
            songs,
            kept: 3,
            dropped: vec![("chord".into(), songs - 3)],
            symbols: 90,
            vocabulary: 7,
        };
        let first_line = |s: Summary| s.to_string().lines().next().unwrap().to_string();
        assert_eq!(
            first_line(summary(2, 5)),
            "5 songs in 2 files: 3 kept, 2 dropped; 90 symbols, vocabulary of 7"
        );
        assert_eq!(
            first_line(summary(4, 4)),
            "4 files: 3 kept, 1 dropped; 90 symbols, vocabulary of 7"
        );
    }

    #[test]
    fn a_small_corpus_end_to_end() {
        let input = temp_dir("in");
        fs::create_dir_all(input.join("sub")).unwrap();
        fs::write(
            input.join("b.krn"),
            "!!!OTL: Zwei\n**kern\n*M2/4\n*G:\n4g\n=1\n4a\n*-\n",
        )
        .unwrap();
        fs::write(input.join("sub/a.krn"), "**kern\n*C:\n8c\n8r\n*-\n").unwrap();
        fs::write(input.join("c.krn"), "**kern\n*C:\n12c\n*-\n").unwrap();
        fs::write(input.join("d.krn"), "**kern\n4c 4e\n*-\n").unwrap();
        fs::write(input.join("notes.txt"), "not kern").unwrap();
        let files = find_kern_files(std::slice::from_ref(&input)).unwrap();
        let names: Vec<String> = files.iter().map(KernFile::relative).collect();
        assert_eq!(names, ["b.krn", "c.krn", "d.krn", "sub/a.krn"]);

        let records = process_all(&files, &Options::default(), false);
        let out = temp_dir("out");
        let summary = write_outputs(&out, &records).unwrap();
        assert_eq!(
            (
                summary.files,
                summary.kept,
                summary.symbols,
                summary.vocabulary
            ),
            (4, 2, 8 + 4 + 128, 5)
        );
        assert_eq!(
            summary.dropped,
            vec![
                ("duration 1/3".to_string(), 1),
                ("not monophonic: chord \"4c 4e\"".to_string(), 1)
            ]
        );
        assert!(records[2].defective && !records[1].defective);

        let songs = fs::read_to_string(out.join("songs.jsonl")).unwrap();
        let first = songs.lines().next().unwrap();
        assert_eq!(
            first,
            r#"{"file":"b.krn","kept":true,"tonic":"G","mode":"major","key_source":"declared","shift":-7,"encoding":"60 _ _ _ 62 _ _ _","title":"Zwei","meter":"2/4","bar_starts":[4]}"#
        );
        let dataset = fs::read_to_string(out.join("dataset.txt")).unwrap();
        let slashes = vec!["/"; 64].join(" ");
        assert_eq!(
            dataset,
            format!("60 _ _ _ 62 _ _ _ {slashes} 60 _ r _ {slashes}")
        );
        let vocab =
            Vocabulary::from_json(&fs::read_to_string(out.join("vocab.json")).unwrap()).unwrap();
        assert_eq!(
            vocab.symbols(),
            ["/", "_", "r", "60", "62"].map(String::from)
        );
        assert_eq!(
            fs::read_dir(&out).unwrap().count(),
            3,
            "no temporary files left"
        );
        fs::remove_dir_all(&input).unwrap();
        fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn an_unreadable_file_is_a_defective_record() {
        let file = KernFile {
            root: PathBuf::from("/nonexistent"),
            path: PathBuf::from("/nonexistent/x.krn"),
        };
        let record = process_file(&file, &Options::default()).remove(0);
        assert!(!record.kept && record.defective);
        assert!(record.reason.unwrap().starts_with("unreadable: "));
    }
}
