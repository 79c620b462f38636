//! Two samples compared through their Gaussian kernel density estimates: the overlapping area and
//! the Kullback–Leibler divergence, as mgeval compares intra-set and inter-set distances.
//!
//! Each sample dᵢ (n values) is smoothed into p̂(x) = 1/(n h √(2π)) Σᵢ exp(−(x − dᵢ)² / 2h²) with
//! Scott's bandwidth h = σ̂ n^(−1/5) (σ̂ the sample standard deviation, n − 1), as scipy's
//! `gaussian_kde` does. Both densities are evaluated on one uniform grid that spans the pooled
//! samples plus six bandwidths either side, and integrated there with the trapezoid rule.

/// Points of the grid the densities are evaluated and integrated on.
pub const GRID_POINTS: usize = 1024;
/// The grid reaches this many (of the larger) bandwidths beyond the pooled samples.
const GRID_MARGIN: f64 = 6.0;
/// Kernel terms farther than this many bandwidths are skipped: exp(−8²/2) ≈ 10⁻¹⁴.
const KERNEL_REACH: f64 = 8.0;
/// A bandwidth is at least this share of the pooled samples' span (of 1 if they are all equal),
/// so a constant sample is a narrow bump rather than a spike the grid cannot see.
const MIN_BANDWIDTH_SHARE: f64 = 0.01;
/// In the KL sum a grid cell where the second density has less mass than this counts as having
/// this much, so a region it never reaches costs ≈ 28 nats per unit of mass instead of ∞; cells
/// where the first density has no more than this are left out.
const KL_MASS_FLOOR: f64 = 1e-12;

/// Two densities on a shared grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Densities {
    pub grid: Vec<f64>,
    pub first: Vec<f64>,
    pub second: Vec<f64>,
}

/// How alike two samples are.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// OA = ∫ min(p, q) dx: 1 for equal densities, 0 for disjoint ones.
    pub overlap: f64,
    /// KL(p ‖ q) = Σ Pⱼ ln(Pⱼ / Qⱼ) over the grid cells, P and Q the densities' values
    /// normalised to sum 1 (scipy's `entropy`, as mgeval computes it), over the cells where
    /// P > 10⁻¹², Q floored at 10⁻¹².
    pub kl_divergence: f64,
    pub densities: Densities,
}

/// Compares `first` (p) with `second` (q); both must be non-empty.
pub fn compare(first: &[f64], second: &[f64]) -> Comparison {
    assert!(
        !first.is_empty() && !second.is_empty(),
        "comparing an empty sample"
    );
    let low = first
        .iter()
        .chain(second)
        .copied()
        .fold(f64::INFINITY, f64::min);
    let high = first
        .iter()
        .chain(second)
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let span = if high > low { high - low } else { 1.0 };
    let bandwidth = |sample: &[f64]| scott_bandwidth(sample).max(MIN_BANDWIDTH_SHARE * span);
    let (first_bandwidth, second_bandwidth) = (bandwidth(first), bandwidth(second));
    let margin = GRID_MARGIN * first_bandwidth.max(second_bandwidth);
    let (start, end) = (low - margin, high + margin);
    let spacing = (end - start) / (GRID_POINTS - 1) as f64;
    let grid: Vec<f64> = (0..GRID_POINTS)
        .map(|i| start + i as f64 * spacing)
        .collect();
    let p = density(first, first_bandwidth, &grid);
    let q = density(second, second_bandwidth, &grid);

    let minima: Vec<f64> = p.iter().zip(&q).map(|(a, b)| a.min(*b)).collect();
    let overlap = trapezoid(&minima, spacing);
    let (p_total, q_total): (f64, f64) = (p.iter().sum(), q.iter().sum());
    let kl_divergence = p
        .iter()
        .zip(&q)
        .map(|(a, b)| (a / p_total, (b / q_total).max(KL_MASS_FLOOR)))
        .filter(|&(a, _)| a > KL_MASS_FLOOR)
        .map(|(a, b)| a * (a / b).ln())
        .sum();
    Comparison {
        overlap,
        kl_divergence,
        densities: Densities {
            grid,
            first: p,
            second: q,
        },
    }
}

/// Scott's rule h = σ̂ n^(−1/5); 0 for fewer than two values.
pub fn scott_bandwidth(sample: &[f64]) -> f64 {
    let n = sample.len() as f64;
    if sample.len() < 2 {
        return 0.0;
    }
    let mean = sample.iter().sum::<f64>() / n;
    let variance = sample.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    variance.sqrt() * n.powf(-0.2)
}

/// p̂ at each grid point; only the values within [`KERNEL_REACH`] bandwidths are summed.
fn density(sample: &[f64], bandwidth: f64, grid: &[f64]) -> Vec<f64> {
    let mut sorted = sample.to_vec();
    sorted.sort_by(f64::total_cmp);
    let norm = 1.0 / (sorted.len() as f64 * bandwidth * (2.0 * std::f64::consts::PI).sqrt());
    let reach = KERNEL_REACH * bandwidth;
    grid.iter()
        .map(|&x| {
            let from = sorted.partition_point(|&d| d < x - reach);
            let to = sorted.partition_point(|&d| d <= x + reach);
            let sum: f64 = sorted[from..to]
                .iter()
                .map(|d| (-0.5 * ((x - d) / bandwidth).powi(2)).exp())
                .sum();
            norm * sum
        })
        .collect()
}

/// ∫ over equally spaced values: spacing × (sum − (first + last) / 2).
fn trapezoid(values: &[f64], spacing: f64) -> f64 {
    let ends = values.first().unwrap_or(&0.0) + values.last().unwrap_or(&0.0);
    spacing * (values.iter().sum::<f64>() - ends / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// n evenly spread quantiles of a normal distribution, by inverting its CDF with bisection.
    fn normal_quantiles(n: usize, mean: f64, sd: f64) -> Vec<f64> {
        // Φ(z) via the Abramowitz–Stegun 7.1.26 erf, |error| < 1.5·10⁻⁷.
        let phi = |z: f64| {
            let x = z.abs() / 2f64.sqrt();
            let t = 1.0 / (1.0 + 0.3275911 * x);
            let poly = t
                * (0.254829592
                    + t * (-0.284496736
                        + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
            let erf = 1.0 - poly * (-x * x).exp();
            0.5 * (1.0 + erf.copysign(z))
        };
        (0..n)
            .map(|i| {
                let target = (i as f64 + 0.5) / n as f64;
                let (mut low, mut high) = (-10.0, 10.0);
                for _ in 0..60 {
                    let mid = (low + high) / 2.0;
                    if phi(mid) < target {
                        low = mid;
                    } else {
                        high = mid;
                    }
                }
                mean + sd * (low + high) / 2.0
            })
            .collect()
    }

    #[test]
    fn a_sample_against_itself_overlaps_fully() {
        let sample = normal_quantiles(500, 3.0, 2.0);
        let same = compare(&sample, &sample);
        assert!((same.overlap - 1.0).abs() < 1e-3, "{}", same.overlap);
        assert_eq!(same.kl_divergence, 0.0);
    }

    #[test]
    fn unit_normals_one_apart_overlap_as_the_formula_says() {
        // OA of N(0,1) and N(1,1) = 2Φ(−½) = 0.617; KL = ½ (mean difference)² = 0.5. Scott's
        // smoothing widens both (h ≈ 0.21 for 2000 values: variance 1 + h²), a little more
        // overlap and a little less divergence.
        let result = compare(
            &normal_quantiles(2000, 0.0, 1.0),
            &normal_quantiles(2000, 1.0, 1.0),
        );
        assert!((result.overlap - 0.625).abs() < 0.01, "{}", result.overlap);
        assert!(
            (result.kl_divergence - 0.48).abs() < 0.02,
            "{}",
            result.kl_divergence
        );
        let p_mass = trapezoid(
            &result.densities.first,
            result.densities.grid[1] - result.densities.grid[0],
        );
        assert!(
            (p_mass - 1.0).abs() < 1e-4,
            "a density integrates to 1: {p_mass}"
        );
    }

    #[test]
    fn disjoint_samples_do_not_overlap_and_diverge() {
        let result = compare(&[0.0, 0.1, 0.2, 0.1], &[10.0, 10.1, 9.9, 10.0]);
        assert!(result.overlap < 1e-6, "{}", result.overlap);
        assert!(result.kl_divergence > 20.0, "{}", result.kl_divergence);
    }

    #[test]
    fn constant_samples_are_narrow_bumps() {
        let same = compare(&[0.0; 5], &[0.0; 3]);
        assert!((same.overlap - 1.0).abs() < 1e-6, "{}", same.overlap);
        assert!(same.kl_divergence.abs() < 1e-12, "{}", same.kl_divergence);
        let apart = compare(&[0.0; 5], &[1.0; 5]);
        assert!(apart.overlap < 1e-6, "{}", apart.overlap);
    }

    #[test]
    fn scott_bandwidth_of_a_small_sample() {
        // σ̂ of 1, 2, 3, 4 = √(5/3); n^(−1/5) = 4^(−0.2).
        let h = scott_bandwidth(&[1.0, 2.0, 3.0, 4.0]);
        assert!((h - (5.0f64 / 3.0).sqrt() * 4f64.powf(-0.2)).abs() < 1e-12);
        assert_eq!(scott_bandwidth(&[7.0]), 0.0);
    }
}
