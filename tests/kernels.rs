//! Kernels one at a time against the CPU function each follows, on every engine (see
//! tests/engines), as llm.c's dev/cuda tests do: one test per kernel, at shapes that are not
//! multiples of the kernels' tiles and blocks (H = 37, B = 5, T = 3, V = 11, and layer 0 reading
//! K = 3 indices among D = 23 columns), each printing its worst element.

use melody_engine::cpu::isa::Isa;
use melody_engine::cpu::lstm::{self, Dims, LayerGradBuffers, LayerInput, LayerTape};
use melody_engine::cpu::matmul::{matrix, matrix_mut};
use melody_engine::cpu::{self, adam, head};
use melody_engine::gpu::{self, Buffer, DeviceMatrix, Gpu, PersistentPlan};
use melody_engine::model::{Dense, DenseMut, LstmLayer, LstmLayerMut};
use melody_engine::optim::global_norm;
use ndarray::ArrayView2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod common;
#[macro_use]
mod engines;

use engines::assert_close;

const H: usize = 37;
const B: usize = 5;
const T: usize = 3;
const V: usize = 11;
/// Layer 0's input: K indices per step among D columns.
const D: usize = 23;
const K: usize = 3;
const ROWS: usize = T * B;
const DIMS: Dims = Dims {
    steps: T,
    batch: B,
    hidden: H,
    vocab: V,
    input_width: D,
    inputs_per_step: K,
};

/// `n` values drawn uniformly from (−scale, scale).
fn random(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-scale..scale)).collect()
}

fn upload<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    gpu: &Gpu,
    values: &[T],
) -> Buffer<T> {
    let buffer = gpu.alloc(values.len()).unwrap();
    gpu.upload(buffer.ptr(), values).unwrap();
    buffer
}

fn download(gpu: &Gpu, buffer: &Buffer<f32>) -> Vec<f32> {
    let mut out = vec![0.0; buffer.len()];
    gpu.download(buffer.ptr(), &mut out).unwrap();
    out
}

/// One LSTM layer's four tensors, with an input of width `input`.
struct Layer {
    weight_ih: Vec<f32>,
    weight_hh: Vec<f32>,
    bias_ih: Vec<f32>,
    bias_hh: Vec<f32>,
}

impl Layer {
    fn random(rng: &mut StdRng, input: usize) -> Layer {
        Layer {
            weight_ih: random(rng, 4 * H * input, 0.5),
            weight_hh: random(rng, 4 * H * H, 0.3),
            bias_ih: random(rng, 4 * H, 0.5),
            bias_hh: random(rng, 4 * H, 0.5),
        }
    }

    fn view(&self) -> LstmLayer<'_, f32> {
        LstmLayer {
            weight_ih: &self.weight_ih,
            weight_hh: &self.weight_hh,
            bias_ih: &self.bias_ih,
            bias_hh: &self.bias_hh,
        }
    }
}

/// The [rows × cols] row-major `x`, or its transpose [cols × rows] where `transposed`.
fn stored(x: &[f32], rows: usize, cols: usize, transposed: bool) -> Vec<f32> {
    match transposed {
        true => (0..cols * rows)
            .map(|i| x[(i % rows) * cols + i / rows])
            .collect(),
        false => x.to_vec(),
    }
}

/// The [rows × cols] matrix [`stored`] wrote, as a CPU view.
fn cpu_view(data: &[f32], rows: usize, cols: usize, transposed: bool) -> ArrayView2<'_, f32> {
    match transposed {
        true => matrix(data, cols, rows).reversed_axes(),
        false => matrix(data, rows, cols),
    }
}

/// The [rows × cols] matrix [`stored`] wrote, as a device view.
fn gpu_view(buffer: &Buffer<f32>, rows: usize, cols: usize, transposed: bool) -> DeviceMatrix {
    match transposed {
        true => DeviceMatrix::new(buffer.ptr(), cols, rows).t(),
        false => DeviceMatrix::new(buffer.ptr(), rows, cols),
    }
}

/// Gate activations as the forward pass leaves them: i, f, o in (0, 1), g in (−1, 1).
fn activations(rng: &mut StdRng, rows: usize) -> Vec<f32> {
    let mut gates = random(rng, rows * 4 * H, 1.0);
    for row in gates.chunks_exact_mut(4 * H) {
        for (j, x) in row.iter_mut().enumerate() {
            if j / H != 2 {
                *x = 0.5 + 0.5 * *x;
            }
        }
    }
    gates
}

test_engines! {
    /// The kernel table, the argument packing and the grid reach a kernel: kernels/probe.cu,
    /// over a grid that does not divide into whole blocks.
    fn probe_writes_each_thread_index(gpu) {
        let n = 1000;
        let indices = gpu.probe_indices(n, 7).unwrap();
        assert_eq!(indices, (7..7 + n as u32).collect::<Vec<_>>());
    }

    /// Layer 0's input term: per step the sum of K columns of W_ih (a repeated index twice),
    /// plus both biases; the same additions in the same order as the CPU, so the same bits.
    fn input_term(gpu) {
        let mut rng = StdRng::seed_from_u64(1);
        let layer = Layer::random(&mut rng, D);
        let indices = common::random_multi_hot(&mut rng, ROWS, D, K);
        let mut table = vec![0.0; D * 4 * H];
        let mut expected = vec![0.0; ROWS * 4 * H];
        lstm::input_term(layer.view(), LayerInput::Indices(&indices), DIMS, &mut table, &mut expected);

        let weights = (upload(&gpu, &layer.weight_ih), upload(&gpu, &layer.bias_ih), upload(&gpu, &layer.bias_hh));
        let gates = gpu.alloc(ROWS * 4 * H).unwrap();
        let indices = upload(&gpu, &indices);
        gpu.input_term((weights.0.ptr(), weights.1.ptr(), weights.2.ptr()), indices.ptr(), gates.ptr(), ROWS, 4 * H, (D, K)).unwrap();
        let gates = download(&gpu, &gates);
        assert_close("gates", &gates, &expected);
        assert_eq!(gates, expected, "not bit-identical");
    }

    /// One step's cell, from a carried c and from the zero state.
    fn lstm_cell_forward(gpu) {
        let mut rng = StdRng::seed_from_u64(2);
        let pre_activations = random(&mut rng, B * 4 * H, 4.0);
        let cell_prev = random(&mut rng, B * H, 2.0);
        for carried in [true, false] {
            let c_prev = if carried { cell_prev.clone() } else { vec![0.0; B * H] };
            let mut expected = (pre_activations.clone(), vec![0.0; B * H], vec![0.0; B * H], vec![0.0; B * H]);
            let (g, c, t, h) = (&mut expected.0, &mut expected.1, &mut expected.2, &mut expected.3);
            lstm::lstm_cell_forward(g, &c_prev, c, t, h, H);

            let gates = upload(&gpu, &pre_activations);
            let c_prev = upload(&gpu, &c_prev);
            let out: [Buffer<f32>; 3] = std::array::from_fn(|_| gpu.alloc(B * H).unwrap());
            let c_prev = carried.then(|| c_prev.ptr());
            gpu.lstm_cell_forward(gates.ptr(), c_prev, (out[0].ptr(), out[1].ptr(), out[2].ptr()), B, H).unwrap();
            eprintln!("c_prev carried: {carried}");
            assert_close("activations", &download(&gpu, &gates), &expected.0);
            assert_close("c", &download(&gpu, &out[0]), &expected.1);
            assert_close("tanh(c)", &download(&gpu, &out[1]), &expected.2);
            assert_close("h", &download(&gpu, &out[2]), &expected.3);
        }
    }

    /// One step's cell backwards, from a carried c and from the zero state.
    fn lstm_cell_backward(gpu) {
        let mut rng = StdRng::seed_from_u64(3);
        let gates = activations(&mut rng, B);
        let cell_prev = random(&mut rng, B * H, 2.0);
        let tanh_cell = random(&mut rng, B * H, 1.0);
        let d_hidden = random(&mut rng, B * H, 1.0);
        let d_cell = random(&mut rng, B * H, 1.0);
        for carried in [true, false] {
            let c_prev = if carried { cell_prev.clone() } else { vec![0.0; B * H] };
            let mut expected = (d_cell.clone(), vec![0.0; B * 4 * H]);
            lstm::lstm_cell_backward(&gates, &c_prev, &tanh_cell, &d_hidden, &mut expected.0, &mut expected.1, H);

            let forward = (upload(&gpu, &gates), upload(&gpu, &c_prev), upload(&gpu, &tanh_cell));
            let (d_h, d_c) = (upload(&gpu, &d_hidden), upload(&gpu, &d_cell));
            let d_gates = gpu.alloc(B * 4 * H).unwrap();
            let c_prev = carried.then(|| forward.1.ptr());
            gpu.lstm_cell_backward((forward.0.ptr(), c_prev, forward.2.ptr()), d_h.ptr(), d_c.ptr(), d_gates.ptr(), B, H).unwrap();
            eprintln!("c_prev carried: {carried}");
            assert_close("∂L/∂c through c_{t-1}", &download(&gpu, &d_c), &expected.0);
            assert_close("∂L/∂a", &download(&gpu, &d_gates), &expected.1);
        }
    }

    /// Layer 0's ∂L/∂W_ih: per input index, the sum of ∂L/∂a over every (row, k) holding it (a
    /// row twice where a step repeats the index), in the CPU's order, so the same bits; an index
    /// absent from the batch gets a zero column.
    fn input_term_backward(gpu) {
        let mut rng = StdRng::seed_from_u64(4);
        let d_gates = random(&mut rng, ROWS * 4 * H, 1.0);
        let absent = 7;
        let indices: Vec<u32> = common::random_multi_hot(&mut rng, ROWS, D - 1, K)
            .into_iter()
            .map(|d| if d >= absent { d + 1 } else { d })
            .collect();
        let (mut d_table, mut expected) = (vec![0.0; D * 4 * H], vec![0.0; 4 * H * D]);
        let (mut d_bias, mut column_sum) = (vec![0.0; 4 * H], vec![0.0; 4 * H]);
        lstm::input_term_backward(&d_gates, &indices, K, D, &mut d_table, &mut expected, &mut d_bias);
        cpu::matmul::column_sums(&d_gates, &mut column_sum);
        assert_eq!(d_bias, column_sum, "the bias gradient on the way");
        assert!(expected.iter().skip(absent as usize).step_by(D).all(|&d| d == 0.0));

        let by_index = gpu::IndexRows::of(&indices, K, D);
        assert_eq!(by_index.rows.len(), ROWS * K);
        let (offsets, rows) = (upload(&gpu, &by_index.offsets), upload(&gpu, &by_index.rows));
        // NaN until written: every element, the absent index's too, must be.
        let d_weight_ih = upload(&gpu, &vec![f32::NAN; 4 * H * D]);
        gpu.input_term_backward(upload(&gpu, &d_gates).ptr(), (offsets.ptr(), rows.ptr()), d_weight_ih.ptr(), 4 * H, D).unwrap();
        let d_weight_ih = download(&gpu, &d_weight_ih);
        assert_close("∂L/∂W_ih", &d_weight_ih, &expected);
        assert_eq!(d_weight_ih, expected, "not bit-identical");
    }

    /// All T steps of a layer in one launch, as `lstm_forward`: the device's layout, over one
    /// chunk of rows and over two with a ragged end, and a layout squeezed into 7 KB of shared
    /// memory.
    fn lstm_forward_persistent(gpu) {
        for (plan, batch) in persistent_cases(&gpu) {
            persistent_forward(&gpu, &plan, batch);
        }
    }

    /// All T steps of a layer's BPTT in one launch, as the recurrence of `lstm_backward`, in the
    /// cases of `lstm_forward_persistent`.
    fn lstm_backward_persistent(gpu) {
        for (plan, batch) in persistent_cases(&gpu) {
            persistent_backward(&gpu, &plan, batch);
        }
    }

    /// Products of contiguous and transposed (strided) views, written and accumulated, over more
    /// than one 64×64 tile with ragged edges.
    fn matmul(gpu) {
        let mut rng = StdRng::seed_from_u64(7);
        let (m, k, n) = (67, 4 * H, 2 * V + 49);
        let a = random(&mut rng, m * k, 1.0);
        let b = random(&mut rng, k * n, 1.0);
        let start = random(&mut rng, m * n, 1.0);
        // (name, A stored transposed, B stored transposed, accumulate): a transposed case reads
        // the same values through a transposed view of their transpose, so its strides differ
        // and its product does not.
        let cases = [
            ("a·b", false, false, false),
            ("a·b accumulated", false, false, true),
            ("(aᵀ)ᵀ·(bᵀ)ᵀ", true, true, false),
            ("(aᵀ)ᵀ·b accumulated", true, false, true),
        ];
        for (name, a_transposed, b_transposed, accumulate) in cases {
            let (a_data, b_data) = (stored(&a, m, k, a_transposed), stored(&b, k, n, b_transposed));
            let mut expected = start.clone();
            let (a_view, b_view) = (cpu_view(&a_data, m, k, a_transposed), cpu_view(&b_data, k, n, b_transposed));
            cpu::matmul::matmul(matrix_mut(&mut expected, m, n), accumulate, a_view, b_view);

            let (a_buffer, b_buffer) = (upload(&gpu, &a_data), upload(&gpu, &b_data));
            let (a_view, b_view) = (gpu_view(&a_buffer, m, k, a_transposed), gpu_view(&b_buffer, k, n, b_transposed));
            let out = upload(&gpu, &start);
            gpu.matmul(out.ptr(), accumulate, a_view, b_view).unwrap();
            assert_close(name, &download(&gpu, &out), &expected);
        }
    }

    /// Biases written to every row, one and two at once.
    fn broadcast_rows(gpu) {
        let mut rng = StdRng::seed_from_u64(8);
        let (a, b) = (random(&mut rng, 4 * H, 1.0), random(&mut rng, 4 * H, 1.0));
        for both in [true, false] {
            let mut expected = vec![0.0; ROWS * 4 * H];
            cpu::matmul::broadcast_rows(&mut expected, &a, both.then_some(&b[..]));
            let (a_gpu, b_gpu) = (upload(&gpu, &a), upload(&gpu, &b));
            let out = gpu.alloc(ROWS * 4 * H).unwrap();
            gpu.broadcast_rows(out.ptr(), a_gpu.ptr(), both.then(|| b_gpu.ptr()), ROWS, 4 * H).unwrap();
            assert_close(if both { "a + b" } else { "a" }, &download(&gpu, &out), &expected);
        }
    }

    /// Column sums over more rows than one chunk (column_sums_partial, then column_sums_finish).
    fn column_sums(gpu) {
        let mut rng = StdRng::seed_from_u64(9);
        let (rows, cols) = (67 * B, 4 * H);
        let x = random(&mut rng, rows * cols, 1.0);
        let mut expected = vec![0.0; cols];
        cpu::matmul::column_sums(&x, &mut expected);
        let partial = gpu.alloc(gpu::column_sums_scratch(rows, cols)).unwrap();
        let out = gpu.alloc(cols).unwrap();
        gpu.column_sums(upload(&gpu, &x).ptr(), rows, cols, &partial, out.ptr()).unwrap();
        assert_close("column sums", &download(&gpu, &out), &expected);
    }

    /// The fused head against cpu::head's forward then backward: the CPU's dropout mask of the
    /// same (seed, step) forward (in the dense gradients) and backward (in ∂L/∂h), the losses,
    /// the correct rows, ∂(mean loss)/∂logits and the dense gradients; with V below one warp's
    /// lanes and above, without dropout, over rows that no chunk or group of 8 divides, at the
    /// model's shape (V = 38, H = 256), and at a V·H that takes two tiles of units. A second run
    /// gives the same bits (the partials are added in a fixed order).
    fn head_forward_backward(gpu) {
        let mut rng = StdRng::seed_from_u64(10);
        let ragged = 67 * B + 3;
        let cases = [(ROWS, H, V, 0.3), (ROWS, H, 2 * 32 + 3, 0.5), (ROWS, H, V, 0.0), (ragged, H, V, 0.3), (ragged, 256, 38, 0.3), (40, 1000, 67, 0.3)];
        for (rows, units, vocab, p) in cases {
            let (seed, step) = (11, 4);
            let hidden = random(&mut rng, rows * units, 1.0);
            let (weight, bias) = (random(&mut rng, vocab * units, 1.0), random(&mut rng, vocab, 1.0));
            let targets = common::random_symbols(&mut rng, rows, vocab);
            let dense = Dense { weight: &weight, bias: &bias };
            let mask = (p > 0.0).then(|| {
                let mut mask = vec![0.0; rows * units];
                cpu::fill_dropout_mask(Isa::Portable, &mut mask, p, seed, step);
                mask
            });
            let (mut dropped, mut logits) = (vec![0.0; rows * units], vec![0.0; rows * vocab]);
            let stats = head::head_forward(dense, &hidden, mask.as_deref(), &targets, &mut dropped, &mut logits);
            let mut d_dense = vec![0.0; vocab * units + vocab];
            let (d_weight, d_bias) = d_dense.split_at_mut(vocab * units);
            let mut d_hidden = vec![0.0; rows * units];
            let grads = DenseMut { weight: d_weight, bias: d_bias };
            let dense = Dense { weight: &weight, bias: &bias };
            head::head_backward(dense, &dropped, mask.as_deref(), &targets, rows, &mut logits, grads, &mut d_hidden);

            let plan = gpu.head_plan(rows, units, vocab).unwrap();
            eprintln!("{rows} rows, H = {units}, V = {vocab}, dropout {p}: {plan:?}");
            let params = (upload(&gpu, &weight), upload(&gpu, &bias));
            let (hidden_gpu, targets_gpu) = (upload(&gpu, &hidden), upload(&gpu, &targets));
            // NaN until written: every element must be.
            let out = [rows * vocab, rows * units, vocab * units + vocab].map(|n| upload(&gpu, &vec![f32::NAN; n]));
            let results = gpu.alloc::<f64>(2 * rows).unwrap();
            let partials = gpu.alloc(gpu.head_scratch(rows, units, vocab).unwrap()).unwrap();
            let outputs = (out[0].ptr(), out[1].ptr(), results.ptr(), out[2].ptr());
            let run = || {
                gpu.head_forward_backward((params.0.ptr(), params.1.ptr()), hidden_gpu.ptr(), targets_gpu.ptr(), outputs, &partials, (rows, units, vocab), (seed, step), p).unwrap();
                download(&gpu, &out[2])
            };
            let first = run();
            assert_close("∂L/∂logits", &download(&gpu, &out[0]), &logits);
            assert_close("∂L/∂h, through the mask", &download(&gpu, &out[1]), &d_hidden);
            assert_close("∂L/∂W_dense, ∂L/∂b_dense", &first, &d_dense);
            let mut per_row = vec![0.0f64; 2 * rows];
            gpu.download(results.ptr(), &mut per_row).unwrap();
            let (losses, correct) = per_row.split_at(rows);
            let loss_sum: f64 = losses.iter().sum();
            eprintln!("  loss: gpu {loss_sum}, cpu {}", stats.loss_sum);
            assert!((loss_sum - stats.loss_sum).abs() <= 1e-5 * stats.loss_sum.abs().max(1.0));
            assert_eq!(correct.iter().filter(|&&c| c != 0.0).count(), stats.correct);
            let second = run();
            assert!(first.iter().zip(&second).all(|(a, b)| a.to_bits() == b.to_bits()), "runs differ");
        }
    }

    /// Inference's softmax, with V below one warp's lanes and above.
    fn softmax(gpu) {
        let mut rng = StdRng::seed_from_u64(12);
        for vocab in [V, 2 * 32 + 3] {
            let logits = random(&mut rng, ROWS * vocab, 4.0);
            let mut expected = logits.clone();
            expected.chunks_exact_mut(vocab).for_each(|row| {
                head::softmax_in_place(row);
            });
            let buffer = upload(&gpu, &logits);
            gpu.softmax(buffer.ptr(), ROWS, vocab).unwrap();
            assert_close(&format!("softmax over {vocab}"), &download(&gpu, &buffer), &expected);
        }
    }

    /// One update with the clipping scale folded in, as `Adam::step` clips the gradient first.
    fn adam_update(gpu) {
        let mut rng = StdRng::seed_from_u64(13);
        let n = 4 * H * V + 3;
        let (theta, grads) = (random(&mut rng, n, 1.0), random(&mut rng, n, 1.0));
        let (m, v) = (random(&mut rng, n, 0.1), random(&mut rng, n, 0.1).iter().map(|x| x.abs()).collect::<Vec<_>>());
        let (scale, lr_t, rates) = (0.5, 1e-2, (0.1, 0.001, 1e-7));
        let mut expected = (theta.clone(), m.clone(), v.clone());
        let clipped: Vec<f32> = grads.iter().map(|g| g * scale).collect();
        adam::adam_update(&mut expected.0, &clipped, (&mut expected.1, &mut expected.2), lr_t, rates);

        let buffers = [&theta, &grads, &m, &v].map(|x| upload(&gpu, x));
        gpu.adam_update(buffers[0].ptr(), buffers[1].ptr(), (buffers[2].ptr(), buffers[3].ptr()), n, scale, lr_t, rates).unwrap();
        assert_close("θ", &download(&gpu, &buffers[0]), &expected.0);
        assert_close("m", &download(&gpu, &buffers[2]), &expected.1);
        assert_close("v", &download(&gpu, &buffers[3]), &expected.2);
    }

    /// Σ g² over a grid that strides past the end, as `global_norm` squared.
    fn sum_squares(gpu) {
        let g = random(&mut StdRng::seed_from_u64(14), 4 * H * V + 3, 1.0);
        let block_sums = gpu.alloc::<f64>(7).unwrap();
        let sum = gpu.sum_squares(upload(&gpu, &g).ptr(), g.len(), &block_sums).unwrap();
        let expected = global_norm(&g);
        eprintln!("  norm: gpu {}, cpu {expected}", sum.sqrt());
        assert!((sum.sqrt() as f32 - expected).abs() <= 1e-6 * expected);
    }
}

// The weight gradients: split-K products over K rows that no split, slice or tile divides.
test_engines! {
    /// ∂L/∂W = d_outᵀ·x at odd shapes, with vector loads (strides a multiple of 4) and without,
    /// over more than one 128×128 tile and several splits, and over no rows at all (zero).
    fn weight_gradient(gpu) {
        let mut rng = StdRng::seed_from_u64(15);
        // (m, n, k): ∂L/∂W_hh's shape with H = 37 (strides 148 and 37: scalar loads of x), one
        // with every stride a multiple of 4 (vector loads), and a product over zero rows.
        for (m, n, k) in [(4 * H, H, 67 * B + 3), (132, 2 * 68, 67 * B + 3), (4 * H, H, 0)] {
            let d_out = random(&mut rng, k * m, 1.0);
            let x = random(&mut rng, k * n, 1.0);
            let mut expected = vec![0.0; m * n];
            cpu::matmul::matmul(matrix_mut(&mut expected, m, n), false, matrix(&d_out, k, m).t(), matrix(&x, k, n));

            let (splits, rows_per_split) = gpu.weight_gradient_splits(m, n, k);
            eprintln!("{m}×{n} over {k} rows: {splits} splits of {rows_per_split} rows");
            if k > 0 {
                assert!(splits > 1 && k % rows_per_split != 0, "the case should split K unevenly");
            }
            let (d_out, x) = (upload(&gpu, &d_out), upload(&gpu, &x));
            let partials = gpu.alloc(gpu.weight_gradient_scratch(m, n, k)).unwrap();
            // NaN until written: every element must be.
            let out = upload(&gpu, &vec![f32::NAN; m * n]);
            let views = (DeviceMatrix::new(d_out.ptr(), k, m), DeviceMatrix::new(x.ptr(), k, n));
            gpu.weight_gradient(out.ptr(), views.0, views.1, &partials).unwrap();
            let first = download(&gpu, &out);
            assert_close(&format!("{m}×{n} over {k} rows"), &first, &expected);

            // The partials are added in a fixed order: a second run gives the same bits.
            gpu.weight_gradient(out.ptr(), views.0, views.1, &partials).unwrap();
            let second = download(&gpu, &out);
            assert!(first.iter().zip(&second).all(|(a, b)| a.to_bits() == b.to_bits()), "runs differ");
        }
    }
}

// TF32: the weight gradients on tensor cores (the host emulation's twin rounds as they do).
test_engines! {
    /// ∂L/∂W = d_outᵀ·x with --tf32 at weight_gradient's odd shapes, against the exact sum (f64).
    /// Each operand rounded to 10 mantissa bits is within u = 2⁻¹¹ of itself relatively, so a
    /// product of two within (2u + u²)·|a·b|; fp32 sums of k such terms add at most k·2⁻²⁴ of
    /// Σ|a·b| (doubled for slack). Bound: (2⁻¹⁰ + 2⁻²² + k·2⁻²³)·Σ_r |d_out[r][i]·x[r][j]|.
    fn weight_gradient_tf32(gpu) {
        let mut gpu = gpu;
        if let Err(why) = gpu.use_tf32(true) {
            eprintln!("skipped: {why}");
            return;
        }
        let mut rng = StdRng::seed_from_u64(16);
        for (m, n, k) in [(4 * H, H, 67 * B + 3), (132, 2 * 68, 67 * B + 3)] {
            let d_out = random(&mut rng, k * m, 1.0);
            let x = random(&mut rng, k * n, 1.0);
            let (d_out_gpu, x_gpu) = (upload(&gpu, &d_out), upload(&gpu, &x));
            let partials = gpu.alloc(gpu.weight_gradient_scratch(m, n, k)).unwrap();
            let out = upload(&gpu, &vec![f32::NAN; m * n]);
            let views = (DeviceMatrix::new(d_out_gpu.ptr(), k, m), DeviceMatrix::new(x_gpu.ptr(), k, n));
            gpu.weight_gradient(out.ptr(), views.0, views.1, &partials).unwrap();
            let got = download(&gpu, &out);
            let factor = 2f64.powi(-10) + 2f64.powi(-22) + k as f64 * 2f64.powi(-23);
            let mut worst = (0.0f64, 0);
            for (e, &g) in got.iter().enumerate() {
                let (i, j) = (e / n, e % n);
                let terms = (0..k).map(|r| d_out[r * m + i] as f64 * x[r * n + j] as f64);
                let (exact, magnitude) = terms.fold((0.0, 0.0), |(s, a), p| (s + p, a + p.abs()));
                let fraction = (g as f64 - exact).abs() / (factor * magnitude);
                assert!(fraction <= 1.0, "{m}×{n} over {k} rows [{i}][{j}]: gpu {g}, exact {exact}, Σ|a·b| {magnitude}");
                if fraction > worst.0 {
                    worst = (fraction, e);
                }
            }
            eprintln!("  {m}×{n} over {k} rows, TF32: worst element {:.3} of the bound (at {})", worst.0, worst.1);
        }
    }

    /// The rounding to TF32 alone, bit for bit against a reference in f64 arithmetic: d_out's
    /// single row times x = [1.0] gives each rounded operand exactly. Ties (away from zero),
    /// values just below them, a carry into the exponent, overflow to infinity, infinities and
    /// NaN; subnormals on the host emulation only (whether tensor cores keep them is the
    /// device's business). Zero's sign is not compared: the sum starts at +0.
    fn tf32_rounding(gpu, engine) {
        let mut gpu = gpu;
        if let Err(why) = gpu.use_tf32(true) {
            eprintln!("skipped: {why}");
            return;
        }
        let tie = 2f32.powi(-11);
        let mut values = vec![1.0, 1.0 + tie, -(1.0 + tie), 1.0 + 3.0 * tie, 1.0 + tie - f32::EPSILON, 1.5 - tie, 2.0 - tie,
            f32::MAX, -f32::MAX, f32::MIN_POSITIVE, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 3.0e38, 1.0e-30, -7.25e5];
        if engine == "host" {
            let subnormals = [2f32.powi(-137), -2f32.powi(-137), 2f32.powi(-149), f32::MIN_POSITIVE - 2f32.powi(-149), 3.0 * 2f32.powi(-137)];
            values.extend(subnormals);
        }
        let mut rng = StdRng::seed_from_u64(17);
        values.extend((0..64).map(|_| rng.gen_range(-1.0f32..1.0) * 2f32.powi(rng.gen_range(-60..60))));
        let m = values.len();
        let (d_out, x) = (upload(&gpu, &values), upload(&gpu, &[1.0f32]));
        let out = upload(&gpu, &vec![0.5f32; m]);
        let partials = gpu.alloc(gpu.weight_gradient_scratch(m, 1, 1)).unwrap();
        gpu.weight_gradient(out.ptr(), DeviceMatrix::new(d_out.ptr(), 1, m), DeviceMatrix::new(x.ptr(), 1, 1), &partials).unwrap();
        for (&value, got) in values.iter().zip(download(&gpu, &out)) {
            let want = tf32_reference(value);
            assert!(got == want || (got.is_nan() && want.is_nan()), "{value:e} ({:#010x}): gpu {got:e}, reference {want:e}", value.to_bits());
        }
        eprintln!("  {m} values rounded to TF32 as the reference rounds them");
    }
}

/// `x` rounded to TF32 (10 mantissa bits) to nearest, ties away from zero, in f64 arithmetic:
/// the multiple of the TF32 spacing at x's binade (2⁻¹³⁶ below the normal range) nearest to
/// |x|, halves rounded up, with x's sign; beyond f32::MAX infinity. Infinities and NaN unchanged.
fn tf32_reference(x: f32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    let exponent = ((x.to_bits() >> 23) & 0xff) as i32;
    let spacing = 2f64.powi(exponent.max(1) - 127 - 10);
    let rounded = ((x.abs() as f64 / spacing) + 0.5).floor() * spacing;
    (rounded as f32).copysign(x)
}

/// The persistent kernels' cases: the device's layout at B and at a batch of two chunks with a
/// ragged end, and one that fits 7 KB of shared memory (backwards, chunks of 4 rows for B = 5).
fn persistent_cases(gpu: &Gpu) -> Vec<(PersistentPlan, usize)> {
    let Some(plan) = gpu.persistent_plan(H).unwrap() else {
        eprintln!("skipped: no persistent layout for H = {H} on this device");
        return Vec::new();
    };
    let two_chunks = plan
        .forward
        .rows_per_chunk
        .max(plan.backward.rows_per_chunk)
        + 3;
    let squeezed = PersistentPlan::fit(H, 8, 7 * 1024).unwrap();
    assert!(squeezed.backward.rows_per_chunk < B && squeezed.backward.k_split > 1);
    vec![(plan, B), (plan, two_chunks), (squeezed, B)]
}

fn persistent_forward(gpu: &Gpu, plan: &PersistentPlan, batch: usize) {
    eprintln!("{plan}, B = {batch}");
    let dims = Dims { batch, ..DIMS };
    let rows = T * batch;
    let mut rng = StdRng::seed_from_u64(5);
    let input_terms = random(&mut rng, rows * 4 * H, 1.0);
    let weight_hh = random(&mut rng, 4 * H * H, 0.3);
    let mut tape = LayerTape::new(dims);
    tape.gates.copy_from_slice(&input_terms);
    lstm::lstm_forward(&weight_hh, dims, &mut tape);

    let gates = upload(gpu, &input_terms);
    let w_hh = upload(gpu, &weight_hh);
    let out: [Buffer<f32>; 3] = std::array::from_fn(|_| gpu.alloc(rows * H).unwrap());
    let barrier = gpu.alloc(2).unwrap();
    let buffers = (
        gates.ptr(),
        w_hh.ptr(),
        out[0].ptr(),
        out[1].ptr(),
        out[2].ptr(),
    );
    gpu.lstm_forward_persistent(plan, buffers, (T, batch, H), &barrier)
        .unwrap();
    assert_close("activations", &download(gpu, &gates), &tape.gates);
    assert_close("c", &download(gpu, &out[0]), &tape.cell);
    assert_close("tanh(c)", &download(gpu, &out[1]), &tape.tanh_cell);
    assert_close("h", &download(gpu, &out[2]), &tape.hidden);
}

fn persistent_backward(gpu: &Gpu, plan: &PersistentPlan, batch: usize) {
    eprintln!("{plan}, B = {batch}");
    let dims = Dims { batch, ..DIMS };
    let rows = T * batch;
    let mut rng = StdRng::seed_from_u64(6);
    let layer = Layer::random(&mut rng, H);
    let below = random(&mut rng, rows * H, 1.0);
    let mut tape = LayerTape::new(dims);
    tape.gates
        .copy_from_slice(&random(&mut rng, rows * 4 * H, 1.0));
    lstm::lstm_forward(&layer.weight_hh, dims, &mut tape);
    let d_from_above = random(&mut rng, rows * H, 1.0);
    let mut expected = (d_from_above.clone(), vec![0.0; rows * 4 * H]);
    let mut grads = Layer::random(&mut rng, H);
    let (mut d_cell, mut d_table, mut d_input) = (
        vec![0.0; batch * H],
        vec![0.0; V * 4 * H],
        vec![0.0; rows * H],
    );
    let buffers = LayerGradBuffers {
        d_hidden: &mut expected.0,
        d_gates: &mut expected.1,
        d_cell: &mut d_cell,
        d_table: &mut d_table,
        d_input: Some(&mut d_input),
    };
    let grads = LstmLayerMut {
        weight_ih: &mut grads.weight_ih,
        weight_hh: &mut grads.weight_hh,
        bias_ih: &mut grads.bias_ih,
        bias_hh: &mut grads.bias_hh,
    };
    lstm::lstm_backward(
        layer.view(),
        LayerInput::Hidden(&below),
        &tape,
        dims,
        buffers,
        grads,
    );

    let forward = [
        &tape.gates[..],
        &tape.cell,
        &tape.tanh_cell,
        &layer.weight_hh,
    ]
    .map(|x| upload(gpu, x));
    let d_hidden = upload(gpu, &d_from_above);
    let d_cell = gpu.alloc(batch * H).unwrap();
    let d_gates = gpu.alloc(rows * 4 * H).unwrap();
    let barrier = gpu.alloc(2).unwrap();
    let tape_buffers = (
        forward[0].ptr(),
        forward[1].ptr(),
        forward[2].ptr(),
        forward[3].ptr(),
    );
    let grads = (d_hidden.ptr(), d_cell.ptr(), d_gates.ptr());
    gpu.lstm_backward_persistent(plan, tape_buffers, grads, (T, batch, H), &barrier)
        .unwrap();
    assert_close("total ∂L/∂h", &download(gpu, &d_hidden), &expected.0);
    assert_close("∂L/∂a", &download(gpu, &d_gates), &expected.1);
}

/// Which recurrence the planner picks for H = 256, 512 and 1024 on an H200's 132
/// multiprocessors, without opting in (48 KB a block) and with (227 KB).
#[test]
fn the_planner_keeps_large_layers_persistent_with_opt_in_shared_memory() {
    let (sms, default, opt_in) = (132, 48 * 1024, 227 * 1024);
    let plan = |units, limit| PersistentPlan::fit(units, sms, limit);
    for units in [256, 512, 1024] {
        for limit in [default, opt_in] {
            match plan(units, limit) {
                Ok(plan) => eprintln!("H = {units}, {} KB: {plan}", limit / 1024),
                Err(why) => eprintln!(
                    "H = {units}, {} KB: one launch per step: {why}",
                    limit / 1024
                ),
            }
        }
    }
    // H = 256: 2 units a block; W_hh's slice is 8 KB, so both limits hold it. Without opting in
    // the forward stages 16 rows of h (1 KB each) at a time and the backward 8 rows of ∂L/∂a
    // (4 KB each); with it, 64 and 32.
    let small = plan(256, default).unwrap();
    assert_eq!((small.blocks, small.units_per_block), (128, 2));
    let chunks = |p: &PersistentPlan| (p.forward.rows_per_chunk, p.backward.rows_per_chunk);
    assert_eq!(chunks(&small), (16, 8));
    let large = plan(256, opt_in).unwrap();
    assert_eq!(chunks(&large), (64, 32));
    for (p, limit) in [(small, default), (large, opt_in)] {
        for layout in [p.forward, p.backward] {
            assert!(layout.threads <= 256 && layout.shared_bytes <= limit);
        }
    }
    // H = 512: 4 units a block; the backward's slice (32 KB) and 4 staged rows (32 KB) need
    // opting in.
    assert!(plan(512, default).unwrap_err().contains("backward"));
    let h512 = plan(512, opt_in).unwrap();
    assert_eq!((h512.blocks, h512.units_per_block), (128, 4));
    // H = 1024: 8 units a block; W_hh's slice alone is 128 KB.
    assert!(plan(1024, default).unwrap_err().contains("forward"));
    let h1024 = plan(1024, opt_in).unwrap();
    assert_eq!((h1024.blocks, h1024.units_per_block), (128, 8));
    assert!(h1024.forward.shared_bytes > 128 * 1024 && h1024.backward.shared_bytes <= opt_in);
}
