//! Seed melody → new melody, with the reference work's semantics made fast.
//!
//! The reference work puts 64 `/` before the seed and predicts each next symbol from the last 64
//! symbols, read from a zero state: a whole 64-step forward pass per symbol. The same windows can
//! run staggered instead. Window W_m (predicting symbol m from symbols m−64 … m−1) reads symbol
//! m−64+t at its step t, so after symbol j−1 is known every window W_j … W_{j+63} can take its
//! next step: 64 windows in flight, each at a different step, all advanced by one batched LSTM
//! step per symbol. W_j then has read its 64 symbols and gives the distribution of symbol j; its
//! state row is zeroed and reused for W_{j+64}. Same windows, same zero states, same
//! predictions; a [B×H]·[H×4H] product per symbol instead of 64 matrix-vector products.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::backend::Backend;
use crate::features::{FeatureTracker, ModeClass};
use crate::melody_file::{is_score, read_encoded, read_melodies};
use crate::sample::Sampler;

/// A seed melody, with what its score says of its meter, mode and bars.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    pub symbols: Vec<String>,
    /// The score's first meter; None for a `.txt` melody or a score without one.
    pub meter: Option<(u32, u32)>,
    /// The score's mode by its third; None for a `.txt` melody.
    pub mode: Option<ModeClass>,
    /// The steps before the score's first barline (its pickup); 0 for a `.txt` melody or a score
    /// without barlines.
    pub pickup: usize,
}

/// The first `steps` symbols of a melody file's first melody: a seed. A score (`.krn`, `.mid`,
/// of which `part`: the MIDI track or the ABC tune, default the first) is encoded as in
/// preprocessing, every duration on the grid accepted, and gives its meter, mode and pickup.
pub fn seed_from_file(path: &Path, part: Option<usize>, steps: usize) -> Result<Seed, String> {
    let unusable = |e: String| format!("cannot be used as a seed: {e}");
    let mut seed = if is_score(path) {
        let (song, encoded) = (read_encoded(path, part, None).map_err(unusable)?)
            .into_iter()
            .next()
            .ok_or_else(|| format!("{}: no melody to seed with", path.display()))?;
        Seed {
            meter: song.meter,
            mode: Some(ModeClass::of(encoded.key.mode)),
            pickup: encoded.pickup(),
            symbols: encoded.symbols,
        }
    } else {
        let melody = (read_melodies(path, part, None).map_err(unusable)?)
            .into_iter()
            .next()
            .ok_or_else(|| format!("{}: no melody to seed with", path.display()))?;
        Seed {
            symbols: melody,
            meter: None,
            mode: None,
            pickup: 0,
        }
    };
    seed.symbols.truncate(steps);
    Ok(seed)
}

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// At most this many symbols after the seed.
    pub steps: usize,
    /// Melodies generated together, each with its own random stream.
    pub count: usize,
    /// Melody i draws from a generator seeded with `rng_seed + i`.
    pub rng_seed: u64,
    /// Symbols each prediction reads (the training window).
    pub window: usize,
    /// For a model with feature inputs: the tracker each melody starts from (its meter, mode
    /// and the place of its first step in its bar), one per melody. None for the reference
    /// model.
    pub features: Option<Vec<FeatureTracker>>,
}

/// For each of `count` melodies, one of `weighted`'s values, drawn with probability in
/// proportion to its weight: melody i's draw is its own stream, derived from `rng_seed + i` (its
/// sampling seed, see [`GenerateOptions::rng_seed`]) apart from the stream it samples with, so
/// that the same seed gives the same batch and melody i's draw does not depend on the others.
pub fn draw_weighted<T: Clone>(weighted: &[(T, usize)], count: usize, rng_seed: u64) -> Vec<T> {
    let total: usize = weighted.iter().map(|(_, weight)| weight).sum();
    assert!(total > 0, "nothing to draw from");
    (0..count as u64)
        .map(|i| {
            let mut left =
                draw_stream(rng_seed + i, b"weighted draw not sample").gen_range(0..total);
            for (value, weight) in weighted {
                if left < *weight {
                    return value.clone();
                }
                left -= weight;
            }
            unreachable!("the draw is below the total weight")
        })
        .collect()
}

/// Whether each melody leaves the scale, drawn with the probability `shares[i]` (the share of
/// its mode's training songs that do): melody i's draw is its own stream from `rng_seed + i`,
/// apart from the streams it samples with and draws its meter and mode with.
pub fn draw_leaving_scale(shares: &[f64], rng_seed: u64) -> Vec<bool> {
    (0..)
        .zip(shares)
        .map(|(i, &share)| draw_stream(rng_seed + i, b"leave the scale or stay ").gen_bool(share))
        .collect()
}

/// A generator from 8 bytes of a melody's seed and 24 of `tag`, which no `seed_from_u64` stream
/// starts from: one draw of the melody's that depends on no other.
fn draw_stream(melody_seed: u64, tag: &[u8; 24]) -> StdRng {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&melody_seed.to_le_bytes());
    seed[8..].copy_from_slice(tag);
    StdRng::from_seed(seed)
}

/// A melody's history as the model reads it: K indices a step, the symbol alone (K = 1) or its
/// features as its own tracker computes them while the melody grows.
struct MelodyRows {
    tracker: Option<FeatureTracker>,
    k: usize,
    /// The row of every `/` before the melody; its windows read it again once it has ended.
    context: Vec<u32>,
    rows: Vec<u32>,
}

impl MelodyRows {
    fn push(&mut self, symbol: u32) {
        match &mut self.tracker {
            Some(tracker) => {
                let at = self.rows.len();
                self.rows.resize(at + self.k, 0);
                tracker.push(symbol, &mut self.rows[at..]);
            }
            None => self.rows.push(symbol),
        }
    }

    /// The row of history step `step`, if the melody has come that far.
    fn row(&self, step: usize) -> Option<&[u32]> {
        self.rows.get(step * self.k..(step + 1) * self.k)
    }
}

/// Generates `options.count` melodies from the same seed (ids, without the `/` context). Each
/// result is the seed followed by the generated symbols, up to (not including) the first `/`.
/// A model with features reads every step's row from its melody's own tracker, the `/` context
/// and the seed included.
pub fn generate(
    backend: &mut dyn Backend,
    delimiter: u32,
    seed: &[u32],
    sampler: &Sampler,
    options: &GenerateOptions,
) -> Result<Vec<Vec<u32>>, String> {
    let (w, n) = (options.window, options.count);
    let vocab_size = backend.config().vocab_size;
    let k = backend.config().inputs_per_step;
    let trackers: Vec<Option<FeatureTracker>> = match &options.features {
        Some(trackers) if trackers.len() != n => {
            return Err(format!(
                "{} feature trackers for {n} melodies: each needs its own",
                trackers.len()
            ))
        }
        Some(trackers) => trackers.iter().cloned().map(Some).collect(),
        None => vec![None; n],
    };
    let fed =
        (trackers.first().and_then(Option::as_ref)).map_or(1, FeatureTracker::inputs_per_step);
    if fed != k {
        return Err(format!(
            "the model reads {k} indices a step, but its melodies would give it {fed} (a model \
             with features needs their trackers)"
        ));
    }
    let mut rows: Vec<MelodyRows> = (trackers.into_iter())
        .map(|tracker| {
            let mut context = vec![delimiter; k];
            if let Some(tracker) = &tracker {
                tracker.context_row(&mut context);
            }
            let mut melody = MelodyRows {
                tracker,
                k,
                rows: context.repeat(w),
                context,
            };
            seed.iter().for_each(|&symbol| melody.push(symbol));
            melody
        })
        .collect();
    // Melodies whose context rows agree share their `/` run: (the first one's index, all).
    let mut runs: Vec<(usize, Vec<usize>)> = Vec::new();
    for i in 0..n {
        match (runs.iter_mut()).find(|(first, _)| rows[*first].context == rows[i].context) {
            Some((_, melodies)) => melodies.push(i),
            None => runs.push((i, vec![i])),
        }
    }
    // Every melody's history: the `/` context, the seed, then what was drawn.
    let mut histories: Vec<Vec<u32>> = (0..n)
        .map(|_| {
            std::iter::repeat_n(delimiter, w)
                .chain(seed.iter().copied())
                .collect()
        })
        .collect();
    let mut rngs: Vec<StdRng> = (0..n as u64)
        .map(|i| StdRng::seed_from_u64(options.rng_seed + i))
        .collect();
    let mut finished = vec![false; n];
    let context = w + seed.len();
    let last = context + options.steps;

    backend.stream_reset(n * w)?;
    // Ticks 1…w read only `/`, into windows that each start from zero, so every window in flight
    // holds one of the states S_1 … S_w of a single `/` run: row r holds S_{w−r} after tick w.
    // One row computes the run (one per context row) and the others copy it, instead of w
    // batched steps.
    for k in 1..=w {
        for (first, melodies) in &runs {
            let from = first * w;
            backend.stream_step(from..from + 1, &rows[*first].context)?;
            let to: Vec<usize> = (melodies.iter())
                .map(|i| i * w + (w - k))
                .filter(|&r| r != from)
                .collect();
            backend.stream_copy_row(from, &to)?;
        }
    }
    let mut inputs = vec![0u32; n * w * k];
    let mut probs = vec![0f32; n * vocab_size];
    // Tick j reads symbol j−1 into every window in flight and completes W_j.
    for j in w..last {
        if j > w {
            let fresh = (j + w - 1) % w;
            backend.stream_zero_rows(&(0..n).map(|i| i * w + fresh).collect::<Vec<_>>())?;
            for (i, melody) in rows.iter().enumerate() {
                // A finished melody's rows run on, reading `/`, until the batch is done.
                let row = melody.row(j - 1).unwrap_or(&melody.context);
                for window in inputs[i * w * k..(i + 1) * w * k].chunks_exact_mut(k) {
                    window.copy_from_slice(row);
                }
            }
            backend.stream_step(0..n * w, &inputs)?;
        }
        if j < context {
            continue; // symbol j is part of the context
        }
        let complete: Vec<usize> = (0..n).map(|i| i * w + j % w).collect();
        backend.stream_probs(&complete, &mut probs)?;
        for i in 0..n {
            if finished[i] {
                continue;
            }
            let next = sampler.sample(
                &probs[i * vocab_size..(i + 1) * vocab_size],
                &histories[i],
                &mut rngs[i],
            );
            if next == delimiter {
                finished[i] = true;
            } else {
                histories[i].push(next);
                rows[i].push(next);
            }
        }
        if finished.iter().all(|&f| f) {
            break;
        }
    }
    Ok(histories.into_iter().map(|h| h[w..].to_vec()).collect())
}
