//! HTTP caching: `ETag`, `If-None-Match` -> `304`, `Cache-Control` on every
//! read; and the same answers behind a real nginx `proxy_cache`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH, VARY};
use reqwest::{Response, StatusCode};

use crate::helpers::*;
use crate::process::ServerProcess;

const PINNED: &str = "public, max-age=31536000, immutable";
const PINNED_PRIVATE: &str = "private, max-age=31536000, immutable";
const UNPINNED: &str = "no-cache";
const UNPINNED_PRIVATE: &str = "private, no-cache";
const NOT_STORED: &str = "no-store";
/// A moment after the demo's story, for answers pinned in both times.
const AS_OF: &str = "2024-12-31T00:00:00Z";

fn header(res: &Response, name: impl reqwest::header::AsHeaderName) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().expect("ASCII header").to_owned())
}

/// A strong entity tag: a quoted string without `W/`.
fn assert_strong_tag(tag: &str, path: &str) {
    assert!(
        tag.len() > 2 && tag.starts_with('"') && tag.ends_with('"') && !tag[1..tag.len() - 1].contains('"'),
        "GET {path}: ETag {tag} is not a strong entity tag"
    );
}

/// GET `path` with `If-None-Match: condition`.
async fn get_if_none_match(app: &TestApp, path: &str, condition: &str) -> Response {
    app.client
        .get(app.url(path))
        .header(IF_NONE_MATCH, condition)
        .send()
        .await
        .expect("request sent")
}

/// GET that must succeed: (ETag, Cache-Control, body).
async fn tagged(app: &TestApp, path: &str) -> (String, String, Vec<u8>) {
    let res = app.get(path).await;
    assert_eq!(res.status(), 200, "GET {path}");
    let tag = header(&res, ETAG).unwrap_or_else(|| panic!("GET {path} has no ETag"));
    assert_strong_tag(&tag, path);
    let control = header(&res, CACHE_CONTROL).unwrap_or_else(|| panic!("GET {path} has no Cache-Control"));
    (tag, control, res.bytes().await.unwrap().to_vec())
}

/// `If-None-Match: condition` that matches the answer tagged `tag`: `304`, no
/// body, the same tag and caching headers.
async fn assert_not_modified(app: &TestApp, path: &str, condition: &str, tag: &str, control: &str) {
    let res = get_if_none_match(app, path, condition).await;
    assert_eq!(
        res.status(),
        StatusCode::NOT_MODIFIED,
        "GET {path} If-None-Match: {condition}"
    );
    assert_eq!(
        header(&res, ETAG).as_deref(),
        Some(tag),
        "GET {path}: the 304 keeps the tag"
    );
    assert_eq!(header(&res, CACHE_CONTROL).as_deref(), Some(control), "GET {path}");
    assert!(
        header(&res, VARY).is_some_and(|v| v.contains("Accept")),
        "GET {path}: Vary"
    );
    assert!(res.bytes().await.unwrap().is_empty(), "GET {path}: a 304 has no body");
}

/// A concrete request for each read route of the demo log: every `GET` route
/// under `/v1/` must be here, so a new one cannot go without caching headers.
async fn read_paths(app: &TestApp) -> Vec<(&'static str, String)> {
    let page = app.ok("/v1/events?limit=1").await;
    let event = page["events"][0]["id"].as_str().expect("an event id").to_owned();
    let mut paths = Vec::new();
    for (method, route) in sitrep::api::ROUTES {
        if *method != "GET" || !route.starts_with("/v1/") {
            continue;
        }
        let path = match *route {
            "/v1/events" => "/v1/events?limit=5".to_owned(),
            "/v1/events/{id}" => format!("/v1/events/{event}"),
            "/v1/events/stream" => continue,
            // Streamed: no ETag (`a_streamed_export_is_never_held_to_hash_it` below).
            "/v1/events.csv" => continue,
            "/v1/locations" => "/v1/locations".to_owned(),
            "/v1/locations.geojson" => "/v1/locations.geojson".to_owned(),
            "/v1/locations.csv" => "/v1/locations.csv".to_owned(),
            "/v1/locations/{id}" => "/v1/locations/aleppo".to_owned(),
            "/v1/locations/{id}/events" => "/v1/locations/aleppo/events".to_owned(),
            "/v1/actors" => "/v1/actors".to_owned(),
            "/v1/actors/{id}" => "/v1/actors/hts".to_owned(),
            "/v1/audit/head" => "/v1/audit/head".to_owned(),
            "/v1/audit/verify" => "/v1/audit/verify".to_owned(),
            "/v1/audit/proof/inclusion" => "/v1/audit/proof/inclusion?seq=1".to_owned(),
            "/v1/audit/proof/consistency" => "/v1/audit/proof/consistency?first=1".to_owned(),
            // Answered by a signing server only; the spec test revalidates it there.
            "/v1/audit/checkpoint" => continue,
            other => panic!("the read route {other} has no request in this test: add one"),
        };
        paths.push((*route, path));
    }
    paths
}

#[tokio::test]
async fn every_read_answers_an_etag_and_revalidates_to_304() {
    let app = spawn_demo_app().await;
    for (route, path) in read_paths(&app).await {
        let (tag, control, body) = tagged(&app, &path).await;
        assert_eq!(control, UNPINNED, "GET {path} ({route}) is not pinned");
        assert!(!body.is_empty(), "GET {path}");
        // The tag is of the body: asking again gives the same one.
        assert_eq!(tagged(&app, &path).await.0, tag, "GET {path}: the tag is stable");
        assert_not_modified(&app, &path, &tag, &tag, &control).await;
    }
}

#[tokio::test]
async fn if_none_match_compares_weakly_and_takes_lists_and_any() {
    let app = spawn_demo_app().await;
    let path = "/v1/locations/aleppo";
    let (tag, control, body) = tagged(&app, path).await;
    for condition in [
        tag.clone(),
        format!("W/{tag}"),
        format!("\"other\", {tag}"),
        format!("W/\"other\",{tag}"),
        "*".to_owned(),
    ] {
        assert_not_modified(&app, path, &condition, &tag, &control).await;
    }
    for condition in ["\"other\"", "W/\"other\", \"more\"", "not-a-tag", "\"\""] {
        let res = get_if_none_match(&app, path, condition).await;
        assert_eq!(res.status(), 200, "If-None-Match: {condition}");
        assert_eq!(header(&res, ETAG).as_deref(), Some(tag.as_str()));
        assert_eq!(res.bytes().await.unwrap().to_vec(), body, "If-None-Match: {condition}");
    }
}

#[tokio::test]
async fn an_append_changes_the_unpinned_tag() {
    let app = spawn_demo_app().await;
    let (before, _, _) = tagged(&app, "/v1/actors").await;
    let (head_before, _, _) = tagged(&app, "/v1/audit/head").await;
    let (status, body) = app.post_json(&actor("newcomers")).await;
    assert_eq!(status, 201, "{body}");
    let (after, control, _) = tagged(&app, "/v1/actors").await;
    assert_ne!(before, after, "the actor list changed, so must its tag");
    assert_eq!(control, UNPINNED);
    assert_ne!(head_before, tagged(&app, "/v1/audit/head").await.0);
    let res = get_if_none_match(&app, "/v1/actors", &before).await;
    assert_eq!(res.status(), 200, "an old tag gets the new answer");
    assert_eq!(header(&res, ETAG), Some(after));
}

#[tokio::test]
async fn pinned_answers_stay_byte_identical_and_immutable() {
    let app = spawn_demo_app().await;
    let head = app.ok("/v1/audit/head").await["seq"].as_u64().expect("a head seq");
    let pinned = [
        format!("/v1/actors?at_seq={head}"),
        format!("/v1/actors/hts?at_seq={head}"),
        format!("/v1/actors/hts?at_seq={head}&as_of={AS_OF}"),
        format!("/v1/locations?at_seq={head}&as_of={AS_OF}"),
        format!("/v1/locations/aleppo?as_of={AS_OF}&at_seq={head}"),
    ];
    // Location answers judge `settled` at the server's clock without `as_of`,
    // and nothing is fixed without `at_seq`.
    let unpinned = [
        format!("/v1/locations?at_seq={head}"),
        format!("/v1/locations/aleppo?at_seq={head}"),
        format!("/v1/locations/aleppo?as_of={AS_OF}"),
        format!("/v1/actors?as_of={AS_OF}"),
    ];
    let mut first = Vec::new();
    for path in &pinned {
        let (tag, control, body) = tagged(&app, path).await;
        assert_eq!(control, PINNED, "GET {path}");
        first.push((tag, body));
    }
    for path in &unpinned {
        assert_eq!(tagged(&app, path).await.1, UNPINNED, "GET {path}");
    }
    // More of the story: hts loses Aleppo, a new actor appears.
    let (status, body) = app
        .post_json(&serde_json::json!([
            actor("newcomers"),
            dev(
                "control_established",
                "aleppo",
                "2024-12-20T00:00:00Z",
                serde_json::json!({"actor": "newcomers"})
            ),
        ]))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_ne!(
        app.ok("/v1/locations/aleppo").await,
        app.ok(&format!("/v1/locations/aleppo?at_seq={head}")).await,
        "the appends change the live answer"
    );
    for (path, (tag, body)) in pinned.iter().zip(&first) {
        let (again, control, now) = tagged(&app, path).await;
        assert_eq!(&now, body, "GET {path} changed after appends");
        assert_eq!(&again, tag, "GET {path}");
        assert_eq!(control, PINNED, "GET {path}");
        assert_not_modified(&app, path, tag, tag, PINNED).await;
    }
}

#[tokio::test]
async fn refusals_and_the_state_of_the_process_are_not_stored() {
    let app = spawn_demo_app().await;
    let head = app.ok("/v1/audit/head").await["seq"].as_u64().expect("a head seq");
    for (path, status) in [
        (format!("/v1/locations?at_seq={}", head + 1), 400),
        (format!("/v1/actors/hts?at_seq={}", head + 1), 400),
        ("/v1/locations/nowhere".to_owned(), 404),
        ("/v1/actors?unknown=1".to_owned(), 400),
        ("/v1/nothing-here".to_owned(), 404),
        ("/healthz".to_owned(), 200),
        ("/readyz".to_owned(), 200),
        ("/metrics".to_owned(), 200),
    ] {
        // A tag that matches nothing, and `*`, which matches any answer.
        for condition in ["\"x\"", "*"] {
            let res = get_if_none_match(&app, &path, condition).await;
            assert_eq!(res.status().as_u16(), status, "GET {path}");
            assert_eq!(header(&res, ETAG), None, "GET {path} has an ETag");
            assert_eq!(header(&res, CACHE_CONTROL).as_deref(), Some(NOT_STORED), "GET {path}");
        }
    }
}

#[tokio::test]
async fn the_live_feed_has_no_etag_and_is_never_served_from_a_cache() {
    let app = spawn_demo_app().await;
    let res = get_if_none_match(&app, "/v1/events/stream", "*").await;
    assert_eq!(res.status(), 200, "a condition never turns the feed into a 304");
    assert_eq!(header(&res, ETAG), None);
    // The feed's own `no-cache`: without a validator every use reaches the server.
    let control = header(&res, CACHE_CONTROL).expect("Cache-Control");
    assert!([UNPINNED, NOT_STORED].contains(&control.as_str()), "{control}");
}

#[tokio::test]
async fn a_streamed_export_is_never_held_to_hash_it() {
    let app = spawn_demo_app().await;
    let res = get_if_none_match(&app, "/v1/events.csv", "*").await;
    assert_eq!(
        res.status(),
        200,
        "a condition never turns a streamed export into a 304"
    );
    assert_eq!(header(&res, ETAG), None);
    let control = header(&res, CACHE_CONTROL).expect("Cache-Control");
    assert!([UNPINNED, NOT_STORED].contains(&control.as_str()), "{control}");
    assert!(!res.bytes().await.unwrap().is_empty(), "the export itself");
}

#[tokio::test]
async fn with_tokens_answers_are_private_and_vary_on_authorization() {
    let tmp = Arc::new(tempfile::tempdir().unwrap());
    let (file, tokens) = tokens_in(tmp.path(), &[("rita", "reader"), ("ada", "admin")]);
    let app = spawn_with(tmp, |s| {
        s.tokens = Some(file);
        s.demo = true;
    })
    .await;
    let head = app.ok_with("/v1/audit/head", &tokens["rita"]).await["seq"]
        .as_u64()
        .expect("a head seq");
    for (path, expected) in [
        (format!("/v1/actors?at_seq={head}"), PINNED_PRIVATE),
        ("/v1/actors".to_owned(), UNPINNED_PRIVATE),
    ] {
        let res = app
            .client
            .get(app.url(&path))
            .bearer_auth(&tokens["rita"])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, CACHE_CONTROL).as_deref(), Some(expected), "GET {path}");
        assert_eq!(header(&res, VARY).as_deref(), Some("Accept, Authorization"));
        assert_eq!(header(&res, "x-accel-expires"), None, "nginx must not keep it");
        let tag = header(&res, ETAG).expect("an ETag");
        let res = app
            .client
            .get(app.url(&path))
            .bearer_auth(&tokens["ada"])
            .header(IF_NONE_MATCH, &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "GET {path}");
        // Without credentials the tag gets a refusal, never a 304.
        let res = get_if_none_match(&app, &path, &tag).await;
        assert_eq!(res.status(), 401, "GET {path}");
        assert_eq!(header(&res, CACHE_CONTROL).as_deref(), Some(NOT_STORED));
        assert_eq!(header(&res, ETAG), None);
    }
}

/// nginx in front of a server process, both on loopback ports of their own.
struct Nginx {
    child: Child,
    address: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Attempts at connecting to a starting nginx, 50 ms apart.
const NGINX_START_ATTEMPTS: usize = 200;

/// Debian's nginx, where a user's `PATH` may not reach.
const NGINX_SBIN: &str = "/usr/sbin/nginx";

/// The nginx to run: on the `PATH`, else Debian's.
fn nginx_binary() -> &'static str {
    let on_path = Command::new("nginx")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        "nginx"
    } else {
        NGINX_SBIN
    }
}

/// Whether nginx can be run here; with `CI` set it must be.
fn nginx_available() -> bool {
    let found = Command::new(nginx_binary())
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is not installed (Debian package nginx); CI must run the cache test"
        );
        eprintln!("skipped: nginx is not installed (apt-get install nginx)");
    }
    found
}

/// The README's configuration, in `prefix` and on `port`, in front of `upstream`.
fn nginx_conf(prefix: &Path, port: u16, upstream: &str) -> String {
    let p = prefix.display();
    format!(
        r#"
daemon off;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {p}/access.log;
    client_body_temp_path {p}/client_body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    proxy_cache_path {p}/cache levels=1:2 keys_zone=sitrep:1m max_size=64m inactive=7d use_temp_path=off;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_cache sitrep;
            proxy_cache_revalidate on;
            proxy_ignore_headers Cache-Control;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"#
    )
}

impl Nginx {
    async fn start(prefix: &Path, upstream: &str) -> Nginx {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(prefix, port, upstream)).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(prefix)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let nginx = Nginx {
            child,
            address: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..NGINX_START_ATTEMPTS {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return nginx;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "nginx did not listen on {port}: {}",
            std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default()
        );
    }

    /// GET through the cache: (X-Cache-Status, status, body).
    async fn get(&self, client: &reqwest::Client, path: &str) -> (String, u16, Vec<u8>) {
        let res = client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("nginx answers");
        let cache = header(&res, "x-cache-status").unwrap_or_default();
        let status = res.status().as_u16();
        (cache, status, res.bytes().await.unwrap().to_vec())
    }
}

/// How many times the server answered `route` with `status`, by its own metrics.
async fn answered(server: &ServerProcess, route: &str, status: u16) -> f64 {
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (route, status) = (format!("route=\"{route}\""), format!("status=\"{status}\""));
    text.lines()
        .filter(|l| l.starts_with("sitrep_http_responses_total{"))
        .filter(|l| l.contains(&route) && l.contains(&status) && l.contains("method=\"GET\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test]
async fn behind_nginx_pinned_answers_are_hits_and_unpinned_are_revalidated() {
    if !nginx_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&tmp.path().join("data"), &["--demo"]);
    let prefix = tmp.path().join("nginx");
    std::fs::create_dir(&prefix).unwrap();
    let nginx = Nginx::start(&prefix, &server.address).await;
    let client = reqwest::Client::new();
    let head = server.json("/v1/audit/head").await["seq"].as_u64().expect("a head seq");

    // Pinned: the second reader is served by nginx; the server never sees it.
    let pinned = format!("/v1/actors?at_seq={head}");
    let (cache, status, pinned_body) = nginx.get(&client, &pinned).await;
    assert_eq!((cache.as_str(), status), ("MISS", 200), "first pinned read");
    let seen = answered(&server, "/v1/actors", 200).await;
    let (cache, status, again) = nginx.get(&client, &pinned).await;
    assert_eq!((cache.as_str(), status), ("HIT", 200), "second pinned read");
    assert_eq!(again, pinned_body);
    assert_eq!(
        answered(&server, "/v1/actors", 200).await,
        seen,
        "the server saw the cached read"
    );

    // Unpinned: kept, but asked again each time; the server answers 304.
    let unpinned = "/v1/actors";
    let (cache, status, body) = nginx.get(&client, unpinned).await;
    assert_eq!((cache.as_str(), status), ("MISS", 200), "first unpinned read");
    let not_modified = answered(&server, "/v1/actors", 304).await;
    let (cache, status, again) = nginx.get(&client, unpinned).await;
    assert_eq!((cache.as_str(), status), ("REVALIDATED", 200), "second unpinned read");
    assert_eq!(again, body);
    assert_eq!(
        answered(&server, "/v1/actors", 304).await,
        not_modified + 1.0,
        "the server answered the revalidation with 304"
    );

    // A change reaches the next reader of the unpinned answer, never the pinned one.
    let res = client
        .post(server.url("/v1/events"))
        .json(&actor("newcomers"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let (cache, status, changed) = nginx.get(&client, unpinned).await;
    assert_eq!((cache.as_str(), status), ("EXPIRED", 200), "read after an append");
    assert_ne!(changed, body);
    let (cache, _, still) = nginx.get(&client, &pinned).await;
    assert_eq!(cache, "HIT", "pinned read after an append");
    assert_eq!(still, pinned_body);
    assert_eq!(
        answered(&server, "/v1/actors", 200).await,
        seen + 2.0,
        "since the first pinned read the server answered in full only the unpinned miss and the changed answer"
    );
}

#[tokio::test]
async fn behind_nginx_answers_of_a_server_with_tokens_are_never_shared() {
    if !nginx_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (file, tokens) = tokens_in(tmp.path(), &[("rita", "reader")]);
    let tokens_arg = file.to_str().expect("a UTF-8 temp path").to_owned();
    let server = ServerProcess::start(&tmp.path().join("data"), &["--demo", "--tokens", &tokens_arg]);
    let prefix = tmp.path().join("nginx");
    std::fs::create_dir(&prefix).unwrap();
    let nginx = Nginx::start(&prefix, &server.address).await;
    let client = reqwest::Client::new();
    let pinned = "/v1/actors?at_seq=1";
    for _ in 0..2 {
        let res = client
            .get(format!("{}{pinned}", nginx.address))
            .bearer_auth(&tokens["rita"])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            header(&res, "x-cache-status").as_deref(),
            Some("MISS"),
            "nginx kept a private answer"
        );
    }
    let (cache, status, _) = nginx.get(&client, pinned).await;
    assert_eq!(
        (cache.as_str(), status),
        ("MISS", 401),
        "a request without a token got a kept answer"
    );
}
