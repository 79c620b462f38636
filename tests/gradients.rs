//! Checks of the numerical core: BPTT against finite differences for every tensor (one-hot and
//! multi-hot inputs), learning a short sequence, Adam against a hand-computed update, and
//! checkpoint round trips and errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use melody_engine::cpu::isa::Isa;
use melody_engine::cpu::{self, BatchStats, Objective, Workspace};
use melody_engine::model::checkpoint::{self, AdamState, CheckpointConfig};
use melody_engine::model::{Config, Params};
use melody_engine::optim::{global_norm, Adam};
use rand::rngs::StdRng;
use rand::SeedableRng;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

mod common;

use common::{json_of, random_multi_hot, random_symbols};

const VOCAB: usize = 7;
const HIDDEN: usize = 5;
const STEPS: usize = 6;
const BATCH: usize = 3;
const DROPOUT: f32 = 0.3;

/// Layer 0's input of the reference model: one symbol per step (D = V, K = 1).
const ONE_HOT: Input = Input {
    width: VOCAB,
    per_step: 1,
};
/// A multi-hot input: three indices per step among V + 12 columns.
const MULTI_HOT: Input = Input {
    width: VOCAB + 12,
    per_step: 3,
};

/// Layer 0's input shape: D columns, K indices per step.
#[derive(Clone, Copy, Debug)]
struct Input {
    width: usize,
    per_step: usize,
}

impl Input {
    fn config(self, layers: usize) -> Config {
        Config::one_hot(VOCAB, HIDDEN, layers, DROPOUT).multi_hot(self.width, self.per_step)
    }

    /// [T][B][K] indices, some steps repeating one.
    fn random(self, rng: &mut StdRng) -> Vec<u32> {
        random_multi_hot(rng, STEPS * BATCH, self.width, self.per_step)
    }
}

/// The mean loss the gradient is taken of.
fn mean_loss(stats: BatchStats) -> f64 {
    stats.loss_sum / stats.count as f64
}

/// Central differences lose ≈1e-15/eps ≈ 1e-10 to rounding in the loss, so a gradient near 0 is
/// compared absolutely: the relative error's denominator is at least this (1e-10/1e-4 = 1e-6).
const NOISE_FLOOR: f64 = 1e-4;

/// BPTT against central differences for every element of every tensor, in f64.
fn check_gradients(input: Input, layers: usize, objective: Objective, with_dropout: bool) {
    let config = input.config(layers);
    let seed = 1000 * layers as u64
        + 100 * (input.per_step - 1) as u64
        + 10 * (objective == Objective::Last) as u64
        + with_dropout as u64;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut params = Params::<f64>::init(config, &mut rng);
    let inputs = input.random(&mut rng);
    let targets = random_symbols(&mut rng, STEPS * BATCH, VOCAB);
    let mut ws = Workspace::new(&config, BATCH, STEPS);
    let mask = with_dropout.then(|| {
        let mut mask = vec![0.0; ws.dropout_mask_len(objective)];
        cpu::fill_dropout_mask(Isa::Portable, &mut mask, DROPOUT, seed, 0);
        mask
    });
    if let Some(mask) = &mask {
        let kept = 1.0 / (1.0 - DROPOUT as f64);
        assert!(mask.contains(&0.0) && mask.contains(&kept));
    }

    // NaN everywhere proves every gradient element is written, not accumulated.
    let mut grads = Params::<f64>::zeros(config);
    grads.as_mut_slice().fill(f64::NAN);
    let stats = cpu::forward_backward(
        &params,
        &inputs,
        &targets,
        objective,
        mask.as_deref(),
        &mut ws,
        &mut grads,
    );
    let expected_count = match objective {
        Objective::All => STEPS * BATCH,
        Objective::Last => BATCH,
    };
    assert_eq!(stats.count, expected_count);
    assert!(stats.correct <= stats.count);

    let mut scratch = Params::<f64>::zeros(config);
    let mut loss_at = |params: &Params<f64>| {
        let stats = cpu::forward_backward(
            params,
            &inputs,
            &targets,
            objective,
            mask.as_deref(),
            &mut ws,
            &mut scratch,
        );
        mean_loss(stats)
    };
    let eps = 1e-5;
    println!("{input:?}, layers {layers}, {objective:?}, dropout {with_dropout}:");
    let mut offset = 0;
    let tensors: Vec<(String, usize)> = grads
        .tensors()
        .map(|(name, _, values)| (name.to_string(), values.len()))
        .collect();
    for (name, len) in tensors {
        let mut worst = (0.0f64, 0usize, 0.0f64, 0.0f64);
        for i in 0..len {
            let original = params.as_slice()[offset + i];
            params.as_mut_slice()[offset + i] = original + eps;
            let loss_plus = loss_at(&params);
            params.as_mut_slice()[offset + i] = original - eps;
            let loss_minus = loss_at(&params);
            params.as_mut_slice()[offset + i] = original;
            let numeric = (loss_plus - loss_minus) / (2.0 * eps);
            let analytic = grads.as_slice()[offset + i];
            assert!(analytic.is_finite(), "{name}[{i}] not written");
            let rel =
                (analytic - numeric).abs() / (analytic.abs() + numeric.abs()).max(NOISE_FLOOR);
            if rel >= worst.0 {
                worst = (rel, i, analytic, numeric);
            }
        }
        let (rel, i, analytic, numeric) = worst;
        let verdict = if rel <= 1e-6 { "OK" } else { "NOT OK" };
        println!(
            "{verdict} {name} max rel err {rel:.1e} (element {i}: {analytic:e} vs {numeric:e})"
        );
        assert!(rel <= 1e-6, "{name}[{i}]: relative error {rel:e}");
        offset += len;
    }

    // A second call on the reused workspace gives the same gradient: nothing stale carries over.
    let mut again = Params::<f64>::zeros(config);
    cpu::forward_backward(
        &params,
        &inputs,
        &targets,
        objective,
        mask.as_deref(),
        &mut ws,
        &mut again,
    );
    assert_eq!(again.as_slice(), grads.as_slice());
}

#[test]
fn gradients_one_layer_all_positions() {
    check_gradients(ONE_HOT, 1, Objective::All, false);
}

#[test]
fn gradients_one_layer_last_position() {
    check_gradients(ONE_HOT, 1, Objective::Last, false);
}

#[test]
fn gradients_one_layer_with_dropout() {
    check_gradients(ONE_HOT, 1, Objective::All, true);
    check_gradients(ONE_HOT, 1, Objective::Last, true);
}

#[test]
fn gradients_two_layers_all_positions() {
    check_gradients(ONE_HOT, 2, Objective::All, false);
}

#[test]
fn gradients_two_layers_last_position() {
    check_gradients(ONE_HOT, 2, Objective::Last, false);
}

#[test]
fn gradients_two_layers_with_dropout() {
    check_gradients(ONE_HOT, 2, Objective::All, true);
    check_gradients(ONE_HOT, 2, Objective::Last, true);
}

/// K = 3 indices per step among D = V + 12 columns, some steps repeating an index.
#[test]
fn gradients_multi_hot_one_layer() {
    check_gradients(MULTI_HOT, 1, Objective::All, false);
    check_gradients(MULTI_HOT, 1, Objective::Last, true);
}

#[test]
fn gradients_multi_hot_two_layers() {
    check_gradients(MULTI_HOT, 2, Objective::All, true);
    check_gradients(MULTI_HOT, 2, Objective::Last, false);
}

/// PyTorch (benches/peers/torch_check.py --gradients, float64) fed the same multi-hot input, the sum
/// of each step's K one-hots, gives the CPU engine's loss and every gradient, at all positions
/// and at the last; skipped where python3 lacks torch, and in CI, which does not install it.
#[test]
fn pytorch_agrees_on_multi_hot_loss_and_gradients() {
    let Some(peer) = common::torch_peer() else {
        return;
    };
    let config = MULTI_HOT.config(2);
    let mut rng = StdRng::seed_from_u64(31);
    let params = Params::<f32>::init(config, &mut rng);
    let (_, vocab, _) = small_checkpoint();
    let model = temp_path("torch_peer.safetensors");
    let record = CheckpointConfig::new(config, STEPS, Objective::All, 0, 0);
    checkpoint::save(&model, &params, &vocab, &record).unwrap();
    // The engine in f64 from exactly the parameters the file holds.
    let mut exact = Params::<f64>::zeros(config);
    for (x, &w) in exact.as_mut_slice().iter_mut().zip(params.as_slice()) {
        *x = w as f64;
    }
    let inputs = MULTI_HOT.random(&mut rng);
    let targets = random_symbols(&mut rng, STEPS * BATCH, VOCAB);
    let mut ws = Workspace::new(&config, BATCH, STEPS);
    for (objective, name) in [(Objective::All, "all"), (Objective::Last, "last")] {
        let mut grads = Params::<f64>::zeros(config);
        let stats = cpu::forward_backward(
            &exact, &inputs, &targets, objective, None, &mut ws, &mut grads,
        );
        let nested = |values: &[u32], width: usize| -> Vec<Vec<Vec<u32>>> {
            values
                .chunks_exact(BATCH * width)
                .map(|step| step.chunks_exact(width).map(<[u32]>::to_vec).collect())
                .collect()
        };
        let targets_tb: Vec<Vec<u32>> = nested(&targets, 1)
            .into_iter()
            .map(|step| step.concat())
            .collect();
        let batch = serde_json::json!({
            "inputs": nested(&inputs, MULTI_HOT.per_step),
            "targets": targets_tb,
            "objective": name,
        });
        let batch_path = temp_path(&format!("torch_peer_{name}.json"));
        std::fs::write(&batch_path, batch.to_string()).unwrap();
        let torch = json_of(
            Command::new("python3")
                .arg(&peer)
                .arg("--model")
                .arg(&model)
                .arg("--gradients")
                .arg(&batch_path),
        );
        let torch_loss = torch["loss"].as_f64().unwrap();
        println!("{name}: loss ours {} torch {torch_loss}", mean_loss(stats));
        assert_eq!(torch["count"], stats.count);
        assert!((mean_loss(stats) - torch_loss).abs() <= 1e-12 * torch_loss);
        for (tensor, _, ours) in grads.tensors() {
            let theirs: Vec<f64> = torch["grads"][tensor]
                .as_array()
                .unwrap_or_else(|| panic!("torch has no gradient for {tensor}"))
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(theirs.len(), ours.len(), "{tensor}");
            let scale = ours.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let worst = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            println!("  {tensor}: worst |Δ| {worst:.1e} (largest |grad| {scale:.1e})");
            assert!(
                worst <= 1e-12 * scale.max(1e-3),
                "{tensor}: worst |Δ| {worst:e}"
            );
        }
    }
}

/// Each step's input term is the sum of its K columns of W_ih plus both biases, a repeated index
/// counted twice: the gates after one step from the zero state, against that sum written out.
#[test]
fn multi_hot_input_term_sums_the_columns() {
    let config = MULTI_HOT.config(1);
    let mut rng = StdRng::seed_from_u64(5);
    let params = Params::<f64>::init(config, &mut rng);
    let inputs = MULTI_HOT.random(&mut rng);
    let mut ws = Workspace::new(&config, BATCH, STEPS);
    let mut grads = Params::zeros(config);
    let targets = random_symbols(&mut rng, STEPS * BATCH, VOCAB);
    cpu::forward_backward(
        &params,
        &inputs,
        &targets,
        Objective::All,
        None,
        &mut ws,
        &mut grads,
    );
    let layer = params.lstm_layer(0);
    let (h, d) = (HIDDEN, MULTI_HOT.width);
    let (hidden, cell) = ws.layer_states(0);
    // Step 0 (rows 0..B) starts from zero: c = σ(a_i)·tanh(a_g), h = σ(a_o)·tanh(c).
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    for b in 0..BATCH {
        let step = &inputs[b * 3..(b + 1) * 3];
        let a = |j: usize| {
            let columns: f64 = step
                .iter()
                .map(|&i| layer.weight_ih[j * d + i as usize])
                .sum();
            columns + layer.bias_ih[j] + layer.bias_hh[j]
        };
        for u in 0..h {
            let c = sigmoid(a(u)) * a(2 * h + u).tanh();
            let expected_h = sigmoid(a(3 * h + u)) * c.tanh();
            assert!((cell[b * h + u] - c).abs() < 1e-14, "c[{b}][{u}]");
            assert!(
                (hidden[b * h + u] - expected_h).abs() < 1e-14,
                "h[{b}][{u}]"
            );
        }
    }
    assert_eq!(inputs[0], inputs[1], "step 0 of window 0 repeats an index");
}

#[test]
#[should_panic(expected = "input index 19 out of the input width 19")]
fn an_input_index_beyond_the_width_panics() {
    let config = MULTI_HOT.config(1);
    let params = Params::<f64>::init(config, &mut StdRng::seed_from_u64(1));
    let mut ws = Workspace::for_eval(&config, 1, 1);
    let mut probs = vec![0.0; VOCAB];
    cpu::predict_last(&params, &[0, 19, 2], &mut ws, &mut probs);
}

#[test]
#[should_panic(expected = "4 input indices are not whole steps of 3 (inputs_per_step)")]
fn inputs_that_are_not_whole_steps_panic() {
    let config = MULTI_HOT.config(1);
    let params = Params::<f64>::init(config, &mut StdRng::seed_from_u64(1));
    let mut stream = cpu::StreamState::new(&params, 2);
    stream.step(&params, 0..1, &[0, 1, 2, 3]);
}

/// Without dropout, the training forward pass, the evaluation pass (its own smaller workspace)
/// and the predicted probabilities all give the same loss.
#[test]
fn eval_and_prediction_agree_with_training_forward() {
    for (input, layers) in [(ONE_HOT, 1), (ONE_HOT, 3), (MULTI_HOT, 1), (MULTI_HOT, 3)] {
        let config = input.config(layers);
        let mut rng = StdRng::seed_from_u64(7);
        let params = Params::<f64>::init(config, &mut rng);
        let inputs = input.random(&mut rng);
        let targets = random_symbols(&mut rng, STEPS * BATCH, VOCAB);
        let mut train_ws = Workspace::new(&config, BATCH, STEPS);
        let mut eval_ws = Workspace::for_eval(&config, BATCH, STEPS);
        let mut grads = Params::zeros(config);
        for objective in [Objective::All, Objective::Last] {
            let trained = cpu::forward_backward(
                &params,
                &inputs,
                &targets,
                objective,
                None,
                &mut train_ws,
                &mut grads,
            );
            let evaluated = cpu::forward_eval(&params, &inputs, &targets, objective, &mut eval_ws);
            assert!((trained.loss_sum - evaluated.loss_sum).abs() < 1e-12);
            assert_eq!(
                (trained.correct, trained.count),
                (evaluated.correct, evaluated.count)
            );
        }

        let mut probs = vec![0.0; BATCH * VOCAB];
        cpu::predict_last(&params, &inputs, &mut eval_ws, &mut probs);
        let last_targets = &targets[(STEPS - 1) * BATCH..];
        let mut loss_sum = 0.0;
        for (row, &target) in probs.chunks_exact(VOCAB).zip(last_targets) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            loss_sum -= row[target as usize].ln();
        }
        let evaluated =
            cpu::forward_eval(&params, &inputs, &targets, Objective::Last, &mut eval_ws);
        assert!((loss_sum - evaluated.loss_sum).abs() < 1e-12);
    }
}

/// A tiny f32 model trained with Adam learns a repeating sequence in which symbol 1 is followed
/// by 2 once and by 3 once, so predicting after a 1 needs memory of what came before it.
#[test]
fn tiny_model_learns_a_repeating_sequence() {
    let pattern = [0u32, 1, 2, 1, 3];
    let config = Config::one_hot(4, 16, 1, 0.0);
    let (steps, batch) = (6, pattern.len());
    // Window b starts at phase b of the pattern; [T][B] layout.
    let symbol = |t: usize, b: usize| pattern[(t + b) % pattern.len()];
    let inputs: Vec<u32> = (0..steps)
        .flat_map(|t| (0..batch).map(move |b| symbol(t, b)))
        .collect();
    let targets: Vec<u32> = (0..steps)
        .flat_map(|t| (0..batch).map(move |b| symbol(t + 1, b)))
        .collect();

    let mut rng = StdRng::seed_from_u64(3);
    let mut params = Params::<f32>::init(config, &mut rng);
    let mut grads = Params::zeros(config);
    let mut ws = Workspace::new(&config, batch, steps);
    let mut adam = Adam::new(config.num_params());
    adam.learning_rate = 1e-2;
    let before = cpu::forward_eval(&params, &inputs, &targets, Objective::Last, &mut ws);
    for _ in 0..300 {
        cpu::forward_backward(
            &params,
            &inputs,
            &targets,
            Objective::Last,
            None,
            &mut ws,
            &mut grads,
        );
        adam.step(params.as_mut_slice(), grads.as_mut_slice());
    }
    let after = cpu::forward_eval(&params, &inputs, &targets, Objective::Last, &mut ws);
    println!("loss {} → {}", mean_loss(before), mean_loss(after));
    assert!(before.correct < batch);
    assert_eq!(after.correct, batch, "accuracy below 100 %");
    assert!(mean_loss(after) < 0.05, "mean loss {}", mean_loss(after));
}

/// Two Adam steps on three elements against Keras' formula written out by hand.
#[test]
fn adam_matches_hand_computed_steps() {
    let mut params = [1.0f32, -2.0, 0.5];
    let gradients = [[0.1f32, -0.2, 0.0], [0.3, 0.1, -0.4]];
    let mut adam = Adam::new(3);

    let (lr, beta1, beta2, eps) = (1e-3f64, 0.9f64, 0.999f64, 1e-7f64);
    let mut expected = [1.0f64, -2.0, 0.5];
    let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
    // The same numbers worked out on paper: step 1 moves each element by lr·|g|/(|g| + ε/√0.001)
    // against the sign of g (bias correction makes m/√v = ±1), step 2 by lr_2·m/(√v + ε) with
    // lr_2 = 1e-3·√(1 − 0.999²)/(1 − 0.9²) = 2.3531672e-4.
    let on_paper = [
        [0.999_000_031_6, -1.999_000_015_8, 0.5],
        [0.998_082_259_7, -1.998_733_682_5, 0.500_744_130_9],
    ];
    for (step, g) in gradients.iter().enumerate() {
        let t = (step + 1) as f64;
        let lr_t = lr * (1.0 - beta2.powf(t)).sqrt() / (1.0 - beta1.powf(t));
        for j in 0..3 {
            let g = g[j] as f64;
            m[j] = beta1 * m[j] + (1.0 - beta1) * g;
            v[j] = beta2 * v[j] + (1.0 - beta2) * g * g;
            expected[j] -= lr_t * m[j] / (v[j].sqrt() + eps);
        }
        let mut g = *g;
        adam.step(&mut params, &mut g);
        for j in 0..3 {
            assert!((expected[j] - on_paper[step][j]).abs() < 1e-10);
            // f32 spacing near 2 is 2.4e-7.
            assert!(
                (params[j] as f64 - expected[j]).abs() < 3e-7,
                "step {t}, element {j}: {} vs {}",
                params[j],
                expected[j]
            );
        }
    }
    assert_eq!(adam.state.step, 2);
}

#[test]
fn clipping_rescales_to_the_clip_norm_and_reports_the_original() {
    let mut adam = Adam::new(2);
    adam.clip = Some(1.0);
    let mut params = [0.0f32; 2];
    let mut grads = [3.0f32, 4.0];
    let norm = adam.step(&mut params, &mut grads);
    assert_eq!(norm, 5.0);
    assert!((grads[0] - 0.6).abs() < 1e-7 && (grads[1] - 0.8).abs() < 1e-7);
    assert!((global_norm(&grads) - 1.0).abs() < 1e-6);

    // Below the threshold the gradient is untouched.
    let mut small = [0.3f32, 0.4];
    assert_eq!(adam.step(&mut params, &mut small), 0.5);
    assert_eq!(small, [0.3, 0.4]);
}

/// A fresh path in the temp directory, unique to this process and test.
fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("melody-engine-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn small_checkpoint() -> (Params<f32>, Vec<String>, CheckpointConfig) {
    let config = Config::one_hot(VOCAB, HIDDEN, 2, DROPOUT);
    let params = Params::<f32>::init(config, &mut StdRng::seed_from_u64(11));
    let vocab = ["r", "60_1", "62_0.5", "64", "_", "|", "<s>"]
        .map(String::from)
        .to_vec();
    let record = CheckpointConfig::new(config, 64, Objective::Last, 3, 1234);
    (params, vocab, record)
}

#[test]
fn checkpoint_round_trip_is_bit_identical() {
    let (params, vocab, record) = small_checkpoint();
    let path = temp_path("round_trip.safetensors");
    checkpoint::save(&path, &params, &vocab, &record).unwrap();
    assert!(
        !path.with_extension("safetensors.tmp").exists(),
        "temporary file left behind"
    );

    let loaded = checkpoint::load(&path).unwrap();
    let bits = |p: &Params<f32>| p.as_slice().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&loaded.params), bits(&params));
    assert_eq!(loaded.vocab, vocab);
    assert_eq!(loaded.config, record);

    // The metadata is plain JSON that other tools (torch_check.py) read.
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().as_ref().unwrap();
    let config_json: serde_json::Value = serde_json::from_str(&metadata["config"]).unwrap();
    assert_eq!(config_json["objective"], "last");
    assert_eq!(config_json["window"], 64);
}

/// A multi-hot model's D and K are recorded and read back; a checkpoint written before they were
/// recorded reads as the one-hot model it is (D = V, K = 1); K = 0 is refused.
#[test]
fn checkpoint_records_the_input_shape() {
    let config = MULTI_HOT.config(2);
    let params = Params::<f32>::init(config, &mut StdRng::seed_from_u64(12));
    let (_, vocab, _) = small_checkpoint();
    let record = CheckpointConfig::new(config, 64, Objective::All, 1, 10);
    let path = temp_path("multi_hot.safetensors");
    checkpoint::save(&path, &params, &vocab, &record).unwrap();
    let loaded = checkpoint::load(&path).unwrap();
    assert_eq!(loaded.config, record);
    assert_eq!(*loaded.params.config(), config);
    assert_eq!(loaded.params.as_slice(), params.as_slice());
    assert_eq!(
        loaded
            .params
            .tensor_range("lstm.weight_ih_l0")
            .unwrap()
            .len(),
        4 * HIDDEN * (VOCAB + 12)
    );

    let (_, _, one_hot) = small_checkpoint();
    let mut older = serde_json::to_value(&one_hot).unwrap();
    let fields = older.as_object_mut().unwrap();
    assert_eq!(fields["input_width"], VOCAB);
    assert_eq!(fields["inputs_per_step"], 1);
    fields.remove("input_width");
    fields.remove("inputs_per_step");
    let path = temp_path("before_multi_hot.safetensors");
    write_raw_with_config(&path, &valid_tensors(), older.clone());
    let loaded = checkpoint::load(&path).unwrap();
    assert_eq!(loaded.config, one_hot);
    assert_eq!(
        *loaded.params.config(),
        Config::one_hot(VOCAB, HIDDEN, 2, DROPOUT)
    );

    older["inputs_per_step"] = 0.into();
    let path = temp_path("no_inputs.safetensors");
    write_raw_with_config(&path, &valid_tensors(), older);
    let message = load_error(&path);
    assert!(
        message.contains("no_inputs.safetensors: config has input_width 7 and inputs_per_step 0"),
        "{message}"
    );
}

#[test]
fn adam_state_round_trip_is_exact() {
    let path = temp_path("model.safetensors");
    let adam_path = checkpoint::adam_path(&path);
    assert_eq!(adam_path.file_name().unwrap(), "model.adam.safetensors");
    let state = AdamState {
        m: vec![0.1, -2.5e-9, 3.0],
        v: vec![1e-12, 0.0, 7.0],
        step: 42,
    };
    checkpoint::save_adam(&adam_path, &state).unwrap();
    assert_eq!(checkpoint::load_adam(&adam_path, 3).unwrap(), state);
    let wrong = checkpoint::load_adam(&adam_path, 4)
        .unwrap_err()
        .to_string();
    assert!(
        wrong.contains("tensor m") && wrong.contains("shape [3], expected [4]"),
        "{wrong}"
    );
}

/// Writes a safetensors file with arbitrary tensors and the metadata of `small_checkpoint`.
fn write_raw(path: &Path, tensors: &[(String, Vec<usize>, Dtype, Vec<u8>)]) {
    let (_, _, record) = small_checkpoint();
    write_raw_with_config(path, tensors, serde_json::to_value(&record).unwrap());
}

/// [`write_raw`] with the metadata `config` given as JSON.
fn write_raw_with_config(
    path: &Path,
    tensors: &[(String, Vec<usize>, Dtype, Vec<u8>)],
    config: serde_json::Value,
) {
    let (_, vocab, _) = small_checkpoint();
    let metadata = HashMap::from([
        ("vocab".to_string(), serde_json::to_string(&vocab).unwrap()),
        ("config".to_string(), config.to_string()),
    ]);
    let views = tensors.iter().map(|(name, shape, dtype, bytes)| {
        (
            name.clone(),
            TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
        )
    });
    std::fs::write(
        path,
        safetensors::serialize(views, &Some(metadata)).unwrap(),
    )
    .unwrap();
}

/// The tensors of `small_checkpoint` as raw f32 entries.
fn valid_tensors() -> Vec<(String, Vec<usize>, Dtype, Vec<u8>)> {
    let (params, _, _) = small_checkpoint();
    params
        .tensors()
        .map(|(name, shape, values)| {
            let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
            (name.to_string(), shape.to_vec(), Dtype::F32, bytes)
        })
        .collect()
}

fn load_error(path: &Path) -> String {
    checkpoint::load(path).unwrap_err().to_string()
}

#[test]
fn corrupt_checkpoint_is_rejected_with_the_file_name() {
    let (params, vocab, record) = small_checkpoint();
    let path = temp_path("corrupt.safetensors");
    checkpoint::save(&path, &params, &vocab, &record).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let message = load_error(&path);
    assert!(message.contains("corrupt.safetensors"), "{message}");
    assert!(
        message.contains("not a valid safetensors file"),
        "{message}"
    );

    let missing = temp_path("absent.safetensors");
    let message = load_error(&missing);
    assert!(message.contains("absent.safetensors"), "{message}");
}

#[test]
fn wrong_shape_is_rejected_naming_the_tensor() {
    let path = temp_path("wrong_shape.safetensors");
    let mut tensors = valid_tensors();
    let entry = tensors
        .iter_mut()
        .find(|t| t.0 == "lstm.weight_hh_l1")
        .unwrap();
    entry.1 = vec![HIDDEN, 4 * HIDDEN];
    write_raw(&path, &tensors);
    let message = load_error(&path);
    assert!(message.contains("wrong_shape.safetensors"), "{message}");
    assert!(
        message.contains("tensor lstm.weight_hh_l1: shape [5, 20], expected [20, 5]"),
        "{message}"
    );
}

#[test]
fn missing_foreign_and_mistyped_tensors_are_rejected() {
    let path = temp_path("missing.safetensors");
    let mut tensors = valid_tensors();
    tensors.retain(|t| t.0 != "dense.bias");
    write_raw(&path, &tensors);
    let message = load_error(&path);
    assert!(
        message.contains("missing.safetensors: tensor dense.bias: missing"),
        "{message}"
    );

    let path = temp_path("foreign.safetensors");
    let mut tensors = valid_tensors();
    tensors.push((
        "embedding.weight".to_string(),
        vec![1],
        Dtype::F32,
        vec![0; 4],
    ));
    write_raw(&path, &tensors);
    let message = load_error(&path);
    assert!(
        message.contains("tensor embedding.weight: unexpected tensor"),
        "{message}"
    );

    let path = temp_path("f64.safetensors");
    let mut tensors = valid_tensors();
    let entry = tensors.iter_mut().find(|t| t.0 == "dense.bias").unwrap();
    entry.2 = Dtype::F64;
    entry.3 = vec![0; 8 * VOCAB];
    write_raw(&path, &tensors);
    let message = load_error(&path);
    assert!(
        message.contains("tensor dense.bias: dtype F64, expected F32"),
        "{message}"
    );
}

/// Streaming one symbol at a time from a zero state gives the same next-symbol probabilities as
/// reading the whole window at once; zeroing a stream restarts it, a step can take a sub-range of
/// the streams, and a copied stream carries on like its source.
#[test]
fn streaming_matches_predict_last() {
    streaming_matches_predict_last_with(ONE_HOT);
}

#[test]
fn streaming_matches_predict_last_multi_hot() {
    streaming_matches_predict_last_with(MULTI_HOT);
}

fn streaming_matches_predict_last_with(input: Input) {
    let config = input.config(2);
    let mut rng = StdRng::seed_from_u64(21);
    let params = Params::<f64>::init(config, &mut rng);
    let inputs = input.random(&mut rng);
    let k = input.per_step;
    let mut ws = Workspace::for_eval(&config, BATCH, STEPS);
    let mut expected = vec![0.0; BATCH * VOCAB];
    cpu::predict_last(&params, &inputs, &mut ws, &mut expected);

    // Twice the rows: the windows run in the upper half, after a zeroed step in every row, and
    // are then copied down, so a sub-range step and a row copy are checked as well.
    let mut stream = cpu::StreamState::new(&params, 2 * BATCH);
    stream.step(
        &params,
        0..2 * BATCH,
        &[&inputs[..BATCH * k], &inputs[..BATCH * k]].concat(),
    );
    stream.zero_rows(&(BATCH..2 * BATCH).collect::<Vec<_>>());
    for step in inputs.chunks_exact(BATCH * k) {
        stream.step(&params, BATCH..2 * BATCH, step);
    }
    for row in 0..BATCH {
        stream.copy_row(BATCH + row, &[row]);
    }
    let rows: Vec<usize> = (0..BATCH).rev().collect();
    let mut streamed = vec![0.0; BATCH * VOCAB];
    stream.probs(&params, &rows, &mut streamed);
    for (i, &row) in rows.iter().enumerate() {
        let (got, want) = (
            &streamed[i * VOCAB..(i + 1) * VOCAB],
            &expected[row * VOCAB..(row + 1) * VOCAB],
        );
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "row {row}: {a} vs {b}");
        }
    }
}
