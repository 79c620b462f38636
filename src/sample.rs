//! Choosing the next symbol from the model's distribution: a temperature (fixed, or following the
//! distribution's entropy), symbol biases from the melody so far, then one seeded draw.
//!
//! The final distribution is q ∝ p^(1/T) · b: the model's p tempered, times the bias factors b
//! of the rules below. The factors multiply after tempering so that each holds exactly at any
//! temperature; T → 0 picks the most likely symbol that the biases allow. If the biases leave
//! no mass, q falls back to the unbiased p^(1/T). Last, nucleus sampling (top-p) keeps only the
//! most likely symbols of q that together hold P of its mass, cutting the long tail of unlikely
//! symbols that each step risks.

use rand::Rng;

use crate::encode::Vocabulary;
use crate::melody::{Symbol, C_MAJOR_PITCH_CLASSES};

/// Below this a temperature is zero: argmax.
const ZERO_TEMPERATURE: f32 = 1e-6;

/// The temperature T of each step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Temperature {
    /// The same T at every step.
    Fixed(f32),
    /// T from the model's entropy at each step; see [`dynamic_temperature`].
    Dynamic { t_min: f32, t_max: f32 },
}

impl Temperature {
    /// The temperature for one step whose model distribution is `probs`.
    pub fn for_step(&self, probs: &[f32]) -> f32 {
        match *self {
            Temperature::Fixed(t) => t,
            Temperature::Dynamic { t_min, t_max } => dynamic_temperature(probs, t_min, t_max),
        }
    }
}

/// How `engine generate` samples; `Default` changes nothing but forbids a `_` with nothing to
/// hold.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingConfig {
    /// Default: fixed 1, the model's own distribution.
    pub temperature: Temperature,
    /// r ∈ [0, 1]; see [`rest_factor`]. Default 0.
    pub rest_penalty: f32,
    /// Largest interval in semitones from the last sounding pitch; see [`leap_allowed`].
    /// Default: none.
    pub max_leap: Option<u8>,
    /// s ≥ 0; see [`scale_factor`]. Default 0.
    pub scale_bias: f32,
    /// `/` is impossible while the melody is shorter than this many symbols. Default 0.
    pub min_steps: usize,
    /// P ∈ [0, 1]; see [`nucleus`]. Default 1: every symbol stays.
    pub top_p: f32,
}

impl Default for SamplingConfig {
    fn default() -> SamplingConfig {
        SamplingConfig {
            temperature: Temperature::Fixed(1.0),
            rest_penalty: 0.0,
            max_leap: None,
            scale_bias: 0.0,
            min_steps: 0,
            top_p: 1.0,
        }
    }
}

/// Tempering: p'ᵢ ∝ exp(ln pᵢ / T) = pᵢ^(1/T), normalised. T ≤ 10⁻⁶ is the limit T → 0: all
/// mass on the largest pᵢ (ties → the lowest id). Zero (or negative, or NaN) entries stay zero;
/// an input without a positive entry comes back as zeros.
pub fn apply_temperature(probs: &[f32], temperature: f32) -> Vec<f32> {
    let mut out = vec![0.0; probs.len()];
    let Some(best) = argmax(probs) else {
        return out;
    };
    if temperature <= ZERO_TEMPERATURE {
        out[best] = 1.0;
        return out;
    }
    // Relative to the largest entry, in f64, so that p^(1/T) does not underflow for small T.
    let top = (probs[best] as f64).ln();
    let inverse = 1.0 / temperature as f64;
    let weights: Vec<f64> = probs
        .iter()
        .map(|&p| {
            if p > 0.0 {
                ((p as f64).ln() - top) * inverse
            } else {
                f64::NEG_INFINITY
            }
            .exp()
        })
        .collect();
    let total: f64 = weights.iter().sum();
    for (o, w) in out.iter_mut().zip(&weights) {
        *o = (w / total) as f32;
    }
    out
}

/// Shannon entropy in nats, H(p) = −Σ pᵢ ln pᵢ over pᵢ > 0, of p normalised to sum 1.
pub fn entropy(probs: &[f32]) -> f32 {
    let total: f64 = probs.iter().filter(|&&p| p > 0.0).map(|&p| p as f64).sum();
    -probs
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| {
            let q = p as f64 / total;
            q * q.ln()
        })
        .sum::<f64>() as f32
}

/// Dynamic temperature: with h = H(p) / ln V ∈ [0, 1] (V = `probs.len()`, h = 0 when V ≤ 1),
/// T = t_max − h · (t_max − t_min), clamped to [t_min, t_max].
///
/// A sure model (h near 0), where loops start, is heated toward t_max; an unsure one (h near
/// 1) is cooled toward t_min, so that its spread is not flattened further into noise.
pub fn dynamic_temperature(probs: &[f32], t_min: f32, t_max: f32) -> f32 {
    let max_entropy = (probs.len() as f32).ln();
    let h = if probs.len() > 1 {
        (entropy(probs) / max_entropy).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (t_max - h * (t_max - t_min)).max(t_min).min(t_max)
}

/// Rest penalty: the factor on `r` is (1 − r)^(1 + k), k = the rest symbols (`r` and the `_`
/// that hold it) just before, r clamped to [0, 1]. Each further step of silence makes another
/// rest less likely.
pub fn rest_factor(rest_penalty: f32, rests_before: usize) -> f32 {
    (1.0 - rest_penalty.clamp(0.0, 1.0)).powi(1 + rests_before as i32)
}

/// Leap limit: a pitch is allowed when |pitch − last| ≤ `max_leap` semitones, or when there is
/// no limit or no sounding pitch yet in this melody. A disallowed pitch gets factor 0.
pub fn leap_allowed(pitch: u8, last_pitch: Option<u8>, max_leap: Option<u8>) -> bool {
    match (last_pitch, max_leap) {
        (Some(last), Some(max)) => pitch.abs_diff(last) <= max,
        _ => true,
    }
}

/// Scale bias: the factor on a pitch whose pitch class is in C major (C D E F G A B, also
/// A natural minor) is 1 + s; on other pitches 1. s is taken as at least 0.
pub fn scale_factor(pitch: u8, scale_bias: f32) -> f32 {
    if C_MAJOR_PITCH_CLASSES.contains(&(pitch % 12)) {
        1.0 + scale_bias.max(0.0)
    } else {
        1.0
    }
}

/// What the biases need to know about the melody so far (the symbols after the last `/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// Symbols in this melody.
    pub length: usize,
    /// Rest symbols just before: the `r` and its `_` (a leading `_` is silence too).
    pub rests_before: usize,
    /// The most recent pitch in this melody, even if a rest followed it.
    pub last_pitch: Option<u8>,
}

impl Context {
    pub fn of(history: &[Symbol]) -> Context {
        let melody_start = history
            .iter()
            .rposition(|&s| s == Symbol::Delimiter)
            .map_or(0, |i| i + 1);
        let melody = &history[melody_start..];
        let holds = melody
            .iter()
            .rev()
            .take_while(|&&s| s == Symbol::Hold)
            .count();
        let rests_before = match melody.iter().rev().nth(holds) {
            Some(Symbol::Rest) => holds + 1,
            Some(_) => 0,
            None => holds,
        };
        let last_pitch = melody.iter().rev().find_map(|&s| match s {
            Symbol::Pitch(midi) => Some(midi),
            _ => None,
        });
        Context {
            length: melody.len(),
            rests_before,
            last_pitch,
        }
    }
}

/// Turns the model's distribution into the next symbol id under a [`SamplingConfig`].
#[derive(Clone, Debug)]
pub struct Sampler {
    config: SamplingConfig,
    /// The symbol of each id.
    symbols: Vec<Symbol>,
}

impl Sampler {
    /// Errors if a vocabulary entry is not a melody symbol (MIDI number, `r`, `_`, `/`).
    pub fn new(config: SamplingConfig, vocab: &Vocabulary) -> Result<Sampler, String> {
        let symbols = vocab
            .symbols()
            .iter()
            .map(|s| Symbol::parse(s).ok_or_else(|| format!("{s:?} is not a melody symbol")))
            .collect::<Result<_, _>>()?;
        Ok(Sampler { config, symbols })
    }

    /// The bias factor of every id after `history` (ids chosen so far, seed included):
    /// `/` 0 while the melody is shorter than `min_steps`; `_` 0 at the melody's start (nothing
    /// to hold); `r` [`rest_factor`]; a pitch [`scale_factor`], or 0 if not [`leap_allowed`].
    pub fn bias_factors(&self, history: &[u32]) -> Vec<f32> {
        let history: Vec<Symbol> = history
            .iter()
            .map(|&id| self.symbols[id as usize])
            .collect();
        let context = Context::of(&history);
        let config = &self.config;
        self.symbols
            .iter()
            .map(|&symbol| match symbol {
                Symbol::Delimiter if context.length < config.min_steps => 0.0,
                Symbol::Hold if context.length == 0 => 0.0,
                Symbol::Delimiter | Symbol::Hold => 1.0,
                Symbol::Rest => rest_factor(config.rest_penalty, context.rests_before),
                Symbol::Pitch(midi) if leap_allowed(midi, context.last_pitch, config.max_leap) => {
                    scale_factor(midi, config.scale_bias)
                }
                Symbol::Pitch(_) => 0.0,
            })
            .collect()
    }

    /// The distribution the next symbol is drawn from: q ∝ p^(1/T) · b (see the module doc).
    pub fn distribution(&self, probs: &[f32], history: &[u32]) -> Vec<f32> {
        assert_eq!(
            probs.len(),
            self.symbols.len(),
            "one probability per symbol"
        );
        let temperature = self.config.temperature.for_step(probs);
        let factors = self.bias_factors(history);
        // Only symbols the biases allow compete, so that T → 0 picks an allowed one.
        let allowed: Vec<f32> = probs
            .iter()
            .zip(&factors)
            .map(|(&p, &b)| if b > 0.0 { p } else { 0.0 })
            .collect();
        let mut q: Vec<f32> = apply_temperature(&allowed, temperature)
            .iter()
            .zip(&factors)
            .map(|(&t, &b)| t * b)
            .collect();
        let total: f32 = q.iter().sum();
        if total > 0.0 && total.is_finite() {
            q.iter_mut().for_each(|x| *x /= total);
        } else {
            q = apply_temperature(probs, temperature);
        }
        nucleus(&mut q, self.config.top_p);
        q
    }

    /// Draws the next symbol id from [`Sampler::distribution`].
    pub fn sample(&self, probs: &[f32], history: &[u32], rng: &mut impl Rng) -> u32 {
        draw(&self.distribution(probs, history), rng)
    }
}

/// Nucleus (top-p) sampling, Holtzman et al. 2020: the smallest set of the most likely ids whose
/// probabilities sum to at least `top_p` (ties taken lowest id first; never empty, so 0 is
/// argmax), renormalised in place; every other id gets 0. `top_p` ≥ 1 leaves `probs` as they
/// are. `probs` is non-negative and sums to 1.
pub fn nucleus(probs: &mut [f32], top_p: f32) {
    if top_p >= 1.0 {
        return;
    }
    let mut order: Vec<usize> = (0..probs.len()).filter(|&i| probs[i] > 0.0).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    let mut kept = 0.0f64;
    let mut count = 0;
    for &id in &order {
        kept += probs[id] as f64;
        count += 1;
        if kept >= top_p as f64 {
            break;
        }
    }
    for &id in &order[count..] {
        probs[id] = 0.0;
    }
    probs
        .iter_mut()
        .for_each(|p| *p = (*p as f64 / kept) as f32);
}

/// One draw by inverse CDF: u uniform in [0, Σw), the first id whose cumulative weight exceeds
/// u. The weights need not sum to 1; if none is positive, id 0.
pub fn draw(weights: &[f32], rng: &mut impl Rng) -> u32 {
    let positive = |w: f32| if w > 0.0 { w as f64 } else { 0.0 };
    let total: f64 = weights.iter().map(|&w| positive(w)).sum();
    let u = rng.gen::<f64>() * total;
    let mut cumulative = 0.0;
    for (id, &w) in weights.iter().enumerate() {
        cumulative += positive(w);
        if cumulative > u {
            return id as u32;
        }
    }
    // Rounding can leave u at the total: the last positive weight takes it.
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0) as u32
}

/// The index of the largest positive entry, lowest on ties; None without a positive entry.
fn argmax(values: &[f32]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &v) in values.iter().enumerate() {
        if v > 0.0 && best.is_none_or(|b| v > values[b]) {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Ids: `/` 0, `_` 1, `r` 2, `60` 3, `61` 4, `62` 5, `67` 6.
    fn vocab() -> Vocabulary {
        Vocabulary::from_symbols(["60", "61", "62", "67"])
    }

    const P: [f32; 7] = [0.1, 0.1, 0.2, 0.2, 0.1, 0.2, 0.1];

    fn sampler(config: SamplingConfig) -> Sampler {
        Sampler::new(config, &vocab()).unwrap()
    }

    fn ids(text: &str) -> Vec<u32> {
        let vocab = vocab();
        text.split_whitespace()
            .map(|s| vocab.id(s).unwrap())
            .collect()
    }

    fn assert_close(actual: &[f32], expected: &[f32]) {
        assert_eq!(actual.len(), expected.len());
        for (a, e) in actual.iter().zip(expected) {
            assert_abs_diff_eq!(a, e, epsilon = 1e-6);
        }
    }

    #[test]
    fn zero_temperature_is_argmax_with_ties_to_the_lowest_id() {
        assert_eq!(apply_temperature(&P, 0.0), [0., 0., 1., 0., 0., 0., 0.]);
        assert_eq!(apply_temperature(&[0.3, 0.7], 1e-7), [0.0, 1.0]);
        assert_eq!(apply_temperature(&[0.0, 0.0], 0.0), [0.0, 0.0]);
    }

    #[test]
    fn temperature_one_leaves_p_unchanged() {
        assert_close(&apply_temperature(&P, 1.0), &P);
    }

    #[test]
    fn temperature_sharpens_or_flattens() {
        // T = 0.5 squares: [0.04, 0.64] / 0.68.
        assert_close(
            &apply_temperature(&[0.2, 0.8], 0.5),
            &[0.04 / 0.68, 0.64 / 0.68],
        );
        let entropies: Vec<f32> = [0.25, 0.5, 1.0, 2.0, 8.0]
            .iter()
            .map(|&t| entropy(&apply_temperature(&P, t)))
            .collect();
        assert!(entropies.windows(2).all(|w| w[0] < w[1]), "{entropies:?}");
        assert!(entropies[4] < 7f32.ln());
        // Zeros stay zero even at a high temperature; small T does not underflow to NaN.
        assert_eq!(apply_temperature(&[0.0, 0.5, 0.5], 100.0)[0], 0.0);
        assert_close(&apply_temperature(&[1e-30, 1e-31], 0.01), &[1.0, 0.0]);
    }

    #[test]
    fn entropy_in_nats() {
        assert_abs_diff_eq!(entropy(&[0.25; 4]), 4f32.ln(), epsilon = 1e-6);
        assert_abs_diff_eq!(entropy(&[1.0, 0.0, 0.0]), 0.0);
        assert_abs_diff_eq!(entropy(&[0.5, 0.5, 0.0, 0.0]), 2f32.ln(), epsilon = 1e-6);
    }

    #[test]
    fn dynamic_temperature_heats_sure_steps_and_cools_unsure_ones() {
        assert_abs_diff_eq!(dynamic_temperature(&[1.0, 0.0, 0.0, 0.0], 0.5, 1.5), 1.5);
        assert_abs_diff_eq!(
            dynamic_temperature(&[0.25; 4], 0.5, 1.5),
            0.5,
            epsilon = 1e-6
        );
        // H = ln 2 of a possible ln 4: h = 1/2, halfway.
        assert_abs_diff_eq!(
            dynamic_temperature(&[0.5, 0.5, 0.0, 0.0], 0.5, 1.5),
            1.0,
            epsilon = 1e-6
        );
        let dynamic = Temperature::Dynamic {
            t_min: 0.5,
            t_max: 1.5,
        };
        let peaked = [0.97, 0.01, 0.01, 0.01];
        assert!(dynamic.for_step(&peaked) > 1.3);
        assert_eq!(Temperature::Fixed(0.7).for_step(&peaked), 0.7);
    }

    #[test]
    fn default_config_leaves_p_unchanged_inside_a_melody() {
        assert_close(
            &sampler(SamplingConfig::default()).distribution(&P, &ids("60")),
            &P,
        );
    }

    #[test]
    fn no_hold_at_the_start_or_after_a_delimiter() {
        let sampler = sampler(SamplingConfig::default());
        let expected = [
            0.1 / 0.9,
            0.0,
            0.2 / 0.9,
            0.2 / 0.9,
            0.1 / 0.9,
            0.2 / 0.9,
            0.1 / 0.9,
        ];
        assert_close(&sampler.distribution(&P, &[]), &expected);
        assert_close(&sampler.distribution(&P, &ids("60 _ / /")), &expected);
    }

    #[test]
    fn rest_penalty_grows_with_the_rests_before() {
        let sampler = sampler(SamplingConfig {
            rest_penalty: 0.5,
            ..SamplingConfig::default()
        });
        // After a note: k = 0, p(r) × 0.5 = 0.1, total 0.9.
        let after_note = sampler.distribution(&P, &ids("60 _"));
        assert_abs_diff_eq!(after_note[2], 0.1 / 0.9, epsilon = 1e-6);
        assert_abs_diff_eq!(after_note[3], 0.2 / 0.9, epsilon = 1e-6);
        // After `r _ _`: k = 3, p(r) × 0.5⁴ = 0.0125, total 0.8125.
        let after_rest = sampler.distribution(&P, &ids("60 r _ _"));
        assert_abs_diff_eq!(after_rest[2], 0.0125 / 0.8125, epsilon = 1e-6);
        assert_abs_diff_eq!(after_rest[1], 0.1 / 0.8125, epsilon = 1e-6);
        assert_eq!(rest_factor(1.0, 0), 0.0);
        assert_eq!(rest_factor(0.0, 5), 1.0);
    }

    #[test]
    fn context_counts_the_current_melody_only() {
        let of = |text: &str| {
            let symbols: Vec<Symbol> = text
                .split_whitespace()
                .map(|s| Symbol::parse(s).unwrap())
                .collect();
            Context::of(&symbols)
        };
        let context = |length, rests_before, last_pitch| Context {
            length,
            rests_before,
            last_pitch,
        };
        assert_eq!(of("62 / 60 _ r _"), context(4, 2, Some(60)));
        assert_eq!(of("62 / _ _"), context(2, 2, None));
        assert_eq!(of("62 _ 64"), context(3, 0, Some(64)));
        assert_eq!(of("62 /"), context(0, 0, None));
    }

    #[test]
    fn max_leap_removes_far_pitches_and_keeps_the_last_sounding_one_across_rests() {
        let sampler = sampler(SamplingConfig {
            max_leap: Some(2),
            ..SamplingConfig::default()
        });
        // From 60 after a rest: 67 (7 semitones) is out, total 0.9.
        let q = sampler.distribution(&P, &ids("60 r"));
        let expected = [0.1, 0.1, 0.2, 0.2, 0.1, 0.2, 0.0].map(|p| p / 0.9);
        assert_close(&q, &expected);
        // No pitch yet: no limit.
        assert_close(&sampler.distribution(&P, &ids("/ r")), &P);
        // The model only wants 67: the biases leave nothing, so p comes back unbiased.
        let only_far = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(sampler.distribution(&only_far, &ids("60")), only_far);
    }

    #[test]
    fn scale_bias_favours_c_major_pitches() {
        let sampler = sampler(SamplingConfig {
            scale_bias: 1.0,
            ..SamplingConfig::default()
        });
        // 60, 62, 67 doubled: 0.4 + 0.4 + 0.2 + 0.1 (61) + 0.4 (/, _, r) = 1.5.
        let q = sampler.distribution(&P, &ids("60"));
        assert_close(&q, &[0.1, 0.1, 0.2, 0.4, 0.1, 0.4, 0.2].map(|p| p / 1.5));
        assert_eq!(scale_factor(69, 0.5), 1.5);
        assert_eq!(scale_factor(70, 0.5), 1.0);
    }

    #[test]
    fn min_steps_forbids_the_delimiter_until_the_melody_is_long_enough() {
        let sampler = sampler(SamplingConfig {
            min_steps: 3,
            ..SamplingConfig::default()
        });
        assert_abs_diff_eq!(sampler.distribution(&P, &ids("/ 60 _"))[0], 0.0);
        assert_abs_diff_eq!(
            sampler.distribution(&P, &ids("/ 60 _"))[3],
            0.2 / 0.9,
            epsilon = 1e-6
        );
        assert_close(&sampler.distribution(&P, &ids("/ 60 _ _")), &P);
    }

    #[test]
    fn biases_hold_exactly_at_other_temperatures_and_argmax_obeys_them() {
        let sampler = sampler(SamplingConfig {
            temperature: Temperature::Fixed(0.5),
            scale_bias: 1.0,
            ..SamplingConfig::default()
        });
        // p² = [.01, .01, .04, .04, .01, .04, .01] (sum .16), then × 2 on 60, 62, 67.
        let q = sampler.distribution(&P, &ids("60"));
        assert_close(
            &q,
            &[0.01, 0.01, 0.04, 0.08, 0.01, 0.08, 0.02].map(|p| p / 0.25),
        );
        // `/` is the model's favourite, but min_steps forbids it: T → 0 takes the next best.
        let greedy = Sampler::new(
            SamplingConfig {
                temperature: Temperature::Fixed(0.0),
                min_steps: 4,
                ..SamplingConfig::default()
            },
            &vocab(),
        )
        .unwrap();
        let p = [0.5, 0.1, 0.05, 0.05, 0.05, 0.2, 0.05];
        assert_eq!(
            greedy.sample(&p, &ids("60"), &mut StdRng::seed_from_u64(0)),
            5
        );
        assert_eq!(
            greedy.sample(&p, &ids("60 _ _ _"), &mut StdRng::seed_from_u64(0)),
            0
        );
    }

    #[test]
    fn nucleus_keeps_the_smallest_top_set_holding_p() {
        let p = [0.1, 0.4, 0.2, 0.2, 0.1];
        let nucleus = |probs: &[f32], top_p| {
            let mut q = probs.to_vec();
            super::nucleus(&mut q, top_p);
            q
        };
        // 0.4 + 0.2 = 0.6 < 0.7: a third is needed, the tied 0.2s taken lowest id first.
        assert_close(&nucleus(&p, 0.7), &[0.0, 0.5, 0.25, 0.25, 0.0]);
        assert_close(
            &nucleus(&p, 0.55),
            &[0.0, 0.4, 0.2, 0.0, 0.0].map(|q| q / 0.6),
        );
        assert_close(&nucleus(&p, 0.0), &[0.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(nucleus(&p, 1.0), p);
        // 0.8 < 0.85: the 0.1 of id 0 is taken before the equal 0.1 of id 4.
        assert_close(
            &nucleus(&p, 0.85),
            &[0.1, 0.4, 0.2, 0.2, 0.0].map(|q| q / 0.9),
        );
    }

    #[test]
    fn top_p_applies_after_the_temperature_and_the_biases() {
        // p² = [.01, .01, .04, .04, .01, .04, .01] / .16; the top three hold .75 of it.
        let config = |top_p| SamplingConfig {
            temperature: Temperature::Fixed(0.5),
            top_p,
            ..SamplingConfig::default()
        };
        let q = sampler(config(0.7)).distribution(&P, &ids("60"));
        assert_close(&q, &[0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0].map(|p| p / 3.0));
        let all = sampler(config(1.0)).distribution(&P, &ids("60"));
        assert_close(
            &all,
            &[0.01, 0.01, 0.04, 0.04, 0.01, 0.04, 0.01].map(|p| p / 0.16),
        );
    }

    #[test]
    fn same_seed_same_draws() {
        let sampler = sampler(SamplingConfig::default());
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50)
                .map(|_| sampler.sample(&P, &ids("60"), &mut rng))
                .collect::<Vec<u32>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn histogram_of_draws_matches_p() {
        let mut rng = StdRng::seed_from_u64(42);
        let draws = 20_000;
        let mut counts = [0usize; 7];
        for _ in 0..draws {
            counts[draw(&P, &mut rng) as usize] += 1;
        }
        for (count, p) in counts.iter().zip(P) {
            assert_abs_diff_eq!(*count as f32 / draws as f32, p, epsilon = 0.02);
        }
        assert_eq!(draw(&[0.0, 0.0, 3.0], &mut rng), 2);
    }

    #[test]
    fn a_vocabulary_with_foreign_symbols_is_refused() {
        let vocab = Vocabulary::from_symbols(["60", "C4"]);
        assert_eq!(
            Sampler::new(SamplingConfig::default(), &vocab).unwrap_err(),
            "\"C4\" is not a melody symbol"
        );
    }
}
