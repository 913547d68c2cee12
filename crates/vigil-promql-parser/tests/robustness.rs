//! No input may panic or exhaust the stack: random strings, random edits of valid queries,
//! and very deep nesting. Whatever parses must print to a query that parses again.

use proptest::prelude::*;
use vigil_promql_parser::{ErrorKind, parse, parse_metric_selector};

const SEEDS: &[&str] = &[
    r#"sum by (job) (rate(http_requests_total{code=~"5.."}[5m] offset 1h @ 1000))"#,
    r#"foo{a="b" or c!="d"} / on(x) group_left(y) fill_left(0) fill_right(-1) bar"#,
    r#"histogram_quantile(0.9, sum without (le) (rate(x_bucket[1m:30s])))"#,
    r#"-a ^ 2 < bool 3 and topk(3, {"a.b"="c"}) unless count_values("v", x)"#,
    r#"rate(foo[step() * 2 + min_of(5m, range())] anchored offset -(5m))"#,
    r#"x </ 0.5 >/ 0x1f atan2 1e3 % Inf - NaN # comment"#,
    r#"label_replace(up @ start(), "a", '$1', `b`, "(.*)")"#,
];

fn check(q: &str) {
    let _ = parse_metric_selector(q);
    if let Ok(e) = parse(q) {
        let printed = e.to_string();
        if let Err(err) = parse(&printed) {
            panic!("{q:?} printed as {printed:?} does not parse: {err}");
        }
    }
}

#[test]
fn seeds_parse_and_round_trip() {
    for q in SEEDS {
        parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        check(q);
    }
}

#[test]
fn deep_nesting_is_an_error() {
    for depth in [100_000usize, 2_000] {
        let parens = format!("{}1{}", "(".repeat(depth), ")".repeat(depth));
        let minuses = format!("{}foo", "-".repeat(depth));
        let pows = vec!["2"; depth].join("^");
        let sums = vec!["a"; depth].join("+");
        let durs = format!("foo[{}5m{}]", "(".repeat(depth), ")".repeat(depth));
        let calls = format!("{}x{}", "abs(".repeat(depth), ")".repeat(depth));
        for q in [parens, minuses, pows, sums, durs, calls] {
            let err = parse(&q).unwrap_err();
            assert_eq!(err.kind, ErrorKind::TooDeep, "{}", err);
        }
    }
    // Just under the limits still parses, checks and prints.
    check(&format!("{}1{}", "(".repeat(120), ")".repeat(120)));
    check(&vec!["a"; 250].join(" + "));
    check(&vec!["2"; 120].join("^"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_strings_do_not_panic(s in "\\PC{0,40}") {
        check(&s);
    }

    #[test]
    fn random_promql_alphabet_does_not_panic(
        s in "[a-z_ (){}\\[\\]=~!<>/*+%^@:,.0-9\"'`#\\-\n]{0,60}"
    ) {
        check(&s);
    }

    #[test]
    fn mutated_queries_do_not_panic(
        seed in 0..SEEDS.len(),
        edits in prop::collection::vec((0usize..200, 0u8..3, any::<char>()), 1..6),
    ) {
        let mut chars: Vec<char> = SEEDS[seed].chars().collect();
        for (at, kind, c) in edits {
            let i = at % (chars.len() + 1);
            match kind {
                0 => chars.insert(i, c),
                1 if i < chars.len() => { chars.remove(i); }
                _ if i < chars.len() => chars[i] = c,
                _ => chars.push(c),
            }
        }
        check(&chars.into_iter().collect::<String>());
    }
}
