//! A restart on the same directory answers exactly as before.

use serde_json::{json, Value};

use crate::helpers::*;

/// Everything a client can read, for comparison.
pub async fn snapshot(app: &TestApp) -> Vec<Value> {
    let mut out = vec![
        app.ok("/v1/audit/head").await,
        app.ok("/v1/events?limit=1000").await,
        app.ok("/v1/locations").await,
        app.ok("/v1/actors").await,
        app.ok("/v1/locations?as_of=2024-11-29T12:00:00Z").await,
        app.ok("/v1/locations?at_seq=20").await,
        app.ok("/v1/actors?as_of=2024-11-29T12:00:00Z&at_seq=25").await,
        app.ok("/v1/locations/aleppo/events?order=occurred").await,
    ];
    let verify = app.ok("/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
    out.push(verify);
    out
}

#[tokio::test]
async fn a_restart_on_the_same_dir_gives_identical_answers() {
    let app = spawn_demo_app().await;
    let (_, r) = app
        .post_json(&dev(
            "event_retracted",
            "aleppo",
            "2024-12-01T00:00:00Z",
            json!({
            "event_id": app.ok("/v1/events?location=aleppo&type=forces_entered").await["events"][0]["id"],
            "reason": "witness account not confirmed"}),
        ))
        .await;
    assert!(r["seq"].is_u64(), "{r}");
    app.post_json(&dev(
        "forces_entered",
        "aleppo",
        "2024-11-28T00:00:00Z",
        json!({"actor": "hts"}),
    ))
    .await;
    let before = snapshot(&app).await;
    let tmp = app.stop().await;
    // Restarted without --demo, and again with it (a retry, writing nothing).
    for demo in [false, true] {
        let again = spawn_app_on(tmp.clone(), demo).await;
        assert_eq!(snapshot(&again).await, before);
        again.stop().await;
    }
}

#[tokio::test]
async fn an_acknowledged_retry_id_is_remembered_across_a_restart() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let mut e = dev("report", "aleppo", "2024-11-30T00:00:00Z", json!({"summary": "kept"}));
    e["id"] = json!("88888888-8888-4888-8888-888888888888");
    let (s, first) = app.post_json(&e).await;
    assert_eq!(s, 201);
    let tmp = app.stop().await;
    let app = spawn_app_on(tmp, false).await;
    let (s, again) = app.post_json(&e).await;
    assert_eq!(s, 200);
    assert_eq!(again, first);
    e["data"]["summary"] = json!("changed");
    assert_problem(app.post_events(&e).await, 409, "id_conflict").await;
    app.stop().await;
}

#[tokio::test]
async fn a_restart_uses_a_sound_checkpoint_and_ignores_a_damaged_or_stale_one() {
    let app = spawn_demo_app().await;
    let before = snapshot(&app).await;
    let tmp = app.stop().await;
    let cp = tmp.path().join("data").join("projection.checkpoint");
    assert!(cp.exists(), "a graceful stop writes a checkpoint");
    // Sound: same answers.
    let app = spawn_app_on(tmp.clone(), false).await;
    assert_eq!(snapshot(&app).await, before);
    // Stale: the checkpoint stays at 32 while the log moves on; the tail is replayed.
    let stale = std::fs::read(&cp).unwrap();
    app.post_json(&dev(
        "forces_entered",
        "aleppo-south",
        "2024-12-02T00:00:00Z",
        json!({"actor": "saa"}),
    ))
    .await;
    let moved = snapshot(&app).await;
    app.stop().await;
    std::fs::write(&cp, &stale).unwrap();
    let app = spawn_app_on(tmp.clone(), false).await;
    assert_eq!(snapshot(&app).await, moved);
    app.stop().await;
    // Damaged: ignored, the whole log is folded.
    let mut bytes = std::fs::read(&cp).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&cp, &bytes).unwrap();
    let app = spawn_app_on(tmp.clone(), false).await;
    assert_eq!(snapshot(&app).await, moved);
    app.stop().await;
    // A checkpoint that does not match the log (taken from another log) is ignored too.
    let other = spawn_app().await;
    seed_basics(&other).await;
    let other_tmp = other.stop().await;
    std::fs::copy(other_tmp.path().join("data").join("projection.checkpoint"), &cp).unwrap();
    let app = spawn_app_on(tmp, false).await;
    assert_eq!(snapshot(&app).await, moved);
    app.stop().await;
}
