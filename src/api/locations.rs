//! `GET /v1/locations` (also as `.geojson` and `.csv`), `GET /v1/locations/{id}`,
//! `GET /v1/locations/{id}/events`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Serialize;

use super::events::storage;
use super::query::Query;
use super::read::{Answer, Format, Read, JSON, POINT};
use super::{ApiError, AppState, Code};
use crate::domain::event::LocationKind;
use crate::domain::{Slug, StoredEvent};
use crate::formats;
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

impl Answer for LocationList {
    fn render(&self, format: Format) -> Option<Vec<u8>> {
        match format {
            Format::Json => None,
            Format::GeoJson => Some(
                serde_json::to_vec(&formats::geojson::locations(&self.locations))
                    .expect("a feature collection of strings, numbers and booleans serialises"),
            ),
            Format::Csv => Some(formats::csv::locations(&self.locations)),
        }
    }
}
impl Answer for LocationView {}
impl Answer for History {}

fn path_slug(raw: &str) -> Result<Slug, ApiError> {
    Slug::parse(raw).map_err(|_| ApiError::not_found(format!("no location '{raw}'")))
}

/// The parameters of the location list.
const LIST: &[&str] = &["as_of", "at_seq", "kind", "parent", "controller", "status", "q"];

fn filter(q: &Query) -> Result<LocationFilter, ApiError> {
    let status =
        match q.str("status") {
            None => None,
            Some(s) => Some(*STATUSES.iter().find(|k| **k == s).ok_or_else(|| {
                ApiError::invalid_parameter("status", "must be one of: unknown, controlled, contested")
            })?),
        };
    Ok(LocationFilter {
        kind: q.parsed::<LocationKind>("kind")?,
        parent: q.slug("parent")?,
        controller: q.slug("controller")?,
        status,
        q: q.search()?,
    })
}

/// `GET /v1/locations`: JSON, or GeoJSON by `Accept`.
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    list_as(req, state, &[Format::Json, Format::GeoJson]).await
}

/// `GET /v1/locations.geojson`.
pub async fn geojson(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    list_as(req, state, &[Format::GeoJson]).await
}

/// `GET /v1/locations.csv`.
pub async fn csv(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    list_as(req, state, &[Format::Csv]).await
}

async fn list_as(req: HttpRequest, state: web::Data<AppState>, offered: &[Format]) -> Result<HttpResponse, ApiError> {
    let read = Read::begin(&req, LIST, offered)?;
    let filter = filter(&read.query)?;
    let locations = read.at_point(&state, |p, point| Ok(p.location_views(point, &filter, Utc::now())))?;
    read.answer(&LocationList { locations })
}

pub async fn one(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let read = Read::begin(&req, POINT, JSON)?;
    let id = path_slug(&path)?;
    let view = read.at_point(&state, |p, point| {
        p.location_view(&id, point, Utc::now())
            .ok_or_else(|| ApiError::not_found(format!("no location '{id}' at this point of the log")))
    })?;
    read.answer(&view)
}

pub async fn history(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let read = Read::begin(&req, &["order"], JSON)?;
    let by_occurrence = match read.query.str("order") {
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
    read.answer(&History { events })
}
