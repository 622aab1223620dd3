//! `GET /healthz`, `GET /readyz`: answered once the store is open and the
//! projection has caught up with the log (the server binds only after that);
//! `503` after a storage fault, so an orchestrator restarts the server.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::query::Query;
use super::{ApiError, AppState, Code};

#[derive(Serialize)]
struct Health {
    status: &'static str,
    seq: u64,
    /// Why checkpoints are not being signed, while they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint_refused: Option<String>,
}

pub async fn healthz(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Query::parse(req.query_string(), &[])?;
    if let Some(fault) = state.ledger.fault() {
        return Err(ApiError::new(
            Code::Unavailable,
            format!("storage fault: {fault}; appends are refused until the server is restarted with the fault fixed"),
        ));
    }
    if let Err(e) = state.ledger.store().ready() {
        return Err(ApiError::new(Code::Unavailable, format!("the store is not ready: {e}")));
    }
    let seq = state.ledger.read().head_seq();
    let checkpoint_refused = state.checkpoints.as_ref().and_then(|c| c.refused());
    Ok(HttpResponse::Ok().json(Health {
        status: "ok",
        seq,
        checkpoint_refused,
    }))
}

/// `GET /metrics`: Prometheus text format (roles admin and metrics).
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Query::parse(req.query_string(), &[])?;
    let head = state.ledger.read().head_seq();
    crate::metrics::LOG_EVENTS.set(head as i64);
    crate::metrics::PROJECTION_LAG.set(state.ledger.store().head().seq.saturating_sub(head) as i64);
    if let Ok(bytes) = state.ledger.store().size_on_disk() {
        crate::metrics::LOG_BYTES.set(bytes as i64);
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render()))
}
