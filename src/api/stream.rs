//! `GET /v1/events/stream`: the log as server-sent events. Catch-up from the
//! store, then live from the ledger's feed; `id:` is the seq, `data:` the
//! stored event. A subscriber that lags behind the feed falls back to the
//! store, so memory stays bounded; one that stops reading for
//! `STALLED_CONSUMER` is dropped and resumes with `Last-Event-ID`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, Responder};
use actix_web_lab::sse;
use tokio::sync::{broadcast, mpsc};

use super::query::Query;
use super::{ApiError, AppState};
use crate::domain::{EventType, Slug, StoredEvent};
use crate::ledger::Ledger;

/// Most subscribers at once; more answer 503.
pub const MAX_SUBSCRIBERS: usize = 1024;
/// Events buffered per subscriber between the store or feed and its socket.
const BUFFER_EVENTS: usize = 256;
/// A subscriber whose buffer stays full this long is dropped.
const STALLED_CONSUMER: Duration = Duration::from_secs(10);
/// Comment lines sent when idle, so proxies keep the connection open.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Events read from the store per catch-up step.
const CATCH_UP_PAGE: u64 = 256;

/// Live subscriber count, shared by all workers.
pub static SUBSCRIBERS: AtomicUsize = AtomicUsize::new(0);

struct Filter {
    event_type: Option<EventType>,
    location: Option<Slug>,
    actor: Option<Slug>,
}

impl Filter {
    fn keeps(&self, e: &StoredEvent) -> bool {
        self.event_type.is_none_or(|t| t == e.event_type)
            && self.location.as_ref().is_none_or(|l| e.location.as_ref() == Some(l))
            && self.actor.as_ref().is_none_or(|a| e.names_actor(a))
    }
}

/// Decrements the subscriber count however the task ends.
struct Slot;

impl Drop for Slot {
    fn drop(&mut self) {
        SUBSCRIBERS.fetch_sub(1, Ordering::SeqCst);
        crate::metrics::SSE_SUBSCRIBERS.dec();
    }
}

pub async fn subscribe(req: HttpRequest, state: web::Data<AppState>) -> Result<impl Responder, ApiError> {
    let q = Query::parse(req.query_string(), &["after", "type", "location", "actor"])?;
    let mut after = q.uint("after")?.unwrap_or(0);
    if let Some(v) = req.headers().get("last-event-id") {
        after = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::invalid_header("Last-Event-ID", "must be a seq (a non-negative integer)"))?;
    }
    let filter = Filter {
        event_type: q.parsed::<EventType>("type")?,
        location: q.slug("location")?,
        actor: q.slug("actor")?,
    };
    if SUBSCRIBERS.fetch_add(1, Ordering::SeqCst) >= MAX_SUBSCRIBERS {
        SUBSCRIBERS.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError::new(
            "unavailable",
            format!("the feed already has {MAX_SUBSCRIBERS} subscribers"),
        ));
    }
    let slot = Slot;
    crate::metrics::SSE_SUBSCRIBERS.inc();
    let (tx, rx) = mpsc::channel(BUFFER_EVENTS);
    let ledger = state.ledger.clone();
    // Subscribe before catching up, so nothing committed in between is missed.
    let live = ledger.subscribe();
    let mut shutdown = state.shutdown.clone();
    actix_web::rt::spawn(async move {
        let _slot = slot;
        // The feed ends when the server shuts down, so graceful shutdown is not
        // held open by subscribers; they resume elsewhere with Last-Event-ID.
        tokio::select! {
            _ = feed(ledger, live, after, filter, tx) => {}
            _ = shutdown.wait_for(|down| *down) => {}
        }
    });
    Ok(sse::Sse::from_infallible_receiver(rx).with_keep_alive(HEARTBEAT))
}

/// Send one event (`json` is its stored JSON); false when the subscriber is
/// gone or stalled.
async fn send(tx: &mpsc::Sender<sse::Event>, seq: u64, json: String) -> bool {
    let data = sse::Data::new(json).id(seq.to_string());
    matches!(
        tokio::time::timeout(STALLED_CONSUMER, tx.send(data.into())).await,
        Ok(Ok(()))
    )
}

async fn feed(
    ledger: Arc<Ledger>,
    mut live: broadcast::Receiver<Arc<crate::ledger::FeedItem>>,
    after: u64,
    filter: Filter,
    tx: mpsc::Sender<sse::Event>,
) {
    // Nothing follows the largest seq; saturate rather than wrap to a replay.
    let mut next = after.saturating_add(1);
    loop {
        // Catch up from the store to the head.
        loop {
            let head = ledger.read().head_seq();
            if next > head {
                break;
            }
            let until = head.min(next + CATCH_UP_PAGE - 1);
            let l = ledger.clone();
            let page =
                web::block(move || (next..=until).map(|s| l.store().get(s)).collect::<Result<Vec<_>, _>>()).await;
            let Ok(Ok(page)) = page else {
                tracing::warn!("feed subscriber dropped: the store could not be read");
                return;
            };
            for e in page.into_iter().flatten() {
                if filter.keeps(&e) {
                    let Ok(json) = serde_json::to_string(&e) else { return };
                    if !send(&tx, e.seq, json).await {
                        return;
                    }
                }
                next = e.seq + 1;
            }
        }
        // Then live, until the feed outruns this subscriber.
        loop {
            match live.recv().await {
                Ok(item) if item.event.seq < next => continue,
                Ok(item) if item.event.seq > next => break,
                Ok(item) => {
                    if filter.keeps(&item.event) && !send(&tx, item.event.seq, item.json.clone()).await {
                        return;
                    }
                    next = item.event.seq + 1;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return,
            }
            if tx.is_closed() {
                return;
            }
        }
    }
}
