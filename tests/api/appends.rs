//! Appending: receipts, idempotent retries, optimistic concurrency, atomic batches.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn an_append_answers_a_receipt_and_the_event_reads_back_as_stored() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let mut e = dev(
        "forces_entered",
        "aleppo",
        "2024-11-29T20:00:00+02:00",
        json!({"actor": "hts"}),
    );
    e["id"] = json!("0193A2B4-5C6D-7E8F-9A0B-1C2D3E4F5A6B");
    let (status, receipt) = app.post_json(&e).await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["id"], "0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b");
    assert_eq!(receipt["seq"], 6);
    assert_eq!(receipt["version"], 2);
    let stored = app.ok("/v1/events/0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b").await;
    assert_eq!(stored["occurred_at"], "2024-11-29T18:00:00Z", "normalised to UTC");
    assert_eq!(stored["recorded_by"], "anonymous");
    assert_eq!(stored["hash"], receipt["hash"]);
    assert_eq!(stored["recorded_at"], receipt["recorded_at"]);
    assert!(stored.get("expected_version").is_none());
    let prev = app.ok("/v1/events?after=4&limit=1").await;
    assert_eq!(stored["prev_hash"], prev["events"][0]["hash"]);
}

#[tokio::test]
async fn the_server_assigns_a_uuid_v7_when_the_id_is_absent() {
    let app = spawn_app().await;
    let (status, receipt) = app.post_json(&actor("saa")).await;
    assert_eq!(status, 201);
    let id = uuid::Uuid::parse_str(receipt["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
}

#[tokio::test]
async fn a_retry_with_the_same_content_gets_the_original_receipt_and_writes_nothing() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let mut e = dev(
        "forces_entered",
        "aleppo",
        "2024-11-29T00:00:00Z",
        json!({"actor": "hts"}),
    );
    e["id"] = json!("11111111-1111-4111-8111-111111111111");
    e["expected_version"] = json!(1);
    let (s1, r1) = app.post_json(&e).await;
    assert_eq!(s1, 201);
    // The retry carries a now-stale expected_version: it is still a retry, not a conflict.
    let (s2, r2) = app.post_json(&e).await;
    assert_eq!(s2, 200, "{r2}");
    assert_eq!(r1, r2);
    // Member order and number spelling do not make other content.
    let reordered = json!({"data": {"actor": "hts"}, "source": {"kind": "news_agency", "name": "Reuters"},
        "occurred_at": "2024-11-29T00:00:00Z", "location": "aleppo", "type": "forces_entered",
        "id": "11111111-1111-4111-8111-111111111111"});
    let (s3, r3) = app.post_json(&reordered).await;
    assert_eq!(s3, 200);
    assert_eq!(r3, r1);
    assert_eq!(app.ok("/v1/audit/head").await["seq"], 6);
}

#[tokio::test]
async fn the_same_id_with_other_content_is_an_id_conflict() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let mut e = dev(
        "forces_entered",
        "aleppo",
        "2024-11-29T00:00:00Z",
        json!({"actor": "hts"}),
    );
    e["id"] = json!("22222222-2222-4222-8222-222222222222");
    assert_eq!(app.post_json(&e).await.0, 201);
    e["data"]["actor"] = json!("saa");
    let body = assert_problem(app.post_events(&e).await, 409, "id_conflict").await;
    assert!(body["detail"].as_str().unwrap().contains("22222222"));
    assert_eq!(app.ok("/v1/audit/head").await["seq"], 6);
}

#[tokio::test]
async fn a_stale_expected_version_is_a_version_conflict_with_both_versions() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let mut e = dev(
        "forces_entered",
        "aleppo",
        "2024-11-29T00:00:00Z",
        json!({"actor": "hts"}),
    );
    e["expected_version"] = json!(1);
    assert_eq!(app.post_json(&e).await.0, 201);
    let body = assert_problem(app.post_events(&e).await, 409, "version_conflict").await;
    assert_eq!(body["expected_version"], 1);
    assert_eq!(body["current_version"], 2);
    e["expected_version"] = json!(2);
    assert_eq!(app.post_json(&e).await.0, 201);
}

#[tokio::test]
async fn a_batch_is_all_or_nothing() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let before = app.ok("/v1/audit/head").await;
    let batch = json!([
        dev(
            "forces_entered",
            "aleppo",
            "2024-11-29T00:00:00Z",
            json!({"actor": "hts"})
        ),
        dev(
            "forces_entered",
            "aleppo",
            "2024-11-29T00:00:00Z",
            json!({"actor": "nobody"})
        ),
    ]);
    let body = assert_problem(app.post_events(&batch).await, 422, "unknown_actor").await;
    assert_eq!(body["errors"][0]["field"], "[1].data.actor");
    assert_eq!(app.ok("/v1/audit/head").await, before);
    assert_eq!(app.ok("/v1/locations/aleppo").await["version"], 1);
}

#[tokio::test]
async fn a_batch_can_register_and_use_a_stream_and_answers_receipts_in_order() {
    let app = spawn_app().await;
    let (status, receipts) = app
        .post_json(&json!([
            actor("hts"),
            location("idlib", None),
            dev(
                "control_established",
                "idlib",
                "2024-11-01T00:00:00Z",
                json!({"actor": "hts"})
            ),
        ]))
        .await;
    assert_eq!(status, 201, "{receipts}");
    let seqs: Vec<u64> = receipts
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(receipts[2]["version"], 2);
    assert_eq!(app.ok("/v1/locations/idlib").await["control"]["controller"], "hts");
}

#[tokio::test]
async fn a_whole_batch_retried_is_200_and_a_mix_of_old_and_new_is_refused() {
    let app = spawn_app().await;
    let mut a = actor("saa");
    a["id"] = json!("33333333-3333-4333-8333-333333333333");
    let mut b = actor("hts");
    b["id"] = json!("44444444-4444-4444-8444-444444444444");
    let (s1, r1) = app.post_json(&json!([a.clone(), b.clone()])).await;
    assert_eq!(s1, 201);
    let (s2, r2) = app.post_json(&json!([a.clone(), b.clone()])).await;
    assert_eq!(s2, 200);
    assert_eq!(r1, r2);
    let c = actor("russia");
    assert_problem(app.post_events(&json!([a, c])).await, 409, "id_conflict").await;
    assert_eq!(app.ok("/v1/audit/head").await["seq"], 2);
}

#[tokio::test]
async fn concurrent_appends_get_gapless_seqs_and_all_land() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let client = app.client.clone();
        let url = app.url("/v1/events");
        tasks.push(tokio::spawn(async move {
            let e = dev(
                "report",
                "aleppo",
                "2024-11-30T00:00:00Z",
                json!({"summary": format!("report {i}")}),
            );
            let res = client.post(url).json(&e).send().await.unwrap();
            assert_eq!(res.status().as_u16(), 201);
            res.json::<serde_json::Value>().await.unwrap()["seq"].as_u64().unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (6..70).collect::<Vec<u64>>());
    assert_eq!(app.ok("/v1/locations/aleppo").await["version"], 65);
    assert_eq!(app.ok("/v1/audit/verify").await["ok"], true);
}

#[tokio::test]
async fn concurrent_writers_with_the_same_expected_version_have_exactly_one_winner() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let client = app.client.clone();
        let url = app.url("/v1/events");
        tasks.push(tokio::spawn(async move {
            let mut e = dev(
                "report",
                "aleppo",
                "2024-11-30T00:00:00Z",
                json!({"summary": format!("writer {i}")}),
            );
            e["expected_version"] = json!(1);
            client.post(url).json(&e).send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 15, "{statuses:?}");
}

#[tokio::test]
async fn concurrent_retries_of_one_id_make_one_event_and_one_receipt() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let mut e = dev("report", "aleppo", "2024-11-30T00:00:00Z", json!({"summary": "same"}));
    e["id"] = json!("55555555-5555-4555-8555-555555555555");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let client = app.client.clone();
        let url = app.url("/v1/events");
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let res = client.post(url).json(&e).send().await.unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 1);
    assert!(results
        .iter()
        .all(|(s, r)| (*s == 201 || *s == 200) && *r == results[0].1));
    assert_eq!(app.ok("/v1/audit/head").await["seq"], 6);
}

#[tokio::test]
async fn concurrent_posts_of_one_id_with_other_content_make_one_event_and_conflicts() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    // Half post one content, half another (and an expected_version, which is
    // not content): the first one in wins, the same content retries, the other conflicts.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let client = app.client.clone();
        let url = app.url("/v1/events");
        let summary = if i % 2 == 0 { "one account" } else { "another account" };
        let mut e = dev("report", "aleppo", "2024-11-30T00:00:00Z", json!({"summary": summary}));
        e["id"] = json!("66666666-6666-4666-8666-666666666666");
        if i % 4 == 0 {
            e["expected_version"] = json!(1);
        }
        tasks.push(tokio::spawn(async move {
            let res = client.post(url).json(&e).send().await.unwrap();
            (summary, res.status().as_u16())
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(results.iter().filter(|(_, s)| *s == 201).count(), 1, "{results:?}");
    let winner = results.iter().find(|(_, s)| *s == 201).unwrap().0;
    for (summary, status) in &results {
        if *summary == winner {
            assert!(*status == 201 || *status == 200, "{results:?}");
        } else {
            assert_eq!(*status, 409, "{results:?}");
        }
    }
    let stored = app.ok("/v1/events/66666666-6666-4666-8666-666666666666").await;
    assert_eq!(stored["data"]["summary"], winner);
    assert_eq!(app.ok("/v1/audit/head").await["seq"], 6);
}
