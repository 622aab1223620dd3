//! Authentication, authorisation and the per-principal rate limit, on every
//! route once the router has matched it. `/healthz`, `/readyz` and the map's
//! pages and assets (no data behind them: the page reads `/v1` with the
//! reader's token) are always open.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use governor::clock::{Clock, DefaultClock};
use governor::{NotUntil, Quota};

use super::{ApiError, AppState, Code};
use crate::auth::{Need, Principal, Role, Tokens};

/// The principal of a server running without tokens.
pub const ANONYMOUS: &str = "anonymous";

/// Per-principal request limiter.
pub type Limiter = governor::DefaultKeyedRateLimiter<String>;

/// Per-peer limiter of refused authentication.
pub type PeerLimiter = governor::DefaultKeyedRateLimiter<IpAddr>;

/// Refused authentications a peer may have per second, once its burst is spent.
pub const REFUSALS_PER_PEER_PER_SECOND: u32 = 10;
/// Refused authentications a peer may have in a burst.
pub const REFUSAL_BURST_PER_PEER: u32 = 100;
/// Peers the refusal limiter tracks before it forgets those back at a full budget.
const MAX_TRACKED_PEERS: usize = 10_000;
/// How long a read with `min_seq` waits for this server to fold that seq,
/// unless `--min-seq-wait` says otherwise.
pub const MIN_SEQ_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The limiter of refused authentications, one budget per peer address.
pub fn peer_limiter() -> PeerLimiter {
    let rate = NonZeroU32::new(REFUSALS_PER_PEER_PER_SECOND).expect("a positive rate");
    let burst = NonZeroU32::new(REFUSAL_BURST_PER_PEER).expect("a positive burst");
    governor::RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
}

/// Who may do what: none while the server runs open (loopback only).
pub type Auth = Option<Arc<RwLock<Tokens>>>;

/// What the matched route needs: decided on the route pattern the router
/// matched, so every spelling of a path that reaches a route is judged alike.
fn need(req: &ServiceRequest) -> Option<Need> {
    match req.match_pattern().as_deref() {
        Some("/healthz" | "/readyz") => None,
        Some(p) if super::pages::is_public(p) => None,
        Some("/metrics") => Some(Need::Metrics),
        _ if req.method() == Method::POST => Some(Need::Append),
        _ => Some(Need::Read),
    }
}

/// `Retry-After` seconds for a limiter's refusal.
fn retry_after(not_until: &NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Refuse an unauthenticated request: `err`, or `429` once its peer has been
/// refused too often, so guessing tokens stays slow.
fn refuse_unauthenticated<B>(
    req: ServiceRequest,
    state: &AppState,
    err: ApiError,
    challenge: &str,
) -> ServiceResponse<EitherBody<B>> {
    if let (Some(limiter), Some(peer)) = (&state.refusals, req.peer_addr()) {
        if let Err(not_until) = limiter.check_key(&peer.ip()) {
            let secs = retry_after(&not_until);
            return refuse(
                req,
                ApiError::new(
                    Code::RateLimited,
                    format!("too many refused requests from this address; retry in {secs} s"),
                ),
                Some((RETRY_AFTER, secs.to_string())),
            );
        }
        if limiter.len() > MAX_TRACKED_PEERS {
            limiter.retain_recent();
        }
    }
    refuse(req, err, Some((WWW_AUTHENTICATE, challenge.to_owned())))
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
    if super::method_label(req.method()).is_none() {
        // A made-up method gets no further, token or not: 405 on a route, 404 elsewhere.
        let res = match req.match_pattern() {
            Some(_) => super::not_allowed(req.request()),
            None => ApiError::not_found(format!("no route for {}", req.path())).error_response(),
        };
        return Ok(req.into_response(res).map_into_right_body());
    }
    let Some(need) = need(&req) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let state = req.app_data::<web::Data<AppState>>().expect("app state").clone();
    let principal = match &state.auth {
        None => Principal {
            name: ANONYMOUS.to_owned(),
            role: Role::Admin,
            token_hash: None,
        },
        Some(tokens) => {
            let Some(token) = bearer(&req) else {
                return Ok(refuse_unauthenticated(
                    req,
                    &state,
                    ApiError::new(
                        Code::Unauthorized,
                        "a bearer token is required (Authorization: Bearer <token>)",
                    ),
                    "Bearer realm=\"sitrep\"",
                ));
            };
            let found = tokens.read().expect("tokens lock").authenticate(token);
            let Some(p) = found else {
                return Ok(refuse_unauthenticated(
                    req,
                    &state,
                    ApiError::new(Code::Unauthorized, "the bearer token is not valid"),
                    "Bearer realm=\"sitrep\", error=\"invalid_token\"",
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
            ApiError::new(Code::Forbidden, format!("role {} may not {what}", principal.role)),
            None,
        ));
    }
    if let Some(limiter) = &state.limiter {
        if let Err(not_until) = limiter.check_key(&principal.name) {
            let secs = retry_after(&not_until);
            return Ok(refuse(
                req,
                ApiError::new(
                    Code::RateLimited,
                    format!("too many requests from {}; retry in {secs} s", principal.name),
                ),
                Some((RETRY_AFTER, secs.to_string())),
            ));
        }
    }
    req.extensions_mut().insert(principal);
    if matches!(need, Need::Read) {
        if let Some(min_seq) = super::query::min_seq(req.query_string()) {
            // Read your own writes through any server: wait until this one has
            // folded the seq an append answered with.
            if let Err(folded) = state.ledger.folded(min_seq, state.min_seq_wait).await {
                return Ok(refuse(
                    req,
                    ApiError::new(
                        Code::Unavailable,
                        format!(
                            "this server has folded the log up to seq {folded}; min_seq {min_seq} was not reached within {} s",
                            state.min_seq_wait.as_secs_f64()
                        ),
                    ),
                    Some((RETRY_AFTER, "1".to_owned())),
                ));
            }
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}
