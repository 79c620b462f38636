//! The model's parameters: names, shapes and initialisation of the stacked LSTM language model,
//! stored llm.c-style in one contiguous buffer so that Adam and gradient clipping run over one
//! slice while every tensor stays reachable by its PyTorch name.
//!
//! Names, shapes and gate order (i, f, g, o) are exactly PyTorch's `nn.LSTM` + `nn.Linear`, in
//! `state_dict` order: per layer k `lstm.weight_ih_l{k}` [4H, in], `lstm.weight_hh_l{k}` [4H, H],
//! `lstm.bias_ih_l{k}` [4H], `lstm.bias_hh_l{k}` [4H] (in = D for layer 0, H above), then
//! `dense.weight` [V, H] and `dense.bias` [V].
//!
//! Layer 0 reads K input indices per step, each below D, as the multi-hot vector that is the sum
//! of their one-hots: its input term is the sum of K columns of W_ih. The reference model reads
//! one symbol per step (D = V, K = 1).

pub mod checkpoint;
mod float;

pub use float::Float;

use std::ops::Range;

use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// The architecture: V symbols out, `layers` stacked LSTMs of width `hidden`, dropout
/// probability on the last LSTM layer's output, and layer 0 reading `inputs_per_step` indices
/// below `input_width` per step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub dropout: f32,
    /// D: layer 0's input columns (W_ih of layer 0 is [4H][D]).
    pub input_width: usize,
    /// K: the input indices of each step. An index given twice in a step adds its column twice.
    pub inputs_per_step: usize,
}

/// Which positions of a window the loss is taken at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Predict the next symbol at every step: loss averaged over all T·B positions.
    All,
    /// Predict only the symbol after the window: loss averaged over the B positions at t = T−1.
    Last,
}

impl Config {
    /// The reference model: one symbol per step in, one-hot over the V symbols (D = V, K = 1).
    pub fn one_hot(vocab_size: usize, hidden: usize, layers: usize, dropout: f32) -> Config {
        Config {
            vocab_size,
            hidden,
            layers,
            dropout,
            input_width: vocab_size,
            inputs_per_step: 1,
        }
    }

    /// The same model reading `inputs_per_step` indices below `input_width` per step.
    pub fn multi_hot(self, input_width: usize, inputs_per_step: usize) -> Config {
        assert!(
            input_width > 0 && inputs_per_step > 0,
            "a model reads at least one index of at least one column"
        );
        Config {
            input_width,
            inputs_per_step,
            ..self
        }
    }

    /// Whether layer 0 reads exactly one symbol per step (the reference model's input).
    pub fn is_one_hot(&self) -> bool {
        self.input_width == self.vocab_size && self.inputs_per_step == 1
    }

    /// Every parameter tensor, in PyTorch `state_dict` order: (name, shape).
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (v, h) = (self.vocab_size, self.hidden);
        let mut shapes = Vec::with_capacity(4 * self.layers + 2);
        for k in 0..self.layers {
            let input = if k == 0 { self.input_width } else { h };
            shapes.push((format!("lstm.weight_ih_l{k}"), vec![4 * h, input]));
            shapes.push((format!("lstm.weight_hh_l{k}"), vec![4 * h, h]));
            shapes.push((format!("lstm.bias_ih_l{k}"), vec![4 * h]));
            shapes.push((format!("lstm.bias_hh_l{k}"), vec![4 * h]));
        }
        shapes.push(("dense.weight".to_string(), vec![v, h]));
        shapes.push(("dense.bias".to_string(), vec![v]));
        shapes
    }

    /// Total number of scalars over all tensors.
    pub fn num_params(&self) -> usize {
        self.tensor_shapes()
            .iter()
            .map(|(_, shape)| shape.iter().product::<usize>())
            .sum()
    }
}

/// Where one named tensor lives inside the flat buffer.
#[derive(Clone, Debug)]
struct Slot {
    name: String,
    shape: Vec<usize>,
    offset: usize,
    len: usize,
}

/// All parameter tensors (or their gradients) in one contiguous buffer with named views.
#[derive(Clone, Debug)]
pub struct Params<F> {
    config: Config,
    slots: Vec<Slot>,
    data: Vec<F>,
}

/// The four tensors of one LSTM layer.
#[derive(Clone, Copy)]
pub struct LstmLayer<'a, F> {
    /// [4H, in]
    pub weight_ih: &'a [F],
    /// [4H, H]
    pub weight_hh: &'a [F],
    /// [4H]
    pub bias_ih: &'a [F],
    /// [4H]
    pub bias_hh: &'a [F],
}

/// Mutable views of one LSTM layer's four tensors (used for gradients).
pub struct LstmLayerMut<'a, F> {
    pub weight_ih: &'a mut [F],
    pub weight_hh: &'a mut [F],
    pub bias_ih: &'a mut [F],
    pub bias_hh: &'a mut [F],
}

/// The output layer: weight [V, H], bias [V].
#[derive(Clone, Copy)]
pub struct Dense<'a, F> {
    pub weight: &'a [F],
    pub bias: &'a [F],
}

/// Mutable views of the output layer (used for gradients).
pub struct DenseMut<'a, F> {
    pub weight: &'a mut [F],
    pub bias: &'a mut [F],
}

/// Where one LSTM layer's tensors start in [`Params::as_slice`] (and in any buffer of the same
/// layout: gradients, Adam's m and v), for an engine that holds the buffer elsewhere.
#[derive(Clone, Copy, Debug)]
pub struct LstmOffsets {
    pub weight_ih: usize,
    pub weight_hh: usize,
    pub bias_ih: usize,
    pub bias_hh: usize,
}

/// Where the output layer's tensors start in [`Params::as_slice`].
#[derive(Clone, Copy, Debug)]
pub struct DenseOffsets {
    pub weight: usize,
    pub bias: usize,
}

impl<F: Float> Params<F> {
    /// All tensors zero (the shape of a gradient buffer).
    pub fn zeros(config: Config) -> Self {
        let mut offset = 0;
        let slots: Vec<Slot> = config
            .tensor_shapes()
            .into_iter()
            .map(|(name, shape)| {
                let len = shape.iter().product();
                let slot = Slot {
                    name,
                    shape,
                    offset,
                    len,
                };
                offset += len;
                slot
            })
            .collect();
        Params {
            config,
            slots,
            data: vec![F::ZERO; offset],
        }
    }

    /// PyTorch's default initialisation: every tensor (LSTM and Linear, weights and biases)
    /// uniform in (−1/√H, 1/√H); for `nn.Linear(H, V)` that bound is 1/√fan_in with fan_in = H too.
    pub fn init(config: Config, rng: &mut StdRng) -> Self {
        let mut params = Self::zeros(config);
        let bound = 1.0 / (config.hidden as f64).sqrt();
        for x in &mut params.data {
            *x = F::from_f64(rng.gen_range(-bound..bound));
        }
        params
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The same one-hot model (see [`Config::is_one_hot`]) for a vocabulary `extra` symbols
    /// larger, the new symbols last: their columns of `weight_ih_l0` and rows of the dense layer
    /// initialised as [`Params::init`] does, every other value kept. A multi-hot model's input
    /// columns mean what its caller made them mean, so it has no such growth here: it panics.
    pub fn with_extra_symbols(&self, extra: usize, rng: &mut StdRng) -> Self {
        assert!(
            self.config.is_one_hot(),
            "only a one-hot model grows its vocabulary"
        );
        let old_v = self.config.vocab_size;
        let config = Config::one_hot(
            old_v + extra,
            self.config.hidden,
            self.config.layers,
            self.config.dropout,
        );
        let mut grown = Self::init(config, rng);
        for (name, _, old) in self.tensors() {
            let new = grown.tensor_mut(name).expect("same tensor names");
            if name == "lstm.weight_ih_l0" {
                // [4H][V]: each row grows by `extra` columns.
                for (new_row, old_row) in new
                    .chunks_exact_mut(old_v + extra)
                    .zip(old.chunks_exact(old_v))
                {
                    new_row[..old_v].copy_from_slice(old_row);
                }
            } else {
                // dense.weight [V][H] and dense.bias [V] grow by rows at the end; the rest keep
                // their shape.
                new[..old.len()].copy_from_slice(old);
            }
        }
        grown
    }

    /// Every scalar, tensors back to back in `state_dict` order.
    pub fn as_slice(&self) -> &[F] {
        &self.data
    }

    pub fn as_mut_slice(&mut self) -> &mut [F] {
        &mut self.data
    }

    /// (name, shape, values) of every tensor, in `state_dict` order.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, &[usize], &[F])> {
        self.slots.iter().map(|slot| {
            (
                slot.name.as_str(),
                slot.shape.as_slice(),
                &self.data[slot.offset..slot.offset + slot.len],
            )
        })
    }

    /// Where the tensor called `name` lies in [`Params::as_slice`], if there is one.
    pub fn tensor_range(&self, name: &str) -> Option<Range<usize>> {
        let slot = self.slots.iter().find(|slot| slot.name == name)?;
        Some(slot.offset..slot.offset + slot.len)
    }

    /// The values of the tensor called `name`, if there is one.
    pub fn tensor(&self, name: &str) -> Option<&[F]> {
        Some(&self.data[self.tensor_range(name)?])
    }

    pub fn tensor_mut(&mut self, name: &str) -> Option<&mut [F]> {
        let range = self.tensor_range(name)?;
        Some(&mut self.data[range])
    }

    /// Layer k's tensors; they are slots 4k..4k+4.
    pub fn lstm_layer(&self, k: usize) -> LstmLayer<'_, F> {
        assert!(k < self.config.layers, "layer {k} out of range");
        let [weight_ih, weight_hh, bias_ih, bias_hh] = self.views(4 * k);
        LstmLayer {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
        }
    }

    pub fn lstm_layer_mut(&mut self, k: usize) -> LstmLayerMut<'_, F> {
        assert!(k < self.config.layers, "layer {k} out of range");
        let [weight_ih, weight_hh, bias_ih, bias_hh] = self.views_mut(4 * k);
        LstmLayerMut {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
        }
    }

    /// The output layer: the last two slots.
    pub fn dense(&self) -> Dense<'_, F> {
        let [weight, bias] = self.views(4 * self.config.layers);
        Dense { weight, bias }
    }

    pub fn dense_mut(&mut self) -> DenseMut<'_, F> {
        let [weight, bias] = self.views_mut(4 * self.config.layers);
        DenseMut { weight, bias }
    }

    /// Where layer k's tensors start (the slots of [`Params::lstm_layer`]).
    pub fn lstm_offsets(&self, k: usize) -> LstmOffsets {
        assert!(k < self.config.layers, "layer {k} out of range");
        let [weight_ih, weight_hh, bias_ih, bias_hh] = self.offsets(4 * k);
        LstmOffsets {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
        }
    }

    /// Where the output layer's tensors start (the slots of [`Params::dense`]).
    pub fn dense_offsets(&self) -> DenseOffsets {
        let [weight, bias] = self.offsets(4 * self.config.layers);
        DenseOffsets { weight, bias }
    }

    /// The offsets of N consecutive slots starting at `first`.
    fn offsets<const N: usize>(&self, first: usize) -> [usize; N] {
        std::array::from_fn(|i| self.slots[first + i].offset)
    }

    /// N consecutive slots starting at `first`.
    fn views<const N: usize>(&self, first: usize) -> [&[F]; N] {
        std::array::from_fn(|i| {
            let slot = &self.slots[first + i];
            &self.data[slot.offset..slot.offset + slot.len]
        })
    }

    /// N consecutive slots starting at `first`, mutably: slots are adjacent, so split them off in turn.
    fn views_mut<const N: usize>(&mut self, first: usize) -> [&mut [F]; N] {
        let slots = &self.slots[first..first + N];
        let mut rest = &mut self.data[slots[0].offset..];
        std::array::from_fn(|i| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(slots[i].len);
            rest = tail;
            head
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn extra_symbols_keep_every_old_value() {
        let config = Config::one_hot(3, 2, 2, 0.0);
        let old = Params::<f32>::init(config, &mut StdRng::seed_from_u64(1));
        let grown = old.with_extra_symbols(2, &mut StdRng::seed_from_u64(2));
        assert_eq!(*grown.config(), Config::one_hot(5, 2, 2, 0.0));
        let w_old = old.tensor("lstm.weight_ih_l0").unwrap();
        let w_new = grown.tensor("lstm.weight_ih_l0").unwrap();
        for j in 0..8 {
            assert_eq!(&w_new[j * 5..j * 5 + 3], &w_old[j * 3..j * 3 + 3]);
            assert!(w_new[j * 5 + 3..j * 5 + 5]
                .iter()
                .all(|&w| w != 0.0 && w.abs() <= 1.0 / 2f32.sqrt()));
        }
        assert_eq!(
            &grown.tensor("dense.weight").unwrap()[..6],
            old.tensor("dense.weight").unwrap()
        );
        assert_eq!(
            &grown.tensor("dense.bias").unwrap()[..3],
            old.tensor("dense.bias").unwrap()
        );
        for name in ["lstm.weight_hh_l0", "lstm.weight_ih_l1", "lstm.bias_hh_l1"] {
            assert_eq!(grown.tensor(name), old.tensor(name), "{name}");
        }
    }
}
