//! One target's scrape loop: fetch, parse, label, relabel, append, mark stale.

use crate::manager::{TargetHealth, TargetStatus};
use crate::target::Target;
use ahash::AHashMap;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use vigil_config::relabel::{self, RelabelConfig};
use vigil_exposition::{Entry, Format, Parser};
use vigil_model::{
    Appendable, Appender, Labels, LabelsBuilder, SeriesRef, Timestamp, now_millis, stale_nan,
};

/// What a loop needs from its scrape config, resolved once per config load.
#[derive(Clone)]
pub(crate) struct LoopSettings {
    pub interval: Duration,
    pub timeout: Duration,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub sample_limit: u64,
    pub label_limit: u64,
    pub body_size_limit: u64,
    pub metric_relabel: Arc<Vec<RelabelConfig>>,
    pub client: reqwest::Client,
}

struct CacheEntry {
    /// Reference in storage; `None` when metric relabeling dropped the series.
    series: Option<SeriesRef>,
    labels: Labels,
    /// Scrape number in which the series was last seen.
    last_seen: u64,
    /// The target gave an explicit timestamp: Prometheus writes no staleness for such series.
    explicit_ts: bool,
}

/// Outcome of one scrape, for the synthetic series and the target status.
struct Report {
    scraped: u64,
    post_relabel: u64,
    added: u64,
}

#[derive(Debug)]
enum ScrapeError {
    Http(String),
    Parse(String),
    Limit(String),
}

impl std::fmt::Display for ScrapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScrapeError::Http(m) | ScrapeError::Parse(m) | ScrapeError::Limit(m) => f.write_str(m),
        }
    }
}

pub(crate) struct ScrapeLoop {
    target: Target,
    settings: LoopSettings,
    db: Arc<dyn Appendable>,
    status: Arc<Mutex<TargetStatus>>,
    cache: AHashMap<Box<[u8]>, CacheEntry>,
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
            cache: AHashMap::new(),
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
            self.scrape_once().await;
        }
        self.mark_all_stale(now_millis(), true);
    }

    async fn scrape_once(&mut self) {
        self.iteration += 1;
        let started = Instant::now();
        let ts = now_millis();
        let fetched = self.fetch().await;
        let result = match fetched {
            Ok((body, format)) => self.ingest(&body, format, ts),
            Err(e) => Err(e),
        };
        let duration = started.elapsed();
        let (up, report) = match &result {
            Ok(r) => (1.0, Report { ..*r }),
            Err(_) => {
                self.mark_all_stale(ts, false);
                (
                    0.0,
                    Report {
                        scraped: 0,
                        post_relabel: 0,
                        added: 0,
                    },
                )
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
            Err(e) => {
                tracing::debug!(target = %self.target.url, error = %e, "scrape failed");
                st.health = TargetHealth::Down;
                st.last_error = e.to_string();
            }
        }
    }

    async fn fetch(&self) -> Result<(Vec<u8>, Format), ScrapeError> {
        let s = &self.settings;
        let resp = s
            .client
            .get(&self.target.url)
            .header("Accept", vigil_exposition::ACCEPT_HEADER)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", s.timeout.as_secs_f64()),
            )
            .timeout(s.timeout)
            .send()
            .await
            .map_err(|e| ScrapeError::Http(describe_reqwest(&e)))?;
        if !resp.status().is_success() {
            return Err(ScrapeError::Http(format!(
                "server returned HTTP status {}",
                resp.status()
            )));
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .bytes()
            .await
            .map_err(|e| ScrapeError::Http(describe_reqwest(&e)))?;
        if s.body_size_limit > 0 && body.len() as u64 > s.body_size_limit {
            return Err(ScrapeError::Limit(format!(
                "body size limit exceeded ({} bytes)",
                s.body_size_limit
            )));
        }
        Ok((
            body.to_vec(),
            vigil_exposition::format_from_content_type(ct.as_deref()),
        ))
    }

    /// Parses the body and appends its samples as one batch; on any error the batch is
    /// rolled back, so a bad scrape stores nothing.
    fn ingest(
        &mut self,
        body: &[u8],
        format: Format,
        ts: Timestamp,
    ) -> Result<Report, ScrapeError> {
        let db = Arc::clone(&self.db);
        let mut app = db.appender();
        match self.ingest_into(app.as_mut(), body, format, ts) {
            Ok(r) => {
                app.commit()
                    .map_err(|e| ScrapeError::Http(format!("storage: {e}")))?;
                self.mark_unseen_stale(ts);
                self.last_ok = Some(self.iteration);
                Ok(r)
            }
            Err(e) => {
                app.rollback();
                Err(e)
            }
        }
    }

    fn ingest_into(
        &mut self,
        app: &mut dyn Appender,
        body: &[u8],
        format: Format,
        ts: Timestamp,
    ) -> Result<Report, ScrapeError> {
        let mut rep = Report {
            scraped: 0,
            post_relabel: 0,
            added: 0,
        };
        let iteration = self.iteration;
        for entry in Parser::new(body, format) {
            let entry = entry.map_err(|e| ScrapeError::Parse(e.to_string()))?;
            let Entry::Sample(s) = entry else { continue };
            rep.scraped += 1;
            let sample_ts = match (self.settings.honor_timestamps, s.timestamp_ms) {
                (true, Some(t)) => t,
                _ => ts,
            };
            let entry = match self.cache.get_mut(s.series) {
                Some(e) => e,
                None => {
                    let labels = self.sample_labels(&s)?;
                    let final_labels = relabel::process(&labels, &self.settings.metric_relabel);
                    let e = CacheEntry {
                        series: None,
                        labels: final_labels.clone().unwrap_or_default(),
                        last_seen: 0,
                        explicit_ts: s.timestamp_ms.is_some() && self.settings.honor_timestamps,
                    };
                    if final_labels.is_some() {
                        rep.added += 1;
                    }
                    self.cache.entry(s.series.into()).or_insert(e)
                }
            };
            if entry.last_seen == iteration {
                // Prometheus drops a repeated series within one scrape.
                continue;
            }
            entry.last_seen = iteration;
            if entry.labels.is_empty() {
                continue; // dropped by metric relabeling
            }
            rep.post_relabel += 1;
            if self.settings.sample_limit > 0 && rep.post_relabel > self.settings.sample_limit {
                return Err(ScrapeError::Limit(format!(
                    "sample limit exceeded (limit {})",
                    self.settings.sample_limit
                )));
            }
            match app.append(entry.series, &entry.labels, sample_ts, s.value) {
                Ok(r) => entry.series = Some(r),
                Err(e) => tracing::trace!(series = %entry.labels, error = %e, "sample refused"),
            }
        }
        Ok(rep)
    }

    /// The sample's own labels merged with the target's, as Prometheus does: with
    /// `honor_labels` the scraped value wins, otherwise a clash renames the scraped label to
    /// `exported_<name>`.
    fn sample_labels(&self, s: &vigil_exposition::SampleEntry<'_>) -> Result<Labels, ScrapeError> {
        let mut b = LabelsBuilder::new();
        b.set("__name__", s.name.to_string());
        let mut n = 0u64;
        for (k, v) in s.labels() {
            b.set(k.to_string(), v.to_string());
            n += 1;
        }
        if self.settings.label_limit > 0
            && n + self.target.labels.len() as u64 > self.settings.label_limit
        {
            return Err(ScrapeError::Limit(format!(
                "label_limit exceeded (limit {})",
                self.settings.label_limit
            )));
        }
        for l in &self.target.labels {
            match b.get(&l.name).map(str::to_string) {
                Some(_) if self.settings.honor_labels => {}
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
        Ok(b.build())
    }

    /// After a successful scrape: series of the previous successful scrape that are missing
    /// now get a stale marker; series not seen in this scrape leave the cache.
    fn mark_unseen_stale(&mut self, ts: Timestamp) {
        let cur = self.iteration;
        let prev = self.last_ok;
        let db = Arc::clone(&self.db);
        let mut app = db.appender();
        self.cache.retain(|_, e| {
            if e.last_seen == cur {
                return true;
            }
            if Some(e.last_seen) == prev && !e.explicit_ts && !e.labels.is_empty() {
                let _ = app.append(e.series, &e.labels, ts, stale_nan());
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
            for e in self
                .cache
                .values()
                .filter(|e| e.last_seen == prev && !e.explicit_ts && !e.labels.is_empty())
            {
                let _ = app.append(e.series, &e.labels, ts, stale_nan());
            }
        }
        if target_gone {
            for r in self.synthetic.iter().filter(|r| r.is_some()) {
                let _ = app.append(*r, &Labels::empty(), ts, stale_nan());
            }
        }
        let _ = app.commit();
    }

    fn synthetic_labels(&self, i: usize) -> Labels {
        let mut b = self.target.labels.to_builder();
        b.set("__name__", SYNTHETIC[i]);
        b.build()
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
            let labels = if self.synthetic[i].is_some() {
                Labels::empty()
            } else {
                self.synthetic_labels(i)
            };
            if let Ok(r) = app.append(self.synthetic[i], &labels, ts, v) {
                self.synthetic[i] = Some(r);
            }
        }
        let _ = app.commit();
    }
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

fn describe_reqwest(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    if e.is_timeout() {
        msg = format!("context deadline exceeded ({msg})");
    }
    msg
}
