//! Slow clients must not lock vigil out (issue 20). The defect: 1,500 connections that each
//! dripped a request head one byte every 2 s filled the 512 slots of `--web.max-connections`
//! and were never timed out, so `/-/healthy` went unanswered and nothing was logged.
//!
//! Here 600 such connections run against `--web.max-connections=512` with
//! `--web.read-header-timeout=4s` (shorter than the 10 s default, to keep the test short):
//! health checks and queries on fresh connections must answer within 1 s throughout, every
//! dripping connection must be closed by the server within the header timeout (+ 2 s of
//! slack), a kept-alive client idle for longer than the header timeout must keep its
//! connection, and the closures must be logged. About 15 s, most of it waiting for the
//! rate-limited log report.

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const DRIPPERS: usize = 600;
const HEADER_TIMEOUT: Duration = Duration::from_secs(4);
const SLACK: Duration = Duration::from_secs(2);

struct Dripper {
    s: TcpStream,
    opened: Instant,
    sent: usize,
    last: Instant,
    closed: Option<Duration>,
}

/// The next byte of a request head that never ends.
fn head_byte(i: usize) -> u8 {
    let head = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    *head.get(i).unwrap_or(&b'a')
}

/// True once the server has closed `s` (EOF or reset).
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Reads one HTTP/1.1 response with a Content-Length; returns its status line.
fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    loop {
        let n = s.read(&mut b).unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&b[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut b).unwrap();
                assert!(n > 0);
                buf.extend_from_slice(&b[..n]);
            }
            return head.lines().next().unwrap_or("").to_string();
        }
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn slowloris_connections_cannot_lock_vigil_out() {
    let (mut vigil, port, dir) = start_vigil_with(
        "global:\n  scrape_interval: 15s\n",
        &["--web.max-connections=512", "--web.read-header-timeout=4s"],
    );
    let pid = vigil.child.id();
    let fds_before = open_fds(pid);
    let addr = format!("127.0.0.1:{port}");

    // A kept-alive client, idle between its requests for longer than the header timeout.
    let mut keep = TcpStream::connect(&addr).unwrap();
    keep.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n";
    keep.write_all(req.as_bytes()).unwrap();
    assert!(read_response(&mut keep).contains(" 200 "));

    let start = Instant::now();
    let mut drippers: Vec<Dripper> = (0..DRIPPERS)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(&[head_byte(0)]).unwrap();
            s.set_nonblocking(true).unwrap();
            let now = Instant::now();
            Dripper {
                s,
                opened: now,
                sent: 1,
                last: now,
                closed: None,
            }
        })
        .collect();
    let opened_in = start.elapsed();

    // Health checks and queries on fresh connections, all the while.
    let done = Arc::new(AtomicBool::new(false));
    let checker = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(1))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let mut worst = [Duration::ZERO; 2];
            let mut checks = 0;
            while !done.load(Ordering::Relaxed) {
                for (i, path) in ["/-/healthy", "/api/v1/query?query=vector(1)"]
                    .iter()
                    .enumerate()
                {
                    let t = Instant::now();
                    let r = client.get(format!("http://127.0.0.1:{port}{path}")).send();
                    let took = t.elapsed();
                    match r {
                        Ok(r) if r.status() == 200 => {}
                        Ok(r) => panic!("{path}: status {} after {took:?}", r.status()),
                        Err(e) => panic!("{path}: no answer within 1 s ({took:?}): {e}"),
                    }
                    worst[i] = worst[i].max(took);
                }
                checks += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            (worst, checks)
        })
    };

    let mut peak_fds = 0;
    let deadline = start + opened_in + HEADER_TIMEOUT + SLACK + Duration::from_secs(1);
    while Instant::now() < deadline && drippers.iter().any(|d| d.closed.is_none()) {
        let now = Instant::now();
        for d in drippers.iter_mut().filter(|d| d.closed.is_none()) {
            if closed_by_server(&mut d.s) {
                d.closed = Some(now - d.opened);
                continue;
            }
            if now - d.last >= Duration::from_secs(2) {
                if d.s.write_all(&[head_byte(d.sent)]).is_err() {
                    d.closed = Some(now - d.opened);
                    continue;
                }
                d.sent += 1;
                d.last = now;
            }
        }
        peak_fds = peak_fds.max(open_fds(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    let open = drippers.iter().filter(|d| d.closed.is_none()).count();
    let slowest = drippers.iter().filter_map(|d| d.closed).max().unwrap();
    let shed = drippers
        .iter()
        .filter(|d| {
            d.closed
                .is_some_and(|c| c < HEADER_TIMEOUT - Duration::from_millis(500))
        })
        .count();

    // The kept-alive client was idle for longer than the header timeout: still served.
    keep.write_all(req.as_bytes()).unwrap();
    let status = read_response(&mut keep);
    done.store(true, Ordering::Relaxed);
    let (worst, checks) = checker.join().expect("a health check or query failed");
    eprintln!(
        "{DRIPPERS} dripping connections opened in {opened_in:?}; {shed} shed early, the \
         slowest closed after {slowest:?}; vigil's open fds: {fds_before} before, peak \
         {peak_fds}; {checks} rounds of checks, slowest /-/healthy {:?}, slowest query {:?}",
        worst[0], worst[1]
    );
    assert_eq!(
        open, 0,
        "dripping connections still open after {deadline:?}"
    );
    assert!(
        slowest <= HEADER_TIMEOUT + SLACK,
        "a dripping connection lived {slowest:?}"
    );
    assert!(status.contains(" 200 "), "kept-alive client: {status}");
    assert!(checks >= 5, "only {checks} rounds of checks");
    // Bounded by the cap (512 connections), plus vigil's own files.
    assert!(peak_fds <= fds_before + 512 + 16, "peak fds {peak_fds}");
    // Logged: the first shed at once, the timeouts in the next report (at most every 10 s).
    let log = || std::fs::read_to_string(dir.join("vigil.log")).unwrap();
    let first = log();
    assert!(
        first.contains("Closed HTTP connections of slow or stalled clients: ")
            && first.contains("shed to admit new connections at --web.max-connections=512"),
        "no log of the shed connections:\n{first}"
    );
    wait_for_or(
        Duration::from_secs(12),
        "the header timeouts in the log",
        || log().contains("sent no complete request head within --web.read-header-timeout=4s"),
        log,
    );
    assert!(vigil.running());
}

/// `--web.read-timeout` bounds the whole request (a body dripped after a quick head: the
/// handler gets an error, answers 400, and the connection is closed) and the idle time of a
/// kept-alive connection, as in Prometheus.
#[test]
fn read_timeout_cuts_slow_bodies_and_idle_connections() {
    let (_vigil, port, _dir) = start_vigil_with(
        "global:\n  scrape_interval: 15s\n",
        &["--web.read-timeout=2s", "--web.read-header-timeout=1s"],
    );
    let addr = format!("127.0.0.1:{port}");
    // A POST whose body never arrives in full.
    let mut slow = TcpStream::connect(&addr).unwrap();
    let t = Instant::now();
    slow.write_all(
        b"POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nquery=",
    )
    .unwrap();
    slow.set_nonblocking(true).unwrap();
    // An idle kept-alive connection after one request.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    idle.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(read_response(&mut idle).contains(" 200 "));
    let idle_since = Instant::now();
    idle.set_nonblocking(true).unwrap();
    let (mut slow_closed, mut idle_closed) = (None, None);
    while (slow_closed.is_none() || idle_closed.is_none()) && t.elapsed() < Duration::from_secs(6) {
        if slow_closed.is_none() {
            // One more byte of the body every 300 ms, never all 100.
            if slow.write_all(b"1").is_err() || closed_by_server(&mut slow) {
                slow_closed = Some(t.elapsed());
            }
        }
        if idle_closed.is_none() && closed_by_server(&mut idle) {
            idle_closed = Some(idle_since.elapsed());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("slow body cut after {slow_closed:?}, idle connection closed after {idle_closed:?}");
    let slow_closed = slow_closed.expect("the slow body was not cut");
    let idle_closed = idle_closed.expect("the idle connection was not closed");
    assert!(
        slow_closed >= Duration::from_millis(1500) && slow_closed <= Duration::from_secs(4),
        "{slow_closed:?}"
    );
    assert!(
        idle_closed >= Duration::from_millis(1500) && idle_closed <= Duration::from_secs(4),
        "{idle_closed:?}"
    );
}
