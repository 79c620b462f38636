//! The readers against mutated real files (`**kern`, MIDI, ABC): bytes flipped, lines or chunks
//! cut, lines shuffled, files spliced (tokens of one ABC tune into another), runs of meaningful
//! characters inserted, MIDI length fields and delta times forged. Every input must give a song or a
//! reason: no panic (caught per input; the input is saved under target/fuzz-panics), no hang (a
//! time budget per input) and no allocation blow-up (a counting allocator's peak per input).
//!
//! `cargo test` runs a sample; `cargo test --release --test fuzz -- --ignored` the campaign.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use melody_engine::abc;
use melody_engine::encode::{encode_song, Options};
use melody_engine::kern::{self, Song};
use melody_engine::midi::{write_midi, Signatures};
use melody_engine::midi_in;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

mod common;

/// The allocator, counting the bytes live now and the most live since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Most time one input may take.
const TIME_BUDGET: Duration = Duration::from_secs(1);
/// Most bytes one input may allocate beyond what was live before it (a song of the longest
/// length the encoder takes, 65,536 symbols, needs a few MiB).
const MEMORY_BUDGET: usize = 64 << 20;

/// Real files to mutate: `**kern` songs from the shared corpus (a few built-in ones without it),
/// MIDI files our writer made of them, and ABC files of three tunes cut from the corpus's.
fn real_files() -> Vec<Vec<u8>> {
    let mut kern_files: Vec<Vec<u8>> = Vec::new();
    let mut abc_files: Vec<Vec<u8>> = Vec::new();
    if let Some(shared) = common::shared_dir() {
        for file in [
            "oneills1850/0001-0050.abc",
            "oneills1850/0051-0100.abc",
            "essenFolksong/han1.abc",
        ] {
            let text = fs::read_to_string(shared.join("data/abc").join(file)).unwrap();
            let tunes: Vec<&str> = text.split("\nX:").collect();
            abc_files.extend(
                tunes
                    .chunks(3)
                    .take(20)
                    .map(|c| c.join("\nX:").into_bytes()),
            );
        }
        for collection in ["erk", "kinder", "ballad"] {
            let dir = shared.join("data/essen/deutschl").join(collection);
            let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "krn"))
                .collect();
            paths.sort();
            kern_files.extend(paths.iter().take(60).map(|p| fs::read(p).unwrap()));
        }
    } else {
        kern_files.extend([
            b"!!!OTL: A\n**kern\n*M2/4\n*G:\n4g\n8a\n8b\n=1\n4.dd\n8r\n==\n*-\n".to_vec(),
            b"**kern\n*M3/4\n*k[b-]\n{8f\n8a\n[4cc\n=\n4cc]\n12d\n12e\n12f}\n*-\n".to_vec(),
        ]);
        abc_files.push(
            b"X:1\nT:A\nM:6/8\nL:1/8\nK:Ador\n|:\"Am\"A>B c2-c|(3def {g}a2 z|1 ^G3:|2 [K:G] G3|]\n"
                .to_vec(),
        );
    }
    let midi_files: Vec<Vec<u8>> = kern_files
        .iter()
        .filter_map(|bytes| {
            let song = kern::parse(bytes).ok()?;
            let encoded = encode_song(&song, &every_duration(&song)).ok()?;
            write_midi(&encoded.symbols, 100, 0, Signatures::default()).ok()
        })
        .collect();
    assert!(!midi_files.is_empty());
    kern_files
        .into_iter()
        .chain(midi_files)
        .chain(abc_files)
        .collect()
}

fn every_duration(song: &Song) -> Options {
    Options {
        durations: song.events.iter().map(|e| e.duration).collect(),
        ..Options::default()
    }
}

/// One mutation of `files[i]`, drawn at random.
fn mutate(rng: &mut StdRng, files: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = files.choose(rng).unwrap().clone();
    for _ in 0..rng.gen_range(1..=3) {
        let n = bytes.len();
        match rng.gen_range(0..8) {
            // Bytes flipped: random values or single bits.
            0 if n > 0 => {
                for _ in 0..rng.gen_range(1..=8) {
                    let at = rng.gen_range(0..n);
                    bytes[at] = if rng.gen_bool(0.5) {
                        rng.gen()
                    } else {
                        bytes[at] ^ 1 << rng.gen_range(0..8)
                    };
                }
            }
            // A chunk cut out.
            1 if n > 0 => {
                let start = rng.gen_range(0..n);
                let end = rng.gen_range(start..=n.min(start + 64));
                bytes.drain(start..end);
            }
            // Lines cut or shuffled.
            2 | 3 => {
                let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
                if rng.gen_bool(0.5) {
                    let start = rng.gen_range(0..lines.len());
                    let end = rng.gen_range(start..=lines.len().min(start + 4));
                    lines.drain(start..end);
                } else {
                    let start = rng.gen_range(0..lines.len());
                    let end = rng.gen_range(start..=lines.len());
                    lines[start..end].shuffle(rng);
                }
                bytes = lines.join(&b'\n');
            }
            // Spliced: the head of this file, the tail of another.
            4 => {
                let other = files.choose(rng).unwrap();
                let head = rng.gen_range(0..=n);
                let tail = rng.gen_range(0..=other.len());
                bytes.truncate(head);
                bytes.extend_from_slice(&other[tail..]);
            }
            // A chunk's length field forged (`MThd`, `MTrk`: the 4 bytes after the tag).
            5 => {
                let tags: Vec<usize> = (0..n.saturating_sub(8))
                    .filter(|&i| &bytes[i..i + 4] == b"MThd" || &bytes[i..i + 4] == b"MTrk")
                    .collect();
                if let Some(&at) = tags.choose(rng) {
                    let length: u32 = match rng.gen_range(0..3) {
                        0 => u32::MAX,
                        1 => rng.gen(),
                        _ => rng.gen_range(0..64),
                    };
                    bytes[at + 4..at + 8].copy_from_slice(&length.to_be_bytes());
                }
            }
            // A run of one character that means something in a kern or ABC token: dots, digits,
            // accidentals, pitch letters, octave marks, slashes, brackets, bars, so durations,
            // octaves and alterations overflow.
            6 => {
                let at = rng.gen_range(0..=n);
                let mark = *b".09#-%qcC[_ \t^=,'/(<>|:]{\"X".choose(rng).unwrap();
                let run = vec![mark; rng.gen_range(1..=200)];
                bytes.splice(at..at, run);
            }
            // A run of 0xFF: the longest variable-length delta times and meta lengths.
            _ if n > 0 => {
                let at = rng.gen_range(0..n);
                let end = n.min(at + rng.gen_range(1..=6));
                bytes[at..end].fill(0xFF);
            }
            _ => {}
        }
    }
    bytes
}

/// Every reader on one input (ABC as written and with repeats played out), each song encoded as
/// assess and as preprocessing encode it; whether some reader found a song.
fn read_everything(bytes: &[u8]) -> bool {
    let mut songs = vec![
        kern::parse(bytes).ok(),
        midi_in::parse(bytes, None).ok(),
        midi_in::parse(bytes, Some(1)).ok(),
    ];
    for expand_repeats in [false, true] {
        songs.extend(
            abc::parse(bytes, expand_repeats)
                .into_iter()
                .map(|t| t.song.ok()),
        );
    }
    for song in songs.iter().flatten() {
        let _ = encode_song(song, &every_duration(song));
        let _ = encode_song(song, &Options::default());
    }
    songs.iter().any(Option::is_some)
}

/// Runs `count` mutated inputs; panics listing every input that panicked, overran its time or
/// allocated beyond its budget, each saved to a file.
fn campaign(count: usize, seed: u64) {
    let files = real_files();
    let mut rng = StdRng::seed_from_u64(seed);
    let failures_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let mut failures = Vec::new();
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let start = Instant::now();
    let mut with_a_song = 0;
    for i in 0..count {
        let input = mutate(&mut rng, &files);
        let began = Instant::now();
        PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
        let before = LIVE.load(Ordering::Relaxed);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| read_everything(&input)));
        let (took, allocated) = (began.elapsed(), PEAK.load(Ordering::Relaxed) - before);
        let failure = match outcome {
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Some(format!("panicked: {message}"))
            }
            Ok(_) if took > TIME_BUDGET => Some(format!("took {took:?}")),
            Ok(_) if allocated > MEMORY_BUDGET => Some(format!("allocated {allocated} bytes")),
            Ok(song) => {
                with_a_song += song as usize;
                None
            }
        };
        if let Some(failure) = failure {
            fs::create_dir_all(&failures_dir).unwrap();
            let path = failures_dir.join(format!("input-{seed}-{i}"));
            fs::write(&path, &input).unwrap();
            failures.push(format!("{}: {failure}", path.display()));
        }
    }
    panic::set_hook(hook);
    eprintln!(
        "fuzz: {count} inputs from {} files in {:.1} s ({with_a_song} read as a song, the rest \
         a reason), {} failures",
        files.len(),
        start.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_sample_of_mutated_files_gives_songs_or_reasons() {
    campaign(20_000, 1);
}

#[test]
#[ignore = "the long campaign, a minute or more: cargo test --release --test fuzz -- --ignored"]
fn a_million_mutated_files_give_songs_or_reasons() {
    campaign(1_000_000, 2);
}
