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
use rand::SeedableRng;

use crate::backend::Backend;
use crate::melody_file::read_melodies;
use crate::sample::Sampler;

/// The first `steps` symbols of a melody file's first melody: a seed. A score (`.krn`, `.mid`,
/// of which `part`: the MIDI track or the ABC tune, default the first) is encoded as in
/// preprocessing, every duration on the grid accepted.
pub fn seed_from_file(
    path: &Path,
    part: Option<usize>,
    steps: usize,
) -> Result<Vec<String>, String> {
    let mut melodies =
        read_melodies(path, part, None).map_err(|e| format!("cannot be used as a seed: {e}"))?;
    if melodies.is_empty() {
        return Err(format!("{}: no melody to seed with", path.display()));
    }
    let mut seed = melodies.swap_remove(0);
    seed.truncate(steps);
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
}

/// Generates `options.count` melodies from the same seed (ids, without the `/` context). Each
/// result is the seed followed by the generated symbols, up to (not including) the first `/`.
pub fn generate(
    backend: &mut dyn Backend,
    delimiter: u32,
    seed: &[u32],
    sampler: &Sampler,
    options: &GenerateOptions,
) -> Result<Vec<Vec<u32>>, String> {
    let (w, n) = (options.window, options.count);
    let vocab_size = backend.config().vocab_size;
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
    // One row computes the run and the others copy it, instead of w batched steps.
    for k in 1..=w {
        backend.stream_step(0..1, &[delimiter])?;
        let to: Vec<usize> = (0..n)
            .map(|i| i * w + (w - k))
            .filter(|&r| r != 0)
            .collect();
        backend.stream_copy_row(0, &to)?;
    }
    let mut inputs = vec![0u32; n * w];
    let mut probs = vec![0f32; n * vocab_size];
    // Tick j reads symbol j−1 into every window in flight and completes W_j.
    for j in w..last {
        if j > w {
            let fresh = (j + w - 1) % w;
            backend.stream_zero_rows(&(0..n).map(|i| i * w + fresh).collect::<Vec<_>>())?;
            for (i, history) in histories.iter().enumerate() {
                // A finished melody's rows run on, reading `/`, until the batch is done.
                inputs[i * w..(i + 1) * w].fill(history.get(j - 1).copied().unwrap_or(delimiter));
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
            }
        }
        if finished.iter().all(|&f| f) {
            break;
        }
    }
    Ok(histories.into_iter().map(|h| h[w..].to_vec()).collect())
}
