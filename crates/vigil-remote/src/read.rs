//! `remote_read`: queries fan out to remote read endpoints and are merged with local data.
//!
//! What is supported (docs/scale-out.md): each `select` of a query sends one `ReadRequest`
//! (asking for streamed XOR chunks first, samples second, so both Prometheus' streaming server
//! and samples-only servers answer); `read_recent: false` skips the remote for the part of
//! the range the local TSDB covers (Prometheus' `PreferLocalStorageFilter`);
//! `required_matchers` restrict which selectors are sent; `filter_external_labels` adds the
//! external labels as matchers and strips them from the result. Results are merged with
//! local series (equal label sets become one series; at a timestamp present in both, the
//! local sample wins). Native histograms come from samples responses (`TimeSeries.histograms`)
//! into `Series::histograms`; a server streaming histogram chunks is asked again for samples.
//! A failing remote is logged and contributes nothing (Prometheus turns it into a query
//! warning). Label-name and label-value lookups are answered locally only.

use crate::codec::{self, DecodeError};
use crate::prompb::{self, read_request::ResponseType};
use crate::server::matchers_to_pb;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use vigil_model::{
    HistogramSample, Labels, Matcher, Querier, Queryable, Sample, SelectHints, Series, SeriesSet,
    StorageError, Timestamp,
};

/// Largest decompressed read response accepted.
const MAX_RESPONSE: usize = 512 << 20;

/// One `remote_read` endpoint.
pub struct ReadClient {
    pub name: String,
    pub url: String,
    pub timeout: Duration,
    pub headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    pub required_matchers: Vec<(String, String)>,
    pub read_recent: bool,
    pub filter_external_labels: bool,
    pub external_labels: Labels,
    pub client: reqwest::Client,
    /// Responses received as streamed XOR chunks, as samples, and failed requests.
    pub counts: ReadCounts,
}

#[derive(Debug, Default)]
pub struct ReadCounts {
    pub streamed: std::sync::atomic::AtomicU64,
    pub samples: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

/// One series read: labels, float samples, native histogram samples.
pub type FetchedSeries = (Labels, Vec<Sample>, Vec<HistogramSample>);
type Fetched = Vec<FetchedSeries>;

/// Why a read failed.
enum ReadError {
    /// A streamed response carried histogram chunks, which this client does not decode.
    HistogramChunks(i32),
    Other(String),
}

impl From<String> for ReadError {
    fn from(s: String) -> Self {
        ReadError::Other(s)
    }
}

impl ReadClient {
    /// Runs one query; series sorted by labels, samples and histograms within `[start, end]`.
    ///
    /// Streamed XOR chunks are asked for first, samples second. A server that streams native
    /// histograms as histogram chunks (Prometheus' HISTOGRAM / FLOAT_HISTOGRAM encodings,
    /// which this client does not decode) is asked again for samples only, where histograms
    /// come whole in `TimeSeries.histograms`.
    pub async fn read(&self, query: prompb::Query) -> Result<Fetched, String> {
        let types = [
            ResponseType::StreamedXorChunks as i32,
            ResponseType::Samples as i32,
        ];
        let r = match self.read_inner(query.clone(), &types).await {
            Err(ReadError::HistogramChunks(enc)) => {
                tracing::debug!(remote_name = %self.name, encoding = enc, "Streamed remote read returned histogram chunks; asking for samples");
                self.read_inner(query, &types[1..]).await
            }
            r => r,
        };
        let r = r.map_err(|e| match e {
            ReadError::HistogramChunks(enc) => format!("unsupported chunk encoding {enc}"),
            ReadError::Other(s) => s,
        });
        let c = match &r {
            Ok((_, true)) => &self.counts.streamed,
            Ok((_, false)) => &self.counts.samples,
            Err(_) => &self.counts.failed,
        };
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        r.map(|x| x.0)
    }

    async fn read_inner(
        &self,
        mut query: prompb::Query,
        accepted: &[i32],
    ) -> Result<(Fetched, bool), ReadError> {
        if self.filter_external_labels {
            for l in &self.external_labels {
                query.matchers.push(prompb::LabelMatcher {
                    r#type: prompb::label_matcher::Type::Eq as i32,
                    name: l.name.clone(),
                    value: l.value.clone(),
                });
            }
        }
        let (start, end) = (query.start_timestamp_ms, query.end_timestamp_ms);
        let req = prompb::ReadRequest {
            queries: vec![query],
            accepted_response_types: accepted.to_vec(),
        };
        let body = codec::snappy_compress(&req.encode_to_vec());
        let mut r = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_ENCODING, "snappy")
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .header(
                "X-Prometheus-Remote-Read-Version",
                codec::REMOTE_READ_VERSION,
            );
        for (k, v) in &self.headers {
            r = r.header(k, v);
        }
        let resp = r.body(body).send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(ReadError::Other(format!(
                "remote server {} returned HTTP status {status}: {}",
                vigil_config::redact_url(&self.url),
                String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).trim()
            )));
        }
        let mut out: Fetched = Vec::new();
        let streamed = ctype.starts_with("application/x-streamed-protobuf");
        if streamed {
            let (frames, used) =
                codec::take_frames(&bytes, MAX_RESPONSE).map_err(|e| e.to_string())?;
            if used != bytes.len() {
                return Err(ReadError::Other("truncated streamed read response".into()));
            }
            for f in frames {
                let msg = prompb::ChunkedReadResponse::decode(f)
                    .map_err(|e| DecodeError::from(e).to_string())?;
                for cs in msg.chunked_series {
                    let labels = codec::labels_from_pb(&cs.labels);
                    let mut samples = Vec::new();
                    for c in cs.chunks {
                        if c.r#type == prompb::chunk::Encoding::Histogram as i32
                            || c.r#type == prompb::chunk::Encoding::FloatHistogram as i32
                        {
                            return Err(ReadError::HistogramChunks(c.r#type));
                        }
                        if c.r#type != prompb::chunk::Encoding::Xor as i32 {
                            return Err(ReadError::Other(format!(
                                "unsupported chunk encoding {}",
                                c.r#type
                            )));
                        }
                        let decoded = crate::xor::decode(&c.data)
                            .ok_or_else(|| "malformed XOR chunk".to_string())?;
                        samples.extend(
                            decoded
                                .into_iter()
                                .filter(|(t, _)| *t >= start && *t <= end)
                                .map(|(t, v)| Sample { t, v }),
                        );
                    }
                    // A series split over frames continues in the next one.
                    match out.last_mut() {
                        Some((l, s, _)) if *l == labels => s.extend(samples),
                        _ => out.push((labels, samples, Vec::new())),
                    }
                }
            }
        } else {
            let rr: prompb::ReadResponse =
                codec::decode_snappy(&bytes, MAX_RESPONSE).map_err(|e| e.to_string())?;
            for qr in rr.results {
                for ts in qr.timeseries {
                    let labels = codec::labels_from_pb(&ts.labels);
                    let mut hs = Vec::with_capacity(ts.histograms.len());
                    for hp in &ts.histograms {
                        if hp.timestamp < start || hp.timestamp > end {
                            continue;
                        }
                        let h = codec::histogram_from_pb(hp)
                            .and_then(|h| h.validate().map(|_| h).map_err(|e| e.to_string()))
                            .map_err(|e| {
                                format!(
                                    "invalid histogram for series {labels} at timestamp {}: {e}",
                                    hp.timestamp
                                )
                            })?;
                        hs.push(HistogramSample {
                            t: hp.timestamp,
                            h: Arc::new(h),
                        });
                    }
                    out.push((
                        labels,
                        ts.samples
                            .iter()
                            .map(|s| Sample {
                                t: s.timestamp,
                                v: s.value,
                            })
                            .collect(),
                        hs,
                    ));
                }
            }
        }
        if self.filter_external_labels && !self.external_labels.is_empty() {
            for (l, _, _) in out.iter_mut() {
                let mut b = l.to_builder();
                for e in &self.external_labels {
                    if l.get(&e.name) == Some(e.value.as_str()) {
                        b.del(&e.name);
                    }
                }
                *l = b.build();
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        // Equal label sets after stripping: merge (keep time order, first wins on equal t).
        let mut merged: Fetched = Vec::with_capacity(out.len());
        for (l, mut s, mut h) in out {
            s.sort_by_key(|x| x.t);
            s.dedup_by_key(|x| x.t);
            h.sort_by_key(|x| x.t);
            h.dedup_by_key(|x| x.t);
            match merged.last_mut() {
                Some((pl, ps, ph)) if *pl == l => {
                    ps.extend(s);
                    ps.sort_by_key(|x| x.t);
                    ps.dedup_by_key(|x| x.t);
                    ph.extend(h);
                    ph.sort_by_key(|x| x.t);
                    ph.dedup_by_key(|x| x.t);
                }
                _ => merged.push((l, s, h)),
            }
        }
        Ok((merged, streamed))
    }

    /// Should a selector with these matchers go to this remote?
    fn wanted(&self, ms: &[Matcher]) -> bool {
        self.required_matchers.iter().all(|(n, v)| {
            ms.iter().any(|m| {
                m.name == *n && matches!(m.op, vigil_model::MatchOp::Equal) && m.value == *v
            })
        })
    }
}

/// A runtime of its own for remote reads, so a synchronous `select` (called from any thread,
/// async worker or not) can wait for an HTTP request without starving the main runtime.
fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vigil-remote-read")
            .enable_all()
            .build()
            .expect("cannot start the remote-read runtime")
    })
}

/// Runs `fut` on the remote-read runtime and waits for it.
fn run_blocking<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    io_runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().ok()
}

/// The clients of the current `remote_read` config.
#[derive(Default)]
pub struct ReadClients {
    clients: parking_lot::RwLock<Vec<Arc<ReadClient>>>,
}

impl ReadClients {
    pub fn set(&self, c: Vec<Arc<ReadClient>>) {
        *self.clients.write() = c;
    }

    pub fn get(&self) -> Vec<Arc<ReadClient>> {
        self.clients.read().clone()
    }
}

/// Local storage plus the `remote_read` endpoints.
pub struct Fanout {
    pub local: Arc<dyn Queryable>,
    pub remotes: Arc<ReadClients>,
    /// The oldest timestamp local storage has (for `read_recent: false`).
    pub local_start: Box<dyn Fn() -> Timestamp + Send + Sync>,
}

impl Queryable for Fanout {
    fn querier(
        &self,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Box<dyn Querier + '_>, StorageError> {
        let remotes = self.remotes.get();
        let local = self.local.querier(mint, maxt)?;
        if remotes.is_empty() {
            return Ok(local);
        }
        let mut queriers: Vec<Box<dyn Querier + '_>> = vec![local];
        for r in remotes {
            let mut cmaxt = maxt;
            if !r.read_recent {
                let start = (self.local_start)();
                if mint > start {
                    continue;
                }
                cmaxt = cmaxt.min(start);
            }
            queriers.push(Box::new(RemoteQuerier {
                client: r,
                mint,
                maxt: cmaxt,
            }));
        }
        Ok(Box::new(vigil_model::MergeQuerier {
            queriers,
            ranges: Vec::new(),
        }))
    }
}

struct RemoteQuerier {
    client: Arc<ReadClient>,
    mint: Timestamp,
    maxt: Timestamp,
}

impl Querier for RemoteQuerier {
    fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<SeriesSet<'_>, StorageError> {
        if !self.client.wanted(matchers) {
            return Ok(Box::new(std::iter::empty()));
        }
        let start = hints.start.max(self.mint);
        let end = hints.end.min(self.maxt);
        if start > end {
            return Ok(Box::new(std::iter::empty()));
        }
        let query = prompb::Query {
            start_timestamp_ms: start,
            end_timestamp_ms: end,
            matchers: matchers_to_pb(matchers),
            hints: Some(prompb::ReadHints {
                start_ms: start,
                end_ms: end,
                ..Default::default()
            }),
        };
        let client = self.client.clone();
        let res = run_blocking(async move { client.read(query).await });
        let series = match res {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                tracing::warn!(remote_name = %self.client.name, url = %vigil_config::redact_url(&self.client.url), "Remote read failed; results are local only: {e}");
                Vec::new()
            }
            None => Vec::new(),
        };
        Ok(Box::new(series.into_iter().map(
            |(labels, samples, histograms)| Series {
                labels,
                samples: Box::new(samples.into_iter()),
                histograms,
                start_timestamps: Vec::new(),
            },
        )))
    }

    fn label_names(&self, _: &[Matcher]) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }

    fn label_values(&self, _: &str, _: &[Matcher]) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }
}
