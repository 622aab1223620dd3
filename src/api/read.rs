//! One shape for every read: parse the query, pick the format the client
//! accepts, read the projection at the point, build the answer, render it.
//! What every read answer needs attaches here once instead of in each handler.

use std::str::FromStr;

use actix_web::http::header::{QualityItem, ACCEPT};
use actix_web::mime::{Mime, STAR};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use super::query::Query;
use super::{ApiError, AppState, Code};
use crate::projection::{Point, Projection};

/// The parameters that pin a read to a point of the log.
pub(super) const POINT: &[&str] = &["as_of", "at_seq"];

/// A format a read can answer in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Json,
    /// RFC 7946.
    GeoJson,
    /// RFC 4180, with a header row.
    Csv,
}

impl Format {
    /// The `Content-Type` of an answer.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::GeoJson => "application/geo+json",
            Format::Csv => "text/csv; charset=utf-8; header=present",
        }
    }

    /// The media type, without parameters.
    fn essence(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::GeoJson => "application/geo+json",
            Format::Csv => "text/csv",
        }
    }
}

/// The formats of most reads.
pub(super) const JSON: &[Format] = &[Format::Json];

/// An answer of a read route: JSON is its serialisation; other formats it
/// writes itself.
pub(super) trait Answer: Serialize {
    /// The body in a format other than JSON; `None` when this answer has no
    /// such form (no route offers it then).
    fn render(&self, _format: Format) -> Option<Vec<u8>> {
        None
    }
}

/// A read under way: its checked query and the format it answers in (or why
/// it has none).
pub(super) struct Read {
    pub query: Query,
    format: Result<Format, ApiError>,
}

impl Read {
    /// Check the query string against the route's parameters, and choose the
    /// first of `offered` (the route's formats, in its order of preference)
    /// that the client's `Accept` ranks highest. A `406` waits for the answer,
    /// so every bad parameter is named first, whatever the `Accept`.
    pub fn begin(req: &HttpRequest, params: &[&str], offered: &[Format]) -> Result<Read, ApiError> {
        let query = Query::parse(req.query_string(), params)?;
        let format = negotiate(req, offered);
        Ok(Read { query, format })
    }

    /// Build the answer from the projection at the query's point; the
    /// projection is held only while building.
    pub fn at_point<A>(
        &self,
        state: &AppState,
        build: impl FnOnce(&Projection, Point) -> Result<A, ApiError>,
    ) -> Result<A, ApiError> {
        let p = state.ledger.read();
        let point = self.query.point(&p)?;
        build(&p, point)
    }

    /// The format chosen, or the `406` when `Accept` allows none: for the
    /// answers a handler writes itself (a streamed export).
    pub fn format(&self) -> Result<Format, ApiError> {
        self.format.clone()
    }

    /// The `200` carrying the answer in the chosen format.
    pub fn answer(&self, answer: &impl Answer) -> Result<HttpResponse, ApiError> {
        let format = self.format.clone()?;
        if format == Format::Json {
            return Ok(HttpResponse::Ok().json(answer));
        }
        let body = answer.render(format).ok_or_else(|| not_acceptable(&[Format::Json]))?;
        Ok(HttpResponse::Ok().content_type(format.content_type()).body(body))
    }
}

fn not_acceptable(offered: &[Format]) -> ApiError {
    let types: Vec<&str> = offered.iter().map(|f| f.essence()).collect();
    ApiError::new(
        Code::NotAcceptable,
        format!(
            "this route answers {} only; Accept lists none of them",
            types.join(", ")
        ),
    )
}

/// RFC 9110 12.5.1: each offered type takes the weight of the most specific
/// range that matches it (`type/subtype`, then the structured-syntax suffix,
/// then `type/*`, then `*/*`); weight 0 refuses it. A range of a suffix's own
/// type matches the types that carry it (RFC 6839: `application/json` admits
/// `application/geo+json`, which is JSON), so GDAL, which asks for `text/plain,
/// application/json`, gets GeoJSON. No `Accept` (or an empty one) accepts
/// anything. Ranges that do not parse are passed over; if none parses,
/// nothing is acceptable.
fn negotiate(req: &HttpRequest, offered: &[Format]) -> Result<Format, ApiError> {
    let mut listed = false;
    let mut ranges: Vec<QualityItem<Mime>> = Vec::new();
    for value in req.headers().get_all(ACCEPT) {
        let Ok(text) = value.to_str() else {
            listed = true;
            continue;
        };
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            listed = true;
            if let Ok(range) = QualityItem::<Mime>::from_str(item) {
                ranges.push(range);
            }
        }
    }
    if !listed {
        return Ok(offered[0]);
    }
    let weight = |format: Format| {
        let essence = format.essence();
        let (ty, sub) = essence.split_once('/').unwrap_or((essence, ""));
        let suffix = sub.split_once('+').map(|(_, suffix)| suffix);
        ranges
            .iter()
            .filter_map(|r| {
                // The essence keeps a structured suffix (`geo+json`), which
                // `subtype` leaves out.
                let (t, s) = (r.item.type_(), r.item.subtype());
                let specificity = if t == STAR && s == STAR {
                    0
                } else if t == ty && s == STAR {
                    1
                } else if t == ty && r.item.suffix().is_none() && Some(s.as_str()) == suffix {
                    2
                } else if r.item.essence_str() == essence {
                    3
                } else {
                    return None;
                };
                Some((specificity, r.quality))
            })
            .max_by_key(|(specificity, _)| *specificity)
            .map(|(_, quality)| quality)
    };
    let mut best: Option<(Format, _)> = None;
    for &format in offered {
        if let Some(q) = weight(format).filter(|q| *q > actix_web::http::header::Quality::ZERO) {
            if best.is_none_or(|(_, b)| q > b) {
                best = Some((format, q));
            }
        }
    }
    best.map(|(f, _)| f).ok_or_else(|| not_acceptable(offered))
}
