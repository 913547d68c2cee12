//! Tailing vigil's WAL (`docs/format/wal.md`) from a saved position: the TSDB's side of the
//! [`vigil_model::wal`] seam that remote write reads through.
//!
//! The writer appends one commit batch with one `write(2)` and never appends to a segment
//! after it has started the next one. So, in the newest segment, an incomplete record at the
//! end is a write in progress ("not yet written": read again later); in an older segment it is
//! a torn tail left by a crash (skipped, counted). A segment is finished once a later segment
//! exists; the check is made *before* reading to the end, so no bytes written after it can be
//! missed. Segments deleted before they were read (the kept-WAL bound of `WalHolds`) are
//! skipped, counted and logged. An incomplete record held at the end of the newest segment is
//! compared with the file before waiting on: a write that failed partway is cut off the file
//! (wal/mod.rs), and the record is then read again from its start, not glued to what follows.

use super::{self as wal, record};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use vigil_model::wal::{WalPos as Pos, WalReader, WalRecord, WalStep as Step};
use vigil_model::{Labels, SeriesRef, Timestamp};

/// Raw records (kind, payload) of the log from a position on.
pub struct Tailer {
    dir: PathBuf,
    pos: Pos,
    file: Option<File>,
    /// Bytes read from the file past `pos.offset`, not yet consumed as records.
    buf: Vec<u8>,
    /// Segments found missing (deleted before they were read).
    pub lost_segments: u64,
    /// Torn tails and corrupt records skipped in finished segments.
    pub skipped_tails: u64,
}

impl Tailer {
    pub fn new(dir: &Path, pos: Pos) -> Tailer {
        Tailer {
            dir: dir.to_path_buf(),
            pos,
            file: None,
            buf: Vec::new(),
            lost_segments: 0,
            skipped_tails: 0,
        }
    }

    /// The start of the next record to be returned.
    pub fn position(&self) -> Pos {
        self.pos
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn move_to(&mut self, segment: u32) {
        self.pos = Pos { segment, offset: 0 };
        self.file = None;
        self.buf.clear();
    }

    /// Opens the segment of `pos`, skipping missing ones. Returns false when there is nothing
    /// to read yet.
    fn open(&mut self, segments: &[u32]) -> std::io::Result<bool> {
        if self.file.is_some() {
            return Ok(true);
        }
        let path = self.dir.join(wal::segment_name(self.pos.segment));
        match File::open(&path) {
            Ok(mut f) => {
                let len = f.metadata()?.len();
                if self.pos.offset > len {
                    // Cut shorter by a repair after a crash: what we wanted is gone.
                    if let Some(&next) = segments.iter().find(|&&s| s > self.pos.segment) {
                        tracing::warn!(
                            segment = self.pos.segment,
                            offset = self.pos.offset,
                            len,
                            "WAL segment is shorter than the saved remote-write position; going on with the next segment"
                        );
                        self.skipped_tails += 1;
                        self.move_to(next);
                        return self.open(segments);
                    }
                    return Ok(false);
                }
                f.seek(SeekFrom::Start(self.pos.offset))?;
                self.file = Some(f);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match segments.iter().find(|&&s| s > self.pos.segment) {
                    Some(&next) => {
                        let lost = next - self.pos.segment;
                        self.lost_segments += lost as u64;
                        tracing::error!(
                            from = self.pos.segment,
                            to = next,
                            "WAL segments needed by remote write are gone (deleted past the kept-WAL bound, or removed by hand); their samples will not be sent"
                        );
                        self.move_to(next);
                        self.open(segments)
                    }
                    None => Ok(false),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Reads up to `max_bytes` of new data and calls `on_record(kind, payload, end)` for each
    /// complete record, `end` being the position just after it.
    pub fn step(
        &mut self,
        max_bytes: usize,
        mut on_record: impl FnMut(u8, &[u8], Pos),
    ) -> std::io::Result<Step> {
        let mut step = Step::default();
        let segments = wal::list_segments(&self.dir).map_err(std::io::Error::other)?;
        if !self.open(&segments)? {
            return Ok(step);
        }
        // Decided before reading: if a later segment exists now, every byte of this one
        // has been written.
        let finished = segments.iter().any(|&s| s > self.pos.segment);
        let Some(file) = self.file.as_mut() else {
            return Ok(step);
        };
        let old = self.buf.len();
        self.buf.resize(old + max_bytes, 0);
        let mut filled = old;
        while filled < self.buf.len() {
            let n = file.read(&mut self.buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        let eof = filled < self.buf.len();
        self.buf.truncate(filled);
        step.bytes = (filled - old) as u64;

        let mut recs = record::Records::new(&self.buf, record::wal_type);
        let base = self.pos.offset;
        let segment = self.pos.segment;
        while let Some((kind, payload)) = recs.next() {
            let end = Pos {
                segment,
                offset: base + recs.good_len() as u64,
            };
            on_record(kind, payload, end);
            step.records += 1;
        }
        let used = recs.good_len();
        let torn = recs.torn.clone();
        self.buf.drain(..used);
        self.pos.offset += used as u64;

        if eof && finished {
            if !self.buf.is_empty() {
                self.skipped_tails += 1;
                tracing::warn!(
                    segment,
                    offset = self.pos.offset,
                    bytes = self.buf.len(),
                    reason = %torn.map_or("record cut short".to_string(), |t| t.to_string()),
                    "Skipping the unreadable tail of a finished WAL segment"
                );
            }
            if let Some(&next) = segments.iter().find(|&&s| s > segment) {
                self.move_to(next);
                step.next_segment = true;
            }
        } else if eof && !self.buf.is_empty() && self.tail_rewritten()? {
            // The incomplete record we hold was cut off the file (a write that failed
            // partway, wal/mod.rs) and other bytes are there now: read from its start again.
            tracing::debug!(
                segment,
                offset = self.pos.offset,
                "WAL tail was rewritten; reading it again"
            );
            self.buf.clear();
            if let Some(f) = self.file.as_mut() {
                f.seek(SeekFrom::Start(self.pos.offset))?;
            }
        } else if let Some(t) = torn
            && t != record::Torn::Short
            && !eof
        {
            // A bad record in the middle of the data read so far: wait until the segment is
            // finished, then skip its rest (above).
            tracing::debug!(segment, offset = self.pos.offset, reason = %t, "Unreadable WAL record; waiting");
        }
        Ok(step)
    }

    /// Whether the file no longer holds the incomplete bytes buffered at `pos` (checked at
    /// the end of the segment being written, so rarely). Leaves the read position as it was.
    fn tail_rewritten(&mut self) -> std::io::Result<bool> {
        let Some(f) = self.file.as_mut() else {
            return Ok(false);
        };
        let end = f.stream_position()?;
        f.seek(SeekFrom::Start(self.pos.offset))?;
        let mut now = vec![0; self.buf.len()];
        let mut filled = 0;
        while filled < now.len() {
            let n = f.read(&mut now[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        f.seek(SeekFrom::Start(end))?;
        Ok(filled < now.len() || now != self.buf)
    }

    /// Bytes in the WAL after the current position (an estimate of the backlog).
    pub fn bytes_behind(&self) -> u64 {
        let Ok(segs) = wal::list_segments(&self.dir) else {
            return 0;
        };
        let mut total = 0u64;
        for s in segs.into_iter().filter(|&s| s >= self.pos.segment) {
            let len = std::fs::metadata(self.dir.join(wal::segment_name(s))).map_or(0, |m| m.len());
            total += if s == self.pos.segment {
                len.saturating_sub(self.pos.offset)
            } else {
                len
            };
        }
        total
    }
}

/// The newest segment of `dir` (the one being written), if any.
pub fn newest_segment(dir: &Path) -> Option<u32> {
    wal::list_segments(dir).ok()?.last().copied()
}

/// A [`Tailer`] that decodes records for [`WalReader`] users, into buffers reused from record
/// to record (no allocation per sample).
pub struct RecordReader {
    tailer: Tailer,
    series: Vec<(SeriesRef, Labels)>,
    samples: Vec<(SeriesRef, Timestamp, f64)>,
    hists: Vec<(
        SeriesRef,
        Timestamp,
        std::sync::Arc<vigil_model::histogram::FloatHistogram>,
    )>,
    /// A compressed record's payload, decompressed.
    unpacked: Vec<u8>,
}

impl RecordReader {
    pub fn new(dir: &Path, pos: Pos) -> RecordReader {
        RecordReader {
            tailer: Tailer::new(dir, pos),
            series: Vec::new(),
            samples: Vec::new(),
            hists: Vec::new(),
            unpacked: Vec::new(),
        }
    }
}

impl WalReader for RecordReader {
    fn step(
        &mut self,
        max_bytes: usize,
        on: &mut dyn FnMut(WalRecord<'_>, Pos),
    ) -> std::io::Result<Step> {
        let (series, samples, hists) = (&mut self.series, &mut self.samples, &mut self.hists);
        let unpacked = &mut self.unpacked;
        self.tailer.step(max_bytes, |kind, payload, end| {
            let Some((kind, payload)) = record::plain(kind, payload, unpacked) else {
                on(WalRecord::Malformed("compressed"), end);
                return;
            };
            match kind {
                record::SERIES => {
                    series.clear();
                    let mut scratch = Vec::new();
                    let ok = record::decode_series(payload, &mut scratch, |r, ls| {
                        series.push((r, Labels::from_pairs(ls.iter().copied())));
                    });
                    on(WalRecord::Series(series), end);
                    if ok.is_none() {
                        on(WalRecord::Malformed("series"), end);
                    }
                }
                record::SAMPLES | record::SAMPLES_INT | record::SAMPLES_DEC => {
                    samples.clear();
                    let ok =
                        record::decode_samples(kind, payload, |r, t, v| samples.push((r, t, v)));
                    on(WalRecord::Samples(samples), end);
                    if ok.is_none() {
                        on(WalRecord::Malformed("samples"), end);
                    }
                }
                record::HISTOGRAMS => {
                    hists.clear();
                    let ok = record::decode_histograms(payload, |r, t, h| {
                        hists.push((r, t, std::sync::Arc::new(h)))
                    });
                    on(WalRecord::Histograms(hists), end);
                    if ok.is_none() {
                        on(WalRecord::Malformed("histograms"), end);
                    }
                }
                _ => on(WalRecord::Other, end),
            }
        })
    }

    fn position(&self) -> Pos {
        self.tailer.position()
    }

    fn bytes_behind(&self) -> u64 {
        self.tailer.bytes_behind()
    }

    fn lost_segments(&self) -> u64 {
        self.tailer.lost_segments
    }

    fn skipped_tails(&self) -> u64 {
        self.tailer.skipped_tails
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn rec(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        let s = record::begin(&mut b, kind);
        b.extend_from_slice(payload);
        record::finish(&mut b, s);
        b
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("vigil-remote-tail-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn collect(t: &mut Tailer) -> Vec<(u8, Vec<u8>, Pos)> {
        let mut out = Vec::new();
        loop {
            let s = t.step(7, |k, p, e| out.push((k, p.to_vec(), e))).unwrap();
            if !s.progressed() {
                return out;
            }
        }
    }

    #[test]
    fn partial_record_in_the_current_segment_waits_then_completes() {
        let dir = tempdir("partial");
        let r1 = rec(record::SAMPLES, b"one");
        let r2 = rec(record::SAMPLES, b"two-two");
        let mut f = File::create(dir.join(wal::segment_name(0))).unwrap();
        f.write_all(&r1).unwrap();
        f.write_all(&r2[..5]).unwrap();
        let mut t = Tailer::new(&dir, Pos::default());
        let got = collect(&mut t);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b"one");
        assert_eq!(t.position().offset, r1.len() as u64);
        f.write_all(&r2[5..]).unwrap();
        let got = collect(&mut t);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b"two-two");
        assert_eq!(got[0].2.offset, (r1.len() + r2.len()) as u64);
        assert_eq!(t.skipped_tails, 0);
    }

    /// A write that failed partway on a full disk is cut off the segment and later records
    /// take its place: a reader that held the torn bytes reads the new ones from the start.
    #[test]
    fn torn_tail_cut_off_after_a_failed_write_is_read_again() {
        let dir = tempdir("rewritten");
        let r1 = rec(record::SAMPLES, b"one");
        let torn = rec(record::SAMPLES, b"never-acknowledged");
        let r2 = rec(record::SAMPLES, b"two-two-two-two-two-two");
        let path = dir.join(wal::segment_name(0));
        let mut f = File::create(&path).unwrap();
        f.write_all(&r1).unwrap();
        f.write_all(&torn[..12]).unwrap();
        let mut t = Tailer::new(&dir, Pos::default());
        let got = collect(&mut t);
        assert_eq!(got.len(), 1);
        // The writer truncates, then appends the next batch at the same offset.
        f.set_len(r1.len() as u64).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&r2).unwrap();
        let got = collect(&mut t);
        let payloads: Vec<&[u8]> = got.iter().map(|g| &g.1[..]).collect();
        assert_eq!(payloads, [&b"two-two-two-two-two-two"[..]]);
        assert_eq!(t.position().offset, (r1.len() + r2.len()) as u64);
        assert_eq!(t.skipped_tails, 0);
    }

    #[test]
    fn torn_tail_of_a_finished_segment_is_skipped_and_missing_segments_counted() {
        let dir = tempdir("torn");
        let r1 = rec(record::SAMPLES, b"a");
        let mut f = File::create(dir.join(wal::segment_name(3))).unwrap();
        f.write_all(&r1).unwrap();
        f.write_all(&r1[..4]).unwrap();
        std::fs::write(dir.join(wal::segment_name(5)), rec(record::SERIES, b"b")).unwrap();
        // Start at segment 2, which is gone.
        let mut t = Tailer::new(
            &dir,
            Pos {
                segment: 2,
                offset: 0,
            },
        );
        let got = collect(&mut t);
        let payloads: Vec<&[u8]> = got.iter().map(|g| &g.1[..]).collect();
        assert_eq!(payloads, [&b"a"[..], &b"b"[..]]);
        assert_eq!(t.lost_segments, 1);
        assert_eq!(t.skipped_tails, 1);
        assert_eq!(t.position().segment, 5);
        // Resuming from a saved position reads only what follows it.
        let mut t2 = Tailer::new(&dir, got[0].2);
        let again = collect(&mut t2);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].1, b"b");
    }

    /// A histograms record is passed on decoded, between the records around it.
    #[test]
    fn histogram_records_are_passed_on() {
        use vigil_model::wal::{WalReader, WalRecord};
        let dir = tempdir("hist");
        let h = vigil_model::histogram::notation::parse_histogram(
            "{{schema:0 sum:1 count:2 buckets:[1 1]}}",
        )
        .unwrap()
        .0;
        let mut b = Vec::new();
        record::put_samples_record(&mut b, [(1u64, 10i64, 1.0f64)].into_iter());
        record::put_histograms_record(&mut b, [(1u64, 20i64, &h)].into_iter());
        record::put_samples_record(&mut b, [(1u64, 30i64, 3.0f64)].into_iter());
        std::fs::write(dir.join(wal::segment_name(0)), &b).unwrap();
        let mut r = RecordReader::new(&dir, Pos::default());
        let mut got = Vec::new();
        loop {
            let s = r
                .step(1 << 20, &mut |rec, _| {
                    got.push(match rec {
                        WalRecord::Samples(s) => format!("samples {:?}", s),
                        WalRecord::Histograms(h) => {
                            format!(
                                "histograms {:?}",
                                h.iter().map(|x| (x.0, x.1, x.2.count)).collect::<Vec<_>>()
                            )
                        }
                        other => format!("{other:?}"),
                    })
                })
                .unwrap();
            if !s.progressed() {
                break;
            }
        }
        assert_eq!(
            got,
            [
                "samples [(1, 10, 1.0)]",
                "histograms [(1, 20, 2.0)]",
                "samples [(1, 30, 3.0)]"
            ]
        );
        assert_eq!(r.skipped_tails(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pos_packs() {
        let p = Pos {
            segment: 12345,
            offset: (1 << 39) + 7,
        };
        assert_eq!(Pos::unpack(p.pack()), p);
        assert!(
            Pos {
                segment: 1,
                offset: 9
            } < Pos {
                segment: 2,
                offset: 0
            }
        );
    }
}
