//! `GET /v1/audit/head`, `GET /v1/audit/verify`, the proofs, and
//! `GET /v1/audit/checkpoint`.

use actix_web::{web, HttpRequest, HttpResponse};

use super::read::{Answer, Read, JSON};
use super::{ApiError, AppState, Code};
use crate::audit::{head_of, ConsistencyProof, HeadView, InclusionProof, VerifyReport};

impl Answer for HeadView {}
impl Answer for VerifyReport {}
impl Answer for InclusionProof {}
impl Answer for ConsistencyProof {}

pub async fn head(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let read = Read::begin(&req, &[], JSON)?;
    let head = head_of(&state.ledger.read());
    read.answer(&head)
}

/// One verification serves every caller waiting at once, its answer is kept
/// for the head, and it stops when its callers have all left (see `Verifier`).
pub async fn verify(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let read = Read::begin(&req, &[], JSON)?;
    let report = state
        .verifier
        .verify(&state.ledger)
        .await
        .map_err(|e| ApiError::new(Code::Unavailable, e))?;
    read.answer(&report)
}

fn proof_error(name: &str, e: crate::audit::ProofError) -> ApiError {
    match e {
        crate::audit::ProofError::Bad(m) => ApiError::invalid_parameter(name, m),
        crate::audit::ProofError::Store(e) => super::events::storage(e),
    }
}

pub async fn inclusion(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let read = Read::begin(&req, &["seq", "tree_size"], JSON)?;
    let q = &read.query;
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
    read.answer(&proof)
}

pub async fn consistency(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let read = Read::begin(&req, &["first", "second"], JSON)?;
    let q = &read.query;
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
    read.answer(&proof)
}

/// `GET /v1/audit/checkpoint`: the last signed checkpoint (C2SP signed note)
/// with the witnesses' cosignatures gathered so far. While the signer refuses
/// to sign (see `transparency::signer`), this stays the last good one.
pub async fn checkpoint(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    super::query::Query::parse(req.query_string(), &[])?;
    let signer = state
        .checkpoints
        .as_ref()
        .ok_or_else(|| ApiError::not_found("this server signs no checkpoints (start it with --signing-key FILE)"))?;
    let published = signer.published().ok_or_else(|| {
        ApiError::new(
            Code::Unavailable,
            "no checkpoint has been signed yet; try again shortly",
        )
    })?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .body(published.note.clone()))
}
