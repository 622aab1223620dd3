//! The map (`GET /`) and the API docs (`GET /docs`): static files from
//! `src/web/`, embedded in the binary, so no request ever leaves the server.
//!
//! The pages hold no data: everything they show comes from the public `/v1` API,
//! with the reader's token when the server runs with tokens. So the pages and
//! their assets are public (the guard lets them through without a token), and
//! this module never touches the ledger.
//!
//! Caching: every asset is served under `/assets/<digest>/`, where the digest is
//! a SHA-256 over all embedded files, so an asset URL names one content forever
//! (`immutable`, a year) and a new build moves every URL at once. The two pages
//! that name the digest (`/` and `/docs`) are `no-cache` with an `ETag`, so a
//! reload revalidates them in one round trip. Relative URLs inside the assets
//! (ES module imports, CSS images) stay under the same digest by themselves.
//!
//! Every answer carries a Content-Security-Policy without inline script and
//! without any remote origin.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{guard, middleware, web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use super::ApiError;

/// The files under `src/web/`, inside the binary (also in debug builds, so tests
/// serve exactly what a release serves).
#[derive(rust_embed::Embed)]
#[folder = "src/web/"]
#[exclude = "*.md"]
#[exclude = "*.sh"]
#[exclude = "vendor/VERSIONS"]
struct Files;

/// The OpenAPI document that `/docs` renders.
const OPENAPI: &[u8] = include_bytes!("../../api-spec/openapi.yaml");

/// Where the pages put their assets: `{{assets}}` in a page becomes
/// `/assets/<digest>`.
const ASSETS_PLACEHOLDER: &str = "{{assets}}";
/// Hex digits of the content digest in asset URLs (64 bits: a collision
/// between two builds is not a concern).
const DIGEST_HEX: usize = 16;
/// How long a browser may keep a digest-named asset without asking again.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The map: scripts, styles, images, data and API calls only from this origin.
/// `data:` images are for Leaflet's CSS; no inline script or style anywhere.
const MAP_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";
/// The docs: Swagger UI sets inline styles and `data:` icons that it cannot be
/// told to avoid, so this page (which renders only our own spec) allows inline
/// *style*; scripts stay same-origin only, and nothing remote is allowed.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The prefix of every asset URL.
const ASSETS_PREFIX: &str = "/assets/";
/// The route of every asset: one route, so one metrics label for all of them.
const ASSET_ROUTE: &str = "/assets/{digest}/{path:.+}";

/// The pages' routes, as (method, route pattern) pairs: public, no token needed
/// (the guard asks [`is_public`] about the route it matched), and the `Allow` of
/// their `405`.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("HEAD", "/"),
    ("GET", "/docs"),
    ("HEAD", "/docs"),
    ("GET", "/docs/openapi.yaml"),
    ("HEAD", "/docs/openapi.yaml"),
    ("GET", ASSET_ROUTE),
    ("HEAD", ASSET_ROUTE),
];

/// Is `pattern`, a route the router matched, a page or the assets (public, no
/// data behind them)?
pub fn is_public(pattern: &str) -> bool {
    ROUTES.iter().any(|(_, p)| *p == pattern)
}

/// Everything computed once from the embedded files.
struct Site {
    digest: String,
    index: Page,
    docs: Page,
    openapi: Page,
}

/// A page ready to serve, with its `ETag`.
struct Page {
    body: Vec<u8>,
    etag: String,
}

impl Page {
    fn new(body: Vec<u8>) -> Page {
        let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..DIGEST_HEX]);
        Page { body, etag }
    }
}

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let mut names: Vec<_> = Files::iter().collect();
        names.sort();
        let mut hasher = Sha256::new();
        for name in &names {
            let file = Files::get(name).expect("an embedded file is there");
            hasher.update((name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update(file.metadata.sha256_hash());
        }
        let digest = hex::encode(hasher.finalize())[..DIGEST_HEX].to_owned();
        let page = |name: &str| {
            let file = Files::get(name).unwrap_or_else(|| panic!("src/web/{name} is embedded"));
            let text = std::str::from_utf8(&file.data).expect("pages are UTF-8");
            Page::new(
                text.replace(ASSETS_PLACEHOLDER, &format!("{ASSETS_PREFIX}{digest}"))
                    .into_bytes(),
            )
        };
        Site {
            index: page("index.html"),
            docs: page("docs.html"),
            openapi: Page::new(OPENAPI.to_vec()),
            digest,
        }
    })
}

/// The content type of an embedded file, by its extension.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("yaml") => "application/yaml",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "text/plain; charset=utf-8",
    }
}

/// Register the pages and the assets. Each answers GET and HEAD; any other
/// method is `405` with `Allow`. The guard runs on them like on every route, so
/// an unknown method is refused alike everywhere, and lets them through without
/// a token.
pub fn configure(cfg: &mut web::ServiceConfig) {
    fn read() -> actix_web::Route {
        web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
    }
    fn at(
        path: &str,
        route: actix_web::Route,
    ) -> actix_web::Resource<
        impl actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        web::resource(path)
            .route(route)
            .default_service(web::to(super::method_not_allowed))
            .wrap(middleware::Compress::default())
            .wrap(middleware::from_fn(super::guard::guard))
    }
    cfg.service(at("/", read().to(index)))
        .service(at("/docs", read().to(docs)))
        .service(at("/docs/openapi.yaml", read().to(openapi)))
        .service(at(ASSET_ROUTE, read().to(asset)));
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve_page(&req, &site().index, "text/html; charset=utf-8", MAP_CSP)
}

async fn docs(req: HttpRequest) -> HttpResponse {
    serve_page(&req, &site().docs, "text/html; charset=utf-8", DOCS_CSP)
}

async fn openapi(req: HttpRequest) -> HttpResponse {
    serve_page(&req, &site().openapi, "application/yaml", MAP_CSP)
}

/// A page whose content can change with the build: revalidated on every use.
fn serve_page(req: &HttpRequest, page: &Page, content_type: &'static str, csp: &'static str) -> HttpResponse {
    let mut res = if etag_matches(req, &page.etag) {
        HttpResponse::NotModified().finish()
    } else {
        HttpResponse::Ok().content_type(content_type).body(page.body.clone())
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    set(h, header::ETAG, &page.etag);
    secure(h, csp);
    res
}

async fn asset(req: HttpRequest, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (digest, name) = path.into_inner();
    // An asset of another build is not served under this digest: its URL
    // promises content this binary does not have. The pages are templates
    // (`{{assets}}`), served only filled in, at their own paths.
    let file = (digest == site().digest)
        .then(|| Files::get(&name))
        .flatten()
        .filter(|_| !name.ends_with(".html"))
        .ok_or_else(|| ApiError::not_found(format!("no asset {}", req.path())))?;
    let etag = format!("\"{}\"", &hex::encode(file.metadata.sha256_hash())[..DIGEST_HEX]);
    let mut res = if etag_matches(&req, &etag) {
        HttpResponse::NotModified().finish()
    } else {
        HttpResponse::build(StatusCode::OK)
            .content_type(content_type(&name))
            .body(file.data.into_owned())
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    set(h, header::ETAG, &etag);
    secure(h, MAP_CSP);
    Ok(res)
}

fn etag_matches(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn set(h: &mut header::HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// The headers every page and asset carries.
fn secure(h: &mut header::HeaderMap, csp: &'static str) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_names_assets_that_exist() {
        let site = site();
        for page in [&site.index, &site.docs] {
            let text = std::str::from_utf8(&page.body).unwrap();
            assert!(!text.contains(ASSETS_PLACEHOLDER));
            let prefix = format!("{ASSETS_PREFIX}{}/", site.digest);
            let mut found = 0;
            for part in text.split(&prefix).skip(1) {
                let name = &part[..part.find('"').expect("a quoted URL")];
                assert!(Files::get(name).is_some(), "{name} is named but not embedded");
                found += 1;
            }
            assert!(found >= 2, "a page names its script and style");
        }
    }

    #[test]
    fn no_page_holds_inline_script_or_style() {
        for name in Files::iter().filter(|n| n.ends_with(".html")) {
            let text = String::from_utf8(Files::get(&name).unwrap().data.into_owned()).unwrap();
            let lower = text.to_lowercase();
            assert!(!lower.contains(" style="), "{name}: an inline style attribute");
            assert!(!lower.contains("<style"), "{name}: an inline style element");
            for tag in lower.split("<script").skip(1) {
                let head = &tag[..tag.find('>').unwrap()];
                assert!(head.contains(" src="), "{name}: an inline script");
            }
            for handler in [" onclick=", " onload=", " onerror=", " onsubmit=", " oninput="] {
                assert!(!lower.contains(handler), "{name}: an inline handler {handler}");
            }
            assert!(
                !lower.contains("http://") && !lower.contains("https://"),
                "{name}: a remote URL"
            );
        }
    }
}
