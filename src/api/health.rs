//! `GET /healthz`, `GET /readyz`: answered once the store is open and the
//! projection has caught up with the log (the server binds only after that).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::query::Query;
use super::{ApiError, AppState};

#[derive(Serialize)]
struct Health {
    status: &'static str,
    seq: u64,
}

pub async fn healthz(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Query::parse(req.query_string(), &[])?;
    let seq = state.ledger.read().head_seq();
    Ok(HttpResponse::Ok().json(Health { status: "ok", seq }))
}
