//! JSON that every parser must read the same way: what the server accepts it
//! stores and answers exactly, and whatever it cannot keep exactly it refuses.

use serde_json::json;

use crate::helpers::*;

/// A `casualties_reported` on `aleppo`, with `data` as raw JSON text.
fn casualties(id: &str, data: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"casualties_reported","location":"aleppo","occurred_at":"2024-12-01T00:00:00Z","source":{{"name":"Reuters","kind":"news_agency"}},"data":{data}}}"#
    )
}

/// The log still checks, and every event still reads.
async fn log_is_whole(app: &TestApp) {
    assert_eq!(app.ok("/v1/audit/verify").await["ok"], true);
    let head = app.ok("/v1/audit/head").await["seq"].as_u64().unwrap();
    let events = app.ok("/v1/events?limit=1000").await["events"].clone();
    assert_eq!(events.as_array().unwrap().len() as u64, head);
}

#[tokio::test]
async fn integers_beyond_2_pow_53_are_refused_naming_the_member() {
    let app = spawn_demo_app().await;
    let id = "0193a2b4-5c6d-7e8f-9a0b-000000000001";
    let src = r#"{"name":"Reuters","kind":"news_agency","credibility":18446744073709551615}"#;
    for (body, field) in [
        (casualties(id, r#"{"killed":18446744073709551615}"#), "data.killed"),
        (casualties(id, r#"{"killed":9007199254740993}"#), "data.killed"),
        (casualties(id, r#"{"wounded":9007199254740992}"#), "data.wounded"),
        (
            casualties(id, r#"{"killed":1}"#).replace(r#""data""#, r#""expected_version":9007199254740992,"data""#),
            "expected_version",
        ),
        (
            casualties(id, r#"{"killed":1}"#).replace(r#"{"name":"Reuters","kind":"news_agency"}"#, src),
            "source.credibility",
        ),
    ] {
        let problem = assert_problem(app.post_text(&body).await, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    log_is_whole(&app).await;
}

#[tokio::test]
async fn the_largest_exact_integer_is_stored_served_and_retried_exactly() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let id = "0193a2b4-5c6d-7e8f-9a0b-000000000002";
    let body = casualties(id, r#"{"killed":9007199254740991,"wounded":0}"#);
    assert_eq!(app.post_text(&body).await.status().as_u16(), 201);
    let served = app.get(&format!("/v1/events/{id}")).await.text().await.unwrap();
    assert!(served.contains(r#""killed":9007199254740991"#), "{served}");
    assert_eq!(app.post_text(&body).await.status().as_u16(), 200, "a retry");
    let status = app.ok("/v1/locations/aleppo").await;
    assert_eq!(status["casualties"]["killed"], json!(9007199254740991u64), "{status}");
    log_is_whole(&app).await;
}

#[tokio::test]
async fn duplicate_members_are_refused_at_every_depth() {
    let app = spawn_demo_app().await;
    let one = casualties("0193a2b4-5c6d-7e8f-9a0b-000000000003", r#"{"killed":1}"#);
    for (body, member) in [
        (
            one.replacen(
                r#""type":"casualties_reported""#,
                r#""type":"report","type":"casualties_reported""#,
                1,
            ),
            "type",
        ),
        (
            one.replacen(r#""kind":"news_agency""#, r#""kind":"witness","kind":"news_agency""#, 1),
            "source.kind",
        ),
        (
            one.replacen(r#"{"killed":1}"#, r#"{"killed":1,"killed":2}"#, 1),
            "data.killed",
        ),
        (
            format!("[{one},{}]", one.replacen(r#""id":"#, r#""id":null,"id":"#, 1)),
            "[1].id",
        ),
        (
            r#"{"type":"actor_registered","actor":"x","data":{"name":"X","kind":"other","aliases":[{"a":1,"a":2}]}}"#
                .to_owned(),
            "data.aliases[0].a",
        ),
    ] {
        let problem = assert_problem(app.post_text(&body).await, 400, "malformed_json").await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("duplicate member '{member}'")),
            "{body}: {detail}"
        );
    }
    assert_eq!(app.ok("/v1/audit/head").await["seq"], 32, "nothing was written");
}

/// A `location_registered` with `lat` and `lon` as raw JSON text.
fn located(id: &str, lat: &str, lon: &str) -> String {
    format!(
        r#"{{"type":"location_registered","location":"{id}","data":{{"name":"X","kind":"town","lat":{lat},"lon":{lon}}}}}"#
    )
}

#[tokio::test]
async fn numbers_are_stored_exactly_as_posted_or_refused() {
    let app = spawn_app().await;
    // A number whose decimal value a double cannot hold is refused, naming it.
    for (lat, lon, field) in [
        ("1e-400", "0", "data.lat"),
        ("36.20210000000000000001", "37.1", "data.lat"),
        ("36.2", "-1e-330", "data.lon"),
    ] {
        let body = located("x", lat, lon);
        let problem = assert_problem(app.post_text(&body).await, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    // -0 is 0, and other spellings of one value are that value: every answer,
    // from the log or from the fold, says so.
    for (id, lat, lon, served) in [
        ("zero", "-0.0", "-0", r#""lat":0,"lon":0"#),
        ("spelt", "36.20", "3.71e1", r#""lat":36.2,"lon":37.1"#),
    ] {
        assert_eq!(app.post_text(&located(id, lat, lon)).await.status().as_u16(), 201);
        let events = app
            .get(&format!("/v1/locations/{id}/events"))
            .await
            .text()
            .await
            .unwrap();
        assert!(events.contains(served), "{events}");
        let location = app.get(&format!("/v1/locations/{id}")).await.text().await.unwrap();
        assert!(!location.contains("-0"), "{location}");
    }
    log_is_whole(&app).await;
}

#[tokio::test]
async fn text_of_only_invisible_characters_is_empty() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    for blank in [
        "\u{200b}",
        "\u{feff}",
        " \u{200c}\u{200d} ",
        "\u{2060}\t",
        "\u{180e}",
        "\u{00ad}\u{034f}",
        "\u{e0001}",
    ] {
        let (status, problem) = app
            .post_json(&dev(
                "report",
                "aleppo",
                "2024-12-01T00:00:00Z",
                json!({"summary": blank}),
            ))
            .await;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (422, Some("data.summary")),
            "{blank:?}: {problem}"
        );
        let mut named = actor("blank");
        named["data"]["name"] = json!(blank);
        let (status, problem) = app.post_json(&named).await;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (422, Some("data.name")),
            "{blank:?}: {problem}"
        );
    }
    // Visible text around them is kept as posted.
    let (status, _) = app
        .post_json(&dev(
            "report",
            "aleppo",
            "2024-12-01T00:00:00Z",
            json!({"summary": "\u{200b}a"}),
        ))
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn times_are_refused_rather_than_rounded_or_leapt() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let id = "0193a2b4-5c6d-7e8f-9a0b-000000000004";
    for t in [
        "2024-11-30T10:00:60Z",
        "2024-11-30T23:59:60+00:00",
        "2024-11-30T10:00:00.1234567891Z",
    ] {
        let mut e = dev("report", "aleppo", t, json!({"summary": "s"}));
        e["id"] = json!(id);
        let (status, problem) = app.post_json(&e).await;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (422, Some("occurred_at")),
            "{t}: {problem}"
        );
    }
    let mut e = dev(
        "report",
        "aleppo",
        "2024-11-30T10:00:00.123456789Z",
        json!({"summary": "s"}),
    );
    e["id"] = json!(id);
    assert_eq!(app.post_json(&e).await.0, 201, "nanoseconds are kept");
    assert_eq!(
        app.ok(&format!("/v1/events/{id}")).await["occurred_at"],
        "2024-11-30T10:00:00.123456789Z"
    );
}
