//! Reading: status, time travel, history, paging, actors — and the demo story.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn the_demo_answers_who_held_aleppo_on_29_and_30_november() {
    let app = spawn_demo_app().await;
    let on_29 = app.ok("/v1/locations/aleppo?as_of=2024-11-29T12:00:00Z").await;
    assert_eq!(on_29["control"]["status"], "contested");
    assert_eq!(on_29["control"]["present"], json!(["hts", "saa"]));
    let on_30 = app.ok("/v1/locations/aleppo?as_of=2024-11-30T12:00:00Z").await;
    assert_eq!(on_30["control"]["status"], "controlled");
    assert_eq!(on_30["control"]["controller"], "hts");
    assert_eq!(
        on_30["control"]["confidence"], "claimed",
        "the army's own statement is a claim"
    );
    assert_eq!(
        on_30["subdivisions"],
        json!({"total": 3, "unknown": 0, "contested": 1, "by_controller": {"hts": 2}})
    );
    let before = app.ok("/v1/locations/aleppo?as_of=2024-11-26T00:00:00Z").await;
    assert_eq!(before["control"]["controller"], "saa");
    let airport = app.ok("/v1/locations/aleppo-international-airport").await;
    assert_eq!(airport["operational"], "closed");
    let airbase = app.ok("/v1/locations/abu-al-duhur-airbase").await;
    assert_eq!(airbase["control"]["controller"], "hts");
    let hts = app.ok("/v1/actors/hts").await;
    for place in ["aleppo", "abu-al-duhur-airbase", "aleppo-central", "aleppo-northwest"] {
        assert!(hts["controls"].as_array().unwrap().contains(&json!(place)), "{hts}");
    }
    let saa = app.ok("/v1/actors/saa").await;
    assert_eq!(saa["member_of"], "syria-gov");
    assert!(!saa["controls"].as_array().unwrap().contains(&json!("aleppo")));
    let saa_before = app.ok("/v1/actors/saa?as_of=2024-11-26T00:00:00Z").await;
    assert!(saa_before["controls"].as_array().unwrap().contains(&json!("aleppo")));
    // Every development carries a source.
    let page = app.ok("/v1/events?limit=1000").await;
    for e in page["events"].as_array().unwrap() {
        if !e["type"].as_str().unwrap().ends_with("_registered") {
            assert!(e["source"]["name"].is_string(), "{e}");
        }
    }
}

#[tokio::test]
async fn a_late_arrival_slots_into_valid_time_order() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    app.post_json(&dev(
        "control_established",
        "aleppo",
        "2024-11-30T00:00:00Z",
        json!({"actor": "hts"}),
    ))
    .await;
    // Reported later, happened earlier: it must not override the later control.
    let (s, late) = app
        .post_json(&dev(
            "control_established",
            "aleppo",
            "2024-11-01T00:00:00Z",
            json!({"actor": "saa"}),
        ))
        .await;
    assert_eq!(s, 201);
    let now = app.ok("/v1/locations/aleppo").await;
    assert_eq!(now["control"]["controller"], "hts");
    assert_eq!(now["control"]["since"], "2024-11-30T00:00:00Z");
    let mid_nov = app.ok("/v1/locations/aleppo?as_of=2024-11-15T00:00:00Z").await;
    assert_eq!(mid_nov["control"]["controller"], "saa");
    assert_eq!(mid_nov["control"]["changed_by"], late["id"]);
    // What the log said before the late report arrived: nothing known in mid-November.
    let said_before = app.ok("/v1/locations/aleppo?as_of=2024-11-15T00:00:00Z&at_seq=6").await;
    assert_eq!(said_before["control"]["status"], "unknown");
    assert_eq!(said_before["version"], 2);
}

#[tokio::test]
async fn a_retraction_applies_to_every_as_of_once_within_at_seq() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    app.post_json(&dev(
        "control_established",
        "aleppo",
        "2024-11-01T00:00:00Z",
        json!({"actor": "saa"}),
    ))
    .await;
    let (_, wrong) = app
        .post_json(&dev(
            "forces_entered",
            "aleppo",
            "2024-11-29T00:00:00Z",
            json!({"actor": "hts"}),
        ))
        .await;
    assert_eq!(app.ok("/v1/locations/aleppo").await["control"]["status"], "contested");
    let (s, r) = app
        .post_json(&dev(
            "event_retracted",
            "aleppo",
            "2024-12-05T00:00:00Z",
            json!({"event_id": wrong["id"], "reason": "misreported"}),
        ))
        .await;
    assert_eq!(s, 201);
    let now = app.ok("/v1/locations/aleppo").await;
    assert_eq!(now["control"]["controller"], "saa");
    assert_eq!(now["version"], 4);
    // Applies to an as_of before the retraction's own occurred_at too.
    let on_30 = app.ok("/v1/locations/aleppo?as_of=2024-11-30T00:00:00Z").await;
    assert_eq!(on_30["control"]["controller"], "saa");
    // But not at a log position before the retraction.
    let before = r["seq"].as_u64().unwrap() - 1;
    let then = app.ok(&format!("/v1/locations/aleppo?at_seq={before}")).await;
    assert_eq!(then["control"]["status"], "contested");
    assert_eq!(app.ok("/v1/actors/hts").await["present_in"], json!([]));
}

#[tokio::test]
async fn answers_at_a_given_point_never_change_after_more_appends() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    app.post_json(&dev(
        "forces_entered",
        "aleppo-north",
        "2024-11-29T00:00:00Z",
        json!({"actor": "hts"}),
    ))
    .await;
    let (_, x) = app
        .post_json(&dev(
            "clashes_reported",
            "aleppo",
            "2024-11-29T06:00:00Z",
            json!({"actors": ["hts", "saa"]}),
        ))
        .await;
    let points = [
        "at_seq=7",
        "at_seq=7&as_of=2024-11-29T03:00:00Z",
        "at_seq=6&as_of=2024-12-01T00:00:00Z",
    ];
    let mut snapshots = Vec::new();
    for p in points {
        snapshots.push((
            app.ok(&format!("/v1/locations?{p}")).await,
            app.ok(&format!("/v1/actors?{p}")).await,
            app.ok(&format!("/v1/locations/aleppo?{p}")).await,
        ));
    }
    app.post_json(&dev(
        "control_established",
        "aleppo",
        "2024-11-28T00:00:00Z",
        json!({"actor": "saa"}),
    ))
    .await;
    app.post_json(&dev(
        "event_retracted",
        "aleppo",
        "2024-11-30T00:00:00Z",
        json!({"event_id": x["id"], "reason": "dup"}),
    ))
    .await;
    app.post_json(&location("aleppo-east", Some("aleppo"))).await;
    app.post_json(&dev(
        "forces_withdrew",
        "aleppo-north",
        "2024-11-28T00:00:00Z",
        json!({"actor": "hts"}),
    ))
    .await;
    for (p, before) in points.iter().zip(snapshots) {
        let after = (
            app.ok(&format!("/v1/locations?{p}")).await,
            app.ok(&format!("/v1/actors?{p}")).await,
            app.ok(&format!("/v1/locations/aleppo?{p}")).await,
        );
        assert_eq!(before, after, "answer at {p} changed");
    }
}

#[tokio::test]
async fn subdivisions_count_direct_children_and_claims_show_as_claimed() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    assert_eq!(
        app.ok("/v1/locations/aleppo").await["subdivisions"],
        json!({"total": 2, "unknown": 2, "contested": 0, "by_controller": {}})
    );
    assert_eq!(app.ok("/v1/locations/aleppo-north").await["subdivisions"], Value::Null);
    let mut claimed = dev(
        "control_established",
        "aleppo-north",
        "2024-11-30T00:00:00Z",
        json!({"actor": "hts"}),
    );
    claimed["source"] = claim("hts");
    app.post_json(&claimed).await;
    app.post_json(&dev(
        "clashes_reported",
        "aleppo-south",
        "2024-11-30T00:00:00Z",
        json!({"actors": ["hts", "saa"]}),
    ))
    .await;
    let aleppo = app.ok("/v1/locations/aleppo").await;
    assert_eq!(
        aleppo["subdivisions"],
        json!({"total": 2, "unknown": 0, "contested": 1, "by_controller": {"hts": 1}})
    );
    let north = app.ok("/v1/locations/aleppo-north").await;
    assert_eq!(north["control"]["confidence"], "claimed");
    assert_eq!(
        app.ok("/v1/locations/aleppo-south").await["control"]["confidence"],
        "reported"
    );
}

#[tokio::test]
async fn facilities_and_casualties_fold_as_the_contract_says() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    assert_eq!(app.ok("/v1/locations/aleppo").await["operational"], Value::Null);
    app.post_json(&dev(
        "facility_closed",
        "aleppo",
        "2024-11-30T00:00:00Z",
        json!({"reason": "flights cancelled"}),
    ))
    .await;
    app.post_json(&dev(
        "casualties_reported",
        "aleppo",
        "2024-11-30T00:00:00Z",
        json!({"actor": "saa", "killed": 12, "approximate": true}),
    ))
    .await;
    app.post_json(&dev(
        "casualties_reported",
        "aleppo",
        "2024-11-30T01:00:00Z",
        json!({"wounded": 4}),
    ))
    .await;
    app.post_json(&dev(
        "air_support_provided",
        "aleppo",
        "2024-11-29T00:00:00Z",
        json!({"provider": "hts", "supported": "saa"}),
    ))
    .await;
    let a = app.ok("/v1/locations/aleppo").await;
    assert_eq!(a["operational"], "closed");
    assert_eq!(
        a["casualties"],
        json!({"killed": 12, "wounded": 4, "reports": 2,
            "killed_low": 12, "killed_high": 12, "wounded_low": 4, "wounded_high": 4})
    );
    assert_eq!(a["control"]["status"], "unknown");
    app.post_json(&dev("facility_reopened", "aleppo", "2024-12-02T00:00:00Z", json!({})))
        .await;
    assert_eq!(app.ok("/v1/locations/aleppo").await["operational"], "open");
    assert_eq!(
        app.ok("/v1/locations/aleppo?as_of=2024-12-01T00:00:00Z").await["operational"],
        "closed"
    );
}

#[tokio::test]
async fn location_list_filters() {
    let app = spawn_demo_app().await;
    let ids = |v: &Value| -> Vec<String> {
        v["locations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = app.ok("/v1/locations").await;
    assert_eq!(all["locations"].as_array().unwrap().len(), 9);
    let mut sorted = ids(&all);
    sorted.sort();
    assert_eq!(ids(&all), sorted);
    assert_eq!(
        ids(&app.ok("/v1/locations?kind=airbase").await),
        vec!["abu-al-duhur-airbase"]
    );
    assert_eq!(
        ids(&app.ok("/v1/locations?parent=aleppo").await),
        vec!["aleppo-central", "aleppo-northwest", "aleppo-south"]
    );
    assert_eq!(
        ids(&app.ok("/v1/locations?status=contested&parent=aleppo").await),
        vec!["aleppo-south"]
    );
    let hts = ids(&app.ok("/v1/locations?controller=hts").await);
    assert_eq!(
        hts,
        vec!["abu-al-duhur-airbase", "aleppo", "aleppo-central", "aleppo-northwest"]
    );
    let saa_then = ids(&app.ok("/v1/locations?controller=saa&as_of=2024-11-26T00:00:00Z").await);
    assert_eq!(
        saa_then,
        vec!["aleppo", "aleppo-central", "aleppo-northwest", "aleppo-south"]
    );
}

#[tokio::test]
async fn the_log_pages_in_seq_order_and_filters_never_skip() {
    let app = spawn_demo_app().await;
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = app.ok(&format!("/v1/events?after={after}&limit=7")).await;
        for e in page["events"].as_array().unwrap() {
            seen.push(e["seq"].as_u64().unwrap());
        }
        match page["next_after"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, (1..=32).collect::<Vec<u64>>());
    let all = app.ok("/v1/events?limit=1000").await;
    assert_eq!(all["next_after"], Value::Null);
    let all = all["events"].as_array().unwrap().clone();

    for (query, keep) in [
        (
            "type=control_established",
            Box::new(|e: &Value| e["type"] == "control_established") as Box<dyn Fn(&Value) -> bool>,
        ),
        ("location=aleppo", Box::new(|e: &Value| e["location"] == "aleppo")),
        (
            "actor=russia",
            Box::new(|e: &Value| e["actor"] == "russia" || e["data"]["provider"] == "russia"),
        ),
        (
            "actor=saa&location=aleppo",
            Box::new(|e: &Value| e["location"] == "aleppo" && e.to_string().contains("\"saa\"")),
        ),
        (
            "type=report&location=aleppo-governorate",
            Box::new(|e: &Value| e["type"] == "report" && e["location"] == "aleppo-governorate"),
        ),
    ] {
        let expected: Vec<u64> = all
            .iter()
            .filter(|e| keep(e))
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert!(!expected.is_empty(), "{query}");
        let mut got = Vec::new();
        let mut after = 0;
        loop {
            let page = app.ok(&format!("/v1/events?{query}&after={after}&limit=2")).await;
            got.extend(
                page["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["seq"].as_u64().unwrap()),
            );
            match page["next_after"].as_u64() {
                Some(n) => {
                    assert!(n > after);
                    after = n
                }
                None => break,
            }
        }
        assert_eq!(got, expected, "{query}");
    }
}

#[tokio::test]
async fn a_locations_history_in_recorded_and_occurred_order() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    app.post_json(&dev(
        "report",
        "aleppo",
        "2024-11-30T00:00:00Z",
        json!({"summary": "second in time"}),
    ))
    .await;
    app.post_json(&dev(
        "report",
        "aleppo",
        "2024-11-29T00:00:00Z",
        json!({"summary": "first in time"}),
    ))
    .await;
    let recorded = app.ok("/v1/locations/aleppo/events").await;
    let seqs = |v: &Value| -> Vec<u64> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(seqs(&recorded), vec![3, 6, 7]);
    assert_eq!(
        seqs(&app.ok("/v1/locations/aleppo/events?order=recorded").await),
        vec![3, 6, 7]
    );
    assert_eq!(
        seqs(&app.ok("/v1/locations/aleppo/events?order=occurred").await),
        vec![3, 7, 6]
    );
}

#[tokio::test]
async fn health_and_readiness_report_the_head() {
    let app = spawn_demo_app().await;
    for path in ["/healthz", "/readyz"] {
        let body = app.ok(path).await;
        assert_eq!(body["status"], "ok");
        assert_eq!(body["seq"], 32);
    }
}
