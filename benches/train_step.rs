//! One training step (dropout mask, forward, BPTT, Adam: what `engine train` does per batch) and
//! one forward pass to the last step's distribution (what `engine evaluate` does per batch) at the
//! training shape B=64, T=64, H=256, V=38, one layer, loss at all positions (on the selected CPU
//! kernels and, for comparison, with the recurrence through gemm), and the step of the default
//! model with its seven feature groups (D = 242, K = 18); the recurrent products alone, in FLOP/s;
//! generation, one melody and a batch of 16; and the training step on the CPU and the GPU at B=64
//! and B=512. Throughput is in step-samples (B·T positions) per second, the unit the PyTorch peers
//! (benches/peers/torch_cpu_step.py, torch_cuda_step.py) print, and in symbols per second for
//! generation. Under `ENGINE_GPU_TIMINGS=1` the GPU rows end with each GPU engine's per-kernel
//! timings table.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use melody_engine::backend::{Backend, Batch, CpuBackend};
use melody_engine::cpu::isa::Kernels;
use melody_engine::cpu::lstm::{Dims, LayerTape};
use melody_engine::cpu::recurrence;
use melody_engine::encode::Vocabulary;
use melody_engine::features::FeatureSet;
use melody_engine::generate::{generate, GenerateOptions};
use melody_engine::gpu::{self, CudaBackend};
use melody_engine::model::{Config, Objective, Params};
use melody_engine::optim::Adam;
use melody_engine::sample::{Sampler, SamplingConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// The test helpers: one random_symbols for tests and benches.
#[path = "../tests/common/mod.rs"]
mod common;

const BATCH: usize = 64;
const STEPS: usize = 64;
const VOCAB: usize = 38;

fn backend() -> CpuBackend {
    let config = Config::one_hot(VOCAB, 256, 1, 0.2);
    let params = Params::<f32>::init(config, &mut StdRng::seed_from_u64(0));
    CpuBackend::new(params, Adam::new(config.num_params()))
}

/// Random inputs and targets for `batch_size` windows of STEPS symbols.
fn random_batch(batch_size: usize, seed: u64) -> (Vec<u32>, Vec<u32>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draw = || common::random_symbols(&mut rng, batch_size * STEPS, VOCAB);
    (draw(), draw())
}

fn train_step(c: &mut Criterion) {
    let mut backend = backend();
    let (inputs, targets) = random_batch(BATCH, 1);
    let batch = Batch {
        inputs: &inputs,
        targets: &targets,
        batch: BATCH,
        steps: STEPS,
    };

    let mut group = c.benchmark_group("lstm_b64_t64_h256_v38");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements((BATCH * STEPS) as u64));
    let kernels = backend.kernels();
    eprintln!("lstm_b64_t64_h256_v38: train_step runs the recurrence on {kernels}");
    group.bench_function("train_step", |bench| {
        bench.iter(|| backend.train_step(&batch, Objective::All, 7).unwrap())
    });
    // The same step with the recurrence through gemm, as before the packed kernels: the ratio
    // of the two rows in one run is the kernels' gain on this machine.
    backend.use_kernels(Kernels::Reference);
    group.bench_function("train_step_gemm_recurrence", |bench| {
        bench.iter(|| backend.train_step(&batch, Objective::All, 7).unwrap())
    });
    backend.use_kernels(kernels);
    let mut probs = vec![0.0; BATCH * VOCAB];
    group.bench_function("forward_predict_last", |bench| {
        bench.iter(|| backend.predict_last(&inputs, BATCH, &mut probs).unwrap())
    });
    group.finish();
}

/// The same step for the default model, every feature group (on `erk`'s vocabulary, D = 242
/// columns and K = 18 indices a step, drawn at random): what `engine train` runs and logs by
/// default, where the `v38` group is the one-hot reference model.
fn train_step_features(c: &mut Criterion) {
    let features = FeatureSet::ALL;
    let (width, per_step) = (features.input_width(VOCAB), features.inputs_per_step());
    let config = Config::one_hot(VOCAB, 256, 1, 0.2).multi_hot(width, per_step);
    let params = Params::<f32>::init(config, &mut StdRng::seed_from_u64(0));
    let mut backend = CpuBackend::new(params, Adam::new(config.num_params()));
    let mut rng = StdRng::seed_from_u64(1);
    let inputs = common::random_multi_hot(&mut rng, BATCH * STEPS, width, per_step);
    let targets = common::random_symbols(&mut rng, BATCH * STEPS, VOCAB);
    let batch = Batch {
        inputs: &inputs,
        targets: &targets,
        batch: BATCH,
        steps: STEPS,
    };
    let mut group = c.benchmark_group(format!("lstm_b64_t64_h256_v38_d{width}_k{per_step}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements((BATCH * STEPS) as u64));
    group.bench_function("train_step", |bench| {
        bench.iter(|| backend.train_step(&batch, Objective::All, 7).unwrap())
    });
    group.finish();
}

/// The recurrent products alone, forward (W_hh·h_{t−1} with the fused cell update, T steps) and
/// backward (∂L/∂a_t·W_hh with the pointwise step), on the selected kernels; the throughput is
/// in FLOP of the products (2·T·B·H·4H), so criterion's elem/s reads as FLOP/s.
fn recurrence(c: &mut Criterion) {
    let Kernels::Packed(isa) = Kernels::selected() else {
        unreachable!("the selected kernels are packed")
    };
    let (h, v) = (256, VOCAB);
    let dims = Dims {
        steps: STEPS,
        batch: BATCH,
        hidden: h,
        vocab: v,
        input_width: v,
        inputs_per_step: 1,
    };
    let params = backend().params().unwrap();
    let weight_hh = params.lstm_layer(0).weight_hh;
    let mut tape = LayerTape::<f32>::new(dims);
    let mut rng = StdRng::seed_from_u64(3);
    let rows = BATCH * STEPS;
    let input_terms: Vec<f32> = (0..rows * 4 * h)
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let mut packed = Vec::new();
    let mut group = c.benchmark_group(format!("recurrence_{isa}_b64_t64_h256"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements((2 * rows * h * 4 * h) as u64));
    group.bench_function("forward_gflops", |bench| {
        bench.iter(|| {
            tape.gates.copy_from_slice(&input_terms);
            recurrence::forward(isa, weight_hh, dims, &mut tape, &mut packed)
        })
    });
    let (mut d_hidden, mut d_gates) = (vec![0.0; rows * h], vec![0.0; rows * 4 * h]);
    let mut d_cell = vec![0.0; BATCH * h];
    group.bench_function("backward_gflops", |bench| {
        bench.iter(|| {
            d_hidden.fill(1e-3);
            let buffers = (&mut d_hidden[..], &mut d_gates[..], &mut d_cell[..]);
            recurrence::backward(
                isa,
                weight_hh,
                dims,
                &tape,
                buffers.0,
                buffers.1,
                buffers.2,
                &mut packed,
            )
        })
    });
    group.finish();
}

/// Symbols per second of `engine generate`: 64 `/` of context, then 256 symbols (the
/// minimum length keeps every melody running to the end).
fn generation(c: &mut Criterion) {
    let symbols: Vec<String> = (45..80).map(|m: u32| m.to_string()).collect();
    let vocab = Vocabulary::from_symbols(symbols.iter().map(String::as_str));
    assert_eq!(vocab.len(), VOCAB);
    let sampler = Sampler::new(
        SamplingConfig {
            min_steps: 1000,
            ..SamplingConfig::default()
        },
        &vocab,
    )
    .unwrap();
    let delimiter = vocab.id("/").unwrap();
    let mut backend = backend();
    let mut group = c.benchmark_group("generate_h256");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for count in [1, 16] {
        let options = GenerateOptions {
            steps: 256,
            count,
            rng_seed: 1,
            window: 64,
            features: None,
        };
        group.throughput(Throughput::Elements((256 * count) as u64));
        group.bench_function(format!("melodies_{count}"), |bench| {
            bench.iter(|| generate(&mut backend, delimiter, &[], &sampler, &options).unwrap())
        });
    }
    group.finish();
}

/// CPU against GPU, the training step at B=64 and B=512 (T=64, H=256, V=38) side by side; the
/// PyTorch (cuDNN) peer of the same shapes is benches/peers/torch_cuda_step.py. Without a CUDA
/// device only the CPU runs.
fn gpu_vs_cpu(c: &mut Criterion) {
    let mut group = c.benchmark_group("gpu_vs_cpu_t64_h256_v38");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10));
    let mut engines: Vec<(&str, Box<dyn Backend>)> = vec![("cpu", Box::new(backend()))];
    // The GPU three times: the persistent recurrence (the default), a step per launch, and the
    // default with --tf32 (beside the PyTorch peer's defaults, which use TF32 too).
    let variants = [
        ("cuda_persistent", true, false),
        ("cuda_stepwise", false, false),
        ("cuda_persistent_tf32", true, true),
    ];
    for (name, persistent, tf32) in variants {
        let device = match gpu::open() {
            Ok(device) => device,
            Err(e) => {
                eprintln!("gpu_vs_cpu: CPU only, no CUDA device ({e})");
                break;
            }
        };
        let params = backend().params().unwrap();
        let adam = Adam::new(params.config().num_params());
        let mut on_gpu = CudaBackend::new(device, params, adam).expect("uploading the model");
        on_gpu
            .use_persistent_recurrence(persistent)
            .expect("the occupancy query");
        if let Err(why) = on_gpu.use_tf32(tf32) {
            eprintln!("gpu_vs_cpu: {name} skipped, {why}");
            continue;
        }
        match on_gpu.persistent_recurrence() == persistent {
            true => engines.push((name, Box::new(on_gpu))),
            false => eprintln!("gpu_vs_cpu: {name} skipped, no persistent layout here"),
        }
    }
    for batch_size in [64, 512] {
        let (inputs, targets) = random_batch(batch_size, batch_size as u64);
        let batch = Batch {
            inputs: &inputs,
            targets: &targets,
            batch: batch_size,
            steps: STEPS,
        };
        group.throughput(Throughput::Elements((batch_size * STEPS) as u64));
        for (name, engine) in &mut engines {
            // As `engine train` steps: queued, the GPU's losses read one step late.
            group.bench_function(format!("{name}_b{batch_size}"), |bench| {
                bench.iter(|| engine.queue_train_step(&batch, Objective::All, 7).unwrap())
            });
            engine.finish_train_steps().unwrap();
        }
    }
    group.finish();
    // Under ENGINE_GPU_TIMINGS=1, each GPU engine's launches over all its rows.
    for (name, engine) in &engines {
        if let Some(table) = engine.timings_table().expect("reading the timings") {
            eprintln!("{name}: {table}");
        }
    }
}

criterion_group!(
    benches,
    train_step,
    train_step_features,
    recurrence,
    generation,
    gpu_vs_cpu
);
criterion_main!(benches);
