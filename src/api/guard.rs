//! Authentication, authorisation and the per-principal rate limit, in front of
//! every route. `/healthz`, `/readyz` and the map's pages and assets (no data
//! behind them: the page reads `/v1` with the reader's token) are always open.

use std::sync::{Arc, RwLock};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use governor::clock::{Clock, DefaultClock};

use super::{ApiError, AppState};
use crate::auth::{Need, Principal, Role, Tokens};

/// The principal of a server running without tokens.
pub const ANONYMOUS: &str = "anonymous";

/// Per-principal request limiter.
pub type Limiter = governor::DefaultKeyedRateLimiter<String>;

/// Who may do what: none while the server runs open (loopback only).
pub type Auth = Option<Arc<RwLock<Tokens>>>;

fn need(req: &ServiceRequest) -> Option<Need> {
    match req.path() {
        "/healthz" | "/readyz" => None,
        p if super::pages::is_public(p) => None,
        "/metrics" => Some(Need::Metrics),
        _ if req.method() == Method::POST => Some(Need::Append),
        _ => Some(Need::Read),
    }
}

fn bearer(req: &ServiceRequest) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn refuse<B>(
    req: ServiceRequest,
    err: ApiError,
    header: Option<(actix_web::http::header::HeaderName, String)>,
) -> ServiceResponse<EitherBody<B>> {
    let mut res = err.error_response();
    if let Some((name, value)) = header {
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().insert(name, v);
        }
    }
    req.into_response(res).map_into_right_body()
}

pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(need) = need(&req) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let state = req.app_data::<web::Data<AppState>>().expect("app state").clone();
    let principal = match &state.auth {
        None => Principal {
            name: ANONYMOUS.to_owned(),
            role: Role::Admin,
        },
        Some(tokens) => {
            let Some(token) = bearer(&req) else {
                return Ok(refuse(
                    req,
                    ApiError::new(
                        "unauthorized",
                        "a bearer token is required (Authorization: Bearer <token>)",
                    ),
                    Some((WWW_AUTHENTICATE, "Bearer realm=\"sitrep\"".into())),
                ));
            };
            let found = tokens.read().expect("tokens lock").authenticate(token);
            let Some(p) = found else {
                return Ok(refuse(
                    req,
                    ApiError::new("unauthorized", "the bearer token is not valid"),
                    Some((
                        WWW_AUTHENTICATE,
                        "Bearer realm=\"sitrep\", error=\"invalid_token\"".into(),
                    )),
                ));
            };
            p
        }
    };
    if !principal.role.allows(need) {
        let what = match need {
            Need::Read => "read",
            Need::Append => "append",
            Need::Metrics => "read metrics",
        };
        return Ok(refuse(
            req,
            ApiError::new("forbidden", format!("role {} may not {what}", principal.role)),
            None,
        ));
    }
    if let Some(limiter) = &state.limiter {
        if let Err(not_until) = limiter.check_key(&principal.name) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Ok(refuse(
                req,
                ApiError::new(
                    "rate_limited",
                    format!("too many requests from {}; retry in {secs} s", principal.name),
                ),
                Some((RETRY_AFTER, secs.max(1).to_string())),
            ));
        }
    }
    req.extensions_mut().insert(principal);
    Ok(next.call(req).await?.map_into_left_body())
}
