//! A log written before the model gained precision, estimates, names and shapes
//! (`tests/fixtures/old-log`, written by `make.sh` with the binary of that time)
//! opens, verifies and answers exactly as that binary answered.
//!
//! The fixture holds the sled directory as that server left it (with its
//! projection checkpoint, in the older checkpoint format), the export it gave,
//! and its answers to the queries in `queries.txt`. Answers are compared as
//! JSON values after taking out the members that came later, whose values on an
//! old log are checked to be their defaults (see `new_members_with_defaults`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::process::sitrep_output;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/old-log")
}

/// A temp dir holding a copy of the fixture's data dir as `data`: the fixture
/// itself is never opened, so it stays as the old binary wrote it.
fn old_log() -> Arc<tempfile::TempDir> {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture().join("data"), &tmp.path().join("data"));
    Arc::new(tmp)
}

fn queries() -> Vec<(String, String)> {
    std::fs::read_to_string(fixture().join("queries.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, path) = l.split_once(' ').unwrap();
            (name.to_owned(), path.to_owned())
        })
        .collect()
}

fn recorded(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture().join("answers").join(format!("{name}.json"))).unwrap()).unwrap()
}

/// The members a location or an actor answer gained after the old log was
/// written, with the value each must have on a log that never posted them.
/// `control.since_precision` is `"instant"` where `changed_by` is set (null
/// otherwise) and `control.settled` is then true (an instant's window is over
/// once it is counted); each casualty bound equals the summed best estimate, as
/// a report without bounds has low = high = its number (0 when absent).
fn new_members_with_defaults(item: &Value) -> Vec<(&'static str, Option<&'static str>, Value)> {
    if item.get("control").is_some() {
        let changed = !item["control"]["changed_by"].is_null();
        let killed = item["casualties"]["killed"].clone();
        let wounded = item["casualties"]["wounded"].clone();
        vec![
            (
                "control",
                Some("since_precision"),
                if changed { json!("instant") } else { Value::Null },
            ),
            (
                "control",
                Some("settled"),
                if changed { json!(true) } else { Value::Null },
            ),
            ("casualties", Some("killed_low"), killed.clone()),
            ("casualties", Some("killed_high"), killed),
            ("casualties", Some("wounded_low"), wounded.clone()),
            ("casualties", Some("wounded_high"), wounded),
            ("names", None, json!({})),
            ("aliases", None, json!([])),
            ("gazetteer", None, json!({})),
            ("geometry", None, Value::Null),
        ]
    } else if item.get("controls").is_some() {
        vec![("names", None, json!({})), ("gazetteer", None, json!({}))]
    } else {
        Vec::new()
    }
}

/// `answer` with the later members taken out of every location and actor in
/// it, after checking that each holds its default.
fn without_new_members(name: &str, mut answer: Value) -> Value {
    fn strip(name: &str, item: &mut Value) {
        for (member, inner, default) in new_members_with_defaults(item) {
            let (holder, key) = match inner {
                Some(k) => (&mut item[member], k),
                None => (&mut *item, member),
            };
            if let Some(obj) = holder.as_object_mut() {
                if let Some(found) = obj.remove(key) {
                    assert_eq!(found, default, "{name}: {member}.{key:?} on an old log");
                }
            }
        }
    }
    match &mut answer {
        Value::Object(o) if o.contains_key("locations") || o.contains_key("actors") => {
            for list in ["locations", "actors"] {
                if let Some(items) = o.get_mut(list).and_then(Value::as_array_mut) {
                    items.iter_mut().for_each(|i| strip(name, i));
                }
            }
        }
        item => strip(name, item),
    }
    answer
}

async fn answers_as_recorded(app: &TestApp) {
    for (name, path) in queries() {
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(without_new_members(&name, body), recorded(&name), "{path}");
    }
}

#[tokio::test]
async fn a_log_written_before_the_precise_model_opens_verifies_and_answers_as_before() {
    let tmp = old_log();
    let app = spawn_app_on(tmp, false).await;
    let head = recorded("head");
    assert_eq!(app.ok("/v1/audit/head").await, head);
    assert_eq!(app.ok("/v1/audit/verify").await["ok"], true);
    answers_as_recorded(&app).await;

    // Restarted on the checkpoint this server wrote on close: the same again.
    let tmp = app.stop().await;
    let app = spawn_app_on(tmp, false).await;
    answers_as_recorded(&app).await;
    let dir = app.data_dir().to_owned();
    let _kept = app.stop().await;

    let dir = dir.to_str().unwrap();
    let verify = sitrep_output(&["verify", "--data-dir", dir]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    assert_eq!(
        String::from_utf8_lossy(&verify.stdout).trim(),
        std::fs::read_to_string(fixture().join("verify.txt")).unwrap().trim()
    );
    let export = sitrep_output(&["export", "--data-dir", dir]);
    assert!(export.status.success());
    assert!(
        export.stdout == std::fs::read(fixture().join("log.ndjson")).unwrap(),
        "every stored event keeps its bytes"
    );
    let head_out = sitrep_output(&["audit", "head", "--data-dir", dir]);
    let printed = String::from_utf8_lossy(&head_out.stdout);
    assert!(
        printed.contains(head["root"].as_str().unwrap()),
        "same root offline: {printed}"
    );
}
