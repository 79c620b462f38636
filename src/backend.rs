//! What training, evaluation and generation need from an engine, so that each is written once:
//! the CPU engine here, the CUDA engine behind the same trait.

use std::collections::HashMap;
use std::ops::Range;

use crate::cpu::{self, BatchStats, StreamState, Workspace};
use crate::model::{Config, Objective, Params};
use crate::optim::{Adam, AdamState};

/// An engine holding the model's parameters and optimiser state. Its operations fail only where
/// a device does (out of memory, a failed launch), with a message that says what failed.
pub trait Backend {
    /// One optimiser step on a time-major batch ([T][B] inputs and targets): forward, backward,
    /// Adam. Dropout masks come from [`cpu::dropout_keeps`] with `(seed, step)`.
    fn train_step(
        &mut self,
        batch: &Batch<'_>,
        objective: Objective,
        dropout_seed: u64,
    ) -> Result<BatchStats, String>;

    /// Probabilities of the symbol after each of B windows ([T][B] inputs) → `out` [B][V].
    fn predict_last(&mut self, inputs: &[u32], batch: usize, out: &mut [f32])
        -> Result<(), String>;

    /// The model's shape.
    fn config(&self) -> Config;

    /// The parameters, for a checkpoint.
    fn params(&self) -> Result<Params<f32>, String>;

    /// Streaming inference, as generation uses it: `rows` independent LSTM
    /// states, all zero.
    fn stream_reset(&mut self, rows: usize) -> Result<(), String>;

    /// Zeroes the states of the given rows.
    fn stream_zero_rows(&mut self, rows: &[usize]) -> Result<(), String>;

    /// Copies the state of row `from` into each of the rows `to`.
    fn stream_copy_row(&mut self, from: usize, to: &[usize]) -> Result<(), String>;

    /// Advances the rows in `rows` one step, row `rows.start + k` reading `inputs[k]`.
    fn stream_step(&mut self, rows: Range<usize>, inputs: &[u32]) -> Result<(), String>;

    /// Softmax probabilities after the last step of the given rows → `out` [rows.len()][V].
    fn stream_probs(&mut self, rows: &[usize], out: &mut [f32]) -> Result<(), String>;

    /// The optimiser state, for an exact resume.
    fn adam_state(&self) -> Result<AdamState, String>;
}

/// A time-major batch: `inputs[t * batch + b]` is step t of window b.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub inputs: &'a [u32],
    pub targets: &'a [u32],
    pub batch: usize,
    pub steps: usize,
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
    stream: Option<StreamState<f32>>,
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
            stream: None,
        }
    }
}

/// The streaming state, which `stream_reset` creates.
fn started(stream: &mut Option<StreamState<f32>>) -> &mut StreamState<f32> {
    stream.as_mut().expect("stream_reset first")
}

/// The workspace for a batch shape, allocated on first use.
fn workspace<'a>(
    workspaces: &'a mut HashMap<(usize, usize, bool), Workspace<f32>>,
    config: &Config,
    (batch, steps): (usize, usize),
    training: bool,
) -> &'a mut Workspace<f32> {
    workspaces
        .entry((batch, steps, training))
        .or_insert_with(|| {
            if training {
                Workspace::new(config, batch, steps)
            } else {
                Workspace::for_eval(config, batch, steps)
            }
        })
}

impl Backend for CpuBackend {
    fn train_step(
        &mut self,
        batch: &Batch<'_>,
        objective: Objective,
        dropout_seed: u64,
    ) -> Result<BatchStats, String> {
        let (p, step) = (self.dropout, self.adam.state.step);
        let ws = workspace(
            &mut self.workspaces,
            self.params.config(),
            (batch.batch, batch.steps),
            true,
        );
        let mask = (p > 0.0).then(|| {
            let mut mask = std::mem::take(&mut self.dropout_mask);
            mask.resize(ws.dropout_mask_len(objective), 0.0);
            cpu::fill_dropout_mask(&mut mask, p, dropout_seed, step);
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
            self.adam
                .step(self.params.as_mut_slice(), self.grads.as_mut_slice());
        }
        Ok(stats)
    }

    fn predict_last(
        &mut self,
        inputs: &[u32],
        batch: usize,
        out: &mut [f32],
    ) -> Result<(), String> {
        let ws = workspace(
            &mut self.workspaces,
            self.params.config(),
            (batch, inputs.len() / batch),
            false,
        );
        cpu::predict_last(&self.params, inputs, ws, out);
        Ok(())
    }

    fn config(&self) -> Config {
        *self.params.config()
    }

    fn params(&self) -> Result<Params<f32>, String> {
        Ok(self.params.clone())
    }

    fn stream_reset(&mut self, rows: usize) -> Result<(), String> {
        self.stream = Some(StreamState::new(&self.params, rows));
        Ok(())
    }

    fn stream_zero_rows(&mut self, rows: &[usize]) -> Result<(), String> {
        started(&mut self.stream).zero_rows(rows);
        Ok(())
    }

    fn stream_copy_row(&mut self, from: usize, to: &[usize]) -> Result<(), String> {
        started(&mut self.stream).copy_row(from, to);
        Ok(())
    }

    fn stream_step(&mut self, rows: Range<usize>, inputs: &[u32]) -> Result<(), String> {
        started(&mut self.stream).step(&self.params, rows, inputs);
        Ok(())
    }

    fn stream_probs(&mut self, rows: &[usize], out: &mut [f32]) -> Result<(), String> {
        started(&mut self.stream).probs(&self.params, rows, out);
        Ok(())
    }

    fn adam_state(&self) -> Result<AdamState, String> {
        Ok(self.adam.state.clone())
    }
}
