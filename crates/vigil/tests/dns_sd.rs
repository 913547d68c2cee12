//! `dns_sd_configs` against a real DNS server: dnsmasq (Debian package `dnsmasq`, installed by
//! `.ci/run`) serves SRV, A, AAAA, MX and NS records written by the test on 127.0.0.1 and a free
//! port; vigil reads a resolv.conf naming it through `VIGIL_RESOLV_CONF` (whose `nameserver`
//! may carry a port) with `search example.test`, so the A job's bare name `web` also exercises
//! the search list. The test checks `/api/v1/targets` (discovered labels and target labels) for
//! every record type and for a name that does not exist, then stops dnsmasq (a failed lookup
//! keeps the previous targets and is counted in `prometheus_sd_dns_lookup_failures_total`),
//! starts it again with changed records and waits for the targets to follow (1 s refresh).
//!
//! Side by side with Prometheus 2.42: Prometheus reads only `/etc/resolv.conf` and port 53, so
//! when the test runs as root it starts a second dnsmasq with the same records on
//! 127.0.0.1:53 and runs Prometheus under `unshare -m` with a temporary resolv.conf
//! bind-mounted over `/etc/resolv.conf` for that child only, then compares the discovered
//! `__address__` and `__meta_dns_*` labels of the SRV, A, AAAA and MX jobs and of the missing
//! name. Two differences of 2.42 that are not vigil's are normalised: 2.42 keeps the `__meta_`
//! labels that `dns.go` sets to "" in `discoveredLabels` (Prometheus 3 drops empty labels, as
//! vigil does), and 2.42 has no `type: NS` (added in 2.49), so the NS job is checked against
//! the label set Prometheus 3.14's `dns.go` defines instead. Without root, without `unshare`
//! or with port 53 taken, the comparison is skipped with a message and the rest still runs.
//!
//! dnsmasq drops privileges and may need root: if it cannot start, the test is skipped with a
//! message. `VIGIL_SKIP_INTEROP=1` skips it.

mod common;

use common::peers::PROMETHEUS;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// The records dnsmasq serves.
struct Records {
    srv: Vec<(&'static str, u16)>,
    a: Vec<&'static str>,
    aaaa: Vec<&'static str>,
    mx: &'static str,
    ns: &'static str,
}

/// A domain name in DNS wire format, as dnsmasq's `dns-rr` wants the NS record's data.
fn wire_name_hex(name: &str) -> String {
    let mut out = String::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push_str(&format!("{:02x}", label.len()));
        for b in label.bytes() {
            out.push_str(&format!("{b:02x}"));
        }
    }
    out + "00"
}

fn write_records(dir: &Path, r: &Records) -> PathBuf {
    let mut hosts = String::new();
    for ip in r.a.iter().chain(&r.aaaa) {
        hosts.push_str(&format!("{ip} web.example.test\n"));
    }
    std::fs::write(dir.join("hosts"), hosts).unwrap();
    let mut conf = format!(
        "local=/example.test/\naddn-hosts={}\nmx-host=example.test,{},10\ndns-rr=example.test,2,{}\n",
        dir.join("hosts").display(),
        r.mx,
        wire_name_hex(r.ns)
    );
    for (target, port) in &r.srv {
        conf.push_str(&format!(
            "srv-host=_prom._tcp.example.test,{target},{port}\n"
        ));
    }
    let path = dir.join("dnsmasq.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

/// dnsmasq on 127.0.0.1:`port` with `conf`; `Err` says why it could not start.
fn start_dnsmasq(dir: &Path, conf: &Path, port: u16, log_name: &str) -> Result<Proc, String> {
    let log_path = dir.join(log_name);
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(DNSMASQ)
        .args([
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            &format!("--port={port}"),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--log-facility=-",
            &format!(
                "--pid-file={}",
                dir.join(format!("{log_name}.pid")).display()
            ),
            &format!("--conf-file={}", conf.display()),
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot run {DNSMASQ}: {e}"))?;
    let mut p = Proc {
        child,
        name: "dnsmasq",
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if !p.running() {
            return Err(format!("dnsmasq exited: {text}"));
        }
        if text.contains("read ") && text.contains("started") {
            return Ok(p);
        }
        if Instant::now() > deadline {
            return Err(format!("dnsmasq did not start in 10 s: {text}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_vigil_resolving_with(dir: &Path, config: &str, resolv_conf: &Path) -> (Proc, u16) {
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("vigil.log")).unwrap();
    let child = Command::new(vigil_bin())
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .env("VIGIL_RESOLV_CONF", resolv_conf)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut p = Proc {
        child,
        name: "vigil",
    };
    wait_for_or(
        Duration::from_secs(30),
        "vigil ready",
        || {
            assert!(p.running(), "vigil exited");
            ready_200(port)
        },
        || std::fs::read_to_string(dir.join("vigil.log")).unwrap_or_default(),
    );
    (p, port)
}

/// Prometheus 2.42 with `resolv_conf` bind-mounted over /etc/resolv.conf in a private mount
/// namespace of its own.
fn start_prometheus_resolving_with(dir: &Path, config: &str, resolv_conf: &Path) -> (Proc, u16) {
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"",
        ])
        .arg(resolv_conf)
        .arg(PROMETHEUS)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut p = Proc {
        child,
        name: "prometheus",
    };
    wait_for_or(
        Duration::from_secs(30),
        "prometheus ready",
        || {
            assert!(p.running(), "prometheus exited");
            ready_200(port)
        },
        || std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default(),
    );
    (p, port)
}

/// One job per record type; every target's `__address__` is parked on a closed local port
/// (its discovered address kept as `instance`), so nothing resolves or scrapes the made-up
/// hosts.
fn config(closed: u16, with_ns: bool) -> String {
    let park = format!(
        "    relabel_configs:\n      - source_labels: [__address__]\n        target_label: instance\n      - target_label: __address__\n        replacement: 127.0.0.1:{closed}\n"
    );
    let mut jobs = vec![
        ("srv", "names: [_prom._tcp.example.test]"),
        ("a", "names: [web], type: A, port: 8080"),
        ("aaaa", "names: [web.example.test], type: AAAA, port: 8080"),
        ("mx", "names: [example.test], type: MX, port: 25"),
        ("missing", "names: [nope.example.test], type: A, port: 1"),
    ];
    if with_ns {
        jobs.push(("ns", "names: [example.test], type: NS, port: 53"));
    }
    let mut out = "global:\n  scrape_interval: 1m\nscrape_configs:\n".to_string();
    for (job, sd) in jobs {
        out.push_str(&format!(
            "  - job_name: {job}\n    dns_sd_configs:\n      - {{{sd}, refresh_interval: 1s}}\n{park}"
        ));
    }
    out
}

type Seen = BTreeSet<(String, BTreeMap<String, String>, BTreeMap<String, String>)>;

/// (job, discovered `__address__` and non-empty `__meta_dns_*` labels, target labels) of every
/// active target.
fn targets(port: u16) -> Seen {
    let (_, v) = api(port, "/api/v1/targets?state=active");
    let mut out = BTreeSet::new();
    for t in v["data"]["activeTargets"].as_array().unwrap() {
        let map = |v: &serde_json::Value, keep: &dyn Fn(&str) -> bool| {
            v.as_object()
                .unwrap()
                .iter()
                .filter(|(k, v)| keep(k) && v.as_str() != Some(""))
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        out.insert((
            t["scrapePool"].as_str().unwrap().to_string(),
            map(&t["discoveredLabels"], &|k| {
                k == "__address__" || k.starts_with("__meta_dns_")
            }),
            map(&t["labels"], &|_| true),
        ));
    }
    out
}

/// What Prometheus' dns.go makes of the records: one target per record, `instance` the
/// discovered address (by the parking relabeling).
fn expected(r: &Records, with_ns: bool) -> Seen {
    let mut out = BTreeSet::new();
    let mut add = |job: &str, addr: String, name: &str, meta: &[(&str, String)]| {
        let mut d = BTreeMap::from([
            ("__address__".to_string(), addr.clone()),
            ("__meta_dns_name".to_string(), name.to_string()),
        ]);
        for (k, v) in meta {
            d.insert(format!("__meta_dns_{k}"), v.clone());
        }
        let l = BTreeMap::from([
            ("instance".to_string(), addr),
            ("job".to_string(), job.to_string()),
        ]);
        out.insert((job.to_string(), d, l));
    };
    for (t, p) in &r.srv {
        add(
            "srv",
            format!("{t}:{p}"),
            "_prom._tcp.example.test",
            &[
                ("srv_record_target", format!("{t}.")),
                ("srv_record_port", p.to_string()),
            ],
        );
    }
    for ip in &r.a {
        add("a", format!("{ip}:8080"), "web", &[]);
    }
    for ip in &r.aaaa {
        add("aaaa", format!("[{ip}]:8080"), "web.example.test", &[]);
    }
    add(
        "mx",
        format!("{}:25", r.mx),
        "example.test",
        &[("mx_record_target", format!("{}.", r.mx))],
    );
    if with_ns {
        add(
            "ns",
            format!("{}:53", r.ns),
            "example.test",
            &[("ns_record_target", format!("{}.", r.ns))],
        );
    }
    out
}

fn metric(port: u16, name: &str) -> f64 {
    let (_, body) = http_get(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

/// Why Prometheus 2.42 cannot be run side by side here, if it cannot.
fn side_by_side_blocker() -> Option<String> {
    if !Path::new(PROMETHEUS).exists() {
        return Some(format!("{PROMETHEUS} is missing"));
    }
    let probe = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind /etc/hostname /etc/resolv.conf")
        .stderr(Stdio::piped())
        .output();
    match probe {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "unshare -m + mount --bind failed (root needed): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run unshare: {e}")),
    }
}

#[test]
fn dns_sd_targets_follow_dnsmasq_records() {
    if std::env::var_os("VIGIL_SKIP_INTEROP").is_some() {
        eprintln!("VIGIL_SKIP_INTEROP set: interop test skipped");
        return;
    }
    assert!(
        Path::new(DNSMASQ).exists(),
        "{DNSMASQ} is missing: install the Debian package dnsmasq (as .ci/run does), or set VIGIL_SKIP_INTEROP=1"
    );
    let started = Instant::now();
    let dir = tempdir("dns-sd");
    let first = Records {
        srv: vec![("node1.example.test", 9100), ("node2.example.test", 9200)],
        a: vec!["10.0.0.1", "10.0.0.2"],
        aaaa: vec!["2001:db8::10"],
        mx: "mail.example.test",
        ns: "ns1.example.test",
    };
    let conf = write_records(&dir, &first);
    let dns_port = free_port();
    let dnsmasq = match start_dnsmasq(&dir, &conf, dns_port, "dnsmasq.log") {
        Ok(p) => p,
        Err(e) => {
            eprintln!("SKIPPED: dnsmasq cannot start here (it may need root): {e}");
            return;
        }
    };
    let resolv = dir.join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver 127.0.0.1:{dns_port}\nsearch example.test\n"),
    )
    .unwrap();
    let closed = free_port();
    let vdir = dir.join("vigil");
    std::fs::create_dir_all(&vdir).unwrap();
    let (_vigil, port) = start_vigil_resolving_with(&vdir, &config(closed, true), &resolv);
    let log = || std::fs::read_to_string(vdir.join("vigil.log")).unwrap_or_default();

    let want = expected(&first, true);
    wait_for_or(
        Duration::from_secs(10),
        "vigil's DNS targets",
        || targets(port) == want,
        || format!("got {:#?}\nwant {want:#?}\n{}", targets(port), log()),
    );
    assert!(metric(port, "prometheus_sd_dns_lookups_total") >= 6.0);
    assert_eq!(metric(port, "prometheus_sd_dns_lookup_failures_total"), 0.0);

    // Side by side with Prometheus 2.42 on the same records.
    match side_by_side_blocker() {
        Some(why) => eprintln!("Prometheus 2.42 comparison skipped: {why}"),
        None => {
            let pdir = dir.join("prom");
            std::fs::create_dir_all(&pdir).unwrap();
            match start_dnsmasq(&pdir, &conf, 53, "dnsmasq53.log") {
                Err(e) => {
                    eprintln!("Prometheus 2.42 comparison skipped: no dnsmasq on port 53: {e}")
                }
                Ok(_dns53) => {
                    let prc = pdir.join("resolv.conf");
                    std::fs::write(&prc, "nameserver 127.0.0.1\nsearch example.test\n").unwrap();
                    let (_prom, pport) =
                        start_prometheus_resolving_with(&pdir, &config(closed, false), &prc);
                    let no_ns: Seen = want.iter().filter(|t| t.0 != "ns").cloned().collect();
                    wait_for_or(
                        Duration::from_secs(20),
                        "Prometheus 2.42's DNS targets equal to vigil's",
                        || targets(pport) == no_ns,
                        || {
                            format!(
                                "prometheus {:#?}\nvigil {no_ns:#?}\n{}",
                                targets(pport),
                                std::fs::read_to_string(pdir.join("prometheus.log"))
                                    .unwrap_or_default()
                            )
                        },
                    );
                    eprintln!(
                        "Prometheus 2.42 and vigil discovered the same {} DNS targets",
                        no_ns.len()
                    );
                }
            }
        }
    }

    // No server: lookups fail, are counted, and every name keeps its targets.
    drop(dnsmasq);
    let failures = metric(port, "prometheus_sd_dns_lookup_failures_total");
    wait_for_or(
        Duration::from_secs(10),
        "failed lookups counted",
        || metric(port, "prometheus_sd_dns_lookup_failures_total") >= failures + 6.0,
        log,
    );
    assert_eq!(targets(port), want, "a failed lookup keeps the targets");
    assert!(
        log().contains("Error refreshing DNS targets"),
        "the failure is logged: {}",
        log()
    );

    // New records: the targets follow within a few refreshes.
    let second = Records {
        srv: vec![("node1.example.test", 9100), ("node3.example.test", 9300)],
        a: vec!["10.0.0.3"],
        aaaa: vec!["2001:db8::10", "2001:db8::11"],
        mx: "mail2.example.test",
        ns: "ns2.example.test",
    };
    let conf = write_records(&dir, &second);
    let _dnsmasq = start_dnsmasq(&dir, &conf, dns_port, "dnsmasq2.log")
        .unwrap_or_else(|e| panic!("dnsmasq did not restart: {e}"));
    let want = expected(&second, true);
    wait_for_or(
        Duration::from_secs(10),
        "vigil's DNS targets after the change",
        || targets(port) == want,
        || format!("got {:#?}\nwant {want:#?}\n{}", targets(port), log()),
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// Alertmanagers found through DNS, as a headless service gives them: an `A` lookup of the
/// Alertmanager name with the configured port. The firing alert reaches the Alertmanager
/// stand-in the record points at.
#[test]
fn alertmanager_found_by_dns_sd_receives_firing_alert() {
    if std::env::var_os("VIGIL_SKIP_INTEROP").is_some() {
        eprintln!("VIGIL_SKIP_INTEROP set: interop test skipped");
        return;
    }
    assert!(
        Path::new(DNSMASQ).exists(),
        "{DNSMASQ} is missing: install the Debian package dnsmasq (as .ci/run does), or set VIGIL_SKIP_INTEROP=1"
    );
    let (sink, got) = common::peers::start_sink();
    let dir = tempdir("dns-am");
    std::fs::write(dir.join("hosts"), "127.0.0.1 alertmanager.example.test\n").unwrap();
    let conf = dir.join("dnsmasq.conf");
    std::fs::write(
        &conf,
        format!(
            "local=/example.test/\naddn-hosts={}\n",
            dir.join("hosts").display()
        ),
    )
    .unwrap();
    let dns_port = free_port();
    let _dnsmasq = match start_dnsmasq(&dir, &conf, dns_port, "dnsmasq.log") {
        Ok(p) => p,
        Err(e) => {
            eprintln!("SKIPPED: dnsmasq cannot start here (it may need root): {e}");
            return;
        }
    };
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver 127.0.0.1:{dns_port}\n")).unwrap();
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: AlwaysFiring\n        expr: vector(1)\n",
    )
    .unwrap();
    let config = format!(
        "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n    - dns_sd_configs:\n        - names: [alertmanager.example.test]\n          type: A\n          port: {sink}\n          refresh_interval: 1s\n"
    );
    let (_vigil, port) = start_vigil_resolving_with(&dir, &config, &resolv);
    let log = || std::fs::read_to_string(dir.join("vigil.log")).unwrap_or_default();
    wait_for_or(
        Duration::from_secs(15),
        "the Alertmanager found through DNS",
        || {
            let (_, v) = api(port, "/api/v1/alertmanagers");
            v["data"]["activeAlertmanagers"]
                == serde_json::json!([{ "url": format!("http://127.0.0.1:{sink}/api/v2/alerts") }])
        },
        || format!("{:?}\n{}", api(port, "/api/v1/alertmanagers"), log()),
    );
    wait_for_or(
        Duration::from_secs(20),
        "the alert at the Alertmanager",
        || {
            got.lock().unwrap().iter().any(|b| {
                b.as_array()
                    .is_some_and(|a| a.iter().any(|a| a["labels"]["alertname"] == "AlwaysFiring"))
            })
        },
        log,
    );
}
