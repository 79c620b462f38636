//! Streaming inference for generation: independent LSTM states (rows) advanced one step (K input
//! indices) at a time with the training path's step (for f32 the packed kernels, W_hh packed once per set of
//! parameters), and the next-symbol distribution of any row on demand.

use std::ops::Range;

use super::aligned::LineAligned;
use super::head;
use super::isa::Kernels;
use super::lstm::{self, Dims, LayerInput};
use super::recurrence;
use crate::model::{Float, Params};

/// The carried h and c of every layer for `rows` streams, plus one step's scratch.
pub struct StreamState<F> {
    dims: Dims,
    /// Per layer, [rows][H]: h after the last step.
    hidden: Vec<LineAligned<F>>,
    /// Per layer, [rows][H]: c after the last step.
    cell: Vec<LineAligned<F>>,
    /// [rows][4H]: pre-activations, then gate activations, of the step being taken.
    gates: LineAligned<F>,
    /// [rows][H] each: the step's new c, tanh(c) and h before they replace the carried state.
    next_cell: LineAligned<F>,
    tanh_cell: LineAligned<F>,
    next_hidden: LineAligned<F>,
    /// [D][4H]: layer 0's W_ih transposed (see `lstm::input_table`); empty until the next step
    /// builds it from the parameters.
    input_table: Vec<F>,
    /// [rows][V]: logits of the selected rows.
    logits: Vec<F>,
    /// What runs the recurrence; always the reference for f64.
    kernels: Kernels,
    /// Per layer, W_hh packed for the packed kernels; empty until the next step packs it.
    packed: Vec<Vec<f32>>,
}

impl<F: Float> StreamState<F> {
    /// `rows` streams, all at the zero state.
    pub fn new(params: &Params<F>, rows: usize) -> Self {
        let config = params.config();
        let (h, v) = (config.hidden, config.vocab_size);
        let per_layer = || {
            (0..config.layers)
                .map(|_| LineAligned::filled(rows * h, F::ZERO))
                .collect()
        };
        StreamState {
            dims: Dims {
                steps: 1,
                batch: rows,
                hidden: h,
                vocab: v,
                input_width: config.input_width,
                inputs_per_step: config.inputs_per_step,
            },
            hidden: per_layer(),
            cell: per_layer(),
            gates: LineAligned::filled(rows * 4 * h, F::ZERO),
            next_cell: LineAligned::filled(rows * h, F::ZERO),
            tanh_cell: LineAligned::filled(rows * h, F::ZERO),
            next_hidden: LineAligned::filled(rows * h, F::ZERO),
            input_table: Vec::new(),
            logits: vec![F::ZERO; rows * v],
            kernels: match recurrence::is_f32::<F>() {
                true => Kernels::selected(),
                false => Kernels::Reference,
            },
            packed: vec![Vec::new(); config.layers],
        }
    }

    /// Runs the recurrence on `kernels` from now on (see `Workspace::use_kernels`).
    pub fn use_kernels(&mut self, kernels: Kernels) {
        if let Kernels::Packed(isa) = kernels {
            assert!(recurrence::is_f32::<F>(), "the packed kernels are f32 only");
            assert!(isa.supported(), "this CPU lacks {isa}");
        }
        self.kernels = kernels;
        self.params_changed();
    }

    /// The parameters changed (a training step): the next step packs W_hh and transposes
    /// W_ih again.
    pub fn params_changed(&mut self) {
        self.packed.iter_mut().for_each(Vec::clear);
        self.input_table.clear();
    }

    /// Resets the given streams to the zero state.
    pub fn zero_rows(&mut self, rows: &[usize]) {
        let h = self.dims.hidden;
        for state in self.hidden.iter_mut().chain(self.cell.iter_mut()) {
            for &row in rows {
                state[row * h..(row + 1) * h].fill(F::ZERO);
            }
        }
    }

    /// Copies the state of stream `from` into each of the streams `to`.
    pub fn copy_row(&mut self, from: usize, to: &[usize]) {
        let h = self.dims.hidden;
        for state in self.hidden.iter_mut().chain(self.cell.iter_mut()) {
            for &row in to {
                state.copy_within(from * h..(from + 1) * h, row * h);
            }
        }
    }

    /// Advances the streams in `rows` one step, stream `rows.start + r` reading the K input
    /// indices `inputs[r·K..(r+1)·K]`.
    pub fn step(&mut self, params: &Params<F>, rows: Range<usize>, inputs: &[u32]) {
        let (h, per_step) = (self.dims.hidden, self.dims.inputs_per_step);
        assert!(rows.end <= self.dims.batch, "stream rows out of range");
        super::check_input_indices(inputs, params.config());
        assert_eq!(
            inputs.len(),
            rows.len() * per_step,
            "K input indices per stream"
        );
        if self.input_table.is_empty() {
            // Layer 0's input term depends on the indices only: one table until the parameters
            // change.
            let width = self.dims.input_width;
            self.input_table.resize(width * 4 * h, F::ZERO);
            lstm::input_table(params.lstm_layer(0), width, &mut self.input_table);
        }
        let dims = Dims {
            batch: rows.len(),
            ..self.dims
        };
        let span = rows.start * h..rows.end * h;
        let gates = &mut self.gates[..rows.len() * 4 * h];
        let next_cell = &mut self.next_cell[span.clone()];
        let next_hidden = &mut self.next_hidden[span.clone()];
        for k in 0..self.hidden.len() {
            let layer = params.lstm_layer(k);
            match k {
                0 => {
                    let table = &self.input_table;
                    lstm::gather_input_term(layer, table, inputs, per_step, &mut *gates)
                }
                _ => lstm::input_term(
                    layer,
                    LayerInput::Hidden(&self.hidden[k - 1][span.clone()]),
                    dims,
                    &mut self.input_table,
                    &mut *gates,
                ),
            }
            let next = lstm::StepOutput {
                gates: &mut *gates,
                cell: &mut *next_cell,
                tanh_cell: &mut self.tanh_cell[span.clone()],
                hidden: &mut *next_hidden,
            };
            let (h_prev, c_prev) = (&self.hidden[k][span.clone()], &self.cell[k][span.clone()]);
            match self.kernels {
                Kernels::Packed(isa) => {
                    let packed = &mut self.packed[k];
                    recurrence::step(isa, layer.weight_hh, packed, h, h_prev, c_prev, next)
                }
                Kernels::Reference => {
                    lstm::lstm_step(layer.weight_hh, h, Some(h_prev), c_prev, next)
                }
            }
            self.cell[k][span.clone()].swap_with_slice(next_cell);
            self.hidden[k][span.clone()].swap_with_slice(next_hidden);
        }
    }

    /// Softmax probabilities of the next symbol for the given streams → out [rows.len()][V].
    pub fn probs(&mut self, params: &Params<F>, rows: &[usize], out: &mut [F]) {
        let (h, v) = (self.dims.hidden, self.dims.vocab);
        assert_eq!(out.len(), rows.len() * v, "out is [rows][V]");
        let top = self.hidden.last().expect("at least one layer");
        // Gather the selected rows' h into next_hidden, which is free between steps.
        for (i, &row) in rows.iter().enumerate() {
            self.next_hidden[i * h..(i + 1) * h].copy_from_slice(&top[row * h..(row + 1) * h]);
        }
        let logits = &mut self.logits[..rows.len() * v];
        head::dense_forward(
            params.dense(),
            &self.next_hidden[..rows.len() * h],
            h,
            logits,
        );
        for row in logits.chunks_exact_mut(v) {
            head::softmax_in_place(row);
        }
        out.copy_from_slice(logits);
    }
}
