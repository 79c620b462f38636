//! Durations as exact fractions of a quarter note, so that triplets compare exactly.

use std::fmt;
use std::ops::Add;

/// A duration in quarter lengths, kept as a reduced fraction (`1/3` for an eighth triplet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QuarterLength {
    num: u64,
    den: u64,
}

impl QuarterLength {
    pub const ZERO: QuarterLength = QuarterLength { num: 0, den: 1 };

    pub fn new(num: u64, den: u64) -> QuarterLength {
        assert!(den > 0, "quarter length with a zero denominator");
        let g = gcd(num, den);
        QuarterLength {
            num: num / g,
            den: den / g,
        }
    }

    /// The `**kern` reciprocal duration: `4` is a quarter, `16` a sixteenth, `3` a half-note
    /// triplet (4/3), `0` a breve, `00` a longa, `000` a maxima (`zeros` counts the zeros).
    pub fn reciprocal(recip: u64, zeros: usize) -> QuarterLength {
        if recip == 0 {
            QuarterLength::new(8 << (zeros.clamp(1, 3) - 1), 1)
        } else {
            QuarterLength::new(4, recip)
        }
    }

    /// With `dots` augmentation dots: each adds half of the previous value, d · (2 − 1/2^dots).
    pub fn dotted(self, dots: u32) -> QuarterLength {
        let scale = (1u64 << (dots + 1)) - 1;
        QuarterLength::new(self.num * scale, self.den << dots)
    }

    /// Parses `0.25`, `1.5`, `3`, or a fraction `1/3`.
    pub fn parse(text: &str) -> Option<QuarterLength> {
        if let Some((n, d)) = text.split_once('/') {
            let d: u64 = d.trim().parse().ok()?;
            let n: u64 = n.trim().parse().ok()?;
            return (d > 0).then(|| QuarterLength::new(n, d));
        }
        let (whole, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        if frac.is_empty() {
            return Some(QuarterLength::new(whole, 1));
        }
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let den = 10u64.pow(frac.len() as u32);
        Some(QuarterLength::new(
            whole * den + frac.parse::<u64>().ok()?,
            den,
        ))
    }

    /// This length times `num / den`; None where the result would not fit in 64 bits.
    pub fn scaled(self, num: u64, den: u64) -> Option<QuarterLength> {
        let num = self.num.checked_mul(num)?;
        let den = self.den.checked_mul(den)?;
        (den > 0).then(|| QuarterLength::new(num, den))
    }

    /// The sum, None where it would not fit in 64 bits (forged lengths).
    pub fn checked_add(self, other: QuarterLength) -> Option<QuarterLength> {
        self.combine(other, |ad, cb| ad.checked_add(cb))
    }

    /// The difference, None where it would be negative or not fit in 64 bits.
    pub fn checked_sub(self, other: QuarterLength) -> Option<QuarterLength> {
        self.combine(other, |ad, cb| ad.checked_sub(cb))
    }

    /// `a/b ∘ c/d` as `(a·d ∘ c·b) / (b·d)`, exact in 128 bits, then reduced.
    fn combine(
        self,
        other: QuarterLength,
        op: impl Fn(u128, u128) -> Option<u128>,
    ) -> Option<QuarterLength> {
        let (a, b) = (self.num as u128, self.den as u128);
        let (c, d) = (other.num as u128, other.den as u128);
        let (num, den) = (op(a * d, c * b)?, b * d);
        let g = gcd128(num, den);
        Some(QuarterLength::new(
            u64::try_from(num / g).ok()?,
            u64::try_from(den / g).ok()?,
        ))
    }

    pub fn is_zero(&self) -> bool {
        self.num == 0
    }

    /// How many whole `step`s fit, if the duration is an exact multiple of `step`.
    pub fn steps_of(&self, step: QuarterLength) -> Option<u64> {
        let n = self.num as u128 * step.den as u128;
        let d = self.den as u128 * step.num as u128;
        (d != 0 && n.is_multiple_of(d)).then(|| u64::try_from(n / d).ok())?
    }

    pub fn as_f64(&self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

/// By value: a/b against c/d as a·d against c·b, exact in 128 bits.
impl Ord for QuarterLength {
    fn cmp(&self, other: &QuarterLength) -> std::cmp::Ordering {
        (self.num as u128 * other.den as u128).cmp(&(other.num as u128 * self.den as u128))
    }
}

impl PartialOrd for QuarterLength {
    fn partial_cmp(&self, other: &QuarterLength) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Add for QuarterLength {
    type Output = QuarterLength;
    /// Exact in 128 bits; the reduced sum of durations the reader takes fits 64.
    fn add(self, other: QuarterLength) -> QuarterLength {
        let (a, b) = (self.num as u128, self.den as u128);
        let (c, d) = (other.num as u128, other.den as u128);
        let (num, den) = (a * d + c * b, b * d);
        let g = gcd128(num, den);
        QuarterLength::new((num / g) as u64, (den / g) as u64)
    }
}

/// Written as music21 prints a quarter length: a float where the denominator is a power of two
/// (`6.0`, `0.375`), a fraction otherwise (`1/3`), so skip reasons read like the reference's.
impl fmt::Display for QuarterLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den.is_power_of_two() {
            write!(f, "{:?}", self.as_f64())
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    gcd128(a as u128, b as u128) as u64
}

fn gcd128(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ql(num: u64, den: u64) -> QuarterLength {
        QuarterLength::new(num, den)
    }

    #[test]
    fn lengths_order_by_value() {
        assert!(ql(2, 1) > ql(3, 2), "numerator first would say 2 < 3");
        assert!(ql(1, 3) < ql(1, 2) && ql(2, 4) == ql(1, 2));
        assert_eq!(ql(3, 4).max(ql(2, 3)), ql(3, 4));
    }

    #[test]
    fn kern_durations() {
        assert_eq!(QuarterLength::reciprocal(4, 0).dotted(0), ql(1, 1));
        assert_eq!(QuarterLength::reciprocal(8, 0).dotted(1), ql(3, 4));
        assert_eq!(QuarterLength::reciprocal(8, 0).dotted(2), ql(7, 8));
        assert_eq!(QuarterLength::reciprocal(16, 0).dotted(0), ql(1, 4));
        assert_eq!(QuarterLength::reciprocal(1, 0).dotted(0), ql(4, 1));
        assert_eq!(QuarterLength::reciprocal(1, 0).dotted(1), ql(6, 1));
        assert_eq!(QuarterLength::reciprocal(0, 1).dotted(0), ql(8, 1));
        assert_eq!(QuarterLength::reciprocal(0, 1).dotted(1), ql(12, 1));
        assert_eq!(QuarterLength::reciprocal(0, 2).dotted(0), ql(16, 1));
        assert_eq!(QuarterLength::reciprocal(0, 3).dotted(0), ql(32, 1));
        assert_eq!(QuarterLength::reciprocal(3, 0).dotted(0), ql(4, 3));
        assert_eq!(QuarterLength::reciprocal(6, 0).dotted(0), ql(2, 3));
        assert_eq!(QuarterLength::reciprocal(12, 0).dotted(0), ql(1, 3));
        assert_eq!(QuarterLength::reciprocal(24, 0).dotted(0), ql(1, 6));
        assert_eq!(QuarterLength::reciprocal(3, 0).dotted(1), ql(2, 1));
        assert_eq!(QuarterLength::reciprocal(6, 0).dotted(2), ql(7, 6));
    }

    #[test]
    fn display_like_music21() {
        assert_eq!(ql(6, 1).to_string(), "6.0");
        assert_eq!(ql(3, 8).to_string(), "0.375");
        assert_eq!(ql(1, 8).to_string(), "0.125");
        assert_eq!(ql(1, 3).to_string(), "1/3");
        assert_eq!(ql(4, 3).to_string(), "4/3");
        assert_eq!(QuarterLength::ZERO.to_string(), "0.0");
    }

    #[test]
    fn parse_decimal_and_fraction() {
        assert_eq!(QuarterLength::parse("0.25"), Some(ql(1, 4)));
        assert_eq!(QuarterLength::parse("1.5"), Some(ql(3, 2)));
        assert_eq!(QuarterLength::parse("3"), Some(ql(3, 1)));
        assert_eq!(QuarterLength::parse(".75"), Some(ql(3, 4)));
        assert_eq!(QuarterLength::parse("1/3"), Some(ql(1, 3)));
        assert_eq!(QuarterLength::parse("1/0"), None);
        assert_eq!(QuarterLength::parse("x"), None);
    }

    #[test]
    fn steps_and_sums() {
        assert_eq!(ql(3, 2).steps_of(ql(1, 4)), Some(6));
        assert_eq!(ql(1, 3).steps_of(ql(1, 4)), None);
        assert_eq!(ql(1, 2) + ql(1, 3), ql(5, 6));
    }
}
