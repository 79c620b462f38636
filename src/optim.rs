//! Adam exactly as Keras implements it, over the flat parameter buffer, with optional global
//! gradient-norm clipping: the hyperparameters, the state and the scalars both engines share.
//! The update itself is `cpu::adam` (with `Adam::step`) and `gpu::adam`.
//!
//! Keras' update at step t (from 1), per element:
//!   m ← m + (g − m)(1 − β1);  v ← v + (g² − v)(1 − β2)
//!   lr_t = lr·√(1 − β2^t) / (1 − β1^t);  θ ← θ − lr_t·m / (√v + ε)
//! The bias correction is folded into lr_t, so ε is added to the uncorrected √v.

pub use crate::model::checkpoint::AdamState;

/// The optimiser: hyperparameters and its state.
#[derive(Clone, Debug)]
pub struct Adam {
    pub learning_rate: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    /// Rescale the whole gradient to this global L2 norm when it is larger.
    pub clip: Option<f32>,
    pub state: AdamState,
}

impl Adam {
    /// Keras' defaults (lr 1e-3, β1 0.9, β2 0.999, ε 1e-7), no clipping, zero state for
    /// `num_params` parameters.
    pub fn new(num_params: usize) -> Self {
        Adam {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
            clip: None,
            state: AdamState {
                m: vec![0.0; num_params],
                v: vec![0.0; num_params],
                step: 0,
            },
        }
    }

    /// The factor the gradient is multiplied by before the update: clip / norm when clipping
    /// is on and the global norm exceeds it, else exactly 1.
    pub fn clip_scale(&self, norm: f32) -> f32 {
        match self.clip {
            Some(clip) if norm > clip => clip / norm,
            _ => 1.0,
        }
    }

    /// lr_t = lr·√(1 − β2^t) / (1 − β1^t), the bias-corrected step size of update `t` (from 1).
    pub fn step_size(&self, t: u64) -> f32 {
        let t = t as f64;
        let (beta1, beta2) = (self.beta1 as f64, self.beta2 as f64);
        (self.learning_rate as f64 * (1.0 - beta2.powf(t)).sqrt() / (1.0 - beta1.powf(t))) as f32
    }
}

/// ‖g‖₂ over every element, accumulated in f64 so that many small squares are not lost: in
/// `NORM_LANES` sums of every `NORM_LANES`-th element, added in lane order at the end (one
/// sum in order is a chain of dependent additions, 0.4 ms a training step). The order differs
/// from one sum in order, so the f64 sum may differ in its last bits (the f32 norm rarely).
pub fn global_norm(grads: &[f32]) -> f32 {
    let mut lanes = [0.0f64; NORM_LANES];
    let whole = grads.chunks_exact(NORM_LANES);
    let rest = whole.remainder();
    for chunk in whole {
        for (lane, &g) in lanes.iter_mut().zip(chunk) {
            *lane += (g as f64) * (g as f64);
        }
    }
    for (lane, &g) in lanes.iter_mut().zip(rest) {
        *lane += (g as f64) * (g as f64);
    }
    lanes.iter().sum::<f64>().sqrt() as f32
}

/// Independent sums of [`global_norm`]: enough to hide the latency of an addition.
const NORM_LANES: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    /// The 8-lane sum agrees with one sum in order to f64 rounding, at lengths that fill no lane
    /// evenly, and the f32 norm is the one the ordered sum gives.
    #[test]
    fn global_norm_in_lanes_is_the_norm_in_order() {
        for len in [1, 7, 9, 1_003, 100_001] {
            let grads: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 1e-3)
                .collect();
            let in_order: f64 = grads.iter().map(|&g| (g as f64) * (g as f64)).sum();
            let lanes = global_norm(&grads) as f64;
            let relative = (lanes * lanes - in_order).abs() / in_order;
            assert!(relative < 1e-6, "length {len}: {lanes}² against {in_order}");
            assert_eq!(global_norm(&grads), in_order.sqrt() as f32, "length {len}");
        }
    }
}
