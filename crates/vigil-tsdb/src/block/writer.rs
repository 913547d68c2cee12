//! Writing a block from any [`Querier`]: the head for a 2-hour cut, a merge of blocks for a
//! compaction, an import's in-memory head for a backfill.
//!
//! Samples are re-encoded into fresh dense chunks of up to 1024 samples (`chunk::dense`),
//! streamed to `chunks` as they are produced; only the label sets and chunk references are
//! held until the index is written at the end. Everything goes to `<id>.tmp/`, is fsynced, and
//! the directory is renamed: readers and crash recovery only ever see whole blocks.

use super::index::{self, ChunkMeta, IndexSeries};
use super::{BlockMeta, BlockStats, CHUNKS_MAGIC, Compaction};
use crate::chunk::hist::{self, HistAppender};
use crate::chunk::{SAMPLES_PER_BLOCK_CHUNK, dense, write_framed};
use crate::error::{TsdbError, io_err};
use crate::fs::{Fs, Writer, write_file};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use vigil_model::{HistogramSample, Labels, Querier, SelectHints};

/// A block histogram chunk is cut past this many bytes (before reaching 1024 samples).
const HIST_BLOCK_CHUNK_BYTES: usize = 64 << 10;

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

/// Writes the samples of `q` in `[mint, maxt)` as a block under `parent`. Returns `None` when
/// there is no sample in the range (no block is written). Every file operation goes through
/// `fs`; the block is durable (its directory renamed into place and `parent` fsynced) when
/// this returns.
pub fn write_block(
    fs: &dyn Fs,
    parent: &Path,
    q: &dyn Querier,
    mint: i64,
    maxt: i64,
    compaction: Compaction,
) -> Result<Option<(BlockMeta, PathBuf)>, TsdbError> {
    let id = new_block_id(mint);
    let tmp = parent.join(format!("{id}.tmp"));
    let _ = fs.remove_dir_all(&tmp);
    fs.create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    let res = write_into(fs, &tmp, &id, q, mint, maxt, compaction).and_then(|meta| {
        let Some(meta) = meta else { return Ok(None) };
        let dst = parent.join(&id);
        fs.rename(&tmp, &dst).map_err(|e| io_err(&dst, e))?;
        if let Err(e) = fs.sync_dir(parent) {
            // Not durable: the caller would drop the head's copy of these samples.
            let _ = fs.remove_dir_all(&dst);
            return Err(io_err(parent, e));
        }
        Ok(Some((meta, dst)))
    });
    if !matches!(res, Ok(Some(_))) {
        // A half-written block must not keep the space a full disk needs back.
        let _ = fs.remove_dir_all(&tmp);
    }
    res
}

fn write_into(
    fs: &dyn Fs,
    tmp: &Path,
    id: &str,
    q: &dyn Querier,
    mint: i64,
    maxt: i64,
    compaction: Compaction,
) -> Result<Option<BlockMeta>, TsdbError> {
    let chunks_path = tmp.join("chunks");
    let file = fs
        .create(&chunks_path)
        .map_err(|e| io_err(&chunks_path, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, Writer(&*file));
    let offset = std::cell::Cell::new(CHUNKS_MAGIC.len() as u64);
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
    let mut all: Vec<(Labels, Vec<ChunkMeta>, Vec<ChunkMeta>)> = Vec::new();
    let mut frame = Vec::with_capacity(4096);
    let mut payload = Vec::with_capacity(4096);
    let mut pending: Vec<(i64, f64)> = Vec::with_capacity(SAMPLES_PER_BLOCK_CHUNK);
    let mut shared = dense::SharedTimestamps::default();
    let mut flush = |pending: &mut Vec<(i64, f64)>,
                     metas: &mut Vec<ChunkMeta>,
                     w: &mut std::io::BufWriter<Writer<'_>>|
     -> std::io::Result<()> {
        let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
            return Ok(());
        };
        let (cmin, cmax) = (first.0, last.0);
        payload.clear();
        dense::encode_shared(pending, &mut payload, &mut shared, offset.get());
        frame.clear();
        write_framed(&mut frame, &payload);
        w.write_all(&frame)?;
        metas.push(ChunkMeta {
            mint: cmin,
            maxt: cmax,
            offset: offset.get(),
        });
        offset.set(offset.get() + frame.len() as u64);
        pending.clear();
        Ok(())
    };
    let mut hframe = Vec::new();
    let mut hpayload = Vec::new();
    // Writes histogram samples as chunks of up to SAMPLES_PER_BLOCK_CHUNK samples (fewer
    // when wide histograms make a chunk large).
    let mut write_hist = |hs: &[HistogramSample],
                          metas: &mut Vec<ChunkMeta>,
                          w: &mut std::io::BufWriter<Writer<'_>>|
     -> std::io::Result<()> {
        let mut a = HistAppender::default();
        let mut first = 0;
        for (i, x) in hs.iter().enumerate() {
            a.append(x.t, &x.h);
            let last = i + 1 == hs.len();
            if last
                || a.num_samples() as usize >= SAMPLES_PER_BLOCK_CHUNK
                || a.len() >= HIST_BLOCK_CHUNK_BYTES
            {
                hpayload.clear();
                hpayload.push(hist::ENC_HIST);
                hpayload.extend_from_slice(&a.take_bytes());
                hframe.clear();
                write_framed(&mut hframe, &hpayload);
                w.write_all(&hframe)?;
                metas.push(ChunkMeta {
                    mint: hs[first].t,
                    maxt: x.t,
                    offset: offset.get(),
                });
                offset.set(offset.get() + hframe.len() as u64);
                first = i + 1;
            }
        }
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
        let mut hmetas = Vec::new();
        if let (Some(f), Some(l)) = (s.histograms.first(), s.histograms.last()) {
            data_min = data_min.min(f.t);
            data_max = data_max.max(l.t);
            stats.num_samples += s.histograms.len() as u64;
            write_hist(&s.histograms, &mut hmetas, &mut w).map_err(|e| io_err(&chunks_path, e))?;
        }
        if !metas.is_empty() || !hmetas.is_empty() {
            stats.num_chunks += (metas.len() + hmetas.len()) as u64;
            all.push((s.labels, metas, hmetas));
        }
    }
    if all.is_empty() {
        return Ok(None);
    }
    w.into_inner()
        .map_err(|e| io_err(&chunks_path, e.into_error()))?;
    file.sync_all().map_err(|e| io_err(&chunks_path, e))?;
    drop(file);

    // Symbols sorted; series keep the (label-sorted) order the querier gave.
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut symbols: BTreeMap<&str, u32> = BTreeMap::new();
    for (labels, _, _) in &all {
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
        .map(|(labels, metas, hmetas)| IndexSeries {
            labels: labels
                .iter()
                .map(|l| (symbols[l.name.as_str()], symbols[l.value.as_str()]))
                .collect(),
            chunks: metas.clone().into(),
            hchunks: hmetas.clone().into(),
        })
        .collect();
    stats.num_series = series.len() as u64;
    if u32::try_from(series.len()).is_err() {
        // Postings hold series positions as u32.
        return Err(TsdbError::Invalid(format!(
            "a block holds at most {} series, not {}",
            u32::MAX,
            series.len()
        )));
    }
    let sym_list: Vec<&str> = symbols.keys().copied().collect();
    let index_path = tmp.join("index");
    write_file(fs, &index_path, &index::encode(&sym_list, &series))
        .map_err(|e| io_err(&index_path, e))?;

    let meta = BlockMeta {
        ulid: id.to_string(),
        // The range the samples actually cover, within the requested one: a block written
        // for a range reaching into the future must not make the head refuse fresh samples.
        min_time: data_min.max(mint),
        max_time: data_max.saturating_add(1).min(maxt),
        stats,
        compaction,
        // 3: the index is `VGIDX003` (read in place from a memory map); a vigil that reads
        // only versions 1 and 2 refuses such a block instead of misreading it.
        version: 3,
    };
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| TsdbError::Invalid(e.to_string()))?;
    let meta_path = tmp.join("meta.json");
    write_file(fs, &meta_path, &json).map_err(|e| io_err(&meta_path, e))?;
    fs.sync_dir(tmp).map_err(|e| io_err(tmp, e))?;
    Ok(Some(meta))
}
