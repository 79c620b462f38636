//! The reference work's accuracy protocol: every window of `window` consecutive symbols, read
//! from a zero state with dropout off, predicts the symbol after it.

use serde::Serialize;

use crate::backend::{Backend, Batch};
use crate::cpu::BatchStats;
use crate::dataset::fill_batch;
use crate::model::Objective;

/// Windows evaluated together; large enough to keep the matrix products efficient.
const EVAL_BATCH: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Metrics {
    pub windows: usize,
    /// Mean cross-entropy (nats) of the symbol after each window.
    pub loss: f64,
    pub accuracy: f64,
    /// exp(loss).
    pub perplexity: f64,
}

impl Metrics {
    pub fn from_stats(stats: BatchStats) -> Metrics {
        let n = stats.count.max(1) as f64;
        let loss = stats.loss_sum / n;
        Metrics {
            windows: stats.count,
            loss,
            accuracy: stats.correct as f64 / n,
            perplexity: loss.exp(),
        }
    }
}

/// Evaluates the windows of `stream` starting at `starts`, `on_batch` called with the number of
/// windows done after each batch (for a progress bar).
pub fn evaluate_windows(
    backend: &mut dyn Backend,
    stream: &[u32],
    starts: &[usize],
    window: usize,
    mut on_batch: impl FnMut(usize),
) -> Metrics {
    let mut total = BatchStats::default();
    let mut inputs = vec![0; window * EVAL_BATCH];
    let mut targets = vec![0; window * EVAL_BATCH];
    for chunk in starts.chunks(EVAL_BATCH) {
        let n = chunk.len() * window;
        fill_batch(stream, chunk, window, &mut inputs[..n], &mut targets[..n]);
        let batch = Batch {
            inputs: &inputs[..n],
            targets: &targets[..n],
            batch: chunk.len(),
            steps: window,
        };
        let stats = backend.evaluate(&batch, Objective::Last);
        total.loss_sum += stats.loss_sum;
        total.correct += stats.correct;
        total.count += stats.count;
        on_batch(chunk.len());
    }
    Metrics::from_stats(total)
}
