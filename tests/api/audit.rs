//! The audit endpoints, and tampering caught.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::*;

/// RFC 8785 written here independently for these events: members sorted (all
/// keys are ASCII, so byte order is UTF-16 order), no whitespace; numbers are
/// integers or short decimals, which serde_json prints as ES6 does.
fn canonical(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let members: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", serde_json::to_string(k).unwrap(), canonical(&m[k])))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        serde_json::Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

fn jcs_hash(event: &serde_json::Value) -> String {
    let mut e = event.clone();
    e.as_object_mut().unwrap().remove("hash");
    hex::encode(Sha256::digest(canonical(&e).as_bytes()))
}

#[tokio::test]
async fn the_chain_can_be_rechecked_from_the_api_alone() {
    let app = spawn_demo_app().await;
    let events = app.ok("/v1/events?limit=1000").await["events"]
        .as_array()
        .unwrap()
        .clone();
    let mut prev = "0".repeat(64);
    for e in &events {
        assert_eq!(e["prev_hash"], prev.as_str(), "{e}");
        assert_eq!(e["hash"], jcs_hash(e).as_str(), "{e}");
        prev = e["hash"].as_str().unwrap().to_owned();
    }
    let head = app.ok("/v1/audit/head").await;
    assert_eq!(head["seq"], 32);
    assert_eq!(head["hash"], prev.as_str());
    assert_eq!(head["root"].as_str().unwrap().len(), 64);
    let verify = app.ok("/v1/audit/verify").await;
    assert_eq!(verify, json!({"ok": true, "checked": 32, "head": head}));
}

#[tokio::test]
async fn an_empty_log_has_the_genesis_head() {
    let app = spawn_app().await;
    let head = app.ok("/v1/audit/head").await;
    assert_eq!(head["seq"], 0);
    assert_eq!(head["hash"], "0".repeat(64));
    assert_eq!(
        head["root"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(app.ok("/v1/audit/verify").await["ok"], true);
}

#[tokio::test]
async fn an_event_rewritten_on_disk_is_named_by_verify_and_reads_refuse_it() {
    let app = spawn_demo_app().await;
    let mut event: serde_json::Value = app.ok("/v1/events?after=20&limit=1").await["events"][0].clone();
    assert_eq!(event["seq"], 21);
    event["source"]["name"] = json!("Someone else");
    app.ledger.store().tamper_raw(21, event.to_string().as_bytes()).unwrap();
    let verify = app.ok("/v1/audit/verify").await;
    assert_eq!(verify["ok"], false);
    assert_eq!(verify["first_bad_seq"], 21);
    assert_eq!(verify["checked"], 20);
    assert!(verify["reason"].as_str().unwrap().contains("hash"), "{verify}");
    let id = event["id"].as_str().unwrap();
    assert_problem(app.get(&format!("/v1/events/{id}")).await, 503, "unavailable").await;

    // Re-hashing the forged event is not enough: the next event's link, covered
    // by its own hash, still names the original.
    event["hash"] = json!(jcs_hash(&event));
    app.ledger.store().tamper_raw(21, event.to_string().as_bytes()).unwrap();
    let verify = app.ok("/v1/audit/verify").await;
    assert_eq!(verify["ok"], false, "{verify}");
    assert_eq!(verify["first_bad_seq"], 22, "{verify}");
    assert_eq!(verify["checked"], 21, "{verify}");
    assert!(verify["reason"].as_str().unwrap().contains("prev_hash"), "{verify}");
}

#[tokio::test]
async fn a_fact_that_is_not_its_events_is_named_by_verify() {
    let app = spawn_demo_app().await;
    assert_eq!(app.ok("/v1/audit/verify").await["ok"], true);
    // The event at 21 stays intact; only the fact the projections fold from changes.
    let other = app.ledger.store().record(22).unwrap().unwrap().fact().to_vec();
    app.ledger.store().tamper_fact(21, &other).unwrap();
    let verify = app.ok("/v1/audit/verify").await;
    assert_eq!(verify["ok"], false, "{verify}");
    assert_eq!(verify["first_bad_seq"], 21, "{verify}");
    assert_eq!(verify["checked"], 20, "{verify}");
    assert!(verify["reason"].as_str().unwrap().contains("fact"), "{verify}");
    app.ledger.store().tamper_fact(21, b"not a fact").unwrap();
    let verify = app.ok("/v1/audit/verify").await;
    assert_eq!(verify["first_bad_seq"], 21, "{verify}");
    assert!(verify["reason"].as_str().unwrap().contains("fact"), "{verify}");
}

/// Events of the log the verify tests fold: enough that one verification
/// outlasts the requests these tests make while it runs.
const LARGE_LOG_EVENTS: usize = 60_000;

#[tokio::test]
async fn concurrent_verifies_run_one_verification_and_a_repeat_at_the_same_head_is_cached() {
    use crate::process::*;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    large_log(&data, LARGE_LOG_EVENTS).await;
    let server = ServerProcess::start(&data, &[]);
    let client = reqwest::Client::new();
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let req = client.get(server.url("/v1/audit/verify"));
            tokio::spawn(async move {
                let res = req.send().await.unwrap();
                assert_eq!(res.status().as_u16(), 200);
                res.json::<serde_json::Value>().await.unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for c in calls {
        answers.push(c.await.unwrap());
    }
    assert_eq!(answers[0]["ok"], true, "{}", answers[0]);
    assert_eq!(answers[0]["checked"], LARGE_LOG_EVENTS, "{}", answers[0]);
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "every caller gets the same answer"
    );
    assert_eq!(
        server.metric("sitrep_audit_verify_started_total").await,
        1.0,
        "16 concurrent calls verify the log once"
    );
    // The same head again: the kept answer, no new verification.
    assert_eq!(server.json("/v1/audit/verify").await, answers[0]);
    assert_eq!(server.metric("sitrep_audit_verify_started_total").await, 1.0);
    // A new head is verified again.
    let (_, receipt) = server
        .post_json(
            &client,
            &dev(
                "report",
                "aleppo",
                "2024-12-02T00:00:00Z",
                json!({"summary": "one more"}),
            ),
        )
        .await;
    let again = server.json("/v1/audit/verify").await;
    assert_eq!(again["checked"], receipt["seq"], "{again}");
    assert_eq!(server.metric("sitrep_audit_verify_started_total").await, 2.0);
}

#[tokio::test]
async fn a_verify_its_caller_abandons_stops() {
    use crate::process::*;
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    large_log(&data, LARGE_LOG_EVENTS).await;
    let server = ServerProcess::start(&data, &[]);
    let limit = std::time::Duration::from_secs(30);
    let started = "sitrep_audit_verify_started_total";
    let cancelled = "sitrep_audit_verify_cancelled_total";
    let addr = server.address.trim_start_matches("http://").to_owned();
    let mut caller = std::net::TcpStream::connect(&addr).unwrap();
    caller
        .write_all(format!("GET /v1/audit/verify HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    assert_eq!(server.metric_until(started, limit, |v| v >= 1.0).await, 1.0);
    drop(caller);
    assert_eq!(
        server.metric_until(cancelled, limit, |v| v >= 1.0).await,
        1.0,
        "the verification nobody waits for stops: {}",
        server.log()
    );
    // Nothing was kept from it: the next caller gets a whole verification.
    let report = server.json("/v1/audit/verify").await;
    assert_eq!(report["checked"], LARGE_LOG_EVENTS, "{report}");
    assert_eq!(server.metric(started).await, 2.0);
    assert_eq!(server.metric(cancelled).await, 1.0);
}
