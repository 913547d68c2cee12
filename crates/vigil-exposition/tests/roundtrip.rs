//! Property test: render random metric families in both formats, parse them back, and get
//! the same names, help, labels, values and timestamps.

use proptest::prelude::*;
use vigil_exposition::{Entry, Format, Parser};

#[derive(Debug, Clone)]
struct Sample {
    labels: Vec<(String, String)>,
    value: f64,
    ts_ms: Option<i64>,
}

#[derive(Debug, Clone)]
struct Family {
    name: String,
    help: String,
    samples: Vec<Sample>,
}

fn label_value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('"'),
            Just('\\'),
            Just('\n'),
            Just('{'),
            Just('}'),
            Just(','),
            Just('='),
            Just('#'),
            Just(' '),
            Just('é'),
            Just('☃'),
            prop::char::range('a', 'z'),
        ],
        0..12,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        (-1000i32..1000).prop_map(f64::from),
    ]
}

fn sample() -> impl Strategy<Value = Sample> {
    (
        prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,6}", label_value(), 0..5),
        float(),
        prop::option::of(-1_000_000_000_000_000i64..1_000_000_000_000_000),
    )
        .prop_map(|(labels, value, ts_ms)| Sample {
            // btree order is sorted; reverse it so body order != sorted order.
            labels: labels.into_iter().rev().collect(),
            value,
            ts_ms,
        })
}

fn families() -> impl Strategy<Value = Vec<Family>> {
    prop::collection::btree_map(
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
        (label_value(), prop::collection::vec(sample(), 1..4)),
        1..5,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(name, (help, samples))| Family {
                name,
                help,
                samples,
            })
            .collect()
    })
}

fn render_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust's shortest round-trip representation; exponent form keeps it short.
        format!("{v:e}")
    }
}

fn escape(s: &str, quote: bool) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

fn render(families: &[Family], format: Format) -> String {
    let om = format == Format::OpenMetrics;
    let mut out = String::new();
    for f in families {
        out.push_str(&format!("# HELP {} {}\n", f.name, escape(&f.help, om)));
        out.push_str(&format!("# TYPE {} gauge\n", f.name));
        for s in &f.samples {
            out.push_str(&f.name);
            if !s.labels.is_empty() {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(n, v)| format!("{n}=\"{}\"", escape(v, true)))
                    .collect();
                out.push_str(&format!("{{{}}}", labels.join(",")));
            }
            out.push(' ');
            out.push_str(&render_float(s.value));
            if let Some(ts) = s.ts_ms {
                if om {
                    let sign = if ts < 0 { "-" } else { "" };
                    let abs = ts.unsigned_abs();
                    out.push_str(&format!(" {sign}{}.{:03}", abs / 1000, abs % 1000));
                } else {
                    out.push_str(&format!(" {ts}"));
                }
            }
            out.push('\n');
        }
    }
    if om {
        out.push_str("# EOF\n");
    }
    out
}

fn same_float(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn check(families: &[Family], format: Format) -> Result<(), TestCaseError> {
    let body = render(families, format);
    let entries: Vec<Entry<'_>> = Parser::new(body.as_bytes(), format)
        .collect::<Result<_, _>>()
        .map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
    let mut it = entries.iter();
    for f in families {
        match it.next() {
            Some(Entry::Help { family, help }) => {
                prop_assert_eq!(*family, f.name.as_str());
                prop_assert_eq!(help.as_ref(), f.help.as_str());
            }
            other => prop_assert!(false, "expected HELP, got {:?}", other),
        }
        let is_type = matches!(it.next(), Some(Entry::Type { .. }));
        prop_assert!(is_type, "expected TYPE");
        for s in &f.samples {
            let Some(Entry::Sample(got)) = it.next() else {
                return Err(TestCaseError::fail("expected a sample"));
            };
            prop_assert_eq!(got.name.as_ref(), f.name.as_str());
            let labels: Vec<(String, String)> = got
                .labels()
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            prop_assert_eq!(&labels, &s.labels);
            prop_assert!(
                same_float(got.value, s.value),
                "{} != {}",
                got.value,
                s.value
            );
            prop_assert_eq!(got.timestamp_ms, s.ts_ms);
            prop_assert!(got.exemplar.is_none());
        }
    }
    prop_assert!(it.next().is_none());
    Ok(())
}

/// What a parser yields, in comparable form; with `deferred`, each sample's deferred label
/// check runs as the scrape loop runs it, and its error ends the sequence as the eager
/// parser's error would.
fn outcomes(body: &[u8], format: Format, deferred: bool) -> Vec<String> {
    let mut p = Parser::new(body, format);
    if deferred {
        p = p.defer_label_checks();
    }
    let mut out = Vec::new();
    for r in p {
        match r {
            Ok(Entry::Sample(s)) => {
                if let Err(e) = s.check() {
                    out.push(format!("error {e}"));
                    break;
                }
                let labels: Vec<_> = s.labels().collect();
                out.push(format!(
                    "{:?} {:?} {} {:?} {labels:?} {:?}",
                    s.series,
                    s.name,
                    s.value.to_bits(),
                    s.timestamp_ms,
                    s.exemplar
                ));
            }
            Ok(e) => out.push(format!("{e:?}")),
            Err(e) => out.push(format!("error {e}")),
        }
    }
    out
}

/// Bytes near the exposition syntax: braces, quotes, escapes, separators.
fn near_syntax() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b'{'),
            Just(b'}'),
            Just(b'"'),
            Just(b'\\'),
            Just(b'\n'),
            Just(b' '),
            Just(b'#'),
            Just(b'='),
            Just(b','),
            Just(b'1'),
            Just(b'x'),
            Just(b'_'),
            Just(0xff),
            any::<u8>(),
        ],
        0..64,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Deferring the label checks changes nothing a caller that checks every sample sees:
    /// the same entries and the same first error, at the same line and column.
    #[test]
    fn deferred_label_checks_agree(
        families in families(),
        prefix in near_syntax(),
        suffix in near_syntax(),
    ) {
        for format in [Format::PrometheusText, Format::OpenMetrics] {
            let rendered = render(&families, format);
            for body in [
                rendered.clone().into_bytes(),
                [b"m{".as_slice(), &suffix].concat(),
                [&prefix[..], b" 1\n", rendered.as_bytes()].concat(),
                [b"a{b=\"c\"".as_slice(), &suffix, b"} 1\n"].concat(),
                prefix.clone(),
            ] {
                prop_assert_eq!(outcomes(&body, format, false), outcomes(&body, format, true));
            }
        }
    }

    #[test]
    fn text_roundtrip(families in families()) {
        check(&families, Format::PrometheusText)?;
    }

    #[test]
    fn openmetrics_roundtrip(families in families()) {
        check(&families, Format::OpenMetrics)?;
    }

    /// Arbitrary bytes never panic, in either format or mode.
    #[test]
    fn no_panic_on_garbage(body in prop::collection::vec(
        prop_oneof![Just(b'{'), Just(b'}'), Just(b'"'), Just(b'\\'), Just(b'\n'), Just(b' '),
                    Just(b'#'), Just(b'='), Just(b','), Just(0xff), any::<u8>(), b'a'..b'f'],
        0..64,
    )) {
        for format in [Format::PrometheusText, Format::OpenMetrics] {
            let _ = Parser::new(&body, format).count();
            let _ = Parser::new(&body, format).strict().count();
            for e in Parser::new(&body, format).flatten() {
                if let Entry::Sample(s) = e {
                    let _ = s.labels().count();
                }
            }
        }
    }
}
