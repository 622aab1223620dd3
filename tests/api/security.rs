//! Tokens, roles, protected mode, rate limits, telemetry and graceful shutdown,
//! against the real binary.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::process::*;

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn status(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn roles_allow_and_refuse_as_the_contract_says() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tokens");
    let t = tokens_file(
        &file,
        &[
            ("rita", "reader"),
            ("paul", "reporter"),
            ("ada", "admin"),
            ("prom", "metrics"),
        ],
    );
    let (reader, reporter, admin, metrics) = (&t[0], &t[1], &t[2], &t[3]);
    let server = ServerProcess::start(
        &tmp.path().join("data"),
        &["--tokens", file.to_str().unwrap(), "--demo"],
    );
    let c = client();
    let get = |path: &str, token: Option<&String>| {
        let mut r = c.get(server.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    };
    // Open routes.
    assert_eq!(status(get("/healthz", None)).await, 200);
    assert_eq!(status(get("/readyz", None)).await, 200);
    // No token, a wrong token, a malformed header.
    let res = get("/v1/locations", None).send().await.unwrap();
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"sitrep\"");
    assert_problem(res, 401, "unauthorized").await;
    let res = get("/v1/locations", Some(&"st_wrong".to_owned())).send().await.unwrap();
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    assert_problem(res, 401, "unauthorized").await;
    let res = c
        .get(server.url("/v1/locations"))
        .header("authorization", format!("Basic {reader}"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    // Readers read; they may not append or scrape.
    assert_eq!(status(get("/v1/locations/aleppo", Some(reader))).await, 200);
    let post = |token: &String| {
        c.post(server.url("/v1/events")).bearer_auth(token).json(&dev(
            "report",
            "aleppo",
            "2024-12-01T00:00:00Z",
            json!({"summary": "from a reporter"}),
        ))
    };
    assert_problem(post(reader).send().await.unwrap(), 403, "forbidden").await;
    assert_problem(get("/metrics", Some(reader)).send().await.unwrap(), 403, "forbidden").await;
    // Reporters append, recorded under their principal.
    let res = post(reporter).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let receipt: serde_json::Value = res.json().await.unwrap();
    let stored: serde_json::Value = get(
        &format!("/v1/events/{}", receipt["id"].as_str().unwrap()),
        Some(reporter),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(stored["recorded_by"], "paul");
    assert_problem(get("/metrics", Some(reporter)).send().await.unwrap(), 403, "forbidden").await;
    // Admins do everything; the metrics role only scrapes.
    assert_eq!(status(post(admin)).await, 201);
    for token in [admin, metrics] {
        let res = get("/metrics", Some(token)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let text = res.text().await.unwrap();
        for m in [
            "sitrep_appended_events_total",
            "sitrep_append_seconds_bucket",
            "sitrep_flush_batch_events_bucket",
            "sitrep_projection_lag_events",
            "sitrep_log_events 34",
            "sitrep_log_bytes",
            "sitrep_sse_subscribers",
            "sitrep_http_responses_total{method=\"POST\",route=\"/v1/events\",status=\"201\"} 2",
            "sitrep_http_responses_total{method=\"POST\",route=\"/v1/events\",status=\"403\"} 1",
        ] {
            assert!(text.contains(m), "{m} missing from\n{text}");
        }
    }
    assert_problem(
        get("/v1/locations", Some(metrics)).send().await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    // The feed needs a reader too.
    assert_problem(
        get("/v1/events/stream", None).send().await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn without_tokens_only_loopback_and_an_empty_tokens_file_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let (code, _, err) = sitrep(&["serve", "--listen", listen, "--data-dir", d.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("without tokens"), "{err}");
    }
    let empty = tmp.path().join("empty");
    std::fs::write(&empty, "# nobody yet\n").unwrap();
    let (code, _, err) = sitrep(&[
        "serve",
        "--tokens",
        empty.to_str().unwrap(),
        "--data-dir",
        d.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no tokens"), "{err}");
    assert!(!d.join("db").exists(), "nothing was created before refusing");
    // Open on loopback, everything is allowed and recorded as anonymous.
    let app = spawn_app().await;
    seed_basics(&app).await;
    assert_eq!(
        app.ok("/v1/events?limit=1").await["events"][0]["recorded_by"],
        "anonymous"
    );
}

#[tokio::test]
async fn sighup_reloads_tokens_without_dropping_connections_and_a_bad_file_keeps_the_old() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tokens");
    let first = tokens_file(&file, &[("rita", "reader")]);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--tokens", file.to_str().unwrap()]);
    let c = client();
    assert_eq!(
        status(c.get(server.url("/v1/actors")).bearer_auth(&first[0])).await,
        200
    );
    let second = tokens_file(&file, &[("bob", "reader")]);
    assert_eq!(
        status(c.get(server.url("/v1/actors")).bearer_auth(&second[0])).await,
        401
    );
    server.signal("-HUP");
    let mut ok = false;
    for _ in 0..100 {
        if status(c.get(server.url("/v1/actors")).bearer_auth(&second[0])).await == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the new token works after SIGHUP: {}", server.log());
    assert_eq!(
        status(c.get(server.url("/v1/actors")).bearer_auth(&first[0])).await,
        401,
        "rita's token was removed"
    );
    // A broken file is refused and the tokens in force stay.
    std::fs::write(&file, "bob reader not-a-hash\n").unwrap();
    server.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status(c.get(server.url("/v1/actors")).bearer_auth(&second[0])).await,
        200
    );
    assert!(server.log().contains("not reloaded"), "{}", server.log());
}

#[tokio::test]
async fn a_principal_over_its_rate_gets_429_with_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tokens");
    let t = tokens_file(&file, &[("rita", "reader"), ("bob", "reader")]);
    let server = ServerProcess::start(
        &tmp.path().join("data"),
        &["--tokens", file.to_str().unwrap(), "--rate-limit", "3"],
    );
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(status(c.get(server.url("/v1/actors")).bearer_auth(&t[0])).await);
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    let res = c.get(server.url("/v1/actors")).bearer_auth(&t[0]).send().await.unwrap();
    assert!(res.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_problem(res, 429, "rate_limited").await;
    // Another principal has its own budget.
    assert_eq!(status(c.get(server.url("/v1/actors")).bearer_auth(&t[1])).await, 200);
}

#[tokio::test]
async fn no_token_or_body_ever_reaches_the_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tokens");
    let t = tokens_file(&file, &[("paul", "reporter")]);
    let server = ServerProcess::start(
        &tmp.path().join("data"),
        &["--tokens", file.to_str().unwrap(), "--demo"],
    );
    let c = client();
    let secret_summary = "body-marker-7f3a9c";
    let e = dev(
        "report",
        "aleppo",
        "2024-12-01T00:00:00Z",
        json!({"summary": secret_summary}),
    );
    assert_eq!(
        status(c.post(server.url("/v1/events")).bearer_auth(&t[0]).json(&e)).await,
        201
    );
    assert_eq!(
        status(c.get(server.url("/v1/actors")).bearer_auth("st_attacker-guess-123")).await,
        401
    );
    let bad = dev(
        "report",
        "nowhere",
        "2024-12-01T00:00:00Z",
        json!({"summary": secret_summary}),
    );
    assert_eq!(
        status(c.post(server.url("/v1/events")).bearer_auth(&t[0]).json(&bad)).await,
        422
    );
    server.signal("-TERM");
    let mut server = server;
    assert_eq!(server.wait(Duration::from_secs(30)), Some(0));
    let log = server.log();
    assert!(log.contains("serving"), "{log}");
    for secret in [t[0].as_str(), "st_attacker-guess-123", secret_summary] {
        assert!(!log.contains(secret), "{secret} leaked into the log:\n{log}");
    }
}

#[tokio::test]
async fn sigterm_under_load_loses_nothing_acknowledged_and_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = ServerProcess::start(&data, &[]);
    let c = client();
    let setup = json!([actor("saa"), location("aleppo", None)]);
    assert_eq!(status(c.post(server.url("/v1/events")).json(&setup)).await, 201);
    let mut writers = Vec::new();
    for w in 0..8 {
        let c = c.clone();
        let url = server.url("/v1/events");
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..10_000 {
                let id = uuid::Uuid::new_v4();
                let mut e = dev(
                    "report",
                    "aleppo",
                    "2024-12-01T00:00:00Z",
                    json!({"summary": format!("{w}/{i}")}),
                );
                e["id"] = json!(id);
                match c.post(&url).json(&e).send().await {
                    Ok(res) if res.status().as_u16() == 201 => {
                        let r: serde_json::Value = res.json().await.unwrap();
                        acked.push((id, r["seq"].as_u64().unwrap()));
                    }
                    _ => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.signal("-TERM");
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert_eq!(
        tokio::task::spawn_blocking(move || server.wait(Duration::from_secs(40)))
            .await
            .unwrap(),
        Some(0)
    );
    assert!(acked.len() > 10, "load ran: {}", acked.len());
    let app = spawn_app_on(std::sync::Arc::new(tmp), false).await;
    for (id, seq) in &acked {
        let e = app.ok(&format!("/v1/events/{id}")).await;
        assert_eq!(e["seq"].as_u64(), Some(*seq));
    }
    assert_eq!(app.ok("/v1/audit/verify").await["ok"], true);
    app.stop().await;
}

#[tokio::test]
async fn a_config_file_sets_defaults_and_healthcheck_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tokens");
    let t = tokens_file(&file, &[("rita", "reader")]);
    let config = tmp.path().join("sitrep.toml");
    std::fs::write(
        &config,
        format!("tokens = {:?}\nrate_limit = 2\ndemo = true\n", file.to_str().unwrap()),
    )
    .unwrap();
    let server = ServerProcess::start(&tmp.path().join("data"), &["--config", config.to_str().unwrap()]);
    let c = client();
    // tokens and demo came from the file.
    assert_eq!(status(c.get(server.url("/v1/locations/aleppo"))).await, 401);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(status(c.get(server.url("/v1/locations/aleppo")).bearer_auth(&t[0])).await);
    }
    assert_eq!(&statuses[..2], &[200, 200], "{statuses:?}");
    assert!(statuses.contains(&429), "rate_limit = 2 from the file: {statuses:?}");
    let (code, _, _) = sitrep(&["healthcheck", "--url", &server.url("/healthz")]);
    assert_eq!(code, Some(0));
    drop(server);
    let (code, _, _) = sitrep(&["healthcheck", "--url", "http://127.0.0.1:9/healthz"]);
    assert_eq!(code, Some(1));
    // An unknown key in the file is refused.
    std::fs::write(&config, "colour = \"red\"\n").unwrap();
    let (code, _, err) = sitrep(&["--config", config.to_str().unwrap(), "verify"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown option 'colour'"), "{err}");
}

/// Read a live feed until it ends (true) or `limit` passes (false).
async fn ends_within(res: &mut reqwest::Response, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, res.chunk()).await {
            Err(_) => return false,
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None) | Err(_)) => return true,
        }
    }
}

#[tokio::test]
async fn a_token_removed_by_sighup_loses_its_live_feeds_and_kept_ones_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tokens");
    let t = tokens_file(&file, &[("alice", "reader"), ("bob", "reader"), ("rex", "reporter")]);
    let (alice, bob, rex) = (&t[0], &t[1], &t[2]);
    let server = ServerProcess::start(
        &tmp.path().join("data"),
        &["--demo", "--tokens", file.to_str().unwrap(), "--max-subscribers", "8"],
    );
    let c = client();
    let feed = |token: &str| {
        c.get(server.url("/v1/events/stream?after=32"))
            .bearer_auth(token)
            .send()
    };
    let mut alices = vec![feed(alice).await.unwrap(), feed(alice).await.unwrap()];
    assert!(alices.iter().all(|r| r.status() == 200));
    // A principal holds at most a quarter of the slots; others still get theirs.
    assert_problem(feed(alice).await.unwrap(), 503, "unavailable").await;
    let mut bobs = feed(bob).await.unwrap();
    assert_eq!(bobs.status(), 200);

    let kept: String = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("alice "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&file, kept).unwrap();
    server.signal("-HUP");
    for res in &mut alices {
        assert!(
            ends_within(res, Duration::from_secs(20)).await,
            "alice's feed ends once her token is gone: {}",
            server.log()
        );
    }
    assert_eq!(
        status(c.get(server.url("/v1/events/stream")).bearer_auth(alice)).await,
        401
    );
    // Bob's feed is still open and live.
    let event = dev(
        "report",
        "aleppo",
        "2024-12-03T00:00:00Z",
        json!({"summary": "after the reload"}),
    );
    let res = c
        .post(server.url("/v1/events"))
        .bearer_auth(rex)
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let mut text = String::new();
    while !text.contains("id: 33") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), bobs.chunk())
            .await
            .expect("bob's feed delivers in time")
            .unwrap()
            .expect("bob's feed is open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}
