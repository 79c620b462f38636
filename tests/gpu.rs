//! The CUDA engine against the CPU reference, and the kernels' compilation.
//!
//! The comparisons run on two engines: a CUDA device where one opens (else they print that they
//! skipped), and everywhere the same engine code with kernels/*.cu compiled as C++ for the host
//! (tests/host_cuda), which needs only a C++20 compiler. The compile tests need no GPU either:
//! NVRTC, and nvcc (for build.rs's embedded PTX) and ptxas, from the `nvidia-cuda-nvrtc` and
//! `nvidia-cuda-nvcc` wheels that `.ci/run` installs. Under `CI=true` a missing tool is a
//! failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use melody_engine::backend::{Backend, Batch, CpuBackend};
use melody_engine::cpu::{self, Objective, Workspace};
use melody_engine::dataset::Dataset;
use melody_engine::encode::Vocabulary;
use melody_engine::generate::{generate, GenerateOptions};
use melody_engine::gpu::kernels::{self, Kernel, KERNEL_FILES};
use melody_engine::gpu::{self, CudaBackend};
use melody_engine::model::{Config, Params};
use melody_engine::optim::Adam;
use melody_engine::sample::{Sampler, SamplingConfig};
use melody_engine::train::{self, TrainOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod common;

/// Every element within atol + rtol·|cpu| (rtol 1e-4 in f32; atol covers values near zero,
/// where the summation order of the products decides the last bits).
const RTOL: f32 = 1e-4;
const ATOL: f32 = 1e-5;

/// Each entry point of a PTX module, with the threads per block it is compiled for
/// (`.maxntid`, from `__launch_bounds__`) where it declares them.
fn entry_points(ptx: &str) -> BTreeMap<String, Option<u32>> {
    let mut entries = BTreeMap::new();
    let mut last = None;
    for line in ptx.lines() {
        if let Some(rest) = line.split(".entry ").nth(1) {
            let name = rest.split('(').next().unwrap().trim().to_string();
            entries.insert(name.clone(), None);
            last = Some(name);
        } else if let Some(dims) = line.trim().strip_prefix(".maxntid ") {
            let threads = dims.split(',').map(|d| d.trim().parse::<u32>().unwrap());
            let entry = last.clone().expect(".maxntid follows its .entry");
            entries.insert(entry, Some(threads.product()));
        }
    }
    entries
}

/// The kernels the engine launches from kernels/`file`.cu, with the block size each declares.
fn launched_from(file: &str) -> BTreeMap<String, Option<u32>> {
    Kernel::ALL
        .iter()
        .filter(|kernel| kernel.location().0 == file)
        .map(|kernel| (kernel.location().1.to_string(), Some(kernel.max_threads())))
        .collect()
}

/// One kernel file compiled to PTX.
struct PtxModule {
    /// The file name without `.cu`.
    file: &'static str,
    /// Which file, compiler and architecture, for messages.
    label: String,
    /// The compute capability it was compiled for (10·major + minor).
    capability: u32,
    ptx: String,
}

/// Every PTX module there is to check: NVRTC's for compute_80 and compute_90 where NVRTC loads,
/// and the ones build.rs embedded where it found nvcc.
fn ptx_modules() -> Vec<PtxModule> {
    let mut modules = Vec::new();
    for file in KERNEL_FILES {
        for &(capability, ptx) in file.ptx {
            modules.push(PtxModule {
                file: file.name,
                label: format!("kernels/{}.cu, nvcc compute_{capability}", file.name),
                capability,
                ptx: ptx.to_string(),
            });
        }
        if kernels::nvrtc_available() {
            for capability in [80, 90] {
                let arch = kernels::nvrtc_arch(capability);
                let ptx = kernels::compile(file, arch).unwrap_or_else(|e| panic!("{e}"));
                modules.push(PtxModule {
                    file: file.name,
                    label: format!("kernels/{}.cu, NVRTC {arch}", file.name),
                    capability,
                    ptx: ptx.to_src(),
                });
            }
        }
    }
    modules
}

#[test]
fn every_kernel_compiles_for_compute_80_and_90() {
    if !kernels::nvrtc_available() {
        assert!(
            !common::in_ci(),
            "CI=true but NVRTC was not found: .ci/run installs the nvidia-cuda-nvrtc wheel and \
             puts its lib/ on LD_LIBRARY_PATH"
        );
        eprintln!("skipped NVRTC: no NVRTC library (install the nvidia-cuda-nvrtc wheel)");
    }
    let embedded = KERNEL_FILES.iter().all(|file| file.ptx.len() == 2);
    assert!(
        embedded || !common::in_ci(),
        "CI=true but build.rs embedded no PTX: .ci/run puts the nvidia-cuda-nvcc wheel's nvcc on PATH"
    );
    if !embedded {
        eprintln!("skipped nvcc's PTX: build.rs found no nvcc");
    }
    for module in ptx_modules() {
        // The file defines exactly the kernels the engine launches from it, each compiled for
        // the block size it is launched with.
        let (what, defined) = (&module.label, entry_points(&module.ptx));
        assert_eq!(defined, launched_from(module.file), "{what}");
        // Local memory is where a register array indexed at run time ends up: slow.
        assert!(!module.ptx.contains(".local"), "{what} uses local memory");
        eprintln!("{what}: {:?}", defined.keys());
    }
}

/// ptxas, from $PTXAS or PATH; None after saying why there is none.
fn ptxas() -> Option<PathBuf> {
    let ptxas = PathBuf::from(std::env::var_os("PTXAS").unwrap_or("ptxas".into()));
    match Command::new(&ptxas).arg("--version").output() {
        Ok(out) if out.status.success() => Some(ptxas),
        result => {
            assert!(
                !common::in_ci(),
                "CI=true but {} does not run ({result:?}): .ci/run puts the nvidia-cuda-nvcc \
                 wheel's bin/ on PATH",
                ptxas.display()
            );
            eprintln!("skipped: no ptxas (install the nvidia-cuda-nvcc wheel)");
            None
        }
    }
}

/// What ptxas -v reports of each kernel of a module (the largest figure where a kernel's
/// report has several). The registers are printed for information: `__launch_bounds__` already
/// bounds them.
#[derive(Debug, Default)]
struct Resources {
    registers: Option<u32>,
    stack_bytes: Option<u32>,
    spill_bytes: Option<u32>,
}

/// Assembles a module for sm_`capability` (the machine code the driver would make of it) and
/// returns each kernel's resources.
fn assemble(ptxas: &Path, module: &PtxModule) -> BTreeMap<String, Resources> {
    let input = std::env::temp_dir().join(format!(
        "melody-engine-{}-{}.ptx",
        std::process::id(),
        module.label.replace(['/', ' ', ','], "_")
    ));
    std::fs::write(&input, &module.ptx).unwrap();
    let out = Command::new(ptxas)
        .args(["-v", &format!("-arch=sm_{}", module.capability)])
        .args(["--output-file", "/dev/null"])
        .arg(&input)
        .output()
        .unwrap();
    std::fs::remove_file(&input).unwrap();
    let log = String::from_utf8_lossy(&out.stderr) + String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ptxas failed on {}:\n{log}",
        module.label
    );
    let number_before = |line: &str, unit: &str| -> Option<u32> {
        let head = &line[..line.find(unit).unwrap()];
        let word = head.trim_end().rsplit([' ', ',']).next().unwrap();
        Some(word.parse().unwrap())
    };
    let mut kernels = BTreeMap::new();
    let mut current = String::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            current = rest.split('\'').next().unwrap().to_string();
        }
        let entry: &mut Resources = kernels.entry(current.clone()).or_default();
        if line.contains(" bytes stack frame") {
            let spills = number_before(line, " bytes spill stores").unwrap()
                + number_before(line, " bytes spill loads").unwrap();
            entry.stack_bytes = entry
                .stack_bytes
                .max(number_before(line, " bytes stack frame"));
            entry.spill_bytes = entry.spill_bytes.max(Some(spills));
        } else if line.contains(" registers") {
            entry.registers = entry.registers.max(number_before(line, " registers"));
        }
    }
    kernels.remove("");
    kernels
}

#[test]
fn every_kernel_assembles_without_spilling_within_its_launch_bounds() {
    let Some(ptxas) = ptxas() else { return };
    let modules = ptx_modules();
    if modules.is_empty() {
        eprintln!("skipped: neither NVRTC nor embedded PTX to assemble");
    }
    for module in modules {
        let (what, capability) = (&module.label, module.capability);
        let kernels = assemble(&ptxas, &module);
        assert_eq!(
            kernels.keys().collect::<Vec<_>>(),
            launched_from(module.file).keys().collect::<Vec<_>>(),
            "{what}"
        );
        for (name, resources) in &kernels {
            eprintln!("{what} on sm_{capability}: {name} {resources:?}");
            // With `__launch_bounds__`, ptxas keeps within the registers the declared block
            // size allows by spilling to local memory; none may spill, nor use a stack frame.
            assert_eq!(
                (resources.stack_bytes, resources.spill_bytes),
                (Some(0), Some(0)),
                "{what}: {name} uses local memory on sm_{capability} (None: ptxas said nothing)"
            );
        }
    }
}

/// The CUDA device, or None after saying why there is none.
fn device() -> Option<gpu::Gpu> {
    match gpu::open() {
        Ok(gpu) => {
            eprintln!("device: {}", gpu.description());
            Some(gpu)
        }
        Err(e) => {
            eprintln!("skipped on CUDA: no usable device ({e})");
            None
        }
    }
}

/// kernels/*.cu compiled for the host into a shared library, once per test run.
fn host_library() -> Option<&'static PathBuf> {
    static LIBRARY: OnceLock<Option<PathBuf>> = OnceLock::new();
    LIBRARY
        .get_or_init(|| {
            let source = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/host_cuda/kernels_on_host.cpp"
            );
            // A test binary copied to another machine (.ci/device-bundle) has no sources.
            if !std::path::Path::new(source).exists() {
                assert!(!common::in_ci(), "CI=true but {source} is missing");
                eprintln!("skipped on the host: {source} is not on this machine");
                return None;
            }
            let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            std::fs::create_dir_all(&out_dir).unwrap();
            let library = out_dir.join("kernels_on_host.so");
            let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
            let built = Command::new(&compiler)
                .args([
                    "-std=c++20",
                    "-O2",
                    "-shared",
                    "-fPIC",
                    "-Wno-unknown-pragmas",
                ])
                .arg("-o")
                .arg(&library)
                .arg(source)
                .arg("-lpthread")
                .output();
            match built {
                Ok(out) if out.status.success() => Some(library),
                Ok(out) => panic!(
                    "{compiler} could not compile the kernels for the host:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => {
                    assert!(
                        !common::in_ci(),
                        "CI=true but no C++ compiler ({compiler}: {e})"
                    );
                    eprintln!("skipped on the host: no C++ compiler ({compiler}: {e})");
                    None
                }
            }
        })
        .as_ref()
}

fn on_host() -> Option<gpu::Gpu> {
    let library = host_library()?;
    Some(gpu::open_on_host(library).unwrap_or_else(|e| panic!("{e}")))
}

/// Asserts every element of `gpu` is within ATOL + RTOL·|cpu| of `cpu`, and prints the worst
/// element, as llm.c's tests do.
fn assert_close(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
    let mut worst = (0.0f32, 0usize);
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let excess = (g - c).abs() / (ATOL + RTOL * c.abs());
        assert!(!excess.is_nan(), "{what}[{i}]: gpu {g}, cpu {c}");
        if excess > worst.0 {
            worst = (excess, i);
        }
    }
    let i = worst.1;
    eprintln!(
        "  {what}: worst |Δ| = {:.3e} at {i} (gpu {}, cpu {}), {:.2} of the bound",
        (gpu[i] - cpu[i]).abs(),
        gpu[i],
        cpu[i],
        worst.0
    );
    assert!(worst.0 <= 1.0, "{what}: element {i} outside the bound");
}

fn random_symbols(rng: &mut StdRng, n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|_| rng.gen_range(0..vocab as u32)).collect()
}

struct Case {
    layers: usize,
    batch: usize,
    steps: usize,
    hidden: usize,
    vocab: usize,
    objective: Objective,
    dropout: f32,
}

/// One training step on both engines from the same parameters and batch: the loss, every layer's
/// h and c, ∂L/∂logits, every gradient, then the Adam update and its state.
fn compare_training_step(gpu: gpu::Gpu, case: &Case, clip: Option<f32>, persistent: bool) {
    eprintln!("on {}", gpu.description());
    let on_the_host = gpu.is_host();
    let config = Config {
        vocab_size: case.vocab,
        hidden: case.hidden,
        layers: case.layers,
        dropout: case.dropout,
    };
    let (b, t) = (case.batch, case.steps);
    eprintln!(
        "L={} B={b} T={t} H={} V={} {:?} dropout {} clip {clip:?}",
        case.layers, case.hidden, case.vocab, case.objective, case.dropout
    );
    let mut rng = StdRng::seed_from_u64(b as u64 * 1000 + t as u64);
    let params = Params::<f32>::init(config, &mut rng);
    let inputs = random_symbols(&mut rng, b * t, case.vocab);
    let targets = random_symbols(&mut rng, b * t, case.vocab);
    let seed = 11;

    // CPU: the reference step, with the mask of optimiser step 0.
    let mut ws = Workspace::new(&config, b, t);
    let mut cpu_grads = Params::zeros(config);
    let mask = (case.dropout > 0.0).then(|| {
        let mut mask = vec![0.0; ws.dropout_mask_len(case.objective)];
        cpu::fill_dropout_mask(&mut mask, case.dropout, seed, 0);
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

#[test]
fn training_step_matches_the_cpu() {
    let cases = [
        // The reference shape.
        Case {
            layers: 1,
            batch: 64,
            steps: 64,
            hidden: 256,
            vocab: 38,
            objective: Objective::All,
            dropout: 0.2,
        },
        // Nothing a multiple of the 64×64 tiles, two layers.
        Case {
            layers: 2,
            batch: 7,
            steps: 5,
            hidden: 33,
            vocab: 11,
            objective: Objective::All,
            dropout: 0.2,
        },
        Case {
            layers: 2,
            batch: 65,
            steps: 3,
            hidden: 65,
            vocab: 70,
            objective: Objective::Last,
            dropout: 0.5,
        },
        Case {
            layers: 1,
            batch: 13,
            steps: 1,
            hidden: 70,
            vocab: 5,
            objective: Objective::All,
            dropout: 0.0,
        },
    ];
    // Both recurrences; on the host (a block at a time) the small shapes only.
    for persistent in [true, false] {
        for case in &cases[1..] {
            let Some(gpu) = on_host() else { break };
            compare_training_step(gpu, case, None, persistent);
        }
        if let Some(gpu) = on_host() {
            compare_training_step(gpu, &cases[1], Some(1e-3), persistent);
        }
        for case in &cases {
            let Some(gpu) = device() else { break };
            compare_training_step(gpu, case, None, persistent);
        }
        // Clipping: a tiny bound, so the global norm on the device decides the scale.
        if let Some(gpu) = device() {
            compare_training_step(gpu, &cases[1], Some(1e-3), persistent);
        }
    }
}

/// `predict_last` and the streaming calls generation makes (sub-range steps, zeroed and copied
/// rows) give the CPU's probabilities.
#[test]
fn inference_matches_the_cpu() {
    for persistent in [true, false] {
        for gpu in on_host().into_iter().chain(device()) {
            compare_inference(gpu, persistent);
        }
    }
}

fn compare_inference(gpu: gpu::Gpu, persistent: bool) {
    let on_the_host = gpu.is_host();
    let config = Config {
        vocab_size: 38,
        hidden: 96,
        layers: 2,
        dropout: 0.2,
    };
    let (b, t) = (9, 17);
    let mut rng = StdRng::seed_from_u64(5);
    let params = Params::<f32>::init(config, &mut rng);
    let inputs = random_symbols(&mut rng, b * t, config.vocab_size);
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
                &random_symbols(&mut StdRng::seed_from_u64(1), 2 * b, 38),
            )
            .unwrap();
        backend
            .stream_zero_rows(&(b..2 * b).collect::<Vec<_>>())
            .unwrap();
        for step in inputs.chunks_exact(b) {
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

/// `engine generate`'s loop (the shared `/` prefix, zeroed and copied rows, batched steps) draws
/// the same melodies on both engines from the same random streams.
#[test]
fn generation_matches_the_cpu() {
    for gpu in on_host().into_iter().chain(device()) {
        let vocab = Vocabulary::from_symbols(["60", "62", "64", "65", "67", "r"]);
        let config = Config {
            vocab_size: vocab.len(),
            hidden: 24,
            layers: 2,
            dropout: 0.2,
        };
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
#[test]
fn training_follows_the_cpu() {
    for (run, gpu) in on_host().into_iter().chain(device()).enumerate() {
        let data = common::corpus(&format!("gpu-curve-{run}"));
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
