//! Chunk throughput: decoding a block chunk (packed columns, `docs/format/chunks.md`), the
//! head's open chunk (decimal mantissas) and a Gorilla XOR chunk holding the same samples,
//! and appending to the open chunk against XOR (`chunk_append`, 120 samples as the head cuts
//! them), for a counter and a gauge shaped like targetsim's (15 s scrapes with a few ms of
//! jitter). `chunk_cut` encodes 120 samples into a block chunk as a head cut does, for the same
//! two and for a counter reset in the middle (its value column patched). Criterion reports
//! samples/s; the bytes per sample of each encoding are printed at start.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use vigil_tsdb::chunk::{OpenChunk, XorAppender, XorIter, dense, open};

const N: usize = 1024;

/// A deterministic pseudo-random sequence (xorshift), so runs compare.
fn noise(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// A counter whose process restarted halfway: its value drops to near zero and grows again.
fn reset_counter() -> Vec<(i64, f64)> {
    let mut s = series(false);
    let drop = s[N / 2].1 - 140.0;
    s[N / 2..].iter_mut().for_each(|(_, v)| *v -= drop);
    s
}

fn series(gauge: bool) -> Vec<(i64, f64)> {
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    let (mut t, mut v) = (1_795_674_482_551i64, 112_728.0f64);
    let mut acc = 9_100i64;
    (0..N)
        .map(|_| {
            t += 14_997 + (noise(&mut seed) % 7) as i64;
            if gauge {
                // Accuracy-like: four decimals wandering around 0.91.
                acc = (acc + (noise(&mut seed) % 21) as i64 - 10).clamp(8_500, 9_900);
                (t, acc as f64 / 10_000.0)
            } else {
                v += (140 + noise(&mut seed) % 20) as f64;
                (t, v)
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunk_decode");
    g.throughput(Throughput::Elements(N as u64));
    for (name, s) in [
        ("counter", series(false)),
        ("gauge", series(true)),
        ("counter_reset", reset_counter()),
    ] {
        let mut block = Vec::new();
        dense::encode(&s, &mut block);
        let mut x = XorAppender::with_capacity(N * 2);
        s.iter().for_each(|&(t, v)| x.append(t, v));
        let xor = x.bytes().to_vec();
        let mut o = OpenChunk::with_capacity(N * 2);
        s.iter().for_each(|&(t, v)| o.append(t, v));
        let opened = o.bytes().to_vec();
        eprintln!(
            "{name}: packed {:.2} bytes/sample, open {:.2} bytes/sample, XOR {:.2} bytes/sample",
            block.len() as f64 / N as f64,
            opened.len() as f64 / N as f64,
            xor.len() as f64 / N as f64
        );
        let (mut out, mut scratch) = (Vec::with_capacity(N), Vec::new());
        g.bench_with_input(BenchmarkId::new("open", name), &opened, |b, opened| {
            b.iter(|| {
                assert!(open::decode(black_box(opened), &mut out));
                black_box(out.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("packed", name), &block, |b, block| {
            b.iter(|| {
                assert!(dense::decode(black_box(block), &mut out, &mut scratch));
                black_box(out.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("xor", name), &xor, |b, xor| {
            b.iter(|| {
                out.clear();
                out.extend(XorIter::new(black_box(xor)));
                black_box(out.len())
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("chunk_append");
    g.throughput(Throughput::Elements(120));
    for (name, gauge) in [("counter", false), ("gauge", true)] {
        let s = series(gauge);
        let s = &s[..120];
        g.bench_function(BenchmarkId::new("open", name), |b| {
            b.iter(|| {
                let mut o = OpenChunk::with_capacity(256);
                s.iter().for_each(|&(t, v)| o.append(t, black_box(v)));
                black_box(o.bytes().len())
            })
        });
        g.bench_function(BenchmarkId::new("xor", name), |b| {
            b.iter(|| {
                let mut x = XorAppender::with_capacity(700);
                s.iter().for_each(|&(t, v)| x.append(t, black_box(v)));
                black_box(x.bytes().len())
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("chunk_cut");
    g.throughput(Throughput::Elements(120));
    for (name, s) in [
        ("counter", series(false)),
        ("gauge", series(true)),
        ("counter_reset", reset_counter()),
    ] {
        let s = &s[N / 2 - 60..N / 2 + 60];
        let mut out = Vec::with_capacity(1024);
        g.bench_function(BenchmarkId::new("packed", name), |b| {
            b.iter(|| {
                out.clear();
                dense::encode(black_box(s), &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
