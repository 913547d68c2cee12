//! Writing a block from any [`Querier`]: the head for a 2-hour cut, a merge of blocks for a
//! compaction, an import's in-memory head for a backfill.
//!
//! Samples are re-encoded into fresh dense chunks of up to 1024 samples (`chunk::dense`),
//! streamed to `chunks` as they are produced; only the label sets and chunk references are
//! held until the index is written at the end. Everything goes to `<id>.tmp/`, is fsynced, and
//! the directory is renamed: readers and crash recovery only ever see whole blocks.

use super::index::{self, ChunkMeta, IndexSeries};
use super::{BlockMeta, BlockStats, CHUNKS_MAGIC, Compaction};
use crate::chunk::{SAMPLES_PER_BLOCK_CHUNK, dense, write_framed};
use crate::error::{TsdbError, io_err};
use crate::wal::sync_dir;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use vigil_model::{Labels, Querier, SelectHints};

/// A new, sortable, unique block id: hex min time, hex sequence.
pub fn new_block_id(min_time: i64) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "{:016x}-{:016x}",
        min_time as u64,
        nanos.wrapping_add(SEQ.fetch_add(1, Ordering::Relaxed))
    )
}

/// True for a block directory name (not a temporary one).
pub fn is_block_dir(name: &str) -> bool {
    name.len() == 33
        && name.as_bytes()[16] == b'-'
        && name
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 16 || b.is_ascii_hexdigit())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), TsdbError> {
    let mut f = std::fs::File::create(path).map_err(|e| io_err(path, e))?;
    f.write_all(bytes).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

/// Writes the samples of `q` in `[mint, maxt)` as a block under `parent`. Returns `None` when
/// there is no sample in the range (no block is written).
pub fn write_block(
    parent: &Path,
    q: &dyn Querier,
    mint: i64,
    maxt: i64,
    compaction: Compaction,
) -> Result<Option<(BlockMeta, PathBuf)>, TsdbError> {
    let id = new_block_id(mint);
    let tmp = parent.join(format!("{id}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    let res = write_into(&tmp, &id, q, mint, maxt, compaction);
    match res {
        Ok(Some(meta)) => {
            let dst = parent.join(&id);
            std::fs::rename(&tmp, &dst).map_err(|e| io_err(&dst, e))?;
            sync_dir(parent);
            Ok(Some((meta, dst)))
        }
        other => {
            let _ = std::fs::remove_dir_all(&tmp);
            other.map(|_| None)
        }
    }
}

fn write_into(
    tmp: &Path,
    id: &str,
    q: &dyn Querier,
    mint: i64,
    maxt: i64,
    compaction: Compaction,
) -> Result<Option<BlockMeta>, TsdbError> {
    let chunks_path = tmp.join("chunks");
    let file = std::fs::File::create(&chunks_path).map_err(|e| io_err(&chunks_path, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut offset = CHUNKS_MAGIC.len() as u64;
    w.write_all(CHUNKS_MAGIC)
        .map_err(|e| io_err(&chunks_path, e))?;
    let hints = SelectHints {
        start: mint,
        end: maxt.saturating_sub(1),
    };
    let set = q
        .select(&[], &hints)
        .map_err(|e| TsdbError::Invalid(e.to_string()))?;
    let mut stats = BlockStats::default();
    let (mut data_min, mut data_max) = (i64::MAX, i64::MIN);
    let mut all: Vec<(Labels, Vec<ChunkMeta>)> = Vec::new();
    let mut frame = Vec::with_capacity(4096);
    let mut payload = Vec::with_capacity(4096);
    let mut pending: Vec<(i64, f64)> = Vec::with_capacity(SAMPLES_PER_BLOCK_CHUNK);
    let mut flush = |pending: &mut Vec<(i64, f64)>,
                     metas: &mut Vec<ChunkMeta>,
                     w: &mut std::io::BufWriter<std::fs::File>|
     -> std::io::Result<()> {
        let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
            return Ok(());
        };
        let (cmin, cmax) = (first.0, last.0);
        payload.clear();
        dense::encode(pending, &mut payload);
        frame.clear();
        write_framed(&mut frame, &payload);
        w.write_all(&frame)?;
        metas.push(ChunkMeta {
            mint: cmin,
            maxt: cmax,
            offset,
        });
        offset += frame.len() as u64;
        pending.clear();
        Ok(())
    };
    for s in set {
        let mut metas = Vec::new();
        for smp in s.samples {
            data_min = data_min.min(smp.t);
            data_max = data_max.max(smp.t);
            pending.push((smp.t, smp.v));
            stats.num_samples += 1;
            if pending.len() >= SAMPLES_PER_BLOCK_CHUNK {
                flush(&mut pending, &mut metas, &mut w).map_err(|e| io_err(&chunks_path, e))?;
            }
        }
        flush(&mut pending, &mut metas, &mut w).map_err(|e| io_err(&chunks_path, e))?;
        if !metas.is_empty() {
            stats.num_chunks += metas.len() as u64;
            all.push((s.labels, metas));
        }
    }
    if all.is_empty() {
        return Ok(None);
    }
    let file = w
        .into_inner()
        .map_err(|e| io_err(&chunks_path, e.into_error()))?;
    file.sync_all().map_err(|e| io_err(&chunks_path, e))?;
    drop(file);

    // Symbols sorted; series keep the (label-sorted) order the querier gave.
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut symbols: BTreeMap<&str, u32> = BTreeMap::new();
    for (labels, _) in &all {
        for l in labels {
            symbols.insert(&l.name, 0);
            symbols.insert(&l.value, 0);
        }
    }
    for (i, v) in symbols.values_mut().enumerate() {
        *v = i as u32;
    }
    let series: Vec<IndexSeries> = all
        .iter()
        .map(|(labels, metas)| IndexSeries {
            labels: labels
                .iter()
                .map(|l| (symbols[l.name.as_str()], symbols[l.value.as_str()]))
                .collect(),
            chunks: metas.clone().into(),
        })
        .collect();
    stats.num_series = series.len() as u64;
    let sym_list: Vec<&str> = symbols.keys().copied().collect();
    write_file(&tmp.join("index"), &index::encode(&sym_list, &series))?;

    let meta = BlockMeta {
        ulid: id.to_string(),
        // The range the samples actually cover, within the requested one: a block written
        // for a range reaching into the future must not make the head refuse fresh samples.
        min_time: data_min.max(mint),
        max_time: data_max.saturating_add(1).min(maxt),
        stats,
        compaction,
        version: 1,
    };
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| TsdbError::Invalid(e.to_string()))?;
    write_file(&tmp.join("meta.json"), &json)?;
    sync_dir(tmp);
    Ok(Some(meta))
}
