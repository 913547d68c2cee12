//! Series metadata through the Querier: `/api/v1/series`, `/api/v1/labels` and
//! `/api/v1/label/<name>/values` with `match[]`, `start`, `end` and `limit`.
//!
//! Label values with `match[]` go through `Querier::label_values(name, matchers)`, which reads
//! the same postings `select` does and never loads samples, so it costs no more than
//! `/api/v1/series` with the same matchers.

use crate::handlers::{ApiError, Params, St, blocking, ok, string_list};
use crate::json;
use axum::extract::Path;
use axum::response::Response;
use std::collections::BTreeSet;
use std::sync::Arc;
use vigil_model::SelectHints;

/// Prometheus' warning when `limit` cut a result short.
const TRUNCATED: &str = "results truncated due to limit";

pub async fn series(st: St, p: Params) -> Result<Response, ApiError> {
    let st = st.0;
    let sets = p.matchers(&st)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = p.time_range()?;
    let limit = p.limit()?;
    let (all, truncated) = blocking(move || {
        let querier = st.db.querier(start, end)?;
        let mut all = BTreeSet::new();
        for ms in &sets {
            for s in querier.select(ms, &SelectHints { start, end })? {
                all.insert(s.labels);
            }
        }
        let truncated = limit.is_some_and(|l| all.len() > l);
        Ok((all, truncated))
    })
    .await?;
    let mut out = String::from("[");
    for (i, l) in all.iter().take(limit.unwrap_or(usize::MAX)).enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_labels(&mut out, l);
    }
    out.push(']');
    ok(json::success_annotated(&out, &warning(truncated), &[]))
}

fn warning(truncated: bool) -> Vec<String> {
    if truncated {
        vec![TRUNCATED.to_string()]
    } else {
        Vec::new()
    }
}

/// A sorted, de-duplicated list cut to `limit`, with Prometheus' warning when cut.
fn limited(items: BTreeSet<String>, limit: Option<usize>) -> Result<Response, ApiError> {
    let truncated = limit.is_some_and(|l| items.len() > l);
    let list = string_list(items.into_iter().take(limit.unwrap_or(usize::MAX)));
    ok(json::success_annotated(&list, &warning(truncated), &[]))
}

pub async fn labels(st: St, p: Params) -> Result<Response, ApiError> {
    let st = st.0;
    let sets = p.matchers(&st)?;
    let (start, end) = p.time_range()?;
    let limit = p.limit()?;
    let names = blocking(move || {
        let querier = st.db.querier(start, end)?;
        let mut names = BTreeSet::new();
        if sets.is_empty() {
            names.extend(querier.label_names(&[])?);
        }
        for ms in &sets {
            names.extend(querier.label_names(ms)?);
        }
        Ok(names)
    })
    .await?;
    limited(names, limit)
}

pub async fn label_values(
    st: St,
    Path(name): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    let st = st.0;
    let name = unescape_name(&name);
    if name.is_empty() {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let sets = p.matchers(&st)?;
    let (start, end) = p.time_range()?;
    let limit = p.limit()?;
    let st2 = Arc::clone(&st);
    let values = blocking(move || {
        let querier = st2.db.querier(start, end)?;
        let mut values = BTreeSet::new();
        if sets.is_empty() {
            values.extend(querier.label_values(&name, &[])?);
        }
        for ms in &sets {
            values.extend(querier.label_values(&name, ms)?);
        }
        Ok(values)
    })
    .await?;
    limited(values, limit)
}

/// Decodes Prometheus' `U__` value-encoding escaping of a UTF-8 label name: after the prefix,
/// `__` is `_`, `_<hex>_` is the code point, other characters stand for themselves. A name
/// that is not validly escaped is returned unchanged, as Prometheus does.
pub fn unescape_name(name: &str) -> String {
    let Some(rest) = name.strip_prefix("U__") else {
        return name.to_string();
    };
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            if !(c.is_ascii_alphanumeric() || c == ':') {
                return name.to_string();
            }
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'_') {
            chars.next();
            out.push('_');
            continue;
        }
        let mut hex = String::new();
        loop {
            match chars.next() {
                Some('_') => break,
                Some(h) if h.is_ascii_hexdigit() && hex.len() < 8 => hex.push(h),
                _ => return name.to_string(),
            }
        }
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(ch) => out.push(ch),
            None => return name.to_string(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::unescape_name;

    #[test]
    fn u_escaping() {
        assert_eq!(
            unescape_name("U__my_20_lovely__http_2e_status:sum"),
            "my lovely_http.status:sum"
        );
        assert_eq!(unescape_name("job"), "job");
        assert_eq!(unescape_name("U__caf_e9_"), "café");
        // Not validly escaped: taken as is.
        assert_eq!(unescape_name("U__bad_zz_"), "U__bad_zz_");
        assert_eq!(unescape_name("U__open_4"), "U__open_4");
        assert_eq!(unescape_name("U___d800_"), "U___d800_");
    }
}
