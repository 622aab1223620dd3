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
