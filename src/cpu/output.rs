//! The head of the model: dropout on the last LSTM layer's output, the dense layer to V logits,
//! and softmax cross-entropy, forward and backward, over N rows at once.

use super::matmul::{matmul, Mat};
use super::BatchStats;
use crate::model::{Dense, DenseMut, Float};

/// Inverted dropout: out = h ⊙ mask, where the mask holds 0 or 1/(1−p) so the expected value is h.
/// No mask means dropout is off.
pub fn dropout<F: Float>(hidden: &[F], mask: Option<&[F]>, out: &mut [F]) {
    match mask {
        Some(mask) => {
            for ((y, &x), &m) in out.iter_mut().zip(hidden).zip(mask) {
                *y = x * m;
            }
        }
        None => out.copy_from_slice(hidden),
    }
}

/// ∂L/∂h = ∂L/∂(h ⊙ mask) ⊙ mask, in place.
pub fn dropout_backward<F: Float>(d_out: &mut [F], mask: &[F]) {
    for (d, &m) in d_out.iter_mut().zip(mask) {
        *d *= m;
    }
}

/// logits [N×V] = x [N×H] · Wᵀ [H×V] + b.
pub fn dense_forward<F: Float>(dense: Dense<'_, F>, x: &[F], hidden: usize, logits: &mut [F]) {
    let v = dense.bias.len();
    let rows = logits.len() / v;
    for row in logits.chunks_exact_mut(v) {
        row.copy_from_slice(dense.bias);
    }
    let weight = Mat::new(dense.weight, v, hidden);
    matmul(logits, true, Mat::new(x, rows, hidden), weight.t());
}

/// Turns each row of logits [N×V] into probabilities in place, and returns the summed
/// cross-entropy −log p[target] and how many rows have their largest logit at the target.
pub fn softmax_cross_entropy<F: Float>(logits: &mut [F], targets: &[u32]) -> BatchStats {
    let v = logits.len() / targets.len();
    let mut stats = BatchStats {
        loss_sum: 0.0,
        correct: 0,
        count: targets.len(),
    };
    for (row, &target) in logits.chunks_exact_mut(v).zip(targets) {
        let target = target as usize;
        // −log p[target] = log Σ exp(l) − l[target]: no log of a tiny probability.
        let target_logit = row[target].to_f64();
        let (argmax, log_sum_exp) = softmax_in_place(row);
        stats.loss_sum += log_sum_exp - target_logit;
        stats.correct += usize::from(argmax == target);
    }
    stats
}

/// Replaces a row of logits by softmax probabilities, shifting by the maximum so exp cannot
/// overflow. Returns the index of the first maximum and log Σ exp(l) (in f64).
pub fn softmax_in_place<F: Float>(row: &mut [F]) -> (usize, f64) {
    let mut argmax = 0;
    for (j, &x) in row.iter().enumerate() {
        if x > row[argmax] {
            argmax = j;
        }
    }
    let max = row[argmax];
    let mut sum = F::ZERO;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv_sum = F::ONE / sum;
    for x in row.iter_mut() {
        *x *= inv_sum;
    }
    (argmax, max.to_f64() + sum.to_f64().ln())
}

/// ∂(mean loss)/∂logits = (p − onehot(target)) / N, written over the probabilities in place;
/// `count` is N, the number of positions the mean runs over.
pub fn softmax_cross_entropy_backward<F: Float>(probs: &mut [F], targets: &[u32], count: usize) {
    let v = probs.len() / targets.len();
    let inv_count = F::from_f64(1.0 / count as f64);
    for (row, &target) in probs.chunks_exact_mut(v).zip(targets) {
        row[target as usize] -= F::ONE;
        for x in row.iter_mut() {
            *x *= inv_count;
        }
    }
}

/// Given d_logits [N×V] and the dense input x [N×H], overwrites the dense gradients and writes
/// d_x [N×H] = d_logits · W.
pub fn dense_backward<F: Float>(
    dense: Dense<'_, F>,
    x: &[F],
    d_logits: &[F],
    grads: DenseMut<'_, F>,
    d_x: &mut [F],
) {
    let v = dense.bias.len();
    let rows = d_logits.len() / v;
    let hidden = dense.weight.len() / v;
    // ∂L/∂b = Σ_rows d_logits
    grads.bias.fill(F::ZERO);
    for row in d_logits.chunks_exact(v) {
        for (db, &d) in grads.bias.iter_mut().zip(row) {
            *db += d;
        }
    }
    let d_logits = Mat::new(d_logits, rows, v);
    // ∂L/∂W = d_logitsᵀ · x: [V×N]·[N×H]
    matmul(grads.weight, false, d_logits.t(), Mat::new(x, rows, hidden));
    // ∂L/∂x = d_logits · W: [N×V]·[V×H]
    matmul(d_x, false, d_logits, Mat::new(dense.weight, v, hidden));
}
