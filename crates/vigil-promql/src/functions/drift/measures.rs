//! The drift measures themselves, on plain per-bucket (or per-category) counts: no PromQL,
//! no labels, so each formula can be read and tested on its own (`docs/drift.md` has them all).
//!
//! Every measure takes the current counts `c`, the reference counts `r` (same length, one
//! entry per bucket or category, in one order) and, for the measures that need an order and
//! a distance between buckets (`drift_ks`, `drift_wasserstein*`), each entry's position on
//! the value axis (`pos`, increasing). Shares are counts over their side's total.

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The smallest share `drift_psi` and `drift_kl` use: a bucket or category that is empty on
/// one side only would otherwise make `ln(p/q)` infinite.
pub(crate) const EPSILON: f64 = 1e-4;

/// The floor of the reference's standard deviation in `drift_wasserstein_normed` (Evidently's
/// choice), so a reference concentrated in one bucket does not divide by zero.
pub(crate) const MIN_STD: f64 = 1e-3;

/// The drift functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Distance {
    /// Population Stability Index: `Σ (p_i − q_i) · ln(p_i / q_i)`, shares clamped to
    /// [`EPSILON`].
    Psi,
    /// Kolmogorov–Smirnov distance: `max_i |P_i − Q_i|` over cumulative shares.
    Ks,
    /// Jensen–Shannon divergence in bits.
    Jsd,
    /// Wasserstein-1 (earth mover's) distance between the two distributions placed at `pos`.
    Wasserstein,
    /// [`Distance::Wasserstein`] over the reference's standard deviation (at least [`MIN_STD`]).
    WassersteinNormed,
    /// Hellinger distance: `‖√p − √q‖₂ / √2`, in `[0, 1]`.
    Hellinger,
    /// Kullback–Leibler divergence `KL(p ‖ q)` in nats, shares clamped to [`EPSILON`] and
    /// renormalised.
    Kl,
    /// L-infinity (Chebyshev) distance of the shares: `max_i |p_i − q_i|`.
    Linf,
    /// Pearson's chi-square statistic of the 2×k contingency table (homogeneity test).
    Chi2,
    /// The p-value of [`Distance::Chi2`] (chi-square distribution, k − 1 degrees of freedom).
    Chi2Pvalue,
}

/// Every drift function, by name.
pub(crate) const FUNCTIONS: [(&str, Distance); 10] = [
    ("drift_psi", Distance::Psi),
    ("drift_ks", Distance::Ks),
    ("drift_jsd", Distance::Jsd),
    ("drift_wasserstein", Distance::Wasserstein),
    ("drift_wasserstein_normed", Distance::WassersteinNormed),
    ("drift_hellinger", Distance::Hellinger),
    ("drift_kl", Distance::Kl),
    ("drift_linf", Distance::Linf),
    ("drift_chi2", Distance::Chi2),
    ("drift_chi2_pvalue", Distance::Chi2Pvalue),
];

impl Distance {
    pub(crate) fn from_name(name: &str) -> Option<Distance> {
        FUNCTIONS.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
    }

    pub(crate) fn name(self) -> &'static str {
        FUNCTIONS
            .iter()
            .find(|(_, d)| *d == self)
            .map_or("drift", |(n, _)| n)
    }

    /// Whether the measure needs the buckets' order and positions (categories then must be
    /// numbers).
    pub(crate) fn ordered(self) -> bool {
        matches!(
            self,
            Distance::Ks | Distance::Wasserstein | Distance::WassersteinNormed
        )
    }

    /// The measure of current counts `c` against reference counts `r` at positions `pos`
    /// (only read by ordered measures); `None` when either side has no observations (a total
    /// that is zero, negative or NaN).
    pub(crate) fn of_counts(self, c: &[f64], r: &[f64], pos: &[f64]) -> Option<f64> {
        let (tc, tr): (f64, f64) = (c.iter().sum(), r.iter().sum());
        if tc.is_nan() || tr.is_nan() || tc <= 0.0 || tr <= 0.0 {
            return None;
        }
        let p: Vec<f64> = c.iter().map(|x| x / tc).collect();
        let q: Vec<f64> = r.iter().map(|x| x / tr).collect();
        Some(match self {
            Distance::Psi => psi(&p, &q),
            Distance::Ks => ks(&cumulative(&p), &cumulative(&q)),
            Distance::Jsd => jsd(&p, &q),
            Distance::Wasserstein => wasserstein(&p, &q, pos),
            Distance::WassersteinNormed => {
                wasserstein(&p, &q, pos) / weighted_std(&q, pos).max(MIN_STD)
            }
            Distance::Hellinger => hellinger(&p, &q),
            Distance::Kl => kl(&p, &q),
            Distance::Linf => linf(&p, &q),
            Distance::Chi2 => chi2(c, r).0,
            Distance::Chi2Pvalue => {
                let (stat, dof) = chi2(c, r);
                chi2_pvalue(stat, dof)
            }
        })
    }
}

/// Running sums of `s`.
pub(crate) fn cumulative(s: &[f64]) -> Vec<f64> {
    let mut acc = 0.0;
    s.iter()
        .map(|x| {
            acc += x;
            acc
        })
        .collect()
}

/// Population Stability Index of current shares `p` against reference shares `q`, every share
/// clamped to at least [`EPSILON`] first (no renormalisation). Each term is non-negative.
pub(crate) fn psi(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .map(|(&p, &q)| {
            let (p, q) = (clamp(p), clamp(q));
            (p - q) * (p / q).ln()
        })
        .sum()
}

/// `x` raised to [`EPSILON`]; `x < EPS` is false for NaN, so NaN stays NaN.
fn clamp(x: f64) -> f64 {
    if x < EPSILON { EPSILON } else { x }
}

/// Kolmogorov–Smirnov distance of cumulative shares `cp` and `cq`: the largest absolute
/// difference (NaN if any difference is NaN).
pub(crate) fn ks(cp: &[f64], cq: &[f64]) -> f64 {
    max_abs_diff(cp, cq)
}

/// `max_i |a_i − b_i|`, NaN if any difference is NaN.
fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    let mut d: f64 = 0.0;
    for (a, b) in a.iter().zip(b) {
        let x = (a - b).abs();
        if x.is_nan() {
            return f64::NAN;
        }
        d = d.max(x);
    }
    d
}

/// L-infinity distance of shares `p` and `q`.
pub(crate) fn linf(p: &[f64], q: &[f64]) -> f64 {
    max_abs_diff(p, q)
}

/// Jensen–Shannon divergence in bits of shares `p` and `q`:
/// `½ Σ p_i log2(p_i/m_i) + ½ Σ q_i log2(q_i/m_i)` with `m = (p+q)/2`; a zero share's term is
/// 0. The result lies in [0, 1]; it is clamped there against rounding.
pub(crate) fn jsd(p: &[f64], q: &[f64]) -> f64 {
    let mut sum = 0.0;
    for (&p, &q) in p.iter().zip(q) {
        let m = (p + q) / 2.0;
        if p != 0.0 {
            sum += 0.5 * p * (p / m).log2();
        }
        if q != 0.0 {
            sum += 0.5 * q * (q / m).log2();
        }
    }
    clamp01(sum)
}

/// `x` clamped to [0, 1], NaN kept.
fn clamp01(x: f64) -> f64 {
    if x.is_nan() { x } else { x.clamp(0.0, 1.0) }
}

/// Hellinger distance `sqrt(Σ (√p_i − √q_i)²) / √2`, in [0, 1] (clamped against rounding).
pub(crate) fn hellinger(p: &[f64], q: &[f64]) -> f64 {
    let s: f64 = p
        .iter()
        .zip(q)
        .map(|(&p, &q)| {
            let d = p.sqrt() - q.sqrt();
            d * d
        })
        .sum();
    clamp01(s.sqrt() / std::f64::consts::SQRT_2)
}

/// Kullback–Leibler divergence `Σ p_i ln(p_i / q_i)` in nats, after clamping every share to
/// at least [`EPSILON`] and renormalising each side to sum 1 (so the result is ≥ 0 and finite
/// when a bucket is empty on one side).
pub(crate) fn kl(p: &[f64], q: &[f64]) -> f64 {
    let p: Vec<f64> = p.iter().map(|&x| clamp(x)).collect();
    let q: Vec<f64> = q.iter().map(|&x| clamp(x)).collect();
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    p.iter()
        .zip(&q)
        .map(|(&a, &b)| {
            let (a, b) = (a / sp, b / sq);
            a * (a / b).ln()
        })
        .sum()
}

/// Wasserstein-1 distance of shares `p` and `q` placed at increasing positions `pos`: the
/// area between the two cumulative distribution functions, `Σ_i |P_i − Q_i| · (pos_{i+1} −
/// pos_i)`.
pub(crate) fn wasserstein(p: &[f64], q: &[f64], pos: &[f64]) -> f64 {
    let (cp, cq) = (cumulative(p), cumulative(q));
    let mut w = 0.0;
    for i in 0..pos.len().saturating_sub(1) {
        w += (cp[i] - cq[i]).abs() * (pos[i + 1] - pos[i]);
    }
    w
}

/// Standard deviation (population) of the distribution with shares `q` at positions `pos`.
pub(crate) fn weighted_std(q: &[f64], pos: &[f64]) -> f64 {
    let mean: f64 = q.iter().zip(pos).map(|(w, x)| w * x).sum();
    let var: f64 = q
        .iter()
        .zip(pos)
        .map(|(w, x)| w * (x - mean) * (x - mean))
        .sum();
    var.max(0.0).sqrt()
}

/// Pearson's chi-square statistic of the 2×k contingency table whose rows are the current
/// counts `c` and the reference counts `r`, and its degrees of freedom. Columns that are
/// empty on both sides are left out (they have no expected count); with fewer than two
/// columns left the statistic is 0 with 0 degrees of freedom. No continuity correction.
pub(crate) fn chi2(c: &[f64], r: &[f64]) -> (f64, usize) {
    let (tc, tr): (f64, f64) = (c.iter().sum(), r.iter().sum());
    let n = tc + tr;
    let mut stat = 0.0;
    let mut columns = 0usize;
    for (&a, &b) in c.iter().zip(r) {
        let col = a + b;
        if col == 0.0 {
            continue;
        }
        columns += 1;
        let (ea, eb) = (tc * col / n, tr * col / n);
        stat += (a - ea) * (a - ea) / ea + (b - eb) * (b - eb) / eb;
    }
    if columns < 2 {
        return (0.0, 0);
    }
    (stat, columns - 1)
}

/// The upper tail `P(X ≥ stat)` of the chi-square distribution with `dof` degrees of freedom
/// (the regularised upper incomplete gamma function `Q(dof/2, stat/2)`); 1 for 0 degrees of
/// freedom, NaN for a NaN statistic.
pub(crate) fn chi2_pvalue(stat: f64, dof: usize) -> f64 {
    if stat.is_nan() {
        return f64::NAN;
    }
    if dof == 0 {
        return 1.0;
    }
    match ChiSquared::new(dof as f64) {
        Ok(d) => d.sf(stat.max(0.0)),
        Err(_) => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn wasserstein_by_hand() {
        // All mass moves from 1 to 3: distance 2. Half of it: 1.
        assert_eq!(wasserstein(&[1.0, 0.0], &[0.0, 1.0], &[1.0, 3.0]), 2.0);
        assert_eq!(wasserstein(&[1.0, 0.0], &[0.5, 0.5], &[1.0, 3.0]), 1.0);
        // Normed by the reference's standard deviation (1 for ½ at 1, ½ at 3).
        let d = Distance::WassersteinNormed;
        assert_eq!(
            d.of_counts(&[2.0, 0.0], &[1.0, 1.0], &[1.0, 3.0]),
            Some(1.0)
        );
        // A reference in one bucket: the deviation floor.
        assert_eq!(
            d.of_counts(&[0.0, 1.0], &[1.0, 0.0], &[1.0, 3.0]),
            Some(2.0 / MIN_STD)
        );
    }

    #[test]
    fn hellinger_kl_linf_by_hand() {
        assert_eq!(hellinger(&[1.0, 0.0], &[0.0, 1.0]), 1.0);
        assert_eq!(hellinger(&[0.3, 0.7], &[0.3, 0.7]), 0.0);
        // (√½ − 1)² + ½ over 2, square-rooted.
        let want = (((0.5f64.sqrt() - 1.0).powi(2) + 0.5) / 2.0).sqrt();
        assert!(close(hellinger(&[0.5, 0.5], &[1.0, 0.0]), want));
        assert!(close(
            kl(&[0.5, 0.5], &[0.25, 0.75]),
            0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln()
        ));
        // An empty reference bucket: clamped to 1e-4 and renormalised, finite.
        let k = kl(&[0.5, 0.5], &[1.0, 0.0]);
        let (a, b): (f64, f64) = (1.0 / 1.0001, 1e-4 / 1.0001);
        assert!(close(k, 0.5 * (0.5 / a).ln() + 0.5 * (0.5 / b).ln()), "{k}");
        assert_eq!(linf(&[0.2, 0.5, 0.3], &[0.4, 0.4, 0.2]), 0.2);
    }

    #[test]
    fn chi2_by_hand() {
        // 2×2 table (10, 20 / 20, 10): expected 15 everywhere, statistic 4·25/15.
        let (s, dof) = chi2(&[10.0, 20.0], &[20.0, 10.0]);
        assert!(close(s, 100.0 / 15.0) && dof == 1);
        // Columns empty on both sides are left out; one column left: nothing to test.
        assert_eq!(chi2(&[10.0, 0.0], &[5.0, 0.0]), (0.0, 0));
        assert_eq!(chi2_pvalue(0.0, 0), 1.0);
        // χ²(2) has survival function e^(−x/2).
        assert!(close(chi2_pvalue(3.0, 2), (-1.5f64).exp()));
        assert!(chi2_pvalue(f64::NAN, 2).is_nan());
        // A category on one side only needs no epsilon.
        let (s, dof) = chi2(&[5.0, 5.0, 0.0], &[5.0, 0.0, 5.0]);
        assert!(s.is_finite() && dof == 2);
    }

    #[test]
    fn empty_sides_give_nothing() {
        for (_, d) in FUNCTIONS {
            assert_eq!(d.of_counts(&[0.0, 0.0], &[1.0, 1.0], &[1.0, 2.0]), None);
            assert_eq!(
                d.of_counts(&[1.0, 1.0], &[f64::NAN, 1.0], &[1.0, 2.0]),
                None
            );
            assert_eq!(Distance::from_name(d.name()), Some(d));
        }
    }
}
