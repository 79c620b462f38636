//! The CUDA engine: the model of [`crate::cpu`] (the reference it is tested against) on an
//! NVIDIA GPU, with our kernels (`kernels/*.cu`) launched through cudarc. The CUDA libraries are
//! loaded at run time, so the same binary runs on machines without them.
//!
//! A training step is the CPU's sequence of operations, each a kernel: the input term of all
//! steps at once (a gather for layer 0, one product above it); the recurrence, all T steps of a
//! layer in one persistent launch (kernels/lstm.cu), or where that cannot run, per step one
//! product h_{t−1}·W_hhᵀ and the fused cell; the head over all loss positions at once; backwards,
//! the recurrence again (persistent, or per step the fused cell gradient and one product
//! ∂L/∂a_t·W_hh), then each weight gradient as one product over all steps; and one Adam kernel
//! over the flat parameter buffer. Every buffer lives on the device; one copy to the host per
//! step brings back the loss (and one more the gradient norm, with --clip).

mod device;
pub mod kernels;

use std::collections::HashMap;
use std::ops::Range;

use crate::backend::{Backend, Batch};
use crate::cpu::BatchStats;
use crate::model::{Config, Objective, Params};
use crate::optim::{Adam, AdamState};
use device::{column_sums_scratch, Buffer, DMat, GpuResult, PersistentPlan};
pub use device::{open, open_on_host, Gpu};

/// Where one LSTM layer's tensors start in the flat parameter buffer (and in the gradient and
/// Adam buffers, which share its layout).
#[derive(Clone, Copy)]
struct LayerOffsets {
    weight_ih: usize,
    weight_hh: usize,
    bias_ih: usize,
    bias_hh: usize,
}

struct Layout {
    layers: Vec<LayerOffsets>,
    dense_weight: usize,
    dense_bias: usize,
}

impl Layout {
    fn of(params: &Params<f32>) -> Layout {
        let start = |name: String| {
            params
                .tensor_range(&name)
                .unwrap_or_else(|| panic!("no tensor {name}"))
                .start
        };
        Layout {
            layers: (0..params.config().layers)
                .map(|k| LayerOffsets {
                    weight_ih: start(format!("lstm.weight_ih_l{k}")),
                    weight_hh: start(format!("lstm.weight_hh_l{k}")),
                    bias_ih: start(format!("lstm.bias_ih_l{k}")),
                    bias_hh: start(format!("lstm.bias_hh_l{k}")),
                })
                .collect(),
            dense_weight: start("dense.weight".to_string()),
            dense_bias: start("dense.bias".to_string()),
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
    tokens: Buffer<u32>,
    targets: Buffer<u32>,
    /// [T·B][H]: the dense layer's input (the top layer's h after dropout).
    dropped: Buffer<f32>,
    /// [T·B][V]: logits, then probabilities, then ∂L/∂logits.
    logits: Buffer<f32>,
    /// [T·B][H] each: ∂L/∂h of the layer being differentiated and of the layer below.
    d_hidden: Buffer<f32>,
    d_below: Buffer<f32>,
    /// [T·B][4H], [B][H]: ∂L/∂a, and ∂L/∂c carried back through time.
    d_gates: Buffer<f32>,
    d_cell: Buffer<f32>,
    /// [T·B][V]: the one-hot inputs, for layer 0's ∂L/∂W_ih.
    one_hot: Buffer<f32>,
    /// Scratch of the column sums (bias gradients).
    sums: Buffer<f32>,
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
            tokens: gpu.alloc(rows)?,
            targets: gpu.alloc(rows)?,
            dropped: gpu.alloc(rows * h)?,
            logits: gpu.alloc(rows * v)?,
            d_hidden: gpu.alloc(rows * h)?,
            d_below: gpu.alloc(rows * h)?,
            d_gates: gpu.alloc(rows * 4 * h)?,
            d_cell: gpu.alloc(batch * h)?,
            one_hot: gpu.alloc(rows * v)?,
            sums: gpu.alloc(column_sums_scratch(rows, 4 * h).max(column_sums_scratch(rows, v)))?,
            results: gpu.alloc(2 * rows)?,
        })
    }
}

/// The rows of a [T·B] buffer where the loss is taken (as `cpu::output_rows`).
fn loss_rows(objective: Objective, batch: usize, steps: usize) -> Range<usize> {
    match objective {
        Objective::All => 0..steps * batch,
        Objective::Last => (steps - 1) * batch..steps * batch,
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
    fn param(&self, offset: usize) -> u64 {
        self.params.at(offset)
    }

    fn grad(&self, offset: usize) -> u64 {
        self.grads.at(offset)
    }

    /// Uploads [T][B] symbol ids into `dst` after checking them.
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

    /// gates [rows][4H] = W_ih·x + b_ih + b_hh for layer k: for layer 0 a gather of W_ih's columns
    /// by the symbols at `tokens`, above it a product with the layer below's h at `below`.
    fn input_term(
        &self,
        k: usize,
        tokens: u64,
        below: Option<u64>,
        gates: u64,
        rows: usize,
    ) -> GpuResult<()> {
        let (gpu, layer) = (&self.gpu, self.layout.layers[k]);
        let (h, v, h4) = (
            self.config.hidden,
            self.config.vocab_size,
            4 * self.config.hidden,
        );
        let bias = (self.param(layer.bias_ih), self.param(layer.bias_hh));
        match below {
            None => {
                let w_ih = self.param(layer.weight_ih);
                gpu.embed_input(w_ih, bias.0, bias.1, tokens, gates, rows, h4, v)
            }
            Some(below) => {
                gpu.broadcast_rows(gates, bias.0, bias.1, rows, h4)?;
                let w_ih = DMat::new(self.param(layer.weight_ih), h4, h);
                gpu.gemm(gates, true, DMat::new(below, rows, h), w_ih.t())
            }
        }
    }

    /// Every LSTM layer over the window: the tapes' h, c, tanh(c) and gate activations.
    fn forward_layers(&self, ws: &Workspace) -> GpuResult<()> {
        let (gpu, b, t) = (&self.gpu, ws.batch, ws.steps);
        let (h, rows) = (self.config.hidden, b * t);
        let h4 = 4 * h;
        for (k, layer) in self.layout.layers.iter().enumerate() {
            let tape = &ws.tapes[k];
            // a_t = W_ih·x_t + b_ih + b_hh for every t at once.
            let below = (k > 0).then(|| ws.tapes[k - 1].hidden.ptr());
            self.input_term(k, ws.tokens.ptr(), below, tape.gates.ptr(), rows)?;
            let w_hh = self.param(layer.weight_hh);
            if let Some(plan) = &self.persistent {
                let buffers = (
                    tape.gates.ptr(),
                    w_hh,
                    tape.cell.ptr(),
                    tape.tanh_cell.ptr(),
                    tape.hidden.ptr(),
                );
                gpu.lstm_forward_persistent(plan, buffers, (t, b, h), &self.barrier)?;
                continue;
            }
            let w_hh = DMat::new(w_hh, h4, h);
            for step in 0..t {
                let gates = tape.gates.at(step * b * h4);
                // h_{−1} = c_{−1} = 0: step 0 has no recurrent term (and 0 is the null pointer).
                let mut cell_prev = 0;
                if step > 0 {
                    let h_prev = DMat::new(tape.hidden.at((step - 1) * b * h), b, h);
                    gpu.gemm(gates, true, h_prev, w_hh.t())?;
                    cell_prev = tape.cell.at((step - 1) * b * h);
                }
                let here = step * b * h;
                gpu.lstm_cell_forward(
                    gates,
                    cell_prev,
                    tape.cell.at(here),
                    tape.tanh_cell.at(here),
                    tape.hidden.at(here),
                    b,
                    h,
                )?;
            }
        }
        Ok(())
    }

    /// logits [n][V] = x [n][H] · W_denseᵀ + b_dense.
    fn dense_forward(&self, x: u64, n: usize, logits: u64) -> GpuResult<()> {
        let (h, v) = (self.config.hidden, self.config.vocab_size);
        self.gpu
            .broadcast_rows(logits, self.param(self.layout.dense_bias), 0, n, v)?;
        let weight = DMat::new(self.param(self.layout.dense_weight), v, h);
        self.gpu.gemm(logits, true, DMat::new(x, n, h), weight.t())
    }

    /// Forward and backward of one batch (inputs and targets already uploaded): the loss, and
    /// the gradient of its mean over the loss positions in `grads`.
    fn forward_backward(
        &self,
        ws: &Workspace,
        objective: Objective,
        (dropout_seed, step): (u64, u64),
    ) -> GpuResult<BatchStats> {
        let (gpu, b, t) = (&self.gpu, ws.batch, ws.steps);
        let (h, v, p) = (
            self.config.hidden,
            self.config.vocab_size,
            self.config.dropout,
        );
        let rows = loss_rows(objective, b, t);
        let n = rows.len();

        self.forward_layers(ws)?;
        let top = &ws.tapes[self.config.layers - 1];
        // p = 0 draws a threshold of 0 and a scale of 1: every value kept, unchanged.
        gpu.dropout(
            top.hidden.at(rows.start * h),
            ws.dropped.ptr(),
            n * h,
            dropout_seed,
            step,
            p,
        )?;
        self.dense_forward(ws.dropped.ptr(), n, ws.logits.ptr())?;
        let inv_count = (1.0 / n as f64) as f32;
        gpu.softmax_cross_entropy(
            ws.logits.ptr(),
            ws.targets.at(rows.start),
            n,
            v,
            inv_count,
            ws.results.ptr(),
        )?;
        // The head backwards: ws.logits now holds ∂L/∂logits.
        let d_logits = DMat::new(ws.logits.ptr(), n, v);
        let dense_weight = DMat::new(self.param(self.layout.dense_weight), v, h);
        gpu.column_sums(
            ws.logits.ptr(),
            n,
            v,
            &ws.sums,
            self.grad(self.layout.dense_bias),
        )?;
        let dropped = DMat::new(ws.dropped.ptr(), n, h);
        gpu.gemm(
            self.grad(self.layout.dense_weight),
            false,
            d_logits.t(),
            dropped,
        )?;
        // Positions without loss get no gradient from the dense layer.
        gpu.zero(ws.d_hidden.ptr(), rows.start * h)?;
        let d_top = ws.d_hidden.at(rows.start * h);
        gpu.gemm(d_top, false, d_logits, dense_weight)?;
        if p > 0.0 {
            gpu.dropout(d_top, d_top, n * h, dropout_seed, step, p)?;
        }
        let (mut d_hidden, mut d_below) = (&ws.d_hidden, &ws.d_below);
        for k in (0..self.config.layers).rev() {
            self.layer_backward(ws, k, d_hidden, d_below)?;
            // The layer below's ∂L/∂h is this layer's ∂L/∂x.
            std::mem::swap(&mut d_hidden, &mut d_below);
        }
        // Read back after the backward pass is queued, so the device works while the host waits.
        let mut results = vec![0.0f64; 2 * n];
        gpu.download(ws.results.ptr(), &mut results)?;
        let (losses, correct) = results.split_at(n);
        Ok(BatchStats {
            loss_sum: losses.iter().sum(),
            correct: correct.iter().filter(|&&c| c != 0.0).count(),
            count: n,
        })
    }

    /// BPTT through layer k, as `cpu::lstm::backward`: `d_hidden` holds ∂L/∂h from above and
    /// gains the recurrent terms; layers above 0 write ∂L/∂x into `d_input`.
    fn layer_backward(
        &self,
        ws: &Workspace,
        k: usize,
        d_hidden: &Buffer<f32>,
        d_input: &Buffer<f32>,
    ) -> GpuResult<()> {
        let (gpu, b, t) = (&self.gpu, ws.batch, ws.steps);
        let (h, v, rows) = (self.config.hidden, self.config.vocab_size, b * t);
        let h4 = 4 * h;
        let (layer, tape) = (self.layout.layers[k], &ws.tapes[k]);
        let w_hh = DMat::new(self.param(layer.weight_hh), h4, h);

        // Nothing after the window depends on c_{T−1}.
        gpu.zero(ws.d_cell.ptr(), b * h)?;
        if let Some(plan) = &self.persistent {
            let tape_buffers = (
                tape.gates.ptr(),
                tape.cell.ptr(),
                tape.tanh_cell.ptr(),
                w_hh.ptr,
            );
            let grads = (d_hidden.ptr(), ws.d_cell.ptr(), ws.d_gates.ptr());
            let shape = (t, b, h);
            gpu.lstm_backward_persistent(plan, tape_buffers, grads, shape, &self.barrier)?;
        } else {
            for step in (0..t).rev() {
                let here = step * b * h;
                let cell_prev = if step == 0 {
                    0
                } else {
                    tape.cell.at(here - b * h)
                };
                let d_gates = ws.d_gates.at(step * b * h4);
                gpu.lstm_cell_backward(
                    tape.gates.at(step * b * h4),
                    cell_prev,
                    tape.tanh_cell.at(here),
                    d_hidden.at(here),
                    ws.d_cell.ptr(),
                    d_gates,
                    b,
                    h,
                )?;
                if step > 0 {
                    // ∂L/∂h_{t−1} += ∂L/∂a_t · W_hh: [B×4H]·[4H×H]
                    let d_prev = d_hidden.at(here - b * h);
                    gpu.gemm(d_prev, true, DMat::new(d_gates, b, h4), w_hh)?;
                }
            }
        }

        // ∂L/∂W_hh = Σ_{t≥1} ∂L/∂a_tᵀ · h_{t−1}, one product over steps 1..T.
        let recurrent = (t - 1) * b;
        let d_a_from_1 = DMat::new(ws.d_gates.at(b * h4), recurrent, h4);
        let h_until_last = DMat::new(tape.hidden.ptr(), recurrent, h);
        gpu.gemm(
            self.grad(layer.weight_hh),
            false,
            d_a_from_1.t(),
            h_until_last,
        )?;
        // Both biases enter every pre-activation unscaled: their gradient is Σ ∂L/∂a.
        gpu.column_sums(
            ws.d_gates.ptr(),
            rows,
            h4,
            &ws.sums,
            self.grad(layer.bias_ih),
        )?;
        gpu.copy(self.grad(layer.bias_hh), self.grad(layer.bias_ih), h4)?;

        let d_a = DMat::new(ws.d_gates.ptr(), rows, h4);
        if k == 0 {
            // x is one-hot: ∂L/∂W_ih = ∂L/∂aᵀ · onehot, [4H×TB]·[TB×V].
            gpu.one_hot(ws.tokens.ptr(), ws.one_hot.ptr(), rows, v)?;
            let one_hot = DMat::new(ws.one_hot.ptr(), rows, v);
            gpu.gemm(self.grad(layer.weight_ih), false, d_a.t(), one_hot)
        } else {
            let below = DMat::new(ws.tapes[k - 1].hidden.ptr(), rows, h);
            gpu.gemm(self.grad(layer.weight_ih), false, d_a.t(), below)?;
            // ∂L/∂x = ∂L/∂a · W_ih: [TB×4H]·[4H×H]
            let w_ih = DMat::new(self.param(layer.weight_ih), h4, h);
            gpu.gemm(d_input.ptr(), false, d_a, w_ih)
        }
    }
}

/// Streaming inference for generation: `rows` independent LSTM states on the device.
struct Stream {
    rows: usize,
    /// Per layer, [rows][H]: h and c after the last step.
    hidden: Vec<Buffer<f32>>,
    cell: Vec<Buffer<f32>>,
    /// [rows][4H], [rows][H]: one step's gates and tanh(c).
    gates: Buffer<f32>,
    tanh_cell: Buffer<f32>,
    tokens: Buffer<u32>,
    /// [rows][H]: the top h of the rows whose distribution is asked for, gathered.
    selected: Buffer<f32>,
    /// [rows][V].
    logits: Buffer<f32>,
}

/// Blocks of the global-norm reduction (each sums a grid-strided share of the gradient).
const NORM_BLOCKS: usize = 256;

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
        Ok(CudaBackend {
            norm_sums: gpu.alloc(NORM_BLOCKS)?,
            model: Model {
                grads: gpu.alloc(n)?,
                params: params_buffer,
                layout: Layout::of(&params),
                persistent: gpu.persistent_plan(config.hidden)?,
                barrier: gpu.alloc(2)?,
                config,
                gpu,
            },
            adam,
            adam_m,
            adam_v,
            workspaces: HashMap::new(),
            stream: None,
        })
    }

    /// The device's name and compute capability, and how the recurrence runs.
    pub fn description(&self) -> String {
        let recurrence = match self.persistent_recurrence() {
            true => "persistent",
            false => "one launch per step",
        };
        format!("{}; recurrence: {recurrence}", self.model.gpu.description())
    }

    /// Whether the recurrence runs persistent (all steps of a layer in one launch, when the
    /// device and H allow it; the default) or a step per launch. Both compute the same thing;
    /// tests and benches compare them.
    pub fn use_persistent_recurrence(&mut self, on: bool) -> GpuResult<()> {
        self.model.persistent = match on {
            true => self.model.gpu.persistent_plan(self.model.config.hidden)?,
            false => None,
        };
        Ok(())
    }

    /// Whether the recurrence runs persistent.
    pub fn persistent_recurrence(&self) -> bool {
        self.model.persistent.is_some()
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
        let n = loss_rows(objective, shape.0, shape.1).len();
        let mut out = vec![0.0; n * self.model.config.vocab_size];
        let logits = self.workspaces[&shape].logits.ptr();
        self.model.gpu.download(logits, &mut out)?;
        Ok(out)
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

    fn adam_step(&mut self) -> GpuResult<()> {
        let (gpu, n) = (&self.model.gpu, self.model.config.num_params());
        let grads = self.model.grads.ptr();
        let scale = match self.adam.clip {
            Some(_) => {
                let norm = gpu.sum_squares(grads, n, &self.norm_sums)?.sqrt() as f32;
                self.adam.clip_scale(norm)
            }
            None => 1.0,
        };
        self.adam.state.step += 1;
        let lr_t = self.adam.step_size(self.adam.state.step);
        let adam = &self.adam;
        gpu.adam_update(
            self.model.params.ptr(),
            grads,
            self.adam_m.ptr(),
            self.adam_v.ptr(),
            n,
            scale,
            lr_t,
            (1.0 - adam.beta1, 1.0 - adam.beta2, adam.epsilon),
        )
    }

    fn stream(&self) -> &Stream {
        self.stream.as_ref().expect("stream_reset first")
    }

    /// The address of row `row` of a [rows][H] stream buffer, checked.
    fn state_row(&self, buffer: &Buffer<f32>, row: usize) -> u64 {
        let h = self.model.config.hidden;
        buffer.span(row * h, h)
    }

    /// Applies `op(buffer)` to every layer's h and c.
    fn for_state(&self, op: impl Fn(&Buffer<f32>) -> GpuResult<()>) -> GpuResult<()> {
        let stream = self.stream();
        stream.hidden.iter().chain(&stream.cell).try_for_each(op)
    }
}

impl Backend for CudaBackend {
    fn train_step(
        &mut self,
        batch: &Batch<'_>,
        objective: Objective,
        dropout_seed: u64,
    ) -> GpuResult<BatchStats> {
        let step = self.adam.state.step;
        let positions = batch.batch * batch.steps;
        assert!(
            batch.inputs.len() == positions && batch.targets.len() == positions,
            "inputs and targets are [T][B]"
        );
        self.ensure_workspace(batch.batch, batch.steps)?;
        let (model, ws) = (&self.model, &self.workspaces[&(batch.batch, batch.steps)]);
        model.upload_symbols(&ws.tokens, batch.inputs)?;
        model.upload_symbols(&ws.targets, batch.targets)?;
        let stats = model.forward_backward(ws, objective, (dropout_seed, step))?;
        if stats.loss_sum.is_finite() {
            self.adam_step()?;
        }
        Ok(stats)
    }

    fn predict_last(&mut self, inputs: &[u32], batch: usize, out: &mut [f32]) -> GpuResult<()> {
        let steps = inputs.len() / batch;
        assert_eq!(steps * batch, inputs.len(), "inputs are [T][B]");
        self.ensure_workspace(batch, steps)?;
        let (model, ws) = (&self.model, &self.workspaces[&(batch, steps)]);
        let (h, v) = (model.config.hidden, model.config.vocab_size);
        assert_eq!(out.len(), batch * v, "out is [B][V]");
        model.upload_symbols(&ws.tokens, inputs)?;
        model.forward_layers(ws)?;
        let top = &ws.tapes[model.config.layers - 1];
        let last = top.hidden.at((steps - 1) * batch * h);
        model.dense_forward(last, batch, ws.logits.ptr())?;
        model
            .gpu
            .softmax_cross_entropy(ws.logits.ptr(), 0, batch, v, 0.0, 0)?;
        model.gpu.download(ws.logits.ptr(), out)
    }

    fn config(&self) -> Config {
        self.model.config
    }

    fn params(&self) -> GpuResult<Params<f32>> {
        self.download_params(&self.model.params)
    }

    fn stream_reset(&mut self, rows: usize) -> GpuResult<()> {
        let gpu = &self.model.gpu;
        let (h, v, layers) = (
            self.model.config.hidden,
            self.model.config.vocab_size,
            self.model.config.layers,
        );
        let per_layer = || {
            (0..layers)
                .map(|_| gpu.alloc(rows * h))
                .collect::<GpuResult<Vec<_>>>()
        };
        self.stream = Some(Stream {
            rows,
            hidden: per_layer()?,
            cell: per_layer()?,
            gates: gpu.alloc(rows * 4 * h)?,
            tanh_cell: gpu.alloc(rows * h)?,
            tokens: gpu.alloc(rows)?,
            selected: gpu.alloc(rows * h)?,
            logits: gpu.alloc(rows * v)?,
        });
        Ok(())
    }

    fn stream_zero_rows(&mut self, rows: &[usize]) -> GpuResult<()> {
        let (gpu, h) = (&self.model.gpu, self.model.config.hidden);
        for &row in rows {
            self.for_state(|buffer| gpu.zero(self.state_row(buffer, row), h))?;
        }
        Ok(())
    }

    fn stream_copy_row(&mut self, from: usize, to: &[usize]) -> GpuResult<()> {
        let (gpu, h) = (&self.model.gpu, self.model.config.hidden);
        for &row in to.iter().filter(|&&row| row != from) {
            self.for_state(|buffer| {
                gpu.copy(self.state_row(buffer, row), self.state_row(buffer, from), h)
            })?;
        }
        Ok(())
    }

    fn stream_step(&mut self, rows: Range<usize>, inputs: &[u32]) -> GpuResult<()> {
        let (model, stream) = (&self.model, self.stream());
        let (gpu, h) = (&model.gpu, model.config.hidden);
        let (h4, n) = (4 * h, rows.len());
        assert!(rows.end <= stream.rows, "stream rows out of range");
        assert_eq!(inputs.len(), n, "one input symbol per stream");
        model.upload_symbols(&stream.tokens, inputs)?;
        let gates = stream.gates.ptr();
        for (k, layer) in model.layout.layers.iter().enumerate() {
            let below = (k > 0).then(|| stream.hidden[k - 1].at(rows.start * h));
            model.input_term(k, stream.tokens.ptr(), below, gates, n)?;
            let (hidden, cell) = (
                stream.hidden[k].at(rows.start * h),
                stream.cell[k].at(rows.start * h),
            );
            let w_hh = DMat::new(model.param(layer.weight_hh), h4, h);
            gpu.gemm(gates, true, DMat::new(hidden, n, h), w_hh.t())?;
            // In place: each thread reads its c_prev before writing c, and the product above has
            // finished reading h_prev (one stream).
            let tanh_cell = stream.tanh_cell.ptr();
            gpu.lstm_cell_forward(gates, cell, cell, tanh_cell, hidden, n, h)?;
        }
        Ok(())
    }

    fn stream_probs(&mut self, rows: &[usize], out: &mut [f32]) -> GpuResult<()> {
        let (model, stream) = (&self.model, self.stream());
        let (gpu, h, v) = (&model.gpu, model.config.hidden, model.config.vocab_size);
        assert_eq!(out.len(), rows.len() * v, "out is [rows][V]");
        let top = &stream.hidden[model.config.layers - 1];
        for (i, &row) in rows.iter().enumerate() {
            gpu.copy(
                self.state_row(&stream.selected, i),
                self.state_row(top, row),
                h,
            )?;
        }
        model.dense_forward(stream.selected.ptr(), rows.len(), stream.logits.ptr())?;
        gpu.softmax_cross_entropy(stream.logits.ptr(), 0, rows.len(), v, 0.0, 0)?;
        gpu.download(stream.logits.ptr(), out)
    }

    fn adam_state(&self) -> GpuResult<AdamState> {
        Ok(AdamState {
            m: self.download(&self.adam_m)?,
            v: self.download(&self.adam_v)?,
            step: self.adam.state.step,
        })
    }
}
