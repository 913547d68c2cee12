//! The TSDB admin endpoints against the real binary: refused without
//! `--web.enable-admin-api`; with it, `delete_series` removes exactly the selected samples
//! (also after a restart), `snapshot` writes a directory, `clean_tombstones` succeeds.

mod common;

use common::*;
use std::time::Duration;

fn config(target: u16) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: synth\n    static_configs:\n      - targets: [\"127.0.0.1:{target}\"]\n"
    )
}

/// Number of series an instant query returns.
fn count(port: u16, q: &str) -> usize {
    let (_, v) = api(port, &format!("/api/v1/query?query={}", enc(q)));
    v["data"]["result"].as_array().map_or(0, Vec::len)
}

#[test]
fn admin_endpoints_are_disabled_by_default() {
    let (_sim, target) = start_targets(1, 10, 1000);
    let (_v, port, _dir) = start_vigil(&config(target));
    for ep in ["snapshot", "delete_series?match[]=up", "clean_tombstones"] {
        let (status, body) = http_post(&format!("http://127.0.0.1:{port}/api/v1/admin/tsdb/{ep}"));
        assert_eq!(status, 503, "{ep}: {body}");
        assert!(body.contains("admin APIs disabled"), "{body}");
    }
}

#[test]
fn delete_series_snapshot_and_clean_tombstones() {
    let (_sim, target) = start_targets(1, 10, 1000);
    let cfg = config(target);
    let (mut v, port, dir) = start_vigil_with(&cfg, &["--web.enable-admin-api"]);
    let base = format!("http://127.0.0.1:{port}/api/v1/admin/tsdb");
    wait_for(Duration::from_secs(20), "three scrapes", || {
        count(port, "count_over_time(up[1h]) >= 3") == 1
    });
    let models = count(port, "http_requests_total");
    assert!(
        models > 1,
        "the synthetic target serves several http_requests_total series"
    );
    let (_, one) = api(
        port,
        &format!("/api/v1/series?match[]={}", enc("http_requests_total")),
    );
    let victim = one["data"][0]["model"].as_str().unwrap().to_string();
    let sel = format!("http_requests_total{{model=\"{victim}\"}}");
    let doomed = count(port, &sel);
    assert!(doomed >= 1);

    // Bad parameters: 400, nothing deleted.
    let (s, body) = http_post(&format!("{base}/delete_series"));
    assert_eq!(s, 400, "{body}");
    let (s, body) = http_post(&format!("{base}/delete_series?match[]={}", enc("{")));
    assert_eq!(s, 400, "{body}");
    assert_eq!(count(port, "http_requests_total"), models);

    // Delete everything of one model up to now.
    let t_del = vigil_now_s();
    let (s, body) = http_post(&format!(
        "{base}/delete_series?match[]={}&end={t_del}",
        enc(&sel)
    ));
    assert_eq!(s, 204, "{body}");
    let before_del = format!("count_over_time({sel}[1h] @ {t_del})");
    assert_eq!(count(port, &before_del), 0, "deleted samples are gone");
    assert_eq!(
        count(port, &format!("http_requests_total{{model!=\"{victim}\"}}")),
        models - doomed,
        "other series untouched"
    );
    // Scraping goes on: new samples of the deleted series arrive after the deletion.
    wait_for(Duration::from_secs(10), "new samples", || {
        count(port, &sel) == doomed
    });

    let (s, body) = http_post(&format!("{base}/snapshot"));
    assert_eq!(s, 200, "{body}");
    let snap: serde_json::Value = serde_json::from_str(&body).unwrap();
    let name = snap["data"]["name"].as_str().unwrap();
    assert!(dir.join("data/snapshots").join(name).is_dir());
    let (s, body) = http_post(&format!("{base}/clean_tombstones"));
    assert_eq!(s, 204, "{body}");

    // After a crash the WAL replays the deletion.
    v.child.kill().unwrap();
    let _ = v.child.wait();
    let (_v2, port2) = start_vigil_in(
        &dir,
        &dir.join("data"),
        &["--web.enable-admin-api"],
        "vigil2.log",
        &ready_200,
    );
    assert_eq!(count(port2, &before_del), 0, "deletion survives a crash");
    assert_eq!(
        count(
            port2,
            &format!("http_requests_total{{model!=\"{victim}\"}}[1h]")
        ),
        models - doomed
    );
}

/// Now in unix seconds.
fn vigil_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
