//! Prometheus' API JSON, byte for byte where clients care.

use vigil_model::histogram::FloatHistogram;
use vigil_model::{Labels, gofmt};
use vigil_promql::{QueryOutput, Value};

/// Appends `s` as a JSON string literal.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A millisecond timestamp as seconds, as Prometheus' `jsonutil.MarshalTimestamp` writes it
/// (`1435781451.781`; a fraction is always three digits, so 1.5 s is `1.500`).
pub fn write_timestamp(out: &mut String, t: i64) {
    let (sign, t) = if t < 0 {
        ("-", -(t as i128))
    } else {
        ("", t as i128)
    };
    out.push_str(sign);
    out.push_str(&(t / 1000).to_string());
    let frac = t % 1000;
    if frac != 0 {
        out.push('.');
        if frac < 100 {
            out.push('0');
        }
        if frac < 10 {
            out.push('0');
        }
        out.push_str(&frac.to_string());
    }
}

pub fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, &l.name);
        out.push(':');
        write_str(out, &l.value);
    }
    out.push('}');
}

/// A float as Prometheus' `jsonutil.MarshalFloat` writes it: quoted, shortest digits, in
/// exponent form below 1e-6 and from 1e21 on.
fn write_float(out: &mut String, v: f64) {
    out.push('"');
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        out.push_str(&gofmt::shortest_e(v));
    } else {
        out.push_str(&gofmt::shortest_f(v));
    }
    out.push('"');
}

fn write_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    write_timestamp(out, t);
    out.push(',');
    write_float(out, v);
    out.push(']');
}

/// A native histogram as Prometheus' `jsonutil.MarshalHistogram`: count, sum, and the
/// populated buckets as `[boundaries, lower, upper, count]`, boundaries 0 = (lower, upper],
/// 1 = [lower, upper), 2 = (lower, upper), 3 = [lower, upper].
pub fn write_histogram(out: &mut String, h: &FloatHistogram) {
    out.push_str("{\"count\":");
    write_float(out, h.count);
    out.push_str(",\"sum\":");
    write_float(out, h.sum);
    let mut first = true;
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        out.push_str(if first { ",\"buckets\":[" } else { "," });
        first = false;
        let boundaries = match (b.lower_inclusive, b.upper_inclusive) {
            (true, true) => 3,
            (true, false) => 1,
            (false, true) => 0,
            (false, false) => 2,
        };
        out.push('[');
        out.push_str(&boundaries.to_string());
        out.push(',');
        write_float(out, b.lower);
        out.push(',');
        write_float(out, b.upper);
        out.push(',');
        write_float(out, b.count);
        out.push(']');
    }
    if !first {
        out.push(']');
    }
    out.push('}');
}

fn write_hpoint(out: &mut String, t: i64, h: &FloatHistogram) {
    out.push('[');
    write_timestamp(out, t);
    out.push(',');
    write_histogram(out, h);
    out.push(']');
}

/// `{"status":"success","data":{"resultType":...,"result":...}}`
pub fn success_value(v: &Value) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(r#"{"status":"success","data":"#);
    write_value(&mut out, v);
    out.push('}');
    out
}

/// A query result with its annotations: `warnings` and `infos` appear only when not empty,
/// as Prometheus' `omitempty` leaves them out.
pub fn success_output(o: &QueryOutput) -> String {
    success_output_with(o, false, &[])
}

/// [`success_output`] with Prometheus' `stats` object inside `data` when `stats` is set, and
/// `extra_warnings` after the query's own.
pub fn success_output_with(o: &QueryOutput, stats: bool, extra_warnings: &[String]) -> String {
    let mut data = String::with_capacity(256);
    write_value(&mut data, &o.value);
    if stats {
        data.pop(); // the closing brace of data
        data.push_str(",\"stats\":");
        write_stats(&mut data, &o.stats);
        data.push('}');
    }
    if extra_warnings.is_empty() {
        return success_annotated(&data, &o.warnings, &o.infos);
    }
    let mut warnings = o.warnings.clone();
    warnings.extend(extra_warnings.iter().cloned());
    success_annotated(&data, &warnings, &o.infos)
}

/// A JSON number as Go's `encoding/json` writes a float64: shortest digits, exponent form below
/// 1e-6 and from 1e21 on.
fn write_json_number(out: &mut String, v: f64) {
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        out.push_str(&gofmt::shortest_e(v));
    } else {
        out.push_str(&gofmt::shortest_f(v));
    }
}

/// Prometheus' query statistics: `{"timings":{...},"samples":{...}}`.
pub fn write_stats(out: &mut String, s: &vigil_promql::QueryStats) {
    out.push_str("{\"timings\":{");
    for (i, (k, v)) in [
        ("evalTotalTime", s.eval_total_time),
        ("resultSortTime", s.result_sort_time),
        ("queryPreparationTime", s.query_preparation_time),
        ("innerEvalTime", s.inner_eval_time),
        ("execQueueTime", s.exec_queue_time),
        ("execTotalTime", s.exec_total_time),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_json_number(out, v);
    }
    out.push_str("},\"samples\":{");
    out.push_str(&format!(
        "\"totalQueryableSamples\":{},\"samplesRead\":{},\"peakSamples\":{}",
        s.total_queryable_samples, s.samples_read, s.peak_samples
    ));
    out.push_str("}}");
}

/// `{"status":"success","data":<data>,"warnings":[..],"infos":[..]}` for rendered `data`.
pub fn success_annotated(data: &str, warnings: &[String], infos: &[String]) -> String {
    let mut out = String::with_capacity(data.len() + 64);
    out.push_str(r#"{"status":"success","data":"#);
    out.push_str(data);
    for (key, list) in [("warnings", warnings), ("infos", infos)] {
        if list.is_empty() {
            continue;
        }
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":[");
        for (i, w) in list.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(&mut out, w);
        }
        out.push(']');
    }
    out.push('}');
    out
}

/// `{"resultType":...,"result":...}`
pub fn write_value(out: &mut String, v: &Value) {
    out.push_str(r#"{"resultType":""#);
    out.push_str(v.type_name());
    out.push_str(r#"","result":"#);
    match v {
        Value::Scalar { t, v } => write_point(out, *t, *v),
        Value::String { t, v } => {
            out.push('[');
            write_timestamp(out, *t);
            out.push(',');
            write_str(out, v);
            out.push(']');
        }
        Value::Vector(vec) => {
            out.push('[');
            for (i, s) in vec.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                write_labels(out, &s.labels);
                match &s.h {
                    Some(h) => {
                        out.push_str(r#","histogram":"#);
                        write_hpoint(out, s.t, h);
                    }
                    None => {
                        out.push_str(r#","value":"#);
                        write_point(out, s.t, s.v);
                    }
                }
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(m) => {
            out.push('[');
            for (i, s) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                write_labels(out, &s.labels);
                // Each list only when it has points, as Prometheus writes them.
                if !s.samples.is_empty() || s.histograms.is_empty() {
                    out.push_str(r#","values":["#);
                    for (j, p) in s.samples.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        write_point(out, p.t, p.v);
                    }
                    out.push(']');
                }
                if !s.histograms.is_empty() {
                    out.push_str(r#","histograms":["#);
                    for (j, p) in s.histograms.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        write_hpoint(out, p.t, &p.h);
                    }
                    out.push(']');
                }
                out.push('}');
            }
            out.push(']');
        }
    }
    out.push('}');
}

/// `{"status":"success","data":<data>}` for data already rendered as JSON.
pub fn success_raw(data: &str) -> String {
    format!(r#"{{"status":"success","data":{data}}}"#)
}

/// `{"status":"error","errorType":...,"error":...}`
pub fn error(error_type: &str, msg: &str) -> String {
    let mut out = String::from(r#"{"status":"error","errorType":"#);
    write_str(&mut out, error_type);
    out.push_str(r#","error":"#);
    write_str(&mut out, msg);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_as_prometheus_marshals_them() {
        let (h, _) = vigil_model::histogram::notation::parse_histogram(
            "{{schema:0 count:3 sum:5 z_bucket:1 z_bucket_w:0.001 buckets:[2 0]}}",
        )
        .unwrap();
        let mut out = String::new();
        write_histogram(&mut out, &h);
        assert_eq!(
            out,
            r#"{"count":"3","sum":"5","buckets":[[3,"-0.001","0.001","1"],[0,"0.5","1","2"]]}"#
        );
        let v = Value::Vector(vec![vigil_promql::VectorSample {
            labels: Labels::from_pairs([("__name__", "h")]),
            t: 1500,
            v: 0.0,
            h: Some(std::sync::Arc::new(h)),
        }]);
        let mut out = String::new();
        write_value(&mut out, &v);
        assert!(
            out.contains(r#"{"metric":{"__name__":"h"},"histogram":[1.500,{"count":"3""#),
            "{out}"
        );
    }

    #[test]
    fn tiny_and_huge_floats_in_exponent_form() {
        let mut out = String::new();
        write_point(&mut out, 0, 1e-7);
        write_point(&mut out, 0, 2e21);
        write_point(&mut out, 0, 0.5);
        assert_eq!(out, r#"[0,"1e-07"][0,"2e+21"][0,"0.5"]"#);
    }

    #[test]
    fn annotations_only_when_present() {
        assert_eq!(
            success_annotated("[]", &[], &[]),
            r#"{"status":"success","data":[]}"#
        );
        assert_eq!(
            success_annotated("[]", &["w".into()], &["i".into()]),
            r#"{"status":"success","data":[],"warnings":["w"],"infos":["i"]}"#
        );
    }

    #[test]
    fn timestamps_with_millisecond_precision() {
        for (t, s) in [
            (1435781451781, "1435781451.781"),
            (1000, "1"),
            (1500, "1.500"),
            (1005, "1.005"),
            (-1500, "-1.500"),
            (0, "0"),
        ] {
            let mut out = String::new();
            write_timestamp(&mut out, t);
            assert_eq!(out, s);
        }
    }

    #[test]
    fn strings_escaped() {
        let mut out = String::new();
        write_str(&mut out, "a\"b\\c\nd\u{1}");
        assert_eq!(out, r#""a\"b\\c\nd\u0001""#);
    }
}
