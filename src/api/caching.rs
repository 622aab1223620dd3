//! HTTP caching of reads, once for every route: a strong `ETag` over the body
//! of every answered read, `If-None-Match` answered `304` (RFC 9110 13.1.2),
//! and a `Cache-Control` that says whether the answer can ever change
//! (RFC 9111). Working on the finished body keeps it true for every handler
//! and every representation without any of them knowing about it.
//!
//! The rule:
//! - a read (`GET`/`HEAD` under `/v1/`) answered `200` with a body of known
//!   size gets an `ETag` and `Vary`; it is *pinned*, and cached for a year as
//!   `immutable`, when it names `at_seq` (the server refuses an `at_seq`
//!   beyond the head, so an answered one is a fixed prefix of the log) and
//!   either names `as_of` too or is a resource that never reads the clock
//!   (location answers judge `settled` at the server's clock when `as_of` is
//!   absent, so they change with time even at a fixed `at_seq`); any other read
//!   is `no-cache`: a cache may keep it but must revalidate it every time;
//! - nginx does not keep a `no-cache` answer at all (it reads `no-cache` as
//!   `no-store`), so on a server without tokens every read also carries
//!   nginx's own `X-Accel-Expires`: the pinned year, or `@1` (a moment long
//!   past) for the rest, which nginx keeps as already stale and revalidates
//!   with its `ETag` on every use: what `no-cache` means. nginx before 1.23
//!   reads whichever of the two headers comes first, so its configuration
//!   ignores `Cache-Control` (README, "Caching"); other caches ignore
//!   `X-Accel-Expires`, and nginx removes it before the client sees it;
//! - with tokens on, the same answers are `private` (and never carry the nginx
//!   header): a shared cache must not hand one principal's answer to a request
//!   without credentials;
//! - a streamed body (the live feed, streamed exports) is never held whole to
//!   hash it: it has no `ETag` and is `no-store` unless its handler says otherwise;
//! - refusals, and the live state of the process (`/healthz`, `/readyz`,
//!   `/metrics`), are `no-store`: a refusal (an `at_seq` beyond the head, a
//!   location not yet registered) can turn into an answer at any moment.

use actix_web::body::{self, BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{
    EntityTag, Header, HeaderMap, HeaderName, HeaderValue, IfNoneMatch, CACHE_CONTROL, CONTENT_LOCATION, CONTENT_TYPE,
    DATE, ETAG, EXPIRES, VARY,
};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use sha2::{Digest, Sha256};

use super::{ApiError, AppState, Code};

/// A pinned answer on a server without tokens: any cache may keep it for a
/// year (the longest RFC 9111 lets a freshness lifetime be relied on) and
/// never ask again.
const PINNED: &str = "public, max-age=31536000, immutable";
/// A pinned answer on a server with tokens: only the caller's own cache keeps it.
const PINNED_PRIVATE: &str = "private, max-age=31536000, immutable";
/// Any other read: kept, but revalidated on every use.
const UNPINNED: &str = "no-cache";
/// Any other read on a server with tokens.
const UNPINNED_PRIVATE: &str = "private, no-cache";
/// nginx's own lifetime header, and its values for a pinned answer (the
/// year of [`PINNED`]) and for any other (an absolute time long past: stored,
/// and stale from the start).
const NGINX_EXPIRES: &str = "x-accel-expires";
const NGINX_PINNED: &str = "31536000";
const NGINX_ALREADY_STALE: &str = "@1";
/// Refusals, streams and the state of the process: never kept.
const NOT_STORED: &str = "no-store";
/// Every read negotiates its representation on `Accept`.
const VARY_OPEN: &str = "Accept";
/// With tokens, whether a read is answered at all depends on `Authorization`.
const VARY_TOKENS: &str = "Accept, Authorization";
/// Bytes of the SHA-256 kept in an `ETag`: 128 bits, far past any collision
/// among the answers one URL will ever have.
const ETAG_HASH_BYTES: usize = 16;
/// Read routes whose answer at a fixed `at_seq` does not depend on the
/// server's clock. Any other route needs `as_of` as well to be pinned, so a
/// new route is never promised immutable by default.
const CLOCK_FREE: &[&str] = &["/v1/actors", "/v1/actors/{id}"];
/// The prefix of the routes that read the log.
const READS: &str = "/v1/";
/// Headers a `304` repeats from the `200` it stands for (RFC 9110 15.4.5).
const KEPT_ON_304: [HeaderName; 6] = [CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, VARY];

/// The middleware; see the module documentation for the rule.
pub async fn http_cache(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let if_none_match = IfNoneMatch::parse(req.request()).ok();
    let tokens = req.app_data::<web::Data<AppState>>().is_some_and(|s| s.auth.is_some());
    let res = next.call(req).await?;
    let route = res.request().match_pattern().unwrap_or_default();
    let read = res.status() == StatusCode::OK && route.starts_with(READS);
    if !read || !matches!(res.response().body().size(), BodySize::Sized(_)) {
        let mut res = res.map_into_boxed_body();
        let headers = res.headers_mut();
        if !headers.contains_key(CACHE_CONTROL) {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static(NOT_STORED));
        }
        return Ok(res);
    }
    let pinned = pinned(res.request().query_string(), &route);
    let (req, res) = res.into_parts();
    let (head, body) = res.into_parts();
    let bytes = body::to_bytes(body).await.map_err(|e| {
        let e: Box<dyn std::error::Error> = e.into();
        ApiError::new(Code::Unavailable, format!("the answer could not be read: {e}"))
    })?;
    let mut res = head.set_body(BoxBody::new(bytes.clone()));
    let tag = entity_tag(res.headers().get(CONTENT_TYPE), &bytes);
    let control = match (pinned, tokens) {
        (true, false) => PINNED,
        (true, true) => PINNED_PRIVATE,
        (false, false) => UNPINNED,
        (false, true) => UNPINNED_PRIVATE,
    };
    let headers = res.headers_mut();
    headers.insert(ETAG, header_value(&tag));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(control));
    headers.insert(
        VARY,
        HeaderValue::from_static(if tokens { VARY_TOKENS } else { VARY_OPEN }),
    );
    if !tokens {
        let lifetime = if pinned { NGINX_PINNED } else { NGINX_ALREADY_STALE };
        headers.insert(
            HeaderName::from_static(NGINX_EXPIRES),
            HeaderValue::from_static(lifetime),
        );
    }
    if if_none_match.is_some_and(|condition| matches(&condition, &tag)) {
        res = not_modified(res.headers());
    }
    Ok(ServiceResponse::new(req, res))
}

/// Whether an answered read with this query can never change (see the module
/// documentation). The handler accepted the query, so its names are known.
fn pinned(query: &str, route: &str) -> bool {
    let names: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let has = |name: &str| names.iter().any(|(k, _)| k == name);
    has("at_seq") && (has("as_of") || CLOCK_FREE.contains(&route))
}

/// The strong tag of a representation: its media type and its bytes.
fn entity_tag(content_type: Option<&HeaderValue>, body: &[u8]) -> EntityTag {
    let mut hash = Sha256::new();
    hash.update(content_type.map_or(&b""[..], HeaderValue::as_bytes));
    // The separator keeps a media type and a body from running into each other.
    hash.update([0]);
    hash.update(body);
    EntityTag::new_strong(hex::encode(&hash.finalize()[..ETAG_HASH_BYTES]))
}

fn header_value(tag: &EntityTag) -> HeaderValue {
    HeaderValue::from_str(&tag.to_string()).expect("a hex entity tag is a valid header value")
}

/// `If-None-Match` is false (so the answer is `304`) when `*` or any listed
/// tag matches by the weak comparison, as RFC 9110 13.1.2 requires for it:
/// `W/"x"` from a client matches our `"x"`.
fn matches(condition: &IfNoneMatch, tag: &EntityTag) -> bool {
    match condition {
        IfNoneMatch::Any => true,
        IfNoneMatch::Items(tags) => tags.iter().any(|t| t.weak_eq(tag)),
    }
}

/// `304 Not Modified`: no body, and the validators and caching headers the
/// `200` would have carried.
fn not_modified(full: &HeaderMap) -> HttpResponse {
    let mut res = HttpResponse::NotModified().finish();
    let nginx = HeaderName::from_static(NGINX_EXPIRES);
    for name in KEPT_ON_304.iter().chain([&nginx]) {
        if let Some(v) = full.get(name) {
            res.headers_mut().insert(name.clone(), v.clone());
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_needs_at_seq_and_as_of_unless_the_route_is_clock_free() {
        assert!(pinned("at_seq=3&as_of=2024-01-01T00:00:00Z", "/v1/locations"));
        assert!(!pinned("at_seq=3", "/v1/locations"));
        assert!(!pinned("at_seq=3", "/v1/locations/{id}"));
        assert!(pinned("at_seq=3", "/v1/actors"));
        assert!(pinned("%61t_seq=3", "/v1/actors/{id}"));
        assert!(!pinned("as_of=2024-01-01T00:00:00Z", "/v1/actors"));
        assert!(!pinned("", "/v1/actors"));
    }

    #[test]
    fn the_tag_covers_the_media_type() {
        let json = HeaderValue::from_static("application/json");
        let csv = HeaderValue::from_static("text/csv");
        assert_ne!(entity_tag(Some(&json), b"x"), entity_tag(Some(&csv), b"x"));
        assert_eq!(entity_tag(Some(&json), b"x"), entity_tag(Some(&json), b"x"));
        assert_ne!(entity_tag(Some(&json), b"x"), entity_tag(Some(&json), b"y"));
    }
}
