//! What training, evaluation and generation need from an engine, so that each is written once:
//! the CPU engine here, the CUDA engine behind the same trait.

use std::collections::HashMap;

use crate::cpu::{self, BatchStats, Workspace};
use crate::model::{Config, Objective, Params};
use crate::optim::{Adam, AdamState};

/// An engine holding the model's parameters and optimiser state.
pub trait Backend {
    /// Which engine, for messages: `cpu` or `cuda`.
    fn name(&self) -> &'static str;

    /// One optimiser step on a time-major batch ([T][B] inputs and targets): forward, backward,
    /// Adam. Dropout masks come from [`dropout_keeps`] with `(seed, step)`.
    fn train_step(&mut self, batch: &Batch<'_>, objective: Objective, dropout_seed: u64) -> BatchStats;

    /// Loss and accuracy without dropout or update.
    fn evaluate(&mut self, batch: &Batch<'_>, objective: Objective) -> BatchStats;

    /// Probabilities of the symbol after each of B windows ([T][B] inputs) → `out` [B][V].
    fn predict_last(&mut self, inputs: &[u32], batch: usize, out: &mut [f32]);

    /// The parameters, for a checkpoint.
    fn params(&self) -> Params<f32>;

    /// The optimiser state, for an exact resume.
    fn adam_state(&self) -> AdamState;
}

/// A time-major batch: `inputs[t * batch + b]` is step t of window b.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub inputs: &'a [u32],
    pub targets: &'a [u32],
    pub batch: usize,
    pub steps: usize,
}

/// Counter-based dropout: value `index` of the mask at optimiser step `step` is kept when
/// hash(seed, step, index) ≥ p · 2³². A pure function of its arguments, so a resumed run draws
/// the same masks and a GPU kernel can draw the same ones as the CPU.
pub fn dropout_keeps(seed: u64, step: u64, index: u64, p: f32) -> bool {
    let mut x = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    // splitmix64's finaliser: every input bit affects every output bit.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 32) as f64 >= p as f64 * 4_294_967_296.0
}

/// The reference engine: [`crate::cpu`] and [`Adam`] over f32.
pub struct CpuBackend {
    params: Params<f32>,
    grads: Params<f32>,
    adam: Adam,
    dropout: f32,
    dropout_mask: Vec<f32>,
    /// One workspace per batch shape (B, T) and use (training or not).
    workspaces: HashMap<(usize, usize, bool), Workspace<f32>>,
}

impl CpuBackend {
    pub fn new(params: Params<f32>, adam: Adam) -> CpuBackend {
        let config = *params.config();
        CpuBackend {
            grads: Params::zeros(config),
            dropout: config.dropout,
            params,
            adam,
            dropout_mask: Vec::new(),
            workspaces: HashMap::new(),
        }
    }

}

/// The workspace for a batch shape, allocated on first use.
fn workspace<'a>(
    workspaces: &'a mut HashMap<(usize, usize, bool), Workspace<f32>>,
    config: &Config,
    (batch, steps): (usize, usize),
    training: bool,
) -> &'a mut Workspace<f32> {
    workspaces.entry((batch, steps, training)).or_insert_with(|| {
        if training {
            Workspace::new(config, batch, steps)
        } else {
            Workspace::for_eval(config, batch, steps)
        }
    })
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn train_step(&mut self, batch: &Batch<'_>, objective: Objective, dropout_seed: u64) -> BatchStats {
        let (p, step) = (self.dropout, self.adam.state.step);
        let ws = workspace(&mut self.workspaces, self.params.config(), (batch.batch, batch.steps), true);
        let mask = (p > 0.0).then(|| {
            let keep = 1.0 / (1.0 - p);
            let mut mask = std::mem::take(&mut self.dropout_mask);
            mask.resize(ws.dropout_mask_len(objective), 0.0);
            for (i, m) in mask.iter_mut().enumerate() {
                *m = if dropout_keeps(dropout_seed, step, i as u64, p) { keep } else { 0.0 };
            }
            mask
        });
        let stats = cpu::forward_backward(
            &self.params,
            batch.inputs,
            batch.targets,
            objective,
            mask.as_deref(),
            ws,
            &mut self.grads,
        );
        self.dropout_mask = mask.unwrap_or_default();
        if stats.loss_sum.is_finite() {
            self.adam.step(self.params.as_mut_slice(), self.grads.as_mut_slice());
        }
        stats
    }

    fn evaluate(&mut self, batch: &Batch<'_>, objective: Objective) -> BatchStats {
        let ws = workspace(&mut self.workspaces, self.params.config(), (batch.batch, batch.steps), false);
        cpu::forward_eval(&self.params, batch.inputs, batch.targets, objective, ws)
    }

    fn predict_last(&mut self, inputs: &[u32], batch: usize, out: &mut [f32]) {
        let ws = workspace(&mut self.workspaces, self.params.config(), (batch, inputs.len() / batch), false);
        cpu::predict_last(&self.params, inputs, ws, out);
    }

    fn params(&self) -> Params<f32> {
        self.params.clone()
    }

    fn adam_state(&self) -> AdamState {
        self.adam.state.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_keeps_the_expected_fraction_and_is_repeatable() {
        let kept = (0..100_000).filter(|&i| dropout_keeps(7, 3, i, 0.2)).count();
        assert!((kept as f64 / 100_000.0 - 0.8).abs() < 0.005, "kept {kept}");
        let a: Vec<bool> = (0..64).map(|i| dropout_keeps(7, 3, i, 0.5)).collect();
        let b: Vec<bool> = (0..64).map(|i| dropout_keeps(7, 3, i, 0.5)).collect();
        let other_step: Vec<bool> = (0..64).map(|i| dropout_keeps(7, 4, i, 0.5)).collect();
        assert_eq!(a, b);
        assert_ne!(a, other_step);
        assert!((0..1000).all(|i| dropout_keeps(1, 1, i, 0.0)));
    }
}
