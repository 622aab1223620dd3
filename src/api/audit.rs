//! `GET /v1/audit/head`, `GET /v1/audit/verify`.

use actix_web::{web, HttpRequest, HttpResponse};

use super::query::Query;
use super::{ApiError, AppState, Code};
use crate::audit::head_of;

pub async fn head(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Query::parse(req.query_string(), &[])?;
    let head = head_of(&state.ledger.read());
    Ok(HttpResponse::Ok().json(head))
}

/// One verification serves every caller waiting at once, its answer is kept
/// for the head, and it stops when its callers have all left (see `Verifier`).
pub async fn verify(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Query::parse(req.query_string(), &[])?;
    let report = state
        .verifier
        .verify(&state.ledger)
        .await
        .map_err(|e| ApiError::new(Code::Unavailable, e))?;
    Ok(HttpResponse::Ok().json(report))
}

fn proof_error(name: &str, e: crate::audit::ProofError) -> ApiError {
    match e {
        crate::audit::ProofError::Bad(m) => ApiError::invalid_parameter(name, m),
        crate::audit::ProofError::Store(e) => super::events::storage(e),
    }
}

pub async fn inclusion(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string(), &["seq", "tree_size"])?;
    let head = state.ledger.read().head_seq();
    let seq = q
        .uint("seq")?
        .ok_or_else(|| ApiError::invalid_parameter("seq", "is required"))?;
    let tree_size = q.uint("tree_size")?.unwrap_or(head);
    let ledger = state.ledger.clone();
    let proof = web::block(move || crate::audit::inclusion(ledger.store(), head, seq, tree_size))
        .await
        .map_err(|e| ApiError::new(Code::Unavailable, e.to_string()))?
        .map_err(|e| {
            proof_error(
                if seq == 0 || seq > tree_size {
                    "seq"
                } else {
                    "tree_size"
                },
                e,
            )
        })?;
    Ok(HttpResponse::Ok().json(proof))
}

pub async fn consistency(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string(), &["first", "second"])?;
    let head = state.ledger.read().head_seq();
    let first = q
        .uint("first")?
        .ok_or_else(|| ApiError::invalid_parameter("first", "is required"))?;
    let second = q.uint("second")?.unwrap_or(head);
    let ledger = state.ledger.clone();
    let proof = web::block(move || crate::audit::consistency(ledger.store(), head, first, second))
        .await
        .map_err(|e| ApiError::new(Code::Unavailable, e.to_string()))?
        .map_err(|e| {
            proof_error(
                if second == 0 || second > head {
                    "second"
                } else {
                    "first"
                },
                e,
            )
        })?;
    Ok(HttpResponse::Ok().json(proof))
}
