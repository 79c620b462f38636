//! The reference implementation of the model on the CPU: forward pass, loss, and explicit
//! backpropagation through time, generic over f32 (training) and f64 (gradient checks).
//!
//! Model: K input indices per step (multi-hot over D; for the reference model one symbol id,
//! one-hot over V) → L stacked LSTM layers → dropout on the last layer's output → dense layer to
//! V logits → softmax cross-entropy. Batches are time-major: `inputs` are [T][B][K] and `targets`
//! [T][B] (row t holds the batch at step t), and every window starts from a zero state. All
//! buffers live in a [`Workspace`] allocated once per batch shape.
//!
//! The operations are in the files `gpu/` mirrors, with the same names: `lstm` (`input_term`,
//! `lstm_forward`, `lstm_step`, `lstm_backward` and the fused cells), `head` (`head_forward`,
//! `head_backward`), `matmul` (with the biases around a product), `adam` (`adam_update`) and
//! `stream`. They are public so that each GPU kernel can be tested against its CPU function.
//! For f32 the recurrence and the head of a training step run on the engine's own kernels instead
//! (`isa` chooses them, `microkernel` holds the tiles, `recurrence`, `weight_gradient` and
//! `head_fused` use them), unless a workspace is told to use the reference.

pub mod adam;
pub mod aligned;
pub mod head;
pub mod head_fused;
pub mod isa;
pub mod lstm;
pub mod matmul;
pub mod microkernel;
pub mod recurrence;
mod stream;
pub mod weight_gradient;

use std::ops::Range;

use rayon::prelude::*;

use crate::model::{Config, Dense, DenseMut, Float, Params};
use aligned::LineAligned;
use head_fused::HeadScratch;
use isa::Kernels;
use lstm::{Dims, LayerGradBuffers, LayerInput, LayerTape};
use recurrence::{f32s, f32s_mut};

pub use crate::model::Objective;
pub use isa::Isa;
pub use stream::StreamState;

/// Loss and accuracy summed over the positions of one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchStats {
    /// Σ −log p(target) over the positions.
    pub loss_sum: f64,
    /// Positions whose most probable symbol is the target.
    pub correct: usize,
    /// Positions the loss was taken at.
    pub count: usize,
}

/// Every activation and gradient buffer for one batch shape (B, T) and model config.
pub struct Workspace<F> {
    dims: Dims,
    layers: usize,
    /// What runs the recurrence; always the reference for f64.
    kernels: Kernels,
    /// The packed W_hh of the layer whose recurrence runs (scratch of the packed kernels).
    packed: Vec<f32>,
    /// The fused head's packed W_dense and partials of ∂L/∂W_dense.
    head: HeadScratch,
    /// One tape per layer when training; when evaluating only, layers ping-pong between two.
    tapes: Vec<LayerTape<F>>,
    /// [D][4H]: W_ih_l0 transposed, one row per input index.
    input_table: Vec<F>,
    /// [loss rows][H]: the last LSTM layer's output after dropout, the dense layer's input, for
    /// the reference head (made on its first use; the fused head keeps a block of it).
    dropped: Vec<F>,
    /// [T·B][V]: logits, then probabilities, then ∂L/∂logits.
    logits: Vec<F>,
    // Backward only; empty in an evaluation workspace.
    /// [T][B][H]: ∂L/∂h of the layer being differentiated.
    d_hidden: LineAligned<F>,
    /// [T][B][H]: ∂L/∂h of the layer below it.
    d_below: LineAligned<F>,
    /// [T][B][4H]: ∂L/∂(pre-activations), reused by every layer.
    d_gates: LineAligned<F>,
    /// [B][H]: ∂L/∂c carried backwards through time.
    d_cell: LineAligned<F>,
    /// D·4H: ∂L/∂W_ih_l0 gathered by input index, scratch of layer 0's input-term gradient
    /// (`lstm::input_term_backward`, or ∂L/∂W_hh's product on the packed kernels).
    d_table: Vec<F>,
}

impl<F: Float> Workspace<F> {
    /// A workspace for training ([`forward_backward`]) and everything else.
    pub fn new(config: &Config, batch: usize, steps: usize) -> Self {
        let dims = dims(config, batch, steps);
        let rows = steps * batch;
        let (h, d) = (config.hidden, config.input_width);
        let mut ws = Self::for_eval(config, batch, steps);
        ws.tapes = (0..config.layers).map(|_| LayerTape::new(dims)).collect();
        ws.d_hidden = LineAligned::filled(rows * h, F::ZERO);
        ws.d_below = LineAligned::filled(rows * h, F::ZERO);
        ws.d_gates = LineAligned::filled(rows * 4 * h, F::ZERO);
        ws.d_cell = LineAligned::filled(batch * h, F::ZERO);
        ws.d_table = vec![F::ZERO; d * 4 * h];
        ws
    }

    /// A smaller workspace for [`forward_eval`] and [`predict_last`] only: no gradient buffers,
    /// and at most two layer tapes.
    pub fn for_eval(config: &Config, batch: usize, steps: usize) -> Self {
        let dims = dims(config, batch, steps);
        let rows = steps * batch;
        let (h, v) = (config.hidden, config.vocab_size);
        Workspace {
            dims,
            layers: config.layers,
            kernels: match recurrence::is_f32::<F>() {
                true => Kernels::selected(),
                false => Kernels::Reference,
            },
            packed: Vec::new(),
            head: HeadScratch::default(),
            tapes: (0..config.layers.min(2))
                .map(|_| LayerTape::new(dims))
                .collect(),
            input_table: vec![F::ZERO; config.input_width * 4 * h],
            dropped: Vec::new(),
            logits: vec![F::ZERO; rows * v],
            d_hidden: LineAligned::default(),
            d_below: LineAligned::default(),
            d_gates: LineAligned::default(),
            d_cell: LineAligned::default(),
            d_table: Vec::new(),
        }
    }

    /// What runs the recurrence: [`Kernels::selected`] for f32 unless changed by
    /// [`Workspace::use_kernels`], the reference for f64.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Runs the recurrence on `kernels` from now on. Packed kernels need f32 and an instruction
    /// set this processor supports; anything else panics.
    pub fn use_kernels(&mut self, kernels: Kernels) {
        if let Kernels::Packed(isa) = kernels {
            assert!(recurrence::is_f32::<F>(), "the packed kernels are f32 only");
            assert!(isa.supported(), "this CPU lacks {isa}");
        }
        self.kernels = kernels;
    }

    /// Layer k's h_t and c_t, [T][B][H], from the last pass of a training workspace (an
    /// evaluation workspace reuses two tapes for all layers).
    pub fn layer_states(&self, layer: usize) -> (&[F], &[F]) {
        assert_eq!(
            self.tapes.len(),
            self.layers,
            "a training workspace keeps every layer"
        );
        let tape = &self.tapes[layer];
        (&tape.hidden, &tape.cell)
    }

    /// After [`forward_backward`]: ∂L/∂logits, [loss positions][V].
    pub fn logit_grads(&self, objective: Objective) -> &[F] {
        &self.logits
            [..loss_rows(objective, self.dims.batch, self.dims.steps).len() * self.dims.vocab]
    }

    /// Length of the dropout mask [`forward_backward`] takes: [T][B][H] for `All`, [B][H] for
    /// `Last` (one value per input of the dense layer).
    pub fn dropout_mask_len(&self, objective: Objective) -> usize {
        loss_rows(objective, self.dims.batch, self.dims.steps).len() * self.dims.hidden
    }
}

fn dims(config: &Config, batch: usize, steps: usize) -> Dims {
    assert!(batch > 0 && steps > 0, "empty batch shape");
    Dims {
        steps,
        batch,
        hidden: config.hidden,
        vocab: config.vocab_size,
        input_width: config.input_width,
        inputs_per_step: config.inputs_per_step,
    }
}

/// Fills the inverted-dropout mask of optimiser step `step`: value i is 0 with probability p,
/// else 1/(1−p), decided by [`dropout_keeps`]`(seed, step, i, `[`dropout_threshold`]`(p))`.
/// The hash is integer arithmetic, so every instruction set draws the same mask. Blocks of the
/// mask go to rayon's threads, and `isa`'s vectors hash 8 indices at once (AVX-512, whose DQ
/// extension multiplies 64-bit lanes) or 4 (AVX2): on one thread in scalar code, the mask took
/// 2–4 % of a training step.
pub fn fill_dropout_mask<F: Float>(isa: Isa, mask: &mut [F], p: f32, seed: u64, step: u64) {
    assert!(isa.supported(), "this CPU lacks {isa}");
    let draw = MaskDraw {
        keep: F::from_f64(1.0 / (1.0 - p as f64)),
        seed,
        step,
        threshold: dropout_threshold(p),
    };
    mask.par_chunks_mut(MASK_BLOCK)
        .enumerate()
        .for_each(|(b, block)| {
            let first = (b * MASK_BLOCK) as u64;
            match isa {
                // SAFETY: `isa` is supported (asserted above).
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { draw.fill_avx512(block, first) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { draw.fill_avx2(block, first) },
                _ => draw.fill(block, first),
            }
        });
}

/// Mask values per rayon task: 16 tasks for the bench's 4,096 rows of 256.
const MASK_BLOCK: usize = 1 << 16;

/// What decides the values of one step's mask.
#[derive(Clone, Copy)]
struct MaskDraw<F> {
    keep: F,
    seed: u64,
    step: u64,
    threshold: u64,
}

impl<F: Float> MaskDraw<F> {
    /// `block[i]`, the mask's value `first + i`.
    #[inline(always)]
    fn fill(self, block: &mut [F], first: u64) {
        for (i, m) in (first..).zip(block) {
            *m = match dropout_keeps(self.seed, self.step, i, self.threshold) {
                true => self.keep,
                false => F::ZERO,
            };
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn fill_avx512(self, block: &mut [F], first: u64) {
        self.fill(block, first)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fill_avx2(self, block: &mut [F], first: u64) {
        self.fill(block, first)
    }
}

/// Counter-based dropout: value `index` of the mask at optimiser step `step` is kept when the
/// top half of hash(seed, step, index) reaches `threshold`, [`dropout_threshold`]`(p)`. A pure
/// function of its arguments, so a resumed run draws the same masks, and the GPU kernel of the
/// same name draws the same ones as the CPU.
#[inline(always)]
pub fn dropout_keeps(seed: u64, step: u64, index: u64, threshold: u64) -> bool {
    dropout_hash(seed, step, index) >> 32 >= threshold
}

/// The least top half of a hash that [`dropout_keeps`] keeps at dropout rate p: ⌈p·2³²⌉. p·2³² is
/// exact in f64, so an integer reaches it exactly when it reaches its ceiling, and the comparison
/// stays in integers (converting every hash to f64 was half the mask's time).
pub fn dropout_threshold(p: f32) -> u64 {
    (p as f64 * 4_294_967_296.0).ceil() as u64
}

/// splitmix64's finaliser over (seed, step, index): every input bit affects every output bit.
#[inline(always)]
fn dropout_hash(seed: u64, step: u64, index: u64) -> u64 {
    let mut x =
        seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The rows of a time-major [T·B] buffer where the loss is taken (both engines use it).
pub fn loss_rows(objective: Objective, batch: usize, steps: usize) -> Range<usize> {
    let rows = steps * batch;
    match objective {
        Objective::All => 0..rows,
        Objective::Last => rows - batch..rows,
    }
}

/// Training step: the loss of a batch ([T][B][K] `inputs`, [T][B] `targets`) and the gradient
/// of its MEAN over the loss positions, written over `grads`. `dropout_mask` (see [`Workspace::dropout_mask_len`]) multiplies the last
/// LSTM layer's output; None means no dropout.
pub fn forward_backward<F: Float>(
    params: &Params<F>,
    inputs: &[u32],
    targets: &[u32],
    objective: Objective,
    dropout_mask: Option<&[F]>,
    ws: &mut Workspace<F>,
    grads: &mut Params<F>,
) -> BatchStats {
    assert_eq!(
        grads.config(),
        params.config(),
        "gradient and parameter shapes differ"
    );
    assert_eq!(
        ws.tapes.len(),
        ws.layers,
        "an evaluation workspace cannot train"
    );
    check_inputs(params, ws, inputs);
    check_targets(ws, targets);
    let dims = ws.dims;
    let h = dims.hidden;
    let rows = loss_rows(objective, dims.batch, dims.steps);
    if let Some(mask) = dropout_mask {
        assert_eq!(mask.len(), rows.len() * h, "dropout mask length");
    }

    // Forward.
    forward_layers(params, inputs, ws);
    let top = &ws.tapes[ws.layers - 1];
    let logits = &mut ws.logits[..rows.len() * dims.vocab];
    let loss_targets = &targets[rows.clone()];
    let top_hidden = &top.hidden[rows.start * h..rows.end * h];
    // Positions without loss get no gradient from the dense layer.
    ws.d_hidden[..rows.start * h].fill(F::ZERO);
    let d_hidden = &mut ws.d_hidden[rows.start * h..];
    let stats = match ws.kernels {
        // The head, its backward pass included, fused per block of rows.
        Kernels::Packed(isa) => {
            let (dense, d_dense) = (params.dense(), grads.dense_mut());
            head_fused::head_forward_backward(
                isa,
                Dense {
                    weight: f32s(dense.weight),
                    bias: f32s(dense.bias),
                },
                f32s(top_hidden),
                dropout_mask.map(f32s),
                loss_targets,
                f32s_mut(logits),
                DenseMut {
                    weight: f32s_mut(d_dense.weight),
                    bias: f32s_mut(d_dense.bias),
                },
                f32s_mut(d_hidden),
                &mut ws.head,
            )
        }
        Kernels::Reference => {
            ws.dropped.resize(rows.len() * h, F::ZERO);
            let dropped = &mut ws.dropped[..];
            let stats = head::head_forward(
                params.dense(),
                top_hidden,
                dropout_mask,
                loss_targets,
                dropped,
                logits,
            );
            // Backward, from the loss down to the input.
            head::head_backward(
                params.dense(),
                dropped,
                dropout_mask,
                loss_targets,
                stats.count,
                logits,
                grads.dense_mut(),
                d_hidden,
            );
            stats
        }
    };

    // Backward through the layers, from the top down to the input.
    for k in (0..ws.layers).rev() {
        let input = match k {
            0 => LayerInput::Indices(inputs),
            _ => LayerInput::Hidden(&ws.tapes[k - 1].hidden),
        };
        let buffers = LayerGradBuffers {
            d_hidden: &mut ws.d_hidden,
            d_gates: &mut ws.d_gates,
            d_cell: &mut ws.d_cell,
            d_table: &mut ws.d_table,
            d_input: (k > 0).then_some(&mut ws.d_below[..]),
        };
        let layer = params.lstm_layer(k);
        let packed = match ws.kernels {
            Kernels::Packed(isa) => Some((isa, &mut ws.packed)),
            Kernels::Reference => None,
        };
        lstm::lstm_backward_on(
            packed,
            layer,
            input,
            &ws.tapes[k],
            dims,
            buffers,
            grads.lstm_layer_mut(k),
        );
        // The layer below's ∂L/∂h is this layer's ∂L/∂x.
        std::mem::swap(&mut ws.d_hidden, &mut ws.d_below);
    }
    stats
}

/// Loss and accuracy of a batch without dropout or gradients.
pub fn forward_eval<F: Float>(
    params: &Params<F>,
    inputs: &[u32],
    targets: &[u32],
    objective: Objective,
    ws: &mut Workspace<F>,
) -> BatchStats {
    check_inputs(params, ws, inputs);
    check_targets(ws, targets);
    let rows = loss_rows(objective, ws.dims.batch, ws.dims.steps);
    let logits = dense_at(params, inputs, rows.clone(), ws);
    head::softmax_cross_entropy(logits, &targets[rows])
}

/// Softmax probabilities of the symbol after each window ([T][B][K] `inputs`), out_probs [B][V];
/// each window is read from a zero state.
pub fn predict_last<F: Float>(
    params: &Params<F>,
    inputs: &[u32],
    ws: &mut Workspace<F>,
    out_probs: &mut [F],
) {
    check_inputs(params, ws, inputs);
    let rows = loss_rows(Objective::Last, ws.dims.batch, ws.dims.steps);
    let v = ws.dims.vocab;
    assert_eq!(out_probs.len(), rows.len() * v, "out_probs is [B][V]");
    let logits = dense_at(params, inputs, rows, ws);
    for row in logits.chunks_exact_mut(v) {
        head::softmax_in_place(row);
    }
    out_probs.copy_from_slice(logits);
}

/// Runs all LSTM layers and the dense layer (no dropout) at `rows`; returns the logits.
fn dense_at<'w, F: Float>(
    params: &Params<F>,
    inputs: &[u32],
    rows: Range<usize>,
    ws: &'w mut Workspace<F>,
) -> &'w mut [F] {
    forward_layers(params, inputs, ws);
    let h = ws.dims.hidden;
    let top = &ws.tapes[(ws.layers - 1) % ws.tapes.len()];
    let logits = &mut ws.logits[..rows.len() * ws.dims.vocab];
    head::dense_forward(
        params.dense(),
        &top.hidden[rows.start * h..rows.end * h],
        h,
        logits,
    );
    logits
}

/// The forward pass of all LSTM layers. Layer k writes tape k mod (number of tapes): its own
/// tape when training, alternating between two when evaluating.
fn forward_layers<F: Float>(params: &Params<F>, inputs: &[u32], ws: &mut Workspace<F>) {
    let n_tapes = ws.tapes.len();
    for k in 0..ws.layers {
        let layer = params.lstm_layer(k);
        let here = k % n_tapes;
        if k == 0 {
            let gates = &mut ws.tapes[here].gates;
            let input = LayerInput::Indices(inputs);
            lstm::input_term(layer, input, ws.dims, &mut ws.input_table, gates);
        } else {
            let (below, tape) = below_and_here(&mut ws.tapes, (k - 1) % n_tapes, here);
            let input = LayerInput::Hidden(&below.hidden);
            lstm::input_term(layer, input, ws.dims, &mut ws.input_table, &mut tape.gates);
        }
        let tape = &mut ws.tapes[here];
        match ws.kernels {
            Kernels::Packed(isa) => {
                recurrence::forward(isa, layer.weight_hh, ws.dims, tape, &mut ws.packed)
            }
            Kernels::Reference => lstm::lstm_forward(layer.weight_hh, ws.dims, tape),
        }
    }
}

/// Tape `below` to read and tape `here` to write (distinct indices).
fn below_and_here<F>(
    tapes: &mut [LayerTape<F>],
    below: usize,
    here: usize,
) -> (&LayerTape<F>, &mut LayerTape<F>) {
    if below < here {
        let (left, right) = tapes.split_at_mut(here);
        (&left[below], &mut right[0])
    } else {
        let (left, right) = tapes.split_at_mut(below);
        (&right[0], &mut left[here])
    }
}

/// The workspace fits the model, and `inputs` are [T][B][K] indices below D.
fn check_inputs<F: Float>(params: &Params<F>, ws: &Workspace<F>, inputs: &[u32]) {
    let config = params.config();
    let model = |c: &Config| (c.hidden, c.vocab_size, c.layers, c.input_width);
    let dims = &ws.dims;
    assert_eq!(
        (model(config), config.inputs_per_step),
        (
            (dims.hidden, dims.vocab, ws.layers, dims.input_width),
            dims.inputs_per_step
        ),
        "workspace built for another model"
    );
    check_input_indices(inputs, config);
    assert_eq!(
        inputs.len(),
        dims.steps * dims.batch * dims.inputs_per_step,
        "inputs are [T][B][K]"
    );
}

/// Every engine's check of its inputs where they enter (training, prediction and streaming, on
/// the CPU and before an upload to the device): whole steps of K indices, each below D. Panics
/// saying which does not hold, as a symbol id out of the vocabulary does.
pub fn check_input_indices(inputs: &[u32], config: &Config) {
    let per_step = config.inputs_per_step;
    assert!(
        inputs.len().is_multiple_of(per_step),
        "{} input indices are not whole steps of {per_step} (inputs_per_step)",
        inputs.len()
    );
    if let Some(bad) = inputs.iter().find(|&&i| i as usize >= config.input_width) {
        panic!(
            "input index {bad} out of the input width {}",
            config.input_width
        );
    }
}

/// `targets` are [T][B] symbol ids within the vocabulary.
fn check_targets<F>(ws: &Workspace<F>, targets: &[u32]) {
    assert_eq!(
        targets.len(),
        ws.dims.steps * ws.dims.batch,
        "targets are [T][B]"
    );
    let v = ws.dims.vocab as u32;
    assert!(
        targets.iter().all(|&s| s < v),
        "symbol id out of the vocabulary"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_keeps_the_expected_fraction_and_is_repeatable() {
        let (p20, half) = (dropout_threshold(0.2), dropout_threshold(0.5));
        let kept = (0..100_000)
            .filter(|&i| dropout_keeps(7, 3, i, p20))
            .count();
        assert!((kept as f64 / 100_000.0 - 0.8).abs() < 0.005, "kept {kept}");
        let a: Vec<bool> = (0..64).map(|i| dropout_keeps(7, 3, i, half)).collect();
        let b: Vec<bool> = (0..64).map(|i| dropout_keeps(7, 3, i, half)).collect();
        let other_step: Vec<bool> = (0..64).map(|i| dropout_keeps(7, 4, i, half)).collect();
        assert_eq!(a, b);
        assert_ne!(a, other_step);
        assert!((0..1000).all(|i| dropout_keeps(1, 1, i, dropout_threshold(0.0))));
        let mut mask = vec![0.0f64; 8];
        fill_dropout_mask(Isa::Portable, &mut mask, 0.5, 7, 3);
        let expected: Vec<f64> = a[..8].iter().map(|&k| if k { 2.0 } else { 0.0 }).collect();
        assert_eq!(mask, expected);
    }

    /// The integer threshold keeps exactly what comparing the hash in f64 with p·2³² kept (the
    /// rule before it, so the masks did not change): over many hashes, and at each threshold and
    /// on either side of it.
    #[test]
    fn the_integer_threshold_keeps_what_the_f64_comparison_kept() {
        let kept_in_f64 = |top: u64, p: f32| top as f64 >= p as f64 * 4_294_967_296.0;
        for p in [0.0f32, 1e-9, 0.1, 0.2, 0.25, 0.5, 0.7, 0.999_999_9] {
            for index in 0..10_000 {
                let top = dropout_hash(3, 5, index) >> 32;
                let kept = dropout_keeps(3, 5, index, dropout_threshold(p));
                assert_eq!(kept, kept_in_f64(top, p), "p {p}");
            }
            let threshold = dropout_threshold(p);
            for top in threshold.saturating_sub(2)..threshold + 2 {
                assert_eq!(top >= threshold, kept_in_f64(top, p), "p {p}, top {top}");
            }
        }
    }
}
