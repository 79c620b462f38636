//! Streaming inference for generation: independent LSTM states (rows) advanced one symbol at a
//! time with the training path's step (for f32 the packed kernels, W_hh packed once per set of
//! parameters), and the next-symbol distribution of any row on demand.

use std::ops::Range;

use super::head;
use super::isa::Kernels;
use super::lstm::{self, Dims, LayerInput};
use super::recurrence;
use crate::model::{Float, Params};

/// The carried h and c of every layer for `rows` streams, plus one step's scratch.
pub struct StreamState<F> {
    dims: Dims,
    /// Per layer, [rows][H]: h after the last step.
    hidden: Vec<Vec<F>>,
    /// Per layer, [rows][H]: c after the last step.
    cell: Vec<Vec<F>>,
    /// [rows][4H]: pre-activations, then gate activations, of the step being taken.
    gates: Vec<F>,
    /// [rows][H] each: the step's new c, tanh(c) and h before they replace the carried state.
    next_cell: Vec<F>,
    tanh_cell: Vec<F>,
    next_hidden: Vec<F>,
    /// [V][4H]: layer 0's input and bias terms per symbol (see `lstm::input_table`).
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
        let per_layer = || vec![vec![F::ZERO; rows * h]; config.layers];
        // Layer 0's input term depends on the symbol only: one table for the whole stream.
        let mut input_table = vec![F::ZERO; v * 4 * h];
        lstm::input_table(params.lstm_layer(0), v, &mut input_table);
        StreamState {
            dims: Dims {
                steps: 1,
                batch: rows,
                hidden: h,
                vocab: v,
            },
            hidden: per_layer(),
            cell: per_layer(),
            gates: vec![F::ZERO; rows * 4 * h],
            next_cell: vec![F::ZERO; rows * h],
            tanh_cell: vec![F::ZERO; rows * h],
            next_hidden: vec![F::ZERO; rows * h],
            input_table,
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

    /// The parameters changed (a training step): the next step packs W_hh again.
    pub fn params_changed(&mut self) {
        self.packed.iter_mut().for_each(Vec::clear);
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

    /// Advances the streams in `rows` one step, stream `rows.start + k` reading `inputs[k]`.
    pub fn step(&mut self, params: &Params<F>, rows: Range<usize>, inputs: &[u32]) {
        let h = self.dims.hidden;
        assert!(rows.end <= self.dims.batch, "stream rows out of range");
        assert_eq!(inputs.len(), rows.len(), "one input symbol per stream");
        let v = self.dims.vocab as u32;
        assert!(
            inputs.iter().all(|&s| s < v),
            "symbol id out of the vocabulary"
        );
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
                0 => lstm::gather_input_term(&self.input_table, inputs, &mut *gates),
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
