//! Rebuilding the head at open: newest good snapshot, then the WAL segments after it.
//!
//! Nothing here refuses to start. A bad snapshot is skipped for an older one (or none); a torn
//! or corrupted WAL record ends replay there: the segment is truncated at the last good record
//! and later segments are removed, with a warning and a corruption count. Decoding runs on a
//! reader thread that hands decoded segments to the applying thread, so reading and decoding
//! overlap with applying on the two cores we have.

use crate::error::TsdbError;
use crate::fs::Fs;
use crate::head::snapshot;
use crate::head::{Head, Tally};
use crate::wal::{self, record};
use ahash::AHashMap;
use std::path::Path;
use std::time::Instant;
use vigil_model::{Labels, SeriesRef};

/// What replay found.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// The first WAL segment number free for writing.
    pub next_segment: u32,
    pub snapshot_series: usize,
    pub segments: usize,
    pub series_records: u64,
    pub samples: u64,
    /// Samples whose series was unknown (its record lost to corruption).
    pub unknown_refs: u64,
    pub corruptions: u64,
    /// First and last WAL segment replayed (both 0 when none was).
    pub first_segment: u32,
    pub last_segment: u32,
}

/// Loads the newest usable snapshot; returns the WAL segment it starts.
fn load_snapshot(
    head: &Head,
    dir: &Path,
    rep: &mut ReplayReport,
) -> Result<Option<u32>, TsdbError> {
    for seg in snapshot::list_snapshots(dir)? {
        let path = snapshot::snapshot_path(dir, seg);
        let start = Instant::now();
        match snapshot::load(head, &path) {
            Ok(n) => {
                tracing::info!(
                    path = %path.display(),
                    series = n,
                    duration = ?start.elapsed(),
                    "Loaded head snapshot"
                );
                rep.snapshot_series = n;
                return Ok(Some(seg));
            }
            Err(e) => {
                rep.corruptions += 1;
                tracing::warn!("Ignoring unusable head snapshot: {e}");
            }
        }
    }
    Ok(None)
}

/// Replays `dir` into `head` (which must be empty).
/// Repairs (truncations, removals) go through `fs`.
pub fn replay(head: &Head, dir: &Path, fs: &dyn Fs) -> Result<ReplayReport, TsdbError> {
    let mut rep = ReplayReport::default();
    head.set_replaying(true);
    let res = replay_inner(head, dir, fs, &mut rep);
    head.set_replaying(false);
    res.map(|()| rep)
}

fn replay_inner(
    head: &Head,
    dir: &Path,
    fs: &dyn Fs,
    rep: &mut ReplayReport,
) -> Result<(), TsdbError> {
    let from = load_snapshot(head, dir, rep)?;
    let wal_dir = dir.join("wal");
    let all = wal::list_segments(&wal_dir)?;
    let todo: Vec<u32> = all
        .iter()
        .copied()
        .filter(|&s| from.is_none_or(|f| s >= f))
        .collect();
    rep.next_segment = all
        .last()
        .map_or(from.unwrap_or(0), |l| l + 1)
        .max(from.unwrap_or(0));
    if todo.is_empty() {
        return Ok(());
    }
    let last = *todo.last().unwrap_or(&0);
    rep.first_segment = todo[0];
    rep.last_segment = last;
    tracing::info!(
        segments = todo.len(),
        first = todo[0],
        last,
        "Replaying WAL"
    );
    // Series whose record names labels that already have another ref (a series removed and
    // re-created before the last checkpoint): later samples follow the alias.
    let mut alias: AHashMap<SeriesRef, SeriesRef> = AHashMap::new();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<wal::Segment, TsdbError>>(1);
    std::thread::scope(|scope| {
        let reader_dir = wal_dir.clone();
        let reader_todo = todo.clone();
        scope.spawn(move || {
            for n in reader_todo {
                if tx.send(wal::read_segment(&reader_dir, n)).is_err() {
                    return;
                }
            }
        });
        for seg in rx {
            let seg = seg?;
            let started = Instant::now();
            let mut recs = record::Records::new(&seg.bytes, record::wal_type);
            let mut malformed = false;
            let mut unpacked = Vec::new();
            for (kind, payload) in recs.by_ref() {
                let Some((kind, payload)) = record::plain(kind, payload, &mut unpacked) else {
                    malformed = true;
                    continue;
                };
                // Label pairs borrowed from this record's payload.
                let mut scratch = Vec::new();
                let ok = match kind {
                    record::SERIES => record::decode_series(payload, &mut scratch, |r, ls| {
                        rep.series_records += 1;
                        let labels = Labels::from_pairs(ls.iter().copied());
                        if let Ok((s, _)) = head.get_or_create(&labels, Some(r)) {
                            s.logged.store(true, std::sync::atomic::Ordering::Relaxed);
                            if s.r != r {
                                alias.insert(r, s.r);
                            }
                        }
                    }),
                    record::SAMPLES | record::SAMPLES_INT | record::SAMPLES_DEC => {
                        let mut cached: Option<(SeriesRef, std::sync::Arc<_>)> = None;
                        let mut tally = Tally::default();
                        let ok = record::decode_samples(kind, payload, |r, t, v| {
                            // Aliases are rare: no hash lookup per sample when there are none.
                            let r = if alias.is_empty() {
                                r
                            } else {
                                alias.get(&r).copied().unwrap_or(r)
                            };
                            if cached.as_ref().is_none_or(|c| c.0 != r) {
                                cached = head.series(r).map(|s| (r, s));
                            }
                            match &cached {
                                Some((_, s)) => {
                                    head.apply(s, t, v, &mut tally);
                                    rep.samples += 1;
                                }
                                None => rep.unknown_refs += 1,
                            }
                        });
                        head.flush_tally(&mut tally);
                        ok
                    }
                    record::HISTOGRAMS => {
                        let mut tally = Tally::default();
                        let ok = record::decode_histograms(payload, |r, t, h| {
                            let r = alias.get(&r).copied().unwrap_or(r);
                            match head.series(r) {
                                Some(s) => {
                                    head.apply_histogram(&s, t, &h, &mut tally);
                                    rep.samples += 1;
                                }
                                None => rep.unknown_refs += 1,
                            }
                        });
                        head.flush_tally(&mut tally);
                        ok
                    }
                    record::START_TIMESTAMPS => {
                        record::decode_start_timestamps(payload, |r, t, st| {
                            let r = alias.get(&r).copied().unwrap_or(r);
                            if let Some(s) = head.series(r) {
                                s.data.lock().set_st(t, st);
                            }
                        })
                    }
                    record::TOMBSTONES => record::decode_tombstones(payload, |r, mint, maxt| {
                        let r = alias.get(&r).copied().unwrap_or(r);
                        if let Some(s) = head.series(r) {
                            s.data.lock().delete_range(mint, maxt);
                        }
                    }),
                    _ => Some(()),
                };
                if ok.is_none() {
                    // A record with a good checksum but a bad body: written by a bug, not a
                    // crash. Skip it and keep going.
                    malformed = true;
                }
            }
            if malformed {
                rep.corruptions += 1;
                tracing::warn!(segment = seg.number, "Skipped malformed WAL record(s)");
            }
            rep.segments += 1;
            if let Some(torn) = &recs.torn {
                rep.corruptions += 1;
                let good = recs.good_len();
                if *torn == record::Torn::Short && seg.number < last {
                    // A record cut short at the end of a segment that has a successor: left
                    // by a write that failed (disk full) and could not be cut off, after which
                    // the writer started a new segment (wal/mod.rs). What follows was written
                    // after it, so it is kept.
                    tracing::warn!(
                        segment = seg.number,
                        offset = good,
                        "WAL segment ends in a torn record left by a failed write: truncating it there and going on with the next segment"
                    );
                    wal::repair(fs, &wal_dir, seg.number, good, &[])?;
                    continue;
                }
                tracing::warn!(
                    segment = seg.number,
                    offset = good,
                    reason = %torn,
                    "WAL corruption: truncating the segment at the last good record and dropping later segments"
                );
                wal::repair(fs, &wal_dir, seg.number, good, &all)?;
                rep.next_segment = seg.number + 1;
                return Ok(());
            }
            tracing::info!(
                segment = seg.number,
                max_segment = last,
                duration = ?started.elapsed(),
                "WAL segment loaded"
            );
        }
        Ok(())
    })?;
    if rep.unknown_refs > 0 {
        tracing::warn!(
            samples = rep.unknown_refs,
            "WAL samples for unknown series were skipped"
        );
    }
    Ok(())
}
