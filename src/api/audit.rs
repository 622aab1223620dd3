//! `GET /v1/audit/head`, `GET /v1/audit/verify`.

use actix_web::{web, HttpRequest, HttpResponse};

use super::query::Query;
use super::{ApiError, AppState};
use crate::audit::{head_of, verify_store};

pub async fn head(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Query::parse(req.query_string(), &[])?;
    let head = head_of(&state.ledger.read());
    Ok(HttpResponse::Ok().json(head))
}

pub async fn verify(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Query::parse(req.query_string(), &[])?;
    let ledger = state.ledger.clone();
    let upto = ledger.read().head_seq();
    let report = web::block(move || verify_store(ledger.store(), upto))
        .await
        .map_err(|e| ApiError::new("unavailable", e.to_string()))?;
    Ok(HttpResponse::Ok().json(report))
}
