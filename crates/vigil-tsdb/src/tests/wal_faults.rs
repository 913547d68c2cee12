//! A full disk under the WAL (issue 20): a write that stores part of a batch and then fails
//! with `ENOSPC`, injected through the TSDB's file layer (`crate::fs`). Every acknowledged
//! commit must come back after a crash, with no corruption reported, and the failure must be
//! counted and logged.

use super::{dump, opts, series, tempdir};
use crate::fs::{Fs, FsFile, OsFs};
use crate::{Tsdb, TsdbOptions};
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use vigil_model::{Appendable, StorageError};

/// What the fake disk does next.
#[derive(Debug, Default)]
struct Faults {
    /// The next write stores this many bytes and returns; the disk is then full.
    partial_write: Option<usize>,
    /// Writes fail with `ENOSPC`, storing nothing.
    full: bool,
    fail_truncate: bool,
    fail_create: bool,
}

#[derive(Debug, Clone, Default)]
struct FaultFs(Arc<Mutex<Faults>>);

struct FaultFile {
    file: File,
    faults: Arc<Mutex<Faults>>,
}

fn enospc() -> std::io::Error {
    std::io::Error::from_raw_os_error(28)
}

/// Faults apply to WAL segments (`wal/`) only; everything else goes to [`OsFs`].
impl Fs for FaultFs {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>> {
        if !is_wal(path) {
            return OsFs.create(path);
        }
        if self.0.lock().fail_create {
            return Err(enospc());
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)?;
        Ok(Box::new(FaultFile {
            file,
            faults: Arc::clone(&self.0),
        }))
    }

    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn FsFile>> {
        if !is_wal(path) {
            return OsFs.open_append(path);
        }
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))?;
        Ok(Box::new(FaultFile {
            file,
            faults: Arc::clone(&self.0),
        }))
    }

    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        OsFs.create_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        OsFs.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        OsFs.remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        OsFs.remove_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        OsFs.sync_dir(path)
    }
}

fn is_wal(path: &Path) -> bool {
    path.parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "wal")
}

impl FsFile for FaultFile {
    fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
        let mut f = self.faults.lock();
        if let Some(n) = f.partial_write.take() {
            // A short write, as the kernel does when the disk fills up mid-way.
            let n = n.min(buf.len());
            Write::write_all(&mut &self.file, &buf[..n])?;
            f.full = true;
            return Ok(n);
        }
        if f.full {
            return Err(enospc());
        }
        Write::write(&mut &self.file, buf)
    }

    fn truncate(&self, len: u64) -> std::io::Result<()> {
        if self.faults.lock().fail_truncate {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        FsFile::truncate(&self.file, len)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&self) -> std::io::Result<()> {
        self.file.sync_all()
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        FsFile::read_exact_at(&self.file, buf, offset)
    }

    fn size(&self) -> std::io::Result<u64> {
        FsFile::size(&self.file)
    }
}

/// One commit of `n` series (`series(0..n)`) at `t`.
fn commit(db: &Tsdb, t: i64, n: usize) -> Result<(), StorageError> {
    let mut a = db.appender();
    for i in 0..n {
        a.append(None, &series(i), t, (t + i as i64) as f64)
            .unwrap();
    }
    a.commit()
}

fn assert_disk_full(r: Result<(), StorageError>) {
    match r {
        Err(StorageError::Io { kind, message }) => {
            assert_eq!(kind, std::io::ErrorKind::StorageFull, "{message}");
            assert!(message.contains("No space left on device"), "{message}");
        }
        other => panic!("commit on a full disk: {other:?}"),
    }
}

/// Drops `db` without closing it (SIGKILL), reopens `dir` on the real file system and checks
/// that exactly `acked` came back. Returns the reopened TSDB.
fn crash_and_check(db: Tsdb, dir: &Path, acked: &[(String, vigil_model::Sample)]) -> Tsdb {
    let held = dump(&db);
    assert!(
        held == acked,
        "the head holds {} samples, {} acknowledged",
        held.len(),
        acked.len()
    );
    drop(db);
    let db = Tsdb::open(dir, opts()).unwrap();
    let back = dump(&db);
    assert!(
        back == acked,
        "{} of {} acknowledged samples back after the crash",
        back.len(),
        acked.len()
    );
    db
}

/// The defect: a partial write on a full disk stayed in the segment, later commits were
/// appended behind it, and after a crash replay stopped at the torn record (`corruptions=1`)
/// and lost everything after it.
#[test]
fn torn_wal_record_after_disk_full_is_cut_off() {
    let dir = tempdir("wal-enospc");
    let fs = FaultFs::default();
    let db = Tsdb::open(
        &dir,
        TsdbOptions {
            fs: Arc::new(fs.clone()),
            ..opts()
        },
    )
    .unwrap();
    for t in 0..20 {
        commit(&db, t * 1000, 10).unwrap();
    }
    // The disk fills up 30 bytes into a commit that also brings a new series (its series
    // record is among the torn bytes), then stays full for another commit.
    fs.0.lock().partial_write = Some(30);
    assert_disk_full(commit(&db, 20_000, 11));
    assert_disk_full(commit(&db, 21_000, 11));
    // Space returns: ingest resumes, the new series included.
    fs.0.lock().full = false;
    for t in 22..40 {
        commit(&db, t * 1000, 11).unwrap();
    }
    assert_eq!(db.stats().wal_writes_failed.load(Ordering::Relaxed), 2);
    let acked = dump(&db);
    assert_eq!(acked.len(), 20 * 10 + 18 * 11);
    let db = crash_and_check(db, &dir, &acked);
    assert_eq!(db.stats().wal_corruptions.load(Ordering::Relaxed), 0);
    // And once more, across the new run's segment.
    commit(&db, 40_000, 11).unwrap();
    let acked = dump(&db);
    let db = crash_and_check(db, &dir, &acked);
    assert_eq!(db.stats().wal_corruptions.load(Ordering::Relaxed), 0);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// When the torn tail cannot be truncated either, later records go into a new segment;
/// replay cuts the tail off that segment and keeps going.
#[test]
fn torn_wal_tail_that_cannot_be_truncated_is_left_behind_a_new_segment() {
    let dir = tempdir("wal-enospc-notrunc");
    let fs = FaultFs::default();
    let db = Tsdb::open(
        &dir,
        TsdbOptions {
            fs: Arc::new(fs.clone()),
            ..opts()
        },
    )
    .unwrap();
    for t in 0..5 {
        commit(&db, t * 1000, 4).unwrap();
    }
    {
        let mut f = fs.0.lock();
        f.partial_write = Some(17);
        f.fail_truncate = true;
    }
    assert_disk_full(commit(&db, 5_000, 5));
    fs.0.lock().full = false;
    for t in 6..10 {
        commit(&db, t * 1000, 5).unwrap();
    }
    let acked = dump(&db);
    assert_eq!(acked.len(), 5 * 4 + 4 * 5);
    let segments = crate::wal::list_segments(&db.wal_dir()).unwrap();
    assert_eq!(segments, [0, 1], "a new segment after the torn one");
    let db = crash_and_check(db, &dir, &acked);
    // The torn tail is reported once, and cut off the segment.
    assert_eq!(db.stats().wal_corruptions.load(Ordering::Relaxed), 1);
    drop(db);
    let db = Tsdb::open(&dir, opts()).unwrap();
    assert_eq!(dump(&db), acked);
    assert_eq!(db.stats().wal_corruptions.load(Ordering::Relaxed), 0);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Once truncation works again, the next commit cuts the failed tail off the older segment
/// (found by the property test in `disk_faults.rs`: a batch written whole whose fsync failed
/// stayed in the old segment for good, and every restart brought its refused commit back).
#[test]
fn failed_tail_left_in_an_older_segment_is_cut_off_once_truncation_works() {
    let dir = tempdir("wal-enospc-retry");
    let fs = FaultFs::default();
    let db = Tsdb::open(
        &dir,
        TsdbOptions {
            fs: Arc::new(fs.clone()),
            ..opts()
        },
    )
    .unwrap();
    for t in 0..5 {
        commit(&db, t * 1000, 4).unwrap();
    }
    {
        let mut f = fs.0.lock();
        f.partial_write = Some(17);
        f.fail_truncate = true;
    }
    assert_disk_full(commit(&db, 5_000, 5));
    {
        let mut f = fs.0.lock();
        f.full = false;
        f.fail_truncate = false;
    }
    for t in 6..10 {
        commit(&db, t * 1000, 5).unwrap();
    }
    let acked = dump(&db);
    let db = crash_and_check(db, &dir, &acked);
    // Nothing torn is left for replay to find.
    assert_eq!(db.stats().wal_corruptions.load(Ordering::Relaxed), 0);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// With neither a truncation nor a new segment possible, commits stay refused (never
/// written behind the torn record) until one of them works again.
#[test]
fn wal_refuses_writes_while_a_torn_tail_cannot_be_removed() {
    let dir = tempdir("wal-enospc-stuck");
    let fs = FaultFs::default();
    let db = Tsdb::open(
        &dir,
        TsdbOptions {
            fs: Arc::new(fs.clone()),
            ..opts()
        },
    )
    .unwrap();
    commit(&db, 0, 3).unwrap();
    {
        let mut f = fs.0.lock();
        f.partial_write = Some(5);
        f.fail_truncate = true;
        f.fail_create = true;
    }
    assert_disk_full(commit(&db, 1000, 3));
    fs.0.lock().full = false;
    // Space is back, but the torn bytes are still where the next record would go.
    assert!(commit(&db, 2000, 3).is_err());
    fs.0.lock().fail_create = false;
    commit(&db, 3000, 3).unwrap();
    assert_eq!(db.stats().wal_writes_failed.load(Ordering::Relaxed), 2);
    let acked = dump(&db);
    assert_eq!(acked.len(), 6);
    let db = crash_and_check(db, &dir, &acked);
    assert_eq!(db.stats().wal_corruptions.load(Ordering::Relaxed), 1);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `Write` into a shared buffer, for capturing log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The defect: failed appends were logged at debug level only and no metric counted them,
/// so a full disk was nearly invisible.
#[test]
fn failed_wal_writes_are_counted_and_logged_at_error_level() {
    let dir = tempdir("wal-enospc-log");
    let fs = FaultFs::default();
    let db = Tsdb::open(
        &dir,
        TsdbOptions {
            fs: Arc::new(fs.clone()),
            ..opts()
        },
    )
    .unwrap();
    commit(&db, 0, 2).unwrap();
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::ERROR)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        fs.0.lock().full = true;
        for t in 1..=5 {
            assert_disk_full(commit(&db, t * 1000, 2));
        }
    });
    assert_eq!(db.stats().wal_writes_failed.load(Ordering::Relaxed), 5);
    let log = String::from_utf8(out.0.lock().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    // Rate-limited: one line for five failures within 10 s.
    assert_eq!(lines.len(), 1, "{log}");
    let wal_dir = dir.join("wal");
    for part in [
        "ERROR",
        "WAL write failed: ",
        "No space left on device (os error 28)",
        &format!("{}", wal_dir.join("00000000").display()),
        "were not stored",
        &format!("free space in {}", wal_dir.display()),
    ] {
        assert!(lines[0].contains(part), "{part:?} missing from {log}");
    }
    // Space returns: commits succeed and nothing more is counted.
    fs.0.lock().full = false;
    commit(&db, 6000, 2).unwrap();
    assert_eq!(db.stats().wal_writes_failed.load(Ordering::Relaxed), 5);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn log_limiter_holds_back_and_counts() {
    use crate::wal::LogLimiter;
    use std::time::{Duration, Instant};
    let mut l = LogLimiter::new(Duration::from_secs(10));
    let t0 = Instant::now();
    assert_eq!(l.ready(t0), Some(0));
    assert_eq!(l.ready(t0 + Duration::from_secs(1)), None);
    assert_eq!(l.ready(t0 + Duration::from_secs(9)), None);
    assert_eq!(l.ready(t0 + Duration::from_secs(10)), Some(2));
    assert_eq!(l.ready(t0 + Duration::from_secs(11)), None);
}
