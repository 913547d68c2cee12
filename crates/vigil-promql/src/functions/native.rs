//! The functions of native histograms: `histogram_count`, `histogram_sum`, `histogram_avg`,
//! `histogram_stddev`, `histogram_stdvar`, and the native halves of `histogram_quantile` and
//! `histogram_fraction` (Prometheus' `quantile.go`). Interpolation is linear in custom buckets
//! and in the zero bucket, and on a log scale in exponential buckets (Prometheus 3).

use super::kahan_sum_inc;
use crate::engine::eval::{Ev, Result, Series, Val};
use vigil_model::Sample;
use vigil_model::histogram::FloatHistogram;
use vigil_promql_parser::Expr;

/// Applies `f` to every histogram point of the argument; float points are ignored.
pub(super) fn simple(ev: &Ev, arg: &Expr, f: fn(&FloatHistogram) -> f64) -> Result<Val> {
    let input = ev.eval_vector(arg)?;
    let mut out = Vec::with_capacity(input.len());
    for s in input {
        if s.hpoints.is_empty() {
            continue;
        }
        let points: Vec<Sample> = s
            .hpoints
            .iter()
            .map(|p| Sample { t: p.t, v: f(&p.h) })
            .collect();
        out.push(Series::floats(s.labels, true, points));
    }
    Ok(Val::Vector(out))
}

pub(super) fn count(h: &FloatHistogram) -> f64 {
    h.count
}

pub(super) fn sum(h: &FloatHistogram) -> f64 {
    h.sum
}

pub(super) fn avg(h: &FloatHistogram) -> f64 {
    h.sum / h.count
}

/// The variance of the observations, each bucket's observations taken at one representative
/// value: the arithmetic middle of a custom bucket, zero in the zero bucket, the geometric
/// middle of an exponential bucket.
pub(super) fn stdvar(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut var, mut c) = (0.0, 0.0);
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        let val = if h.uses_custom_buckets() {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let v = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 { -v } else { v }
        };
        let d = val - mean;
        (var, c) = kahan_sum_inc(b.count * d * d, var, c);
    }
    (var + c) / h.count
}

pub(super) fn stddev(h: &FloatHistogram) -> f64 {
    stdvar(h).sqrt()
}

/// What the native quantile and fraction report besides their value.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct NativeNotes {
    /// The result is NaN because of NaN observations.
    pub nan_result: bool,
    /// NaN observations pushed the result higher.
    pub nan_skew: bool,
    /// NaN observations were left out of every fraction.
    pub fraction_nans: bool,
}

/// The φ-quantile of a native histogram.
pub(crate) fn quantile(q: f64, h: &FloatHistogram) -> (f64, NativeNotes) {
    let mut notes = NativeNotes::default();
    if q < 0.0 {
        return (f64::NEG_INFINITY, notes);
    }
    if q > 1.0 {
        return (f64::INFINITY, notes);
    }
    if h.count == 0.0 || q.is_nan() {
        return (f64::NAN, notes);
    }
    let forward = h.sum.is_nan() || q < 0.5;
    let buckets = if forward {
        h.all_buckets()
    } else {
        h.all_buckets_reverse()
    };
    let mut rank = if forward {
        q * h.count
    } else {
        (1.0 - q) * h.count
    };
    let mut count = 0.0;
    let mut idx = None;
    for (i, b) in buckets.iter().enumerate() {
        idx = Some(i);
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        if count >= rank {
            break;
        }
    }
    let Some(i) = idx else {
        // No buckets at all (every observation was NaN): Prometheus' empty bucket [0, 0].
        if rank > 0.0 {
            if h.sum.is_nan() {
                notes.nan_result = true;
                return (f64::NAN, notes);
            }
            return (0.0, notes);
        }
        return (f64::NAN, notes);
    };
    let mut bucket = buckets[i];
    if !h.uses_custom_buckets() && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    } else if h.uses_custom_buckets() {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return (bucket.upper, notes);
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return (bucket.lower, notes);
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        if h.sum.is_nan() {
            notes.nan_result = true;
            return (f64::NAN, notes);
        }
        return (bucket.upper, notes);
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    if h.sum.is_nan() {
        let rest: f64 = buckets[i + 1..].iter().map(|b| b.count).sum();
        if count + rest < h.count {
            notes.nan_skew = true;
        }
    }
    let fraction = rank / bucket.count;
    if h.uses_custom_buckets() || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return (
            bucket.lower + (bucket.upper - bucket.lower) * fraction,
            notes,
        );
    }
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        return (
            (log_lower + (log_upper - log_lower) * fraction).exp2(),
            notes,
        );
    }
    (
        -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2(),
        notes,
    )
}

/// The fraction of a native histogram's observations between `lower` and `upper`.
pub(crate) fn fraction(lower: f64, upper: f64, h: &FloatHistogram) -> (f64, NativeNotes) {
    let mut notes = NativeNotes::default();
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return (f64::NAN, notes);
    }
    if lower >= upper {
        return (0.0, notes);
    }
    let buckets = h.all_buckets();
    let (mut count, mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut next = buckets.len();
    for (i, b0) in buckets.iter().enumerate() {
        let mut b = *b0;
        count += b.count;
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        let linear = h.uses_custom_buckets() || zero_bucket;
        let interpolate = |v: f64| {
            if linear && b.lower == f64::NEG_INFINITY {
                return b.count;
            }
            rank + b.count * b.fraction_below(v, linear)
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            next = i + 1;
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            next = i + 1;
            break;
        }
        rank += b.count;
    }
    if h.sum.is_nan() {
        count += buckets[next.min(buckets.len())..]
            .iter()
            .map(|b| b.count)
            .sum::<f64>();
        if count < h.count {
            notes.fraction_nans = true;
        }
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    ((upper_rank - lower_rank) / h.count, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::histogram::notation::parse_histogram;

    fn h(s: &str) -> FloatHistogram {
        parse_histogram(s).unwrap().0
    }

    #[test]
    fn quantile_interpolates_on_a_log_scale_in_exponential_buckets() {
        // Schema 0, one bucket (1, 2] holding 4 observations: the median is at 2^0.5.
        let x = h("{{count:4 sum:6 buckets:[4] offset:1}}");
        let (q, _) = quantile(0.5, &x);
        assert!((q - std::f64::consts::SQRT_2).abs() < 1e-12, "{q}");
        assert_eq!(quantile(1.5, &x).0, f64::INFINITY);
        assert!(quantile(0.5, &h("{{count:0}}")).0.is_nan());
    }

    #[test]
    fn quantile_in_custom_buckets_is_linear() {
        let x = h("{{schema:-53 count:4 sum:6 custom_values:[1 3] buckets:[0 4]}}");
        // All four in (1, 3]: the median is 2.
        assert_eq!(quantile(0.5, &x).0, 2.0);
        // The +Inf bucket answers its lower bound.
        let y = h("{{schema:-53 count:4 sum:6 custom_values:[1] buckets:[0 4]}}");
        assert_eq!(quantile(0.9, &y).0, 1.0);
    }

    #[test]
    fn fraction_is_the_inverse_of_quantile() {
        let x =
            h("{{schema:1 count:10 sum:20 z_bucket:2 z_bucket_w:0.5 buckets:[2 3 3] offset:0}}");
        let q = quantile(0.7, &x).0;
        let (f, _) = fraction(f64::NEG_INFINITY, q, &x);
        assert!((f - 0.7).abs() < 1e-9, "{f}");
        assert_eq!(fraction(f64::NEG_INFINITY, f64::INFINITY, &x).0, 1.0);
        assert_eq!(fraction(2.0, 1.0, &x).0, 0.0);
    }

    #[test]
    fn variance_uses_bucket_midpoints() {
        // Custom buckets (0, 2] and (2, 4], two observations each at midpoints 1 and 3: mean 2
        // (from the sum), variance 1.
        let x = h("{{schema:-53 count:4 sum:8 custom_values:[0 2 4] buckets:[0 2 2]}}");
        assert_eq!(stdvar(&x), 1.0);
        assert_eq!(stddev(&x), 1.0);
    }
}
