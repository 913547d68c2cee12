//! Why vigil does not scrape with the `prometheus-parse` crate: it loses lines that real
//! targets send, which vigil's parser keeps (recorded in docs/dependencies.md).

use vigil_exposition::{Entry, Format, Parser};

const BODY: &str =
    "job:http_requests:rate5m{job=\"a\"} 1\nx{path=\"/a}b\"} 2\ny{msg=\"say \\\"hi\\\"\"} 3\n";

/// (metric name, labels in body order, value) of each sample.
type Parsed = Vec<(String, Vec<(String, String)>, f64)>;

fn ours() -> Parsed {
    Parser::new(BODY.as_bytes(), Format::PrometheusText)
        .filter_map(|e| match e.unwrap() {
            Entry::Sample(s) => Some((
                s.name.to_string(),
                s.labels()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                s.value,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn prometheus_parse_loses_colon_names_and_braces_in_values_ours_keeps_them() {
    let theirs = prometheus_parse::Scrape::parse(BODY.lines().map(|l| Ok(l.to_string()))).unwrap();
    let their_names: Vec<&str> = theirs.samples.iter().map(|s| s.metric.as_str()).collect();
    assert!(
        !their_names.contains(&"job:http_requests:rate5m"),
        "prometheus-parse now keeps colon names: {their_names:?}"
    );
    let their_x = theirs.samples.iter().find(|s| s.metric == "x");
    assert!(
        their_x.is_none_or(|s| s.labels.get("path") != Some("/a}b")),
        "prometheus-parse now keeps `}}` in label values"
    );

    let got = ours();
    assert_eq!(
        got,
        vec![
            (
                "job:http_requests:rate5m".to_string(),
                vec![("job".to_string(), "a".to_string())],
                1.0
            ),
            (
                "x".to_string(),
                vec![("path".to_string(), "/a}b".to_string())],
                2.0
            ),
            (
                "y".to_string(),
                vec![("msg".to_string(), "say \"hi\"".to_string())],
                3.0
            ),
        ]
    );
}
