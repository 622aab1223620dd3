//! `GET /v1/locations`, `GET /v1/locations/{id}`, `GET /v1/locations/{id}/events`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Serialize;

use super::events::storage;
use super::query::Query;
use super::{ApiError, AppState, Code};
use crate::domain::event::LocationKind;
use crate::domain::{Slug, StoredEvent};
use crate::projection::view::LocationFilter;
use crate::projection::LocationView;

const STATUSES: &[&str] = &["unknown", "controlled", "contested"];

#[derive(Serialize)]
struct LocationList {
    locations: Vec<LocationView>,
}

#[derive(Serialize)]
struct History {
    events: Vec<StoredEvent>,
}

fn path_slug(raw: &str) -> Result<Slug, ApiError> {
    Slug::parse(raw).map_err(|_| ApiError::not_found(format!("no location '{raw}'")))
}

pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(
        req.query_string(),
        &["as_of", "at_seq", "kind", "parent", "controller", "status", "q"],
    )?;
    let status =
        match q.str("status") {
            None => None,
            Some(s) => Some(*STATUSES.iter().find(|k| **k == s).ok_or_else(|| {
                ApiError::invalid_parameter("status", "must be one of: unknown, controlled, contested")
            })?),
        };
    let filter = LocationFilter {
        kind: q.parsed::<LocationKind>("kind")?,
        parent: q.slug("parent")?,
        controller: q.slug("controller")?,
        status,
        q: q.search()?,
    };
    let p = state.ledger.read();
    let point = q.point(&p)?;
    let body = LocationList {
        locations: p.location_views(point, &filter, Utc::now()),
    };
    drop(p);
    Ok(HttpResponse::Ok().json(body))
}

pub async fn one(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string(), &["as_of", "at_seq"])?;
    let id = path_slug(&path)?;
    let p = state.ledger.read();
    let point = q.point(&p)?;
    let view = p.location_view(&id, point, Utc::now());
    drop(p);
    match view {
        Some(v) => Ok(HttpResponse::Ok().json(v)),
        None => Err(ApiError::not_found(format!(
            "no location '{id}' at this point of the log"
        ))),
    }
}

pub async fn history(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string(), &["order"])?;
    let by_occurrence = match q.str("order") {
        None | Some("recorded") => false,
        Some("occurred") => true,
        Some(_) => return Err(ApiError::invalid_parameter("order", "must be recorded or occurred")),
    };
    let id = path_slug(&path)?;
    let seqs = {
        let p = state.ledger.read();
        let ix = p
            .location_ix(&id)
            .ok_or_else(|| ApiError::not_found(format!("no location '{id}'")))?;
        if by_occurrence {
            p.location_seqs_by_occurrence(ix)
        } else {
            p.location_seqs(ix).to_vec()
        }
    };
    let ledger = state.ledger.clone();
    let events =
        web::block(move || -> Result<Vec<StoredEvent>, ApiError> {
            seqs.iter()
                .map(|s| {
                    ledger.store().get(*s).map_err(storage)?.ok_or_else(|| {
                        ApiError::new(Code::Unavailable, format!("event seq {s} is indexed but missing"))
                    })
                })
                .collect()
        })
        .await
        .map_err(|e| ApiError::new(Code::Unavailable, e.to_string()))??;
    Ok(HttpResponse::Ok().json(History { events }))
}
