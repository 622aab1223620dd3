//! Refusals before authentication and at the edge of HTTP: made-up methods,
//! percent-encoded paths, slow bodies and overlong URIs. Each answer is
//! problem+json, costs the server nothing it keeps, and grants nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// The method label values `/metrics` may carry.
pub const METHOD_LABELS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other",
];

/// Every `key="value"` label of every `sitrep_http_` sample line.
fn http_labels(metrics: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in metrics.lines().filter(|l| l.starts_with("sitrep_http_")) {
        let Some(labels) = line
            .split_once('{')
            .and_then(|(_, rest)| rest.rsplit_once('}'))
            .map(|(l, _)| l)
        else {
            continue;
        };
        let mut rest = labels;
        while let Some((key, after)) = rest.split_once("=\"") {
            let mut value = String::new();
            let mut chars = after.char_indices();
            let mut end = after.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            out.push((key.trim_start_matches(',').to_owned(), value));
            rest = &after[end..];
        }
    }
    out
}

/// The HTTP metrics carry labels from a closed set only: a route label is an
/// API route, a page's route or `unmatched`.
pub fn assert_closed_labels(metrics: &str) {
    let routes: Vec<&str> = sitrep::api::ROUTES
        .iter()
        .chain(sitrep::api::pages::ROUTES)
        .map(|(_, p)| *p)
        .collect();
    let labels = http_labels(metrics);
    assert!(!labels.is_empty(), "no HTTP metrics in\n{metrics}");
    for (key, value) in labels {
        let ok = match key.as_str() {
            "route" => value == "unmatched" || routes.contains(&value.as_str()),
            "method" => METHOD_LABELS.contains(&value.as_str()),
            "status" => value.len() == 3 && value.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
            "le" => true,
            _ => false,
        };
        assert!(
            ok,
            "label {key}={:?} is not from the closed set",
            &value[..value.len().min(80)]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_are_refused_early_and_never_become_metric_labels() {
    let app = spawn_app().await;
    for i in 0..300 {
        let method = format!("Q{i}{}", "X".repeat(2_000 + i));
        let res = app
            .client
            .request(Method::from_bytes(method.as_bytes()).unwrap(), app.url("/v1/events"))
            .send()
            .await
            .unwrap();
        assert_problem(res, 405, "method_not_allowed").await;
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(!text.contains("XXXXXXXX"), "a made-up method reached /metrics");
    assert_closed_labels(&text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_refused_again_and_again_is_slowed_down_and_a_good_token_still_works() {
    let tmp = Arc::new(tempfile::tempdir().unwrap());
    let (file, tokens) = tokens_in(tmp.path(), &[("rita", "reader")]);
    let app = spawn_with(tmp, |s| s.tokens = Some(file)).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for i in 0..1000 {
        let res = app
            .client
            .get(app.url("/v1/actors"))
            .bearer_auth(format!("st_guess-{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            last = Some(res);
            break;
        }
    }
    assert_eq!(statuses[0], 401, "{statuses:?}");
    let res = last.unwrap_or_else(|| panic!("no 429 after {} refusals: {statuses:?}", statuses.len()));
    assert!(res.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_problem(res, 429, "rate_limited").await;
    let res = app
        .client
        .get(app.url("/v1/actors"))
        .bearer_auth(&tokens["rita"])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a good token from the same peer still works");
}

/// Spellings of `path` the router may or may not take for it: each character
/// percent-encoded (upper- and lowercase hex), all of them, doubled and
/// trailing slashes, dot segments.
fn spellings(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, b) in path.bytes().enumerate().filter(|(_, b)| *b != b'/') {
        for hex in [format!("%{b:02X}"), format!("%{b:02x}")] {
            out.push(format!("{}{hex}{}", &path[..i], &path[i + 1..]));
        }
    }
    out.push(
        path.bytes()
            .map(|b| if b == b'/' { "/".to_owned() } else { format!("%{b:02X}") })
            .collect(),
    );
    out.push(format!("/{path}"));
    out.push(path.replacen('/', "//", 2).replacen("//", "/", 1));
    out.push(path.replace('/', "//"));
    out.push(format!("{path}/"));
    out.push(format!("{path}%2F"));
    out.push(format!("/v1/..{path}"));
    out.push(format!("/.{path}"));
    out.push(format!("/x/..{path}"));
    out.push(format!("{path}/."));
    out.push(path.replace('/', "%2F"));
    out.push(path.replace('/', "%2f"));
    out.dedup();
    out
}

/// A concrete path (and query) for a route template.
fn sample_path(template: &str) -> (&str, &str) {
    match template {
        "/v1/events/{id}" => ("/v1/events/0193a0b6-0000-7000-8000-000000000000", ""),
        "/v1/locations/{id}" => ("/v1/locations/aleppo", ""),
        "/v1/locations/{id}/events" => ("/v1/locations/aleppo/events", ""),
        "/v1/actors/{id}" => ("/v1/actors/hts", ""),
        "/v1/audit/proof/inclusion" => (template, "?seq=1"),
        "/v1/audit/proof/consistency" => (template, "?first=1"),
        other => (other, ""),
    }
}

async fn raw_status(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> RawAnswer {
    let body = json!({"type": "report", "location": "aleppo", "occurred_at": "2024-12-01T00:00:00Z",
                      "source": source(), "data": {"summary": "encoded"}})
    .to_string();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    raw(&app.address, req)
        .await
        .unwrap_or_else(|| panic!("{method} {path}: no answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_paths_are_authorised_on_the_route_they_reach() {
    let tmp = Arc::new(tempfile::tempdir().unwrap());
    let who = [
        ("rita", "reader"),
        ("paul", "reporter"),
        ("prom", "metrics"),
        ("ada", "admin"),
    ];
    let (file, tokens) = tokens_in(tmp.path(), &who);
    let app = spawn_with(tmp, |s| {
        s.tokens = Some(file);
        s.demo = true;
        s.rate_per_second = 0;
    })
    .await;
    let everyone: Vec<(&str, Option<&str>)> = std::iter::once(("nobody", None))
        .chain(who.iter().map(|(p, _)| (*p, Some(tokens[*p].as_str()))))
        .collect();
    let mut checked = 0;
    for (method, template) in sitrep::api::ROUTES {
        let (path, query) = sample_path(template);
        for (name, token) in &everyone {
            // A feed that is let in never ends: only its refusals are read.
            if *template == "/v1/events/stream" && !matches!(*name, "nobody" | "prom") {
                continue;
            }
            let plain = raw_status(&app, method, &format!("{path}{query}"), *token).await.status;
            for spelling in spellings(path) {
                let target = format!("{spelling}{query}");
                let a = raw_status(&app, method, &target, *token).await;
                assert!(
                    a.status >= 200 && a.status < 500,
                    "{name}: {method} {target}: {}",
                    a.describe()
                );
                if (200..300).contains(&a.status) {
                    assert!(
                        (200..300).contains(&plain),
                        "{name}: {method} {target} answered {} where {path} answers {plain}: {}",
                        a.status,
                        a.describe()
                    );
                } else if method != &"HEAD" {
                    a.any_problem();
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 2000, "{checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_off_with_408_and_nothing_is_written() {
    let tmp = Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_with(tmp, |s| {
        s.demo = true;
        s.body_timeout = Duration::from_secs(1);
    })
    .await;
    let head =
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n";
    let answer = raw_exchange(&app.address, head.into(), vec![b' '; 100], Duration::from_millis(300))
        .await
        .expect("an answer to a slow body");
    answer.problem(408, "request_timeout");
    assert!(answer.closed, "the connection is closed: {}", answer.describe());
    assert_eq!(app.ok("/v1/audit/head").await["seq"], 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_body_slower_than_the_deadline_still_arrives() {
    use std::io::{Read, Write};
    let tmp = Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_with(tmp, |s| {
        s.demo = true;
        s.body_timeout = Duration::from_secs(1);
    })
    .await;
    // 160 KiB at about 80 KiB/s, five times the minimum pace: twice the deadline.
    let event = dev("report", "aleppo", "2024-12-01T00:00:00Z", json!({"summary": "steady"})).to_string();
    let mut body = event.into_bytes();
    body.resize(160 * 1024, b' ');
    let addr = app.address.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(RAW_WAIT)).unwrap();
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        for chunk in body.chunks(8 * 1024) {
            s.write_all(chunk).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(app.ok("/v1/audit/head").await["seq"], 33);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_uri_gets_414_problem_json() {
    let app = spawn_demo_app().await;
    for len in [9 * 1024, 63 * 1024, 70 * 1024, 100 * 1024, 200 * 1024] {
        let uri = format!("/v1/events?after=1&pad={}", "a".repeat(len));
        let a = raw(
            &app.address,
            format!("GET {uri} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await
        .unwrap_or_else(|| panic!("{len}: no answer"));
        a.problem(414, "uri_too_long");
    }
    // Below the limit the route answers as ever.
    let (status, body) = app
        .get_json(&format!("/v1/events?after=1&pad={}", "a".repeat(1000)))
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_parameter")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_parameter_names_the_parameter_once() {
    let app = spawn_demo_app().await;
    let cases: HashMap<&str, &str> = [
        ("/v1/events?limit=abc", "limit"),
        ("/v1/events?type=nope", "type"),
        ("/v1/locations?kind=nope", "kind"),
        ("/v1/events?location=A_B", "location"),
        ("/v1/locations?as_of=x", "as_of"),
        ("/v1/events?limit=0", "limit"),
        ("/v1/events?foo=1", "foo"),
        ("/v1/audit/proof/inclusion?seq=0", "seq"),
    ]
    .into_iter()
    .collect();
    for (path, name) in cases {
        let body = assert_problem(app.get(path).await, 400, "invalid_parameter").await;
        let detail = body["detail"].as_str().unwrap();
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert_eq!(body["errors"][0]["field"], name, "{path}: {body}");
        assert_eq!(detail.matches(&format!("'{name}'")).count(), 1, "{path}: {body}");
        assert!(!message.contains(&format!("'{name}'")), "{path}: {body}");
        for stutter in ["is not valid: must", "must be must"] {
            assert!(!detail.contains(stutter), "{path}: {body}");
        }
        assert_eq!(detail, format!("query parameter '{name}' {message}"), "{path}: {body}");
    }
    // Last-Event-ID is a header, and the problem says so.
    let res = app
        .client
        .get(app.url("/v1/events/stream"))
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    let body: Value = assert_problem(res, 400, "invalid_parameter").await;
    assert!(!body["detail"].as_str().unwrap().contains("query parameter"), "{body}");
}
