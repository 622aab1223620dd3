//! Every refusal: the right status and stable code, problem+json, and nothing written.

use serde_json::{json, Value};

use crate::helpers::*;

async fn head(app: &TestApp) -> Value {
    app.ok("/v1/audit/head").await
}

/// POST `body`, expect the problem, and check the log did not move.
async fn refused(app: &TestApp, body: &Value, status: u16, code: &str) -> Value {
    let before = head(app).await;
    let problem = assert_problem(app.post_events(body).await, status, code).await;
    assert_eq!(head(app).await, before, "a refused append wrote something");
    problem
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| a.iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    for raw in ["{", "", "nul", "{\"type\": }", "[1,]", "\u{feff}{}"] {
        let res = app
            .client
            .post(app.url("/v1/events"))
            .header("content-type", "application/json")
            .body(raw.to_owned())
            .send()
            .await
            .unwrap();
        assert_problem(res, 400, "malformed_json").await;
    }
    let res = app
        .client
        .post(app.url("/v1/events"))
        .header("content-type", "application/json")
        .body(vec![b'"', 0xff, 0xfe, b'"'])
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "malformed_json").await;
    assert_eq!(head(&app).await["seq"], 0);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = spawn_app().await;
    for ct in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let mut req = app.client.post(app.url("/v1/events")).body(actor("saa").to_string());
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        assert_problem(req.send().await.unwrap(), 415, "unsupported_media_type").await;
    }
    let ok = app
        .client
        .post(app.url("/v1/events"))
        .header("content-type", "application/json; charset=utf-8")
        .body(actor("saa").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 201);
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let big = dev(
        "report",
        "aleppo",
        "2024-11-30T00:00:00Z",
        json!({"summary": "x".repeat(1024 * 1024 + 1)}),
    );
    refused(&app, &big, 413, "payload_too_large").await;
}

#[tokio::test]
async fn shape_errors_are_422_validation_failed_naming_each_field() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"type": "forces_entered", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": source(), "data": {"actor": "hts"}, "colour": "red"}),
            "colour",
        ),
        (
            json!({"type": "forces_entered", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": source(), "data": {"actor": "hts", "extra": 1}}),
            "data",
        ),
        (
            json!({"type": "forces_entered", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": source(), "data": {}}),
            "data",
        ),
        (
            json!({"type": "forces_entered", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": source(), "data": {"actor": 5}}),
            "data.actor",
        ),
        (
            json!({"type": "forces_entered", "location": "aleppo", "occurred_at": "yesterday", "source": source(), "data": {"actor": "hts"}}),
            "occurred_at",
        ),
        (
            json!({"type": "forces_entered", "location": "aleppo", "source": source(), "data": {"actor": "hts"}}),
            "occurred_at",
        ),
        (
            json!({"type": "forces_entered", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "data": {"actor": "hts"}}),
            "source",
        ),
        (
            json!({"type": "forces_entered", "location": "Aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": source(), "data": {"actor": "hts"}}),
            "location",
        ),
        (
            json!({"type": "troops_teleported", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": source(), "data": {}}),
            "type",
        ),
        (
            json!({"type": "forces_entered", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": {"name": "x", "kind": "rumour"}, "data": {"actor": "hts"}}),
            "source.kind",
        ),
        (
            json!({"type": "forces_entered", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": {"name": "x", "kind": "witness", "credibility": 7}, "data": {"actor": "hts"}}),
            "source.credibility",
        ),
        (
            json!({"type": "forces_entered", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": source(), "data": {"actor": "hts"}, "id": "not-a-uuid"}),
            "id",
        ),
        (
            json!({"type": "forces_entered", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": source(), "data": {"actor": "hts"}, "expected_version": -1}),
            "expected_version",
        ),
        (
            json!({"type": "clashes_reported", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": source(), "data": {"actors": ["hts"]}}),
            "data.actors",
        ),
        (
            json!({"type": "clashes_reported", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": source(), "data": {"actors": ["hts", "hts"]}}),
            "data.actors[1]",
        ),
        (
            json!({"type": "attack_repelled", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": source(), "data": {"defender": "hts", "attacker": "hts"}}),
            "data.attacker",
        ),
        (
            json!({"type": "casualties_reported", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": source(), "data": {"killed": 2.5}}),
            "data.killed",
        ),
        (
            json!({"type": "report", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": source(), "data": {"summary": "  "}}),
            "data.summary",
        ),
        (
            json!({"type": "location_registered", "location": "x", "data": {"name": "X", "kind": "city", "lat": 91, "lon": 0}}),
            "data.lat",
        ),
        (
            json!({"type": "location_registered", "location": "x", "data": {"name": "X", "kind": "city", "lon": 10}}),
            "data.lat",
        ),
        (
            json!({"type": "location_registered", "location": "x", "data": {"name": "X", "kind": "city", "lat": 10, "lon": 181}}),
            "data.lon",
        ),
        (
            json!({"type": "location_registered", "location": "x", "data": {"name": "X", "kind": "capital"}}),
            "data.kind",
        ),
        (
            json!({"type": "location_registered", "location": "x", "data": {"name": "X", "kind": "city", "parent": "x"}}),
            "data.parent",
        ),
        (
            json!({"type": "location_registered", "actor": "x", "data": {"name": "X", "kind": "city"}}),
            "actor",
        ),
        (
            json!({"type": "actor_registered", "actor": "x", "data": {"name": "X", "kind": "militia"}}),
            "data.kind",
        ),
        (
            json!({"type": "event_retracted", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z", "source": source(), "data": {"event_id": "nope", "reason": "r"}}),
            "data.event_id",
        ),
        (json!("just a string"), ""),
        (json!([]), ""),
    ];
    for (body, field) in cases {
        let problem = refused(&app, &body, 422, "validation_failed").await;
        let fs = fields(&problem);
        assert!(
            fs.iter()
                .any(|f| f == field || (field == "data" && f.starts_with("data"))),
            "{body} -> {problem}, wanted field {field}"
        );
    }
}

#[tokio::test]
async fn a_batch_over_the_limit_is_refused() {
    let app = spawn_app().await;
    let batch: Vec<Value> = (0..1001).map(|i| actor(&format!("a{i}"))).collect();
    refused(&app, &json!(batch), 422, "validation_failed").await;
}

#[tokio::test]
async fn unknown_references_are_422_with_their_own_codes() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    refused(
        &app,
        &dev(
            "forces_entered",
            "idlib",
            "2024-11-29T00:00:00Z",
            json!({"actor": "hts"}),
        ),
        422,
        "unknown_location",
    )
    .await;
    refused(&app, &location("idlib-city", Some("idlib")), 422, "unknown_location").await;
    refused(
        &app,
        &dev(
            "forces_entered",
            "aleppo",
            "2024-11-29T00:00:00Z",
            json!({"actor": "isis"}),
        ),
        422,
        "unknown_actor",
    )
    .await;
    let mut claimed = dev("report", "aleppo", "2024-11-29T00:00:00Z", json!({"summary": "s"}));
    claimed["source"] = claim("isis");
    let p = refused(&app, &claimed, 422, "unknown_actor").await;
    assert_eq!(fields(&p), vec!["source.claimant"]);
    let mut member = actor("nusra");
    member["data"]["member_of"] = json!("alqaeda");
    refused(&app, &member, 422, "unknown_actor").await;
    let retraction = dev(
        "event_retracted",
        "aleppo",
        "2024-11-30T00:00:00Z",
        json!({"event_id": "66666666-6666-4666-8666-666666666666", "reason": "wrong"}),
    );
    refused(&app, &retraction, 422, "unknown_event").await;
}

#[tokio::test]
async fn registering_twice_is_409_already_registered() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    refused(&app, &location("aleppo", None), 409, "already_registered").await;
    refused(&app, &actor("hts"), 409, "already_registered").await;
}

#[tokio::test]
async fn retraction_rules_are_enforced() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let (_, r) = app
        .post_json(&dev(
            "forces_entered",
            "aleppo",
            "2024-11-29T00:00:00Z",
            json!({"actor": "hts"}),
        ))
        .await;
    let target = r["id"].clone();
    let retract = |loc: &str, id: &Value| {
        dev(
            "event_retracted",
            loc,
            "2024-11-30T00:00:00Z",
            json!({"event_id": id, "reason": "misreported"}),
        )
    };
    // Wrong location.
    let p = refused(&app, &retract("aleppo-north", &target), 422, "validation_failed").await;
    assert_eq!(fields(&p), vec!["location"]);
    // A registration cannot be retracted.
    let reg = app.ok("/v1/events?limit=1").await["events"][0]["id"].clone();
    refused(&app, &retract("aleppo", &reg), 422, "validation_failed").await;
    let (s, rr) = app.post_json(&retract("aleppo", &target)).await;
    assert_eq!(s, 201);
    refused(&app, &retract("aleppo", &target), 409, "already_retracted").await;
    // Nor can a retraction.
    refused(&app, &retract("aleppo", &rr["id"]), 422, "validation_failed").await;
}

#[tokio::test]
async fn bad_query_parameters_are_400_invalid_parameter() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    for path in [
        "/v1/events?limit=0",
        "/v1/events?limit=1001",
        "/v1/events?after=-1",
        "/v1/events?type=nonsense",
        "/v1/events?location=Not%20A%20Slug",
        "/v1/events?asof=2024-11-30",
        "/v1/locations?as_of=yesterday",
        "/v1/locations?at_seq=999",
        "/v1/locations?status=winning",
        "/v1/locations?kind=capital",
        "/v1/locations/aleppo?at_seq=abc",
        "/v1/locations/aleppo?at_seq=6",
        "/v1/locations/aleppo?as_of=2024-11-30&as_of=2024-11-29",
        "/v1/locations/aleppo/events?order=random",
        "/v1/actors?at_seq=99",
        "/v1/actors/hts?as_of=soon",
        "/v1/audit/head?x=1",
        "/healthz?verbose=1",
    ] {
        assert_problem(app.get(path).await, 400, "invalid_parameter").await;
    }
}

#[tokio::test]
async fn unknown_things_are_404_not_found() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    for path in [
        "/v1/locations/idlib",
        "/v1/locations/NOT_A_SLUG",
        "/v1/locations/idlib/events",
        "/v1/actors/isis",
        "/v1/events/77777777-7777-4777-8777-777777777777",
        "/v1/events/not-a-uuid",
        "/v1/nothing",
        "/index.html",
        "/v1/locations/aleppo?at_seq=2",
        "/v1/actors/hts?at_seq=1",
    ] {
        assert_problem(app.get(path).await, 404, "not_found").await;
    }
}

#[tokio::test]
async fn a_wrong_method_is_405_with_allow() {
    let app = spawn_app().await;
    let res = app.client.delete(app.url("/v1/events")).send().await.unwrap();
    let allow = res.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
    assert_problem(res, 405, "method_not_allowed").await;
    assert_eq!(allow.as_deref(), Some("POST, GET"));
    let res = app
        .client
        .post(app.url("/v1/locations"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn an_incoming_request_id_is_kept_and_one_is_made_otherwise() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc-123");
    let res = app.get("/healthz").await;
    assert!(!res.headers()["x-request-id"].is_empty());
}
