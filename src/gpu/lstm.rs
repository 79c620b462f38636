//! The LSTM layers on the device (kernels/lstm.cu), as `cpu::lstm`'s: `input_term` (all
//! steps' W_ih·x + b at once), `lstm_forward` (all T steps of a layer: one persistent launch, or
//! per step a product and the fused cell), `lstm_step` (one step, for streaming) and
//! `lstm_backward`.

use super::kernels::Kernel;
use super::launch::{elementwise, launch};
use super::matmul::DeviceMatrix;
use super::persistent::PersistentPlan;
use super::runtime::{Buffer, DevicePtr, Gpu, GpuResult};
use super::{Model, Workspace};

/// A layer's tape buffers as the kernels take them.
type Ptr = DevicePtr<f32>;

/// The rows of a batch's [T·B][K] input indices grouped by index (a counting sort), a row once
/// per occurrence, in ascending (row, k) order within an index: what kernel
/// `input_term_backward` sums over, in `cpu::lstm::input_term_backward`'s order.
pub struct IndexRows {
    /// [D+1]: index d's rows are `rows[offsets[d]..offsets[d + 1]]`.
    pub offsets: Vec<u32>,
    /// [T·B·K]: row numbers.
    pub rows: Vec<u32>,
}

impl IndexRows {
    /// `indices` [rows][per_step], each below `width`.
    pub fn of(indices: &[u32], per_step: usize, width: usize) -> IndexRows {
        let mut offsets = vec![0u32; width + 1];
        for &d in indices {
            offsets[d as usize + 1] += 1;
        }
        for d in 0..width {
            offsets[d + 1] += offsets[d];
        }
        let mut next = offsets[..width].to_vec();
        let mut rows = vec![0u32; indices.len()];
        for (entry, &d) in indices.iter().enumerate() {
            let slot = &mut next[d as usize];
            rows[*slot as usize] = (entry / per_step) as u32;
            *slot += 1;
        }
        IndexRows { offsets, rows }
    }
}

impl Gpu {
    /// gates[r] = Σ_k W_ih[:, indices[r·K + k]] + b_ih + b_hh for `rows` rows of 4H, W_ih
    /// [4H][width] and K = `per_step`.
    #[allow(clippy::too_many_arguments)]
    pub fn input_term(
        &self,
        (weight_ih, bias_ih, bias_hh): (Ptr, Ptr, Ptr),
        indices: DevicePtr<u32>,
        gates: Ptr,
        rows: usize,
        gates_per_row: usize,
        (width, per_step): (usize, usize),
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::InputTerm,
            elementwise(Kernel::InputTerm, rows * gates_per_row),
            weight_ih,
            bias_ih,
            bias_hh,
            indices,
            gates,
            rows as i32,
            gates_per_row as i32,
            width as i32,
            per_step as i32,
        )
    }

    /// The LSTM step's pointwise part (`cell_prev` None is the zero state).
    pub fn lstm_cell_forward(
        &self,
        gates: Ptr,
        cell_prev: Option<Ptr>,
        (cell, tanh_cell, hidden): (Ptr, Ptr, Ptr),
        rows: usize,
        units: usize,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::LstmCellForward,
            elementwise(Kernel::LstmCellForward, rows * units),
            gates,
            cell_prev,
            cell,
            tanh_cell,
            hidden,
            rows as i32,
            units as i32,
        )
    }

    /// The LSTM step's pointwise part backwards (`cell_prev` None is the zero state).
    #[allow(clippy::too_many_arguments)]
    pub fn lstm_cell_backward(
        &self,
        (gates, cell_prev, tanh_cell): (Ptr, Option<Ptr>, Ptr),
        d_hidden: Ptr,
        d_cell: Ptr,
        d_gates: Ptr,
        rows: usize,
        units: usize,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::LstmCellBackward,
            elementwise(Kernel::LstmCellBackward, rows * units),
            gates,
            cell_prev,
            tanh_cell,
            d_hidden,
            d_cell,
            d_gates,
            rows as i32,
            units as i32,
        )
    }

    /// Layer 0's d_weight_ih [4H][width] = ∂L/∂W_ih: per input index, the sum of its rows of
    /// d_gates [rows][4H], with the rows of each index uploaded from an [`IndexRows`].
    pub fn input_term_backward(
        &self,
        d_gates: Ptr,
        (index_offsets, index_rows): (DevicePtr<u32>, DevicePtr<u32>),
        d_weight_ih: Ptr,
        gates_per_row: usize,
        width: usize,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::InputTermBackward,
            elementwise(Kernel::InputTermBackward, gates_per_row * width),
            d_gates,
            index_offsets,
            index_rows,
            d_weight_ih,
            gates_per_row as i32,
            width as i32,
        )
    }

    /// All T steps of a layer's forward recurrence in one launch (gates: the input terms in,
    /// the activations out). `barrier` is two zeroed u32.
    pub fn lstm_forward_persistent(
        &self,
        plan: &PersistentPlan,
        (gates, weight_hh, cell, tanh_cell, hidden): (Ptr, Ptr, Ptr, Ptr, Ptr),
        (steps, batch, units): (usize, usize, usize),
        barrier: &Buffer<u32>,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::LstmForwardPersistent,
            plan.forward.config(plan.blocks),
            gates,
            weight_hh,
            cell,
            tanh_cell,
            hidden,
            steps as i32,
            batch as i32,
            units as i32,
            plan.units_per_block as i32,
            plan.forward.rows_per_chunk as i32,
            plan.forward.k_split as i32,
            barrier.span(0, 2),
        )
    }

    /// All T steps of a layer's BPTT in one launch (d_hidden: ∂L/∂h from above in, the total
    /// out; d_cell zeroed on entry; d_gates out).
    pub fn lstm_backward_persistent(
        &self,
        plan: &PersistentPlan,
        (gates, cell, tanh_cell, weight_hh): (Ptr, Ptr, Ptr, Ptr),
        (d_hidden, d_cell, d_gates): (Ptr, Ptr, Ptr),
        (steps, batch, units): (usize, usize, usize),
        barrier: &Buffer<u32>,
    ) -> GpuResult<()> {
        launch!(
            self,
            Kernel::LstmBackwardPersistent,
            plan.backward.config(plan.blocks),
            gates,
            cell,
            tanh_cell,
            weight_hh,
            d_hidden,
            d_cell,
            d_gates,
            steps as i32,
            batch as i32,
            units as i32,
            plan.units_per_block as i32,
            plan.backward.rows_per_chunk as i32,
            plan.backward.k_split as i32,
            barrier.span(0, 2),
        )
    }
}

impl Model {
    /// gates [rows][4H] = W_ih·x + b_ih + b_hh for layer k: for layer 0 a sum of W_ih's columns
    /// by the [rows][K] input indices at `inputs`, above it a product with the layer below's h at
    /// `below`.
    pub(super) fn input_term(
        &self,
        k: usize,
        inputs: DevicePtr<u32>,
        below: Option<Ptr>,
        gates: Ptr,
        rows: usize,
    ) -> GpuResult<()> {
        let (gpu, layer, config) = (&self.gpu, self.layout.layers[k], &self.config);
        let (h, h4) = (config.hidden, 4 * config.hidden);
        let (bias_ih, bias_hh) = (self.param(layer.bias_ih), self.param(layer.bias_hh));
        match below {
            None => {
                let weights = (self.param(layer.weight_ih), bias_ih, bias_hh);
                let input_shape = (config.input_width, config.inputs_per_step);
                gpu.input_term(weights, inputs, gates, rows, h4, input_shape)
            }
            Some(below) => {
                gpu.broadcast_rows(gates, bias_ih, Some(bias_hh), rows, h4)?;
                let w_ih = DeviceMatrix::new(self.param(layer.weight_ih), h4, h);
                gpu.matmul(gates, true, DeviceMatrix::new(below, rows, h), w_ih.t())
            }
        }
    }

    /// Layer k over the whole window: its tape's h, c, tanh(c) and gate activations.
    pub(super) fn lstm_forward(&self, ws: &Workspace, k: usize) -> GpuResult<()> {
        let (gpu, b, t) = (&self.gpu, ws.batch, ws.steps);
        let (h, rows) = (self.config.hidden, b * t);
        let h4 = 4 * h;
        let tape = &ws.tapes[k];
        // a_t = W_ih·x_t + b_ih + b_hh for every t at once.
        let below = (k > 0).then(|| ws.tapes[k - 1].hidden.ptr());
        self.input_term(k, ws.inputs.ptr(), below, tape.gates.ptr(), rows)?;
        let w_hh = self.param(self.layout.layers[k].weight_hh);
        if let Some(plan) = &self.persistent {
            let buffers = (
                tape.gates.ptr(),
                w_hh,
                tape.cell.ptr(),
                tape.tanh_cell.ptr(),
                tape.hidden.ptr(),
            );
            return gpu.lstm_forward_persistent(plan, buffers, (t, b, h), &self.barrier);
        }
        let w_hh = DeviceMatrix::new(w_hh, h4, h);
        for step in 0..t {
            let gates = tape.gates.at(step * b * h4);
            // h_{−1} = c_{−1} = 0: step 0 has no recurrent term.
            let mut cell_prev = None;
            if step > 0 {
                let h_prev = DeviceMatrix::new(tape.hidden.at((step - 1) * b * h), b, h);
                gpu.matmul(gates, true, h_prev, w_hh.t())?;
                cell_prev = Some(tape.cell.at((step - 1) * b * h));
            }
            let here = step * b * h;
            let out = (
                tape.cell.at(here),
                tape.tanh_cell.at(here),
                tape.hidden.at(here),
            );
            gpu.lstm_cell_forward(gates, cell_prev, out, b, h)?;
        }
        Ok(())
    }

    /// One step of layer k for `rows` rows whose h and c (updated in place) are at `hidden` and
    /// `cell`, given the input term in `gates`; `tanh_cell` is scratch.
    pub(super) fn lstm_step(
        &self,
        k: usize,
        (gates, tanh_cell): (Ptr, Ptr),
        (hidden, cell): (Ptr, Ptr),
        rows: usize,
    ) -> GpuResult<()> {
        let (gpu, h) = (&self.gpu, self.config.hidden);
        let w_hh = DeviceMatrix::new(self.param(self.layout.layers[k].weight_hh), 4 * h, h);
        gpu.matmul(gates, true, DeviceMatrix::new(hidden, rows, h), w_hh.t())?;
        // In place: each thread reads its c_prev before writing c, and the product above has
        // finished reading h_prev (one stream).
        gpu.lstm_cell_forward(gates, Some(cell), (cell, tanh_cell, hidden), rows, h)
    }

    /// BPTT through layer k, as `cpu::lstm::lstm_backward`: `d_hidden` holds ∂L/∂h from above and
    /// gains the recurrent terms; layers above 0 write ∂L/∂x into `d_input`.
    pub(super) fn lstm_backward(
        &self,
        ws: &Workspace,
        k: usize,
        d_hidden: &Buffer<f32>,
        d_input: &Buffer<f32>,
    ) -> GpuResult<()> {
        let (gpu, b, t) = (&self.gpu, ws.batch, ws.steps);
        let (h, rows) = (self.config.hidden, b * t);
        let h4 = 4 * h;
        let (tape, layer) = (&ws.tapes[k], self.layout.layers[k]);
        let w_hh = DeviceMatrix::new(self.param(layer.weight_hh), h4, h);

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
                let cell_prev = (step > 0).then(|| tape.cell.at(here - b * h));
                let d_gates = ws.d_gates.at(step * b * h4);
                let forward = (
                    tape.gates.at(step * b * h4),
                    cell_prev,
                    tape.tanh_cell.at(here),
                );
                let d_cell = ws.d_cell.ptr();
                gpu.lstm_cell_backward(forward, d_hidden.at(here), d_cell, d_gates, b, h)?;
                if step > 0 {
                    // ∂L/∂h_{t−1} += ∂L/∂a_t · W_hh: [B×4H]·[4H×H]
                    let d_prev = d_hidden.at(here - b * h);
                    gpu.matmul(d_prev, true, DeviceMatrix::new(d_gates, b, h4), w_hh)?;
                }
            }
        }

        // ∂L/∂W_hh = Σ_{t≥1} ∂L/∂a_tᵀ · h_{t−1}, one product over steps 1..T.
        let recurrent = (t - 1) * b;
        let d_a_from_1 = DeviceMatrix::new(ws.d_gates.at(b * h4), recurrent, h4);
        let h_until_last = DeviceMatrix::new(tape.hidden.ptr(), recurrent, h);
        let d_weight_hh = self.grad(layer.weight_hh);
        gpu.weight_gradient(d_weight_hh, d_a_from_1, h_until_last, &ws.partials)?;
        // Both biases enter every pre-activation unscaled: their gradient is Σ ∂L/∂a.
        let d_bias_ih = self.grad(layer.bias_ih);
        gpu.column_sums(ws.d_gates.ptr(), rows, h4, &ws.sums, d_bias_ih)?;
        gpu.copy(self.grad(layer.bias_hh), d_bias_ih, h4)?;

        if k == 0 {
            // x is multi-hot: ∂L/∂W_ih[:, d] = Σ over every (row, k) with index d of ∂L/∂a.
            let index_rows = (ws.index_offsets.ptr(), ws.index_rows.ptr());
            let (d_weight_ih, width) = (self.grad(layer.weight_ih), self.config.input_width);
            gpu.input_term_backward(ws.d_gates.ptr(), index_rows, d_weight_ih, h4, width)
        } else {
            let d_a = DeviceMatrix::new(ws.d_gates.ptr(), rows, h4);
            let below = DeviceMatrix::new(ws.tapes[k - 1].hidden.ptr(), rows, h);
            gpu.weight_gradient(self.grad(layer.weight_ih), d_a, below, &ws.partials)?;
            // ∂L/∂x = ∂L/∂a · W_ih: [TB×4H]·[4H×H]
            let w_ih = DeviceMatrix::new(self.param(layer.weight_ih), h4, h);
            gpu.matmul(d_input.ptr(), false, d_a, w_ih)
        }
    }
}
