//! The PyPI package `prometheus-api-client` (pinned in `.ci/run`, installed in a venv whose
//! python `.ci/run` exports as VIGIL_PYTHON) queries vigil: `custom_query`,
//! `custom_query_range`, `get_current_metric_value` and `all_metrics`.
//! Set VIGIL_SKIP_INTEROP=1 to skip on a machine without it.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const SCRIPT: &str = r#"
import sys, datetime
from prometheus_api_client import PrometheusConnect
pc = PrometheusConnect(url=sys.argv[1], disable_ssl=True)
assert pc.check_prometheus_connection(), "connection"
up = pc.custom_query(query="up")
assert len(up) == 2 and all(s["value"][1] == "1" for s in up), up
assert {s["metric"]["job"] for s in up} == {"synth"}, up
end = datetime.datetime.now()
start = end - datetime.timedelta(seconds=30)
rng = pc.custom_query_range(query="sum(up)", start_time=start, end_time=end, step="1")
assert len(rng) == 1 and len(rng[0]["values"]) >= 2, rng
assert all(v[1] == "2" for v in rng[0]["values"][-2:]), rng
cur = pc.get_current_metric_value(metric_name="up", label_config={"instance": sys.argv[2]})
assert len(cur) == 1 and cur[0]["metric"]["instance"] == sys.argv[2], cur
names = pc.all_metrics()
assert "up" in names and "http_requests_total" in names, names
print("OK", len(up), len(rng[0]["values"]), len(cur), len(names))
"#;

#[test]
fn prometheus_api_client_queries_vigil() {
    if std::env::var_os("VIGIL_SKIP_INTEROP").is_some() {
        eprintln!("VIGIL_SKIP_INTEROP set: python client test skipped");
        return;
    }
    let python = venv_python();
    let has = Command::new(&python)
        .args(["-c", "import prometheus_api_client"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has,
        "{python} cannot import prometheus_api_client: run .ci/run (it installs the pinned version in a venv and sets VIGIL_PYTHON), or set VIGIL_SKIP_INTEROP=1"
    );
    let (_sim, base) = start_targets(2, 200, 3_600_000);
    let cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: synth\n    static_configs:\n      - targets: ['127.0.0.1:{}', '127.0.0.1:{}']\n",
        base,
        base + 1
    );
    let (_vigil, port, _dir) = start_vigil(&cfg);
    wait_for(Duration::from_secs(20), "a few scrapes", || {
        let (_, v) = api(port, "/api/v1/query?query=count_over_time(up%5B1m%5D)");
        v["data"]["result"]
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|s| s["value"][1].as_str() >= Some("3")))
    });
    let out = Command::new(&python)
        .args(["-c", SCRIPT])
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(format!("127.0.0.1:{base}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("OK"),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("prometheus-api-client: {stdout}");
}
