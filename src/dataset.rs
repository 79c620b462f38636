//! The preprocessed dataset as ids: the train / held-out split by song, the windows each objective
//! trains on, and time-major batches.

use std::fs;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::Rng;

use crate::encode::{Vocabulary, DELIMITER};

/// `dataset.txt` as ids, with its vocabulary.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub vocab: Vocabulary,
    /// The whole stream: songs, each followed by its run of `/`.
    pub stream: Vec<u32>,
}

/// Which part of the stream to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
    All,
}

impl Dataset {
    /// Reads `DIR/dataset.txt` and `DIR/vocab.json`; a symbol missing from the vocabulary is an
    /// error naming its position.
    pub fn load(dir: &Path) -> Result<Dataset, String> {
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path)
                .map_err(|e| format!("{}: {e} (run `engine preprocess` first?)", path.display()))
        };
        let vocab_path = dir.join("vocab.json");
        let vocab = Vocabulary::from_json(&read("vocab.json")?)
            .map_err(|e| format!("{}: {e}", vocab_path.display()))?;
        let text = read("dataset.txt")?;
        let stream = text
            .split_ascii_whitespace()
            .enumerate()
            .map(|(i, symbol)| {
                vocab.id(symbol).ok_or_else(|| {
                    format!(
                        "{}: symbol {symbol:?} at position {i} is not in vocab.json",
                        dir.join("dataset.txt").display()
                    )
                })
            })
            .collect::<Result<Vec<u32>, String>>()?;
        Ok(Dataset { vocab, stream })
    }

    /// The same stream in the ids of `vocab`; the symbols `vocab` lacks as the error.
    pub fn remap(self, vocab: &Vocabulary) -> Result<Dataset, Vec<String>> {
        let ids: Vec<Option<u32>> = self.vocab.symbols().iter().map(|s| vocab.id(s)).collect();
        let unknown: Vec<String> = (0..self.vocab.len())
            .filter(|&i| ids[i].is_none())
            .map(|i| self.vocab.symbol(i as u32).to_string())
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let stream = self
            .stream
            .iter()
            .map(|&s| ids[s as usize].expect("checked"))
            .collect();
        Ok(Dataset {
            vocab: vocab.clone(),
            stream,
        })
    }

    /// The id of `/`.
    pub fn delimiter(&self) -> u32 {
        self.vocab
            .id(DELIMITER)
            .expect("every vocabulary holds `/`")
    }

    /// The stream of one split: `All` is the file as is; `Train` and `Val` concatenate their
    /// songs (see [`is_held_out`]), each with its `/` run.
    pub fn split(&self, split: Split, val_fraction: f64) -> Vec<u32> {
        if split == Split::All {
            return self.stream.clone();
        }
        let want_val = split == Split::Val;
        songs(&self.stream, self.delimiter())
            .enumerate()
            .filter(|(i, _)| is_held_out(*i, val_fraction) == want_val)
            .flat_map(|(_, song)| song.iter().copied())
            .collect()
    }
}

/// The songs of a stream, each with the `/` run after it.
pub fn songs(stream: &[u32], delimiter: u32) -> impl Iterator<Item = &[u32]> {
    let mut rest = stream;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let notes = rest
            .iter()
            .position(|&s| s == delimiter)
            .unwrap_or(rest.len());
        let end = notes
            + rest[notes..]
                .iter()
                .take_while(|&&s| s == delimiter)
                .count();
        let (song, tail) = rest.split_at(end);
        rest = tail;
        Some(song)
    })
}

/// Song `i` is held out when ⌊(i+1)·f⌋ > ⌊i·f⌋: a fraction f of the songs, spread evenly
/// through the corpus (f = 0.1 holds out songs 9, 19, 29, …), the same on every machine.
pub fn is_held_out(song_index: usize, fraction: f64) -> bool {
    ((song_index + 1) as f64 * fraction).floor() > (song_index as f64 * fraction).floor()
}

/// The start of every window of `steps` symbols that has a next symbol after it
/// (0 … len − steps − 1): the reference work's training set and evaluation protocol.
pub fn all_window_starts(len: usize, steps: usize) -> Vec<usize> {
    (0..len.saturating_sub(steps)).collect()
}

/// Non-overlapping windows from a random offset in 0…steps−1, for the loss at every position:
/// each symbol is predicted about once an epoch, in a shuffled order.
pub fn tiled_window_starts(len: usize, steps: usize, rng: &mut impl Rng) -> Vec<usize> {
    let offset = rng.gen_range(0..steps);
    let mut starts: Vec<usize> = (offset..len.saturating_sub(steps)).step_by(steps).collect();
    starts.shuffle(rng);
    starts
}

/// A fixed sample of at most `count` window starts (all of them if there are fewer), sorted.
pub fn sample_window_starts(
    len: usize,
    steps: usize,
    count: usize,
    rng: &mut impl Rng,
) -> Vec<usize> {
    let mut starts = all_window_starts(len, steps);
    if starts.len() > count {
        starts.partial_shuffle(rng, count);
        starts.truncate(count);
        starts.sort_unstable();
    }
    starts
}

/// Fills time-major `inputs` ([steps][batch][K]) and `targets` ([steps][batch]): window b reads
/// the input row of step `start_b + t` and predicts `stream[start_b + t + 1]`. `rows` holds K
/// indices for each step of `stream`; the stream itself is the rows of a one-hot model (K = 1).
pub fn fill_batch(
    stream: &[u32],
    rows: &[u32],
    starts: &[usize],
    steps: usize,
    inputs: &mut [u32],
    targets: &mut [u32],
) {
    let batch = starts.len();
    let k = rows.len() / stream.len();
    assert_eq!(rows.len(), stream.len() * k, "K rows for every step");
    assert_eq!(inputs.len(), steps * batch * k);
    assert_eq!(targets.len(), steps * batch);
    for (b, &start) in starts.iter().enumerate() {
        for t in 0..steps {
            let at = t * batch + b;
            inputs[at * k..(at + 1) * k]
                .copy_from_slice(&rows[(start + t) * k..(start + t + 1) * k]);
            targets[at] = stream[start + t + 1];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn songs_keep_their_delimiter_runs() {
        let stream = [5, 6, 0, 0, 7, 0, 0, 8];
        let songs: Vec<&[u32]> = songs(&stream, 0).collect();
        assert_eq!(songs, vec![&[5, 6, 0, 0][..], &[7, 0, 0][..], &[8][..]]);
    }

    #[test]
    fn held_out_songs_are_a_spread_fraction() {
        let held: Vec<usize> = (0..30).filter(|&i| is_held_out(i, 0.1)).collect();
        assert_eq!(held, vec![9, 19, 29]);
        assert_eq!((0..1000).filter(|&i| is_held_out(i, 0.25)).count(), 250);
        assert!(!(0..100).any(|i| is_held_out(i, 0.0)));
    }

    #[test]
    fn splits_partition_the_songs() {
        let mut text = String::new();
        for song in 0..20 {
            text.push_str(&format!("{} _ / / ", 60 + song % 3));
        }
        let dir = std::env::temp_dir().join(format!("dataset-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("dataset.txt"), text.trim_end()).unwrap();
        fs::write(
            dir.join("vocab.json"),
            Vocabulary::from_symbols(["60", "61", "62"]).to_json(),
        )
        .unwrap();
        let data = Dataset::load(&dir).unwrap();
        let train = data.split(Split::Train, 0.1);
        let val = data.split(Split::Val, 0.1);
        assert_eq!(
            (train.len(), val.len(), data.stream.len()),
            (18 * 4, 2 * 4, 80)
        );
        // Songs 9 and 19 (60 + 9 % 3 = 60, 60 + 19 % 3 = 61) are held out.
        let first_symbols: Vec<&str> = songs(&val, 0).map(|s| data.vocab.symbol(s[0])).collect();
        assert_eq!(first_symbols, ["60", "61"]);
        fs::write(dir.join("dataset.txt"), "60 _ 99").unwrap();
        assert!(Dataset::load(&dir)
            .unwrap_err()
            .contains("symbol \"99\" at position 2"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn windows_and_batches() {
        assert_eq!(all_window_starts(10, 4), vec![0, 1, 2, 3, 4, 5]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut tiled = tiled_window_starts(100, 8, &mut rng);
        tiled.sort_unstable();
        let offset = tiled[0];
        assert!(offset < 8);
        assert!(tiled.windows(2).all(|w| w[1] - w[0] == 8));
        assert!(*tiled.last().unwrap() + 8 < 100 && *tiled.last().unwrap() + 16 >= 100);
        let sample = sample_window_starts(1000, 8, 10, &mut rng);
        assert_eq!(sample.len(), 10);
        assert!(sample.windows(2).all(|w| w[0] < w[1]));

        let stream: Vec<u32> = (0..10).collect();
        let (mut inputs, mut targets) = (vec![0; 6], vec![0; 6]);
        fill_batch(&stream, &stream, &[0, 5], 3, &mut inputs, &mut targets);
        assert_eq!(inputs, vec![0, 5, 1, 6, 2, 7]);
        assert_eq!(targets, vec![1, 6, 2, 7, 3, 8]);
        // Two indices a step: window b's row t is the rows of step start_b + t.
        let rows: Vec<u32> = (0..10).flat_map(|s| [s, 100 + s]).collect();
        let mut wide = vec![0; 12];
        fill_batch(&stream, &rows, &[0, 5], 3, &mut wide, &mut targets);
        assert_eq!(wide, vec![0, 100, 5, 105, 1, 101, 6, 106, 2, 102, 7, 107]);
        assert_eq!(targets, vec![1, 6, 2, 7, 3, 8]);
    }
}
