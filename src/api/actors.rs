//! `GET /v1/actors`, `GET /v1/actors/{id}`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::read::{Answer, Read, JSON, POINT};
use super::{ApiError, AppState};
use crate::domain::Slug;
use crate::projection::ActorView;

#[derive(Serialize)]
struct ActorList {
    actors: Vec<ActorView>,
}

impl Answer for ActorList {}
impl Answer for ActorView {}

pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let read = Read::begin(&req, &["as_of", "at_seq", "q"], JSON)?;
    let search = read.query.search()?;
    let actors = read.at_point(&state, |p, point| Ok(p.actor_views(point, search.as_deref())))?;
    read.answer(&ActorList { actors })
}

pub async fn one(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let read = Read::begin(&req, POINT, JSON)?;
    let id = Slug::parse(&path).map_err(|_| ApiError::not_found(format!("no actor '{}'", path.as_str())))?;
    let view = read.at_point(&state, |p, point| {
        p.actor_view(&id, point)
            .ok_or_else(|| ApiError::not_found(format!("no actor '{id}' at this point of the log")))
    })?;
    read.answer(&view)
}
