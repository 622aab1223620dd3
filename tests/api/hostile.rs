//! Hostile input over real HTTP: thousands of mutated, truncated, deeply
//! nested, oversized, wrong-typed and wrongly encoded bodies, headers and query
//! strings. Every one gets an answer, none a 5xx, the server stays up, and the
//! log grows by exactly the events the server acknowledged.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::helpers::*;

const CASES: usize = 3000;
/// Hostile requests over raw sockets.
const RAW_CASES: usize = 800;

fn seeds() -> Vec<Value> {
    let mut v: Vec<Value> = serde_json::from_str(sitrep::demo::ALEPPO).unwrap();
    for e in v.iter_mut() {
        e.as_object_mut().unwrap().remove("id");
    }
    v.push(json!([
        dev("report", "aleppo", "2024-12-01T00:00:00Z", json!({"summary": "s"})),
        actor("x-y")
    ]));
    // Numbers and free text that the scenario lacks.
    v.push(dev(
        "casualties_reported",
        "aleppo",
        "2024-12-01T00:00:00Z",
        json!({"killed": 3, "wounded": 5}),
    ));
    v.push(location("hostile-town", None));
    v
}

fn junk(rng: &mut StdRng) -> Value {
    match rng.random_range(0..14) {
        9 => json!([u64::MAX, 9_007_199_254_740_993u64, 9_007_199_254_740_991u64][rng.random_range(0..3)]),
        10 => json!(["\u{200b}", "\u{feff}", " \u{2060}\u{200d} ", "\u{e0001}"][rng.random_range(0..4)]),
        11 => json!(["2024-11-30T10:00:60Z", "2024-11-30T10:00:00.1234567891Z"][rng.random_range(0..2)]),
        12 => json!(rng.random_range(0..10u64)),
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random::<i64>()),
        3 => json!(rng.random::<f64>() * 1e300),
        4 => json!("A".repeat(rng.random_range(0..70_000))),
        5 => json!([1, "two", null, {"three": []}]),
        6 => json!({"nested": {"deeper": {"actor": "hts"}}}),
        7 => json!("\u{0}\u{1f}\u{202e}\u{fffd}"),
        _ => json!(-0.0),
    }
}

/// One hostile body: (content-type, bytes).
fn body(rng: &mut StdRng, seeds: &[Value]) -> (String, Vec<u8>) {
    // A quarter of the bodies start from the one seed with numbers in its data.
    let mut v = if rng.random_range(0..4) == 0 {
        seeds[seeds.len() - 2].clone()
    } else {
        seeds[rng.random_range(0..seeds.len())].clone()
    };
    let json_ct = "application/json".to_owned();
    match rng.random_range(0..14) {
        // Replace or add a member with junk.
        0..=2 => {
            let keys = [
                "type",
                "location",
                "actor",
                "occurred_at",
                "source",
                "data",
                "id",
                "expected_version",
                "extra",
            ];
            let k = keys[rng.random_range(0..keys.len())];
            if let Some(m) = v.as_object_mut() {
                m.insert(k.into(), junk(rng));
            }
            (json_ct, v.to_string().into_bytes())
        }
        // A data member with junk.
        3 => {
            if let Some(d) = v.get_mut("data").and_then(Value::as_object_mut) {
                let k = [
                    "actor", "actors", "name", "kind", "lat", "killed", "summary", "event_id", "parent",
                ][rng.random_range(0..9)];
                d.insert(k.into(), junk(rng));
            }
            (json_ct, v.to_string().into_bytes())
        }
        // Truncated.
        4 => {
            let s = v.to_string().into_bytes();
            let cut = rng.random_range(0..s.len());
            (json_ct, s[..cut].to_vec())
        }
        // Bytes flipped, possibly into invalid UTF-8.
        5 => {
            let mut s = v.to_string().into_bytes();
            for _ in 0..rng.random_range(1..5) {
                let i = rng.random_range(0..s.len());
                s[i] = rng.random();
            }
            (json_ct, s)
        }
        // Deeply nested.
        6 => {
            let depth = rng.random_range(100..20_000);
            let mut s = "[".repeat(depth);
            s.push_str(&"]".repeat(depth));
            (json_ct, s.into_bytes())
        }
        7 => {
            let depth = rng.random_range(100..5_000);
            let mut s = String::new();
            for _ in 0..depth {
                s.push_str("{\"data\":");
            }
            s.push('1');
            s.push_str(&"}".repeat(depth));
            (json_ct, s.into_bytes())
        }
        // Oversized.
        8 => (json_ct, format!("[{}]", "1,".repeat(600_000) + "1").into_bytes()),
        // Wrong content types and encodings.
        9 => {
            let ct = [
                "text/plain",
                "application/xml",
                "application/json-patch+json",
                "multipart/form-data",
                "",
                "application/json; charset=utf-16",
            ][rng.random_range(0..6)];
            (ct.to_owned(), v.to_string().into_bytes())
        }
        10 => {
            let utf16: Vec<u8> = v.to_string().encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
            (json_ct, utf16)
        }
        // A member given twice (readers differ on which counts), at any depth.
        11 => {
            let text = v.to_string();
            let opens: Vec<usize> = text.match_indices('{').map(|(i, _)| i).collect();
            if opens.is_empty() {
                return (json_ct, text.into_bytes());
            }
            let at = opens[rng.random_range(0..opens.len())] + 1;
            let member = [
                "\"type\":\"report\",",
                "\"data\":{},",
                "\"name\":\"x\",",
                "\"killed\":1,",
                "\"id\":null,",
            ][rng.random_range(0..5)];
            (json_ct, format!("{}{member}{}", &text[..at], &text[at..]).into_bytes())
        }
        // Numbers spelt so a double cannot hold them, or that other readers read differently.
        12 => {
            let spelling = [
                "1e-400",
                "-0.0",
                "1e400",
                "18446744073709551615",
                "18446744073709551616",
                "36.20210000000000000001",
                "9007199254740993",
                "9007199254740992",
                "5.0",
                "-0",
            ][rng.random_range(0..10)];
            let text = v.to_string();
            let digits: Vec<usize> = text
                .match_indices(|c: char| c.is_ascii_digit())
                .map(|(i, _)| i)
                .collect();
            let text = match text.find("\"killed\":").filter(|_| rng.random()) {
                Some(i) => {
                    let start = i + "\"killed\":".len();
                    let end = start + text[start..].find([',', '}']).unwrap_or(0);
                    format!("{}{spelling}{}", &text[..start], &text[end..])
                }
                None if !digits.is_empty() => {
                    let i = digits[rng.random_range(0..digits.len())];
                    format!("{}{spelling}{}", &text[..i], &text[i + 1..])
                }
                None => text,
            };
            (json_ct, text.into_bytes())
        }
        // Wrong top-level types.
        _ => (
            json_ct,
            [&b"\"event\""[..], b"42", b"null", b"true", b"[[]]", b"[{}]", b"{}"][rng.random_range(0..7)].to_vec(),
        ),
    }
}

/// Count events a 2xx answer acknowledged as created.
fn created(status: u16, body: &Value) -> u64 {
    match (status, body) {
        (201, Value::Array(a)) => a.len() as u64,
        (201, _) => 1,
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_hostile_requests_get_answers_no_5xx_and_no_stray_writes() {
    let app = spawn_demo_app().await;
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(0x5174_7265);
    let mut acknowledged = 0u64;
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..CASES {
        let res = if i % 10 == 9 {
            // Hostile query strings and paths.
            let paths = [
                "/v1/events?after=%FF%FE",
                "/v1/events?limit=99999999999999999999999",
                "/v1/locations?as_of=2024-13-45T99:99:99Z",
                "/v1/locations/%00",
                "/v1/locations/aleppo?at_seq=-0",
                "/v1/events/%E2%80%AE",
                "/v1/actors?as_of=%20",
                "/v1/audit/proof/inclusion?seq=18446744073709551615",
                "/v1/audit/proof/consistency?first=1&second=18446744073709551615",
                "/v1/locations?kind=city&kind=town",
                "/v1/events?type=report&type=",
            ];
            app.client
                .get(app.url(paths[rng.random_range(0..paths.len())]))
                .send()
                .await
        } else {
            let (ct, bytes) = body(&mut rng, &seeds);
            let mut req = app.client.post(app.url("/v1/events")).body(bytes);
            if !ct.is_empty() {
                req = req.header("content-type", ct);
            }
            if rng.random_range(0..20) == 0 {
                req = req.header(
                    "x-request-id",
                    "\u{7f}bad id".repeat(rng.random_range(1..50)).replace('\u{7f}', ""),
                );
            }
            req.send().await
        };
        let res = res.unwrap_or_else(|e| panic!("case {i}: the connection dropped: {e}"));
        let status = res.status().as_u16();
        *statuses.entry(status).or_insert(0u32) += 1;
        assert!(status < 500, "case {i}: {status}");
        let body: Value = res.json().await.unwrap_or(Value::Null);
        acknowledged += created(status, &body);
    }
    eprintln!("hostile requests by status: {statuses:?}");
    let head = app.ok("/v1/audit/head").await;
    assert_eq!(
        head["seq"].as_u64().unwrap(),
        32 + acknowledged,
        "only acknowledged events were written"
    );
    assert_eq!(app.ok("/v1/audit/verify").await["ok"], true);
    assert_eq!(app.ok("/healthz").await["status"], "ok");

    // Whatever was accepted, the log still exports and imports (its backup works).
    let dir = app.data_dir().to_owned();
    let tmp = app.stop().await;
    let export = crate::process::sitrep_output(&["export", "--data-dir", dir.to_str().unwrap()]);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let file = tmp.path().join("export.ndjson");
    std::fs::write(&file, &export.stdout).unwrap();
    let target = tmp.path().join("restored");
    let import =
        crate::process::sitrep_output(&["import", "--data-dir", target.to_str().unwrap(), file.to_str().unwrap()]);
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
}

/// Raw sockets: lying Content-Length, garbage request lines, huge and many headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_is_answered_or_closed_without_harm() {
    let app = spawn_demo_app().await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let raw: Vec<Vec<u8>> = vec![
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":".to_vec(),
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -5\r\n\r\n{}".to_vec(),
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n".to_vec(),
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET /v1/locations HTTP/9.9\r\n\r\n".to_vec(),
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(200_000)).into_bytes(),
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n", (0..200).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()).into_bytes(),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bin: \xff\xfe\r\n\r\n".to_vec(),
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n".to_vec(),
    ];
    for (i, bytes) in raw.into_iter().enumerate() {
        let addr = addr.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
            let _ = s.write_all(&bytes);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
        .await
        .unwrap();
        if let Some(code) = answer.strip_prefix("HTTP/1.1 ").and_then(|r| r.get(..3)) {
            assert!(!code.starts_with('5'), "raw case {i}: {answer}");
        }
    }
    assert_eq!(app.ok("/v1/audit/head").await["seq"], 32);
    assert_eq!(app.ok("/healthz").await["status"], "ok");
}

/// The route templates, as concrete paths.
const SAMPLE_PATHS: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/events",
    "/v1/events/0193a0b6-0000-7000-8000-000000000000",
    "/v1/events/stream",
    "/v1/locations",
    "/v1/locations/aleppo",
    "/v1/locations/aleppo/events",
    "/v1/actors",
    "/v1/actors/hts",
    "/v1/audit/head",
    "/v1/audit/verify",
    "/v1/audit/proof/inclusion",
    "/v1/audit/proof/consistency",
    "/v1/audit/checkpoint",
];

/// Lengths around the limits of a request head: the 8 KiB URI, actix-http's
/// 64 KiB URI and 128 KiB head.
fn near_a_limit(rng: &mut StdRng) -> usize {
    let limit = [8 * 1024, 64 * 1024, 128 * 1024][rng.random_range(0..3)];
    (limit as i64 + rng.random_range(-64..64)) as usize
}

fn hostile_method(rng: &mut StdRng) -> Vec<u8> {
    const TOKEN: &[u8] = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    match rng.random_range(0..6) {
        0 | 1 => ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"][rng.random_range(0..8)].into(),
        2 => ["get", "Post", "GETT", "M-SEARCH", "PROPFIND", "BREW"][rng.random_range(0..6)].into(),
        3 => (0..rng.random_range(1..24))
            .map(|_| TOKEN[rng.random_range(0..TOKEN.len())])
            .collect(),
        4 => vec![b'Q'; rng.random_range(1_000..40_000)],
        _ => [&b"GE T"[..], b"G\x01T", b"", b"\xff\xfe", b"GET\t"][rng.random_range(0..5)].to_vec(),
    }
}

fn hostile_path(rng: &mut StdRng) -> Vec<u8> {
    let base = SAMPLE_PATHS[rng.random_range(0..SAMPLE_PATHS.len())];
    match rng.random_range(0..7) {
        // Random characters percent-encoded, in upper- or lowercase hex.
        0 | 1 => base
            .bytes()
            .map(|b| {
                if b != b'/' && rng.random_range(0..3) == 0 {
                    if rng.random() {
                        format!("%{b:02X}")
                    } else {
                        format!("%{b:02x}")
                    }
                } else {
                    (b as char).to_string()
                }
            })
            .collect::<String>()
            .into_bytes(),
        // Encoded junk bytes, slashes and NULs.
        2 => {
            let mut p = base.to_owned();
            for _ in 0..rng.random_range(1..6) {
                p.push_str(&format!("%{:02X}", rng.random::<u8>()));
            }
            p.into_bytes()
        }
        // A URI around a limit.
        3 => {
            let pad = near_a_limit(rng).saturating_sub(base.len() + 5);
            format!("{base}?pad={}", "a".repeat(pad)).into_bytes()
        }
        // Dot segments and doubled slashes.
        4 => [
            format!("/v1/..{base}"),
            format!("/{base}"),
            format!("{base}/"),
            format!("{base}/./"),
            base.replace('/', "//"),
            format!("/v1/%2e%2e{base}"),
        ][rng.random_range(0..6)]
        .clone()
        .into_bytes(),
        // Not an origin-form target at all.
        5 => [&b"*"[..], b"http://x/metrics", b"metrics", b"/\x7f", b"/a b", b"/%"][rng.random_range(0..6)].to_vec(),
        _ => base.as_bytes().to_vec(),
    }
}

/// One hostile request head (and short body) on the wire.
fn hostile_request(rng: &mut StdRng, tokens: &std::collections::HashMap<String, String>) -> Vec<u8> {
    let mut req = hostile_method(rng);
    req.push(b' ');
    req.extend(hostile_path(rng));
    req.extend_from_slice(if rng.random_range(0..30) == 0 {
        b" HTTP/9.9\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    req.extend_from_slice(b"Host: x\r\nConnection: close\r\n");
    match rng.random_range(0..5) {
        0 => {}
        1 => req.extend_from_slice(b"Authorization: Bearer st_guess\r\n"),
        2 => req.extend(format!("Authorization: Bearer {}\r\n", "t".repeat(near_a_limit(rng) / 2)).into_bytes()),
        _ => {
            let who = ["ada", "rita", "paul", "prom"][rng.random_range(0..4)];
            req.extend(format!("Authorization: Bearer {}\r\n", tokens[who]).into_bytes());
        }
    }
    match rng.random_range(0..8) {
        0 => req.extend(format!("X-Long: {}\r\n", "v".repeat(near_a_limit(rng))).into_bytes()),
        1 => {
            for i in 0..rng.random_range(80..110) {
                req.extend(format!("X-H{i}: v\r\n").into_bytes());
            }
        }
        2 => req.extend_from_slice(b"X-Bin: \xff\xfe\x00\r\n"),
        _ => {}
    }
    let body = dev("report", "aleppo", "2024-12-01T00:00:00Z", json!({"summary": "fuzz"})).to_string();
    req.extend(
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    );
    req
}

/// Every refusal is problem+json with a 4xx status, whatever the request
/// line, path encoding, header sizes or body pace; the metrics stay closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_hostile_requests_get_problem_json_and_no_5xx() {
    let tmp = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let who = [
        ("ada", "admin"),
        ("rita", "reader"),
        ("paul", "reporter"),
        ("prom", "metrics"),
    ];
    let (file, tokens) = tokens_in(tmp.path(), &who);
    let app = spawn_with(tmp, |s| {
        s.tokens = Some(file);
        s.demo = true;
        s.rate_per_second = 0;
        s.body_timeout = Duration::from_secs(1);
    })
    .await;
    let mut rng = StdRng::seed_from_u64(0x00e0_d9e5);
    let mut failures = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..RAW_CASES {
        let req = hostile_request(&mut rng, &tokens);
        let head_only = req.starts_with(b"HEAD ");
        let shown = String::from_utf8_lossy(&req[..req.len().min(160)]).into_owned();
        let Some(a) = raw(&app.address, req).await else {
            failures.push(format!("case {i}: no answer to {shown:?}"));
            continue;
        };
        *statuses.entry(a.status).or_insert(0u32) += 1;
        let ct = a.header("content-type").unwrap_or_default();
        let problem: Option<Value> = serde_json::from_slice(&a.body).ok();
        let bad = if !(200..500).contains(&a.status) {
            Some("not 2xx-4xx")
        } else if a.status >= 400 && !ct.starts_with("application/problem+json") {
            Some("a refusal that is not problem+json")
        } else if a.status >= 400
            && !head_only
            && problem.as_ref().map(|p| p["status"].clone()) != Some(json!(a.status))
        {
            Some("a problem whose status is not the answer's")
        } else {
            None
        };
        if let Some(why) = bad {
            failures.push(format!("case {i}: {why}: {shown:?}\n{}", a.describe()));
        }
    }
    // Slow bodies, and a head that never ends.
    let head = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n";
    for (i, (bytes, trickle)) in [
        (
            format!("{head}Authorization: Bearer {}\r\n\r\n{{", tokens["paul"]),
            vec![b' '; 200],
        ),
        (format!("{head}\r\n{{"), vec![b' '; 200]),
        ("GET /v1/locations HTTP/1.1\r\nHost: x\r\n".to_owned(), vec![b'X'; 200]),
    ]
    .into_iter()
    .enumerate()
    {
        match raw_exchange(&app.address, bytes.into_bytes(), trickle, Duration::from_millis(200)).await {
            Some(a)
                if (400..500).contains(&a.status)
                    && a.header("content-type")
                        .is_some_and(|c| c.starts_with("application/problem+json")) =>
            {
                *statuses.entry(a.status).or_insert(0u32) += 1;
            }
            other => failures.push(format!("slow case {i}: {other:?}")),
        }
    }
    eprintln!("raw hostile requests by status: {statuses:?}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    let metrics = app.text_with("/metrics", &tokens["ada"]).await;
    crate::hardening::assert_closed_labels(&metrics);
    assert_eq!(app.ok_with("/v1/audit/verify", &tokens["ada"]).await["ok"], true);
}
