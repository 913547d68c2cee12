//! The integration tests' own scrape targets, so a checkout needs nothing beside it to test:
//! a small synthetic model-serving fleet served in the Prometheus text format over HTTP/1.1 on
//! loopback (one port per target), and the same series written as one OpenMetrics file for
//! the backfill tests.
//!
//! Every value is a pure function of (seed, target, series, step) with step
//! `k = unix_ms / step_ms`: two scrapers within one step see the same body, and a backfilled
//! hour holds the values a live scrape of that hour would have seen. Counters only grow,
//! except that every target "restarts" every 2-3 hours (its counters reset together and
//! `process_start_time_seconds` moves); histogram buckets are cumulative.
//!
//! Per target: five `process_*` series, then [`SERIES_PER_MODEL`] series for each (model,
//! version) pair, as many pairs as it takes to reach the series asked for
//! ([`series_per_target`]).

use std::f64::consts::TAU;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Fixed, so every run serves the same values.
const SEED: u64 = 1;

/// Model names; models past the list get a numeric suffix.
const MODELS: &[&str] = &[
    "resnet50",
    "bert-base",
    "gpt2-small",
    "fraud-xgb",
    "churn-lgbm",
    "whisper-tiny",
    "yolo-v8",
    "t5-small",
    "vit-b16",
    "ner-crf",
];

/// `http_requests_total` per model: (method, status, share of the model's traffic).
const REQUESTS: &[(&str, &str, f64)] = &[
    ("POST", "200", 0.78),
    ("POST", "400", 0.03),
    ("POST", "500", 0.005),
    ("POST", "503", 0.003),
    ("GET", "200", 0.16),
    ("GET", "404", 0.015),
    ("GET", "500", 0.002),
];

const QUANTILES: &[&str] = &["0.5", "0.9", "0.99"];

/// Histogram upper bounds and their label text.
const BUCKETS: &[(f64, &str)] = &[
    (0.01, "0.01"),
    (0.025, "0.025"),
    (0.05, "0.05"),
    (0.1, "0.1"),
    (0.25, "0.25"),
    (0.5, "0.5"),
    (1.0, "1"),
    (f64::INFINITY, "+Inf"),
];

/// `model_input_feature_mean` series per model (`feature="f00"`, ...).
const FEATURES: usize = 8;

/// Series of one (model, version) pair: requests, summary, histogram, accuracy, features.
pub const SERIES_PER_MODEL: u32 =
    (REQUESTS.len() + QUANTILES.len() + 2 + BUCKETS.len() + 2 + 1 + FEATURES) as u32;

/// The `process_*` series every target has.
pub const PROCESS_SERIES: u32 = 5;

/// (model, version) pairs a target asked for `series` series gets (at least one).
pub fn models_for(series: u32) -> u32 {
    series
        .saturating_sub(PROCESS_SERIES)
        .div_ceil(SERIES_PER_MODEL)
        .max(1)
}

/// Series a target asked for `series` serves: at least `series`, rounded up to whole models.
pub fn series_per_target(series: u32) -> u32 {
    PROCESS_SERIES + SERIES_PER_MODEL * models_for(series)
}

/// A 64-bit hash of the seed and `parts` (an xor-multiply-shift mix per part).
fn hash(parts: &[u64]) -> u64 {
    let mut h = SEED.wrapping_mul(0xa076_1d64_78bd_642f);
    for &p in parts {
        h ^= p.wrapping_add(0x9e37_79b9_7f4a_7c15);
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 32;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 29;
    }
    h
}

/// A uniform value in [0, 1) from `parts`.
fn unit(parts: &[u64]) -> f64 {
    (hash(parts) >> 11) as f64 / (1u64 << 53) as f64
}

/// A uniform value in [lo, hi) from `parts`.
fn between(lo: f64, hi: f64, parts: &[u64]) -> f64 {
    lo + (hi - lo) * unit(parts)
}

/// How one group of samples (one metric point) is computed.
enum Calc {
    /// An integer counter growing by `rate` per second on average.
    Counter {
        rate: f64,
    },
    /// A counter with two decimals (CPU seconds).
    Seconds {
        rate: f64,
    },
    /// A gauge `base + amp·sin(...)` plus noise, six decimals.
    Wave {
        base: f64,
        amp: f64,
        noise: f64,
    },
    /// Accuracy: dips by up to 0.04 below `base`.
    Accuracy {
        base: f64,
    },
    Resident,
    Virtual,
    OpenFds,
    StartTime,
    /// Quantiles 0.5, 0.9, 0.99, then `_sum` and `_count`.
    Summary {
        median: f64,
        rate: f64,
    },
    /// Cumulative buckets, then `_sum` and `_count`; `shares` per band add up to 1.
    Histogram {
        rate: f64,
        shares: Vec<f64>,
    },
}

/// Samples that belong together: one series, or all series of one histogram or summary.
struct Group {
    /// Identifies the group in [`hash`]: derived parameters and noise are keyed by it.
    id: u64,
    calc: Calc,
    /// (sample name, own labels as `a="b",c="d"`) per sample, in output order.
    lines: Vec<(String, String)>,
}

struct Family {
    /// The name in the text format (`http_requests_total`).
    name: &'static str,
    /// The name in OpenMetrics (`http_requests`: the counter without `_total`).
    om_name: &'static str,
    kind: &'static str,
    help: &'static str,
    groups: Vec<Group>,
}

/// One synthetic target: its series and how they move.
struct Target {
    step_ms: u64,
    /// Steps between two restarts, and where this target is in that cycle at k = 0.
    restart_steps: u64,
    restart_phase: u64,
    families: Vec<Family>,
}

impl Target {
    fn new(index: u16, series: u32, step_ms: u64) -> Target {
        let t = u64::from(index);
        let restart_ms = between(2.0, 3.0, &[t, 1]) * 3_600_000.0;
        let restart_steps = ((restart_ms / step_ms as f64) as u64).max(2);
        let restart_phase = hash(&[t, 2]) % restart_steps;
        let pairs = models_for(series);
        let versions = if pairs >= 2 { 2 } else { 1 };
        let models: Vec<(String, String)> = (0..pairs)
            .map(|i| {
                let (m, v) = ((i / versions) as usize, i % versions);
                let mut name = MODELS[m % MODELS.len()].to_string();
                if m >= MODELS.len() {
                    name += &format!("-{}", m / MODELS.len());
                }
                (name, format!("v{}", v + 1))
            })
            .collect();
        let mut next_id = t << 32;
        let mut id = || {
            next_id += 1;
            next_id
        };
        let mv = |m: &str, v: &str| format!("model=\"{m}\",version=\"{v}\"");
        // Requests per second of each model.
        let rps: Vec<f64> = (0..models.len())
            .map(|i| between(2f64.ln(), 60f64.ln(), &[t, 3, i as u64]).exp())
            .collect();

        let mut requests = Vec::new();
        let mut summaries = Vec::new();
        let mut histograms = Vec::new();
        let mut accuracy = Vec::new();
        let mut features = Vec::new();
        for (i, (m, v)) in models.iter().enumerate() {
            for &(method, status, share) in REQUESTS {
                requests.push(Group {
                    id: id(),
                    calc: Calc::Counter {
                        rate: rps[i] * share,
                    },
                    lines: vec![(
                        "http_requests_total".into(),
                        format!("method=\"{method}\",status=\"{status}\",{}", mv(m, v)),
                    )],
                });
            }

            let gid = id();
            let mut lines: Vec<(String, String)> = QUANTILES
                .iter()
                .map(|q| {
                    (
                        "request_processing_seconds".to_string(),
                        format!("{},quantile=\"{q}\"", mv(m, v)),
                    )
                })
                .collect();
            lines.push(("request_processing_seconds_sum".into(), mv(m, v)));
            lines.push(("request_processing_seconds_count".into(), mv(m, v)));
            summaries.push(Group {
                id: gid,
                calc: Calc::Summary {
                    median: between(0.004f64.ln(), 0.4f64.ln(), &[gid, 1]).exp(),
                    rate: rps[i],
                },
                lines,
            });

            let gid = id();
            // Latency bands shaped like a bell around a band picked per model.
            let centre = between(0.5, 5.0, &[gid, 1]);
            let width = between(0.8, 1.6, &[gid, 2]);
            let weights: Vec<f64> = (0..BUCKETS.len())
                .map(|j| {
                    (-((j as f64 - centre) / width).powi(2) / 2.0)
                        .exp()
                        .max(1e-3)
                })
                .collect();
            let total: f64 = weights.iter().sum();
            let mut lines: Vec<(String, String)> = BUCKETS
                .iter()
                .map(|(_, le)| {
                    (
                        "prediction_latency_seconds_bucket".to_string(),
                        format!("{},le=\"{le}\"", mv(m, v)),
                    )
                })
                .collect();
            lines.push(("prediction_latency_seconds_sum".into(), mv(m, v)));
            lines.push(("prediction_latency_seconds_count".into(), mv(m, v)));
            histograms.push(Group {
                id: gid,
                calc: Calc::Histogram {
                    rate: rps[i] * 0.8,
                    shares: weights.iter().map(|w| w / total).collect(),
                },
                lines,
            });

            let gid = id();
            accuracy.push(Group {
                id: gid,
                calc: Calc::Accuracy {
                    base: between(0.86, 0.985, &[gid, 1]),
                },
                lines: vec![("model_accuracy".into(), mv(m, v))],
            });

            for f in 0..FEATURES {
                let gid = id();
                features.push(Group {
                    id: gid,
                    calc: Calc::Wave {
                        base: between(-2.0, 5.0, &[gid, 1]),
                        amp: between(0.05, 0.5, &[gid, 2]),
                        noise: between(0.005, 0.03, &[gid, 3]),
                    },
                    lines: vec![(
                        "model_input_feature_mean".into(),
                        format!("{},feature=\"f{f:02}\"", mv(m, v)),
                    )],
                });
            }
        }

        let single = |name: &'static str, calc: Calc, id: u64| Family {
            name,
            om_name: name.strip_suffix("_total").unwrap_or(name),
            kind: if matches!(calc, Calc::Seconds { .. }) {
                "counter"
            } else {
                "gauge"
            },
            help: match name {
                "process_cpu_seconds_total" => "Total user and system CPU time spent in seconds.",
                "process_resident_memory_bytes" => "Resident memory size in bytes.",
                "process_virtual_memory_bytes" => "Virtual memory size in bytes.",
                "process_open_fds" => "Number of open file descriptors.",
                _ => "Start time of the process since unix epoch in seconds.",
            },
            groups: vec![Group {
                id,
                calc,
                lines: vec![(name.to_string(), String::new())],
            }],
        };
        let cpu_rate = between(0.2, 1.5, &[t, 4]);
        let families = vec![
            Family {
                name: "http_requests_total",
                om_name: "http_requests",
                kind: "counter",
                help: "Requests the model server answered.",
                groups: requests,
            },
            Family {
                name: "request_processing_seconds",
                om_name: "request_processing_seconds",
                kind: "summary",
                help: "Time spent answering a request.",
                groups: summaries,
            },
            Family {
                name: "prediction_latency_seconds",
                om_name: "prediction_latency_seconds",
                kind: "histogram",
                help: "Latency of one model prediction.",
                groups: histograms,
            },
            Family {
                name: "model_accuracy",
                om_name: "model_accuracy",
                kind: "gauge",
                help: "Accuracy of the model on recent labelled feedback.",
                groups: accuracy,
            },
            Family {
                name: "model_input_feature_mean",
                om_name: "model_input_feature_mean",
                kind: "gauge",
                help: "Mean of one input feature over the last batch.",
                groups: features,
            },
            single(
                "process_cpu_seconds_total",
                Calc::Seconds { rate: cpu_rate },
                id(),
            ),
            single("process_resident_memory_bytes", Calc::Resident, id()),
            single("process_virtual_memory_bytes", Calc::Virtual, id()),
            single("process_open_fds", Calc::OpenFds, id()),
            single("process_start_time_seconds", Calc::StartTime, id()),
        ];
        Target {
            step_ms,
            restart_steps,
            restart_phase,
            families,
        }
    }

    /// Steps since the last restart at step `k`.
    fn since_restart(&self, k: u64) -> u64 {
        (k + self.restart_phase) % self.restart_steps
    }

    /// A counter that only grows between restarts: `rate`·t swung by up to ±`s`·`rate`
    /// (s < 1, so it never slows to zero), plus noise smaller than the least growth in one
    /// step, so the value floored to an integer never goes down.
    fn counter(&self, id: u64, rate: f64, kr: u64, k: u64) -> f64 {
        let step_s = self.step_ms as f64 / 1000.0;
        let w = TAU / between(1200.0, 10800.0, &[id, 10]);
        let ph = between(0.0, TAU, &[id, 11]);
        let s = between(0.3, 0.7, &[id, 12]);
        let t = kr as f64 * step_s;
        // The integral of rate·(1 + s·sin(w·t + ph)).
        let smooth = rate * (t + s / w * (ph.cos() - (w * t + ph).cos()));
        let least_step = rate * (1.0 - s) * step_s;
        (smooth + 0.9 * least_step * unit(&[id, 13, k])).floor()
    }

    /// A slow wave in absolute time (restarts do not move it) in [-1, 1].
    fn wave(&self, id: u64, k: u64) -> f64 {
        let t = k as f64 * self.step_ms as f64 / 1000.0;
        let w = TAU / between(600.0, 7200.0, &[id, 20]);
        (w * t + between(0.0, TAU, &[id, 21])).sin()
    }

    /// Appends the value text of each sample of `g` at step `k`.
    fn values(&self, g: &Group, k: u64, out: &mut Vec<String>) {
        let kr = self.since_restart(k);
        let step_s = self.step_ms as f64 / 1000.0;
        let id = g.id;
        let noise = |salt: u64| unit(&[id, salt, k]);
        match &g.calc {
            Calc::Counter { rate } => out.push(self.counter(id, *rate, kr, k).to_string()),
            Calc::Seconds { rate } => out.push(format!(
                "{:.2}",
                self.counter(id, rate * 100.0, kr, k) / 100.0
            )),
            Calc::Wave {
                base,
                amp,
                noise: n,
            } => out.push(format!(
                "{:.6}",
                base + amp * self.wave(id, k) + n * (noise(1) - 0.5)
            )),
            Calc::Accuracy { base } => out.push(format!(
                "{:.6}",
                base - 0.02 * (1.0 + self.wave(id, k)) + 0.004 * (noise(1) - 0.5)
            )),
            Calc::Resident => {
                let base = between(0.8e9, 3.0e9, &[id, 1]);
                let growth = between(1e3, 2e4, &[id, 2]);
                let grown = growth * (kr as f64 * step_s).min(3600.0);
                let pages = (noise(1) * 2048.0).floor();
                out.push(format!("{}", (base + grown).floor() + 4096.0 * pages));
            }
            Calc::Virtual => {
                let base = between(3e9, 1.2e10, &[id, 1]).floor();
                out.push(format!("{}", base + 4096.0 * (noise(1) * 4096.0).floor()));
            }
            Calc::OpenFds => {
                let base = between(40.0, 400.0, &[id, 1]);
                let fds = base + 20.0 * self.wave(id, k) + 6.0 * noise(1);
                out.push(format!("{}", fds.floor()));
            }
            Calc::StartTime => out.push(format!("{}", (k - kr) as f64 * step_s)),
            Calc::Summary { median, rate } => {
                let q50 = median * (1.0 + 0.25 * self.wave(id, k)) * (0.97 + 0.06 * noise(1));
                let q90 = q50 * (1.8 + 0.3 * noise(2));
                let q99 = q90 * (1.5 + 0.4 * noise(3));
                let count = self.counter(id, *rate, kr, k);
                let mean = median * 1.15;
                for q in [q50, q90, q99, count * mean] {
                    out.push(format!("{q:.6}"));
                }
                out.push(count.to_string());
            }
            Calc::Histogram { rate, shares } => {
                let (mut cumulative, mut sum) = (0.0, 0.0);
                for (j, share) in shares.iter().enumerate() {
                    let band = self.counter(hash(&[id, j as u64]), rate * share, kr, k);
                    // A band's samples count at its middle (twice the last bound past it).
                    let lo = if j == 0 { 0.0 } else { BUCKETS[j - 1].0 };
                    let hi = BUCKETS[j].0;
                    let mid = if hi.is_finite() {
                        (lo + hi) / 2.0
                    } else {
                        2.0 * lo
                    };
                    cumulative += band;
                    sum += band * mid;
                    out.push(cumulative.to_string());
                }
                out.push(format!("{sum:.6}"));
                out.push(cumulative.to_string());
            }
        }
    }

    /// The Prometheus text format body at step `k` (no timestamps, no job/instance labels).
    fn render(&self, k: u64) -> String {
        let mut body = String::new();
        let mut vals = Vec::new();
        for f in &self.families {
            body += &format!(
                "# HELP {} {}\n# TYPE {} {}\n",
                f.name, f.help, f.name, f.kind
            );
            for g in &f.groups {
                vals.clear();
                self.values(g, k, &mut vals);
                for ((name, labels), v) in g.lines.iter().zip(&vals) {
                    if labels.is_empty() {
                        body += &format!("{name} {v}\n");
                    } else {
                        body += &format!("{name}{{{labels}}} {v}\n");
                    }
                }
            }
        }
        body
    }
}

/// The body target `index` (of targets asked for `series` series, changing every `step_ms`)
/// serves at step `k`: for tests of the targets themselves.
pub fn body_at(index: u16, series: u32, step_ms: u64, k: u64) -> String {
    Target::new(index, series, step_ms).render(k)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Running targets; they stop answering when this is dropped.
pub struct SynthTargets {
    stop: Arc<AtomicBool>,
    ports: Vec<u16>,
}

impl Drop for SynthTargets {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake each accept loop so it sees the flag and closes its listener.
        for &p in &self.ports {
            let _ = TcpStream::connect(("127.0.0.1", p));
        }
    }
}

/// Starts `targets` targets of about `series` series each whose values change once per
/// `step_ms`, on consecutive loopback ports; returns them and the first port (target `i`
/// listens on `base + i` and serves `GET /metrics`, gzipped when asked).
pub fn start_targets(targets: u16, series: u32, step_ms: u64) -> (SynthTargets, u16) {
    for _ in 0..200 {
        let base = super::free_port();
        if base < 1024 || base > 65000 - targets {
            continue;
        }
        let listeners: Vec<TcpListener> = (0..targets)
            .map_while(|i| TcpListener::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if listeners.len() < usize::from(targets) {
            continue;
        }
        let stop = Arc::new(AtomicBool::new(false));
        for (i, l) in listeners.into_iter().enumerate() {
            let target = Arc::new(Target::new(i as u16, series, step_ms));
            let stop = stop.clone();
            std::thread::spawn(move || {
                for conn in l.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (target, stop) = (target.clone(), stop.clone());
                    std::thread::spawn(move || serve(conn, &target, &stop));
                }
            });
        }
        let ports = (0..targets).map(|i| base + i).collect();
        return (SynthTargets { stop, ports }, base);
    }
    panic!("no range of {targets} free ports found");
}

/// Answers requests on one connection (keep-alive) until the client closes it, a request
/// asks to close, or the targets are stopped.
fn serve(conn: TcpStream, target: &Target, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
    let mut out = match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path, version) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let (method, path, version) = (method.to_string(), path.to_string(), version.to_string());
        let (mut gzip, mut close, mut length) = (false, version != "HTTP/1.1", 0usize);
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let Some((name, value)) = h.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "accept-encoding" => gzip = value.contains("gzip"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                "content-length" => length = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        if length > 0
            && std::io::copy(&mut (&mut reader).take(length as u64), &mut std::io::sink()).is_err()
        {
            return;
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let (status, ctype, mut body) = match path.split('?').next().unwrap_or("") {
            "/metrics" => (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                target.render(now_ms() / target.step_ms).into_bytes(),
            ),
            "/" | "/-/healthy" => ("200 OK", "text/plain", b"ok\n".to_vec()),
            _ => {
                gzip = false;
                ("404 Not Found", "text/plain", b"not found\n".to_vec())
            }
        };
        let mut head = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n");
        if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&body).unwrap();
            body = enc.finish().unwrap();
            head += "Content-Encoding: gzip\r\n";
        }
        head += &format!("Content-Length: {}\r\n", body.len());
        if close {
            head += "Connection: close\r\n";
        }
        head += "\r\n";
        let mut resp = head.into_bytes();
        if method != "HEAD" {
            resp.extend_from_slice(&body);
        }
        if out.write_all(&resp).is_err() || close {
            return;
        }
    }
}

/// What [`write_openmetrics`] writes: the series of `targets` targets (as [`start_targets`]
/// with a step of one second) scraped every `interval_s` for `duration_s` from `start_s`,
/// labelled `job` and `instance="127.0.0.1:<base_port + i>"`.
pub struct History {
    pub targets: u16,
    pub series: u32,
    pub start_s: i64,
    pub duration_s: i64,
    pub interval_s: i64,
    pub base_port: u16,
    pub job: &'static str,
}

impl History {
    /// `targets` × `series` from `start_s` for `duration_s`, every 15 s, as instances
    /// 127.0.0.1:19100... of job `synth`.
    pub fn new(targets: u16, series: u32, start_s: i64, duration_s: i64) -> History {
        History {
            targets,
            series,
            start_s,
            duration_s,
            interval_s: 15,
            base_port: 19100,
            job: "synth",
        }
    }
}

/// Writes `h` as one OpenMetrics file ending in `# EOF`, in the order backfill tools need
/// (promtool drops samples that go back in time within a series): families contiguous, and
/// within a family each metric point's samples together, in increasing time. Timestamps are
/// in seconds with milliseconds, never on a whole second (a per-target offset and a few ms of
/// jitter per scrape, as a real scraper's). Returns the number of samples.
pub fn write_openmetrics(path: &Path, h: &History) -> usize {
    const STEP_MS: u64 = 1000;
    let interval_ms = h.interval_s as u64 * 1000;
    let points = (h.duration_s / h.interval_s) as u64;
    let targets: Vec<Target> = (0..h.targets)
        .map(|i| Target::new(i, h.series, STEP_MS))
        .collect();
    // Per target, the scrape times in ms.
    let times: Vec<Vec<u64>> = (0..h.targets)
        .map(|i| {
            let offset = hash(&[u64::from(i), 30]) % interval_ms;
            (0..points)
                .map(|n| {
                    let t = h.start_s as u64 * 1000
                        + offset
                        + n * interval_ms
                        + hash(&[u64::from(i), 31, n]) % 6;
                    if t.is_multiple_of(1000) { t + 1 } else { t }
                })
                .collect()
        })
        .collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut samples = 0;
    let mut vals = Vec::new();
    for fi in 0..targets[0].families.len() {
        let f0 = &targets[0].families[fi];
        writeln!(out, "# HELP {} {}", f0.om_name, f0.help).unwrap();
        writeln!(out, "# TYPE {} {}", f0.om_name, f0.kind).unwrap();
        for (ti, t) in targets.iter().enumerate() {
            let own = format!(
                "job=\"{}\",instance=\"127.0.0.1:{}\"",
                h.job,
                u32::from(h.base_port) + ti as u32
            );
            for g in &t.families[fi].groups {
                for &ms in &times[ti] {
                    vals.clear();
                    t.values(g, ms / STEP_MS, &mut vals);
                    for ((name, labels), v) in g.lines.iter().zip(&vals) {
                        let sep = if labels.is_empty() { "" } else { "," };
                        writeln!(
                            out,
                            "{name}{{{own}{sep}{labels}}} {v} {}.{:03}",
                            ms / 1000,
                            ms % 1000
                        )
                        .unwrap();
                        samples += 1;
                    }
                }
            }
        }
    }
    writeln!(out, "# EOF").unwrap();
    out.flush().unwrap();
    samples
}
