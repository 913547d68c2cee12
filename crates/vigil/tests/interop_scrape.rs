//! Interop with the real Prometheus (Debian package `prometheus`, 2.42): both scrape the same
//! targets with the same config, including relabel rules of every action, and end up storing
//! the same set of series (names and labels). Targets: Debian's `prometheus-node-exporter`,
//! the real Prometheus' own `/metrics`, and the synthetic targets (`common/target.rs`).
//!
//! `.ci/run` installs the packages. Set VIGIL_SKIP_INTEROP=1 to skip on a machine without them.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

fn peers_present() -> bool {
    if std::env::var_os("VIGIL_SKIP_INTEROP").is_some() {
        eprintln!("VIGIL_SKIP_INTEROP set: interop test skipped");
        return false;
    }
    for bin in [PROMETHEUS, NODE_EXPORTER] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: install the Debian packages prometheus and prometheus-node-exporter (as .ci/run does), or set VIGIL_SKIP_INTEROP=1"
        );
    }
    true
}

fn config(node: u16, prom: u16, sim: &[u16]) -> String {
    let sims: Vec<String> = sim.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:{node}']
        labels: {{__tmp_env: Production, team: ml, copy_of_team: ml}}
    relabel_configs:
      - source_labels: [__tmp_env]
        target_label: env
      - source_labels: [env]
        target_label: env
        action: lowercase
      - source_labels: [team]
        target_label: team_upper
        action: uppercase
      - source_labels: [__address__]
        modulus: 7
        target_label: __tmp_shard
        action: hashmod
      - source_labels: [__tmp_shard]
        regex: '[0-6]'
        action: keep
      - source_labels: [team]
        target_label: copy_of_team
        action: keepequal
      - source_labels: [team]
        target_label: env
        action: dropequal
      - regex: '__tmp_(shard)'
        replacement: 'hash_$1'
        action: labelmap
      - regex: copy_of_team
        action: labeldrop
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'go_gc_.*|node_cpu_guest_seconds_total'
        action: drop
      - source_labels: [__name__]
        regex: '(node|go|process|promhttp)_.*|up|scrape_.*'
        action: keep
      - source_labels: [__name__, mode]
        separator: '@'
        regex: 'node_cpu_seconds_total@(.*)'
        target_label: cpu_mode
        replacement: 'mode_${{1}}'
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:{prom}']
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'prometheus_(tsdb|http|engine|sd)_.*|go_goroutines|up'
        action: keep
      - source_labels: [handler]
        regex: '/api/(.*)'
        target_label: endpoint
        replacement: 'api:$1'
        action: replace
      - regex: 'handler'
        action: labeldrop
  - job_name: synth
    static_configs:
      - targets: [{}]
        labels: {{__meta_zone: eu-1}}
    relabel_configs:
      - regex: '__meta_(zone)'
        action: labelmap
    metric_relabel_configs:
      - regex: 'version'
        action: labeldrop
      - regex: '__name__|job|instance|zone|model|method|status|le|quantile|feature'
        action: labelkeep
"#,
        sims.join(", ")
    )
}

/// Every series (as sorted `name{labels}` text) a server stored since `start`.
fn series_set(port: u16, start: i64) -> BTreeSet<String> {
    let (status, v) = api(
        port,
        &format!(
            "/api/v1/series?match[]={}&start={start}",
            enc(r#"{__name__=~".+"}"#)
        ),
    );
    assert_eq!(status, 200, "{v}");
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let m = s.as_object().unwrap();
            let mut labels: Vec<String> = m
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            labels.sort();
            format!(
                "{}{{{}}}",
                m["__name__"].as_str().unwrap(),
                labels.join(",")
            )
        })
        .collect()
}

#[test]
fn same_series_as_real_prometheus() {
    if !peers_present() {
        return;
    }
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (_sim, base) = start_targets(2, 200, 3_600_000);
    let node_port = free_port();
    let _node = Proc {
        child: Command::new(NODE_EXPORTER)
            .arg(format!("--web.listen-address=127.0.0.1:{node_port}"))
            // Keep the collector set to what is deterministic on any Linux host.
            .args([
                "--collector.disable-defaults",
                "--collector.cpu",
                "--collector.meminfo",
                "--collector.loadavg",
                "--collector.filesystem",
                "--collector.netdev",
                "--collector.stat",
                "--collector.uname",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        name: "node-exporter",
    };
    let prom_port = free_port();
    let prom_dir = tempdir("prometheus");
    let cfg = config(node_port, prom_port, &[base, base + 1]);
    std::fs::write(prom_dir.join("prometheus.yml"), &cfg).unwrap();
    let _prom = Proc {
        child: Command::new(PROMETHEUS)
            .arg(format!(
                "--config.file={}",
                prom_dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                prom_dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(prom_dir.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
        name: "prometheus",
    };
    let (_vigil, vigil_port, _dir) = start_vigil(&cfg);
    wait_for(Duration::from_secs(20), "prometheus ready", || {
        http_get(&format!("http://127.0.0.1:{prom_port}/-/ready")).is_ok_and(|(s, _)| s == 200)
    });

    // Prometheus hands targets to its scrape loops after a 5 s discovery tick; both servers
    // also see the Prometheus under test grow new series as it is queried, so compare until
    // both have caught up with each other, for at most 40 s.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last;
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let p = series_set(prom_port, start);
        let v = series_set(vigil_port, start);
        let jobs_seen = ["node", "prometheus", "synth"]
            .iter()
            .all(|j| p.iter().any(|s| s.contains(&format!("job=\"{j}\""))));
        if jobs_seen && p == v {
            eprintln!("same {} series in Prometheus and vigil", p.len());
            // The relabel rules did what they say (on both).
            assert!(
                p.iter()
                    .any(|s| s.starts_with("node_cpu_seconds_total{")
                        && s.contains("cpu_mode=\"mode_")),
                "replace with ${{1}}"
            );
            assert!(p.iter().any(|s| s.contains("env=\"production\"")
                && s.contains("team_upper=\"ML\"")
                && s.contains("hash_shard=")));
            assert!(!p.iter().any(|s| s.contains("copy_of_team")), "labeldrop");
            let job = |s: &String, j: &str| s.contains(&format!("job=\"{j}\""));
            assert!(
                !p.iter().any(|s| job(s, "synth") && s.contains("version=")),
                "labeldrop"
            );
            assert!(
                !p.iter()
                    .any(|s| job(s, "prometheus") && s.contains("handler=")),
                "labeldrop"
            );
            assert!(
                p.iter()
                    .any(|s| job(s, "prometheus") && s.contains("endpoint=\"api:")),
                "replace"
            );
            assert!(p.iter().any(|s| s.contains("zone=\"eu-1\"")));
            return;
        }
        last = (p, v);
        if Instant::now() > deadline {
            break;
        }
    }
    let (p, v) = last;
    let only_p: Vec<&String> = p.difference(&v).take(20).collect();
    let only_v: Vec<&String> = v.difference(&p).take(20).collect();
    panic!(
        "series differ: {} in Prometheus, {} in vigil\nonly in Prometheus: {only_p:#?}\nonly in vigil: {only_v:#?}",
        p.len(),
        v.len()
    );
}
