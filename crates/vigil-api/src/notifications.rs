//! Server notifications, as Prometheus 3's UI shows them in its header: a short list of
//! conditions an operator should know about (today: the last config reload failed), served at `/api/v1/notifications` and streamed to live subscribers at
//! `/api/v1/notifications/live` (server-sent events, one JSON object per event; a removed
//! notification is sent once more with `"active": false`).

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde::Serialize;
use std::convert::Infallible;
use tokio::sync::mpsc;

/// Prometheus' text for a failed reload; removed again by the next successful one.
pub const CONFIGURATION_UNSUCCESSFUL: &str = "Configuration reload has failed.";

/// Live subscribers at once, as Prometheus' `--web.max-notifications-subscribers` default.
const MAX_SUBSCRIBERS: usize = 16;

/// One notification: Prometheus' JSON shape (`date` in RFC 3339 UTC).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Notification {
    pub text: String,
    pub date: String,
    pub active: bool,
}

/// The current notifications and the live subscribers; cheap to share in an `Arc`.
#[derive(Default)]
pub struct Notifications {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    list: Vec<Notification>,
    subscribers: Vec<mpsc::Sender<Notification>>,
}

impl Notifications {
    /// Adds `text`, or refreshes its date when it is already there.
    pub fn add(&self, text: &str) {
        let mut g = self.inner.lock();
        let date = vigil_model::civil::rfc3339_millis(vigil_model::now_millis());
        let n = match g.list.iter_mut().find(|n| n.text == text) {
            Some(n) => {
                n.date = date;
                n.clone()
            }
            None => {
                let n = Notification {
                    text: text.to_string(),
                    date,
                    active: true,
                };
                g.list.push(n.clone());
                n
            }
        };
        g.notify(n);
    }

    /// Removes `text`; subscribers see it once more as inactive.
    pub fn delete(&self, text: &str) {
        let mut g = self.inner.lock();
        if let Some(i) = g.list.iter().position(|n| n.text == text) {
            let mut n = g.list.remove(i);
            n.active = false;
            g.notify(n);
        }
    }

    /// The current notifications, oldest first.
    pub fn get(&self) -> Vec<Notification> {
        self.inner.lock().list.clone()
    }

    /// A receiver that gets the current notifications, then every change; `None` when
    /// [`MAX_SUBSCRIBERS`] are already listening.
    fn subscribe(&self) -> Option<mpsc::Receiver<Notification>> {
        let mut g = self.inner.lock();
        g.subscribers.retain(|s| !s.is_closed());
        if g.subscribers.len() >= MAX_SUBSCRIBERS {
            return None;
        }
        let (tx, rx) = mpsc::channel(16);
        for n in &g.list {
            let _ = tx.try_send(n.clone());
        }
        g.subscribers.push(tx);
        Some(rx)
    }
}

impl Inner {
    /// Sends without waiting: a subscriber that does not keep up misses updates, as in
    /// Prometheus, rather than holding the lock.
    fn notify(&mut self, n: Notification) {
        self.subscribers.retain(|s| !s.is_closed());
        for s in &self.subscribers {
            let _ = s.try_send(n.clone());
        }
    }
}

/// `/api/v1/notifications/live`: 204 when too many subscribers are listening.
pub(crate) fn live(n: &Notifications) -> Response {
    let Some(rx) = n.subscribe() else {
        return axum::http::StatusCode::NO_CONTENT.into_response();
    };
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let n = rx.recv().await?;
        let data = serde_json::to_string(&n).unwrap_or_default();
        Some((Ok::<_, Infallible>(Event::default().data(data)), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn add_refresh_delete_and_live_updates() {
        let n = Notifications::default();
        n.add(CONFIGURATION_UNSUCCESSFUL);
        n.add(CONFIGURATION_UNSUCCESSFUL);
        assert_eq!(
            n.get().len(),
            1,
            "a repeated notification only refreshes its date"
        );
        let mut rx = n.subscribe().unwrap();
        let first = rx.recv().await.unwrap();
        assert_eq!(
            (first.text.as_str(), first.active),
            (CONFIGURATION_UNSUCCESSFUL, true)
        );
        assert!(
            first.date.ends_with('Z') && first.date.len() == 24,
            "{}",
            first.date
        );
        n.delete(CONFIGURATION_UNSUCCESSFUL);
        assert!(n.get().is_empty());
        let gone = rx.recv().await.unwrap();
        assert!(!gone.active);
        n.delete("not there");
        let subs: Vec<_> = (0..MAX_SUBSCRIBERS - 1)
            .map(|_| n.subscribe().unwrap())
            .collect();
        assert!(n.subscribe().is_none(), "the subscriber cap holds");
        drop(subs);
        assert!(
            n.subscribe().is_some(),
            "closed subscribers free their places"
        );
    }
}
