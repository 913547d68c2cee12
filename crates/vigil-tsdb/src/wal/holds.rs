//! Readers of the log that need segments kept past a checkpoint.
//!
//! A checkpoint (the head snapshot) makes every older WAL segment redundant for recovery, but
//! a remote-write queue that tails the log may not have sent them yet. Each such reader holds
//! a [`WalHold`] naming the oldest segment it still needs; the checkpoint keeps segments from
//! the lowest hold on, up to [`WalHolds::set_max_bytes`] of them. Past the bound the oldest are
//! deleted anyway, counted in [`WalHolds::forced_deletions`] and logged as errors: a receiver
//! that stays down forever must not fill the disk.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// One reader's low-water mark: the oldest segment it still needs.
#[derive(Debug)]
pub struct WalHold {
    name: String,
    segment: AtomicU64,
}

impl WalHold {
    /// Moves the mark (normally forward, as the reader progresses).
    pub fn set(&self, segment: u32) {
        self.segment.store(segment as u64, Ordering::Relaxed);
    }

    pub fn segment(&self) -> u32 {
        self.segment.load(Ordering::Relaxed) as u32
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl vigil_model::wal::WalHold for WalHold {
    fn set(&self, segment: u32) {
        WalHold::set(self, segment)
    }

    fn segment(&self) -> u32 {
        WalHold::segment(self)
    }
}

/// The registry of holds of one TSDB. Holds are released by dropping them.
#[derive(Debug)]
pub struct WalHolds {
    holds: Mutex<Vec<Weak<WalHold>>>,
    max_bytes: AtomicU64,
    /// Segments deleted although a hold still needed them.
    pub forced_deletions: AtomicU64,
}

impl Default for WalHolds {
    fn default() -> Self {
        WalHolds {
            holds: Mutex::new(Vec::new()),
            max_bytes: AtomicU64::new(DEFAULT_MAX_BYTES),
            forced_deletions: AtomicU64::new(0),
        }
    }
}

/// Default bound on the bytes of segments kept only for holds: 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

impl WalHolds {
    /// Registers a reader that needs segments from `segment` on.
    pub fn register(&self, name: &str, segment: u32) -> Arc<WalHold> {
        let h = Arc::new(WalHold {
            name: name.to_string(),
            segment: AtomicU64::new(segment as u64),
        });
        let mut holds = self.holds.lock();
        holds.retain(|w| w.strong_count() > 0);
        holds.push(Arc::downgrade(&h));
        h
    }

    /// Bounds the bytes of segments kept only because a hold needs them.
    pub fn set_max_bytes(&self, bytes: u64) {
        self.max_bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes.load(Ordering::Relaxed)
    }

    /// The live holds: (name, segment).
    pub fn list(&self) -> Vec<(String, u32)> {
        self.holds
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|h| (h.name.clone(), h.segment()))
            .collect()
    }

    /// The oldest segment to keep when a checkpoint makes everything before `checkpoint`
    /// redundant, given the existing segments with their sizes (sorted). Segments below the
    /// result are deleted by the caller; the ones a hold still needed are counted and logged.
    pub fn keep_from(&self, checkpoint: u32, segments: &[(u32, u64)]) -> u32 {
        let holds = self.list();
        let Some(lowest) = holds.iter().map(|h| h.1).min() else {
            return checkpoint;
        };
        if lowest >= checkpoint {
            return checkpoint;
        }
        let max = self.max_bytes();
        let mut kept: u64 = segments
            .iter()
            .filter(|(s, _)| *s >= lowest && *s < checkpoint)
            .map(|(_, b)| b)
            .sum();
        let mut from = lowest;
        for &(s, bytes) in segments {
            if s < lowest || s >= checkpoint || kept <= max {
                continue;
            }
            kept -= bytes;
            from = s + 1;
            self.forced_deletions.fetch_add(1, Ordering::Relaxed);
            let needed_by: Vec<&str> = holds
                .iter()
                .filter(|h| h.1 <= s)
                .map(|h| h.0.as_str())
                .collect();
            tracing::error!(
                segment = s,
                bytes,
                max_kept_bytes = max,
                needed_by = ?needed_by,
                "Deleting a WAL segment that a remote-write queue has not sent yet: the WAL kept for remote write exceeds its bound (--storage.remote.wal-keep-max-size); the samples in it will never be sent"
            );
        }
        from.min(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_holds_keeps_nothing_older_than_the_checkpoint() {
        let h = WalHolds::default();
        assert_eq!(h.keep_from(5, &[(3, 10), (4, 10), (5, 0)]), 5);
    }

    #[test]
    fn the_lowest_live_hold_wins_and_dropped_holds_are_released() {
        let h = WalHolds::default();
        let a = h.register("a", 3);
        let b = h.register("b", 4);
        let segs = [(2, 10), (3, 10), (4, 10), (5, 0)];
        assert_eq!(h.keep_from(5, &segs), 3);
        drop(a);
        assert_eq!(h.keep_from(5, &segs), 4);
        b.set(9);
        assert_eq!(h.keep_from(5, &segs), 5);
        assert_eq!(h.forced_deletions.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_bound_deletes_the_oldest_needed_segments_and_counts_them() {
        let h = WalHolds::default();
        h.set_max_bytes(25);
        let _a = h.register("a", 1);
        let segs = [(1, 10), (2, 10), (3, 10), (4, 10), (5, 0)];
        // 40 bytes needed, 25 allowed: segments 1 and 2 go.
        assert_eq!(h.keep_from(5, &segs), 3);
        assert_eq!(h.forced_deletions.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn checkpoints_keep_held_segments_and_replay_ignores_them() {
        use crate::{Tsdb, TsdbOptions};
        use vigil_model::{Appendable, Labels, Matcher, Queryable, SelectHints};
        let dir = std::env::temp_dir().join(format!("vigil-tsdb-holds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let opts = || TsdbOptions {
            retention_ms: 0,
            ..Default::default()
        };
        let count = |db: &Tsdb| {
            let q = db.querier(i64::MIN, i64::MAX).unwrap();
            let hints = SelectHints {
                start: i64::MIN,
                end: i64::MAX,
            };
            q.select(&[Matcher::equal("__name__", "m")], &hints)
                .unwrap()
                .map(|s| s.samples.count())
                .sum::<usize>()
        };
        let append = |db: &Tsdb, t: i64| {
            let mut a = db.appender();
            a.append(None, &Labels::from_pairs([("__name__", "m")]), t, 1.0)
                .unwrap();
            a.commit().unwrap();
        };
        let db = Tsdb::open(&dir, opts()).unwrap();
        let wal_dir = db.wal_dir();
        append(&db, 1000);
        let hold = db.wal_holds().register("q", 0);
        db.checkpoint().unwrap();
        append(&db, 2000);
        db.checkpoint().unwrap();
        // Segment 0 (and 1) held; the snapshot starts at segment 2.
        let segs = crate::wal::list_segments(&wal_dir).unwrap();
        assert_eq!(segs, [0, 1, 2], "held segments kept");
        assert_eq!(
            db.head().series_labels(1).unwrap().get("__name__"),
            Some("m")
        );
        db.close().unwrap();
        drop(db);
        // Reopening replays from the snapshot, not the held segments: no double counting.
        let db = Tsdb::open(&dir, opts()).unwrap();
        assert_eq!(count(&db), 2);
        let hold2 = db.wal_holds().register("q", hold.segment());
        drop(hold);
        hold2.set(2);
        db.checkpoint().unwrap();
        let segs = crate::wal::list_segments(&wal_dir).unwrap();
        assert!(
            segs.iter().all(|&s| s >= 2),
            "released segments deleted: {segs:?}"
        );
        drop(hold2);
        db.checkpoint().unwrap();
        assert_eq!(count(&db), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
