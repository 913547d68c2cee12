//! One target's scrape loop: fetch, parse, label, relabel, append, mark stale.
//!
//! A scrape is all or nothing: samples go into one Appender batch that is committed only when
//! the whole body parsed and no limit was exceeded; otherwise it is rolled back, `up` is 0,
//! and the target's series of the last good scrape are marked stale, as in Prometheus.

use crate::manager::{TargetHealth, TargetStatus};
use crate::scrape_cache::{CacheEntry, ScrapeCache};
use crate::target::Target;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use vigil_config::relabel::{self, RelabelConfig};
use vigil_exposition::{Entry, Format, Parser};
use vigil_model::MetricMetadata;
use vigil_model::{
    AppendError, Appendable, Appender, Labels, LabelsBuilder, SeriesRef, Timestamp, now_millis,
    stale_nan,
};

/// The most body a target may send when `body_size_limit` is not set. Prometheus has no such
/// cap; vigil has one so that a target streaming without end cannot exhaust memory within
/// the scrape timeout (see docs/scrape.md).
pub const DEFAULT_BODY_CAP: u64 = 256 << 20;

/// What a loop needs from its scrape config, resolved once per config load.
#[derive(Clone)]
pub(crate) struct LoopSettings {
    pub interval: Duration,
    pub timeout: Duration,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub sample_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub body_size_limit: u64,
    pub metric_relabel: Arc<Vec<RelabelConfig>>,
    pub client: reqwest::Client,
}

/// Counts of one scrape, for the synthetic series.
#[derive(Default, Clone, Copy)]
struct Report {
    scraped: u64,
    post_relabel: u64,
    added: u64,
}

pub(crate) struct ScrapeLoop {
    target: Target,
    settings: LoopSettings,
    db: Arc<dyn Appendable>,
    status: Arc<Mutex<TargetStatus>>,
    cache: ScrapeCache,
    /// The format of the last scrape, whose lines the cache holds.
    cached_format: Option<Format>,
    /// Reused between scrapes so a steady target allocates no body buffer per scrape.
    body: Vec<u8>,
    metadata: BTreeMap<String, MetricMetadata>,
    /// Synthetic series refs: up, duration, scraped, post-relabel, added.
    synthetic: [Option<SeriesRef>; 5],
    iteration: u64,
    /// Iteration of the last successful scrape, whose series may need stale markers.
    last_ok: Option<u64>,
}

const SYNTHETIC: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

impl ScrapeLoop {
    pub fn new(
        target: Target,
        settings: LoopSettings,
        db: Arc<dyn Appendable>,
        status: Arc<Mutex<TargetStatus>>,
    ) -> Self {
        ScrapeLoop {
            target,
            settings,
            db,
            status,
            cache: ScrapeCache::default(),
            cached_format: None,
            body: Vec::new(),
            metadata: BTreeMap::new(),
            synthetic: [None; 5],
            iteration: 0,
            last_ok: None,
        }
    }

    /// Runs until `stop` changes, then marks every series of the target stale.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        // Spread targets over the interval, deterministically per target, as Prometheus does.
        let offset = spread_offset(&self.target, self.settings.interval);
        tokio::select! {
            _ = tokio::time::sleep(offset) => {}
            _ = stop.changed() => return,
        }
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => break,
            }
            tokio::select! {
                _ = self.scrape_once() => {}
                _ = stop.changed() => break,
            }
        }
        self.mark_all_stale(now_millis(), true);
    }

    async fn scrape_once(&mut self) {
        self.iteration += 1;
        let started = Instant::now();
        let ts = now_millis();
        let result = match self.fetch().await {
            Ok(format) => self.ingest(format, ts),
            Err(e) => Err((e, Report::default())),
        };
        let duration = started.elapsed();
        let (up, report) = match &result {
            Ok(r) => (1.0, *r),
            Err((_, r)) => {
                self.mark_all_stale(ts, false);
                (0.0, *r)
            }
        };
        self.append_synthetic(ts, up, duration, &report);
        let mut st = self.status.lock();
        st.last_scrape_ms = ts;
        st.last_scrape_duration = duration.as_secs_f64();
        match result {
            Ok(_) => {
                st.health = TargetHealth::Up;
                st.last_error.clear();
            }
            Err((e, _)) => {
                tracing::debug!(target = %self.target.url, error = %e, "Scrape failed");
                st.health = TargetHealth::Down;
                st.last_error = e;
            }
        }
    }

    /// Reads the body into the reused buffer, within the size limit and the timeout.
    async fn fetch(&mut self) -> Result<Format, String> {
        let s = &self.settings;
        let url = &self.target.url;
        let limit = if s.body_size_limit > 0 {
            s.body_size_limit
        } else {
            DEFAULT_BODY_CAP
        };
        let deadline = tokio::time::Instant::now() + s.timeout;
        let request = s
            .client
            .get(url)
            .header("Accept", vigil_exposition::ACCEPT_HEADER)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", s.timeout.as_secs_f64()),
            )
            .timeout(s.timeout)
            .send();
        let body = &mut self.body;
        let read = async {
            let mut resp = request.await.map_err(|e| describe_reqwest(url, &e))?;
            if !resp.status().is_success() {
                return Err(format!("server returned HTTP status {}", resp.status()));
            }
            let ct = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            body.clear();
            // Decompressed bytes count against the limit, so a gzip bomb stops here too.
            while let Some(chunk) = resp.chunk().await.map_err(|e| describe_reqwest(url, &e))? {
                if (body.len() + chunk.len()) as u64 > limit {
                    return Err(format!(
                        "body size limit exceeded: the response is larger than {limit} bytes"
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(vigil_exposition::format_from_content_type(ct.as_deref()))
        };
        match tokio::time::timeout_at(deadline, read).await {
            Ok(r) => r,
            Err(_) => Err(format!("Get {url:?}: context deadline exceeded")),
        }
    }

    /// Parses the body and appends its samples as one batch; on any error the batch is
    /// rolled back, so a bad scrape stores nothing.
    fn ingest(&mut self, format: Format, ts: Timestamp) -> Result<Report, (String, Report)> {
        let db = Arc::clone(&self.db);
        let mut app = db.appender();
        let body = std::mem::take(&mut self.body);
        let mut rep = Report::default();
        let outcome = self.ingest_into(app.as_mut(), &body, format, ts, &mut rep);
        self.body = body;
        match outcome {
            Ok(()) => {
                app.commit().map_err(|e| (format!("storage: {e}"), rep))?;
                self.mark_unseen_stale(ts);
                self.last_ok = Some(self.iteration);
                Ok(rep)
            }
            Err(e) => {
                app.rollback();
                // Series first seen in the failed scrape were never committed.
                let it = self.iteration;
                self.cache
                    .retain(|e| e.series.is_some() || e.last_seen != it);
                Err((e, rep))
            }
        }
    }

    fn ingest_into(
        &mut self,
        app: &mut dyn Appender,
        body: &[u8],
        format: Format,
        ts: Timestamp,
        rep: &mut Report,
    ) -> Result<(), String> {
        let iteration = self.iteration;
        let mut meta_changed = false;
        self.cache.begin();
        // A line the cache holds was checked when it was first seen, in the same format: only
        // new lines need their labels checked.
        let mut parser = Parser::new(body, format);
        if self.cached_format == Some(format) {
            parser = parser.defer_label_checks();
        }
        self.cached_format = Some(format);
        for entry in parser {
            let s = match entry.map_err(|e| e.to_string())? {
                Entry::Sample(s) => s,
                Entry::Help { family, help } => {
                    meta_changed |= update(&mut self.metadata, family, |m| &mut m.help, &help);
                    continue;
                }
                Entry::Type { family, kind } => {
                    meta_changed |=
                        update(&mut self.metadata, family, |m| &mut m.kind, kind.as_str());
                    continue;
                }
                Entry::Unit { family, unit } => {
                    meta_changed |= update(&mut self.metadata, family, |m| &mut m.unit, unit);
                    continue;
                }
            };
            rep.scraped += 1;
            let sample_ts = match (self.settings.honor_timestamps, s.timestamp_ms) {
                (true, Some(t)) => t,
                _ => ts,
            };
            let explicit_ts = s.timestamp_ms.is_some() && self.settings.honor_timestamps;
            match self.cache.get_mut(s.series) {
                Some(entry) => {
                    if entry.last_seen == iteration {
                        // A repeated series within one scrape: Prometheus keeps the first
                        // sample and counts the rest as duplicates; the scrape still succeeds.
                        continue;
                    }
                    entry.last_seen = iteration;
                    if entry.dropped {
                        continue; // dropped by metric relabeling
                    }
                    count_sample(rep, self.settings.sample_limit)?;
                    let mut result = app.append(entry.series, &Labels::empty(), sample_ts, s.value);
                    if matches!(result, Err(AppendError::EmptyLabels)) {
                        // The cached reference is gone from storage: rebuild the labels once.
                        let labels = sample_labels(&self.target, self.settings.honor_labels, &s);
                        if let Some(l) = relabel::process(&labels, &self.settings.metric_relabel) {
                            result = app.append(None, &l, sample_ts, s.value);
                        }
                    }
                    match result {
                        Ok(r) => entry.series = Some(r),
                        Err(e) => tracing::trace!(error = %e, "Sample refused"),
                    }
                }
                None => {
                    // A miss: the line is checked, and the final labels built, once, here.
                    s.check().map_err(|e| e.to_string())?;
                    let labels = sample_labels(&self.target, self.settings.honor_labels, &s);
                    let labels = relabel::process(&labels, &self.settings.metric_relabel);
                    let mut e = CacheEntry {
                        series: None,
                        dropped: labels.is_none(),
                        last_seen: iteration,
                        explicit_ts,
                    };
                    if let Some(l) = labels {
                        check_label_limits(&l, &self.settings)?;
                        rep.added += 1;
                        count_sample(rep, self.settings.sample_limit)?;
                        match app.append(None, &l, sample_ts, s.value) {
                            Ok(r) => e.series = Some(r),
                            Err(err) => {
                                tracing::trace!(series = %l, error = %err, "Sample refused")
                            }
                        }
                    }
                    self.cache.insert(s.series, e);
                }
            }
        }
        if meta_changed {
            self.status.lock().metadata = Arc::new(self.metadata.clone());
        }
        Ok(())
    }

    /// After a successful scrape: series of the previous successful scrape that are missing
    /// now get a stale marker; series not seen in this scrape leave the cache.
    fn mark_unseen_stale(&mut self, ts: Timestamp) {
        let cur = self.iteration;
        let prev = self.last_ok;
        let db = Arc::clone(&self.db);
        let mut app = db.appender();
        self.cache.retain(|e| {
            if e.last_seen == cur {
                return true;
            }
            if Some(e.last_seen) == prev && !e.explicit_ts && !e.dropped && e.series.is_some() {
                let _ = app.append(e.series, &Labels::empty(), ts, stale_nan());
            }
            false
        });
        let _ = app.commit();
    }

    /// After a failed scrape, every series of the last successful scrape ends; when the
    /// target goes away (`target_gone`), its synthetic series end too.
    fn mark_all_stale(&mut self, ts: Timestamp, target_gone: bool) {
        let db = Arc::clone(&self.db);
        let mut app = db.appender();
        if let Some(prev) = self.last_ok.take() {
            for e in self.cache.values().filter(|e| {
                e.last_seen == prev && !e.explicit_ts && !e.dropped && e.series.is_some()
            }) {
                let _ = app.append(e.series, &Labels::empty(), ts, stale_nan());
            }
        }
        if target_gone {
            for r in self.synthetic.iter().filter(|r| r.is_some()) {
                let _ = app.append(*r, &Labels::empty(), ts, stale_nan());
            }
        }
        let _ = app.commit();
    }

    fn append_synthetic(&mut self, ts: Timestamp, up: f64, duration: Duration, rep: &Report) {
        let values = [
            up,
            duration.as_secs_f64(),
            rep.scraped as f64,
            rep.post_relabel as f64,
            rep.added as f64,
        ];
        let db = Arc::clone(&self.db);
        let mut app = db.appender();
        for (i, v) in values.into_iter().enumerate() {
            let labels = match self.synthetic[i] {
                Some(_) => Labels::empty(),
                None => {
                    let mut b = self.target.labels.to_builder();
                    b.set("__name__", SYNTHETIC[i]);
                    b.build()
                }
            };
            if let Ok(r) = app.append(self.synthetic[i], &labels, ts, v) {
                self.synthetic[i] = Some(r);
            }
        }
        let _ = app.commit();
    }
}

/// One more sample after relabeling; fails the scrape past `sample_limit`.
fn count_sample(rep: &mut Report, limit: u64) -> Result<(), String> {
    rep.post_relabel += 1;
    if limit > 0 && rep.post_relabel > limit {
        return Err(format!("sample limit exceeded (limit {limit})"));
    }
    Ok(())
}

/// The sample's own labels merged with the target's, as Prometheus does: with
/// `honor_labels` the scraped value wins, otherwise a clash renames the scraped label to
/// `exported_<name>`.
fn sample_labels(
    target: &Target,
    honor_labels: bool,
    s: &vigil_exposition::SampleEntry<'_>,
) -> Labels {
    let mut b = LabelsBuilder::new();
    b.set("__name__", s.name.to_string());
    for (k, v) in s.labels() {
        b.set(k.to_string(), v.to_string());
    }
    for l in &target.labels {
        match b.get(&l.name).map(str::to_string) {
            Some(_) if honor_labels => {}
            Some(existing) => {
                let mut name = format!("exported_{}", l.name);
                while b.get(&name).is_some() {
                    name = format!("exported_{name}");
                }
                b.set(name, existing);
                b.set(l.name.clone(), l.value.clone());
            }
            None => {
                b.set(l.name.clone(), l.value.clone());
            }
        }
    }
    b.build()
}

/// Sets one metadata field of `family` to `value`; answers whether it changed. Allocates
/// only on change, so a steady target costs a map lookup per metadata line.
fn update(
    map: &mut BTreeMap<String, MetricMetadata>,
    family: &str,
    field: fn(&mut MetricMetadata) -> &mut String,
    value: &str,
) -> bool {
    match map.get_mut(family) {
        Some(m) => {
            let f = field(m);
            if f == value {
                return false;
            }
            *f = value.to_string();
            true
        }
        None => {
            let mut m = MetricMetadata::default();
            *field(&mut m) = value.to_string();
            map.insert(family.to_string(), m);
            true
        }
    }
}

/// Prometheus' `verifyLabelLimits`, with its error texts.
fn check_label_limits(l: &Labels, s: &LoopSettings) -> Result<(), String> {
    let metric: String = l.metric_name().unwrap_or("").chars().take(50).collect();
    if s.label_limit > 0 && l.len() as u64 > s.label_limit {
        return Err(format!(
            "label_limit exceeded (metric: {metric}, number of labels: {}, limit: {})",
            l.len(),
            s.label_limit
        ));
    }
    for lb in l {
        if s.label_name_length_limit > 0 && lb.name.len() as u64 > s.label_name_length_limit {
            let name: String = lb.name.chars().take(50).collect();
            return Err(format!(
                "label_name_length_limit exceeded (metric: {metric}, label name: {name}, length: {}, limit: {})",
                lb.name.len(),
                s.label_name_length_limit
            ));
        }
        if s.label_value_length_limit > 0 && lb.value.len() as u64 > s.label_value_length_limit {
            let name: String = lb.name.chars().take(50).collect();
            let value: String = lb.value.chars().take(50).collect();
            return Err(format!(
                "label_value_length_limit exceeded (metric: {metric}, label name: {name}, value: {value:?}, length: {}, limit: {})",
                lb.value.len(),
                s.label_value_length_limit
            ));
        }
    }
    Ok(())
}

/// A deterministic offset within the interval, so targets do not all scrape at once.
fn spread_offset(target: &Target, interval: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    target.url.hash(&mut h);
    target.labels.hash(&mut h);
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(h.finish() % ms)
}

/// An error text in the shape of Prometheus' `lastError` (`Get "url": ...`).
fn describe_reqwest(url: &str, e: &reqwest::Error) -> String {
    use std::error::Error;
    if e.is_timeout() {
        return format!("Get {url:?}: context deadline exceeded");
    }
    // The innermost cause is the useful part (e.g. "Connection refused (os error 111)").
    let mut cause = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    format!("Get {url:?}: {cause}")
}
