//! The CUDA engine: the model of [`crate::cpu`] (the reference it is tested against) on an
//! NVIDIA GPU, with our kernels (`kernels/*.cu`) launched through cudarc. The CUDA libraries are
//! loaded at run time, so the same binary runs on machines without them.
//!
//! A training step is the CPU's sequence of operations, each a kernel, each in the file of the
//! same name on both sides (`lstm`, `head`, `matmul`, `adam`, `stream`): the input term of all
//! steps at once (a gather for layer 0, one product above it); the recurrence, all T steps of a
//! layer in one persistent launch (kernels/lstm.cu), or where that cannot run, per step one
//! product h_{t−1}·W_hhᵀ and the fused cell; the head over all loss positions at once, forward
//! and backward in one kernel; backwards, the recurrence again (persistent, or per step the fused
//! cell gradient and one product ∂L/∂a_t·W_hh), then each weight gradient as one split-K product
//! over all steps (layer 0's ∂L/∂W_ih as per-index sums of ∂L/∂a, its input being multi-hot); and
//! one Adam kernel over the flat parameter buffer. Every buffer lives on the device; one copy to
//! the host per step brings back the loss, which a queued step (`Backend::queue_train_step`) reads
//! one step late from page-locked memory (and with --clip one more, the gradient norm, waited for).
//!
//! Each kernel's launcher is a public method of [`Gpu`], next to its callers, so that
//! tests/kernels.rs can check every kernel alone against the CPU function it follows.

pub mod kernels;

mod adam;
mod head;
mod host;
mod launch;
mod lstm;
mod matmul;
mod persistent;
mod probe;
mod runtime;
mod stream;
mod timings;

use std::collections::HashMap;
use std::ops::Range;

use crate::backend::{Backend, Batch, EngineError};
use crate::cpu::{self, BatchStats};
use crate::model::{Config, DenseOffsets, LstmOffsets, Objective, Params};
use crate::optim::{Adam, AdamState};
use stream::Stream;

pub use head::HeadPlan;
pub use host::open_on_host;
pub use lstm::IndexRows;
pub use matmul::{column_sums_scratch, DeviceMatrix};
pub use persistent::{ChunkLayout, PersistentPlan};
pub use runtime::{open, Buffer, DevicePtr, Gpu, GpuResult, HostStaging, Landing};
pub use timings::{KernelTime, TIMINGS_VARIABLE};

/// Where each tensor starts in the flat parameter buffer (and in the gradient and Adam
/// buffers, which share its layout).
struct Layout {
    layers: Vec<LstmOffsets>,
    dense: DenseOffsets,
}

impl Layout {
    fn of(params: &Params<f32>) -> Layout {
        Layout {
            layers: (0..params.config().layers)
                .map(|k| params.lstm_offsets(k))
                .collect(),
            dense: params.dense_offsets(),
        }
    }
}

/// What one layer's forward pass keeps for its backward pass, [T·B][·] as on the CPU.
struct Tape {
    gates: Buffer<f32>,
    cell: Buffer<f32>,
    tanh_cell: Buffer<f32>,
    hidden: Buffer<f32>,
}

/// Every device buffer for one batch shape (B, T).
struct Workspace {
    batch: usize,
    steps: usize,
    tapes: Vec<Tape>,
    /// [T·B][K] input indices.
    inputs: Buffer<u32>,
    /// [T·B] target symbols.
    targets: Buffer<u32>,
    /// [T·B][V]: logits, then probabilities, then ∂L/∂logits.
    logits: Buffer<f32>,
    /// [T·B][H] each: ∂L/∂h of the layer being differentiated and of the layer below.
    d_hidden: Buffer<f32>,
    d_below: Buffer<f32>,
    /// [T·B][4H], [B][H]: ∂L/∂a, and ∂L/∂c carried back through time.
    d_gates: Buffer<f32>,
    d_cell: Buffer<f32>,
    /// [D+1] and [T·B·K]: the rows by input index (an [`IndexRows`]), for layer 0's ∂L/∂W_ih.
    index_offsets: Buffer<u32>,
    index_rows: Buffer<u32>,
    /// Scratch of the column sums (bias gradients).
    sums: Buffer<f32>,
    /// Scratch of the weight gradients' partial products (split-K) and of the head's partial
    /// dense gradients.
    partials: Buffer<f32>,
    /// Per loss position −log p(target), then per position 1 or 0 for whether the argmax is the
    /// target: [2·T·B].
    results: Buffer<f64>,
}

impl Workspace {
    fn new(gpu: &Gpu, config: &Config, batch: usize, steps: usize) -> GpuResult<Workspace> {
        let (h, v) = (config.hidden, config.vocab_size);
        let rows = batch * steps;
        let tape = || -> GpuResult<Tape> {
            Ok(Tape {
                gates: gpu.alloc(rows * 4 * h)?,
                cell: gpu.alloc(rows * h)?,
                tanh_cell: gpu.alloc(rows * h)?,
                hidden: gpu.alloc(rows * h)?,
            })
        };
        Ok(Workspace {
            batch,
            steps,
            tapes: (0..config.layers)
                .map(|_| tape())
                .collect::<GpuResult<_>>()?,
            inputs: gpu.alloc(rows * config.inputs_per_step)?,
            targets: gpu.alloc(rows)?,
            logits: gpu.alloc(rows * v)?,
            d_hidden: gpu.alloc(rows * h)?,
            d_below: gpu.alloc(rows * h)?,
            d_gates: gpu.alloc(rows * 4 * h)?,
            d_cell: gpu.alloc(batch * h)?,
            index_offsets: gpu.alloc(config.input_width + 1)?,
            index_rows: gpu.alloc(rows * config.inputs_per_step)?,
            sums: gpu.alloc(column_sums_scratch(rows, 4 * h))?,
            partials: gpu.alloc(
                gpu.weight_gradient_scratch(4 * h, h, rows)
                    .max(gpu.head_scratch(rows, h, v)?),
            )?,
            results: gpu.alloc(2 * rows)?,
        })
    }
}

/// The model on the device: parameters, gradients, and the operations over a workspace.
struct Model {
    gpu: Gpu,
    config: Config,
    layout: Layout,
    params: Buffer<f32>,
    grads: Buffer<f32>,
    /// The persistent recurrence's layout; None runs the recurrence a step per launch.
    persistent: Option<PersistentPlan>,
    /// Two zeroed u32: the persistent kernels' grid barrier.
    barrier: Buffer<u32>,
}

impl Model {
    fn param(&self, offset: usize) -> DevicePtr<f32> {
        self.params.at(offset)
    }

    fn grad(&self, offset: usize) -> DevicePtr<f32> {
        self.grads.at(offset)
    }

    /// Uploads [T][B] target symbol ids into `dst` after checking them.
    fn upload_symbols(&self, dst: &Buffer<u32>, symbols: &[u32]) -> GpuResult<()> {
        let v = self.config.vocab_size as u32;
        assert!(
            symbols.len() <= dst.len(),
            "more symbols than the buffer holds"
        );
        assert!(
            symbols.iter().all(|&s| s < v),
            "symbol id out of the vocabulary"
        );
        self.gpu.upload(dst.ptr(), symbols)
    }

    /// Uploads [..][K] input indices into `dst` after checking them (`cpu::check_input_indices`).
    fn upload_indices(&self, dst: &Buffer<u32>, inputs: &[u32]) -> GpuResult<()> {
        cpu::check_input_indices(inputs, &self.config);
        assert!(
            inputs.len() <= dst.len(),
            "more inputs than the buffer holds"
        );
        self.gpu.upload(dst.ptr(), inputs)
    }

    /// Uploads a training batch's [T][B][K] inputs, and their rows by index for layer 0's
    /// ∂L/∂W_ih.
    fn upload_inputs(&self, ws: &Workspace, inputs: &[u32]) -> GpuResult<()> {
        self.upload_indices(&ws.inputs, inputs)?;
        let (width, per_step) = (self.config.input_width, self.config.inputs_per_step);
        let by_index = IndexRows::of(inputs, per_step, width);
        self.gpu.upload(ws.index_offsets.ptr(), &by_index.offsets)?;
        self.gpu.upload(ws.index_rows.ptr(), &by_index.rows)
    }

    /// Every LSTM layer over the window: the tapes' h, c, tanh(c) and gate activations.
    fn forward_layers(&self, ws: &Workspace) -> GpuResult<()> {
        (0..self.config.layers).try_for_each(|k| self.lstm_forward(ws, k))
    }

    /// Queues forward and backward of one batch (inputs by `upload_inputs`, targets already
    /// uploaded), as `cpu::forward_backward`: per loss position −log p(target) and whether the
    /// argmax is the target in `ws.results`, and the gradient of the mean loss in `grads`.
    /// Returns the number of loss positions.
    fn forward_backward(
        &self,
        ws: &Workspace,
        objective: Objective,
        dropout: (u64, u64),
    ) -> GpuResult<usize> {
        let rows = cpu::loss_rows(objective, ws.batch, ws.steps);
        self.forward_layers(ws)?;
        self.head_forward_backward(ws, &rows, dropout)?;
        let (mut d_hidden, mut d_below) = (&ws.d_hidden, &ws.d_below);
        for k in (0..self.config.layers).rev() {
            self.lstm_backward(ws, k, d_hidden, d_below)?;
            // The layer below's ∂L/∂h is this layer's ∂L/∂x.
            std::mem::swap(&mut d_hidden, &mut d_below);
        }
        Ok(rows.len())
    }
}

/// A batch's statistics from its [n losses, n argmax hits] results.
fn batch_stats(results: &[f64]) -> BatchStats {
    let n = results.len() / 2;
    let (losses, correct) = results.split_at(n);
    BatchStats {
        loss_sum: losses.iter().sum(),
        correct: correct.iter().filter(|&&c| c != 0.0).count(),
        count: n,
    }
}

/// The results of a queued training step on their way to the host.
struct InFlight {
    staging: HostStaging<f64>,
    landing: Landing,
}

/// The CUDA engine behind [`Backend`].
pub struct CudaBackend {
    model: Model,
    /// Hyperparameters and step count; m and v live on the device.
    adam: Adam,
    adam_m: Buffer<f32>,
    adam_v: Buffer<f32>,
    /// Per-block sums of squares for the global gradient norm.
    norm_sums: Buffer<f64>,
    workspaces: HashMap<(usize, usize), Workspace>,
    stream: Option<Stream>,
    /// The last queued training step's results, not yet reported ([`Backend::queue_train_step`]).
    in_flight: Option<InFlight>,
    /// Host memory for results on their way, reused while no step is in flight.
    spare_staging: Option<HostStaging<f64>>,
    /// Why the recurrence runs a step per launch, where it does.
    per_step_reason: String,
}

impl CudaBackend {
    /// Uploads the parameters and the optimiser state to the opened device.
    pub fn new(gpu: Gpu, params: Params<f32>, mut adam: Adam) -> GpuResult<CudaBackend> {
        let config = *params.config();
        let n = config.num_params();
        assert!(
            adam.state.m.len() == n && adam.state.v.len() == n,
            "Adam state for another model"
        );
        let upload = |values: &[f32]| -> GpuResult<Buffer<f32>> {
            let buffer = gpu.alloc(n)?;
            gpu.upload(buffer.ptr(), values)?;
            Ok(buffer)
        };
        let (params_buffer, adam_m, adam_v) = (
            upload(params.as_slice())?,
            upload(&adam.state.m)?,
            upload(&adam.state.v)?,
        );
        adam.state.m = Vec::new();
        adam.state.v = Vec::new();
        let recurrence = gpu.recurrence(config.hidden)?;
        Ok(CudaBackend {
            norm_sums: gpu.alloc(adam::NORM_BLOCKS)?,
            model: Model {
                grads: gpu.alloc(n)?,
                params: params_buffer,
                layout: Layout::of(&params),
                persistent: recurrence.as_ref().ok().copied(),
                barrier: gpu.alloc(2)?,
                config,
                gpu,
            },
            adam,
            adam_m,
            adam_v,
            workspaces: HashMap::new(),
            stream: None,
            in_flight: None,
            spare_staging: None,
            per_step_reason: recurrence.err().unwrap_or_default(),
        })
    }

    /// The device's name and compute capability, and how the recurrence runs (its layout, or why
    /// not persistent).
    pub fn description(&self) -> String {
        let recurrence = match &self.model.persistent {
            Some(plan) => format!("persistent, {plan}"),
            None => format!("one launch per step: {}", self.per_step_reason),
        };
        let precision = match self.model.gpu.tf32 {
            true => "; weight gradients on TF32 tensor cores",
            false => "",
        };
        format!(
            "{}; recurrence: {recurrence}{precision}",
            self.model.gpu.description()
        )
    }

    /// Whether the recurrence runs persistent (all steps of a layer in one launch, when the
    /// device and H allow it; the default) or a step per launch. Both compute the same thing;
    /// tests and benches compare them.
    pub fn use_persistent_recurrence(&mut self, on: bool) -> GpuResult<()> {
        let recurrence = match on {
            true => self.model.gpu.recurrence(self.model.config.hidden)?,
            false => Err("asked for".to_string()),
        };
        self.model.persistent = recurrence.as_ref().ok().copied();
        self.per_step_reason = recurrence.err().unwrap_or_default();
        Ok(())
    }

    /// Runs the weight gradients on TF32 tensor cores ([`Gpu::use_tf32`]): `--tf32`.
    pub fn use_tf32(&mut self, on: bool) -> Result<(), String> {
        self.model.gpu.use_tf32(on)
    }

    /// Whether the recurrence runs persistent.
    pub fn persistent_recurrence(&self) -> bool {
        self.model.persistent.is_some()
    }

    /// The kernels launched since timings were turned on ([`Gpu::record_timings`]), with their
    /// calls and times; None where they are off.
    pub fn kernel_times(&self) -> GpuResult<Option<Vec<KernelTime>>> {
        self.model.gpu.kernel_times()
    }

    /// The gradient of the last training step, for the GPU-against-CPU tests.
    pub fn gradients(&self) -> GpuResult<Params<f32>> {
        self.download_params(&self.model.grads)
    }

    /// Layer `layer`'s h and c ([T][B][H]) from the last pass over a (batch, steps) shape, for
    /// the GPU-against-CPU tests.
    pub fn layer_states(
        &self,
        shape: (usize, usize),
        layer: usize,
    ) -> GpuResult<(Vec<f32>, Vec<f32>)> {
        let tape = &self.workspaces[&shape].tapes[layer];
        Ok((self.download(&tape.hidden)?, self.download(&tape.cell)?))
    }

    /// ∂L/∂logits ([loss positions][V]) of the last training step on a (batch, steps) shape.
    pub fn logit_grads(&self, shape: (usize, usize), objective: Objective) -> GpuResult<Vec<f32>> {
        let n = cpu::loss_rows(objective, shape.0, shape.1).len();
        let mut out = vec![0.0; n * self.model.config.vocab_size];
        let logits = self.workspaces[&shape].logits.ptr();
        self.model.gpu.download(logits, &mut out)?;
        Ok(out)
    }

    /// ∂L/∂a ([T·B][4H]) of layer 0, the last one the last training step on a (batch, steps)
    /// shape differentiated, for the GPU-against-CPU tests.
    pub fn gate_grads(&self, shape: (usize, usize)) -> GpuResult<Vec<f32>> {
        self.download(&self.workspaces[&shape].d_gates)
    }

    fn download(&self, buffer: &Buffer<f32>) -> GpuResult<Vec<f32>> {
        let mut out = vec![0.0; buffer.len()];
        self.model.gpu.download(buffer.ptr(), &mut out)?;
        Ok(out)
    }

    fn download_params(&self, buffer: &Buffer<f32>) -> GpuResult<Params<f32>> {
        let mut params = Params::zeros(self.model.config);
        self.model
            .gpu
            .download(buffer.ptr(), params.as_mut_slice())?;
        Ok(params)
    }

    /// Allocates the workspace for a batch shape on first use.
    fn ensure_workspace(&mut self, batch: usize, steps: usize) -> GpuResult<()> {
        assert!(batch > 0 && steps > 0, "empty batch shape");
        if !self.workspaces.contains_key(&(batch, steps)) {
            let model = &self.model;
            let ws = Workspace::new(&model.gpu, &model.config, batch, steps)?;
            self.workspaces.insert((batch, steps), ws);
        }
        Ok(())
    }
}

impl CudaBackend {
    /// Uploads a batch and queues its forward and backward pass; the number of loss positions.
    fn queue_forward_backward(
        &mut self,
        batch: &Batch<'_>,
        objective: Objective,
        dropout_seed: u64,
    ) -> GpuResult<usize> {
        let step = self.adam.state.step;
        let positions = batch.batch * batch.steps;
        cpu::check_input_indices(batch.inputs, &self.model.config);
        assert!(
            batch.inputs.len() == positions * self.model.config.inputs_per_step
                && batch.targets.len() == positions,
            "inputs are [T][B][K] and targets [T][B]"
        );
        self.ensure_workspace(batch.batch, batch.steps)?;
        let (model, ws) = (&self.model, &self.workspaces[&(batch.batch, batch.steps)]);
        model.upload_inputs(ws, batch.inputs)?;
        model.upload_symbols(&ws.targets, batch.targets)?;
        model.forward_backward(ws, objective, (dropout_seed, step))
    }

    /// The statistics of the step in flight, once its results have landed.
    fn land(&mut self) -> GpuResult<Option<BatchStats>> {
        let Some(InFlight { staging, landing }) = self.in_flight.take() else {
            return Ok(None);
        };
        let stats = batch_stats(landing.read(&staging)?);
        self.spare_staging = Some(staging);
        Ok(Some(stats))
    }
}

impl Backend for CudaBackend {
    fn train_step(
        &mut self,
        batch: &Batch<'_>,
        objective: Objective,
        dropout_seed: u64,
    ) -> GpuResult<BatchStats> {
        assert!(
            self.in_flight.is_none(),
            "finish_train_steps before train_step"
        );
        let n = self.queue_forward_backward(batch, objective, dropout_seed)?;
        let ws = &self.workspaces[&(batch.batch, batch.steps)];
        // Read back after the backward pass is queued, so the device works while the host waits.
        let mut results = vec![0.0f64; 2 * n];
        self.model.gpu.download(ws.results.ptr(), &mut results)?;
        let stats = batch_stats(&results);
        if stats.loss_sum.is_finite() {
            self.adam_update()?;
        }
        Ok(stats)
    }

    /// Queues the step and its Adam update, its results copied to page-locked memory without
    /// waiting, and returns the previous step's statistics: the host prepares and launches step
    /// n + 1 while the device runs step n. Adam cannot wait for the loss here, so a step with a
    /// non-finite loss updates the parameters (the trainer stops at it, keeping the last
    /// checkpoint); with --clip the gradient norm is still read back before the update.
    fn queue_train_step(
        &mut self,
        batch: &Batch<'_>,
        objective: Objective,
        dropout_seed: u64,
    ) -> GpuResult<Option<BatchStats>> {
        let n = self.queue_forward_backward(batch, objective, dropout_seed)?;
        let previous = self.land()?;
        let mut staging = match self.spare_staging.take() {
            Some(staging) if staging.len() >= 2 * n => staging,
            _ => self.model.gpu.staging(2 * n)?,
        };
        let ws = &self.workspaces[&(batch.batch, batch.steps)];
        let landing = self
            .model
            .gpu
            .download_later(ws.results.ptr(), 2 * n, &mut staging)?;
        self.in_flight = Some(InFlight { staging, landing });
        self.adam_update()?;
        Ok(previous)
    }

    fn finish_train_steps(&mut self) -> GpuResult<Option<BatchStats>> {
        self.land()
    }

    fn predict_last(&mut self, inputs: &[u32], batch: usize, out: &mut [f32]) -> GpuResult<()> {
        cpu::check_input_indices(inputs, &self.model.config);
        let per_step = self.model.config.inputs_per_step;
        let steps = inputs.len() / (batch * per_step);
        assert_eq!(
            steps * batch * per_step,
            inputs.len(),
            "inputs are [T][B][K]"
        );
        self.ensure_workspace(batch, steps)?;
        let (model, ws) = (&self.model, &self.workspaces[&(batch, steps)]);
        let (h, v) = (model.config.hidden, model.config.vocab_size);
        assert_eq!(out.len(), batch * v, "out is [B][V]");
        model.upload_indices(&ws.inputs, inputs)?;
        model.forward_layers(ws)?;
        let top = &ws.tapes[model.config.layers - 1];
        let last = top.hidden.at((steps - 1) * batch * h);
        model.dense_forward(last, batch, ws.logits.ptr())?;
        let logits = ws.logits.ptr();
        model.gpu.softmax(logits, batch, v)?;
        model.gpu.download(logits, out)
    }

    fn config(&self) -> Config {
        self.model.config
    }

    fn params(&self) -> GpuResult<Params<f32>> {
        self.download_params(&self.model.params)
    }

    fn stream_reset(&mut self, rows: usize) -> GpuResult<()> {
        self.stream = Some(Stream::new(&self.model.gpu, &self.model.config, rows)?);
        Ok(())
    }

    fn stream_zero_rows(&mut self, rows: &[usize]) -> GpuResult<()> {
        self.stream_zero(rows)
    }

    fn stream_copy_row(&mut self, from: usize, to: &[usize]) -> GpuResult<()> {
        self.stream_copy(from, to)
    }

    fn stream_step(&mut self, rows: Range<usize>, inputs: &[u32]) -> Result<(), EngineError> {
        self.stream_advance(rows, inputs)
    }

    fn stream_probs(&mut self, rows: &[usize], out: &mut [f32]) -> GpuResult<()> {
        self.stream_distribution(rows, out)
    }

    fn timings_table(&self) -> GpuResult<Option<String>> {
        self.model.gpu.timings_table()
    }

    fn adam_state(&self) -> GpuResult<AdamState> {
        Ok(AdamState {
            m: self.download(&self.adam_m)?,
            v: self.download(&self.adam_v)?,
            step: self.adam.state.step,
        })
    }
}
