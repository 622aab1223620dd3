//! `GET /v1/actors`, `GET /v1/actors/{id}`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::query::Query;
use super::{ApiError, AppState};
use crate::domain::Slug;
use crate::projection::ActorView;

#[derive(Serialize)]
struct ActorList {
    actors: Vec<ActorView>,
}

pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string(), &["as_of", "at_seq", "q"])?;
    let search = q.search()?;
    let p = state.ledger.read();
    let point = q.point(&p)?;
    let body = ActorList {
        actors: p.actor_views(point, search.as_deref()),
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
    let id = Slug::parse(&path).map_err(|_| ApiError::not_found(format!("no actor '{}'", path.as_str())))?;
    let p = state.ledger.read();
    let point = q.point(&p)?;
    let view = p.actor_view(&id, point);
    drop(p);
    view.map(|v| HttpResponse::Ok().json(v))
        .ok_or_else(|| ApiError::not_found(format!("no actor '{id}' at this point of the log")))
}
