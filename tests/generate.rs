//! Generation with staggered windows predicts exactly what the reference semantics (each symbol
//! from the last `window` symbols, from a zero state) predicts.

use melody_engine::backend::{Backend, CpuBackend};
use melody_engine::encode::Vocabulary;
use melody_engine::generate::{generate, GenerateOptions};
use melody_engine::model::{Config, Params};
use melody_engine::optim::Adam;
use melody_engine::sample::{Sampler, SamplingConfig, Temperature};
use rand::rngs::StdRng;
use rand::SeedableRng;

const WINDOW: usize = 8;

fn backend(layers: usize) -> (CpuBackend, Vocabulary) {
    let vocab = Vocabulary::from_symbols(["60", "62", "64", "65", "67"]);
    let config = Config::one_hot(vocab.len(), 12, layers, 0.0);
    // Large weights so that the distributions are far from uniform and every step matters.
    let mut params = Params::init(config, &mut StdRng::seed_from_u64(3));
    params.as_mut_slice().iter_mut().for_each(|w| *w *= 6.0);
    (
        CpuBackend::new(params, Adam::new(config.num_params())),
        vocab,
    )
}

fn sampler(vocab: &Vocabulary, temperature: f32) -> Sampler {
    let config = SamplingConfig {
        temperature: Temperature::Fixed(temperature),
        ..SamplingConfig::default()
    };
    Sampler::new(config, vocab).unwrap()
}

fn options(count: usize) -> GenerateOptions {
    GenerateOptions {
        steps: 40,
        count,
        rng_seed: 11,
        window: WINDOW,
        features: None,
    }
}

#[test]
fn every_symbol_is_the_argmax_of_its_own_window() {
    for layers in [1, 2] {
        let (mut backend, vocab) = backend(layers);
        let greedy = sampler(&vocab, 0.0);
        let delimiter = vocab.id("/").unwrap();
        let seed: Vec<u32> = ["64", "_", "62", "_"]
            .iter()
            .map(|s| vocab.id(s).unwrap())
            .collect();
        let melody = generate(&mut backend, delimiter, &seed, &greedy, &options(1))
            .unwrap()
            .remove(0);
        assert_eq!(&melody[..4], &seed[..]);
        assert!(melody.len() > 8, "generated {} symbols", melody.len() - 4);

        let history: Vec<u32> = std::iter::repeat_n(delimiter, WINDOW)
            .chain(melody.iter().copied())
            .collect();
        let mut probs = vec![0.0; vocab.len()];
        let mut worst = 0.0f32;
        for m in WINDOW + seed.len()..history.len() {
            // The window before symbol m, time-major with one window: [T][1].
            backend
                .predict_last(&history[m - WINDOW..m], 1, &mut probs)
                .unwrap();
            let expected = greedy.sample(&probs, &history[..m], &mut StdRng::seed_from_u64(0));
            assert_eq!(history[m], expected, "layers {layers}, symbol {m}");
            backend.stream_reset(1).unwrap();
            for &symbol in &history[m - WINDOW..m] {
                backend.stream_step(0..1, &[symbol]).unwrap();
            }
            let mut streamed = vec![0.0; vocab.len()];
            backend.stream_probs(&[0], &mut streamed).unwrap();
            worst = probs
                .iter()
                .zip(&streamed)
                .map(|(a, b)| (a - b).abs())
                .fold(worst, f32::max);
        }
        assert!(
            worst < 1e-5,
            "layers {layers}: streamed probabilities differ by {worst}"
        );
    }
}

#[test]
fn batched_melodies_match_single_ones_and_repeat_with_the_seed() {
    let (mut backend, vocab) = backend(1);
    let warm = sampler(&vocab, 1.0);
    let delimiter = vocab.id("/").unwrap();
    let batch = generate(&mut backend, delimiter, &[], &warm, &options(3)).unwrap();
    let single = generate(&mut backend, delimiter, &[], &warm, &options(1)).unwrap();
    assert_eq!(batch.len(), 3);
    assert_eq!(batch[0], single[0], "melody 0 does not depend on the batch");
    assert_ne!(batch[0], batch[1], "each melody has its own random stream");
    let again = generate(&mut backend, delimiter, &[], &warm, &options(3)).unwrap();
    assert_eq!(batch, again);
    for melody in &batch {
        assert!(melody.len() <= 40 && !melody.contains(&delimiter));
        assert_ne!(
            melody.first(),
            Some(&vocab.id("_").unwrap()),
            "no hold at the start"
        );
    }
}
