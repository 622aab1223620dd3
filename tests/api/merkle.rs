//! The proof endpoints checked by an independent RFC 9162 implementation
//! written here from the RFC's definitions (section 2.1), not from the project.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::*;

fn sha(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

/// MTH(D[n]) of RFC 9162 2.1.1.
fn mth(d: &[Vec<u8>]) -> Vec<u8> {
    match d.len() {
        0 => sha(&[]),
        1 => sha(&[&[0], &d[0]]),
        n => {
            let k = largest_power_below(n);
            sha(&[&[1], &mth(&d[..k]), &mth(&d[k..])])
        }
    }
}

fn largest_power_below(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// PATH(m, D[n]) of RFC 9162 2.1.3.1.
fn path(m: usize, d: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let n = d.len();
    if n == 1 {
        return vec![];
    }
    let k = largest_power_below(n);
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

/// SUBPROOF(m, D[n], b) of RFC 9162 2.1.4.1.
fn subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Vec<u8>> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = largest_power_below(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

fn hexes(v: &Value) -> Vec<Vec<u8>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| hex::decode(h.as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn every_proof_equals_the_rfc_definition() {
    let app = spawn_demo_app().await;
    for i in 0..5 {
        app.post_json(&dev(
            "report",
            "aleppo",
            "2024-12-01T00:00:00Z",
            json!({"summary": format!("r{i}")}),
        ))
        .await;
    }
    let events = app.ok("/v1/events?limit=1000").await["events"]
        .as_array()
        .unwrap()
        .clone();
    let leaves: Vec<Vec<u8>> = events
        .iter()
        .map(|e| hex::decode(e["hash"].as_str().unwrap()).unwrap())
        .collect();
    let n = leaves.len();
    assert_eq!(n, 37);
    let head = app.ok("/v1/audit/head").await;
    assert_eq!(hex::decode(head["root"].as_str().unwrap()).unwrap(), mth(&leaves));
    for size in [1, 2, 3, 7, 8, 9, 16, 31, 32, 33, 37] {
        for seq in 1..=size {
            let p = app
                .ok(&format!("/v1/audit/proof/inclusion?seq={seq}&tree_size={size}"))
                .await;
            assert_eq!(p["leaf_index"], seq - 1);
            assert_eq!(p["tree_size"], size);
            assert_eq!(
                hexes(&p["audit_path"]),
                path(seq - 1, &leaves[..size]),
                "inclusion {seq} in {size}"
            );
            assert_eq!(hex::decode(p["root"].as_str().unwrap()).unwrap(), mth(&leaves[..size]));
        }
    }
    for second in [1, 2, 5, 8, 13, 32, 37] {
        for first in 1..=second {
            let p = app
                .ok(&format!("/v1/audit/proof/consistency?first={first}&second={second}"))
                .await;
            assert_eq!(
                hexes(&p["proof"]),
                subproof(first, &leaves[..second], true),
                "{first} -> {second}"
            );
            assert_eq!(
                hex::decode(p["first_root"].as_str().unwrap()).unwrap(),
                mth(&leaves[..first])
            );
            assert_eq!(
                hex::decode(p["second_root"].as_str().unwrap()).unwrap(),
                mth(&leaves[..second])
            );
        }
    }
    // The defaults: tree_size and second are the head.
    let p = app.ok("/v1/audit/proof/inclusion?seq=3").await;
    assert_eq!(p["tree_size"], 37);
    let p = app.ok("/v1/audit/proof/consistency?first=3").await;
    assert_eq!(p["second"], 37);
}

#[tokio::test]
async fn proofs_survive_a_restart_without_rehashing_and_sizes_are_checked() {
    let app = spawn_demo_app().await;
    let before = app.ok("/v1/audit/proof/consistency?first=7&second=32").await;
    let tmp = app.stop().await;
    let app = spawn_app_on(tmp, false).await;
    assert_eq!(app.ok("/v1/audit/proof/consistency?first=7&second=32").await, before);
    for bad in [
        "/v1/audit/proof/inclusion?seq=0&tree_size=5",
        "/v1/audit/proof/inclusion?seq=6&tree_size=5",
        "/v1/audit/proof/inclusion?seq=1&tree_size=33",
        "/v1/audit/proof/inclusion?seq=1&tree_size=0",
        "/v1/audit/proof/inclusion",
        "/v1/audit/proof/consistency?first=0&second=5",
        "/v1/audit/proof/consistency?first=6&second=5",
        "/v1/audit/proof/consistency?first=1&second=33",
        "/v1/audit/proof/consistency?second=3",
    ] {
        assert_problem(app.get(bad).await, 400, "invalid_parameter").await;
    }
    app.stop().await;
}
