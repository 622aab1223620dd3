//! One shape for every read: parse the query, read the projection at the
//! point, build the answer, render it. What every read answer needs (its
//! format, and anything else that belongs to all of them) attaches here once
//! instead of in each handler.

use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use super::query::Query;
use super::{ApiError, AppState};
use crate::projection::{Point, Projection};

/// The parameters that pin a read to a point of the log.
pub(super) const POINT: &[&str] = &["as_of", "at_seq"];

/// An answer of a read route.
pub(super) trait Answer: Serialize {}

/// A read under way: its checked query.
pub(super) struct Read {
    pub query: Query,
}

impl Read {
    /// Parse the query string against the route's parameters.
    pub fn begin(req: &HttpRequest, params: &[&str]) -> Result<Read, ApiError> {
        Ok(Read {
            query: Query::parse(req.query_string(), params)?,
        })
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

    /// The `200` carrying the answer.
    pub fn answer(&self, answer: &impl Answer) -> Result<HttpResponse, ApiError> {
        Ok(HttpResponse::Ok().json(answer))
    }
}
