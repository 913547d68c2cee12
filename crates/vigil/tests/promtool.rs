//! `promtool query instant|range|series|labels` (Debian package `prometheus`, 2.42) print the
//! same against vigil as against the real Prometheus holding the same data: the tests'
//! synthetic targets (`common/target.rs`) write an OpenMetrics file, `promtool tsdb create-blocks-from openmetrics` loads it for
//! Prometheus and `vigil tsdb import openmetrics` for vigil, and both are queried at the
//! same fixed times.
//!
//! `.ci/run` installs the package. Set VIGIL_SKIP_INTEROP=1 to skip on a machine without it.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn start_server(bin: &str, args: Vec<String>, port: u16, log: &Path, name: &'static str) -> Proc {
    let child = Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut p = Proc { child, name };
    wait_for(Duration::from_secs(30), name, || {
        assert!(
            p.running(),
            "{name} exited: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        http_get(&format!("http://127.0.0.1:{port}/-/ready")).is_ok_and(|(s, _)| s == 200)
    });
    p
}

/// Equal line by line, numbers allowed to differ in the last bits: Prometheus 2.42 sums
/// naively where vigil (as Prometheus 3) uses Kahan summation. Returns how many lines were
/// byte-identical.
fn assert_same(v: &str, p: &str, what: &str) -> usize {
    let (vl, pl): (Vec<&str>, Vec<&str>) = (v.lines().collect(), p.lines().collect());
    assert_eq!(
        vl.len(),
        pl.len(),
        "{what}: line counts differ\nvigil:\n{v}\nprometheus:\n{p}"
    );
    let mut exact = 0;
    for (a, b) in vl.iter().zip(&pl) {
        if a == b {
            exact += 1;
            continue;
        }
        let parts = |l: &str| -> (String, Option<f64>) {
            // `{labels} => 1.5 @[t]` or `1.5 @[t]` (range output) or a plain label value.
            let (head, num) = match l.rsplit_once(" => ") {
                Some((h, rest)) => (h.to_string() + " => ", rest),
                None => (String::new(), l),
            };
            let (num, tail) = num.split_once(' ').unwrap_or((num, ""));
            (head + "#" + tail, num.parse::<f64>().ok())
        };
        let ((ha, va), (hb, vb)) = (parts(a), parts(b));
        let close = match (va, vb) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
            _ => false,
        };
        assert!(
            ha == hb && close,
            "{what}:\nvigil:      {a}\nprometheus: {b}"
        );
    }
    exact
}

/// promtool's output with lines sorted (Prometheus leaves the order of most vectors undefined).
fn promtool(args: &[&str]) -> String {
    let out = run(Command::new(PROMTOOL).args(args));
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    lines.join("\n")
}

#[test]
fn promtool_prints_the_same_as_against_prometheus() {
    if std::env::var_os("VIGIL_SKIP_INTEROP").is_some() {
        eprintln!("VIGIL_SKIP_INTEROP set: promtool test skipped");
        return;
    }
    for bin in [PROMETHEUS, PROMTOOL] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: install the Debian package prometheus (as .ci/run does), or set VIGIL_SKIP_INTEROP=1"
        );
    }
    let dir = tempdir("promtool");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start = now - 3 * 3600;
    let om = dir.join("data.om");
    write_openmetrics(&om, &History::new(2, 200, start, 3600));
    let (pdata, vdata) = (dir.join("prom"), dir.join("vigil"));
    run(Command::new(PROMTOOL)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&pdata));
    run(Command::new(vigil_bin())
        .args(["tsdb", "import", "openmetrics"])
        .arg(&om)
        .arg(&vdata));
    let cfg = dir.join("empty.yml");
    std::fs::write(&cfg, "scrape_configs: []\n").unwrap();

    let pport = free_port();
    let _prom = start_server(
        PROMETHEUS,
        vec![
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", pdata.display()),
            format!("--web.listen-address=127.0.0.1:{pport}"),
            "--storage.tsdb.retention.time=30d".into(),
        ],
        pport,
        &dir.join("prometheus.log"),
        "prometheus",
    );
    let vport = free_port();
    let _vigil = start_server(
        vigil_bin(),
        vec![
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", vdata.display()),
            format!("--web.listen-address=127.0.0.1:{vport}"),
            "--storage.tsdb.retention.time=30d".into(),
        ],
        vport,
        &dir.join("vigil.log"),
        "vigil",
    );
    let (purl, vurl) = (
        format!("http://127.0.0.1:{pport}"),
        format!("http://127.0.0.1:{vport}"),
    );
    let t = (start + 45 * 60).to_string();
    let (rs, re) = ((start + 20 * 60).to_string(), (start + 50 * 60).to_string());
    let bucket = "prediction_latency_seconds_bucket";
    let instant = [
        "http_requests_total".to_string(),
        "rate(http_requests_total[5m])".into(),
        "sum by (instance) (rate(http_requests_total[5m]))".into(),
        format!("histogram_quantile(0.9, sum by (le) (rate({bucket}[5m])))"),
        "topk(3, model_input_feature_mean)".into(),
        "count by (job) (model_accuracy)".into(),
        "avg_over_time(process_resident_memory_bytes[10m])".into(),
        "http_requests_total offset 10m".into(),
        "model_accuracy > 0.5".into(),
        "absent(nonexistent_metric)".into(),
        "1 + 1".into(),
        "scalar(count(model_accuracy))".into(),
        "nonexistent_metric".into(),
    ];
    let (mut checked, mut exact, mut lines) = (0, 0, 0);
    for q in &instant {
        let args = |url: &str| {
            vec![
                "query".to_string(),
                "instant".into(),
                format!("--time={t}"),
                url.to_string(),
                q.clone(),
            ]
        };
        let p = promtool(&args(&purl).iter().map(String::as_str).collect::<Vec<_>>());
        let v = promtool(&args(&vurl).iter().map(String::as_str).collect::<Vec<_>>());
        exact += assert_same(&v, &p, &format!("query instant {q}"));
        lines += p.lines().count();
        checked += 1;
    }
    for q in [
        "rate(http_requests_total[5m])",
        "sum(process_open_fds)",
        "model_accuracy",
    ] {
        let args = |url: &str| {
            vec![
                "query".to_string(),
                "range".into(),
                format!("--start={rs}"),
                format!("--end={re}"),
                "--step=1m".into(),
                url.to_string(),
                q.to_string(),
            ]
        };
        let p = promtool(&args(&purl).iter().map(String::as_str).collect::<Vec<_>>());
        let v = promtool(&args(&vurl).iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!p.is_empty());
        exact += assert_same(&v, &p, &format!("query range {q}"));
        lines += p.lines().count();
        checked += 1;
    }
    for m in [
        "model_accuracy",
        r#"{__name__=~"process_.*",instance=~".*1"}"#,
    ] {
        let args = |url: &str| {
            vec![
                "query".to_string(),
                "series".into(),
                format!("--match={m}"),
                format!("--start={rs}"),
                format!("--end={re}"),
                url.to_string(),
            ]
        };
        let p = promtool(&args(&purl).iter().map(String::as_str).collect::<Vec<_>>());
        let v = promtool(&args(&vurl).iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!p.is_empty());
        assert_eq!(v, p, "query series {m}");
        checked += 1;
    }
    for name in ["__name__", "instance", "le"] {
        let args = |url: &str| {
            vec![
                "query".to_string(),
                "labels".into(),
                format!("--start={rs}"),
                format!("--end={re}"),
                url.to_string(),
                name.to_string(),
            ]
        };
        let p = promtool(&args(&purl).iter().map(String::as_str).collect::<Vec<_>>());
        let v = promtool(&args(&vurl).iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!p.is_empty());
        assert_eq!(v, p, "query labels {name}");
        checked += 1;
    }
    eprintln!(
        "{checked} promtool commands printed the same against vigil and Prometheus ({exact} of {lines} query lines byte-identical, the rest within float rounding)"
    );
}
