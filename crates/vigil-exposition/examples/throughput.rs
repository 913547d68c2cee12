//! Rough parse throughput over the Prometheus corpus:
//! `cargo run --release -p vigil-exposition --example throughput`.

use std::time::Instant;

use vigil_exposition::{Entry, Format, Parser};

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/exposition/prometheus-textparse");
    for (file, format) in [
        ("alltypes.237mfs.prom.txt", Format::PrometheusText),
        ("alltypes.5mfs.om.txt", Format::OpenMetrics),
    ] {
        let body = std::fs::read(dir.join(file)).expect("corpus file");
        let rounds = 2000;
        let start = Instant::now();
        let mut samples = 0usize;
        for _ in 0..rounds {
            for e in Parser::new(&body, format) {
                if let Ok(Entry::Sample(s)) = e {
                    std::hint::black_box(&s);
                    samples += 1;
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{file}: {:.0} MB/s, {:.1} M samples/s",
            body.len() as f64 * f64::from(rounds) / secs / 1e6,
            samples as f64 / secs / 1e6,
        );
    }
}
