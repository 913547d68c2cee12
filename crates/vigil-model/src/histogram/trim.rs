//! Trimming a histogram at a value: what the PromQL operators `h </ x` ("trim upper", keep the
//! observations below `x`) and `h >/ x` ("trim lower", keep the observations above `x`) compute.
//!
//! This follows Prometheus' `FloatHistogram.TrimBuckets` to the bit, because the upstream test
//! corpus compares the resulting buckets, count and sum:
//!
//! * A bucket entirely on the kept side stays as it is, one entirely on the other side is emptied,
//!   and the one containing `x` keeps the share of its count on the kept side. That share is
//!   interpolated linearly for custom buckets and on a log scale for exponential buckets (as
//!   [`Bucket::fraction_below`]). Buckets reaching to ±Inf (custom buckets only) are kept or
//!   dropped as a whole, except that a first bucket ending at a positive bound is treated as if
//!   it started at 0.
//! * The zero bucket is interpolated linearly. It is taken to cover only `[0, threshold]` when
//!   the histogram has positive but no negative buckets, and only `[−threshold, 0]` in the
//!   mirrored case.
//! * The sum is not known after trimming, so it is estimated from the surviving part of every
//!   populated bucket: its count times a representative value of the surviving interval (the
//!   arithmetic mean of its bounds for custom buckets and the zero bucket, the geometric mean,
//!   signed, for exponential buckets).
//! * Count and sum are only replaced, and the buckets only compacted, when some bucket actually
//!   lost observations; otherwise the histogram is left exactly as it was, its sum included.
//!
//! The counter-reset hint, the schema, the zero threshold and the custom bounds never change.
//!
//! Results agree with Prometheus (on amd64, where Go does not fuse multiply-adds) to the bit for
//! custom buckets and for exponential schemas ≤ 0. For schemas > 0, [`super::exponential_bound`]
//! computes correctly rounded bounds while Prometheus reads many of them, one ulp lower, from a
//! table, so interpolated counts and estimated sums can differ in the last few bits.

use super::{Bucket, FloatHistogram};

impl FloatHistogram {
    /// Trims the histogram at `rhs` in place: with `is_upper_trim` (PromQL's `h </ rhs`) only
    /// the observations below `rhs` remain, otherwise (`h >/ rhs`) only those above it.
    ///
    /// The bucket containing `rhs` keeps its share of observations on the kept side
    /// (interpolated linearly for custom buckets and the zero bucket, on a log scale for
    /// exponential buckets); the count becomes the sum of what remains and the sum is
    /// re-estimated from the surviving bucket intervals (see the module documentation). When no
    /// bucket loses observations the histogram is left untouched; otherwise it ends up
    /// compacted (`compact(0)`). A NaN `rhs` empties every bucket outside the zero bucket and
    /// makes the zero count (and with it count and sum) NaN if it was populated, as Prometheus
    /// does.
    ///
    /// Callers that must keep the original histogram trim a clone.
    pub fn trim_buckets(&mut self, rhs: f64, is_upper_trim: bool) {
        let linear = self.uses_custom_buckets();
        let mut count = 0.0;
        let mut sum = 0.0;
        let mut trimmed = false;
        let mut has_positive = false;
        let mut has_negative = false;

        for positive in [true, false] {
            let side: Vec<Bucket> = if positive {
                self.positive_bucket_iter().collect()
            } else {
                self.negative_bucket_iter().collect()
            };
            for (i, b) in side.into_iter().enumerate() {
                if b.count == 0.0 {
                    continue;
                }
                if positive {
                    has_positive = true;
                } else {
                    has_negative = true;
                }
                // Entirely on the kept side, or straddling `rhs` (either test is false for NaN).
                let (all_kept, straddles) = if is_upper_trim {
                    (b.upper <= rhs, b.lower < rhs)
                } else {
                    (b.lower >= rhs, b.upper > rhs)
                };
                let slot = if positive {
                    &mut self.positive_buckets[i]
                } else {
                    &mut self.negative_buckets[i]
                };
                if all_kept {
                    count += b.count;
                    sum += surviving_midpoint(b.lower, b.upper, positive, linear) * b.count;
                } else if straddles {
                    let (keep, midpoint) = bucket_trim(&b, rhs, is_upper_trim, positive, linear);
                    count += keep;
                    sum += midpoint * keep;
                    if *slot != keep {
                        *slot = keep;
                        trimmed = true;
                    }
                } else {
                    *slot = 0.0;
                    trimmed = true;
                }
            }
        }

        if self.zero_count > 0.0 {
            let (keep, midpoint) = zero_bucket_trim(
                &self.zero_bucket(),
                rhs,
                has_negative,
                has_positive,
                is_upper_trim,
            );
            if self.zero_count != keep {
                self.zero_count = keep;
                trimmed = true;
            }
            sum += midpoint * keep;
            count += keep;
        }

        if trimmed {
            self.count = count;
            self.sum = sum;
            self.compact(0);
        }
    }
}

/// The observations of bucket `b` (which contains `rhs` strictly inside its bounds) on the kept
/// side, and the value representing them in the sum.
fn bucket_trim(
    b: &Bucket,
    rhs: f64,
    is_upper_trim: bool,
    positive: bool,
    linear: bool,
) -> (f64, f64) {
    if b.lower == f64::NEG_INFINITY || b.upper == f64::INFINITY {
        return infinite_bucket_trim(b, rhs, is_upper_trim);
    }
    let below = count_below(b, rhs, linear);
    if is_upper_trim {
        (below, surviving_midpoint(b.lower, rhs, positive, linear))
    } else {
        (
            b.count - below,
            surviving_midpoint(rhs, b.upper, positive, linear),
        )
    }
}

/// The share of `b`'s count at or below `rhs`.
fn count_below(b: &Bucket, rhs: f64, linear: bool) -> f64 {
    if rhs <= b.lower {
        0.0
    } else if rhs >= b.upper {
        b.count
    } else {
        b.count * b.fraction_below(rhs, linear)
    }
}

/// [`bucket_trim`] for a bucket reaching to −Inf or +Inf (only custom buckets do). Nothing is
/// known about how such a bucket's observations spread, so it is mostly kept or dropped whole;
/// the exception is a first bucket with a finite positive upper bound, which is interpolated as
/// if it started at 0.
fn infinite_bucket_trim(b: &Bucket, rhs: f64, is_upper_trim: bool) -> (f64, f64) {
    // The representative value of a dropped bucket only multiplies a zero count, so it must
    // not be infinite (0 · Inf would make the sum NaN).
    let finite_or_zero = |x: f64| if x.is_infinite() { 0.0 } else { x };

    if b.lower == f64::NEG_INFINITY {
        if is_upper_trim {
            if rhs >= b.upper {
                return (b.count, 0.0);
            }
            if rhs > 0.0 && b.upper > 0.0 && b.upper != f64::INFINITY {
                return (b.count * rhs / b.upper, rhs / 2.0);
            }
            if b.upper <= 0.0 {
                return (b.count, rhs);
            }
            return (0.0, finite_or_zero(b.upper));
        }
        if rhs <= b.lower {
            return (b.count, 0.0);
        }
        if rhs >= 0.0 && b.upper > rhs && b.upper != f64::INFINITY {
            return (b.count * (1.0 - rhs / b.upper), (rhs + b.upper) / 2.0);
        }
        return (0.0, finite_or_zero(b.upper));
    }

    debug_assert_eq!(b.upper, f64::INFINITY, "bucket {b} has no infinite bound");
    // Trimming the upper part of a bucket up to +Inf always drops it: whatever `rhs` is, some
    // (or all) of its observations may lie above it.
    if !is_upper_trim && rhs >= b.lower {
        return (b.count, rhs);
    }
    (0.0, finite_or_zero(b.lower))
}

/// The kept part of the zero bucket `z` and the value representing it in the sum. The zero
/// bucket only extends to the side(s) where the histogram has populated buckets (both when it
/// has none).
fn zero_bucket_trim(
    z: &Bucket,
    rhs: f64,
    has_negative: bool,
    has_positive: bool,
    is_upper_trim: bool,
) -> (f64, f64) {
    let mut lower = z.lower;
    let mut upper = z.upper;
    if has_negative && !has_positive {
        upper = 0.0;
    }
    if has_positive && !has_negative {
        lower = 0.0;
    }

    let (fraction, midpoint) = if is_upper_trim {
        if rhs <= lower {
            return (0.0, 0.0);
        }
        if rhs >= upper {
            return (z.count, (lower + upper) / 2.0);
        }
        ((rhs - lower) / (upper - lower), (lower + rhs) / 2.0)
    } else {
        if rhs <= lower {
            return (z.count, (lower + upper) / 2.0);
        }
        if rhs >= upper {
            return (0.0, 0.0);
        }
        ((upper - rhs) / (upper - lower), (rhs + upper) / 2.0)
    };
    (z.count * fraction, midpoint)
}

/// The value standing for every observation in the surviving interval `[lower, upper]` of a
/// bucket when the sum is re-estimated: the arithmetic mean of the bounds for linear (custom)
/// buckets, the geometric mean (negated on the negative side) for exponential ones. An infinite
/// bound is replaced by the finite one (halved if it is a positive upper bound).
fn surviving_midpoint(lower: f64, upper: f64, positive: bool, linear: bool) -> f64 {
    if lower.is_infinite() {
        if upper.is_infinite() {
            return 0.0;
        }
        return if upper > 0.0 { upper / 2.0 } else { upper };
    }
    if upper.is_infinite() {
        return lower;
    }
    if linear {
        return (lower + upper) / 2.0;
    }
    let geometric_mean = (lower * upper).abs().sqrt();
    if positive {
        geometric_mean
    } else {
        -geometric_mean
    }
}

#[cfg(test)]
mod tests;
