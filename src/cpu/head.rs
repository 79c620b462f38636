//! The head of the model: dropout on the last LSTM layer's output, the dense layer to V logits,
//! and softmax cross-entropy, forward and backward, over N rows at once.

use super::matmul::{broadcast_rows, column_sums, matmul, matrix, matrix_mut};
use super::BatchStats;
use crate::model::{Dense, DenseMut, Float};

/// The head over N loss rows: `dropped` [N×H] = hidden ⊙ mask, `logits` [N×V] the softmax
/// probabilities of the dense layer's output; returns the summed loss and the correct rows.
pub fn head_forward<F: Float>(
    dense: Dense<'_, F>,
    hidden: &[F],
    mask: Option<&[F]>,
    targets: &[u32],
    dropped: &mut [F],
    logits: &mut [F],
) -> BatchStats {
    dropout(hidden, mask, dropped);
    dense_forward(dense, dropped, hidden.len() / targets.len(), logits);
    softmax_cross_entropy(logits, targets)
}

/// The head backwards from [`head_forward`]'s probabilities in `logits` (∂(mean loss)/∂logits on
/// exit, the mean over `count` rows): overwrites the dense gradients and writes ∂L/∂h [N×H].
#[allow(clippy::too_many_arguments)]
pub fn head_backward<F: Float>(
    dense: Dense<'_, F>,
    dropped: &[F],
    mask: Option<&[F]>,
    targets: &[u32],
    count: usize,
    logits: &mut [F],
    grads: DenseMut<'_, F>,
    d_hidden: &mut [F],
) {
    softmax_cross_entropy_backward(logits, targets, count);
    dense_backward(dense, dropped, logits, grads, d_hidden);
    // Dropout is linear with the mask as its slope.
    if let Some(mask) = mask {
        dropout_backward(d_hidden, mask);
    }
}

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
    broadcast_rows(logits, dense.bias, None);
    let weight = matrix(dense.weight, v, hidden);
    let x = matrix(x, rows, hidden);
    matmul(matrix_mut(logits, rows, v), true, x, weight.t());
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
#[inline]
pub fn softmax_in_place<F: Float>(row: &mut [F]) -> (usize, f64) {
    let mut argmax = 0;
    for (j, &x) in row.iter().enumerate() {
        if x > row[argmax] {
            argmax = j;
        }
    }
    let max = row[argmax];
    // The exponentials apart from their sum, which adds in order: they vectorise.
    for x in row.iter_mut() {
        *x = (*x - max).exp();
    }
    let mut sum = F::ZERO;
    for &x in row.iter() {
        sum += x;
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
    column_sums(d_logits, grads.bias);
    let (d_logits, x) = (matrix(d_logits, rows, v), matrix(x, rows, hidden));
    // ∂L/∂W = d_logitsᵀ · x: [V×N]·[N×H]
    matmul(matrix_mut(grads.weight, v, hidden), false, d_logits.t(), x);
    // ∂L/∂x = d_logits · W: [N×V]·[V×H]
    let weight = matrix(dense.weight, v, hidden);
    matmul(matrix_mut(d_x, rows, hidden), false, d_logits, weight);
}
