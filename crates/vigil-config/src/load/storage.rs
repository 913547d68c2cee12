//! The `storage` section: TSDB retention and chunk settings.

use crate::error::Problem;
use crate::types::*;

pub(super) fn validate_storage(s: &StorageConfig) -> Result<(), Problem> {
    let Some(t) = &s.tsdb else { return Ok(()) };
    if let Some(r) = &t.retention {
        if let Some(size) = r.size
            && size < 0
        {
            return Err(Problem::new(
                "storage.tsdb.retention.size",
                "'storage.tsdb.retention.size' cannot be negative",
            ));
        }
        if let Some(p) = r.percentage
            && !(0.0..=100.0).contains(&p)
        {
            return Err(Problem::new(
                "storage.tsdb.retention.percentage",
                format!("'storage.tsdb.retention.percentage' must be between 0 and 100, got {p}"),
            ));
        }
    }
    if let Some(c) = &t.chunk_encoding
        && let Some(f) = &c.floats
        && f != "xor"
        && f != "xor2"
    {
        return Err(Problem::new(
            "storage.tsdb.chunk_encoding.floats",
            format!("unknown float chunk encoding {f:?} (expected \"xor\" or \"xor2\")"),
        ));
    }
    if let Some(th) = t.stale_series_compaction_threshold
        && !(0.0..=1.0).contains(&th)
    {
        return Err(Problem::new(
            "storage.tsdb.stale_series_compaction_threshold",
            format!("stale_series_compaction_threshold must be between 0 and 1, got {th}"),
        ));
    }
    Ok(())
}
