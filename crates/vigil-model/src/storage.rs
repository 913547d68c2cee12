//! The two seams between vigil's parts, after Prometheus' `storage` package.
//!
//! Writers get an [`Appender`], add a batch of samples, then [`Appender::commit`] (the batch is
//! the unit of durability) or [`Appender::rollback`]. Both consume the appender, so it cannot be
//! reused by mistake. Readers get a [`Querier`] over a time range and select series by matchers;
//! samples come back as iterators, so a storage engine can stream them out of its chunks.

use crate::histogram::FloatHistogram;
use crate::{Labels, Matcher, Sample, Timestamp};
use std::sync::Arc;

/// A storage-internal, stable reference to a series. Callers may cache it (the scrape cache
/// does) and pass it back to skip the label lookup; the storage validates it.
pub type SeriesRef = u64;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppendError {
    #[error("out of order sample")]
    OutOfOrder,
    #[error("out of bounds: sample timestamp too old")]
    OutOfBounds,
    #[error("duplicate sample for timestamp")]
    DuplicateTimestamp,
    #[error("series has no labels or no metric name")]
    EmptyLabels,
    /// A histogram sample that fails its own invariants (spans against buckets, counts).
    #[error("invalid histogram: {0}")]
    InvalidHistogram(String),
    /// The storage behind this appender keeps float samples only.
    #[error("native histograms are not supported by this storage")]
    HistogramsUnsupported,
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

/// Why storage could not answer. The cases stay apart because callers act differently on
/// them: an I/O error may pass (space freed, a disk back), corruption will not, and a limit
/// is the query's fault, not the storage's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StorageError {
    /// Reading or writing a file failed; what is stored may be intact.
    #[error("I/O error: {message}")]
    Io {
        kind: std::io::ErrorKind,
        /// The file and the operating system's words.
        message: String,
    },
    /// Stored data failed its checks (file, offset and reason in the message).
    #[error("{0}")]
    Corrupt(String),
    /// The storage refused the request (a bad argument, a locked directory, ...).
    #[error("{0}")]
    Invalid(String),
    #[error("query limit exceeded: {0}")]
    Limit(String),
    #[error("storage is closed")]
    Closed,
}

/// A batch writer. Samples are invisible to queries until `commit`.
pub trait Appender: Send {
    /// Adds one sample. `cached` is a reference returned by an earlier `append` for the same
    /// labels (the scrape cache keeps them); when given and still valid, `labels` is not read.
    /// Returns the series reference to cache.
    fn append(
        &mut self,
        cached: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        v: f64,
    ) -> Result<SeriesRef, AppendError>;

    /// Adds one native-histogram sample; as [`Appender::append`] otherwise. A series may hold
    /// floats and histograms at different timestamps (Prometheus' rule), never both at one.
    /// Storage that keeps floats only answers [`AppendError::HistogramsUnsupported`].
    fn append_histogram(
        &mut self,
        cached: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        h: &FloatHistogram,
    ) -> Result<SeriesRef, AppendError> {
        let _ = (cached, labels, t, h);
        Err(AppendError::HistogramsUnsupported)
    }

    /// Adds one float sample with its start timestamp `st` (when the counter or the delta it
    /// belongs to started, as OpenTelemetry and Prometheus 3.x carry it; 0: unknown). Storage
    /// that keeps no start timestamps stores the sample alone.
    fn append_with_st(
        &mut self,
        cached: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        v: f64,
        st: Timestamp,
    ) -> Result<SeriesRef, AppendError> {
        let _ = st;
        self.append(cached, labels, t, v)
    }

    /// [`Appender::append_histogram`] with a start timestamp, as [`Appender::append_with_st`].
    fn append_histogram_with_st(
        &mut self,
        cached: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        h: &FloatHistogram,
        st: Timestamp,
    ) -> Result<SeriesRef, AppendError> {
        let _ = st;
        self.append_histogram(cached, labels, t, h)
    }

    /// Makes the whole batch durable and visible. Per-sample errors were already reported by
    /// `append`; samples that failed there are not part of the batch.
    fn commit(self: Box<Self>) -> Result<(), StorageError>;

    /// Discards the batch.
    fn rollback(self: Box<Self>);
}

/// Something that hands out appenders: the head, or a fake in tests.
pub trait Appendable: Send + Sync {
    fn appender(&self) -> Box<dyn Appender + '_>;
}

/// What the caller will do with a selection, so storage can skip work.
#[derive(Debug, Clone, Copy, Default)]
pub struct SelectHints {
    /// Inclusive time range of samples needed, in ms.
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The samples of one selected series, in increasing time order. They can be taken one at a
/// time or all at once with [`SampleIterator::drain_into`], which storage that decodes whole
/// chunks overrides: a query reading millions of samples then pays no call per sample.
pub trait SampleIterator: Iterator<Item = Sample> {
    /// Appends every remaining sample to `out`.
    fn drain_into(&mut self, out: &mut Vec<Sample>) {
        out.extend(self);
    }
}

impl SampleIterator for std::vec::IntoIter<Sample> {}

impl<I: SampleIterator + ?Sized> SampleIterator for Box<I> {
    fn drain_into(&mut self, out: &mut Vec<Sample>) {
        (**self).drain_into(out)
    }
}

/// Any iterator of samples, taken one at a time (for sources with nothing faster to offer).
pub struct PerSample<I>(pub I);

impl<I: Iterator<Item = Sample>> Iterator for PerSample<I> {
    type Item = Sample;
    fn next(&mut self) -> Option<Sample> {
        self.0.next()
    }
}

impl<I: Iterator<Item = Sample>> SampleIterator for PerSample<I> {}

/// One native-histogram sample. The histogram is shared: a query that looks at the same
/// sample from many steps holds it once.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    pub t: Timestamp,
    pub h: Arc<FloatHistogram>,
}

/// One selected series: its labels, its float samples in increasing time order within the
/// selected range, and its histogram samples (also in time order; a series that switched kind
/// has both, never at the same timestamp). Floats stream, histograms come as a list: they are
/// few per series next to floats, and every consumer (PromQL, the API, remote read) keeps the
/// two kinds apart as Prometheus does (`FPoint`s and `HPoint`s).
pub struct Series<'a> {
    pub labels: Labels,
    pub samples: Box<dyn SampleIterator + 'a>,
    pub histograms: Vec<HistogramSample>,
    /// Start timestamps of the selected samples that have one, as `(t, st)` in time order
    /// (floats and histograms alike; a sample missing here has none). Empty for storage that
    /// keeps none.
    pub start_timestamps: Vec<(Timestamp, Timestamp)>,
}

/// Series sorted by their label sets.
pub type SeriesSet<'a> = Box<dyn Iterator<Item = Series<'a>> + 'a>;

/// A read view over `[mint, maxt]`.
pub trait Querier {
    /// Series matching all `matchers` (at least one must not match the empty string).
    fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<SeriesSet<'_>, StorageError>;

    /// Sorted label names of series matching `matchers` (all series when empty).
    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError>;

    /// Sorted values of label `name` over series matching `matchers` (all series when empty).
    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError>;
}

/// Something that opens queriers: the head, blocks, a merge of both, or a fake in tests.
pub trait Queryable: Send + Sync {
    fn querier(
        &self,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Box<dyn Querier + '_>, StorageError>;
}
