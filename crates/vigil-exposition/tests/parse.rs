//! Unit and regression tests of both formats through the public API.

use std::borrow::Cow;

use vigil_exposition::{
    ACCEPT_HEADER, Entry, Format, MetricType, ParseError, Parser, SampleEntry,
    format_from_content_type,
};

/// A sample, owned, for comparisons.
#[derive(Debug, Clone, PartialEq)]
struct S {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    ts: Option<i64>,
}

fn own(s: &SampleEntry<'_>) -> S {
    S {
        name: s.name.to_string(),
        labels: s
            .labels()
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect(),
        value: s.value,
        ts: s.timestamp_ms,
    }
}

fn entries(body: &str, format: Format) -> Result<Vec<Entry<'_>>, ParseError> {
    Parser::new(body.as_bytes(), format).collect()
}

fn samples(body: &str, format: Format) -> Vec<S> {
    entries(body, format)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .filter_map(|e| match e {
            Entry::Sample(s) => Some(own(s)),
            _ => None,
        })
        .collect()
}

fn error(body: &str, format: Format) -> ParseError {
    match entries(body, format) {
        Ok(e) => panic!("expected an error, parsed {e:?}"),
        Err(e) => e,
    }
}

fn s(name: &str, labels: &[(&str, &str)], value: f64, ts: Option<i64>) -> S {
    S {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        value,
        ts,
    }
}

const BOTH: [Format; 2] = [Format::PrometheusText, Format::OpenMetrics];

fn with_eof(body: &str, format: Format) -> String {
    match format {
        Format::PrometheusText | Format::PrometheusProto => body.to_string(),
        Format::OpenMetrics => format!("{body}# EOF\n"),
    }
}

/// Regression: colons in names, braces and escaped quotes inside label values.
#[test]
fn regression_colons_braces_and_escaped_quotes() {
    let body = "job:http_requests:rate5m{job=\"a\"} 1\nx{path=\"/a}b\"} 2\ny{a=\"q\\\"uote\"} 3\n";
    for f in BOTH {
        let got = samples(&with_eof(body, f), f);
        assert_eq!(
            got,
            vec![
                s("job:http_requests:rate5m", &[("job", "a")], 1.0, None),
                s("x", &[("path", "/a}b")], 2.0, None),
                s("y", &[("a", "q\"uote")], 3.0, None),
            ],
            "{f:?}"
        );
    }
}

#[test]
fn series_is_the_raw_text_and_labels_borrow_without_escapes() {
    let body = "a{b=\"c\",d=\"e\\\\f\"} 1 17\n";
    let e = entries(body, Format::PrometheusText).unwrap();
    let Entry::Sample(smp) = &e[0] else { panic!() };
    assert_eq!(smp.series, b"a{b=\"c\",d=\"e\\\\f\"}");
    let labels: Vec<_> = smp.labels().collect();
    assert!(matches!(labels[0].1, Cow::Borrowed("c")));
    assert!(matches!(&labels[1].1, Cow::Owned(v) if v == "e\\f"));
    assert!(matches!(smp.name, Cow::Borrowed("a")));
    assert_eq!(smp.label("d").as_deref(), Some("e\\f"));
    assert_eq!(smp.label("zz"), None);
}

#[test]
fn label_value_escapes() {
    let body = r#"a{a="\\",b="\"",c="\n",d="\z",e="\\n",f="x # {y}"} 1
"#;
    for f in BOTH {
        let got = samples(&with_eof(body, f), f);
        assert_eq!(
            got[0].labels,
            vec![
                ("a".into(), "\\".into()),
                ("b".into(), "\"".into()),
                ("c".into(), "\n".into()),
                ("d".into(), "\\z".into()),
                ("e".into(), "\\n".into()),
                ("f".into(), "x # {y}".into()),
            ]
        );
    }
}

#[test]
fn help_escapes_differ_by_format() {
    let body = "# HELP a x\\\\y\\nz\\\"q\n# TYPE a gauge\n";
    let text = entries(body, Format::PrometheusText).unwrap();
    assert_eq!(
        text[0],
        Entry::Help {
            family: "a",
            help: Cow::Owned("x\\y\nz\\\"q".into())
        }
    );
    assert_eq!(
        text[1],
        Entry::Type {
            family: "a",
            kind: MetricType::Gauge
        }
    );
    let om = entries("# HELP a x\\\\y\\nz\\\"q\n# EOF\n", Format::OpenMetrics).unwrap();
    assert_eq!(
        om[0],
        Entry::Help {
            family: "a",
            help: Cow::Owned("x\\y\nz\"q".into())
        }
    );
}

#[test]
fn metadata_entries() {
    let body =
        "# HELP a_seconds Help.\n# TYPE a_seconds histogram\n# UNIT a_seconds seconds\n# EOF\n";
    let got = entries(body, Format::OpenMetrics).unwrap();
    assert_eq!(
        got,
        vec![
            Entry::Help {
                family: "a_seconds",
                help: Cow::Borrowed("Help.")
            },
            Entry::Type {
                family: "a_seconds",
                kind: MetricType::Histogram
            },
            Entry::Unit {
                family: "a_seconds",
                unit: "seconds"
            },
        ]
    );
    // untyped is the text format's word for unknown; OpenMetrics refuses it.
    let t = entries("# TYPE a untyped\n", Format::PrometheusText).unwrap();
    assert_eq!(
        t[0],
        Entry::Type {
            family: "a",
            kind: MetricType::Unknown
        }
    );
    assert_eq!(MetricType::Unknown.as_str(), "unknown");
    assert_eq!(MetricType::GaugeHistogram.as_str(), "gaugehistogram");
    let e = error("# TYPE a untyped\n# EOF\n", Format::OpenMetrics);
    assert_eq!((e.line, e.column), (1, 10));
}

#[test]
fn text_format_comments_whitespace_and_empty_lines() {
    let body = "\n# just a comment\n#\n  # HELP  a   spaced help\n\t a \t{ b = \"c\" , } \t 1 \t 5 \t\n\n# EOF\nb 2\n";
    let got = entries(body, Format::PrometheusText).unwrap();
    assert_eq!(
        got[0],
        Entry::Help {
            family: "a",
            help: Cow::Borrowed("  spaced help")
        }
    );
    let Entry::Sample(a) = &got[1] else { panic!() };
    assert_eq!(own(a), s("a", &[("b", "c")], 1.0, Some(5)));
    // `# EOF` is an ordinary comment in the text format.
    let Entry::Sample(b) = &got[2] else { panic!() };
    assert_eq!(b.name, "b");
}

#[test]
fn timestamps_in_both_formats() {
    let text = samples("a 1 1700000000123\nb 1 -5\nc 1\n", Format::PrometheusText);
    assert_eq!(text[0].ts, Some(1_700_000_000_123));
    assert_eq!(text[1].ts, Some(-5));
    assert_eq!(text[2].ts, None);
    let e = error("a 1 1.5\n", Format::PrometheusText);
    assert_eq!((e.line, e.column), (1, 5));
    assert!(e.message.contains("timestamp"), "{e}");

    let om = samples(
        "a 1 1700000000.123\nb 1 -1.5\nc 1 1.5e3\nd 1 0\ne 1\n# EOF\n",
        Format::OpenMetrics,
    );
    let ts: Vec<_> = om.iter().map(|s| s.ts).collect();
    assert_eq!(
        ts,
        vec![
            Some(1_700_000_000_123),
            Some(-1500),
            Some(1_500_000),
            Some(0),
            None
        ]
    );
    for bad in ["a 1 NaN\n# EOF\n", "a 1 Inf\n# EOF\n", "a 1 0x1\n# EOF\n"] {
        let e = error(bad, Format::OpenMetrics);
        assert_eq!((e.line, e.column), (1, 5), "{bad:?}: {e}");
    }
}

#[test]
fn nan_and_infinities() {
    for f in BOTH {
        let got = samples(
            &with_eof("a NaN\nb +Inf\nc -Inf\nd Inf\ne 1e3\nf -0.5\ng .5\n", f),
            f,
        );
        assert!(got[0].value.is_nan());
        assert_eq!(got[1].value, f64::INFINITY);
        assert_eq!(got[2].value, f64::NEG_INFINITY);
        assert_eq!(got[3].value, f64::INFINITY);
        assert_eq!(got[4].value, 1000.0);
        assert_eq!(got[5].value, -0.5);
        assert_eq!(got[6].value, 0.5);
    }
    for bad in ["a 0x10\n", "a 1_000\n", "a one\n", "a +NaN\n"] {
        let e = error(bad, Format::PrometheusText);
        assert_eq!((e.line, e.column), (1, 3), "{bad:?}");
        assert!(e.message.starts_with("invalid value"), "{e}");
    }
}

#[test]
fn exemplars() {
    let body = "# TYPE a histogram\na_bucket{le=\"1\"} 2 # {trace_id=\"x\\\"y\",span=\"s\"} 1.0 123.456\na_bucket{le=\"+Inf\"} 3 1.5 # {} 4\na_count 3\na_sum 7\n# EOF\n";
    let got = entries(body, Format::OpenMetrics).unwrap();
    let Entry::Sample(first) = &got[1] else {
        panic!()
    };
    let ex = first.exemplar.as_ref().unwrap();
    assert_eq!(
        ex.labels,
        vec![
            (Cow::Borrowed("trace_id"), Cow::Owned("x\"y".into())),
            (Cow::Borrowed("span"), Cow::Borrowed("s"))
        ]
    );
    assert_eq!(ex.value, 1.0);
    assert_eq!(ex.timestamp_ms, Some(123_456));
    assert_eq!(first.series, b"a_bucket{le=\"1\"}");
    let Entry::Sample(second) = &got[2] else {
        panic!()
    };
    assert_eq!(second.timestamp_ms, Some(1500));
    let ex = second.exemplar.as_ref().unwrap();
    assert!(ex.labels.is_empty());
    assert_eq!((ex.value, ex.timestamp_ms), (4.0, None));
    // Strict mode accepts it too.
    assert!(
        Parser::new(body.as_bytes(), Format::OpenMetrics)
            .strict()
            .all(|e| e.is_ok())
    );
    // Exemplars do not exist in the text format.
    let e = error("a 1 # {a=\"b\"} 1\n", Format::PrometheusText);
    assert_eq!((e.line, e.column), (1, 5));
    // Duplicate exemplar labels.
    let e = error(
        "a_total 1 # {a=\"b\",a=\"c\"} 1\n# EOF\n",
        Format::OpenMetrics,
    );
    assert!(e.message.contains("duplicate"), "{e}");
}

#[test]
fn eof_handling() {
    // Required in OpenMetrics.
    let e = error("a 1\n", Format::OpenMetrics);
    assert_eq!(e.line, 2);
    assert!(e.message.contains("# EOF"), "{e}");
    // Optional final newline.
    assert_eq!(samples("a 1\n# EOF", Format::OpenMetrics).len(), 1);
    // Nothing after it, not even an empty line.
    let e = error("a 1\n# EOF\n\n", Format::OpenMetrics);
    assert_eq!(e.line, 3);
    let e = error("a 1\n# EOF\nb 1\n", Format::OpenMetrics);
    assert_eq!(e.line, 3);
    // Empty lines are refused in OpenMetrics.
    let e = error("a 1\n\n# EOF\n", Format::OpenMetrics);
    assert_eq!((e.line, e.column), (2, 1));
    // An empty text body is fine; an empty OpenMetrics body is not.
    assert!(entries("", Format::PrometheusText).unwrap().is_empty());
    assert_eq!(error("", Format::OpenMetrics).line, 1);
}

#[test]
fn errors_name_line_column_and_expectation() {
    let e = error("a 1\nb 2\nc{foo} 3\n", Format::PrometheusText);
    assert_eq!((e.line, e.column), (3, 6));
    assert_eq!(
        e.to_string(),
        "line 3:6: expected '=' after label name \"foo\", found '}'"
    );
    let cases: &[(&str, usize, usize, &str)] = &[
        ("a{b=\"c\",b=\"d\"} 1\n", 1, 9, "duplicate label name \"b\""),
        ("a{b=\"c} 1\n", 1, 10, "unterminated value"),
        ("a{b=c} 1\n", 1, 5, "expected '\"'"),
        ("a{1=\"c\"} 1\n", 1, 3, "expected label name"),
        ("a{b=\"c\" d=\"e\"} 1\n", 1, 9, "expected ',' or '}'"),
        ("a\n", 1, 2, "expected a value"),
        ("0a 1\n", 1, 1, "expected metric name"),
        ("a 1 2 3\n", 1, 7, "unexpected text"),
        ("# TYPE a bogus\n", 1, 10, "invalid metric type"),
        ("# HELP\n", 1, 7, "expected metric name after HELP"),
    ];
    for &(body, line, column, msg) in cases {
        let e = error(body, Format::PrometheusText);
        assert_eq!((e.line, e.column), (line, column), "{body:?}: {e}");
        assert!(e.message.contains(msg), "{body:?}: {e}");
    }
    // The iterator ends after an error.
    let mut p = Parser::new(b"a{\nb 1\n", Format::PrometheusText);
    assert!(p.next().unwrap().is_err());
    assert!(p.next().is_none());
}

#[test]
fn openmetrics_is_strict_about_spacing() {
    for (body, col) in [
        ("a  1\n# EOF\n", 3),
        ("a 1 \n# EOF\n", 5),
        ("a{b=\"c\", d=\"e\"} 1\n# EOF\n", 9),
        ("a{b=\"c\",} 1\n# EOF\n", 9),
        ("a {b=\"c\"} 1\n# EOF\n", 3),
        ("a\t1\n# EOF\n", 2),
    ] {
        let e = error(body, Format::OpenMetrics);
        assert_eq!((e.line, e.column), (1, col), "{body:?}: {e}");
    }
}

#[test]
fn quoted_utf8_names() {
    let body = "# HELP \"my.metric\" Some help.\n# TYPE \"my.metric\" gauge\n{\"my.metric\", \"a.b\"=\"c\", d=\"e\"} 1\n{e=\"f\",\"other.one\"} 2\n";
    let got = entries(body, Format::PrometheusText).unwrap();
    assert_eq!(
        got[1],
        Entry::Type {
            family: "my.metric",
            kind: MetricType::Gauge
        }
    );
    let Entry::Sample(a) = &got[2] else { panic!() };
    assert_eq!(
        own(a),
        s("my.metric", &[("a.b", "c"), ("d", "e")], 1.0, None)
    );
    assert_eq!(a.series, b"{\"my.metric\", \"a.b\"=\"c\", d=\"e\"}");
    let Entry::Sample(b) = &got[3] else { panic!() };
    assert_eq!(own(b), s("other.one", &[("e", "f")], 2.0, None));
    // A name given twice, or not at all.
    let e = error("a{\"b\"} 1\n", Format::PrometheusText);
    assert!(e.message.contains("twice"), "{e}");
    let e = error("{a=\"b\"} 1\n", Format::PrometheusText);
    assert_eq!((e.line, e.column), (1, 1));
}

/// Found by the `exposition_text` fuzz target: `""` as a quoted label name was taken, and the
/// sample carried a label with an empty name.
#[test]
fn an_empty_quoted_name_is_an_error() {
    for body in ["{\"a\",\"\"=\"0\"} 1\n", "{\"\"} 1\n", "a{\"\"=\"x\"} 1\n"] {
        let e = error(body, Format::PrometheusText);
        assert!(e.message.contains("empty quoted name"), "{body:?}: {e}");
        assert_eq!(e.line, 1);
    }
}

/// Found by the `exposition_openmetrics` fuzz target: a body without `# EOF` whose last line
/// has no newline named the line after it, which does not exist.
#[test]
fn a_missing_eof_names_a_line_of_the_body() {
    assert_eq!(error("a 1", Format::OpenMetrics).line, 1);
    assert_eq!(error("a 1\nb 2", Format::OpenMetrics).line, 2);
    assert_eq!(error("a 1\n", Format::OpenMetrics).line, 2);
    assert_eq!(error("", Format::OpenMetrics).line, 1);
}

#[test]
fn invalid_utf8_is_an_error_on_its_line() {
    let mut body = b"a 1\nb{c=\"".to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(b"\"} 1\n");
    let e = Parser::new(&body, Format::PrometheusText)
        .find_map(Result::err)
        .unwrap();
    assert_eq!((e.line, e.column), (2, 6));
    assert!(e.message.contains("UTF-8"));
}

#[test]
fn content_negotiation() {
    assert_eq!(format_from_content_type(None), Format::PrometheusText);
    assert_eq!(
        format_from_content_type(Some("text/plain; version=0.0.4; charset=utf-8")),
        Format::PrometheusText
    );
    assert_eq!(
        format_from_content_type(Some(
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )),
        Format::OpenMetrics
    );
    assert_eq!(
        format_from_content_type(Some("Application/OpenMetrics-Text")),
        Format::OpenMetrics
    );
    assert_eq!(
        format_from_content_type(Some("garbage")),
        Format::PrometheusText
    );
    assert!(ACCEPT_HEADER.starts_with("application/openmetrics-text;version=1.0.0"));
    assert!(ACCEPT_HEADER.contains("text/plain;version=0.0.4"));
}

#[test]
fn created_series_and_all_types() {
    let body = "\
# TYPE c counter
c_total 1
c_created 1.7e9
# TYPE g gauge
g 2
# TYPE h histogram
h_bucket{le=\"+Inf\"} 1
h_count 1
h_sum 0.5
h_created 1.7e9
# TYPE gh gaugehistogram
gh_bucket{le=\"+Inf\"} 1
gh_gcount 1
gh_gsum 0.5
# TYPE s summary
s{quantile=\"0.5\"} 1
s_count 1
s_sum 1
# TYPE i info
i_info{v=\"1\"} 1
# TYPE st stateset
st{st=\"a\"} 1
st{st=\"b\"} 0
# TYPE u unknown
u 1
# EOF
";
    let all: Result<Vec<_>, _> = Parser::new(body.as_bytes(), Format::OpenMetrics)
        .strict()
        .collect();
    let all = all.unwrap();
    let kinds: Vec<MetricType> = all
        .iter()
        .filter_map(|e| match e {
            Entry::Type { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds.len(), 8);
    let created: Vec<_> = all
        .iter()
        .filter_map(|e| match e {
            Entry::Sample(s) if s.name.ends_with("_created") => Some(s.value),
            _ => None,
        })
        .collect();
    assert_eq!(created, vec![1.7e9, 1.7e9]);
}

/// The Prometheus server's own payloads (all valid).
#[test]
fn prometheus_textparse_corpus() {
    let Some(dir) = vigil_testdata::corpus_dir(
        "prometheus_textparse_corpus",
        "exposition/prometheus-textparse",
    ) else {
        return;
    };
    for (file, format, families, samples) in [
        (
            "alltypes.237mfs.prom.txt",
            Format::PrometheusText,
            237,
            1857,
        ),
        (
            "alltypes.237mfs.nometa.prom.txt",
            Format::PrometheusText,
            0,
            1857,
        ),
        ("alltypes.5mfs.om.txt", Format::OpenMetrics, 5, 53),
        ("1histogram.om.txt", Format::OpenMetrics, 1, 42),
    ] {
        let body = std::fs::read(dir.join(file)).unwrap();
        let (mut types, mut n, mut exemplars) = (0, 0, 0);
        // Strict mode would refuse alltypes.5mfs.om.txt: the Go client exposes `_sum` for a
        // histogram with negative buckets, which OpenMetrics 1.0 forbids.
        let mut parser = Parser::new(&body, format);
        if file == "1histogram.om.txt" {
            parser = parser.strict();
        }
        for e in parser {
            match e.unwrap_or_else(|e| panic!("{file}: {e}")) {
                Entry::Type { .. } => types += 1,
                Entry::Sample(s) => {
                    n += 1;
                    exemplars += usize::from(s.exemplar.is_some());
                    // labels() never fails on what the parser accepted.
                    let _ = s.labels().count();
                }
                _ => {}
            }
        }
        assert_eq!((types, n), (families, samples), "{file}");
        if file == "alltypes.5mfs.om.txt" {
            assert_eq!(exemplars, 6);
        }
    }
}

#[test]
fn never_panics_on_truncations_of_valid_input() {
    let body = "# HELP a h\\n\n# TYPE a_bucket histogram\na{b=\"c\\\"\",\"d.e\"=\"f\"} 1 2 # {x=\"y\"} 1 1.5\n# EOF\n";
    for f in BOTH {
        for end in 0..=body.len() {
            for start in 0..end.min(8) {
                let _ = Parser::new(&body.as_bytes()[start..end], f)
                    .strict()
                    .count();
            }
        }
    }
}
