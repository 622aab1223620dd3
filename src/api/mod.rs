//! The HTTP API: the only code that knows actix. Routes, wire parsing of query
//! parameters and bodies, and the mapping of every failure to problem+json.
//!
//! Handlers stay thin: parse, call the ledger or the projection, render.

mod actors;
mod audit;
mod caching;
mod edge;
pub mod error;
mod event_formats;
mod events;
mod fanout;
pub mod guard;
mod health;
mod locations;
pub mod pages;
mod query;
mod read;
mod stream;

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use crate::ledger::Ledger;
pub use edge::{serve, serve_routes};
pub use error::{ApiError, Code};
pub(crate) use events::read_body;
pub use fanout::Fanout;
pub use stream::Subscribers;

/// What every handler can reach.
pub struct AppState {
    pub ledger: Arc<Ledger>,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Time a client has to send a request body.
    pub body_timeout: std::time::Duration,
    /// The tokens, or `None` when the server runs open (loopback only).
    pub auth: guard::Auth,
    /// Per-principal rate limit, when configured.
    pub limiter: Option<Arc<guard::Limiter>>,
    /// Per-peer limit on refused authentication, when tokens are on.
    pub refusals: Option<Arc<guard::PeerLimiter>>,
    /// Turns true when the server starts shutting down: live feeds end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The checkpoint signer, when the server has a signing key.
    pub checkpoints: Option<Arc<crate::transparency::signer::Checkpointer>>,
    /// The live feed's subscriber slots.
    pub subscribers: Arc<Subscribers>,
    /// The live feed's fan-out to its subscribers.
    pub fanout: Arc<Fanout>,
    /// The one verification of the log that runs at a time, and its last answer.
    pub verifier: Arc<crate::audit::Verifier>,
    /// Counts tokens-file reloads: live feeds re-check their token on each.
    pub tokens_reloaded: tokio::sync::watch::Receiver<u64>,
    /// The log's origin name: the `source` of its CloudEvents (`--origin`).
    pub origin: String,
    /// How long a read with `min_seq` waits for this server to fold it.
    pub min_seq_wait: std::time::Duration,
}

pub const REQUEST_ID: &str = "x-request-id";
/// Longest incoming `x-request-id` that is kept; longer ones are replaced.
const MAX_REQUEST_ID_CHARS: usize = 128;

/// Longest request URI (path and query) answered; longer is `414 uri_too_long`.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The methods the server knows (RFC 9110 and PATCH). Any other is refused
/// before authentication, and counts in the metrics as `other`: a label value
/// never comes from the client.
const KNOWN_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// A known method's name: its metrics label (`other` stands for the rest).
fn method_label(method: &actix_web::http::Method) -> Option<&'static str> {
    KNOWN_METHODS.iter().copied().find(|m| *m == method.as_str())
}

/// Every route of the API, as (method, path) pairs: the spec test checks the
/// OpenAPI document against this list. The map and the docs pages are not API
/// routes; they are listed in [`pages::ROUTES`].
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/v1/events"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/{id}"),
    ("GET", "/v1/locations"),
    ("GET", "/v1/locations.geojson"),
    ("GET", "/v1/locations.csv"),
    ("GET", "/v1/locations/{id}"),
    ("GET", "/v1/locations/{id}/events"),
    ("GET", "/v1/actors"),
    ("GET", "/v1/actors/{id}"),
    ("GET", "/v1/audit/head"),
    ("GET", "/v1/audit/verify"),
    ("GET", "/v1/audit/proof/inclusion"),
    ("GET", "/v1/audit/proof/consistency"),
    ("GET", "/v1/audit/checkpoint"),
    ("GET", "/v1/events/stream"),
    ("GET", "/metrics"),
    ("GET", "/v1/events.csv"),
];

/// Register every route on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // One resource per path; any other method answers 405 with `Allow`. The
    // token check runs once the router has matched, so it decides on the route
    // the request reaches, never on a second reading of the raw path.
    fn at(
        path: &str,
    ) -> actix_web::Resource<
        impl actix_web::dev::ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl MessageBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        web::resource(path)
            .default_service(web::to(method_not_allowed))
            .wrap(from_fn(guard::guard))
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
        .service(at("/v1/events.csv").route(web::get().to(event_formats::csv)))
        .service(at("/v1/locations").route(web::get().to(locations::list)))
        .service(at("/v1/locations.geojson").route(web::get().to(locations::geojson)))
        .service(at("/v1/locations.csv").route(web::get().to(locations::csv)))
        .service(at("/v1/locations/{id}").route(web::get().to(locations::one)))
        .service(at("/v1/locations/{id}/events").route(web::get().to(locations::history)))
        .service(at("/v1/actors").route(web::get().to(actors::list)))
        .service(at("/v1/actors/{id}").route(web::get().to(actors::one)))
        .service(at("/v1/audit/head").route(web::get().to(audit::head)))
        .service(at("/v1/audit/verify").route(web::get().to(audit::verify)))
        .service(at("/v1/audit/proof/inclusion").route(web::get().to(audit::inclusion)))
        .service(at("/v1/audit/proof/consistency").route(web::get().to(audit::consistency)))
        .service(at("/v1/audit/checkpoint").route(web::get().to(audit::checkpoint)))
        .configure(pages::configure)
        .default_service(web::route().to(not_found).wrap(from_fn(guard::guard)));
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    not_allowed(&req)
}

/// `405` with the `Allow` of the matched route. An unknown method is not
/// echoed: it may be tens of kilobytes.
fn not_allowed(req: &HttpRequest) -> HttpResponse {
    let pattern = req.match_pattern();
    let allowed: Vec<&str> = ROUTES
        .iter()
        .chain(pages::ROUTES)
        .filter(|(_, p)| pattern.as_deref() == Some(*p))
        .map(|(m, _)| *m)
        .collect();
    let method = method_label(req.method()).unwrap_or("this method");
    let mut res = actix_web::ResponseError::error_response(&ApiError::new(
        Code::MethodNotAllowed,
        format!("{method} is not allowed on {}", req.path()),
    ));
    if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
        res.headers_mut().insert(actix_web::http::header::ALLOW, v);
    }
    res
}

/// Give every response an `x-request-id`: the caller's, when it sent a sane one.
/// Count every answer under labels from a closed set. Refuse an overlong URI
/// before anything else looks at the request.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID_CHARS && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let started = std::time::Instant::now();
    let uri_bytes = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    let mut res = if uri_bytes > MAX_URI_BYTES {
        let refusal = ApiError::new(
            Code::UriTooLong,
            format!("the request URI is longer than {MAX_URI_BYTES} bytes"),
        );
        req.into_response(refusal.error_response()).map_into_right_body()
    } else {
        // Instrumented, not entered: a span entered across an await stays current
        // on the worker thread while the request waits, so the next request's span
        // became its child, and the chain grew until closing it overflowed the stack.
        let method = method_label(req.method()).unwrap_or("other");
        let span = tracing::info_span!("request", request_id = %id, method, path = %req.path());
        tracing::Instrument::instrument(next.call(req), span)
            .await?
            .map_into_left_body()
    };
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = method_label(res.request().method()).unwrap_or("other");
    let status = res.status().as_u16();
    crate::metrics::HTTP_RESPONSES
        .with_label_values(&[route.as_str(), method, &status.to_string()])
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
