//! Connection admission and read timeouts, so that slow or stalled clients cannot lock vigil
//! out (issue 20: 1,500 connections dripping a request head one byte every 2 s held all 512
//! slots of `--web.max-connections` forever).
//!
//! Three rules, in the spirit of Go's `http.Server` that Prometheus uses:
//!
//! - **Header timeout** (`--web.read-header-timeout`, vigil's own, default 10 s): a request
//!   head must arrive complete within it, counted from the accept for a new connection and
//!   from the first byte of the next request on a kept-alive one (Go's `ReadHeaderTimeout`).
//!   hyper's own `header_read_timeout` is not used: it also runs while a kept-alive
//!   connection is idle, and would close idle connections after 10 s.
//! - **Read timeout** (`--web.read-timeout`, Prometheus' flag, default 5m): the head and the
//!   body of a request must be read within it, counted from the same start; an idle
//!   kept-alive connection is closed after it too (Go uses `ReadTimeout` as the idle timeout
//!   when none is set, as in Prometheus).
//! - **Admission**: `--web.max-connections` bounds the connections open at once, but only
//!   connections with a request in flight are safe from eviction. When the cap is reached, a
//!   new connection sheds the oldest one that has not completed a request yet (still sending
//!   its first head, or sending nothing), else the oldest kept-alive one between requests,
//!   instead of waiting behind it; only when every connection is serving a request does a new
//!   one wait in the accept queue. So idle or unfinished connections can never exhaust the
//!   cap, a flood of new connections sheds its own kind before a Grafana's kept-alive ones,
//!   and the cap still bounds file descriptors and memory.
//!
//! Connections closed by these rules are counted and logged, at most once per 10 s.

use axum::Router;
use axum::body::{Body, Bytes};
use http_body::Frame;
use hyper::body::Incoming;
use hyper::{Request, Response};
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// The timeouts of [`Timed`] connections; `None`: no limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub header: Option<Duration>,
    pub read: Option<Duration>,
}

impl Limits {
    /// The deadline of a request head started at `start`.
    fn head_deadline(&self, start: Instant) -> Option<Instant> {
        let t = match (self.header, self.read) {
            (Some(h), Some(r)) => h.min(r),
            (h, r) => h.or(r)?,
        };
        Some(start + t)
    }
}

/// Connections closed by the rules above, counted and logged (at most every 10 s).
pub(crate) struct Events {
    pub header_timeouts: AtomicU64,
    pub read_timeouts: AtomicU64,
    pub shed: AtomicU64,
    limits: Limits,
    cap: usize,
    /// When the last report was logged and the totals it had reported.
    reported: Mutex<(Option<Instant>, [u64; 3])>,
}

impl Events {
    pub fn new(limits: Limits, cap: usize) -> Events {
        Events {
            header_timeouts: AtomicU64::new(0),
            read_timeouts: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            limits,
            cap,
            reported: Mutex::new((None, [0; 3])),
        }
    }

    fn totals(&self) -> [u64; 3] {
        [
            self.header_timeouts.load(Ordering::Relaxed),
            self.read_timeouts.load(Ordering::Relaxed),
            self.shed.load(Ordering::Relaxed),
        ]
    }

    /// Logs what happened since the last report, if anything did and 10 s have passed.
    pub fn report_if_due(&self) {
        let now = Instant::now();
        let mut r = self.reported.lock();
        if r.0
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(10))
        {
            return;
        }
        let totals = self.totals();
        let [h, t, s] = [0, 1, 2].map(|i| totals[i] - r.1[i]);
        if h + t + s == 0 {
            return;
        }
        *r = (Some(now), totals);
        drop(r);
        let show = |d: Option<Duration>| {
            d.map_or("0 (none)".to_string(), |d| {
                vigil_model::Duration::from_millis(d.as_millis() as u64).to_string()
            })
        };
        let mut parts = Vec::new();
        if s > 0 {
            parts.push(format!(
                "{s} shed to admit new connections at --web.max-connections={} (they had no \
                 request in flight)",
                self.cap
            ));
        }
        if h > 0 {
            parts.push(format!(
                "{h} sent no complete request head within --web.read-header-timeout={}",
                show(self.limits.header)
            ));
        }
        if t > 0 {
            parts.push(format!(
                "{t} did not send their request, or stayed idle, within --web.read-timeout={}",
                show(self.limits.read)
            ));
        }
        tracing::warn!(
            header_timeouts = h,
            read_timeouts = t,
            shed = s,
            "Closed HTTP connections of slow or stalled clients: {}. Many of these mean \
             clients on a bad network, or a slowloris attack (reported at most every 10 s)",
            parts.join("; ")
        );
    }
}

/// The open connections, for admission and shedding.
pub(crate) struct Table {
    /// Most connections open at once; 0: no limit.
    cap: usize,
    inner: Mutex<Inner>,
    /// Signalled when a connection closes or its last request ends.
    changed: Notify,
    pub events: Arc<Events>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, Arc<Conn>>,
    /// Connections that have not sent a complete request yet, oldest (lowest id) first:
    /// the first to be shed.
    fresh: BTreeSet<u64>,
    /// Kept-alive connections between requests, shed only when no fresh one is left.
    idle: BTreeSet<u64>,
    /// Shed connections whose task has not closed them yet: they still count as open, so
    /// the cap bounds sockets, not just table entries.
    closing: usize,
}

/// One connection's shared state.
pub(crate) struct Conn {
    id: u64,
    /// Requests whose head was read (the service was called).
    requests: AtomicU64,
    /// Requests being served, response body included.
    in_flight: AtomicU32,
    /// When the current request started (accept, or its first byte).
    request_start: Mutex<Instant>,
    /// Signalled when the connection is shed.
    shed: Notify,
    /// Set (under the table's lock) when it was shed.
    is_shed: std::sync::atomic::AtomicBool,
    /// The connection's reader, woken when its last request ends (to start the idle timer).
    read_waker: Mutex<Option<Waker>>,
}

impl Table {
    pub fn new(cap: usize, events: Arc<Events>) -> Table {
        Table {
            cap,
            inner: Mutex::new(Inner::default()),
            changed: Notify::new(),
            events,
        }
    }

    fn has_room(&self) -> bool {
        let i = self.inner.lock();
        self.cap == 0
            || i.open.len() < self.cap
            || !i.fresh.is_empty()
            || !i.idle.is_empty()
            || i.closing > 0
    }

    /// Waits until a new connection can be admitted (a free slot, or one to shed).
    pub async fn wait_for_room(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.has_room() {
                return;
            }
            notified.await;
        }
    }

    /// Admits a new connection. At the cap, sheds the oldest connection without a request in
    /// flight and waits until its socket is closed; with none, waits for a request to end.
    pub async fn admit(&self) -> Arc<Conn> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(c) = self.try_admit() {
                return c;
            }
            notified.await;
        }
    }

    fn try_admit(&self) -> Option<Arc<Conn>> {
        let mut i = self.inner.lock();
        if self.cap > 0 && i.open.len() >= self.cap {
            if i.closing == 0 {
                let victim = i.fresh.pop_first().or_else(|| i.idle.pop_first());
                if let Some(c) = victim.and_then(|v| i.open.get(&v)) {
                    c.is_shed.store(true, Ordering::Relaxed);
                    c.shed.notify_one();
                    i.closing += 1;
                    self.events.shed.fetch_add(1, Ordering::Relaxed);
                }
            }
            return None;
        }
        let id = i.next_id;
        i.next_id += 1;
        let c = Arc::new(Conn {
            id,
            requests: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            request_start: Mutex::new(Instant::now()),
            shed: Notify::new(),
            is_shed: std::sync::atomic::AtomicBool::new(false),
            read_waker: Mutex::new(None),
        });
        i.open.insert(id, Arc::clone(&c));
        i.fresh.insert(id);
        Some(c)
    }

    /// Forgets a closed connection.
    pub fn remove(&self, c: &Conn) {
        let mut i = self.inner.lock();
        i.open.remove(&c.id);
        if c.is_shed.load(Ordering::Relaxed) {
            i.closing -= 1;
        }
        i.fresh.remove(&c.id);
        i.idle.remove(&c.id);
        drop(i);
        self.changed.notify_waiters();
    }

    fn begin_request(self: &Arc<Self>, c: &Arc<Conn>) -> RequestGuard {
        let mut i = self.inner.lock();
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.in_flight.fetch_add(1, Ordering::Relaxed);
        i.fresh.remove(&c.id);
        i.idle.remove(&c.id);
        RequestGuard {
            table: Arc::clone(self),
            conn: Arc::clone(c),
        }
    }

    fn end_request(&self, c: &Conn) {
        let mut i = self.inner.lock();
        if c.in_flight.fetch_sub(1, Ordering::Relaxed) == 1
            && i.open.contains_key(&c.id)
            && !c.is_shed.load(Ordering::Relaxed)
        {
            i.idle.insert(c.id);
        }
        drop(i);
        if let Some(w) = c.read_waker.lock().take() {
            w.wake();
        }
        self.changed.notify_waiters();
    }
}

impl Conn {
    /// Resolves when the connection was shed to admit another.
    pub async fn shed(&self) {
        self.shed.notified().await
    }
}

/// Marks a request in flight until dropped (with the response body).
struct RequestGuard {
    table: Arc<Table>,
    conn: Arc<Conn>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.table.end_request(&self.conn);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request head.
    Head,
    /// Serving a request: no timer here (the body has its own deadline).
    Busy,
    /// Kept alive, waiting for the next request.
    Idle,
}

/// A connection's byte stream with the header, read and idle timeouts applied to reads.
pub(crate) struct Timed<S> {
    io: S,
    table: Arc<Table>,
    conn: Arc<Conn>,
    limits: Limits,
    phase: Phase,
    /// `conn.requests` when last looked at.
    seen: u64,
    timer: Pin<Box<Sleep>>,
    armed: bool,
}

impl<S> Timed<S> {
    pub fn new(io: S, table: Arc<Table>, conn: Arc<Conn>, limits: Limits) -> Timed<S> {
        let start = *conn.request_start.lock();
        let mut t = Timed {
            io,
            table,
            conn,
            limits,
            phase: Phase::Head,
            seen: 0,
            timer: Box::pin(tokio::time::sleep_until(start)),
            armed: false,
        };
        t.arm(limits.head_deadline(start));
        t
    }

    fn arm(&mut self, deadline: Option<Instant>) {
        self.armed = deadline.is_some();
        if let Some(d) = deadline {
            self.timer.as_mut().reset(d);
        }
    }

    /// Follows the connection's requests: busy once a head was read, idle once the last
    /// request ended.
    fn update_phase(&mut self) {
        let started = self.conn.requests.load(Ordering::Relaxed);
        if started != self.seen {
            self.seen = started;
            self.phase = Phase::Busy;
            self.armed = false;
        }
        if self.phase == Phase::Busy && self.conn.in_flight.load(Ordering::Relaxed) == 0 {
            self.phase = Phase::Idle;
            self.arm(self.limits.read.map(|r| Instant::now() + r));
        }
    }

    fn timed_out(&self) -> std::io::Error {
        let ev = &self.table.events;
        let what = if self.phase == Phase::Head
            && self
                .limits
                .header
                .is_some_and(|h| self.limits.read.is_none_or(|r| h <= r))
        {
            ev.header_timeouts.fetch_add(1, Ordering::Relaxed);
            "request head not received within --web.read-header-timeout"
        } else {
            ev.read_timeouts.fetch_add(1, Ordering::Relaxed);
            "request not received within --web.read-timeout"
        };
        ev.report_if_due();
        std::io::Error::new(std::io::ErrorKind::TimedOut, what)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        this.update_phase();
        if this.armed && this.timer.is_elapsed() {
            this.armed = false;
            return Poll::Ready(Err(this.timed_out()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.phase == Phase::Idle && buf.filled().len() > before {
                    // The first bytes of the next request.
                    let now = Instant::now();
                    *this.conn.request_start.lock() = now;
                    this.phase = Phase::Head;
                    this.arm(this.limits.head_deadline(now));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.phase == Phase::Busy {
                    *this.conn.read_waker.lock() = Some(cx.waker().clone());
                    // The request may have ended meanwhile.
                    if this.conn.in_flight.load(Ordering::Relaxed) == 0 {
                        cx.waker().wake_by_ref();
                    }
                } else if this.armed && this.timer.as_mut().poll(cx).is_ready() {
                    this.armed = false;
                    return Poll::Ready(Err(this.timed_out()));
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The router as one connection's hyper service: marks requests in flight (until their
/// response body is done) and puts the read deadline on request bodies.
#[derive(Clone)]
pub(crate) struct ConnService {
    pub app: Router,
    pub table: Arc<Table>,
    pub conn: Arc<Conn>,
    pub limits: Limits,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let guard = self.table.begin_request(&self.conn);
        let deadline = self
            .limits
            .read
            .map(|r| *self.conn.request_start.lock() + r);
        let events = Arc::clone(&self.table.events);
        let req = req.map(|inner| {
            Body::new(DeadlineBody {
                inner,
                deadline,
                timer: None,
                events,
            })
        });
        let app = self.app.clone();
        Box::pin(async move {
            let Ok(resp) = app.oneshot(req).await;
            Ok(resp.map(|body| {
                Body::new(InFlightBody {
                    inner: body,
                    _guard: guard,
                })
            }))
        })
    }
}

/// A request body that fails once the request's read deadline has passed.
struct DeadlineBody {
    inner: Incoming,
    deadline: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    events: Arc<Events>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(d) = this.deadline
            && !http_body::Body::is_end_stream(&this.inner)
        {
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(d)));
            if timer.as_mut().poll(cx).is_ready() {
                this.deadline = None;
                this.events.read_timeouts.fetch_add(1, Ordering::Relaxed);
                this.events.report_if_due();
                return Poll::Ready(Some(Err(
                    "request body not received within --web.read-timeout".into(),
                )));
            }
        }
        Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map_err(|e| Box::new(e) as Self::Error)
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

/// A response body that keeps its request in flight until it is done or dropped.
struct InFlightBody {
    inner: Body,
    _guard: RequestGuard,
}

impl http_body::Body for InFlightBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(cap: usize) -> Arc<Table> {
        let limits = Limits {
            header: Some(Duration::from_secs(10)),
            read: Some(Duration::from_secs(300)),
        };
        Arc::new(Table::new(cap, Arc::new(Events::new(limits, cap))))
    }

    /// At the cap, connections that never completed a request go first, then kept-alive
    /// ones between requests; one serving a request is never shed, and a shed one counts
    /// until its socket is closed.
    #[test]
    fn shedding_order_at_the_cap() {
        let t = table(2);
        let a = t.try_admit().unwrap();
        let b = t.try_admit().unwrap();
        let req_a = t.begin_request(&a);
        // Full: b (fresh) is shed, and the newcomer waits for it to close.
        assert!(t.try_admit().is_none());
        assert!(b.is_shed.load(Ordering::Relaxed) && !a.is_shed.load(Ordering::Relaxed));
        assert!(t.try_admit().is_none(), "still closing");
        t.remove(&b);
        let c = t.try_admit().unwrap();
        // a finishes its request and is idle between requests; c, fresh, goes first.
        drop(req_a);
        assert!(t.try_admit().is_none());
        assert!(c.is_shed.load(Ordering::Relaxed) && !a.is_shed.load(Ordering::Relaxed));
        t.remove(&c);
        let d = t.try_admit().unwrap();
        // Both busy: nothing to shed, nothing admitted.
        let _ra = t.begin_request(&a);
        let _rd = t.begin_request(&d);
        assert!(!t.has_room());
        assert!(t.try_admit().is_none());
        assert_eq!(t.events.shed.load(Ordering::Relaxed), 2);
    }
}
