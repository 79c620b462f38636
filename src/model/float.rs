//! The floating-point operations the model needs, so one implementation serves f32 (training)
//! and f64 (gradient checks).

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// A real scalar: `f32` or `f64`. These are also the only types `gemm::gemm` accepts.
pub trait Float:
    Copy
    + Send
    + Sync
    + Debug
    + Default
    + PartialOrd
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + Sum
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn tanh(self) -> Self;
    fn sqrt(self) -> Self;

    /// σ(x) = 1 / (1 + e^(−x)); for very negative x, e^(−x) is huge and σ goes to 0, as it should.
    #[inline(always)]
    fn sigmoid(self) -> Self {
        Self::ONE / (Self::ONE + (-self).exp())
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

/// f32 uses branch-free polynomial exp and tanh: libm's are function calls that dominate the
/// LSTM step, while these inline and vectorise over a gate row. Both are within a few ulp
/// (see the tests below).
impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn exp(self) -> Self {
        exp_f32(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        tanh_f32(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}

/// e^x as 2^n·e^r with n = round(x·log₂e) and |r| ≤ ln2/2, e^r by Cephes' `expf` polynomial.
/// x is clamped to [−87, 88] so that 2^n stays a normal float.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    // Adding 1.5·2²³ rounds to an integer that lands in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // ln2 in two parts so that n·LN2_HI is exact and r keeps its low bits.
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2^n: move n from the mantissa bits of `shifted` into the exponent field.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    e_r * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// tanh(x) by Eigen's rational approximation (odd degree-13 over even degree-6 polynomial),
/// the one TensorFlow uses on CPU; exact to rounding below |x| = 4e-4 and constant beyond ±8.
#[inline(always)]
fn tanh_f32(x: f32) -> f32 {
    let clamped = x.clamp(-7.998_811_7, 7.998_811_7);
    let x2 = clamped * clamped;
    let p = ((((((-2.760_768_5e-16 * x2 + 2.000_188e-13) * x2 - 8.604_672e-11) * x2
        + 5.122_297e-8)
        * x2
        + 1.485_722_4e-5)
        * x2
        + 6.372_619_3e-4)
        * x2
        + 4.893_524_6e-3)
        * clamped;
    let q = ((1.198_258_4e-6 * x2 + 1.185_347_1e-4) * x2 + 2.268_434_6e-3) * x2 + 4.893_525e-3;
    if x.abs() < 4e-4 {
        x
    } else {
        p / q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Largest error of `fast` against the f64 reference over a fine sweep of [lo, hi], measured
    /// relative to max(|reference|, floor).
    fn worst_error(
        fast: fn(f32) -> f32,
        exact: fn(f64) -> f64,
        lo: f32,
        hi: f32,
        floor: f64,
    ) -> f64 {
        let n = 1_000_000;
        (0..=n)
            .map(|i| lo + (hi - lo) * i as f32 / n as f32)
            .map(|x| {
                let reference = exact(x as f64);
                (fast(x) as f64 - reference).abs() / reference.abs().max(floor)
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn fast_exp_is_accurate_to_a_few_ulp() {
        let error = worst_error(exp_f32, f64::exp, -87.0, 88.0, 0.0);
        assert!(error < 3e-7, "exp relative error {error:e}");
    }

    #[test]
    fn fast_tanh_is_accurate_to_a_few_ulp() {
        let error = worst_error(tanh_f32, f64::tanh, -10.0, 10.0, 0.0);
        assert!(error < 5e-7, "tanh relative error {error:e}");
        assert_eq!(tanh_f32(1e-30), 1e-30);
        // Saturated at tanh(7.9988) = 1 − 2.4e-7, two f32 ulp below 1.
        assert!((1.0 - tanh_f32(100.0)) <= 2.4e-7 && tanh_f32(f32::INFINITY) == tanh_f32(100.0));
        assert_eq!(tanh_f32(-100.0), -tanh_f32(100.0));
    }

    #[test]
    fn sigmoid_saturates_without_nan() {
        let error = worst_error(
            Float::sigmoid,
            |x| 1.0 / (1.0 + (-x).exp()),
            -30.0,
            30.0,
            0.0,
        );
        assert!(error < 5e-7, "sigmoid relative error {error:e}");
        assert_eq!(Float::sigmoid(1000.0f32), 1.0);
        assert!(Float::sigmoid(-1000.0f32) < 1e-37);
    }
}
