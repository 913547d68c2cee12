use super::notation::{SeriesValue, parse_histogram, parse_series_values};
use super::*;

fn h(s: &str) -> FloatHistogram {
    parse_histogram(s).unwrap().0
}

fn buckets(h: &FloatHistogram) -> Vec<(i32, f64)> {
    expand(&h.positive_spans, &h.positive_buckets)
}

#[test]
fn exponential_bounds() {
    // Schema 0: powers of two; bucket 1 is (1, 2].
    assert_eq!(exponential_bound(1, 0), 2.0);
    assert_eq!(exponential_bound(0, 0), 1.0);
    assert_eq!(exponential_bound(-1, 0), 0.5);
    // Schema 1: sqrt(2) steps.
    assert_eq!(exponential_bound(1, 1), std::f64::consts::SQRT_2);
    assert_eq!(exponential_bound(2, 1), 2.0);
    // Schema -1: powers of four.
    assert_eq!(exponential_bound(1, -1), 4.0);
    // The last finite bucket ends at f64::MAX, the next one at +Inf.
    assert_eq!(exponential_bound(1024, 0), f64::MAX);
    assert_eq!(exponential_bound(1025, 0), f64::INFINITY);
    // Every schema agrees on powers of two.
    for s in 0..=8 {
        assert_eq!(exponential_bound(3 << s, s), 8.0, "schema {s}");
    }
}

#[test]
fn custom_bounds() {
    let c = [1.0, 5.0];
    assert_eq!(bucket_bound(0, CUSTOM_BUCKETS_SCHEMA, &c), 1.0);
    assert_eq!(
        bucket_bound(-1, CUSTOM_BUCKETS_SCHEMA, &c),
        f64::NEG_INFINITY
    );
    assert_eq!(bucket_bound(2, CUSTOM_BUCKETS_SCHEMA, &c), f64::INFINITY);
    let x = h("{{schema:-53 count:6 sum:9 custom_values:[1 5] buckets:[1 2 3]}}");
    let b: Vec<(f64, f64, f64)> = x
        .positive_bucket_iter()
        .map(|b| (b.lower, b.upper, b.count))
        .collect();
    assert_eq!(
        b,
        vec![
            (f64::NEG_INFINITY, 1.0, 1.0),
            (1.0, 5.0, 2.0),
            (5.0, f64::INFINITY, 3.0)
        ]
    );
    assert!(x.validate().is_ok());
}

#[test]
fn add_reduces_to_the_coarser_schema_and_keeps_every_bucket() {
    // Schema 1 buckets 1..=4 become schema 0 buckets 1, 1, 2, 2.
    let mut a = h("{{schema:1 count:10 sum:1 buckets:[1 2 3 4] offset:1}}");
    let b = h("{{schema:0 count:1 sum:2 buckets:[1] offset:4}}");
    let out = a.add(&b).unwrap();
    assert_eq!(out, AddOutcome::default());
    assert_eq!(a.schema, 0);
    assert_eq!(a.count, 11.0);
    assert_eq!(a.sum, 3.0);
    assert_eq!(buckets(&a), vec![(1, 3.0), (2, 7.0), (4, 1.0)]);
    assert_eq!(
        a.positive_spans,
        vec![
            Span {
                offset: 1,
                length: 2
            },
            Span {
                offset: 1,
                length: 1
            }
        ]
    );
}

#[test]
fn sub_keeps_empty_buckets_until_compacted() {
    let mut a = h("{{count:3 sum:3 buckets:[1 2]}}");
    let b = h("{{count:1 sum:1 buckets:[1]}}");
    a.sub(&b).unwrap();
    assert_eq!(buckets(&a), vec![(0, 0.0), (1, 2.0)]);
    a.compact(0);
    assert_eq!(buckets(&a), vec![(1, 2.0)]);
    assert_eq!(
        a.positive_spans,
        vec![Span {
            offset: 1,
            length: 1
        }]
    );
}

#[test]
fn zero_buckets_widen_to_the_larger_threshold() {
    // b's zero bucket is 0.6 wide: a's bucket (0.5, 1] at schema 0 straddles it and is
    // populated, so the threshold grows to 1 and the bucket joins the zero bucket.
    let mut a = h("{{count:6 sum:1 z_bucket:1 z_bucket_w:0.1 buckets:[2 3] offset:0}}");
    let b = h("{{count:1 sum:1 z_bucket:1 z_bucket_w:0.6}}");
    a.add(&b).unwrap();
    assert_eq!(a.zero_threshold, 1.0);
    assert_eq!(a.zero_count, 1.0 + 2.0 + 1.0);
    assert_eq!(buckets(&a), vec![(1, 3.0)]);
}

#[test]
fn custom_buckets_meet_at_their_shared_bounds() {
    let mut a = h("{{schema:-53 count:6 sum:1 custom_values:[1 2 5] buckets:[1 2 2 1]}}");
    let b = h("{{schema:-53 count:3 sum:1 custom_values:[2 5] buckets:[1 1 1]}}");
    let out = a.add(&b).unwrap();
    assert!(out.nhcb_bounds_reconciled);
    assert_eq!(a.custom(), &[2.0, 5.0]);
    assert_eq!(buckets(&a), vec![(0, 4.0), (1, 3.0), (2, 2.0)]);
    let mismatch = h("{{count:1 buckets:[1]}}");
    assert_eq!(a.add(&mismatch), Err(HistogramError::IncompatibleSchema));
}

#[test]
fn kahan_add_matches_a_careful_sum() {
    let big = h("{{count:1e16 sum:1e16 buckets:[1e16]}}");
    let one = h("{{count:1 sum:1 buckets:[1]}}");
    let neg = h("{{count:-1e16 sum:-1e16 buckets:[-1e16]}}");
    let mut acc = big.clone();
    let mut comp = None;
    for _ in 0..10 {
        acc.kahan_add(&one, &mut comp).unwrap();
    }
    acc.kahan_add(&neg, &mut comp).unwrap();
    acc.kahan_finish(comp);
    assert_eq!(acc.count, 10.0);
    assert_eq!(acc.positive_buckets, vec![10.0]);
}

#[test]
fn counter_hints_combine_as_prometheus_does() {
    let mut a = h("{{count:1 counter_reset_hint:reset}}");
    let b = h("{{count:1 counter_reset_hint:not_reset}}");
    assert!(a.add(&b).unwrap().counter_reset_collision);
    assert_eq!(a.counter_reset_hint, CounterResetHint::Unknown);
    let mut g = h("{{count:1 counter_reset_hint:gauge}}");
    g.add(&b).unwrap();
    assert_eq!(g.counter_reset_hint, CounterResetHint::Gauge);
    let mut m = h("{{count:1 buckets:[1]}}");
    m.mul(-1.0);
    assert_eq!(m.counter_reset_hint, CounterResetHint::Gauge);
}

#[test]
fn detect_reset_cases() {
    let prev = h("{{count:4 sum:4 buckets:[1 3]}}");
    assert!(!h("{{count:5 sum:5 buckets:[2 3]}}").detect_reset(&prev));
    // A bucket went down.
    assert!(h("{{count:5 sum:5 buckets:[0 5]}}").detect_reset(&prev));
    // A populated bucket vanished.
    assert!(h("{{count:5 sum:5 buckets:[5] offset:1}}").detect_reset(&prev));
    // Higher resolution always means a reset; lower is compared merged.
    assert!(h("{{schema:1 count:5 sum:5 buckets:[5]}}").detect_reset(&prev));
    let fine = h("{{schema:1 count:4 sum:4 buckets:[1 1 2] offset:1}}");
    assert!(!h("{{count:4 sum:4 buckets:[2 2] offset:1}}").detect_reset(&fine));
    // The hint wins.
    assert!(!h("{{count:0 counter_reset_hint:not_reset}}").detect_reset(&prev));
    assert!(h("{{count:9 counter_reset_hint:reset}}").detect_reset(&prev));
}

#[test]
fn reduce_resolution_merges_neighbours() {
    let mut x = h("{{schema:2 count:10 buckets:[1 2 3 4] offset:-1 n_buckets:[1 1] n_offset:2}}");
    x.reduce_resolution(0).unwrap();
    // Schema 2 → 0: index i maps to ((i−1) >> 2) + 1.
    assert_eq!(buckets(&x), vec![(0, 3.0), (1, 7.0)]);
    assert_eq!(
        expand(&x.negative_spans, &x.negative_buckets),
        vec![(1, 2.0)]
    );
}

#[test]
fn series_notation_expands() {
    let v = parse_series_values(
        "1+2x2 _ stale {{count:1}}x1 {{count:1 buckets:[1]}}+{{count:2 buckets:[0 2]}}x2",
    )
    .unwrap();
    assert_eq!(v.len(), 3 + 1 + 1 + 2 + 3);
    assert_eq!(v[2], SeriesValue::Float(5.0));
    assert_eq!(v[3], SeriesValue::Omitted);
    let SeriesValue::Histogram(last, hint) = &v[9] else {
        panic!("{:?}", v[9])
    };
    assert!(!hint);
    assert_eq!(last.count, 5.0);
    assert_eq!(buckets(last), vec![(0, 1.0), (1, 4.0)]);
    assert!(parse_series_values("{{count:1").is_err());
    assert!(parse_series_values("{{bogus:1}}").is_err());
}

#[test]
fn notation_round_trips() {
    for s in [
        "{{schema:1 count:3 sum:5 z_bucket:1 z_bucket_w:0.001 offset:-2 buckets:[1 0 1] n_buckets:[1]}}",
        "{{schema:-53 count:3 sum:5 custom_values:[0.1 1] buckets:[1 2]}}",
        "{{count:2 counter_reset_hint:gauge}}",
    ] {
        let x = h(s);
        let y = h(&x.test_expression());
        assert!(x.equals(&y), "{s} -> {}", x.test_expression());
    }
}

#[test]
fn display_lists_populated_buckets() {
    let x = h("{{count:4 sum:5 z_bucket:1 z_bucket_w:0.001 buckets:[1 0 2] n_buckets:[0 0]}}");
    assert_eq!(
        x.to_string(),
        "{count:4, sum:5, [-0.001,0.001]:1, (0.5,1]:1, (2,4]:2}"
    );
}

#[test]
fn integer_form_round_trips() {
    let x = h("{{schema:2 count:7 sum:1.5 z_bucket:1 buckets:[1 4 1] n_buckets:[0 0]}}");
    let i = Histogram::from_float(&x).unwrap();
    assert_eq!(i.positive_buckets, vec![1, 3, -3]);
    assert!(i.to_float().equals(&x));
    assert!(Histogram::from_float(&h("{{count:0.5}}")).is_none());
}

#[test]
fn validate_rejects_bad_layouts() {
    let mut x = h("{{count:3 buckets:[1 2]}}");
    x.positive_buckets.push(1.0);
    assert!(x.validate().is_err());
    let mut y = h("{{count:3 buckets:[1 2]}}");
    y.schema = 9;
    assert_eq!(y.validate(), Err(HistogramError::InvalidSchema(9)));
}

#[test]
#[allow(clippy::approx_constant)]
fn log2_matches_go() {
    // math.Log2 results of Go (amd64); the first few differ from a correctly rounded log2.
    let cases = [
        (0.6046602879796196, -0.7258032640642735),
        (1.0000004377141871, 6.314879489321967e-07),
        (1.0000001565192547, 2.2580953473738674e-07),
        (1.000000813639961, 1.1738338591138486e-06),
        (1.5, 0.5849625007211563),
        (3.0, 1.5849625007211563),
        (0.6, -0.7369655941662062),
        (1.13, 0.17632277264046292),
        (1.4142135624, 0.5000000000274469),
        (1e-300, -996.5784284662087),
        (5e-324, -1074.0),
        (0.7071067811865475, -0.5000000000000001),
        (1.0905077326652577, 0.1250000000000001),
        (1024.0, 10.0),
        (0.0, f64::NEG_INFINITY),
        (f64::INFINITY, f64::INFINITY),
    ];
    for (x, want) in cases {
        assert_eq!(go_log2(x).to_bits(), f64::to_bits(want), "log2({x})");
    }
    assert!(go_log2(-1.0).is_nan() && go_log2(f64::NAN).is_nan());
}
