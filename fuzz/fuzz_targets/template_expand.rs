#![no_main]
//! Alert label and annotation templates (Go `text/template` subset with Prometheus'
//! functions): parsing and expanding arbitrary text against an alert's data and a `query`
//! that answers from a fixed table never panics, and expansion stays within its step budget.
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use vigil_rules::template::{self, AlertData, Env, QueryResult};

struct Fixed;

impl Env for Fixed {
    fn query(&self, q: &str) -> Result<QueryResult, String> {
        vigil_promql_parser::parse(q).map_err(|e| e.to_string())?;
        let mut a = BTreeMap::new();
        a.insert("__name__".to_string(), "up".to_string());
        a.insert("instance".to_string(), "a:9100".to_string());
        let mut b = a.clone();
        b.insert("instance".to_string(), "b:9100".to_string());
        Ok(vec![(a, 1.0), (b, f64::NAN)])
    }
    fn external_url(&self) -> String {
        "http://vigil.example:9090/prom".into()
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), "HighLatency".to_string());
    labels.insert("instance".to_string(), "a:9100".to_string());
    labels.insert("severity".to_string(), "page".to_string());
    let mut external = BTreeMap::new();
    external.insert("cluster".to_string(), "eu-1".to_string());
    for value in [0.25, -1e300, f64::INFINITY, f64::NAN] {
        let data = AlertData {
            labels: &labels,
            external_labels: &external,
            external_url: "http://vigil.example:9090/prom",
            value,
        };
        std::hint::black_box(template::expand_alert("fuzz", text, &data, &Fixed));
    }
});
