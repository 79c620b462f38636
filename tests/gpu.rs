//! The CUDA engine against the CPU reference, whole steps at a time: a training step, inference
//! and streaming, generation and a short training run, each case on every engine (see
//! tests/engines).

use melody_engine::backend::{Backend, Batch, CpuBackend};
use melody_engine::cpu::isa::Isa;
use melody_engine::cpu::{self, Objective, Workspace};
use melody_engine::dataset::Dataset;
use melody_engine::encode::Vocabulary;
use melody_engine::generate::{generate, GenerateOptions};
use melody_engine::gpu::{kernels, CudaBackend, Gpu};
use melody_engine::model::{Config, Params};
use melody_engine::optim::Adam;
use melody_engine::sample::{Sampler, SamplingConfig};
use melody_engine::train::{self, TrainOptions};
use rand::rngs::StdRng;
use rand::SeedableRng;

mod common;
#[macro_use]
mod engines;

use engines::assert_close;

struct Case {
    layers: usize,
    batch: usize,
    steps: usize,
    hidden: usize,
    vocab: usize,
    /// Layer 0's input: D columns, K indices per step (D = V, K = 1 for the one-hot model).
    input: (usize, usize),
    objective: Objective,
    dropout: f32,
}

/// One training step on both engines from the same parameters and batch: the loss, every layer's
/// h and c, ∂L/∂logits, every gradient, then the Adam update and its state.
fn compare_training_step(gpu: Gpu, case: &Case, clip: Option<f32>, persistent: bool) {
    eprintln!("on {}", gpu.description());
    let on_the_host = gpu.is_host();
    let (width, per_step) = case.input;
    let config = Config::one_hot(case.vocab, case.hidden, case.layers, case.dropout)
        .multi_hot(width, per_step);
    let (b, t) = (case.batch, case.steps);
    eprintln!(
        "L={} B={b} T={t} H={} V={} D={width} K={per_step} {:?} dropout {} clip {clip:?}",
        case.layers, case.hidden, case.vocab, case.objective, case.dropout
    );
    let mut rng = StdRng::seed_from_u64(b as u64 * 1000 + t as u64);
    let params = Params::<f32>::init(config, &mut rng);
    let inputs = common::random_multi_hot(&mut rng, b * t, width, per_step);
    let targets = common::random_symbols(&mut rng, b * t, case.vocab);
    let seed = 11;

    // CPU: the reference step, with the mask of optimiser step 0.
    let mut ws = Workspace::new(&config, b, t);
    let mut cpu_grads = Params::zeros(config);
    let mask = (case.dropout > 0.0).then(|| {
        let mut mask = vec![0.0; ws.dropout_mask_len(case.objective)];
        cpu::fill_dropout_mask(Isa::Portable, &mut mask, case.dropout, seed, 0);
        mask
    });
    let cpu_stats = cpu::forward_backward(
        &params,
        &inputs,
        &targets,
        case.objective,
        mask.as_deref(),
        &mut ws,
        &mut cpu_grads,
    );

    let mut adam = Adam::new(config.num_params());
    adam.clip = clip;
    let mut backend = CudaBackend::new(gpu, params.clone(), adam.clone()).unwrap();
    backend.use_persistent_recurrence(persistent).unwrap();
    if on_the_host {
        // Every shape tested fits the persistent layout there: the path asked for is the one run.
        assert_eq!(backend.persistent_recurrence(), persistent);
    }
    eprintln!(
        "  recurrence: {}",
        match backend.persistent_recurrence() {
            true => "persistent",
            false => "a step per launch",
        }
    );
    let batch = Batch {
        inputs: &inputs,
        targets: &targets,
        batch: b,
        steps: t,
    };
    let gpu_stats = backend.train_step(&batch, case.objective, seed).unwrap();

    assert_eq!(gpu_stats.count, cpu_stats.count);
    let loss_error = (gpu_stats.loss_sum - cpu_stats.loss_sum).abs() / cpu_stats.loss_sum;
    eprintln!(
        "  loss: gpu {} cpu {} (relative {loss_error:.2e}); correct gpu {} cpu {}",
        gpu_stats.loss_sum, cpu_stats.loss_sum, gpu_stats.correct, cpu_stats.correct
    );
    assert!(loss_error < 1e-5, "loss differs");
    // An argmax can flip between two nearly equal logits.
    assert!(gpu_stats.correct.abs_diff(cpu_stats.correct) <= 1 + cpu_stats.count / 1000);
    for k in 0..case.layers {
        let (gpu_h, gpu_c) = backend.layer_states((b, t), k).unwrap();
        let (cpu_h, cpu_c) = ws.layer_states(k);
        assert_close(&format!("h layer {k}"), &gpu_h, cpu_h);
        assert_close(&format!("c layer {k}"), &gpu_c, cpu_c);
    }
    assert_close(
        "dL/dlogits",
        &backend.logit_grads((b, t), case.objective).unwrap(),
        ws.logit_grads(case.objective),
    );
    let gpu_grads = backend.gradients().unwrap();
    for ((name, _, g), (_, _, c)) in gpu_grads.tensors().zip(cpu_grads.tensors()) {
        assert_close(&format!("grad {name}"), g, c);
    }

    // Adam on the CPU from the GPU's own gradient, so this compares the update kernel alone.
    let mut expected = params.clone();
    let mut grads = gpu_grads.clone();
    adam.step(expected.as_mut_slice(), grads.as_mut_slice());
    assert_close(
        "params after Adam",
        backend.params().unwrap().as_slice(),
        expected.as_slice(),
    );
    let state = backend.adam_state().unwrap();
    assert_eq!(state.step, 1);
    assert_close("Adam m", &state.m, &adam.state.m);
    assert_close("Adam v", &state.v, &adam.state.v);
}

/// Nothing a multiple of the 64×64 tiles, two layers.
const ODD: Case = Case {
    layers: 2,
    batch: 7,
    steps: 5,
    hidden: 33,
    vocab: 11,
    input: (11, 1),
    objective: Objective::All,
    dropout: 0.2,
};

/// [`ODD`] reading K = 3 indices per step among D = 23 columns, some steps repeating one.
const MULTI_HOT: Case = Case {
    input: (23, 3),
    ..ODD
};

// Both recurrences; the reference shape on CUDA only (the host runs a block at a time).
test_engines! {
    /// The reference shape.
    fn reference_shape_persistent(gpu) { reference_shape(gpu, true) }
    fn reference_shape_per_step(gpu) { reference_shape(gpu, false) }
    fn odd_shape_persistent(gpu) { compare_training_step(gpu, &ODD, None, true) }
    fn odd_shape_per_step(gpu) { compare_training_step(gpu, &ODD, None, false) }
    fn last_position_persistent(gpu) { compare_training_step(gpu, &LAST, None, true) }
    fn last_position_per_step(gpu) { compare_training_step(gpu, &LAST, None, false) }
    fn one_step_persistent(gpu) { compare_training_step(gpu, &ONE_STEP, None, true) }
    fn one_step_per_step(gpu) { compare_training_step(gpu, &ONE_STEP, None, false) }
    fn multi_hot_persistent(gpu) { compare_training_step(gpu, &MULTI_HOT, None, true) }
    fn multi_hot_per_step(gpu) { compare_training_step(gpu, &MULTI_HOT, None, false) }
    /// Clipping: a tiny bound, so the global norm on the device decides the scale.
    fn clipped_persistent(gpu) { compare_training_step(gpu, &ODD, Some(1e-3), true) }
    fn clipped_per_step(gpu) { compare_training_step(gpu, &ODD, Some(1e-3), false) }
}

const LAST: Case = Case {
    layers: 2,
    batch: 65,
    steps: 3,
    hidden: 65,
    vocab: 70,
    input: (70, 1),
    objective: Objective::Last,
    dropout: 0.5,
};

const ONE_STEP: Case = Case {
    layers: 1,
    batch: 13,
    steps: 1,
    hidden: 70,
    vocab: 5,
    input: (5, 1),
    objective: Objective::All,
    dropout: 0.0,
};

fn reference_shape(gpu: Gpu, persistent: bool) {
    if gpu.is_host() {
        eprintln!("skipped on the host: the reference shape takes minutes a block at a time");
        return;
    }
    let case = Case {
        layers: 1,
        batch: 64,
        steps: 64,
        hidden: 256,
        vocab: 38,
        input: (38, 1),
        objective: Objective::All,
        dropout: 0.2,
    };
    compare_training_step(gpu, &case, None, persistent);
}

// `predict_last` and the streaming calls generation makes (sub-range steps, zeroed and copied
// rows) give the CPU's probabilities, for one symbol per step and for K = 3 indices among 50.
test_engines! {
    fn inference_matches_the_cpu_persistent(gpu) { compare_inference(gpu, true, (38, 1)) }
    fn inference_matches_the_cpu_per_step(gpu) { compare_inference(gpu, false, (38, 1)) }
    fn multi_hot_inference_matches_the_cpu(gpu) { compare_inference(gpu, true, (50, 3)) }
}

fn compare_inference(gpu: Gpu, persistent: bool, (width, per_step): (usize, usize)) {
    let on_the_host = gpu.is_host();
    let config = Config::one_hot(38, 96, 2, 0.2).multi_hot(width, per_step);
    let (b, t) = (9, 17);
    let mut rng = StdRng::seed_from_u64(5);
    let params = Params::<f32>::init(config, &mut rng);
    let inputs = common::random_multi_hot(&mut rng, b * t, width, per_step);
    let adam = Adam::new(config.num_params());
    let mut on_cpu = CpuBackend::new(params.clone(), adam.clone());
    let mut on_gpu = CudaBackend::new(gpu, params, adam).unwrap();
    on_gpu.use_persistent_recurrence(persistent).unwrap();
    if on_the_host {
        assert_eq!(on_gpu.persistent_recurrence(), persistent);
    }

    let mut expected = vec![0.0; b * config.vocab_size];
    let mut got = expected.clone();
    on_cpu.predict_last(&inputs, b, &mut expected).unwrap();
    on_gpu.predict_last(&inputs, b, &mut got).unwrap();
    assert_close("predict_last", &got, &expected);

    let backends: [&mut dyn Backend; 2] = [&mut on_cpu, &mut on_gpu];
    let mut probs = Vec::new();
    for backend in backends {
        backend.stream_reset(2 * b).unwrap();
        backend
            .stream_step(
                0..2 * b,
                &common::random_multi_hot(&mut StdRng::seed_from_u64(1), 2 * b, width, per_step),
            )
            .unwrap();
        backend
            .stream_zero_rows(&(b..2 * b).collect::<Vec<_>>())
            .unwrap();
        for step in inputs.chunks_exact(b * per_step) {
            backend.stream_step(b..2 * b, step).unwrap();
        }
        for row in 0..b {
            backend.stream_copy_row(b + row, &[row]).unwrap();
        }
        let rows: Vec<usize> = (0..b).rev().collect();
        let mut out = vec![0.0; b * config.vocab_size];
        backend.stream_probs(&rows, &mut out).unwrap();
        probs.push(out);
    }
    assert_close("streamed probabilities", &probs[1], &probs[0]);
}

// `engine generate`'s loop (the shared `/` prefix, zeroed and copied rows, batched steps) draws
// the same melodies on both engines from the same random streams.
test_engines! {
    fn generation_matches_the_cpu(gpu) { compare_generation(gpu) }
    // A corpus folder per engine, so that the host and CUDA runs do not share one.
    fn training_follows_the_cpu(gpu, engine) { compare_training(gpu, &format!("gpu-curve-{engine}")) }
}

fn compare_generation(gpu: Gpu) {
    {
        let vocab = Vocabulary::from_symbols(["60", "62", "64", "65", "67", "r"]);
        let config = Config::one_hot(vocab.len(), 24, 2, 0.2);
        // Large weights: distributions far from uniform, so a wrong state changes the draws.
        let mut params = Params::<f32>::init(config, &mut StdRng::seed_from_u64(8));
        params.as_mut_slice().iter_mut().for_each(|w| *w *= 6.0);
        let adam = Adam::new(config.num_params());
        let sampler = Sampler::new(SamplingConfig::default(), &vocab).unwrap();
        let options = GenerateOptions {
            steps: 40,
            count: 3,
            rng_seed: 4,
            window: 16,
            features: None,
        };
        let seed = [vocab.id("60").unwrap(), vocab.id("_").unwrap()];
        let delimiter = vocab.id("/").unwrap();
        let mut on_cpu = CpuBackend::new(params.clone(), adam.clone());
        let mut on_gpu = CudaBackend::new(gpu, params, adam).unwrap();
        let expected = generate(&mut on_cpu, delimiter, &seed, &sampler, &options).unwrap();
        let got = generate(&mut on_gpu, delimiter, &seed, &sampler, &options).unwrap();
        assert_eq!(got, expected);
        assert!(expected.iter().any(|melody| melody.len() > 10));
    }
}

/// `engine train`'s loop on both engines from the same start: the per-epoch losses and
/// accuracies follow each other (the GPU's sums run in another order, so its rounding drifts a
/// little from step to step), and so do the final parameters.
fn compare_training(gpu: Gpu, run: &str) {
    {
        let data = common::corpus(run);
        let on = |name: &str| TrainOptions {
            epochs: 3,
            ..common::options(&data, name)
        };
        let (cpu_options, gpu_options) = (on("cpu.safetensors"), on("gpu.safetensors"));
        let dataset = Dataset::load(&data).unwrap();
        let (params, dataset, adam, start) = train::initial_state(&cpu_options, dataset).unwrap();
        let mut on_cpu = CpuBackend::new(params.clone(), adam.clone());
        train::train_with(&mut on_cpu, &dataset, &cpu_options, start.clone()).unwrap();
        let mut on_gpu = CudaBackend::new(gpu, params, adam).unwrap();
        train::train_with(&mut on_gpu, &dataset, &gpu_options, start).unwrap();

        let cpu_metrics = common::metrics(&data.join("cpu.metrics.jsonl"));
        let gpu_metrics = common::metrics(&data.join("gpu.metrics.jsonl"));
        assert_eq!(cpu_metrics.len(), 3);
        assert_eq!(gpu_metrics.len(), 3);
        for (c, g) in cpu_metrics.iter().zip(&gpu_metrics) {
            for key in ["objective_loss", "train_loss", "val_loss", "train_accuracy"] {
                let (c, g) = (c[key].as_f64().unwrap(), g[key].as_f64().unwrap());
                eprintln!("  {key}: cpu {c:.6} gpu {g:.6}");
                assert!(
                    (c - g).abs() <= 1e-4 * c.abs().max(1.0),
                    "{key}: cpu {c}, gpu {g}"
                );
            }
        }
        assert_close(
            "parameters after 3 epochs",
            on_gpu.params().unwrap().as_slice(),
            on_cpu.params().unwrap().as_slice(),
        );
    }
}

/// The reference model (one layer, H = 256, V = 38) on an engine, with fresh Adam state.
fn reference_model(gpu: Gpu) -> CudaBackend {
    let config = Config::one_hot(38, 256, 1, 0.2);
    let params = Params::<f32>::init(config, &mut StdRng::seed_from_u64(0));
    CudaBackend::new(gpu, params, Adam::new(config.num_params())).unwrap()
}

test_engines! {
    /// What device/run.sh prints first: the device, where its kernels came from, and which
    /// recurrence the reference model runs (its layout, or why a step per launch).
    fn reports_the_engine(gpu, engine) {
        let description = reference_model(gpu).description();
        eprintln!("engine: {description}");
        assert!(description.contains("; recurrence: "), "{description}");
        match engine {
            "host" => assert!(description.contains("recurrence: persistent, 8 blocks of 32 units")),
            _ => assert!(description.contains("; kernels: "), "{description}"),
        }
    }

    /// With timings on, the table lists every kernel a one-layer training step launches (all but
    /// those of inference, of the per-step recurrence, of --clip, of the input term above layer
    /// 0 — a product and the bias broadcast — and the probe), each with its calls.
    fn timings_list_every_kernel_of_a_training_step(gpu) {
        let mut gpu = gpu;
        gpu.record_timings();
        let mut backend = reference_model(gpu);
        assert!(backend.persistent_recurrence());
        let (b, t) = (3, 4);
        let mut rng = StdRng::seed_from_u64(1);
        let inputs = common::random_symbols(&mut rng, b * t, 38);
        let targets = common::random_symbols(&mut rng, b * t, 38);
        let batch = Batch { inputs: &inputs, targets: &targets, batch: b, steps: t };
        for _ in 0..2 {
            backend.train_step(&batch, Objective::All, 5).unwrap();
        }
        let times = backend.kernel_times().unwrap().expect("timings are on");
        let not_in_training = [
            "probe_indices",
            "lstm_cell_forward",
            "lstm_cell_backward",
            "sum_squares",
            "softmax",
            "matmul",
            "broadcast_rows",
        ];
        let mut expected: Vec<&str> = kernels::Kernel::ALL
            .iter()
            .map(|k| k.name())
            .filter(|name| !not_in_training.contains(name))
            .collect();
        let mut listed: Vec<&str> = times.iter().map(|t| t.kernel.name()).collect();
        expected.sort();
        listed.sort();
        assert_eq!(listed, expected);
        for time in &times {
            assert!(time.calls >= 2 && time.calls % 2 == 0, "{time:?}: two identical steps");
            assert!(time.total_ms > 0.0, "{time:?}");
        }
        // The head's dense gradients are fused into it: one launch a step.
        let layer_kernels = ["lstm_forward_persistent", "lstm_backward_persistent", "head_forward_backward", "adam_update"];
        for name in layer_kernels {
            let time = times.iter().find(|t| t.kernel.name() == name).unwrap();
            assert_eq!(time.calls, 2, "{name}: once a step");
        }
        let table = backend.timings_table().unwrap().unwrap();
        eprintln!("{table}");
        assert!(table.lines().count() == times.len() + 3, "{table}");
        for time in &times {
            assert!(table.contains(time.kernel.name()));
        }
    }
}

test_engines! {
    /// A training step with --tf32 against the CPU's: every gradient but ∂L/∂W_hh (the one
    /// TF32 product of a one-layer model) within the usual bound, and ∂L/∂W_hh[i][j] within it
    /// plus TF32's (see tests/kernels.rs weight_gradient_tf32): (2⁻¹⁰ + 2⁻²² + k·2⁻²³)·S with
    /// S = Σ_{t ≥ 1, b} |∂L/∂a[t][b][i]·h[t−1][b][j]| over k = (T − 1)·B rows, from the step's
    /// own ∂L/∂a and h.
    fn tf32_training_step(gpu) {
        let config = Config::one_hot(11, 37, 1, 0.2);
        let (b, t, seed) = (5, 9, 11);
        let mut rng = StdRng::seed_from_u64(23);
        let params = Params::<f32>::init(config, &mut rng);
        let inputs = common::random_symbols(&mut rng, b * t, config.vocab_size);
        let targets = common::random_symbols(&mut rng, b * t, config.vocab_size);
        let mut ws = Workspace::new(&config, b, t);
        let mut cpu_grads = Params::zeros(config);
        let mut mask = vec![0.0; ws.dropout_mask_len(Objective::All)];
        cpu::fill_dropout_mask(Isa::Portable, &mut mask, config.dropout, seed, 0);
        cpu::forward_backward(&params, &inputs, &targets, Objective::All, Some(&mask), &mut ws, &mut cpu_grads);

        let mut backend = CudaBackend::new(gpu, params, Adam::new(config.num_params())).unwrap();
        if let Err(why) = backend.use_tf32(true) {
            eprintln!("skipped: {why}");
            return;
        }
        assert!(backend.description().ends_with("; weight gradients on TF32 tensor cores"));
        let batch = Batch { inputs: &inputs, targets: &targets, batch: b, steps: t };
        backend.train_step(&batch, Objective::All, seed).unwrap();
        let (h, units) = (backend.layer_states((b, t), 0).unwrap().0, config.hidden);
        let d_gates = backend.gate_grads((b, t)).unwrap();
        let k = (t - 1) * b;
        let factor = 2f64.powi(-10) + 2f64.powi(-22) + k as f64 * 2f64.powi(-23);
        for ((name, _, g), (_, _, c)) in backend.gradients().unwrap().tensors().zip(cpu_grads.tensors()) {
            if name != "lstm.weight_hh_l0" {
                assert_close(&format!("grad {name}"), g, c);
                continue;
            }
            let mut worst = 0.0f64;
            for (e, (&g, &c)) in g.iter().zip(c).enumerate() {
                let (i, j) = (e / units, e % units);
                let s: f64 = (b..t * b).map(|r| (d_gates[r * 4 * units + i] * h[(r - b) * units + j]).abs() as f64).sum();
                let bound = (engines::ATOL + engines::RTOL * c.abs()) as f64 + factor * s;
                let fraction = (g - c).abs() as f64 / bound;
                assert!(fraction <= 1.0, "{name}[{i}][{j}]: gpu {g}, cpu {c}, bound {bound:e}");
                worst = worst.max(fraction);
            }
            eprintln!("  grad {name} with TF32: worst element {worst:.3} of the bound");
        }
    }

    /// Queued steps (results read a step late, as `engine train` runs them) report every step's
    /// statistics in order and leave the parameters and Adam state exactly as blocking steps do.
    fn queued_steps_match_blocking_steps(gpu) {
        let config = Config::one_hot(11, 13, 2, 0.25);
        let params = Params::<f32>::init(config, &mut StdRng::seed_from_u64(3));
        let (b, t) = (3, 5);
        let mut rng = StdRng::seed_from_u64(4);
        let batches: Vec<(Vec<u32>, Vec<u32>)> = (0..3)
            .map(|_| {
                let inputs = common::random_symbols(&mut rng, b * t, config.vocab_size);
                (inputs, common::random_symbols(&mut rng, b * t, config.vocab_size))
            })
            .collect();
        fn batch((inputs, targets): &(Vec<u32>, Vec<u32>), b: usize, t: usize) -> Batch<'_> {
            Batch { inputs, targets, batch: b, steps: t }
        }
        let adam = || Adam::new(config.num_params());
        let second = match gpu.is_host() {
            true => engines::on_host().unwrap(),
            false => melody_engine::gpu::open().unwrap(),
        };
        let mut blocking = CudaBackend::new(second, params.clone(), adam()).unwrap();
        let expected: Vec<_> = batches
            .iter()
            .map(|x| blocking.train_step(&batch(x, b, t), Objective::All, 9).unwrap())
            .collect();
        let mut queued = CudaBackend::new(gpu, params, adam()).unwrap();
        let mut reported = Vec::new();
        for x in &batches {
            reported.extend(queued.queue_train_step(&batch(x, b, t), Objective::All, 9).unwrap());
        }
        assert_eq!(reported.len(), batches.len() - 1, "one step in flight");
        reported.extend(queued.finish_train_steps().unwrap());
        assert_eq!(queued.finish_train_steps().unwrap(), None);
        for (got, want) in reported.iter().zip(&expected) {
            assert_eq!(got.loss_sum.to_bits(), want.loss_sum.to_bits());
            assert_eq!((got.correct, got.count), (want.correct, want.count));
        }
        assert_eq!(reported.len(), expected.len());
        assert_eq!(queued.params().unwrap().as_slice(), blocking.params().unwrap().as_slice());
        let (a, b) = (queued.adam_state().unwrap(), blocking.adam_state().unwrap());
        assert_eq!((a.m, a.v, a.step), (b.m, b.v, b.step));
    }
}

/// `--tf32` asks for the CUDA engine's tensor cores: with `--device cpu` it is an error that
/// says why; `auto` without a GPU runs the CPU and says that --tf32 is ignored.
#[test]
fn tf32_needs_the_cuda_engine() {
    use melody_engine::engine::{self, Device};
    let config = Config::one_hot(5, 4, 1, 0.0);
    let params = Params::<f32>::init(config, &mut StdRng::seed_from_u64(1));
    let adam = || Adam::new(config.num_params());
    match engine::open(Device::Cpu, params.clone(), adam(), true) {
        Ok(_) => panic!("--device cpu --tf32 opened an engine"),
        Err(e) => assert!(e.contains("--tf32 needs the CUDA engine"), "{e}"),
    }
    if melody_engine::gpu::open().is_err() {
        let (_, line) = engine::open(Device::Auto, params, adam(), true).unwrap();
        assert!(line.contains("--tf32 ignored"), "{line}");
    }
}
