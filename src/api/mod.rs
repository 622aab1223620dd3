//! The HTTP API: the only code that knows actix. Routes, wire parsing of query
//! parameters and bodies, and the mapping of every failure to problem+json.
//!
//! Handlers stay thin: parse, call the ledger or the projection, render.

mod actors;
mod audit;
pub mod error;
mod events;
pub mod guard;
mod health;
mod locations;
pub mod pages;
mod query;
mod stream;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::ledger::Ledger;
pub use error::ApiError;

/// What every handler can reach.
pub struct AppState {
    pub ledger: Arc<Ledger>,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// The tokens, or `None` when the server runs open (loopback only).
    pub auth: guard::Auth,
    /// Per-principal rate limit, when configured.
    pub limiter: Option<Arc<guard::Limiter>>,
    /// Turns true when the server starts shutting down: live feeds end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

pub const REQUEST_ID: &str = "x-request-id";
/// Longest incoming `x-request-id` that is kept; longer ones are replaced.
const MAX_REQUEST_ID_CHARS: usize = 128;

/// Every route of the API, as (method, path) pairs: the spec test checks the
/// OpenAPI document against this list. The map and the docs pages are not API
/// routes; they are listed in [`pages::PAGES`].
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/v1/events"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/{id}"),
    ("GET", "/v1/locations"),
    ("GET", "/v1/locations/{id}"),
    ("GET", "/v1/locations/{id}/events"),
    ("GET", "/v1/actors"),
    ("GET", "/v1/actors/{id}"),
    ("GET", "/v1/audit/head"),
    ("GET", "/v1/audit/verify"),
    ("GET", "/v1/audit/proof/inclusion"),
    ("GET", "/v1/audit/proof/consistency"),
    ("GET", "/v1/events/stream"),
    ("GET", "/metrics"),
];

/// Register every route on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // One resource per path; any other method answers 405 with `Allow`.
    fn at(path: &str) -> actix_web::Resource {
        web::resource(path).default_service(web::to(method_not_allowed))
    }
    // The stream comes before `/v1/events/{id}`, which would otherwise match it.
    cfg.service(at("/v1/events/stream").route(web::get().to(stream::subscribe)))
        .service(at("/healthz").route(web::get().to(health::healthz)))
        .service(at("/readyz").route(web::get().to(health::healthz)))
        .service(at("/metrics").route(web::get().to(health::metrics)))
        .service(
            at("/v1/events")
                .route(web::post().to(events::append))
                .route(web::get().to(events::list)),
        )
        .service(at("/v1/events/{id}").route(web::get().to(events::one)))
        .service(at("/v1/locations").route(web::get().to(locations::list)))
        .service(at("/v1/locations/{id}").route(web::get().to(locations::one)))
        .service(at("/v1/locations/{id}/events").route(web::get().to(locations::history)))
        .service(at("/v1/actors").route(web::get().to(actors::list)))
        .service(at("/v1/actors/{id}").route(web::get().to(actors::one)))
        .service(at("/v1/audit/head").route(web::get().to(audit::head)))
        .service(at("/v1/audit/verify").route(web::get().to(audit::verify)))
        .service(at("/v1/audit/proof/inclusion").route(web::get().to(audit::inclusion)))
        .service(at("/v1/audit/proof/consistency").route(web::get().to(audit::consistency)))
        .configure(pages::configure)
        .default_service(web::to(not_found));
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, p)| req.match_pattern().as_deref() == Some(*p))
        .map(|(m, _)| *m)
        .collect();
    let mut res = actix_web::ResponseError::error_response(&ApiError::new(
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.path()),
    ));
    if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
        res.headers_mut().insert(actix_web::http::header::ALLOW, v);
    }
    res
}

/// Give every response an `x-request-id`: the caller's, when it sent a sane one.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID_CHARS && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    // Instrumented, not entered: a span entered across an await stays current
    // on the worker thread while the request waits, so the next request's span
    // became its child, and the chain grew until closing it overflowed the stack.
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    let started = std::time::Instant::now();
    let method = req.method().to_string();
    let mut res = tracing::Instrument::instrument(next.call(req), span).await?;
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
    let status = res.status().as_u16();
    crate::metrics::HTTP_RESPONSES
        .with_label_values(&[route.as_str(), method.as_str(), &status.to_string()])
        .inc();
    crate::metrics::HTTP_SECONDS
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    tracing::debug!(request_id = %id, status, "answered");
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HeaderName::from_static(REQUEST_ID), v);
    }
    Ok(res)
}
