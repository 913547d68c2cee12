//! Hostile targets, each beside a well-behaved one: a target that hangs, one that streams
//! without end, one that sends garbage, a gzip bomb, duplicate series, a huge label value,
//! and one whose body turns malformed after a good scrape. Each gets Prometheus' documented
//! outcome (mostly `up` 0 and a lastError on /api/v1/targets), vigil's memory stays
//! bounded, and the good target keeps being scraped.

mod common;

use common::*;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

#[derive(Clone, Copy)]
enum Mode {
    Good,
    Hang,
    Endless,
    Garbage,
    GzipBomb,
    Duplicates,
    HugeLabel,
    /// Good in its first scrape; from the second on, a new line with a duplicate label
    /// follows the known one (the scrape cache skips the checks of known lines only).
    TurnsBad,
}

static TURNS_BAD_SCRAPES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Serves `mode` on a loopback port, one thread per connection, until the test exits.
fn serve(mode: Mode, bomb: &'static [u8]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = handle(conn, mode, bomb);
            });
        }
    });
    port
}

fn handle(mut c: TcpStream, mode: Mode, bomb: &[u8]) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    let mut req = Vec::new();
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
    }
    let head = |c: &mut TcpStream, extra: &str, len: usize| {
        write!(
            c,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n{extra}Content-Length: {len}\r\nConnection: close\r\n\r\n"
        )
    };
    match mode {
        Mode::Good => {
            let body = "# TYPE good_total counter\ngood_total{path=\"/a}b\"} 42\n";
            head(&mut c, "", body.len())?;
            c.write_all(body.as_bytes())?;
        }
        Mode::Hang => std::thread::sleep(Duration::from_secs(30)),
        Mode::Endless => {
            c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            let line = "endless_metric{a=\"b\"} 1\n".repeat(4000);
            let chunk = format!("{:x}\r\n{line}\r\n", line.len());
            loop {
                c.write_all(chunk.as_bytes())?;
            }
        }
        Mode::Garbage => {
            let body: Vec<u8> = (0..5000u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect();
            head(&mut c, "", body.len())?;
            c.write_all(&body)?;
        }
        Mode::GzipBomb => {
            head(&mut c, "Content-Encoding: gzip\r\n", bomb.len())?;
            c.write_all(bomb)?;
        }
        Mode::Duplicates => {
            let body = "dup_metric{a=\"1\"} 1\ndup_metric{a=\"1\"} 2\nother 3\n";
            head(&mut c, "", body.len())?;
            c.write_all(body.as_bytes())?;
        }
        Mode::TurnsBad => {
            let n = TURNS_BAD_SCRAPES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut body = String::from("turns_bad{a=\"1\"} 1\n");
            if n > 0 {
                body.push_str("turns_bad{a=\"1\",a=\"2\"} 2\n");
            }
            head(&mut c, "", body.len())?;
            c.write_all(body.as_bytes())?;
        }
        Mode::HugeLabel => {
            let body = format!("huge_metric{{a=\"{}\"}} 1\n", "x".repeat(1 << 20));
            head(&mut c, "", body.len())?;
            c.write_all(body.as_bytes())?;
        }
    }
    Ok(())
}

/// A gzip stream of 512 MiB of spaces: about 0.5 MiB on the wire.
fn gzip_bomb() -> &'static [u8] {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    let block = vec![b' '; 1 << 20];
    for _ in 0..512 {
        enc.write_all(&block).unwrap();
    }
    Box::leak(enc.finish().unwrap().into_boxed_slice())
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

#[test]
fn hostile_targets_fail_alone_and_memory_stays_bounded() {
    let bomb = gzip_bomb();
    let ports: Vec<(&str, u16)> = [
        ("good", Mode::Good),
        ("hang", Mode::Hang),
        ("endless", Mode::Endless),
        ("garbage", Mode::Garbage),
        ("bomb", Mode::GzipBomb),
        ("dups", Mode::Duplicates),
        ("huge", Mode::HugeLabel),
        ("hugelimited", Mode::HugeLabel),
        ("turnsbad", Mode::TurnsBad),
    ]
    .into_iter()
    .map(|(job, mode)| (job, serve(mode, bomb)))
    .collect();
    let mut cfg =
        String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
    for (job, port) in &ports {
        cfg.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ));
        match *job {
            "bomb" | "endless" => cfg.push_str("    body_size_limit: 16MB\n"),
            "hugelimited" => cfg.push_str("    label_value_length_limit: 1024\n"),
            _ => {}
        }
    }
    let (mut vigil, port, _dir) = start_vigil(&cfg);

    // Let every target be scraped at least three times.
    std::thread::sleep(Duration::from_secs(4));
    let (_, t) = api(port, "/api/v1/targets?state=active");
    let targets = t["data"]["activeTargets"].as_array().unwrap().clone();
    assert_eq!(targets.len(), ports.len());
    let by_job = |job: &str| {
        targets
            .iter()
            .find(|t| t["scrapePool"] == job)
            .unwrap()
            .clone()
    };
    let expect_down = |job: &str, err_part: &str| {
        let t = by_job(job);
        assert_eq!(t["health"], "down", "{job}: {t}");
        let err = t["lastError"].as_str().unwrap();
        assert!(
            err.contains(err_part),
            "{job}: lastError {err:?} should mention {err_part:?}"
        );
    };
    expect_down("hang", "context deadline exceeded");
    expect_down("endless", "body size limit exceeded");
    expect_down("bomb", "body size limit exceeded");
    expect_down("garbage", "line 1");
    expect_down("hugelimited", "label_value_length_limit exceeded");
    expect_down("turnsbad", "duplicate label name");
    for job in ["good", "dups", "huge"] {
        assert_eq!(by_job(job)["health"], "up", "{job}: {}", by_job(job));
    }

    let value = |q: &str| -> Option<String> {
        let (_, v) = api(port, &format!("/api/v1/query?query={}", enc(q)));
        v["data"]["result"]
            .as_array()
            .unwrap()
            .first()
            .map(|s| s["value"][1].as_str().unwrap().to_string())
    };
    for job in [
        "hang",
        "endless",
        "garbage",
        "bomb",
        "hugelimited",
        "turnsbad",
    ] {
        assert_eq!(
            value(&format!("up{{job=\"{job}\"}}")).as_deref(),
            Some("0"),
            "{job}"
        );
    }
    // Nothing partial was stored from failed scrapes.
    assert_eq!(value("count(endless_metric)"), None);
    assert_eq!(value("count(huge_metric{job=\"hugelimited\"})"), None);
    // Duplicates: the first sample wins, the scrape succeeds.
    assert_eq!(value("dup_metric").as_deref(), Some("1"));
    assert_eq!(value("other").as_deref(), Some("3"));
    // Without a limit, a huge label value is stored as it is.
    assert_eq!(
        value("count(huge_metric{job=\"huge\"})").as_deref(),
        Some("1")
    );
    // The good target is unaffected and keeps being scraped.
    assert_eq!(value("good_total").as_deref(), Some("42"));
    let last_scrape = |job: &str| {
        let (_, t) = api(port, &format!("/api/v1/targets?scrapePool={job}"));
        t["data"]["activeTargets"][0]["lastScrape"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = last_scrape("good");
    std::thread::sleep(Duration::from_millis(1500));
    assert_ne!(
        last_scrape("good"),
        before,
        "the good target is still scraped every second"
    );

    assert!(vigil.running(), "vigil survived");
    let rss = rss_kib(vigil.child.id());
    assert!(rss < 512 * 1024, "RSS stays bounded: {rss} KiB");
}
