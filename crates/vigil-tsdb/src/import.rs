//! Backfill: an OpenMetrics file with timestamps becomes blocks, as `promtool tsdb
//! create-blocks-from openmetrics` does.
//!
//! The file is memory-mapped and parsed with the scrape parser; samples go into a private head
//! (no WAL) whose out-of-order window is unbounded, so any sample order is accepted and held
//! compressed (about 1.4 bytes a sample for in-order series). The raw series text of each
//! line maps to its series reference, as the scrape cache does, so a repeated series costs one
//! hash lookup. The head is then written out one block range at a time into the data
//! directory, where a running vigil picks the blocks up at its next maintenance pass.
//!
//! Each block is written as `<ulid>.tmp` and renamed into place, so a killed import leaves
//! blocks whole or absent (the `.tmp` goes at vigil's next start). Running it again writes the
//! same samples into new blocks; the TSDB merges blocks that overlap in time, so each sample
//! ends up stored once.

use crate::block::writer::write_block;
use crate::block::{BlockMeta, Compaction};
use crate::error::TsdbError;
use crate::head::{Head, HeadOptions};
use ahash::AHashMap;
use std::path::Path;
use vigil_exposition::{Entry, Format, Parser};
use vigil_model::{Appendable, Labels, Queryable, SeriesRef};

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub samples: u64,
    pub series: usize,
    /// Samples without a timestamp, skipped (a backfill needs one).
    pub without_timestamp: u64,
    /// Samples refused (duplicates with another value).
    pub refused: u64,
    pub blocks: Vec<BlockMeta>,
}

/// Progress: bytes of input parsed so far, out of the total, and samples so far.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, u64);

/// Imports `file` into blocks of `block_range_ms` under `dir`.
pub fn import_openmetrics_file(
    file: &Path,
    dir: &Path,
    block_range_ms: i64,
    progress: Progress<'_>,
) -> Result<ImportReport, TsdbError> {
    let map = crate::block::map(file)?;
    import_openmetrics(&map, dir, block_range_ms, progress)
}

/// Imports an OpenMetrics body into blocks of `block_range_ms` under `dir`.
pub fn import_openmetrics(
    input: &[u8],
    dir: &Path,
    block_range_ms: i64,
    progress: Progress<'_>,
) -> Result<ImportReport, TsdbError> {
    std::fs::create_dir_all(dir).map_err(|e| crate::error::io_err(dir, e))?;
    let head = Head::new(HeadOptions {
        retention_ms: 0,
        out_of_order_time_window_ms: i64::MAX,
        max_series: 0,
        // The import's head writes no WAL.
        wal_compression: crate::wal::record::WalCompression::None,
    });
    let mut rep = ImportReport::default();
    let mut refs: AHashMap<&[u8], SeriesRef> = AHashMap::new();
    let base = input.as_ptr() as usize;
    let mut app = head.appender();
    let mut in_batch = 0usize;
    for entry in Parser::new(input, Format::OpenMetrics) {
        let entry = entry.map_err(|e| TsdbError::Invalid(format!("parse error: {e}")))?;
        let Entry::Sample(s) = entry else { continue };
        let Some(t) = s.timestamp_ms else {
            rep.without_timestamp += 1;
            continue;
        };
        let cached = refs.get(s.series).copied();
        let labels = if cached.is_some() {
            Labels::empty()
        } else {
            Labels::from_pairs(
                std::iter::once((vigil_model::METRIC_NAME.into(), s.name.clone()))
                    .chain(s.labels()),
            )
        };
        match app.append(cached, &labels, t, s.value) {
            Ok(r) => {
                if cached.is_none() {
                    refs.insert(s.series, r);
                }
                rep.samples += 1;
            }
            Err(_) => rep.refused += 1,
        }
        in_batch += 1;
        if in_batch >= 50_000 {
            app.commit()
                .map_err(|e| TsdbError::Invalid(e.to_string()))?;
            app = head.appender();
            in_batch = 0;
            let done = (s.series.as_ptr() as usize).saturating_sub(base);
            progress(done, input.len(), rep.samples);
        }
    }
    app.commit()
        .map_err(|e| TsdbError::Invalid(e.to_string()))?;
    progress(input.len(), input.len(), rep.samples);
    rep.series = head.num_series();
    let (Some(min), Some(max)) = (head.min_time(), head.max_time()) else {
        return Ok(rep);
    };
    let range = block_range_ms.max(1);
    let mut mint = min.div_euclid(range) * range;
    while mint <= max {
        let maxt = mint.saturating_add(range);
        let q = head
            .querier(mint, maxt - 1)
            .map_err(|e| TsdbError::Invalid(e.to_string()))?;
        let c = Compaction {
            level: 1,
            sources: Vec::new(),
        };
        if let Some((meta, _)) = write_block(&crate::fs::OsFs, dir, q.as_ref(), mint, maxt, c)? {
            rep.blocks.push(meta);
        }
        mint = maxt;
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Tsdb, TsdbOptions};
    use vigil_model::{Matcher, SelectHints};

    #[test]
    fn imports_into_blocks_that_a_running_tsdb_picks_up() {
        let dir = std::env::temp_dir().join(format!("vigil-import-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = Tsdb::open(&dir, TsdbOptions::default()).unwrap();
        let mut body = String::from("# TYPE http_requests counter\n");
        // Two series over 5 hours, 1 min apart, in file order series by series.
        for code in ["200", "500"] {
            for i in 0..300 {
                body.push_str(&format!(
                    "http_requests_total{{code=\"{code}\"}} {i} {}\n",
                    1_700_000_000 + i * 60
                ));
            }
        }
        body.push_str("no_timestamp 1\n# EOF\n");
        let mut calls = 0;
        let rep = import_openmetrics(body.as_bytes(), &dir, 2 * 3600 * 1000, &mut |_, _, _| {
            calls += 1
        })
        .unwrap();
        assert_eq!(rep.samples, 600);
        assert_eq!(rep.series, 2);
        assert_eq!(rep.without_timestamp, 1);
        assert!(rep.blocks.len() >= 3, "{:?}", rep.blocks);
        assert!(calls >= 1);
        assert_eq!(db.reload_blocks().unwrap(), rep.blocks.len());
        let q = db.querier(i64::MIN, i64::MAX).unwrap();
        let set: Vec<_> = q
            .select(
                &[Matcher::equal("__name__", "http_requests_total")],
                &SelectHints {
                    start: i64::MIN,
                    end: i64::MAX,
                },
            )
            .unwrap()
            .map(|s| (s.labels.get("code").unwrap().to_string(), s.samples.count()))
            .collect();
        assert_eq!(set, [("200".to_string(), 300), ("500".to_string(), 300)]);
        drop(q);
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Measurements, run by hand: `VIGIL_OM_FILE=data.om cargo test -p vigil-tsdb --release
/// measure_import -- --ignored --nocapture`.
#[cfg(test)]
mod measure {
    use super::*;

    #[test]
    #[ignore]
    fn measure_import() {
        let Ok(file) = std::env::var("VIGIL_OM_FILE") else {
            return;
        };
        let dir = std::env::temp_dir().join(format!("vigil-measure-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let start = std::time::Instant::now();
        let rep =
            import_openmetrics_file(Path::new(&file), &dir, 24 * 3600 * 1000, &mut |_, _, _| {})
                .unwrap();
        let bytes: u64 = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .flat_map(|b| std::fs::read_dir(b.path()).unwrap().flatten())
            .map(|f| f.metadata().unwrap().len())
            .sum();
        println!(
            "{} samples, {} series, {} blocks, {bytes} bytes: {:.3} bytes/sample, {:.1?}",
            rep.samples,
            rep.series,
            rep.blocks.len(),
            bytes as f64 / rep.samples as f64,
            start.elapsed()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
