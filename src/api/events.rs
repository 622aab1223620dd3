//! `POST /v1/events`, `GET /v1/events`, `GET /v1/events/{id}`.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;

use super::query::Query;
use super::{ApiError, AppState, Code};
use crate::auth::Principal;
use crate::domain::json;
use crate::domain::limits::{DEFAULT_PAGE_EVENTS, MAX_BATCH_EVENTS, MAX_PAGE_EVENTS};
use crate::domain::{EventType, FieldError, NewEvent, Problem, StoredEvent};
use crate::ledger::Appended;
use crate::metrics;
use crate::store::StoreError;

/// Most seqs one page of a filtered `GET /v1/events` looks at; `next_after`
/// then says where the scan stopped.
const MAX_SCAN_EVENTS: usize = 10 * MAX_PAGE_EVENTS;

pub(super) fn storage(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "storage read failed");
    ApiError::new(Code::Unavailable, e.to_string())
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// The slowest pace at which a body keeps earning time: every this many bytes
/// received move its deadline a second later, so a large body on a slow but
/// steady link arrives, while a trickle is cut off at the deadline.
const MIN_BODY_BYTES_PER_SECOND: usize = 16 * 1024;

/// Read the body, refusing it as soon as it passes the limit, or when it has
/// not all arrived by its deadline: `timeout` after the head, plus a second
/// for every [`MIN_BODY_BYTES_PER_SECOND`] received. A trickled body would
/// otherwise hold its connection and buffers for as long as the client likes.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Vec<u8>, ApiError> {
    let started = tokio::time::Instant::now();
    let too_large = || {
        ApiError::new(
            Code::PayloadTooLarge,
            format!("the request body is larger than {limit} bytes"),
        )
    };
    if let Some(len) = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(too_large());
        }
    }
    let mut body = Vec::new();
    loop {
        let earned = std::time::Duration::from_secs((body.len() / MIN_BODY_BYTES_PER_SECOND) as u64);
        let next = tokio::time::timeout_at(started + timeout + earned, payload.next()).await;
        let Some(chunk) = next.map_err(|_| {
            ApiError::new(
                Code::RequestTimeout,
                format!(
                    "the request body did not arrive in time ({} s, plus 1 s for every {MIN_BODY_BYTES_PER_SECOND} bytes received); nothing was written",
                    timeout.as_secs_f64()
                ),
            )
        })?
        else {
            break;
        };
        let chunk = chunk
            .map_err(|e| ApiError::new(Code::MalformedJson, format!("the request body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parse a posted body: one event object, or an array of 1 to 1000.
fn parse_events(body: &[u8]) -> Result<(Vec<NewEvent>, bool), ApiError> {
    let value = json::parse(body).map_err(|e| match e {
        json::JsonError::Malformed(m) => ApiError::new(Code::MalformedJson, format!("the body is {m}")),
        json::JsonError::Inexact { field, message } => Problem::invalid(field, message).into(),
    })?;
    match value {
        Value::Array(items) => {
            if items.is_empty() || items.len() > MAX_BATCH_EVENTS {
                return Err(Problem::invalid(
                    "",
                    format!("a batch holds 1 to {MAX_BATCH_EVENTS} events, not {}", items.len()),
                )
                .into());
            }
            let mut events = Vec::with_capacity(items.len());
            let mut errors: Vec<FieldError> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match NewEvent::from_json(item) {
                    Ok(e) => events.push(e),
                    Err(p) => errors.extend(p.in_batch_item(i).field_errors()),
                }
            }
            if errors.is_empty() {
                Ok((events, true))
            } else {
                Err(Problem::Validation(errors).into())
            }
        }
        other => Ok((vec![NewEvent::from_json(&other)?], false)),
    }
}

pub async fn append(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Query::parse(req.query_string(), &[])?;
    if !is_json(&req) {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            "the body must be application/json",
        ));
    }
    let principal = req
        .extensions()
        .get::<Principal>()
        .map(|p| p.name.clone())
        .expect("the guard names every principal");
    let body = read_body(&req, payload, state.body_limit, state.body_timeout).await?;
    let started = std::time::Instant::now();
    let outcome = match parse_events(&body) {
        Ok((events, batch)) => state
            .ledger
            .append(events, batch, principal)
            .await
            .map(|a| (a, batch))
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    let label = match &outcome {
        Ok((Appended::Created(_), _)) => "created",
        Ok((Appended::Retried(_), _)) => "retried",
        Err(e) if e.code == Code::Unavailable => "unavailable",
        Err(_) => "refused",
    };
    metrics::APPEND_REQUESTS.with_label_values(&[label]).inc();
    metrics::APPEND_SECONDS.observe(started.elapsed().as_secs_f64());
    let (appended, batch) = outcome?;
    let (mut res, receipts) = match appended {
        Appended::Created(r) => (HttpResponse::Created(), r),
        Appended::Retried(r) => (HttpResponse::Ok(), r),
    };
    Ok(if batch {
        res.json(receipts)
    } else {
        res.json(&receipts[0])
    })
}

#[derive(Serialize)]
struct Page {
    events: Vec<StoredEvent>,
    next_after: Option<u64>,
}

pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string(), &["after", "limit", "type", "location", "actor"])?;
    let after = q.uint("after")?.unwrap_or(0);
    let limit = q.uint("limit")?.unwrap_or(DEFAULT_PAGE_EVENTS as u64);
    if limit == 0 || limit > MAX_PAGE_EVENTS as u64 {
        return Err(ApiError::invalid_parameter(
            "limit",
            format!("must be from 1 to {MAX_PAGE_EVENTS}"),
        ));
    }
    let limit = limit as usize;
    let event_type = q.parsed::<EventType>("type")?;
    let location = q.slug("location")?;
    let actor = q.slug("actor")?;
    let ledger = state.ledger.clone();
    let page = web::block(move || -> Result<Page, ApiError> {
        // Pick the narrowest index, then check the other filters on each event.
        let (head, candidates, filtered, truncated, actor_seqs) = {
            let p = ledger.read();
            let head = p.head_seq();
            let list: Option<Vec<u64>> = if let Some(l) = &location {
                Some(
                    p.location_ix(l)
                        .map(|ix| p.location_seqs(ix).to_vec())
                        .unwrap_or_default(),
                )
            } else if let Some(a) = &actor {
                Some(
                    p.actor_ix(a)
                        .map(|ix| p.actor_mentions(ix).to_vec())
                        .unwrap_or_default(),
                )
            } else {
                event_type.map(|t| p.seqs_of_type(t).to_vec())
            };
            // With a location leading, the actor filter is checked against its index.
            let actor_seqs = match (&actor, &location) {
                (Some(a), Some(_)) => Some(
                    p.actor_ix(a)
                        .map(|ix| p.actor_mentions(ix).to_vec())
                        .unwrap_or_default(),
                ),
                _ => None,
            };
            let filtered = list.is_some();
            let (candidates, truncated) = match list {
                Some(seqs) => {
                    let start = seqs.partition_point(|s| *s <= after);
                    let rest = &seqs[start..];
                    (
                        rest.iter().copied().take(MAX_SCAN_EVENTS).collect(),
                        rest.len() > MAX_SCAN_EVENTS,
                    )
                }
                None => (
                    (after.saturating_add(1)..=head).take(limit).collect::<Vec<u64>>(),
                    false,
                ),
            };
            (head, candidates, filtered, truncated, actor_seqs)
        };
        let mut events = Vec::new();
        let mut last_scanned = after;
        if !filtered {
            // A plain page is a contiguous range: one scan, which also checks the
            // links between the events it reads.
            for item in ledger.store().scan(after.saturating_add(1)).take(candidates.len()) {
                events.push(item.map_err(storage)?);
            }
            last_scanned = events.last().map_or(after, |e| e.seq);
        } else {
            for &seq in &candidates {
                if events.len() == limit {
                    break;
                }
                last_scanned = seq;
                if actor_seqs.as_ref().is_some_and(|s| s.binary_search(&seq).is_err()) {
                    continue;
                }
                let event = ledger.store().get(seq).map_err(storage)?.ok_or_else(|| {
                    storage(StoreError::Corrupt {
                        seq,
                        reason: "indexed but missing".into(),
                    })
                })?;
                if event_type.is_some_and(|t| t != event.event_type) {
                    continue;
                }
                events.push(event);
            }
        }
        let more = if filtered {
            candidates.last().is_some_and(|l| *l > last_scanned) || truncated
        } else {
            last_scanned < head
        };
        Ok(Page {
            events,
            next_after: more.then_some(last_scanned),
        })
    })
    .await
    .map_err(|e| ApiError::new(Code::Unavailable, e.to_string()))??;
    Ok(HttpResponse::Ok().json(page))
}

pub async fn one(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Query::parse(req.query_string(), &[])?;
    let missing = || ApiError::not_found(format!("no event {}", path.as_str()));
    let id = uuid::Uuid::parse_str(&path).map_err(|_| missing())?;
    let seq = state.ledger.read().seq_of(&id).ok_or_else(missing)?;
    let event = state.ledger.store().get(seq).map_err(storage)?.ok_or_else(missing)?;
    Ok(HttpResponse::Ok().json(event))
}
