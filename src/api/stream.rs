//! `GET /v1/events/stream`: the log as server-sent events. Catch-up from the
//! store, then live from the fan-out (`fanout`); `id:` is the seq, `data:` the
//! stored event (or, with `format=cloudevents`, it as a CloudEvent). A
//! subscriber whose buffer fills falls back to the store, so memory stays
//! bounded; one that stops reading for `STALLED_CONSUMER` is dropped and
//! resumes with `Last-Event-ID`. One that disconnects is let go at once, idle,
//! live or catching up, and one whose token a reload of the tokens file
//! removed is ended. Slots are bounded in all and per principal.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use actix_web::http::header::{CacheControl, CacheDirective, ContentEncoding};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use tokio::sync::watch;

use super::fanout::{frame, Fanout, Format, Inbox, Outbox};
use super::guard::Auth;
use super::query::Query;
use super::{ApiError, AppState, Code};
use crate::auth::Principal;
use crate::domain::{EventType, Slug, StoredEvent};
use crate::ledger::Ledger;
use crate::projection::Projection;

/// A subscriber whose buffer stays full this long is dropped.
const STALLED_CONSUMER: Duration = Duration::from_secs(10);
/// Comment lines sent when idle, so proxies keep the connection open.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Events read from the store per catch-up step; between steps the task
/// yields and looks whether its subscriber is still there.
const CATCH_UP_PAGE: u64 = 256;

/// A principal holds at most this fraction of the server's subscriber slots
/// (with tokens), so one client cannot shut every other one out.
const PRINCIPAL_SHARE_DIVISOR: usize = 4;

fn format(q: &Query) -> Result<Format, ApiError> {
    match q.str("format") {
        None | Some("stored") => Ok(Format::Stored),
        Some("cloudevents") => Ok(Format::CloudEvents),
        Some(_) => Err(ApiError::invalid_parameter("format", "must be stored or cloudevents")),
    }
}

pub struct Filter {
    event_type: Option<EventType>,
    location: Option<Slug>,
    actor: Option<Slug>,
}

/// One bounded step of a catch-up: the seqs to read, and where to go on from.
struct Step {
    seqs: Vec<u64>,
    resume: u64,
}

impl Filter {
    /// The next catch-up step from `next` to `p`'s head, or `None` once caught
    /// up. A filtered catch-up walks the narrowest index (a location's stream,
    /// an actor's mentions, a type's events) rather than the log, so a filter
    /// that matches little, or names nothing known, costs little; each step
    /// reads at most `CATCH_UP_PAGE` events.
    fn step(&self, p: &Projection, next: u64) -> Option<Step> {
        let head = p.head_seq();
        if next > head {
            return None;
        }
        let index: Option<&[u64]> = if let Some(l) = &self.location {
            Some(p.location_ix(l).map_or(&[], |ix| p.location_seqs(ix)))
        } else if let Some(a) = &self.actor {
            Some(p.actor_ix(a).map_or(&[], |ix| p.actor_mentions(ix)))
        } else {
            self.event_type.map(|t| p.seqs_of_type(t))
        };
        let Some(index) = index else {
            let until = head.min(next.saturating_add(CATCH_UP_PAGE - 1));
            return Some(Step {
                seqs: (next..=until).collect(),
                resume: until + 1,
            });
        };
        let from = index.partition_point(|s| *s < next);
        let seqs: Vec<u64> = index[from..]
            .iter()
            .copied()
            .take_while(|s| *s <= head)
            .take(CATCH_UP_PAGE as usize)
            .collect();
        let resume = match seqs.last() {
            Some(last) if seqs.len() == CATCH_UP_PAGE as usize => last + 1,
            _ => head + 1,
        };
        Some(Step { seqs, resume })
    }

    /// Takes every event: its frames can be the ones shared by all such.
    pub fn takes_all(&self) -> bool {
        self.event_type.is_none() && self.location.is_none() && self.actor.is_none()
    }

    pub fn keeps(&self, e: &StoredEvent) -> bool {
        self.event_type.is_none_or(|t| t == e.event_type)
            && self.location.as_ref().is_none_or(|l| e.location.as_ref() == Some(l))
            && self.actor.as_ref().is_none_or(|a| e.names_actor(a))
    }
}

/// The live feed's subscriber slots: how many are held, in all and by each
/// principal. One per server, shared by its workers.
pub struct Subscribers {
    limit: usize,
    /// Most slots one principal may hold; `None` when the server runs open
    /// (every caller is the same anonymous principal).
    per_principal: Option<usize>,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_principal: HashMap<String, usize>,
}

impl Subscribers {
    /// `limit` slots; with `per_principal`, a principal holds at most
    /// 1/`PRINCIPAL_SHARE_DIVISOR` of them (and at least one).
    pub fn new(limit: usize, per_principal: bool) -> Subscribers {
        Subscribers {
            limit,
            per_principal: per_principal.then(|| (limit / PRINCIPAL_SHARE_DIVISOR).max(1)),
            held: Mutex::default(),
        }
    }

    /// Subscribers served at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn acquire(self: &Arc<Self>, principal: &str) -> Result<Slot, ApiError> {
        let mut held = self.held.lock().expect("subscribers lock");
        if held.total >= self.limit {
            return Err(ApiError::new(
                Code::Unavailable,
                format!("the feed already has {} subscribers", self.limit),
            ));
        }
        let mine = held.by_principal.get(principal).copied().unwrap_or(0);
        if let Some(share) = self.per_principal.filter(|share| mine >= *share) {
            return Err(ApiError::new(
                Code::Unavailable,
                format!(
                    "{principal} already holds {share} live feeds, its share of the server's {}",
                    self.limit
                ),
            ));
        }
        held.total += 1;
        *held.by_principal.entry(principal.to_owned()).or_default() += 1;
        crate::metrics::SSE_SUBSCRIBERS.inc();
        Ok(Slot {
            subscribers: self.clone(),
            principal: principal.to_owned(),
        })
    }
}

/// One held slot, given back however the subscriber's task ends.
struct Slot {
    subscribers: Arc<Subscribers>,
    principal: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.subscribers.held.lock().expect("subscribers lock");
        held.total -= 1;
        if let Some(n) = held.by_principal.get_mut(&self.principal) {
            *n -= 1;
            if *n == 0 {
                held.by_principal.remove(&self.principal);
            }
        }
        crate::metrics::SSE_SUBSCRIBERS.dec();
    }
}

pub async fn subscribe(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string(), &["after", "type", "location", "actor", "format"])?;
    let format = format(&q)?;
    let mut after = q.uint("after")?.unwrap_or(0);
    if let Some(v) = req.headers().get("last-event-id") {
        after = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::invalid_header("Last-Event-ID", "must be a seq (a non-negative integer)"))?;
    }
    let filter = Arc::new(Filter {
        event_type: q.parsed::<EventType>("type")?,
        location: q.slug("location")?,
        actor: q.slug("actor")?,
    });
    let principal = req
        .extensions()
        .get::<Principal>()
        .cloned()
        .expect("the guard names every principal");
    let slot = state.subscribers.acquire(&principal.name)?;
    let (tx, rx) = super::fanout::buffer();
    let ledger = state.ledger.clone();
    let fanout = state.fanout.clone();
    let mut shutdown = state.shutdown.clone();
    let revoked = revoked(state.auth.clone(), principal, state.tokens_reloaded.clone());
    actix_web::rt::spawn(async move {
        let _slot = slot;
        // The feed ends when the server shuts down, so graceful shutdown is not
        // held open by subscribers; they resume elsewhere with Last-Event-ID.
        // It ends too when a reload removes the subscriber's token.
        tokio::select! {
            _ = feed(ledger, fanout, after, filter, format, tx) => {}
            _ = shutdown.wait_for(|down| *down) => {}
            _ = revoked => {}
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(ContentEncoding::Identity)
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .streaming(body(rx)))
}

/// The response body: the frames from `rx` as they come, and a comment line
/// every `HEARTBEAT`; it ends when the feed lets go of `rx`.
fn body(mut rx: Inbox) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    futures_util::stream::poll_fn(move |cx| match rx.poll_recv(cx) {
        Poll::Ready(Some(frames)) => Poll::Ready(Some(Ok(frames))),
        Poll::Ready(None) => Poll::Ready(None),
        Poll::Pending => heartbeat
            .poll_tick(cx)
            .map(|_| Some(Ok(Bytes::from_static(b": keep-alive\n\n")))),
    })
}

async fn feed(ledger: Arc<Ledger>, fanout: Arc<Fanout>, after: u64, filter: Arc<Filter>, format: Format, tx: Outbox) {
    // Nothing follows the largest seq; saturate rather than wrap to a replay.
    let mut next = after.saturating_add(1);
    loop {
        // Catch up from the store to the head, a bounded step at a time, and
        // stop as soon as the subscriber is gone, even if nothing matched.
        loop {
            if tx.is_closed() {
                return;
            }
            let Some(step) = filter.step(&ledger.read(), next) else {
                break;
            };
            if step.seqs.is_empty() {
                next = step.resume;
                continue;
            }
            let l = ledger.clone();
            let seqs = step.seqs;
            let read = web::block(move || {
                seqs.into_iter()
                    .map(|s| l.store().get(s))
                    .collect::<Result<Vec<_>, _>>()
            });
            let page = tokio::select! {
                page = read => page,
                _ = tx.closed() => return,
            };
            let Ok(Ok(page)) = page else {
                tracing::warn!("feed subscriber dropped: the store could not be read");
                return;
            };
            crate::metrics::SSE_CATCH_UP_EVENTS.inc_by(page.len() as u64);
            for e in page.into_iter().flatten().filter(|e| filter.keeps(e)) {
                let mut f = BytesMut::new();
                frame(&mut f, &e, format, fanout.origin());
                if !tx.send(f.freeze(), STALLED_CONSUMER).await {
                    return;
                }
            }
            next = step.resume;
            // Other subscribers and requests on this worker get their turn.
            tokio::task::yield_now().await;
        }
        // Then live, until the fan-out sends it back to the store; one that
        // the fan-out handed `next` to meanwhile catches up again first.
        let Some(mut membership) = fanout.join(filter.clone(), format, next, tx.clone()) else {
            continue;
        };
        tokio::select! {
            resume = &mut membership.demoted => match resume {
                Ok(resume) => next = resume,
                Err(_) => return,
            },
            _ = tx.closed() => return,
        }
    }
}

/// Resolves when `principal`'s token stops authenticating after a reload of
/// the tokens file; never when the server runs open.
async fn revoked(auth: Auth, principal: Principal, mut reloads: watch::Receiver<u64>) {
    let Some(tokens) = auth else {
        return std::future::pending().await;
    };
    loop {
        if reloads.changed().await.is_err() {
            return std::future::pending().await;
        }
        if !tokens.read().expect("tokens lock").still_admits(&principal) {
            tracing::info!(principal = %principal.name, "live feed ended: its token was removed");
            return;
        }
    }
}
