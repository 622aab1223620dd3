//! The log in other formats: `GET /v1/events.csv` (streamed), and `GET
//! /v1/events` as a CloudEvents batch when `Accept` asks for one.

use std::sync::Arc;

use actix_web::http::header::{ACCEPT, CONTENT_DISPOSITION, LINK};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};

use super::events::{read_page, EventFilter, Page, LIST_PARAMS};
use super::read::{Format, Read};
use super::{ApiError, AppState, Code};
use crate::formats::cloudevents::{CloudEvent, BATCH_MEDIA_TYPE};
use crate::formats::events_csv;
use crate::ledger::Ledger;

/// Events read from the store per step of a CSV export: what the export holds
/// in memory at once, whatever the size of the log.
const CSV_PAGE_EVENTS: usize = 1000;

/// The CSV media type: UTF-8, with a header row (RFC 4180 section 3).
const CSV_MEDIA_TYPE: &str = "text/csv; charset=utf-8; header=present";

/// Does `Accept` prefer a CloudEvents batch to plain JSON? The offer with the
/// higher `q` wins, judged by the most specific range that matches it (an
/// exact type over `type/*` over `*/*`); at equal `q`, the one the client named
/// first; without `Accept`, plain JSON.
pub(super) fn prefers_cloudevents_batch(req: &HttpRequest) -> bool {
    let Some(accept) = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    // For each offer: (q, specificity, -position) of its best matching range.
    let judge = |offer: &str| {
        let (kind, _) = offer.split_once('/').expect("a media type");
        let mut best: Option<(u32, u8, i64)> = None;
        for (position, range) in accept.split(',').enumerate() {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let specificity = if media == offer {
                2
            } else if media == format!("{kind}/*") {
                1
            } else if media == "*/*" {
                0
            } else {
                continue;
            };
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|v| v.trim().parse::<f32>().ok())
                .map_or(1000, |q| (q.clamp(0.0, 1.0) * 1000.0) as u32);
            let candidate = (q, specificity, -(position as i64));
            if best.is_none_or(|b| (specificity, -(position as i64)) > (b.1, b.2)) {
                best = Some(candidate);
            }
        }
        best.filter(|b| b.0 > 0)
    };
    match (judge(BATCH_MEDIA_TYPE), judge("application/json")) {
        (Some(ce), Some(json)) => (ce.0, ce.2) > (json.0, json.2),
        (Some(_), None) => true,
        _ => false,
    }
}

/// A page of `GET /v1/events` as a CloudEvents batch: the bare array, with
/// the next page, when there is one, in a `Link: <...>; rel="next"` header
/// (RFC 8288): the same query with `after` moved on.
pub(super) fn cloudevents_batch(req: &HttpRequest, origin: &str, page: &Page) -> HttpResponse {
    let batch: Vec<CloudEvent<'_>> = page.events.iter().map(|e| CloudEvent::of(e, origin)).collect();
    let mut res = HttpResponse::Ok();
    res.content_type(BATCH_MEDIA_TYPE);
    if let Some(next) = page.next_after {
        let mut pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
        pairs.retain(|(k, _)| k != "after");
        pairs.insert(0, ("after".into(), next.to_string()));
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        res.insert_header((LINK, format!("<{}?{query}>; rel=\"next\"", req.path())));
    }
    res.body(serde_json::to_vec(&batch).expect("CloudEvents serialize"))
}

/// `GET /v1/events.csv`: the filters of `GET /v1/events`; without `limit`, every
/// event after `after` up to the head as it is when the request arrives (with
/// `limit`, at most that many, however many). The body is produced a page at a
/// time as the client reads it, so an export of any size holds one page.
pub async fn csv(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let read = Read::begin(&req, LIST_PARAMS, &[Format::Csv])?;
    let q = &read.query;
    let after = q.uint("after")?.unwrap_or(0);
    let limit = q.uint("limit")?;
    if limit == Some(0) {
        return Err(ApiError::invalid_parameter("limit", "must be at least 1"));
    }
    let filter = Arc::new(EventFilter::parse(q)?);
    read.format()?;
    let upto = state.ledger.read().head_seq();
    let export = Export {
        _open: Open::new(),
        ledger: state.ledger.clone(),
        filter,
        after: Some(after),
        left: limit,
        upto,
        header: false,
    };
    Ok(HttpResponse::Ok()
        .content_type(CSV_MEDIA_TYPE)
        .insert_header((CONTENT_DISPOSITION, "attachment; filename=\"sitrep-events.csv\""))
        .streaming(futures_util::stream::unfold(export, Export::next_chunk)))
}

/// Counts an export in `sitrep_csv_exports` for as long as it lives: the body
/// is dropped when it ends or when its client leaves.
struct Open;

impl Open {
    fn new() -> Open {
        crate::metrics::CSV_EXPORTS.inc();
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        crate::metrics::CSV_EXPORTS.dec();
    }
}

/// Where a CSV export stands.
struct Export {
    _open: Open,
    ledger: Arc<Ledger>,
    filter: Arc<EventFilter>,
    /// The seq to go on after; `None` once the export is complete.
    after: Option<u64>,
    /// Rows still to write under `limit`.
    left: Option<u64>,
    /// The head when the request arrived: the export ends there.
    upto: u64,
    header: bool,
}

impl Export {
    /// The next chunk of the body: the header row, then one page of rows at a
    /// time; pages a filter leaves empty are read on until one has a row or the
    /// export ends, since an empty chunk would end the body. A storage fault
    /// after the answer has started cuts the body short (the client sees an
    /// incomplete chunked body), as a status can no longer say it.
    async fn next_chunk(mut self) -> Option<(Result<Bytes, std::io::Error>, Export)> {
        let mut out = events_csv::writer(Vec::new());
        if !self.header {
            self.header = true;
            events_csv::write_header(&mut out).expect("writing to memory");
        }
        while let Some(after) = self.after {
            let limit = self
                .left
                .map_or(CSV_PAGE_EVENTS, |l| l.min(CSV_PAGE_EVENTS as u64) as usize);
            let (ledger, filter, upto) = (self.ledger.clone(), self.filter.clone(), self.upto);
            let page = web::block(move || read_page(&ledger, &filter, after, limit, upto))
                .await
                .map_err(|e| ApiError::new(Code::Unavailable, e.to_string()))
                .and_then(|r| r);
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "CSV export cut short");
                    self.after = None;
                    return Some((Err(std::io::Error::other(e.to_string())), self));
                }
            };
            for e in &page.events {
                events_csv::write_event(&mut out, e).expect("writing to memory");
            }
            self.left = self.left.map(|l| l - page.events.len() as u64);
            self.after = page.next_after.filter(|_| self.left != Some(0));
            if !page.events.is_empty() {
                break;
            }
        }
        let bytes = out.into_inner().expect("writing to memory");
        (!bytes.is_empty()).then(|| (Ok(Bytes::from(bytes)), self))
    }
}
