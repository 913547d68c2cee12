//! Prometheus' remote storage protocols for vigil (`docs/scale-out.md`).
//!
//! - **Remote write, sending** ([`queue`], [`storage`]): a queue per `remote_write` entry tails
//!   the WAL through the `vigil_model::wal::WalSource` seam, so samples are sent from disk, not from memory; a receiver that is
//!   down loses nothing the WAL still holds. The position sent so far is persisted per queue
//!   ([`position`]) and pins the WAL segments the queue still needs (up to a bound).
//!   Requests are Prometheus' `WriteRequest` ([`prompb`], our own `prost` structs from the specification),
//!   snappy block-compressed, with the remote-write 1.0 headers; native histograms go in
//!   `TimeSeries.histograms` (with `send_native_histograms`, as in Prometheus).
//! - **Remote write, receiving** and **remote read serving** ([`server`]): `/api/v1/write` and
//!   `/api/v1/read` (SAMPLES and STREAMED_XOR_CHUNKS, [`xor`] being Prometheus' exact chunk
//!   layout).
//! - **OTLP receiving** ([`otlp`]): `/api/v1/otlp/v1/metrics`, OpenTelemetry metrics translated
//!   into series by Prometheus 3.x's rules.
//! - **Remote read, querying** ([`read`]): `remote_read` endpoints merged with local data
//!   behind the `Queryable` seam.

pub mod codec;
pub mod metrics;
pub mod otlp;
pub mod position;
pub mod prompb;
pub mod queue;
pub mod read;
pub mod server;
pub mod storage;
pub mod xor;

pub use metrics::{QueueMetrics, ServerMetrics};
pub use queue::{MetadataSource, StartAt};
pub use read::Fanout;
pub use server::{ServerState, routes};
pub use storage::{RemoteOptions, RemoteStorage};
