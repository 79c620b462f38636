//! The CPU engine's own kernels against each other and against the reference (gemm) path: every
//! instruction set this processor supports, at odd shapes (H=37, B=5, T=3, V=11) and the bench's
//! (H=256, B=64, T=64, V=38), and the dropout mask. Instruction sets the processor lacks are
//! skipped with a message.

use melody_engine::backend::{Backend, Batch, CpuBackend};
use melody_engine::cpu::isa::{Isa, Kernels};
use melody_engine::cpu::microkernel::{self, Microkernel, Strided, TileOut, MAX_ROWS, MAX_WIDTH};
use melody_engine::cpu::weight_gradient::weight_gradient;
use melody_engine::cpu::{self, Objective, Workspace};
use melody_engine::model::{Config, Params};
use melody_engine::optim::Adam;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod common;

/// The instruction sets to test here; prints the ones this processor lacks.
fn supported() -> Vec<Isa> {
    Isa::ALL
        .into_iter()
        .filter(|isa| {
            let ok = isa.supported();
            if !ok {
                eprintln!("skipped {isa}: this CPU lacks it");
            }
            ok
        })
        .collect()
}

fn random(rng: &mut StdRng, n: usize, range: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-range..range)).collect()
}

/// The worst of |got − want| / scale over the elements, printed with where it is, and asserted
/// ≤ `bound`. `scale[i]` is what element i's rounding is relative to.
fn assert_relative(what: &str, got: &[f32], want: &[f32], scale: &[f32], bound: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let (mut worst, mut at) = (0.0f64, 0);
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let error = (g as f64 - w as f64).abs() / (s as f64).max(f32::MIN_POSITIVE as f64);
        if error > worst || error.is_nan() {
            (worst, at) = (error, i);
        }
    }
    eprintln!(
        "{what}: worst relative error {worst:.2e} at element {at} (got {}, want {})",
        got[at], want[at]
    );
    assert!(worst <= bound, "{what}: {worst:e} > {bound:e}");
}

/// Each buffer's elements relative to the largest magnitude in it: what a sum of products over
/// the buffer's scale can be expected to round to.
fn buffer_scale(want: &[f32]) -> Vec<f32> {
    let max = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    vec![max; want.len()]
}

/// One tile through kernel K: [rows × WIDTH] of a [rows × k] · panel [k × WIDTH].
fn tile<K: Microkernel>(rows: usize, a: &[f32], k: usize, panel: &[f32]) -> Vec<f32> {
    assert!(rows <= K::ROWS && a.len() >= rows * k && panel.len() >= k * K::WIDTH);
    let mut out: TileOut = [[f32::NAN; MAX_WIDTH]; MAX_ROWS];
    // SAFETY: the sizes are checked above; callers pass only supported instruction sets.
    unsafe {
        K::tile(
            rows,
            Strided::rows(a.as_ptr(), k),
            k,
            panel.as_ptr(),
            &mut out,
        )
    };
    out[..rows]
        .iter()
        .flat_map(|row| row[..K::WIDTH].to_vec())
        .collect()
}

/// Kernel K against the plain sum over k in order: `fused` kernels within 1e-6 of Σ|a·w| (the
/// scale their rounding is relative to), the portable one to the bit. Returns K's tiles.
fn check_kernel<K: Microkernel>(
    name: &str,
    fused: bool,
    a: &[f32],
    k: usize,
    panel: &[f32],
) -> Vec<Vec<f32>> {
    let width = K::WIDTH;
    let narrow: Vec<f32> = (0..k)
        .flat_map(|kk| panel[kk * MAX_WIDTH..][..width].to_vec())
        .collect();
    (1..=K::ROWS)
        .map(|rows| {
            let got = tile::<K>(rows, a, k, &narrow);
            let narrow = &narrow;
            let terms = |e: usize| {
                (0..k).map(move |kk| a[(e / width) * k + kk] * narrow[kk * width + e % width])
            };
            let want: Vec<f32> = (0..rows * width).map(|e| terms(e).sum()).collect();
            match fused {
                true => {
                    let scale: Vec<f32> = (0..rows * width)
                        .map(|e| terms(e).map(f32::abs).sum())
                        .collect();
                    assert_relative(
                        &format!("{name} tile, {rows} rows, k={k}"),
                        &got,
                        &want,
                        &scale,
                        1e-6,
                    );
                }
                false => assert_eq!(
                    got, want,
                    "{name} tile, {rows} rows, k={k}: sequential sums"
                ),
            }
            got
        })
        .collect()
}

#[test]
fn microkernels_match_the_sequential_sum_and_each_other() {
    let mut rng = StdRng::seed_from_u64(13);
    let isas = supported();
    for k in [1, 37, 256, 1024] {
        let a = random(&mut rng, MAX_ROWS * k, 1.0);
        let panel = random(&mut rng, k * MAX_WIDTH, 1.0);
        check_kernel::<microkernel::Portable>("portable", false, &a, k, &panel);
        #[cfg(target_arch = "x86_64")]
        {
            use microkernel::{Avx2, Avx512};
            let avx2 = isas
                .contains(&Isa::Avx2)
                .then(|| check_kernel::<Avx2>("avx2", true, &a, k, &panel));
            if isas.contains(&Isa::Avx512) {
                let avx512 = check_kernel::<Avx512>("avx512", true, &a, k, &panel);
                // The same fused multiply-adds in the same order as AVX2: the same bits.
                for (rows, avx2) in avx2.iter().flatten().enumerate().map(|(i, t)| (i + 1, t)) {
                    let first: Vec<f32> = (0..rows * 16)
                        .map(|e| avx512[rows - 1][(e / 16) * 32 + e % 16])
                        .collect();
                    assert_eq!(&first, avx2, "avx512 and avx2 tiles, {rows} rows, k={k}");
                }
            }
        }
    }
}

/// The dropout mask is the same on every instruction set, value by value what `dropout_keeps`
/// decides, across its fixed blocks and the vectors' remainders (a length that fills neither);
/// an instruction set the processor lacks is refused, not run.
#[test]
fn dropout_masks_agree_on_every_isa() {
    let len = 3 * 65_536 + 13;
    let want: Vec<f32> = (0..len as u64)
        .map(
            |i| match cpu::dropout_keeps(9, 4, i, cpu::dropout_threshold(0.3)) {
                true => 1.0 / 0.7,
                false => 0.0,
            },
        )
        .collect();
    let dropped = want.iter().filter(|&&m| m == 0.0).count() as f64 / len as f64;
    assert!((dropped - 0.3).abs() < 0.01, "dropped {dropped}");
    for isa in supported() {
        let mut mask = vec![f32::NAN; len];
        cpu::fill_dropout_mask(isa, &mut mask, 0.3, 9, 4);
        let first_difference = (0..len).find(|&i| mask[i].to_bits() != want[i].to_bits());
        assert_eq!(first_difference, None, "{isa}");
    }
    if let Some(&lacking) = Isa::ALL.iter().find(|isa| !isa.supported()) {
        let refused = std::panic::catch_unwind(|| {
            cpu::fill_dropout_mask(lacking, &mut [0.0f32; 16], 0.3, 9, 4)
        });
        assert!(refused.is_err(), "{lacking} ran on a processor without it");
    }
}

/// `weight_gradient` on every instruction set against the plain sum Σ_r d_a[r][g]·x[r][n] in f64,
/// within 1e-6 of Σ|d_a·x| (the tiles sum in f32 blocks of 128 rows, in row order), at shapes
/// that fill no tile, panel or block evenly; AVX-512 and AVX2 differ only in tile shape, so each
/// element is the same sum of the same fused products: the same bits.
#[test]
fn weight_gradient_matches_the_plain_sum_on_every_isa() {
    let mut rng = StdRng::seed_from_u64(17);
    for (rows, g, n) in [(1, 5, 3), (338, 148, 37), (600, 4 * 37, 37), (520, 96, 64)] {
        let d_a = random(&mut rng, rows * g, 1.0);
        let x = random(&mut rng, rows * n, 1.0);
        let sum = |e: usize, abs: bool| {
            let (i, j) = (e / n, e % n);
            (0..rows)
                .map(|r| {
                    let p = d_a[r * g + i] as f64 * x[r * n + j] as f64;
                    if abs {
                        p.abs()
                    } else {
                        p
                    }
                })
                .sum::<f64>() as f32
        };
        let want: Vec<f32> = (0..g * n).map(|e| sum(e, false)).collect();
        let scale: Vec<f32> = (0..g * n).map(|e| sum(e, true)).collect();
        let mut outs = Vec::new();
        for isa in supported() {
            let mut out = vec![f32::NAN; g * n];
            weight_gradient(isa, &d_a, &x, rows, &mut out);
            let what = format!("{isa} weight_gradient, {rows} rows, {g}×{n}");
            assert_relative(&what, &out, &want, &scale, 1e-6);
            outs.push((isa, out));
        }
        if let [.., (Isa::Avx2, avx2), (Isa::Avx512, avx512)] = &outs[..] {
            assert_eq!(avx2, avx512, "avx2 and avx512 weight_gradient, {rows} rows");
        }
    }
}

/// A model and batch of the given shape, one layer or two.
struct Case {
    config: Config,
    params: Params<f32>,
    inputs: Vec<u32>,
    targets: Vec<u32>,
    batch: usize,
    steps: usize,
}

fn case(hidden: usize, vocab: usize, layers: usize, batch: usize, steps: usize) -> Case {
    let config = Config::one_hot(vocab, hidden, layers, 0.2);
    let mut rng = StdRng::seed_from_u64((hidden * 1000 + batch) as u64);
    let params = Params::<f32>::init(config, &mut rng);
    let inputs = common::random_symbols(&mut rng, batch * steps, vocab);
    let targets = common::random_symbols(&mut rng, batch * steps, vocab);
    Case {
        config,
        params,
        inputs,
        targets,
        batch,
        steps,
    }
}

/// forward_backward on `kernels`: every layer's h and c, the logit gradients, the parameter
/// gradients, and the loss.
fn pass(case: &Case, kernels: Kernels) -> (Vec<f32>, Vec<f32>, Vec<f32>, f64) {
    let mut ws = Workspace::new(&case.config, case.batch, case.steps);
    ws.use_kernels(kernels);
    let mut mask = vec![0.0; ws.dropout_mask_len(Objective::All)];
    cpu::fill_dropout_mask(Isa::Portable, &mut mask, 0.2, 5, 0);
    let mut grads = Params::zeros(case.config);
    let stats = cpu::forward_backward(
        &case.params,
        &case.inputs,
        &case.targets,
        Objective::All,
        Some(&mask),
        &mut ws,
        &mut grads,
    );
    let states = (0..case.config.layers)
        .flat_map(|k| {
            let (h, c) = ws.layer_states(k);
            [h, c].concat()
        })
        .collect();
    let logit_grads = ws.logit_grads(Objective::All).to_vec();
    (
        states,
        logit_grads,
        grads.as_slice().to_vec(),
        stats.loss_sum,
    )
}

/// Every packed instruction set against the portable one (same summation order except for the
/// fused multiply-add) and against the reference gemm path, on one case.
fn check_against_portable_and_reference(name: &str, case: &Case) {
    let reference = pass(case, Kernels::Reference);
    let portable = pass(case, Kernels::Packed(Isa::Portable));
    let mut runs = vec![("portable vs reference", &portable, &reference)];
    let others: Vec<_> = supported()
        .into_iter()
        .filter(|&isa| isa != Isa::Portable)
        .map(|isa| (isa, pass(case, Kernels::Packed(isa))))
        .collect();
    let labels: Vec<String> = others
        .iter()
        .map(|(isa, _)| format!("{isa} vs portable"))
        .collect();
    for ((_, run), label) in others.iter().zip(&labels) {
        runs.push((label, run, &portable));
    }
    for (label, got, want) in runs {
        let what = |part: &str| format!("{name}, {label}: {part}");
        assert_relative(
            &what("h and c"),
            &got.0,
            &want.0,
            &buffer_scale(&want.0),
            1e-6,
        );
        assert_relative(
            &what("∂L/∂logits"),
            &got.1,
            &want.1,
            &buffer_scale(&want.1),
            1e-6,
        );
        assert_relative(
            &what("gradients"),
            &got.2,
            &want.2,
            &buffer_scale(&want.2),
            1e-6,
        );
        let loss = (got.3 - want.3).abs() / want.3;
        assert!(
            loss < 1e-6,
            "{}: loss {} vs {}",
            what("loss"),
            got.3,
            want.3
        );
    }
}

#[test]
fn packed_recurrence_matches_the_reference_at_odd_shapes() {
    check_against_portable_and_reference("H=37 B=5 T=3 V=11, 2 layers", &case(37, 11, 2, 5, 3));
    check_against_portable_and_reference("H=37 B=5 T=3 V=11, 1 layer", &case(37, 11, 1, 5, 3));
}

#[test]
fn packed_recurrence_matches_the_reference_at_the_bench_shape() {
    check_against_portable_and_reference("H=256 B=64 T=64 V=38", &case(256, 38, 1, 64, 64));
}

/// A training step (dropout, forward, BPTT, Adam) through the backend under each instruction
/// set, chosen through the API: the parameters after it agree with the reference path's.
#[test]
fn a_training_step_under_each_instruction_set() {
    let case = case(48, 11, 2, 7, 9);
    let step = |kernels: Kernels| {
        let mut backend = CpuBackend::new(case.params.clone(), Adam::new(case.config.num_params()));
        backend.use_kernels(kernels);
        assert_eq!(backend.kernels(), kernels);
        let batch = Batch {
            inputs: &case.inputs,
            targets: &case.targets,
            batch: case.batch,
            steps: case.steps,
        };
        let stats = backend.train_step(&batch, Objective::All, 3).unwrap();
        (stats, backend.params().unwrap().as_slice().to_vec())
    };
    let (want_stats, want) = step(Kernels::Reference);
    let before = case.params.as_slice();
    for isa in supported() {
        let (stats, got) = step(Kernels::Packed(isa));
        assert_eq!(stats.count, want_stats.count);
        assert!((stats.loss_sum - want_stats.loss_sum).abs() < 1e-6 * want_stats.loss_sum);
        // Adam moves every parameter by about the learning rate: compare the moves.
        let moved = |after: &[f32]| {
            after
                .iter()
                .zip(before)
                .map(|(a, b)| a - b)
                .collect::<Vec<f32>>()
        };
        let (got, want) = (moved(&got), moved(&want));
        assert_relative(
            &format!("training step, {isa} vs reference"),
            &got,
            &want,
            &buffer_scale(&want),
            1e-4,
        );
    }
}

/// Streaming steps (generation) under each instruction set against the reference path, with a
/// training step in between: the packed stream then runs on the new parameters (repacked).
#[test]
fn streaming_steps_under_each_instruction_set() {
    let case = case(37, 11, 2, 5, 4);
    let (b, v) = (case.batch, case.config.vocab_size);
    let batch = Batch {
        inputs: &case.inputs,
        targets: &case.targets,
        batch: b,
        steps: case.steps,
    };
    let stream = |kernels: Kernels| {
        let mut backend = CpuBackend::new(case.params.clone(), Adam::new(case.config.num_params()));
        backend.use_kernels(kernels);
        backend.stream_reset(b).unwrap();
        let rows: Vec<usize> = (0..b).collect();
        let mut probs = vec![0.0; b * v];
        let mut all = Vec::new();
        for t in 0..case.steps + 1 {
            if t == case.steps {
                backend.train_step(&batch, Objective::All, 3).unwrap();
            }
            let inputs = &case.inputs[(t % case.steps) * b..][..b];
            backend.stream_step(0..b, inputs).unwrap();
            backend.stream_probs(&rows, &mut probs).unwrap();
            all.extend_from_slice(&probs);
        }
        all
    };
    let want = stream(Kernels::Reference);
    for isa in supported() {
        let got = stream(Kernels::Packed(isa));
        let what = format!("streaming probabilities, {isa} vs reference");
        assert_relative(&what, &got, &want, &buffer_scale(&want), 1e-6);
    }
}

/// What a head writes: the loss, the correct rows, ∂L/∂logits, ∂L/∂W_dense, ∂L/∂b_dense, ∂L/∂h.
struct HeadOut {
    stats: cpu::BatchStats,
    d_logits: Vec<f32>,
    d_weight: Vec<f32>,
    d_bias: Vec<f32>,
    d_hidden: Vec<f32>,
}

impl HeadOut {
    fn bits(&self) -> Vec<u64> {
        let floats = [&self.d_logits, &self.d_weight, &self.d_bias, &self.d_hidden];
        let stats = [self.stats.loss_sum.to_bits(), self.stats.correct as u64];
        let floats = floats.into_iter().flatten().map(|x| x.to_bits() as u64);
        stats.into_iter().chain(floats).collect()
    }
}

/// The fused head on every instruction set against `head_forward` then `head_backward`, at shapes
/// that fill no block, group, tile or panel evenly and at the bench's, with and without dropout:
/// the loss within 1e-6 relative, the same correct rows, ∂L/∂logits within 1e-6 of the largest,
/// and ∂L/∂W, ∂L/∂b and ∂L/∂h within 1e-6 of the sum of their terms' magnitudes; the same bits
/// on rayon pools of 1 and 2 threads, and on AVX-512 and AVX2 (the same sums in the same order).
#[test]
fn fused_head_matches_head_forward_and_backward() {
    use cpu::head::{head_backward, head_forward};
    use cpu::head_fused::{head_forward_backward, HeadScratch};
    use melody_engine::model::{Dense, DenseMut};

    let mut rng = StdRng::seed_from_u64(19);
    for (n, h, v) in [(338, 37, 11), (4096, 256, 38)] {
        // Logits of order 1, as a trained head's: no probability rounds to 1.
        let weight = random(&mut rng, v * h, 2.0 / (h as f32).sqrt());
        let bias = random(&mut rng, v, 0.5);
        let hidden = random(&mut rng, n * h, 1.0);
        let targets = common::random_symbols(&mut rng, n, v);
        let dense = || Dense {
            weight: &weight,
            bias: &bias,
        };
        let mut mask = vec![0.0f32; n * h];
        cpu::fill_dropout_mask(Isa::Portable, &mut mask, 0.2, 7, 3);
        for mask in [None, Some(&mask[..])] {
            let name = format!(
                "N={n} H={h} V={v} {}",
                if mask.is_some() {
                    "dropout"
                } else {
                    "no dropout"
                }
            );
            let (mut d_weight, mut d_bias) = (vec![f32::NAN; v * h], vec![f32::NAN; v]);
            let (mut dropped, mut d_logits) = (vec![0.0; n * h], vec![0.0; n * v]);
            let mut d_hidden = vec![f32::NAN; n * h];
            let stats = head_forward(
                dense(),
                &hidden,
                mask,
                &targets,
                &mut dropped,
                &mut d_logits,
            );
            let grads = DenseMut {
                weight: &mut d_weight,
                bias: &mut d_bias,
            };
            let mut probs = d_logits.clone();
            head_backward(
                dense(),
                &dropped,
                mask,
                &targets,
                n,
                &mut probs,
                grads,
                &mut d_hidden,
            );
            let want = HeadOut {
                stats,
                d_logits: probs,
                d_weight,
                d_bias,
                d_hidden,
            };

            // Σ|terms| of each gradient element, from the reference's ∂L/∂logits and inputs.
            let dl = |r: usize, s: usize| want.d_logits[r * v + s].abs() as f64;
            let weight_scale: Vec<f32> = (0..v * h)
                .map(|e| {
                    let terms = (0..n).map(|r| dl(r, e / h) * dropped[r * h + e % h].abs() as f64);
                    terms.sum::<f64>() as f32
                })
                .collect();
            let bias_scale: Vec<f32> = (0..v)
                .map(|s| (0..n).map(|r| dl(r, s)).sum::<f64>() as f32)
                .collect();
            let hidden_scale: Vec<f32> = (0..n * h)
                .map(|e| {
                    let (r, j) = (e / h, e % h);
                    let m = mask.map_or(1.0, |mask| mask[e].abs() as f64);
                    let terms = (0..v).map(|s| dl(r, s) * weight[s * h + j].abs() as f64);
                    (terms.sum::<f64>() * m) as f32
                })
                .collect();

            let mut isa_bits = Vec::new();
            for isa in supported() {
                let fused = |threads: usize| {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let (mut d_weight, mut d_bias) = (vec![f32::NAN; v * h], vec![f32::NAN; v]);
                    let (mut d_logits, mut d_hidden) =
                        (vec![f32::NAN; n * v], vec![f32::NAN; n * h]);
                    let grads = DenseMut {
                        weight: &mut d_weight,
                        bias: &mut d_bias,
                    };
                    let mut scratch = HeadScratch::default();
                    let stats = pool.install(|| {
                        head_forward_backward(
                            isa,
                            dense(),
                            &hidden,
                            mask,
                            &targets,
                            &mut d_logits,
                            grads,
                            &mut d_hidden,
                            &mut scratch,
                        )
                    });
                    HeadOut {
                        stats,
                        d_logits,
                        d_weight,
                        d_bias,
                        d_hidden,
                    }
                };
                let got = fused(2);
                assert!(
                    got.bits() == fused(1).bits(),
                    "{name}, {isa}: 1 and 2 threads differ"
                );
                let what = |part: &str| format!("{name}, fused head on {isa}: {part}");
                let loss = (got.stats.loss_sum - want.stats.loss_sum).abs() / want.stats.loss_sum;
                eprintln!("{}: relative error {loss:.2e}", what("loss"));
                assert!(loss <= 1e-6, "{}", what("loss"));
                assert_eq!(got.stats.count, n, "{}", what("rows"));
                assert_eq!(
                    got.stats.correct,
                    want.stats.correct,
                    "{}",
                    what("correct rows")
                );
                let logit_scale = buffer_scale(&want.d_logits);
                assert_relative(
                    &what("∂L/∂logits"),
                    &got.d_logits,
                    &want.d_logits,
                    &logit_scale,
                    1e-6,
                );
                assert_relative(
                    &what("∂L/∂W"),
                    &got.d_weight,
                    &want.d_weight,
                    &weight_scale,
                    1e-6,
                );
                assert_relative(&what("∂L/∂b"), &got.d_bias, &want.d_bias, &bias_scale, 1e-6);
                assert_relative(
                    &what("∂L/∂h"),
                    &got.d_hidden,
                    &want.d_hidden,
                    &hidden_scale,
                    1e-6,
                );
                isa_bits.push((isa, got.bits()));
            }
            if let [.., (Isa::Avx2, avx2), (Isa::Avx512, avx512)] = &isa_bits[..] {
                assert!(avx2 == avx512, "{name}: avx2 and avx512 fused heads differ");
            }
        }
    }
}
