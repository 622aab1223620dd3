//! The command line, run as a real process on a real data dir.

use serde_json::json;

use crate::helpers::*;
use crate::process::{rechained, sitrep_output as sitrep};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn export_then_import_restores_an_identical_log() {
    let app = spawn_demo_app().await;
    app.post_json(&dev(
        "forces_entered",
        "aleppo-south",
        "2024-12-01T00:00:00Z",
        json!({"actor": "hts"}),
    ))
    .await;
    let before = crate::restart::snapshot(&app).await;
    let api_events = app.ok("/v1/events?limit=1000").await["events"].clone();
    let dir = app.data_dir().to_owned();
    let tmp = app.stop().await;

    let export = sitrep(&["export", "--data-dir", dir.to_str().unwrap()]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    let lines: Vec<serde_json::Value> = text(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        serde_json::Value::Array(lines),
        api_events,
        "export holds the same objects as GET /v1/events"
    );
    let file = tmp.path().join("export.ndjson");
    std::fs::write(&file, &export.stdout).unwrap();

    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("data");
    let import = sitrep(&["import", "--data-dir", target.to_str().unwrap(), file.to_str().unwrap()]);
    assert!(import.status.success(), "{}", text(&import.stderr));
    // Importing again into the now non-empty store is refused.
    let again = sitrep(&["import", "--data-dir", target.to_str().unwrap(), file.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("not empty"), "{}", text(&again.stderr));

    let app = spawn_app_on(std::sync::Arc::new(restored), false).await;
    assert_eq!(crate::restart::snapshot(&app).await, before);
    app.stop().await;
}

#[tokio::test]
async fn import_refuses_a_log_whose_chain_does_not_check() {
    let app = spawn_demo_app().await;
    let dir = app.data_dir().to_owned();
    let tmp = app.stop().await;
    let export = sitrep(&["export", "--data-dir", dir.to_str().unwrap()]);
    let mut lines: Vec<String> = text(&export.stdout).lines().map(str::to_owned).collect();
    lines[9] = lines[9].replace("Aleppo", "Alepo");
    let file = tmp.path().join("forged.ndjson");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let target = tmp.path().join("restored");
    let import = sitrep(&["import", "--data-dir", target.to_str().unwrap(), file.to_str().unwrap()]);
    assert!(!import.status.success());
    assert!(text(&import.stderr).contains("seq 10"), "{}", text(&import.stderr));
    let verify = sitrep(&["verify", "--data-dir", target.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["checked"], 0, "nothing was imported: {report}");
}

#[tokio::test]
async fn verify_checks_a_data_dir_offline_and_against_a_saved_head() {
    let app = spawn_demo_app().await;
    let head = app.ok("/v1/audit/head").await;
    let saved = format!("{}:{}", head["seq"], head["root"].as_str().unwrap());
    app.post_json(&dev(
        "report",
        "aleppo",
        "2024-12-01T00:00:00Z",
        json!({"summary": "later"}),
    ))
    .await;
    let dir = app.data_dir().to_owned();
    let d = dir.to_str().unwrap().to_owned();
    let tmp = app.stop().await;

    let ok = sitrep(&["verify", "--data-dir", &d]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let ok = sitrep(&["verify", "--data-dir", &d, "--expect", &saved]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let wrong_root = format!("{}:{}", head["seq"], "ab".repeat(32));
    let bad = sitrep(&["verify", "--data-dir", &d, "--expect", &wrong_root]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("Merkle root"), "{}", text(&bad.stderr));
    let beyond = sitrep(&[
        "verify",
        "--data-dir",
        &d,
        "--expect",
        &format!("99:{}", "ab".repeat(32)),
    ]);
    assert_eq!(beyond.status.code(), Some(1));

    // An attacker with disk access rewrites seq 5 and re-chains everything after
    // it: the chain checks, but the saved tree head catches it.
    let export = sitrep(&["export", "--data-dir", &d]);
    let (events, ndjson) = rechained(&export.stdout, |events| events[4]["data"]["name"] = json!("Renamed"));
    let forged = tmp.path().join("rechained.ndjson");
    std::fs::write(&forged, ndjson).unwrap();
    let target = tmp.path().join("rechained");
    let t = target.to_str().unwrap();
    let import = sitrep(&["import", "--data-dir", t, forged.to_str().unwrap()]);
    assert!(import.status.success(), "{}", text(&import.stderr));
    assert!(
        sitrep(&["verify", "--data-dir", t]).status.success(),
        "a re-chained log passes the chain check"
    );
    let caught = sitrep(&["verify", "--data-dir", t, "--expect", &saved]);
    assert_eq!(caught.status.code(), Some(1), "{}", text(&caught.stderr));

    // A byte flipped inside the store is named by seq.
    use sitrep::store::Store;
    let store = sitrep::store::SledStore::open(&target).unwrap();
    let mut e7 = events[6].clone();
    e7["data"]["name"] = json!("Tampered");
    store.tamper_raw(7, e7.to_string().as_bytes()).unwrap();
    drop(store);
    let bad = sitrep(&["verify", "--data-dir", t]);
    assert_eq!(bad.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(report["first_bad_seq"], 7);
    assert!(text(&bad.stderr).contains("seq 7"));
}

#[tokio::test]
async fn the_demo_command_loads_the_scenario_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    let first = sitrep(&["demo", "--data-dir", d.to_str().unwrap()]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stderr).contains("loaded 32"));
    let second = sitrep(&["demo", "--data-dir", d.to_str().unwrap()]);
    assert!(second.status.success());
    assert!(text(&second.stderr).contains("already"));
}

#[tokio::test]
async fn import_refuses_a_line_with_a_duplicate_member() {
    let app = spawn_demo_app().await;
    let dir = app.data_dir().to_owned();
    let tmp = app.stop().await;
    let export = sitrep(&["export", "--data-dir", dir.to_str().unwrap()]);
    let mut lines: Vec<String> = text(&export.stdout).lines().map(str::to_owned).collect();
    // A reader that keeps the first of two members sees another name.
    lines[4] = lines[4].replacen(r#""data":{"#, r#""data":{"name":"Forged","#, 1);
    let file = tmp.path().join("duplicate.ndjson");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let target = tmp.path().join("restored");
    let import = sitrep(&["import", "--data-dir", target.to_str().unwrap(), file.to_str().unwrap()]);
    assert!(!import.status.success(), "imported a line two readers read differently");
    let stderr = text(&import.stderr);
    assert!(
        stderr.contains("line 5") && stderr.contains("duplicate member 'data.name'"),
        "{stderr}"
    );
}
