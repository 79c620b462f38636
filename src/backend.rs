//! What training, evaluation and generation need from an engine, so that each is written once:
//! the CPU engine here, the CUDA engine behind the same trait.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use crate::cpu::isa::{Isa, Kernels};
use crate::cpu::{self, BatchStats, StreamState, Workspace};
use crate::model::{Config, Objective, Params};
use crate::optim::{Adam, AdamState};

/// Why an engine's operation failed: only a device fails (out of memory, a failed launch). Its
/// message says what failed, with the driver's words; `?` turns it into that message where a
/// caller's errors are strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// No CUDA driver or device can be used; the message says why.
    Unavailable(String),
    /// The device ran out of memory while doing `action`.
    OutOfMemory { action: String, message: String },
    /// Another driver call failed while doing `action`.
    Driver { action: String, message: String },
    /// A kernel file could not be compiled or loaded, or lacks a kernel.
    KernelLoad(String),
    /// The launch of `kernel` failed.
    Launch { kernel: String, message: String },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Unavailable(why) | EngineError::KernelLoad(why) => f.write_str(why),
            EngineError::OutOfMemory { action, message }
            | EngineError::Driver { action, message } => write!(f, "CUDA: {action}: {message}"),
            EngineError::Launch { kernel, message } => {
                write!(f, "CUDA: launching {kernel}: {message}")
            }
        }
    }
}

impl std::error::Error for EngineError {}

impl From<EngineError> for String {
    fn from(error: EngineError) -> String {
        error.to_string()
    }
}

/// An engine holding the model's parameters and optimiser state. Its operations fail only where
/// a device does.
pub trait Backend {
    /// One optimiser step on a time-major batch ([T][B][K] inputs, [T][B] targets): forward,
    /// backward, Adam. Dropout masks come from [`cpu::dropout_keeps`] with `(seed, step)`.
    fn train_step(
        &mut self,
        batch: &Batch<'_>,
        objective: Objective,
        dropout_seed: u64,
    ) -> Result<BatchStats, EngineError>;

    /// [`Backend::train_step`] where the engine may run it while the caller goes on: returns the
    /// statistics of the earliest step not yet reported, if any (the CUDA engine's are one step
    /// late; [`Backend::finish_train_steps`] reports the last). Steps with finite losses update
    /// the parameters exactly as `train_step` does.
    fn queue_train_step(
        &mut self,
        batch: &Batch<'_>,
        objective: Objective,
        dropout_seed: u64,
    ) -> Result<Option<BatchStats>, EngineError> {
        self.train_step(batch, objective, dropout_seed).map(Some)
    }

    /// Waits for the steps [`Backend::queue_train_step`] has not reported yet and returns the
    /// statistics of the last of them (at most one is outstanding).
    fn finish_train_steps(&mut self) -> Result<Option<BatchStats>, EngineError> {
        Ok(None)
    }

    /// Probabilities of the symbol after each of B windows ([T][B][K] inputs) → `out` [B][V].
    fn predict_last(
        &mut self,
        inputs: &[u32],
        batch: usize,
        out: &mut [f32],
    ) -> Result<(), EngineError>;

    /// The model's shape.
    fn config(&self) -> Config;

    /// The parameters, for a checkpoint.
    fn params(&self) -> Result<Params<f32>, EngineError>;

    /// Streaming inference, as generation uses it: `rows` independent LSTM
    /// states, all zero.
    fn stream_reset(&mut self, rows: usize) -> Result<(), EngineError>;

    /// Zeroes the states of the given rows.
    fn stream_zero_rows(&mut self, rows: &[usize]) -> Result<(), EngineError>;

    /// Copies the state of row `from` into each of the rows `to`.
    fn stream_copy_row(&mut self, from: usize, to: &[usize]) -> Result<(), EngineError>;

    /// Advances the rows in `rows` one step, row `rows.start + r` reading the K input indices
    /// `inputs[r·K..(r+1)·K]`.
    fn stream_step(&mut self, rows: Range<usize>, inputs: &[u32]) -> Result<(), EngineError>;

    /// Softmax probabilities after the last step of the given rows → `out` [rows.len()][V].
    fn stream_probs(&mut self, rows: &[usize], out: &mut [f32]) -> Result<(), EngineError>;

    /// The optimiser state, for an exact resume.
    fn adam_state(&self) -> Result<AdamState, EngineError>;

    /// The table of per-kernel launch times where the engine records them (the CUDA engine
    /// under `ENGINE_GPU_TIMINGS=1`), else None.
    fn timings_table(&self) -> Result<Option<String>, EngineError> {
        Ok(None)
    }
}

/// A time-major batch: `inputs[(t * batch + b) * K + k]` is input index k of step t of window b
/// (K = `Config::inputs_per_step`; each below `Config::input_width`), `targets[t * batch + b]`
/// the symbol id that step is to predict.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// [T][B][K].
    pub inputs: &'a [u32],
    /// [T][B].
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
    /// What runs the recurrence in every workspace.
    kernels: Kernels,
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
            kernels: Kernels::selected(),
        }
    }

    /// What runs the recurrence: [`Kernels::selected`] unless changed by
    /// [`CpuBackend::use_kernels`].
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Runs the recurrence on `kernels` from now on (tests and benches compare them); a packed
    /// instruction set this processor lacks panics.
    pub fn use_kernels(&mut self, kernels: Kernels) {
        for ws in self.workspaces.values_mut() {
            ws.use_kernels(kernels);
        }
        if let Some(stream) = &mut self.stream {
            stream.use_kernels(kernels);
        }
        self.kernels = kernels;
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
    kernels: Kernels,
) -> &'a mut Workspace<f32> {
    workspaces
        .entry((batch, steps, training))
        .or_insert_with(|| {
            let mut ws = if training {
                Workspace::new(config, batch, steps)
            } else {
                Workspace::for_eval(config, batch, steps)
            };
            ws.use_kernels(kernels);
            ws
        })
}

impl Backend for CpuBackend {
    fn train_step(
        &mut self,
        batch: &Batch<'_>,
        objective: Objective,
        dropout_seed: u64,
    ) -> Result<BatchStats, EngineError> {
        let (p, step) = (self.dropout, self.adam.state.step);
        let ws = workspace(
            &mut self.workspaces,
            self.params.config(),
            (batch.batch, batch.steps),
            true,
            self.kernels,
        );
        let mask = (p > 0.0).then(|| {
            let mut mask = std::mem::take(&mut self.dropout_mask);
            mask.resize(ws.dropout_mask_len(objective), 0.0);
            let isa = match self.kernels {
                Kernels::Packed(isa) => isa,
                // The same mask on any instruction set: the fastest this process may use.
                Kernels::Reference => Isa::selected().unwrap_or(Isa::Portable),
            };
            cpu::fill_dropout_mask(isa, &mut mask, p, dropout_seed, step);
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
            if let Some(stream) = &mut self.stream {
                stream.params_changed();
            }
        }
        Ok(stats)
    }

    fn predict_last(
        &mut self,
        inputs: &[u32],
        batch: usize,
        out: &mut [f32],
    ) -> Result<(), EngineError> {
        let config = self.params.config();
        cpu::check_input_indices(inputs, config);
        let steps = inputs.len() / (batch * config.inputs_per_step);
        let ws = workspace(
            &mut self.workspaces,
            config,
            (batch, steps),
            false,
            self.kernels,
        );
        cpu::predict_last(&self.params, inputs, ws, out);
        Ok(())
    }

    fn config(&self) -> Config {
        *self.params.config()
    }

    fn params(&self) -> Result<Params<f32>, EngineError> {
        Ok(self.params.clone())
    }

    fn stream_reset(&mut self, rows: usize) -> Result<(), EngineError> {
        let mut stream = StreamState::new(&self.params, rows);
        stream.use_kernels(self.kernels);
        self.stream = Some(stream);
        Ok(())
    }

    fn stream_zero_rows(&mut self, rows: &[usize]) -> Result<(), EngineError> {
        started(&mut self.stream).zero_rows(rows);
        Ok(())
    }

    fn stream_copy_row(&mut self, from: usize, to: &[usize]) -> Result<(), EngineError> {
        started(&mut self.stream).copy_row(from, to);
        Ok(())
    }

    fn stream_step(&mut self, rows: Range<usize>, inputs: &[u32]) -> Result<(), EngineError> {
        started(&mut self.stream).step(&self.params, rows, inputs);
        Ok(())
    }

    fn stream_probs(&mut self, rows: &[usize], out: &mut [f32]) -> Result<(), EngineError> {
        started(&mut self.stream).probs(&self.params, rows, out);
        Ok(())
    }

    fn adam_state(&self) -> Result<AdamState, EngineError> {
        Ok(self.adam.state.clone())
    }
}
