//! One LSTM layer over a whole window, batch and time at once: forward (recording what backward
//! needs) and backpropagation through time.
//!
//! Equations (PyTorch's, gate order i, f, g, o), for step t and batch row b:
//!   a_t = W_ih·x_t + b_ih + W_hh·h_{t−1} + b_hh          (pre-activations, 4H)
//!   i, f, o = σ(a_i, a_f, a_o);  g = tanh(a_g)
//!   c_t = f⊙c_{t−1} + i⊙g;       h_t = o⊙tanh(c_t)        (h_{−1} = c_{−1} = 0)
//! All buffers are time-major: row t·B + b of a [T·B][·] buffer is step t of batch row b.

use rayon::prelude::*;

use super::aligned::LineAligned;
use super::isa::Isa;
use super::matmul::{
    broadcast_rows, column_sums, matmul, matmul_on_this_thread, matrix, matrix_mut,
};
use super::recurrence::{self, f32s, f32s_mut};
use super::weight_gradient::{weight_gradient, weight_gradient_summing, RowSums};
use crate::model::{Float, LstmLayer, LstmLayerMut};

/// The sizes of one batch of windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// T, the window length.
    pub steps: usize,
    /// B, windows per batch.
    pub batch: usize,
    /// H, the LSTM width.
    pub hidden: usize,
    /// V, the number of symbols.
    pub vocab: usize,
    /// D, layer 0's input columns.
    pub input_width: usize,
    /// K, layer 0's input indices per step.
    pub inputs_per_step: usize,
}

/// What a layer's forward pass records for its backward pass.
pub struct LayerTape<F> {
    /// [T][B][4H]: the pre-activations a_t during the forward pass, the activations i, f, g, o after.
    pub gates: LineAligned<F>,
    /// [T][B][H]: c_t.
    pub cell: LineAligned<F>,
    /// [T][B][H]: tanh(c_t), kept so that backward evaluates no transcendental function.
    pub tanh_cell: LineAligned<F>,
    /// [T][B][H]: h_t, the layer's output.
    pub hidden: LineAligned<F>,
    /// [B][H] zeros: c_{−1}, the state before the first step.
    pub zero_state: LineAligned<F>,
}

impl<F: Float> LayerTape<F> {
    pub fn new(dims: Dims) -> Self {
        let rows = dims.steps * dims.batch;
        LayerTape {
            gates: LineAligned::filled(rows * 4 * dims.hidden, F::ZERO),
            cell: LineAligned::filled(rows * dims.hidden, F::ZERO),
            tanh_cell: LineAligned::filled(rows * dims.hidden, F::ZERO),
            hidden: LineAligned::filled(rows * dims.hidden, F::ZERO),
            zero_state: LineAligned::filled(dims.batch * dims.hidden, F::ZERO),
        }
    }
}

/// A layer's input x_t: input indices (layer 0, multi-hot over D) or the layer below's h_t.
#[derive(Clone, Copy)]
pub enum LayerInput<'a, F> {
    /// [T][B][K] indices below D; x_t is the sum of their one-hots.
    Indices(&'a [u32]),
    /// [T][B][H].
    Hidden(&'a [F]),
}

/// Writes the input and bias terms of the pre-activations, for all steps at once:
/// gates[t,b] = W_ih·x[t,b] + b_ih + b_hh. The recurrent term is added step by step later.
/// `table` [D][4H] is scratch for layer 0 (see [`input_table`]).
pub fn input_term<F: Float>(
    layer: LstmLayer<'_, F>,
    input: LayerInput<'_, F>,
    dims: Dims,
    table: &mut [F],
    gates: &mut [F],
) {
    let h4 = 4 * dims.hidden;
    match input {
        LayerInput::Indices(indices) => {
            input_table(layer, dims.input_width, table);
            gather_input_term(layer, table, indices, dims.inputs_per_step, gates);
        }
        LayerInput::Hidden(below) => {
            broadcast_rows(gates, layer.bias_ih, Some(layer.bias_hh));
            // [TB×4H] += [TB×H]·[H×4H]
            let rows = dims.steps * dims.batch;
            let w_ih = matrix(layer.weight_ih, h4, dims.hidden);
            let x = matrix(below, rows, dims.hidden);
            matmul(matrix_mut(gates, rows, h4), true, x, w_ih.t());
        }
    }
}

/// W_ih·onehot(d) is column d of W_ih. Transposes W_ih [4H][D] into rows table[d] = W_ih[:, d],
/// [D][4H], so that each step's input term is a sum of contiguous rows.
pub fn input_table<F: Float>(layer: LstmLayer<'_, F>, width: usize, table: &mut [F]) {
    let h4 = layer.bias_ih.len();
    for (d, table_row) in table.chunks_exact_mut(h4).enumerate() {
        for (j, entry) in table_row.iter_mut().enumerate() {
            *entry = layer.weight_ih[j * width + d];
        }
    }
}

/// The input and bias terms of a multi-hot input: for each row r of `gates` [rows][4H], with its
/// `per_step` indices at `indices[r·K..(r+1)·K]`,
///   gates[r] = ((table[idx_0] + … + table[idx_{K−1}]) + b_ih) + b_hh,
/// summed in that order (for K = 1 exactly the one-hot model's W_ih[:, s] + b_ih + b_hh). An index
/// given twice adds its row twice. A row with the same indices as the row before copies its sum:
/// generation's staggered windows all read the same symbol and features at each step. The rows
/// are independent: a training batch's are split across the threads in contiguous blocks.
pub fn gather_input_term<F: Float>(
    layer: LstmLayer<'_, F>,
    table: &[F],
    indices: &[u32],
    per_step: usize,
    gates: &mut [F],
) {
    let h4 = layer.bias_ih.len();
    let rows = indices.len() / per_step;
    let block = rows
        .div_ceil(rayon::current_num_threads())
        .max(GATHER_ROWS_PER_THREAD);
    (gates[..rows * h4].par_chunks_mut(block * h4))
        .zip(indices.par_chunks(block * per_step))
        .for_each(|(gates, indices)| gather_rows(layer, table, indices, per_step, gates));
}

/// Fewer rows than this per thread stay on one: a streaming step's rows are mostly copies.
const GATHER_ROWS_PER_THREAD: usize = 256;

/// `gather_input_term` on one thread.
fn gather_rows<F: Float>(
    layer: LstmLayer<'_, F>,
    table: &[F],
    indices: &[u32],
    per_step: usize,
    gates: &mut [F],
) {
    let h4 = layer.bias_ih.len();
    let row_of = |index: u32| &table[index as usize * h4..(index as usize + 1) * h4];
    let mut previous: Option<&[u32]> = None;
    for (r, step) in indices.chunks_exact(per_step).enumerate() {
        let (done, rest) = gates.split_at_mut(r * h4);
        let gate_row = &mut rest[..h4];
        if previous == Some(step) {
            gate_row.copy_from_slice(&done[(r - 1) * h4..]);
            continue;
        }
        previous = Some(step);
        let biases = layer.bias_ih.iter().zip(layer.bias_hh);
        if let [index] = step {
            // One index (the one-hot model): the same sums, in one pass over the row.
            for ((g, &w), (&b_ih, &b_hh)) in gate_row.iter_mut().zip(row_of(*index)).zip(biases) {
                *g = w + b_ih + b_hh;
            }
            continue;
        }
        gate_row.copy_from_slice(row_of(step[0]));
        for &index in &step[1..] {
            for (g, &w) in gate_row.iter_mut().zip(row_of(index)) {
                *g += w;
            }
        }
        for (g, (&b_ih, &b_hh)) in gate_row.iter_mut().zip(biases) {
            *g = *g + b_ih + b_hh;
        }
    }
}

/// Batch rows per thread. The rows of a step are independent, so each thread runs the recurrent
/// product and the pointwise work for its own block of rows: one join per step instead of one
/// inside every product plus one for the pointwise pass.
fn rows_per_block(batch: usize) -> usize {
    batch.div_ceil(rayon::current_num_threads())
}

/// Runs the recurrence over the T steps. On entry `tape.gates` holds the input terms; on exit
/// it holds the gate activations, and `cell`, `tanh_cell`, `hidden` are filled.
pub fn lstm_forward<F: Float>(weight_hh: &[F], dims: Dims, tape: &mut LayerTape<F>) {
    let bh = dims.batch * dims.hidden;
    for t in 0..dims.steps {
        let (hidden_before, hidden_from_t) = tape.hidden.split_at_mut(t * bh);
        let (cells_before, cells_from_t) = tape.cell.split_at_mut(t * bh);
        // h_{−1} = c_{−1} = 0: step 0 has no recurrent term.
        let (h_prev, c_prev) = match t {
            0 => (None, &tape.zero_state[..]),
            _ => (
                Some(&hidden_before[(t - 1) * bh..t * bh]),
                &cells_before[(t - 1) * bh..],
            ),
        };
        let next = StepOutput {
            gates: &mut tape.gates[t * 4 * bh..(t + 1) * 4 * bh],
            cell: &mut cells_from_t[..bh],
            tanh_cell: &mut tape.tanh_cell[t * bh..(t + 1) * bh],
            hidden: &mut hidden_from_t[..bh],
        };
        lstm_step(weight_hh, dims.hidden, h_prev, &c_prev[..bh], next);
    }
}

/// What one step writes for its B rows: gates [B][4H] (holding the input terms on
/// entry, the activations on exit), c, tanh(c) and h [B][H].
pub struct StepOutput<'a, F> {
    pub gates: &'a mut [F],
    pub cell: &'a mut [F],
    pub tanh_cell: &'a mut [F],
    pub hidden: &'a mut [F],
}

/// One step for every row: a += W_hh·h_prev (none when `h_prev` is the zero state), then the
/// gates and the cell update. Each thread takes its own block of rows.
pub fn lstm_step<F: Float>(
    weight_hh: &[F],
    h: usize,
    h_prev: Option<&[F]>,
    c_prev: &[F],
    out: StepOutput<'_, F>,
) {
    let rows = rows_per_block(out.hidden.len() / h);
    let w_hh = matrix(weight_hh, 4 * h, h);
    out.gates
        .par_chunks_mut(rows * 4 * h)
        .zip(out.cell.par_chunks_mut(rows * h))
        .zip(out.tanh_cell.par_chunks_mut(rows * h))
        .zip(out.hidden.par_chunks_mut(rows * h))
        .enumerate()
        .for_each(|(block, (((gates, cell), tanh_cell), hidden))| {
            let first = block * rows * h;
            let n = hidden.len() / h;
            // [n×4H] += [n×H]·[H×4H]
            if let Some(h_prev) = h_prev {
                let h_prev = matrix(&h_prev[first..], n, h);
                matmul_on_this_thread(matrix_mut(gates, n, 4 * h), true, h_prev, w_hh.t());
            }
            let c_prev = &c_prev[first..first + n * h];
            lstm_cell_forward(gates, c_prev, cell, tanh_cell, hidden, h);
        });
}

/// The fused pointwise part of one step for n rows, one pass over [n][4H] → [n][H]:
/// gates become i, f, g, o; c = f⊙c_prev + i⊙g; h = o⊙tanh(c).
///
/// Where the CPU has AVX2 the same code is compiled for it, so the nonlinearities run 8 lanes wide
/// instead of SSE2's 4. The results are bit-identical: the same operations in the same order.
pub fn lstm_cell_forward<F: Float>(
    gates: &mut [F],
    cell_prev: &[F],
    cell: &mut [F],
    tanh_cell: &mut [F],
    hidden: &mut [F],
    h: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU was just checked to support AVX2.
        return unsafe { lstm_cell_forward_avx2(gates, cell_prev, cell, tanh_cell, hidden, h) };
    }
    lstm_cell_forward_portable(gates, cell_prev, cell, tanh_cell, hidden, h)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn lstm_cell_forward_avx2<F: Float>(
    gates: &mut [F],
    cell_prev: &[F],
    cell: &mut [F],
    tanh_cell: &mut [F],
    hidden: &mut [F],
    h: usize,
) {
    lstm_cell_forward_portable(gates, cell_prev, cell, tanh_cell, hidden, h)
}

#[inline(always)]
fn lstm_cell_forward_portable<F: Float>(
    gates: &mut [F],
    cell_prev: &[F],
    cell: &mut [F],
    tanh_cell: &mut [F],
    hidden: &mut [F],
    h: usize,
) {
    for (row, gate_row) in gates.chunks_exact_mut(4 * h).enumerate() {
        let span = row * h..(row + 1) * h;
        let (input_gate, rest) = gate_row.split_at_mut(h);
        let (forget_gate, rest) = rest.split_at_mut(h);
        let (candidate, output_gate) = rest.split_at_mut(h);
        let (cell_prev, cell) = (&cell_prev[span.clone()], &mut cell[span.clone()]);
        let (tanh_cell, hidden) = (&mut tanh_cell[span.clone()], &mut hidden[span]);
        cell_forward_units(
            input_gate,
            forget_gate,
            candidate,
            output_gate,
            cell_prev,
            cell,
            tanh_cell,
            hidden,
        );
    }
}

/// One row of [`lstm_cell_forward`] over n units: the four gates' pre-activations become
/// activations in place, and c = f⊙c_prev + i⊙g, tanh(c), h = o⊙tanh(c) are written. The packed
/// kernels' epilogue calls it too, so the pointwise results match to the bit; the slices are
/// separate arguments so that the compiler knows they do not overlap and vectorises the loop.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn cell_forward_units<F: Float>(
    input_gate: &mut [F],
    forget_gate: &mut [F],
    candidate: &mut [F],
    output_gate: &mut [F],
    cell_prev: &[F],
    cell: &mut [F],
    tanh_cell: &mut [F],
    hidden: &mut [F],
) {
    let n = cell.len();
    let (input_gate, forget_gate) = (&mut input_gate[..n], &mut forget_gate[..n]);
    let (candidate, output_gate) = (&mut candidate[..n], &mut output_gate[..n]);
    let (cell_prev, tanh_cell, hidden) = (&cell_prev[..n], &mut tanh_cell[..n], &mut hidden[..n]);
    for j in 0..n {
        let i = input_gate[j].sigmoid();
        let f = forget_gate[j].sigmoid();
        let g = candidate[j].tanh();
        let o = output_gate[j].sigmoid();
        let c = f * cell_prev[j] + i * g;
        let tanh_c = c.tanh();
        (input_gate[j], forget_gate[j], candidate[j], output_gate[j]) = (i, f, g, o);
        cell[j] = c;
        tanh_cell[j] = tanh_c;
        hidden[j] = o * tanh_c;
    }
}

/// The scratch and output buffers of [`lstm_backward`].
pub struct LayerGradBuffers<'a, F> {
    /// [T][B][H]: on entry ∂L/∂h_t from above (the dense layer or the next LSTM layer); the
    /// recurrent terms are added in place, so on exit it holds the total ∂L/∂h_t.
    pub d_hidden: &'a mut [F],
    /// [T][B][4H]: written with ∂L/∂a_t, the gradient of the pre-activations.
    pub d_gates: &'a mut [F],
    /// [B][H]: scratch for ∂L/∂c_t carried from step t+1 to t.
    pub d_cell: &'a mut [F],
    /// D·4H: scratch for layer 0's input-weight gradient, by input index.
    pub d_table: &'a mut [F],
    /// [T][B][H]: written with ∂L/∂x_t for layers above 0 (the layer below's ∂L/∂h_t).
    pub d_input: Option<&'a mut [F]>,
}

/// Backpropagation through time for one layer: overwrites `grads` with this layer's parameter
/// gradients and fills `buffers` (see [`LayerGradBuffers`]).
pub fn lstm_backward<F: Float>(
    layer: LstmLayer<'_, F>,
    input: LayerInput<'_, F>,
    tape: &LayerTape<F>,
    dims: Dims,
    buffers: LayerGradBuffers<'_, F>,
    grads: LstmLayerMut<'_, F>,
) {
    lstm_backward_on(None, layer, input, tape, dims, buffers, grads)
}

/// [`lstm_backward`] with its loop over the steps on the packed kernels of an instruction set
/// (`packed`: the ISA and scratch for the packed W_hh), or the reference loop for None.
pub(super) fn lstm_backward_on<F: Float>(
    packed: Option<(Isa, &mut Vec<f32>)>,
    layer: LstmLayer<'_, F>,
    input: LayerInput<'_, F>,
    tape: &LayerTape<F>,
    dims: Dims,
    buffers: LayerGradBuffers<'_, F>,
    grads: LstmLayerMut<'_, F>,
) {
    let LayerGradBuffers {
        d_hidden,
        d_gates,
        d_cell,
        d_table,
        d_input,
    } = buffers;
    let isa = packed.as_ref().map(|(isa, _)| *isa);
    match packed {
        Some((isa, scratch)) => {
            let w_hh = layer.weight_hh;
            recurrence::backward(isa, w_hh, dims, tape, d_hidden, d_gates, d_cell, scratch);
        }
        None => bptt_steps(layer.weight_hh, tape, dims, d_hidden, d_gates, d_cell),
    }
    weight_gradients(
        isa, layer, input, tape, dims, d_gates, d_table, d_input, grads,
    );
}

/// The reference loop of [`lstm_backward`] over the steps, last first: ∂L/∂a_t from the cell,
/// and ∂L/∂h_{t−1} += ∂L/∂a_t · W_hh.
fn bptt_steps<F: Float>(
    weight_hh: &[F],
    tape: &LayerTape<F>,
    dims: Dims,
    d_hidden: &mut [F],
    d_gates: &mut [F],
    d_cell: &mut [F],
) {
    let (t_len, b, h) = (dims.steps, dims.batch, dims.hidden);
    let (bh, bg) = (b * h, b * 4 * h);
    let w_hh = matrix(weight_hh, 4 * h, h);

    // Nothing after the window depends on c_{T−1}.
    d_cell.fill(F::ZERO);
    let rows = rows_per_block(b);
    for t in (0..t_len).rev() {
        let (gates, tanh_cell) = (&tape.gates[t * bg..], &tape.tanh_cell[t * bh..]);
        let cell_prev = match t {
            0 => &tape.zero_state[..],
            _ => &tape.cell[(t - 1) * bh..],
        };
        let (d_hidden_before, d_hidden_from_t) = d_hidden.split_at_mut(t * bh);
        // Each thread takes a block of batch rows, as in the forward recurrence.
        let block_backward =
            |block: usize, d_gates: &mut [F], d_cell: &mut [F], d_prev: Option<&mut [F]>| {
                let first = block * rows * h;
                let n = d_cell.len() / h;
                let span = first..first + n * h;
                lstm_cell_backward(
                    &gates[4 * first..4 * first + n * 4 * h],
                    &cell_prev[span.clone()],
                    &tanh_cell[span.clone()],
                    &d_hidden_from_t[span],
                    d_cell,
                    d_gates,
                    h,
                );
                // ∂L/∂h_{t−1} += ∂L/∂a_t · W_hh: [n×H] += [n×4H]·[4H×H]
                if let Some(d_prev) = d_prev {
                    let d_a = matrix(d_gates, n, 4 * h);
                    matmul_on_this_thread(matrix_mut(d_prev, n, h), true, d_a, w_hh);
                }
            };
        let blocks = d_gates[t * bg..(t + 1) * bg]
            .par_chunks_mut(rows * 4 * h)
            .zip(d_cell.par_chunks_mut(rows * h))
            .enumerate();
        match t {
            0 => blocks.for_each(|(block, (d_a, d_c))| block_backward(block, d_a, d_c, None)),
            _ => blocks
                .zip(d_hidden_before[(t - 1) * bh..].par_chunks_mut(rows * h))
                .for_each(|((block, (d_a, d_c)), d_prev)| {
                    block_backward(block, d_a, d_c, Some(d_prev))
                }),
        }
    }
}

/// The parameter gradients of [`lstm_backward`] from ∂L/∂a of every step, each one large
/// product over all steps (on `isa`'s tiles, else through gemm); and ∂L/∂x for layers above 0.
#[allow(clippy::too_many_arguments)]
fn weight_gradients<F: Float>(
    isa: Option<Isa>,
    layer: LstmLayer<'_, F>,
    input: LayerInput<'_, F>,
    tape: &LayerTape<F>,
    dims: Dims,
    d_gates: &[F],
    d_table: &mut [F],
    d_input: Option<&mut [F]>,
    grads: LstmLayerMut<'_, F>,
) {
    let (t_len, b, h) = (dims.steps, dims.batch, dims.hidden);
    let bg = b * 4 * h;

    // ∂L/∂W_hh = Σ_{t≥1} ∂L/∂a_tᵀ · h_{t−1}, as one product over steps 1..T: [4H×(T−1)B]·[(T−1)B×H]
    let recurrent_rows = (t_len - 1) * b;
    let h_until_last = &tape.hidden[..recurrent_rows * h];
    let (d_a_step_0, d_a_recurrent) = d_gates.split_at(bg);
    let recurrent_product =
        |out: &mut [F]| weight_product(isa, d_a_recurrent, h_until_last, recurrent_rows, out);

    // Both biases enter every pre-activation unscaled: their gradient is Σ_{t,b} ∂L/∂a (layer
    // 0's summed with its input weights' as ∂L/∂a is read).
    let rows = t_len * b;
    match input {
        LayerInput::Indices(indices) => {
            let (width, per_step) = (dims.input_width, dims.inputs_per_step);
            let (d_weight, d_bias) = (grads.weight_ih, &mut *grads.bias_ih);
            match isa {
                // On the product's own pass over ∂L/∂a (read from memory once, not twice), after
                // step 0's rows, which it does not read.
                Some(isa) if recurrent_rows > 0 => {
                    let mut parts = input_term_parts(
                        f32s(d_a_step_0),
                        indices,
                        per_step,
                        width,
                        f32s_mut(d_table),
                        f32s_mut(d_weight),
                        f32s_mut(d_bias),
                        rows,
                    );
                    let (d_a, x) = (f32s(d_a_recurrent), f32s(h_until_last));
                    let out = f32s_mut(grads.weight_hh);
                    weight_gradient_summing(isa, d_a, x, recurrent_rows, out, &mut parts);
                }
                _ => {
                    recurrent_product(grads.weight_hh);
                    input_term_backward(
                        d_gates, indices, per_step, width, d_table, d_weight, d_bias,
                    );
                }
            }
        }
        LayerInput::Hidden(below) => {
            recurrent_product(grads.weight_hh);
            column_sums(d_gates, grads.bias_ih);
            // ∂L/∂W_ih = Σ ∂L/∂aᵀ · x: [4H×TB]·[TB×H]
            weight_product(isa, d_gates, below, rows, grads.weight_ih);
            let d_a = matrix(d_gates, rows, 4 * h);
            // ∂L/∂x = ∂L/∂a · W_ih: [TB×4H]·[4H×H]
            let d_input = d_input.expect("layers above 0 pass ∂L/∂x storage");
            let w_ih = matrix(layer.weight_ih, 4 * h, h);
            matmul(matrix_mut(d_input, rows, h), false, d_a, w_ih);
        }
    }
    grads.bias_hh.copy_from_slice(grads.bias_ih);
}

/// out [G][N] = d_aᵀ · x over `rows` rows of d_a [rows][G] and x [rows][N]: on `isa`'s tiles
/// (f32 only), else through gemm.
fn weight_product<F: Float>(isa: Option<Isa>, d_a: &[F], x: &[F], rows: usize, out: &mut [F]) {
    if rows == 0 {
        // One-step windows have no recurrent term.
        return out.fill(F::ZERO);
    }
    let (g, n) = (d_a.len() / rows, x.len() / rows);
    match isa {
        Some(isa) => weight_gradient(isa, f32s(d_a), f32s(x), rows, f32s_mut(out)),
        None => {
            let (d_a, x) = (matrix(d_a, rows, g), matrix(x, rows, n));
            matmul(matrix_mut(out, g, n), false, d_a.t(), x);
        }
    }
}

/// Layer 0's ∂L/∂W_ih [4H][D] from ∂L/∂a [T·B][4H]. x is the sum of the one-hots of each row's
/// `per_step` indices, so ∂L/∂W_ih[:, d] = Σ over every (row r, k) with indices[r·K + k] = d of
/// ∂L/∂a_r: scatter-adds the rows by index, in ascending (r, k) order, into a table by index,
/// then transposes it into W_ih's layout. Each thread takes a block of the 4H columns over every
/// row (its part of `d_table`, [D][its columns], is its own), so each element is summed in the
/// same order on any thread count. The bias gradient Σ_r ∂L/∂a_r [4H] is summed into `d_bias`
/// on the way, in row order as `column_sums` sums it: ∂L/∂a is read once, not twice.
pub fn input_term_backward<F: Float>(
    d_gates: &[F],
    indices: &[u32],
    per_step: usize,
    width: usize,
    d_table: &mut [F],
    d_weight_ih: &mut [F],
    d_bias: &mut [F],
) {
    let rows = d_gates.len() / d_bias.len().max(1);
    let mut parts = input_term_parts(
        d_gates,
        indices,
        per_step,
        width,
        d_table,
        d_weight_ih,
        d_bias,
        rows,
    );
    parts.par_iter_mut().for_each(|part| {
        part.start();
        part.finish();
    });
}

/// [`input_term_backward`]'s parts, one per thread, over `rows` rows of ∂L/∂a: `lead` is its
/// first rows, which each part sums as it starts; the rest come by [`RowSums::add_row`] (from
/// `weight_gradient_summing`, which reads them anyway).
#[allow(clippy::too_many_arguments)]
fn input_term_parts<'a, F: Float>(
    lead: &'a [F],
    indices: &'a [u32],
    per_step: usize,
    width: usize,
    d_table: &'a mut [F],
    d_weight_ih: &'a mut [F],
    d_bias: &'a mut [F],
    rows: usize,
) -> Vec<InputTermPart<'a, F>> {
    let h4 = d_table.len() / width;
    assert_eq!(d_bias.len(), h4, "the bias gradient is [4H]");
    assert_eq!(d_weight_ih.len(), h4 * width, "∂L/∂W_ih is [4H][D]");
    assert_eq!(
        rows,
        indices.len() / per_step,
        "a step of indices for every row of ∂L/∂a"
    );
    let block = h4.div_ceil(rayon::current_num_threads());
    (d_table.chunks_mut(block * width))
        .zip(d_weight_ih.chunks_mut(block * width))
        .zip(d_bias.chunks_mut(block))
        .enumerate()
        .map(|(part, ((table, d_weight_rows), d_bias))| InputTermPart {
            lead,
            lead_rows: lead.len() / h4,
            h4,
            first: part * block,
            indices,
            per_step,
            width,
            table,
            bias_sums: LineAligned::filled(d_bias.len(), F::ZERO),
            d_weight_rows,
            d_bias,
        })
        .collect()
}

/// One thread's part of [`input_term_backward`]: the columns `first..first + d_bias.len()` of
/// ∂L/∂a (the same columns the product gives it: both split in order), row by row, summed by
/// input index into `table` ([D][its columns]) and over all rows into `bias_sums`; at the end
/// `table` transposed into its rows of ∂L/∂W_ih and `bias_sums` copied into `d_bias`.
struct InputTermPart<'a, F> {
    lead: &'a [F],
    lead_rows: usize,
    h4: usize,
    first: usize,
    indices: &'a [u32],
    per_step: usize,
    width: usize,
    table: &'a mut [F],
    /// The sums of the bias gradient, on lines of their own: `d_bias` is a slice of the
    /// gradients, and its parts would share a line that both threads write at every row.
    bias_sums: LineAligned<F>,
    d_weight_rows: &'a mut [F],
    d_bias: &'a mut [F],
}

impl<F: Float> InputTermPart<'_, F> {
    /// Row `row` of ∂L/∂a (counted from the lead's first), this part's columns of it.
    #[inline(always)]
    fn add(&mut self, row: usize, d_a: &[F]) {
        let columns = self.d_bias.len();
        for (sum, &g) in self.bias_sums.iter_mut().zip(d_a) {
            *sum += g;
        }
        for &index in &self.indices[row * self.per_step..][..self.per_step] {
            let d = index as usize;
            for (acc, &g) in self.table[d * columns..][..columns].iter_mut().zip(d_a) {
                *acc += g;
            }
        }
    }
}

impl<F: Float> RowSums<F> for InputTermPart<'_, F> {
    fn columns(&self) -> usize {
        self.d_bias.len()
    }

    /// From zero, the rows of `lead`.
    fn start(&mut self) {
        self.table.fill(F::ZERO);
        self.bias_sums.fill(F::ZERO);
        let (lead, columns) = (self.lead, self.first..self.first + self.d_bias.len());
        for (row, d_a) in lead.chunks_exact(self.h4).enumerate() {
            self.add(row, &d_a[columns.clone()]);
        }
    }

    #[inline(always)]
    fn add_row(&mut self, row: usize, d_a: &[F]) {
        self.add(self.lead_rows + row, d_a);
    }

    fn finish(&mut self) {
        let columns = self.d_bias.len();
        for (j, d_w_row) in self.d_weight_rows.chunks_exact_mut(self.width).enumerate() {
            for (d, d_w) in d_w_row.iter_mut().enumerate() {
                *d_w = self.table[d * columns + j];
            }
        }
        self.d_bias.copy_from_slice(&self.bias_sums);
    }
}

/// The pointwise part of one step backwards, for n rows, [n][H] → [n][4H]. With dc = ∂L/∂c_t:
///   dc  = d_cell (through c_{t+1}) + dh⊙o⊙(1 − tanh²c)
///   da_i = dc⊙g⊙i(1−i);  da_f = dc⊙c_prev⊙f(1−f);  da_g = dc⊙i⊙(1−g²);  da_o = dh⊙tanh(c)⊙o(1−o)
/// and leaves dc⊙f in `d_cell`, the part of ∂L/∂c_{t−1} that flows through c_t.
pub fn lstm_cell_backward<F: Float>(
    gates: &[F],
    cell_prev: &[F],
    tanh_cell: &[F],
    d_hidden: &[F],
    d_cell: &mut [F],
    d_gates: &mut [F],
    h: usize,
) {
    let rows = gates
        .chunks_exact(4 * h)
        .zip(d_gates.chunks_exact_mut(4 * h));
    for (row, (gate_row, d_gate_row)) in rows.enumerate() {
        let span = row * h..(row + 1) * h;
        let (input_gate, rest) = gate_row.split_at(h);
        let (forget_gate, rest) = rest.split_at(h);
        let (candidate, output_gate) = rest.split_at(h);
        let (d_input_gate, rest) = d_gate_row.split_at_mut(h);
        let (d_forget_gate, rest) = rest.split_at_mut(h);
        let (d_candidate, d_output_gate) = rest.split_at_mut(h);
        let (cell_prev, tanh_cell) = (&cell_prev[span.clone()], &tanh_cell[span.clone()]);
        let (d_hidden, d_cell) = (&d_hidden[span.clone()], &mut d_cell[span]);
        let gates = [input_gate, forget_gate, candidate, output_gate];
        let (d_i, d_f, d_g, d_o) = (d_input_gate, d_forget_gate, d_candidate, d_output_gate);
        cell_backward_units(
            gates, cell_prev, tanh_cell, d_hidden, d_cell, d_i, d_f, d_g, d_o,
        );
    }
}

/// One row of [`lstm_cell_backward`] over n units: from the activations (i, f, g, o), c_prev,
/// tanh(c) and ∂L/∂h, the four ∂L/∂a, and dc⊙f over ∂L/∂c. Shared with the packed kernels;
/// the written slices are separate arguments so that the loop vectorises.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn cell_backward_units<F: Float>(
    [input_gate, forget_gate, candidate, output_gate]: [&[F]; 4],
    cell_prev: &[F],
    tanh_cell: &[F],
    d_hidden: &[F],
    d_cell: &mut [F],
    d_input_gate: &mut [F],
    d_forget_gate: &mut [F],
    d_candidate: &mut [F],
    d_output_gate: &mut [F],
) {
    let n = d_cell.len();
    let (d_input_gate, d_forget_gate) = (&mut d_input_gate[..n], &mut d_forget_gate[..n]);
    let (d_candidate, d_output_gate) = (&mut d_candidate[..n], &mut d_output_gate[..n]);
    let (input_gate, forget_gate) = (&input_gate[..n], &forget_gate[..n]);
    let (candidate, output_gate) = (&candidate[..n], &output_gate[..n]);
    let (cell_prev, tanh_cell, d_hidden) = (&cell_prev[..n], &tanh_cell[..n], &d_hidden[..n]);
    for j in 0..n {
        let (i, f, g, o) = (input_gate[j], forget_gate[j], candidate[j], output_gate[j]);
        let (tanh_c, dh) = (tanh_cell[j], d_hidden[j]);
        let dc = d_cell[j] + dh * o * (F::ONE - tanh_c * tanh_c);
        d_input_gate[j] = dc * g * i * (F::ONE - i);
        d_forget_gate[j] = dc * cell_prev[j] * f * (F::ONE - f);
        d_candidate[j] = dc * i * (F::ONE - g * g);
        d_output_gate[j] = dh * tanh_c * o * (F::ONE - o);
        d_cell[j] = dc * f;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// The AVX2 build of the fused cell gives the same bits as the portable one, which is what
    /// machines without AVX2 run.
    #[test]
    fn avx2_cell_is_bit_identical_to_the_portable_one() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let (rows, h) = (5, 37);
            let mut rng = StdRng::seed_from_u64(4);
            let mut random =
                |n: usize| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-12.0..12.0)).collect() };
            let (gates, cell_prev) = (random(rows * 4 * h), random(rows * h));
            let run = |avx2: bool| {
                let mut out = (gates.clone(), vec![0.0; rows * h], vec![0.0; rows * h]);
                let mut hidden = vec![0.0; rows * h];
                let (g, c, t) = (&mut out.0, &mut out.1, &mut out.2);
                match avx2 {
                    // SAFETY: AVX2 was detected above.
                    true => unsafe { lstm_cell_forward_avx2(g, &cell_prev, c, t, &mut hidden, h) },
                    false => lstm_cell_forward_portable(g, &cell_prev, c, t, &mut hidden, h),
                }
                let all = [out.0, out.1, out.2, hidden].concat();
                all.iter().map(|x| x.to_bits()).collect::<Vec<u32>>()
            };
            assert_eq!(run(true), run(false));
            return;
        }
        eprintln!("skipped: this CPU has no AVX2");
    }

    /// `n` values drawn uniformly from [−1, 1).
    fn uniform(n: usize, rng: &mut StdRng) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    /// Layer 0's input weights [4H][D] and biases, at random.
    struct InputWeights {
        weight_ih: Vec<f32>,
        bias_ih: Vec<f32>,
        bias_hh: Vec<f32>,
        width: usize,
    }

    impl InputWeights {
        fn random(h4: usize, width: usize, rng: &mut StdRng) -> Self {
            InputWeights {
                weight_ih: uniform(h4 * width, rng),
                bias_ih: uniform(h4, rng),
                bias_hh: uniform(h4, rng),
                width,
            }
        }

        fn layer(&self) -> LstmLayer<'_, f32> {
            LstmLayer {
                weight_ih: &self.weight_ih,
                weight_hh: &[],
                bias_ih: &self.bias_ih,
                bias_hh: &self.bias_hh,
            }
        }

        /// W_ih transposed, as `gather_input_term` reads it.
        fn table(&self) -> Vec<f32> {
            let mut table = vec![0.0; self.width * self.bias_ih.len()];
            input_table(self.layer(), self.width, &mut table);
            table
        }
    }

    /// Rows that repeat the row before (the copy) give the bits of rows summed on their own,
    /// and a row that repeats an earlier, not the previous, row is summed again.
    #[test]
    fn gather_input_term_copies_a_repeated_row_with_the_same_bits() {
        let (h4, width, per_step) = (8, 5, 3);
        let weights = InputWeights::random(h4, width, &mut StdRng::seed_from_u64(9));
        let (layer, table) = (weights.layer(), weights.table());
        let (weight_ih, bias_ih, bias_hh) =
            (&weights.weight_ih, &weights.bias_ih, &weights.bias_hh);
        let indices = [0, 2, 4, 0, 2, 4, 1, 1, 3, 0, 2, 4, 0, 2, 4];
        let mut gates = vec![f32::NAN; 5 * h4];
        gather_input_term(layer, &table, &indices, per_step, &mut gates);
        for (row, step) in gates.chunks_exact(h4).zip(indices.chunks_exact(per_step)) {
            let mut alone = vec![f32::NAN; h4];
            gather_input_term(layer, &table, step, per_step, &mut alone);
            let expected: Vec<f32> = (0..h4)
                .map(|j| {
                    let w = |d: u32| weight_ih[j * width + d as usize];
                    ((w(step[0]) + w(step[1])) + w(step[2])) + bias_ih[j] + bias_hh[j]
                })
                .collect();
            assert_eq!(
                row.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                alone.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
            assert_eq!(row, expected.as_slice());
        }
    }

    /// One index a step (the one-hot model, summed in one pass): row r is W_ih[:, i_r] + b_ih +
    /// b_hh, in that order, to the bit.
    #[test]
    fn gather_input_term_of_one_index_a_step_is_the_column_plus_the_biases() {
        let (h4, width) = (12, 5);
        let weights = InputWeights::random(h4, width, &mut StdRng::seed_from_u64(3));
        let indices = [4, 0, 0, 2];
        let mut gates = vec![f32::NAN; indices.len() * h4];
        gather_input_term(weights.layer(), &weights.table(), &indices, 1, &mut gates);
        for (row, &d) in gates.chunks_exact(h4).zip(&indices) {
            let expected: Vec<u32> = (0..h4)
                .map(|j| {
                    let w = weights.weight_ih[j * width + d as usize];
                    (w + weights.bias_ih[j] + weights.bias_hh[j]).to_bits()
                })
                .collect();
            assert_eq!(
                row.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                expected
            );
        }
    }

    /// Layer 0's input term and its weight gradient split the work across the threads: on 1, 2,
    /// 3 and 5 threads, with enough rows for several blocks and runs of repeated rows across
    /// their edges, the same bits, the gradient equal to the plain scatter in (row, k) order, and
    /// the bias gradient to `column_sums`.
    #[test]
    fn input_term_and_its_gradient_are_the_same_on_any_thread_count() {
        // 20 columns: on 3 threads blocks of 7, 7 and 6.
        let (h4, width, per_step, rows) = (20, 7, 3, 1_100);
        let mut rng = StdRng::seed_from_u64(5);
        let weights = InputWeights::random(h4, width, &mut rng);
        let (layer, table) = (weights.layer(), weights.table());
        let d_gates = uniform(rows * h4, &mut rng);
        // Runs of 1 to 400 repeated steps, so some cross a block's edge.
        let mut indices = Vec::new();
        while indices.len() < rows * per_step {
            let step: Vec<u32> = (0..per_step)
                .map(|_| rng.gen_range(0..width as u32))
                .collect();
            for _ in 0..rng.gen_range(1..400) {
                indices.extend_from_slice(&step);
            }
        }
        indices.truncate(rows * per_step);

        let mut plain = vec![0.0f32; h4 * width];
        for (d_a, step) in d_gates.chunks_exact(h4).zip(indices.chunks_exact(per_step)) {
            for &d in step {
                for (j, &g) in d_a.iter().enumerate() {
                    plain[j * width + d as usize] += g;
                }
            }
        }
        let mut column_sum = vec![f32::NAN; h4];
        column_sums(&d_gates, &mut column_sum);
        let bits = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let mut results = Vec::new();
        for threads in [1, 2, 3, 5] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let (mut gates, mut d_table) = (vec![f32::NAN; rows * h4], vec![f32::NAN; width * h4]);
            let (mut d_weight_ih, mut d_bias) = (vec![f32::NAN; h4 * width], vec![f32::NAN; h4]);
            pool.install(|| {
                gather_input_term(layer, &table, &indices, per_step, &mut gates);
                let (d_weight, d_bias) = (&mut d_weight_ih, &mut d_bias);
                let d_table = &mut d_table;
                input_term_backward(
                    &d_gates, &indices, per_step, width, d_table, d_weight, d_bias,
                );
            });
            assert_eq!(bits(&d_weight_ih), bits(&plain), "{threads} threads");
            assert_eq!(bits(&d_bias), bits(&column_sum), "{threads} threads");
            results.push(bits(&gates));
        }
        assert!(results.iter().all(|gates| gates == &results[0]));
        let mut alone = vec![f32::NAN; h4];
        for (row, step) in results[0]
            .chunks_exact(h4)
            .zip(indices.chunks_exact(per_step))
        {
            gather_input_term(layer, &table, step, per_step, &mut alone);
            assert_eq!(row, bits(&alone).as_slice());
        }
    }

    /// The product that sums layer 0's input term on its pass gives the bits of the two apart
    /// (`weight_gradient`, then `input_term_backward`), on every supported ISA, at 1, 2 and 3
    /// threads, over more rows than one block and columns in no whole tile.
    #[test]
    fn weight_gradient_summing_the_input_term_has_the_bits_of_the_two_apart() {
        let (h4, n, width, per_step, lead_rows, rows) = (20, 5, 7, 2, 3, 300);
        let mut rng = StdRng::seed_from_u64(6);
        let d_gates = uniform((lead_rows + rows) * h4, &mut rng);
        let x = uniform(rows * n, &mut rng);
        let indices: Vec<u32> = (0..(lead_rows + rows) * per_step)
            .map(|_| rng.gen_range(0..width as u32))
            .collect();
        let bits = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let (lead, d_a) = d_gates.split_at(lead_rows * h4);
        for isa in Isa::ALL.into_iter().filter(|isa| isa.supported()) {
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let run = |fused: bool| {
                    let mut d_table = vec![f32::NAN; width * h4];
                    let mut d_weight_hh = vec![f32::NAN; h4 * n];
                    let (mut d_weight_ih, mut d_bias) =
                        (vec![f32::NAN; h4 * width], vec![f32::NAN; h4]);
                    pool.install(|| {
                        let (table, d_weight) = (&mut d_table, &mut d_weight_ih);
                        if fused {
                            let mut parts = input_term_parts(
                                lead,
                                &indices,
                                per_step,
                                width,
                                table,
                                d_weight,
                                &mut d_bias,
                                lead_rows + rows,
                            );
                            weight_gradient_summing(
                                isa,
                                d_a,
                                &x,
                                rows,
                                &mut d_weight_hh,
                                &mut parts,
                            );
                        } else {
                            weight_gradient(isa, d_a, &x, rows, &mut d_weight_hh);
                            input_term_backward(
                                &d_gates,
                                &indices,
                                per_step,
                                width,
                                table,
                                d_weight,
                                &mut d_bias,
                            );
                        }
                    });
                    [bits(&d_weight_hh), bits(&d_weight_ih), bits(&d_bias)]
                };
                assert_eq!(run(true), run(false), "{isa} on {threads} threads");
            }
        }
    }
}
