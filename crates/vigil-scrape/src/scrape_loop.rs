//! One target's scrape loop: fetch, parse, label, relabel, append, mark stale.
//!
//! A scrape is all or nothing: samples go into one Appender batch that is committed only when
//! the whole body parsed and no limit was exceeded; otherwise it is rolled back, `up` is 0,
//! and the target's series of the last good scrape are marked stale, as in Prometheus.

use crate::manager::{TargetHealth, TargetStatus};
use crate::scrape_cache::{CacheEntry, ScrapeCache};
use crate::target::Target;
use parking_lot::Mutex;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use vigil_config::relabel::{self, RelabelConfig};
use vigil_exposition::{
    Entry, Format, MetricType, NativeHistogram, ProtoOptions, ProtoScratch, SampleEntry,
    ScrapeParser,
};
use vigil_model::MetricMetadata;
use vigil_model::histogram::nhcb::ClassicHistogram;
use vigil_model::histogram::{
    CounterResetHint, EXPONENTIAL_SCHEMA_MAX, EXPONENTIAL_SCHEMA_MIN, FloatHistogram, Span,
    is_exponential_schema,
};
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
    /// Scrapes starting this close to their schedule get the scheduled timestamp
    /// (`--scrape.adjust-timestamps`); `None` stamps every scrape with its start time.
    pub align_tolerance: Option<Duration>,
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
    /// The `Accept` header, from `scrape_protocols`.
    pub accept: String,
    /// `fallback_scrape_protocol`.
    pub fallback: Option<Format>,
    /// `scrape_native_histograms`.
    pub native_histograms: bool,
    /// `always_scrape_classic_histograms`.
    pub keep_classic: bool,
    /// `convert_classic_histograms_to_nhcb`.
    pub convert_nhcb: bool,
    /// `native_histogram_bucket_limit` (0: none).
    pub bucket_limit: u64,
    /// The highest schema kept, from `native_histogram_min_bucket_factor` (8: any).
    pub max_schema: i32,
    /// `metric_name_validation_scheme: legacy`: a scraped series whose final name or label
    /// names are not legacy-valid fails the scrape, as in Prometheus 3.
    pub legacy_names: bool,
}

/// The schema whose bucket growth factor is at least `factor`, as Prometheus picks it for
/// `native_histogram_min_bucket_factor` (a factor of at most 1 means the finest schema).
pub(crate) fn pick_schema(factor: Option<f64>) -> i32 {
    let f = match factor {
        Some(f) if f > 1.0 => f,
        _ => 1.00271,
    };
    let floor = (-(f.log2().log2())).floor();
    if floor >= EXPONENTIAL_SCHEMA_MAX as f64 {
        EXPONENTIAL_SCHEMA_MAX
    } else if floor <= EXPONENTIAL_SCHEMA_MIN as f64 {
        EXPONENTIAL_SCHEMA_MIN
    } else {
        floor as i32
    }
}

/// Counts of one scrape, for the synthetic series.
#[derive(Default, Clone, Copy, Debug)]
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
    /// The protobuf parser's buffers, reused the same way.
    scratch: ProtoScratch,
    /// The native histogram being appended, its bucket vectors reused.
    hist: FloatHistogram,
    /// Buffers for the classic-to-NHCB grouping keys.
    nhcb_key: Vec<u8>,
    nhcb_next_key: Vec<u8>,
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
            scratch: ProtoScratch::default(),
            hist: FloatHistogram::default(),
            nhcb_key: Vec::new(),
            nhcb_next_key: Vec::new(),
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
        let mut schedule = self
            .settings
            .align_tolerance
            .map(|tol| Schedule::new(now_millis(), self.settings.interval, tol));
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => break,
            }
            let now = now_millis();
            let ts = schedule.as_mut().map_or(now, |s| s.stamp(now));
            tokio::select! {
                _ = self.scrape_once(ts) => {}
                _ = stop.changed() => break,
            }
        }
        self.mark_all_stale(now_millis(), true);
    }

    async fn scrape_once(&mut self, ts: Timestamp) {
        self.iteration += 1;
        let started = Instant::now();
        let result = match self.fetch().await {
            Ok(format) => self.ingest(format, ts),
            Err(e) => Err((e, Report::default())),
        };
        let duration = started.elapsed();
        body_pool::give(std::mem::take(&mut self.body));
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

    /// Reads the body into a reused buffer, within the size limit and the timeout.
    async fn fetch(&mut self) -> Result<Format, String> {
        if self.body.capacity() == 0 {
            self.body = body_pool::take();
        }
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
            .header("Accept", s.accept.as_str())
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", s.timeout.as_secs_f64()),
            )
            .timeout(s.timeout)
            .send();
        let body = &mut self.body;
        let fallback = s.fallback;
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
            Ok(vigil_exposition::format_for_scrape(ct.as_deref(), fallback))
        };
        match tokio::time::timeout_at(deadline, read).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "Get {:?}: context deadline exceeded",
                vigil_config::redact_url_as(url, "***")
            )),
        }
    }

    /// Parses the body and appends its samples as one batch; on any error the batch is
    /// rolled back, so a bad scrape stores nothing.
    fn ingest(&mut self, format: Format, ts: Timestamp) -> Result<Report, (String, Report)> {
        let db = Arc::clone(&self.db);
        let mut app = db.appender();
        let body = std::mem::take(&mut self.body);
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut rep = Report::default();
        let outcome = self.ingest_into(app.as_mut(), &body, &mut scratch, format, ts, &mut rep);
        self.body = body;
        self.scratch = scratch;
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

    fn ingest_into<'a>(
        &mut self,
        app: &mut dyn Appender,
        body: &'a [u8],
        scratch: &'a mut ProtoScratch,
        format: Format,
        ts: Timestamp,
        rep: &mut Report,
    ) -> Result<(), String> {
        let mut meta_changed = false;
        self.cache.begin();
        let opts = ProtoOptions {
            native_histograms: self.settings.native_histograms,
            keep_classic: self.settings.keep_classic,
        };
        // A line the cache holds was checked when it was first seen, in the same format: only
        // new lines need their labels checked.
        let mut parser = ScrapeParser::new(body, format, opts, scratch);
        if self.cached_format == Some(format) {
            parser = parser.defer_label_checks();
        }
        self.cached_format = Some(format);
        // The family the samples belong to, for classic-to-NHCB conversion: its name, type,
        // and whether it had a native histogram (then its classic series are not converted).
        let mut family: &'a str = "";
        let mut family_kind = MetricType::Unknown;
        let mut family_native = false;
        let mut pending: Option<PendingNhcb<'a>> = None;
        for entry in parser {
            let s = match entry.map_err(|e| e.to_string())? {
                Entry::Sample(s) => s,
                Entry::Histogram(h) => {
                    self.flush_nhcb(app, &mut pending, ts, rep)?;
                    family_native = true;
                    rep.scraped += 1;
                    fill_histogram(&mut self.hist, &h.histogram);
                    let sample_ts = self.sample_ts(h.timestamp_ms, ts);
                    let explicit_ts = h.timestamp_ms.is_some() && self.settings.honor_timestamps;
                    let build = |target: &Target, honor: bool| {
                        Ok(merge_labels(target, honor, &h.name, h.labels()))
                    };
                    let mut hist = std::mem::take(&mut self.hist);
                    let r = self.append_series(
                        app,
                        h.series,
                        sample_ts,
                        explicit_ts,
                        Value::Hist(&mut hist),
                        rep,
                        &build,
                    );
                    self.hist = hist;
                    r?;
                    continue;
                }
                Entry::Help { family: f, help } => {
                    meta_changed |= update(&mut self.metadata, f, |m| &mut m.help, &help);
                    continue;
                }
                Entry::Type { family: f, kind } => {
                    self.flush_nhcb(app, &mut pending, ts, rep)?;
                    (family, family_kind, family_native) = (f, kind, false);
                    meta_changed |= update(&mut self.metadata, f, |m| &mut m.kind, kind.as_str());
                    continue;
                }
                Entry::Unit { family: f, unit } => {
                    meta_changed |= update(&mut self.metadata, f, |m| &mut m.unit, unit);
                    continue;
                }
            };
            if self.settings.convert_nhcb && !family_native {
                if let Some(part) = classic_part(family, family_kind, &s.name) {
                    self.nhcb_next_key.clear();
                    group_key(&mut self.nhcb_next_key, family, &s);
                    if pending.is_some() && self.nhcb_next_key != self.nhcb_key {
                        self.flush_nhcb(app, &mut pending, ts, rep)?;
                    }
                    if pending.is_none() {
                        std::mem::swap(&mut self.nhcb_key, &mut self.nhcb_next_key);
                        pending = Some(PendingNhcb {
                            family,
                            gauge: family_kind == MetricType::GaugeHistogram,
                            first: s.clone(),
                            classic: ClassicHistogram::new(),
                        });
                    }
                    if let Some(p) = pending.as_mut() {
                        match part {
                            ClassicPart::Count => p.classic.set_count(s.value),
                            ClassicPart::Sum => p.classic.set_sum(s.value),
                            ClassicPart::Bucket => {
                                let le = s.label("le").and_then(|v| v.trim().parse::<f64>().ok());
                                match le {
                                    Some(le) => p.classic.set_bucket(le, s.value),
                                    None => p.classic.set_bucket(f64::NAN, s.value),
                                }
                            }
                        }
                    }
                    if !self.settings.keep_classic {
                        // Not appended, so not cached: its syntax is checked here.
                        s.check().map_err(|e| e.to_string())?;
                        continue;
                    }
                } else {
                    self.flush_nhcb(app, &mut pending, ts, rep)?;
                }
            }
            rep.scraped += 1;
            let sample_ts = self.sample_ts(s.timestamp_ms, ts);
            let explicit_ts = s.timestamp_ms.is_some() && self.settings.honor_timestamps;
            let build = |target: &Target, honor: bool| {
                s.check().map_err(|e| e.to_string())?;
                Ok(merge_labels(target, honor, &s.name, s.labels()))
            };
            self.append_series(
                app,
                s.series,
                sample_ts,
                explicit_ts,
                Value::Float(s.value),
                rep,
                &build,
            )?;
        }
        self.flush_nhcb(app, &mut pending, ts, rep)?;
        if meta_changed {
            self.status.lock().metadata = Arc::new(self.metadata.clone());
        }
        Ok(())
    }

    /// The timestamp a sample is stored at.
    fn sample_ts(&self, own: Option<i64>, scrape: Timestamp) -> Timestamp {
        match (self.settings.honor_timestamps, own) {
            (true, Some(t)) => t,
            _ => scrape,
        }
    }

    /// Appends the NHCB of the classic histogram collected so far, if any.
    fn flush_nhcb(
        &mut self,
        app: &mut dyn Appender,
        pending: &mut Option<PendingNhcb<'_>>,
        ts: Timestamp,
        rep: &mut Report,
    ) -> Result<(), String> {
        let Some(p) = pending.take() else {
            return Ok(());
        };
        let mut h = match p.classic.convert() {
            Ok(h) => h,
            Err(e) => {
                // Prometheus skips a classic histogram it cannot convert.
                tracing::debug!(family = p.family, error = %e, "Classic histogram not converted to NHCB");
                return Ok(());
            }
        };
        if p.gauge {
            h.counter_reset_hint = CounterResetHint::Gauge;
        }
        rep.scraped += 1;
        let sample_ts = self.sample_ts(p.first.timestamp_ms, ts);
        let explicit_ts = p.first.timestamp_ms.is_some() && self.settings.honor_timestamps;
        let first = &p.first;
        let build = |target: &Target, honor: bool| {
            first.check().map_err(|e| e.to_string())?;
            let labels = first.labels().filter(|(k, _)| k != "le");
            Ok(merge_labels(target, honor, p.family, labels))
        };
        let key = std::mem::take(&mut self.nhcb_key);
        let r = self.append_series(
            app,
            &key,
            sample_ts,
            explicit_ts,
            Value::Hist(&mut h),
            rep,
            &build,
        );
        self.nhcb_key = key;
        r
    }

    /// Appends one sample of the series whose cache key is `key`: through the cached
    /// reference on a hit, else with the labels `build` makes (the sample's own merged with
    /// the target's), metric-relabeled and checked against the label limits.
    #[allow(clippy::too_many_arguments)]
    fn append_series(
        &mut self,
        app: &mut dyn Appender,
        key: &[u8],
        sample_ts: Timestamp,
        explicit_ts: bool,
        mut value: Value<'_>,
        rep: &mut Report,
        build: &dyn Fn(&Target, bool) -> Result<Labels, String>,
    ) -> Result<(), String> {
        let iteration = self.iteration;
        let settings = &self.settings;
        let target = &self.target;
        let build = || build(target, settings.honor_labels);
        let is_hist = matches!(value, Value::Hist(_));
        match self.cache.get_mut(key) {
            Some(entry) => {
                if entry.last_seen == iteration {
                    // A repeated series within one scrape: Prometheus keeps the first
                    // sample and counts the rest as duplicates; the scrape still succeeds.
                    return Ok(());
                }
                entry.last_seen = iteration;
                if entry.dropped {
                    return Ok(()); // dropped by metric relabeling
                }
                count_sample(rep, settings.sample_limit)?;
                limit_histogram(&mut value, settings)?;
                let mut result =
                    append_value(app, entry.series, &Labels::empty(), sample_ts, &value);
                if matches!(result, Err(AppendError::EmptyLabels)) {
                    // The cached reference is gone from storage: rebuild the labels once.
                    let labels = build()?;
                    if let Some(l) = relabel::process(&labels, &settings.metric_relabel) {
                        result = append_value(app, None, &l, sample_ts, &value);
                    }
                }
                match result {
                    Ok(r) => {
                        entry.series = Some(r);
                        entry.histogram = is_hist;
                    }
                    Err(e) => tracing::trace!(error = %e, "Sample refused"),
                }
            }
            None => {
                // A miss: the line is checked, and the final labels built, once, here.
                let labels = build()?;
                let labels = relabel::process(&labels, &settings.metric_relabel);
                let mut e = CacheEntry {
                    series: None,
                    dropped: labels.is_none(),
                    last_seen: iteration,
                    explicit_ts,
                    histogram: is_hist,
                };
                if let Some(l) = labels {
                    if settings.legacy_names {
                        check_legacy_names(&l)?;
                    }
                    check_label_limits(&l, settings)?;
                    rep.added += 1;
                    count_sample(rep, settings.sample_limit)?;
                    limit_histogram(&mut value, settings)?;
                    match append_value(app, None, &l, sample_ts, &value) {
                        Ok(r) => e.series = Some(r),
                        Err(err) => {
                            tracing::trace!(series = %l, error = %err, "Sample refused")
                        }
                    }
                }
                self.cache.insert(key, e);
            }
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
                write_stale(app.as_mut(), e, ts);
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
                write_stale(app.as_mut(), e, ts);
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

/// A sample's own labels (`name` and `labels`) merged with the target's, as Prometheus does:
/// with `honor_labels` the scraped value wins, otherwise a clash renames the scraped label to
/// `exported_<name>`.
fn merge_labels<'a>(
    target: &Target,
    honor_labels: bool,
    name: &str,
    labels: impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)>,
) -> Labels {
    let mut b = LabelsBuilder::new();
    b.set("__name__", name.to_string());
    // Labels exposed with an empty value: absent from the series, but with `honor_labels`
    // they still keep the target's label of that name out, as in Prometheus
    // (`lset.Has`), e.g. the `instance=""` a federation endpoint writes.
    let mut empty: Vec<String> = Vec::new();
    for (k, v) in labels {
        if v.is_empty() {
            empty.push(k.to_string());
        }
        b.set(k.to_string(), v.to_string());
    }
    for l in &target.labels {
        match b.get(&l.name).map(str::to_string) {
            Some(_) if honor_labels => {}
            None if honor_labels && empty.contains(&l.name) => {}
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

/// A sample's value: a float, or a native histogram (which the bucket limits may reduce).
enum Value<'h> {
    Float(f64),
    Hist(&'h mut FloatHistogram),
}

fn append_value(
    app: &mut dyn Appender,
    cached: Option<SeriesRef>,
    labels: &Labels,
    t: Timestamp,
    v: &Value<'_>,
) -> Result<SeriesRef, AppendError> {
    match v {
        Value::Float(f) => app.append(cached, labels, t, *f),
        Value::Hist(h) => app.append_histogram(cached, labels, t, h),
    }
}

/// The staleness marker of a series: a float StaleNaN, or for a series whose last sample was
/// a histogram, a histogram whose sum is StaleNaN (what Prometheus' head stores when a float
/// StaleNaN comes for a histogram series).
fn write_stale(app: &mut dyn Appender, e: &CacheEntry, ts: Timestamp) {
    if e.histogram {
        let h = FloatHistogram {
            sum: stale_nan(),
            ..Default::default()
        };
        let _ = app.append_histogram(e.series, &Labels::empty(), ts, &h);
    } else {
        let _ = app.append(e.series, &Labels::empty(), ts, stale_nan());
    }
}

/// `native_histogram_min_bucket_factor` and `native_histogram_bucket_limit`, in Prometheus'
/// order: the schema is first lowered to the highest one the factor allows, then lowered one
/// step at a time while the histogram has more buckets than the limit. A histogram still
/// over the limit at schema −4, or one with custom buckets over it, fails the scrape.
fn limit_histogram(v: &mut Value<'_>, s: &LoopSettings) -> Result<(), String> {
    let Value::Hist(h) = v else {
        return Ok(());
    };
    let reserved = vigil_model::histogram::EXPONENTIAL_SCHEMA_MIN_RESERVED
        ..=vigil_model::histogram::EXPONENTIAL_SCHEMA_MAX_RESERVED;
    if reserved.contains(&h.schema) && h.schema > s.max_schema {
        h.reduce_resolution(s.max_schema)
            .map_err(|e| e.to_string())?;
    }
    let limit = s.bucket_limit as usize;
    if limit == 0 {
        return Ok(());
    }
    let buckets = |h: &FloatHistogram| h.positive_buckets.len() + h.negative_buckets.len();
    if buckets(h) > limit && !is_exponential_schema(h.schema) {
        return Err(BUCKET_LIMIT_ERROR.into());
    }
    while buckets(h) > limit {
        if h.schema <= EXPONENTIAL_SCHEMA_MIN {
            return Err(BUCKET_LIMIT_ERROR.into());
        }
        let target = h.schema - 1;
        h.reduce_resolution(target).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Prometheus' error text for `native_histogram_bucket_limit`.
const BUCKET_LIMIT_ERROR: &str = "histogram bucket limit exceeded";

/// Copies an exposed native histogram into the reused buffer and compacts it, as Prometheus
/// does with what it parses.
fn fill_histogram(dst: &mut FloatHistogram, n: &NativeHistogram<'_>) {
    dst.counter_reset_hint = if n.gauge {
        CounterResetHint::Gauge
    } else {
        CounterResetHint::Unknown
    };
    dst.schema = n.schema;
    dst.zero_threshold = n.zero_threshold;
    dst.zero_count = n.zero_count;
    dst.count = n.count;
    dst.sum = n.sum;
    let span = |s: &vigil_exposition::Span| Span {
        offset: s.offset,
        length: s.length,
    };
    dst.positive_spans.clear();
    dst.positive_spans.extend(n.positive_spans.iter().map(span));
    dst.negative_spans.clear();
    dst.negative_spans.extend(n.negative_spans.iter().map(span));
    dst.positive_buckets.clear();
    dst.positive_buckets.extend_from_slice(n.positive_counts);
    dst.negative_buckets.clear();
    dst.negative_buckets.extend_from_slice(n.negative_counts);
    dst.custom_values = None;
    dst.compact(0);
}

/// A classic histogram being collected for conversion to NHCB.
struct PendingNhcb<'a> {
    family: &'a str,
    gauge: bool,
    /// Its first series: labels (less `le`) and timestamp for the NHCB series.
    first: SampleEntry<'a>,
    classic: ClassicHistogram,
}

#[derive(Clone, Copy)]
enum ClassicPart {
    Count,
    Sum,
    Bucket,
}

/// Which part of a classic histogram of `family` a sample named `name` is, if any.
fn classic_part(family: &str, kind: MetricType, name: &str) -> Option<ClassicPart> {
    let gauge = match kind {
        MetricType::Histogram => false,
        MetricType::GaugeHistogram => true,
        _ => return None,
    };
    Some(match name.strip_prefix(family)? {
        "_bucket" => ClassicPart::Bucket,
        "_count" => ClassicPart::Count,
        "_sum" => ClassicPart::Sum,
        "_gcount" if gauge => ClassicPart::Count,
        "_gsum" if gauge => ClassicPart::Sum,
        _ => return None,
    })
}

/// The key of the NHCB series a classic sample belongs to: a byte no exposition line starts
/// with, the family, and the sample's labels other than `le` in body order.
fn group_key(out: &mut Vec<u8>, family: &str, s: &SampleEntry<'_>) {
    out.push(0);
    out.extend_from_slice(family.as_bytes());
    for (k, v) in s.labels() {
        if k == "le" {
            continue;
        }
        out.push(0xff);
        out.extend_from_slice(k.as_bytes());
        out.push(0xfe);
        out.extend_from_slice(v.as_bytes());
    }
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

/// Prometheus 3's check of the final labels under legacy name validation, with its error
/// text (the label set as Go prints it, `__name__` included).
fn check_legacy_names(l: &Labels) -> Result<(), String> {
    use vigil_model::names::{is_legacy_label_name, is_legacy_metric_name};
    let ok = l.iter().all(|lb| {
        if lb.name == vigil_model::METRIC_NAME {
            is_legacy_metric_name(&lb.value)
        } else {
            is_legacy_label_name(&lb.name)
        }
    });
    if ok {
        return Ok(());
    }
    let pairs: Vec<String> = l
        .iter()
        .map(|lb| format!("{}={:?}", lb.name, lb.value))
        .collect();
    Err(format!(
        "invalid metric name or label names: {{{}}}",
        pairs.join(", ")
    ))
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

/// An error text in the shape of Prometheus' `lastError` (`Get "url": ...`), the URL's password
/// shown as `***` as Go's HTTP client shows it.
fn describe_reqwest(url: &str, e: &reqwest::Error) -> String {
    use std::error::Error;
    let url = &*vigil_config::redact_url_as(url, "***");
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

/// The intended scrape times of one loop, for timestamp alignment.
///
/// Timers fire a millisecond or two late, and a timestamp delta that varies by even one
/// millisecond costs bits in every chunk encoding, while a constant delta costs almost none.
/// Prometheus therefore stamps a scrape that starts within a small tolerance of its slot
/// (at most 1% of the interval, 2 ms by default) with the slot's time; vigil does the same.
/// The schedule starts at the loop's first tick and advances by whole intervals, so a skipped
/// tick does not shift it. Unlike Prometheus, a wall clock that stepped back by more than
/// the tolerance restarts the schedule at the current time instead of stamping scrapes
/// with a slot in the future.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    slot: Timestamp,
    interval: i64,
    tolerance: i64,
}

impl Schedule {
    pub(crate) fn new(start: Timestamp, interval: Duration, tolerance: Duration) -> Self {
        let interval = (interval.as_millis() as i64).max(1);
        let tolerance = (tolerance.as_millis() as i64).min(interval / 100);
        Schedule {
            slot: start,
            interval,
            tolerance,
        }
    }

    /// The timestamp for a scrape starting at `now`.
    pub(crate) fn stamp(&mut self, now: Timestamp) -> Timestamp {
        let behind = now - self.slot;
        if behind < -self.tolerance {
            self.slot = now;
            return now;
        }
        if behind >= self.interval {
            self.slot += behind / self.interval * self.interval;
        }
        if (now - self.slot).abs() <= self.tolerance {
            self.slot
        } else {
            now
        }
    }
}

#[cfg(test)]
mod tests;

/// Response bodies are reused from scrape to scrape through a pool shared by every target
/// instead of one buffer per target: only the scrapes in flight need one, and a buffer kept per
/// target held a whole response (about 115 bytes a series) for every target between scrapes.
mod body_pool {
    use std::sync::Mutex;

    /// Buffers kept: more than the scrapes usually in flight at once (each target's scrapes
    /// start at its own offset in the interval, so few overlap). A buffer beyond these is
    /// freed after its scrape. 16 kept held 9 MB at 100,000 series in a heap profile
    /// (2026-12-06); the saving of 4 was not measured on its own.
    const KEEP: usize = 4;
    /// A buffer larger than this is dropped after use rather than kept for everyone.
    const MAX_KEEP_BYTES: usize = 64 << 20;

    static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

    pub fn take() -> Vec<u8> {
        POOL.lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default()
    }

    pub fn give(mut b: Vec<u8>) {
        if b.capacity() == 0 || b.capacity() > MAX_KEEP_BYTES {
            return;
        }
        b.clear();
        if let Ok(mut p) = POOL.lock()
            && p.len() < KEEP
        {
            p.push(b);
        }
    }
}
