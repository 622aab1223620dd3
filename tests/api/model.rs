//! Precision, estimates, names, shapes and amendments (CONTRACT section 10),
//! through the real server: every new member as it is answered, and every
//! refusal (422 naming the field, nothing written).

use serde_json::{json, Value};

use crate::helpers::*;

async fn head_seq(app: &TestApp) -> u64 {
    app.ok("/v1/audit/head").await["seq"].as_u64().unwrap()
}

/// Post `body`; it must be refused with `code`, naming `field`, writing nothing.
async fn refused(app: &TestApp, body: Value, code: &str, field: &str) -> Value {
    let before = head_seq(app).await;
    let problem = assert_problem(app.post_events(&body).await, 422, code).await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    assert!(fields.contains(&field), "{field} not named: {problem}");
    assert_eq!(head_seq(app).await, before, "a refusal writes nothing: {body}");
    problem
}

async fn created(app: &TestApp, body: Value) -> Value {
    let (status, receipt) = app.post_json(&body).await;
    assert_eq!(status, 201, "{receipt}");
    receipt
}

fn with(mut v: Value, member: &str, value: Value) -> Value {
    v[member] = value;
    v
}

#[tokio::test]
async fn a_day_precise_change_says_so_and_is_settled_once_the_day_is_over() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let took = created(
        &app,
        with(
            dev(
                "control_established",
                "aleppo",
                "2024-11-30T00:00:00Z",
                json!({"actor": "hts"}),
            ),
            "occurred_precision",
            json!("day"),
        ),
    )
    .await;
    let control = |v: &Value| v["control"].clone();
    let at = |t: &str| format!("/v1/locations/aleppo?as_of={t}");
    let during = control(&app.ok(&at("2024-11-30T18:00:00Z")).await);
    assert_eq!(during["since"], "2024-11-30T00:00:00Z");
    assert_eq!(during["since_precision"], "day");
    assert_eq!(during["settled"], false, "{during}");
    assert_eq!(during["changed_by"], took["id"]);
    let after = control(&app.ok(&at("2024-12-01T00:00:00Z")).await);
    assert_eq!(
        (after["since_precision"].clone(), after["settled"].clone()),
        (json!("day"), json!(true))
    );
    // Without as_of the clock judges: 2024 is long over.
    assert_eq!(control(&app.ok("/v1/locations/aleppo").await)["settled"], true);
    // The list says the same, under at_seq too.
    let list = app
        .ok(&format!(
            "/v1/locations?as_of=2024-11-30T18:00:00Z&at_seq={}",
            took["seq"]
        ))
        .await;
    let aleppo = list["locations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == "aleppo")
        .unwrap();
    assert_eq!(
        (
            aleppo["control"]["since_precision"].clone(),
            aleppo["control"]["settled"].clone()
        ),
        (json!("day"), json!(false))
    );
    // Before any change both are null; an instant change is settled at once.
    let south = control(&app.ok("/v1/locations/aleppo-south").await);
    assert_eq!(
        (south["since_precision"].clone(), south["settled"].clone()),
        (Value::Null, Value::Null)
    );
    created(
        &app,
        dev(
            "forces_entered",
            "aleppo-south",
            "2024-11-30T10:17:00Z",
            json!({"actor": "saa"}),
        ),
    )
    .await;
    let south = control(&app.ok("/v1/locations/aleppo-south?as_of=2024-11-30T10:17:00Z").await);
    assert_eq!(
        (south["since_precision"].clone(), south["settled"].clone()),
        (json!("instant"), json!(true))
    );
    // The stored event carries what was posted, and only that.
    let stored = app.ok(&format!("/v1/events/{}", took["id"].as_str().unwrap())).await;
    assert_eq!(stored["occurred_precision"], "day");
    let plain = app.ok("/v1/events?type=forces_entered").await;
    assert!(plain["events"][0].get("occurred_precision").is_none(), "{plain}");
}

#[tokio::test]
async fn a_time_that_does_not_start_its_unit_is_refused_on_occurred_at() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    for (precision, at) in [
        ("hour", "2024-11-30T10:30:00Z"),
        ("day", "2024-11-30T10:00:00Z"),
        ("day", "2024-11-30T00:00:00+03:00"),
        ("week", "2024-11-30T00:00:00Z"),
        ("month", "2024-11-30T00:00:00Z"),
        ("year", "2024-11-01T00:00:00Z"),
    ] {
        let body = with(
            dev("forces_entered", "aleppo", at, json!({"actor": "hts"})),
            "occurred_precision",
            json!(precision),
        );
        refused(&app, body, "validation_failed", "occurred_at").await;
    }
    for (precision, at) in [
        ("hour", "2024-11-30T10:00:00Z"),
        ("week", "2024-11-25T00:00:00Z"),
        ("month", "2024-11-01T00:00:00Z"),
        ("year", "2024-01-01T00:00:00Z"),
    ] {
        let body = with(
            dev("report", "aleppo", at, json!({"summary": "s"})),
            "occurred_precision",
            json!(precision),
        );
        created(&app, body).await;
    }
    let body = with(
        dev("report", "aleppo", "2024-01-01T00:00:00Z", json!({"summary": "s"})),
        "occurred_precision",
        json!("decade"),
    );
    refused(&app, body, "validation_failed", "occurred_precision").await;
    let reg = with(location("idlib", None), "occurred_precision", json!("day"));
    refused(&app, reg, "validation_failed", "occurred_precision").await;
}

#[tokio::test]
async fn place_precision_is_kept_on_location_events_and_refused_on_actor_events() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let r = created(
        &app,
        with(
            dev(
                "clashes_reported",
                "aleppo-north",
                "2024-11-29T00:00:00Z",
                json!({"actors": ["hts", "saa"]}),
            ),
            "place_precision",
            json!("region"),
        ),
    )
    .await;
    let stored = app.ok(&format!("/v1/events/{}", r["id"].as_str().unwrap())).await;
    assert_eq!(stored["place_precision"], "region");
    let history = app.ok("/v1/locations/aleppo-north/events").await;
    assert_eq!(history["events"][1]["place_precision"], "region");
    refused(
        &app,
        with(actor("ypg"), "place_precision", json!("near")),
        "validation_failed",
        "place_precision",
    )
    .await;
    let bad = with(
        dev("report", "aleppo", "2024-11-29T00:00:00Z", json!({"summary": "s"})),
        "place_precision",
        json!("street"),
    );
    refused(&app, bad, "validation_failed", "place_precision").await;
}

#[tokio::test]
async fn casualty_ranges_sum_by_the_contract_rule_and_dozens_leave_the_top_open() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let casualties = || async { app.ok("/v1/locations/aleppo").await["casualties"].clone() };
    created(
        &app,
        dev(
            "casualties_reported",
            "aleppo",
            "2024-11-29T00:00:00Z",
            json!({"killed": 10, "killed_low": 8, "killed_high": 15, "wounded": 20}),
        ),
    )
    .await;
    created(
        &app,
        dev(
            "casualties_reported",
            "aleppo",
            "2024-11-29T01:00:00Z",
            json!({"wounded_high": 6}),
        ),
    )
    .await;
    assert_eq!(
        casualties().await,
        json!({"killed": 10, "wounded": 20, "reports": 2,
               "killed_low": 8, "killed_high": 15, "wounded_low": 20, "wounded_high": 26})
    );
    // "Dozens killed or wounded": a low bound only, so no upper bound.
    let dozens = created(
        &app,
        dev(
            "casualties_reported",
            "aleppo",
            "2024-11-30T00:00:00Z",
            json!({"killed_low": 24, "approximate": true}),
        ),
    )
    .await;
    assert_eq!(
        casualties().await,
        json!({"killed": 10, "wounded": 20, "reports": 3,
               "killed_low": 32, "killed_high": null, "wounded_low": 20, "wounded_high": 26})
    );
    // Before it, and after its retraction, the top is bounded again.
    assert_eq!(
        app.ok("/v1/locations/aleppo?as_of=2024-11-29T12:00:00Z").await["casualties"]["killed_high"],
        15
    );
    created(
        &app,
        dev(
            "event_retracted",
            "aleppo",
            "2024-12-01T00:00:00Z",
            json!({"event_id": dozens["id"], "reason": "double counted"}),
        ),
    )
    .await;
    assert_eq!(casualties().await["killed_high"], 15);
    for (data, field) in [
        (json!({"killed": 5, "killed_low": 6}), "data.killed_low"),
        (json!({"killed": 5, "killed_high": 4}), "data.killed_high"),
        (json!({"wounded": 5, "wounded_low": 6}), "data.wounded_low"),
        (json!({"wounded_low": 7, "wounded_high": 6}), "data.wounded_high"),
        (json!({"killed_low": -1}), "data.killed_low"),
        (json!({"wounded_high": 1.5}), "data.wounded_high"),
    ] {
        refused(
            &app,
            dev("casualties_reported", "aleppo", "2024-11-30T00:00:00Z", data),
            "validation_failed",
            field,
        )
        .await;
    }
}

#[tokio::test]
async fn names_aliases_and_gazetteer_ids_are_returned_and_search_finds_arabic_with_or_without_harakat() {
    let app = spawn_app().await;
    created(
        &app,
        json!([
            {"type": "location_registered", "location": "aleppo-governorate",
             "data": {"name": "Aleppo Governorate", "kind": "governorate", "names": {"ar": "محافظة حلب"},
                      "gazetteer": {"wikidata": "Q207462", "iso3166_2": "SY-02"}}},
            {"type": "location_registered", "location": "aleppo",
             "data": {"name": "Aleppo", "kind": "city", "parent": "aleppo-governorate",
                      "names": {"ar": "حلب", "en": "Aleppo", "fr": "Alep"}, "aliases": ["Halab", "Haleb"],
                      "gazetteer": {"geonames": 170063, "wikidata": "Q41183"}}},
            {"type": "location_registered", "location": "hama", "data": {"name": "Hama", "kind": "city", "names": {"ar": "حماة"}}},
            {"type": "actor_registered", "actor": "hts",
             "data": {"name": "Hay'at Tahrir al-Sham", "kind": "non_state_group", "aliases": ["HTS"],
                      "names": {"ar": "هيئة تحرير الشام"}, "gazetteer": {"wikidata": "Q28843239"}}},
            {"type": "actor_registered", "actor": "saa", "data": {"name": "Syrian Arab Army", "kind": "state_forces"}}
        ]),
    )
    .await;
    let aleppo = app.ok("/v1/locations/aleppo").await;
    assert_eq!(aleppo["names"], json!({"ar": "حلب", "en": "Aleppo", "fr": "Alep"}));
    assert_eq!(aleppo["aliases"], json!(["Halab", "Haleb"]));
    assert_eq!(aleppo["gazetteer"], json!({"geonames": 170063, "wikidata": "Q41183"}));
    assert_eq!(aleppo["geometry"], Value::Null);
    let hts = app.ok("/v1/actors/hts").await;
    assert_eq!(hts["names"], json!({"ar": "هيئة تحرير الشام"}));
    assert_eq!(hts["gazetteer"], json!({"wikidata": "Q28843239"}));
    assert_eq!(app.ok("/v1/actors/saa").await["gazetteer"], json!({}));

    let ids = |v: &Value, list: &str| -> Vec<String> {
        v[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // حلب, حَلَب (with harakat), حـلب (with tatweel), aleppo, ALEP, an alias.
    for q in [
        "%D8%AD%D9%84%D8%A8",
        "%D8%AD%D9%8E%D9%84%D9%8E%D8%A8",
        "%D8%AD%D9%80%D9%84%D8%A8",
        "aleppo",
        "ALEP",
        "halab",
    ] {
        let found = ids(&app.ok(&format!("/v1/locations?q={q}")).await, "locations");
        assert!(found.contains(&"aleppo".to_owned()), "q={q}: {found:?}");
        assert!(!found.contains(&"hama".to_owned()), "q={q}: {found:?}");
    }
    assert_eq!(
        ids(&app.ok("/v1/locations?q=halab&kind=governorate").await, "locations"),
        Vec::<String>::new()
    );
    // هيئة, HTS and the id find the actor; another text does not.
    for q in ["%D9%87%D9%8A%D8%A6%D8%A9", "hts", "tahrir"] {
        assert_eq!(
            ids(&app.ok(&format!("/v1/actors?q={q}")).await, "actors"),
            vec!["hts"],
            "q={q}"
        );
    }
    assert_eq!(ids(&app.ok("/v1/actors?q=army").await, "actors"), vec!["saa"]);
    for bad in [
        "/v1/locations?q=",
        "/v1/actors?q=%20%20",
        &format!("/v1/locations?q={}", "a".repeat(201)),
    ] {
        assert_problem(app.get(bad).await, 400, "invalid_parameter").await;
    }

    for (data, field) in [
        (
            json!({"name": "X", "kind": "city", "names": {"arabic!": "حلب"}}),
            "data.names.arabic!",
        ),
        (
            json!({"name": "X", "kind": "city", "names": {"ar": "  "}}),
            "data.names.ar",
        ),
        (
            json!({"name": "X", "kind": "city", "gazetteer": {"geonames": 0}}),
            "data.gazetteer.geonames",
        ),
        (
            json!({"name": "X", "kind": "city", "gazetteer": {"wikidata": "41183"}}),
            "data.gazetteer.wikidata",
        ),
        (
            json!({"name": "X", "kind": "city", "gazetteer": {"osm": "area/5"}}),
            "data.gazetteer.osm",
        ),
        (
            json!({"name": "X", "kind": "city", "gazetteer": {"iso3166_2": "SYR-02"}}),
            "data.gazetteer.iso3166_2",
        ),
        (
            json!({"name": "X", "kind": "city", "gazetteer": {"geonames": 1, "tgn": 7}}),
            "data.gazetteer",
        ),
        (
            json!({"name": "X", "kind": "city", "gazetteer": [170063, null]}),
            "data.gazetteer",
        ),
        (json!({"name": "X", "kind": "city", "aliases": [""]}), "data.aliases[0]"),
    ] {
        refused(
            &app,
            json!({"type": "location_registered", "location": "x", "data": data}),
            "validation_failed",
            field,
        )
        .await;
    }
}

#[tokio::test]
async fn a_shape_is_returned_as_posted_and_a_bad_one_is_refused_naming_where() {
    let app = spawn_app().await;
    let square = json!([
        [37.05, 36.15],
        [37.25, 36.15],
        [37.25, 36.28],
        [37.05, 36.28],
        [37.05, 36.15]
    ]);
    let polygon = json!({"type": "Polygon", "coordinates": [square]});
    created(
        &app,
        json!({"type": "location_registered", "location": "aleppo",
               "data": {"name": "Aleppo", "kind": "city", "geometry": polygon}}),
    )
    .await;
    assert_eq!(app.ok("/v1/locations/aleppo").await["geometry"], polygon);
    let reg = |geometry: Value| json!({"type": "location_registered", "location": "x", "data": {"name": "X", "kind": "country", "geometry": geometry}});
    let open = json!([[37.05, 36.15], [37.25, 36.15], [37.25, 36.28], [37.05, 36.28]]);
    for (geometry, field) in [
        (
            json!({"type": "Polygon", "coordinates": [open]}),
            "data.geometry.coordinates[0]",
        ),
        (
            json!({"type": "Point", "coordinates": [37.1, 91]}),
            "data.geometry.coordinates[1]",
        ),
        (
            json!({"type": "Point", "coordinates": [181, 36]}),
            "data.geometry.coordinates[0]",
        ),
        (
            json!({"type": "Point", "coordinates": [37.1]}),
            "data.geometry.coordinates",
        ),
        (
            json!({"type": "MultiPolygon", "coordinates": []}),
            "data.geometry.coordinates",
        ),
        (
            json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}),
            "data.geometry.coordinates[0]",
        ),
        (
            json!({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}),
            "data.geometry",
        ),
        (json!(["Point", [37.1, 36.2]]), "data.geometry"),
        (
            json!({"type": "Point", "coordinates": [0, 0], "bbox": [0, 0, 0, 0]}),
            "data.geometry",
        ),
    ] {
        refused(&app, reg(geometry), "validation_failed", field).await;
    }
    // A shape larger than a stored event may be is refused with the limit named.
    let ring: Vec<Value> = (0..3000)
        .map(|i| json!([37.0 + i as f64 / 100_000.0, 36.123456789]))
        .chain(std::iter::once(json!([37.0, 36.123456789])))
        .collect();
    let big = refused(
        &app,
        reg(json!({"type": "Polygon", "coordinates": [ring]})),
        "validation_failed",
        "data.geometry",
    )
    .await;
    assert!(big.to_string().contains("32768"), "{big}");
}

#[tokio::test]
async fn amendments_replace_reference_data_for_every_as_of_from_their_seq_on() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    created(&app, location("aleppo-governorate", None)).await;
    created(
        &app,
        dev(
            "control_established",
            "aleppo-north",
            "2024-11-30T00:00:00Z",
            json!({"actor": "hts"}),
        ),
    )
    .await;
    let before = head_seq(&app).await;
    let amended = created(
        &app,
        json!({"type": "location_amended", "location": "aleppo-north",
               "data": {"name": "Northern Aleppo", "kind": "neighbourhood", "parent": "aleppo-governorate",
                        "lat": 36.23, "lon": 37.15, "names": {"ar": "شمال حلب"}, "aliases": ["North"],
                        "gazetteer": {"osm": "relation/42"},
                        "geometry": {"type": "Point", "coordinates": [37.15, 36.23]}}}),
    )
    .await;
    let now = app.ok("/v1/locations/aleppo-north").await;
    assert_eq!(now["name"], "Northern Aleppo");
    assert_eq!(now["kind"], "neighbourhood");
    assert_eq!(now["parent"], "aleppo-governorate");
    assert_eq!((now["lat"].clone(), now["lon"].clone()), (json!(36.23), json!(37.15)));
    assert_eq!(now["names"], json!({"ar": "شمال حلب"}));
    assert_eq!(now["gazetteer"], json!({"osm": "relation/42"}));
    assert_eq!(now["geometry"], json!({"type": "Point", "coordinates": [37.15, 36.23]}));
    assert_eq!(now["version"], 3, "the amendment is an event of the stream");
    assert_eq!(now["control"]["controller"], "hts", "the status is untouched");
    // Reference data: every as_of sees it, even before anything happened.
    let long_ago = app.ok("/v1/locations/aleppo-north?as_of=1990-01-01T00:00:00Z").await;
    assert_eq!(long_ago["name"], "Northern Aleppo");
    // ... but at_seq before it does not.
    let then = app.ok(&format!("/v1/locations/aleppo-north?at_seq={before}")).await;
    assert_eq!(
        (then["name"].clone(), then["parent"].clone(), then["names"].clone()),
        (json!("aleppo-north"), json!("aleppo"), json!({}))
    );
    // Subdivisions follow the parent at each point.
    let at_before = app.ok(&format!("/v1/locations/aleppo?at_seq={before}")).await;
    assert_eq!(at_before["subdivisions"]["total"], 2);
    assert_eq!(app.ok("/v1/locations/aleppo").await["subdivisions"]["total"], 1);
    assert_eq!(
        app.ok("/v1/locations/aleppo-governorate").await["subdivisions"]["by_controller"],
        json!({"hts": 1})
    );
    let children = app.ok("/v1/locations?parent=aleppo-governorate").await;
    assert_eq!(children["locations"][0]["id"], "aleppo-north");
    // The history shows it.
    let history = app.ok("/v1/locations/aleppo-north/events?order=occurred").await;
    let types: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec!["location_registered", "location_amended", "control_established"]
    );
    // A later amendment corrects one; an amendment cannot be retracted.
    created(
        &app,
        json!({"type": "location_amended", "location": "aleppo-north", "data": {"name": "North Aleppo"}}),
    )
    .await;
    assert_eq!(app.ok("/v1/locations/aleppo-north").await["name"], "North Aleppo");
    assert_eq!(
        app.ok("/v1/locations/aleppo-north").await["names"],
        json!({"ar": "شمال حلب"}),
        "other members stay"
    );
    refused(
        &app,
        dev(
            "event_retracted",
            "aleppo-north",
            "2024-12-01T00:00:00Z",
            json!({"event_id": amended["id"], "reason": "wrong"}),
        ),
        "validation_failed",
        "data.event_id",
    )
    .await;

    // Actors too.
    created(&app, json!({"type": "actor_amended", "actor": "saa", "data": {"member_of": "hts", "names": {"ar": "الجيش العربي السوري"}}})).await;
    let saa = app.ok("/v1/actors/saa").await;
    assert_eq!(
        (saa["member_of"].clone(), saa["names"].clone(), saa["version"].clone()),
        (json!("hts"), json!({"ar": "الجيش العربي السوري"}), json!(2))
    );
    let actor_events = app.ok("/v1/events?actor=saa&type=actor_amended").await;
    assert_eq!(actor_events["events"].as_array().unwrap().len(), 1);

    // A restart (from the checkpoint) answers the same, at every point.
    let reads = [
        "/v1/locations".to_owned(),
        format!("/v1/locations?at_seq={before}"),
        "/v1/locations?as_of=1990-01-01T00:00:00Z".to_owned(),
        "/v1/actors".to_owned(),
        format!("/v1/actors?at_seq={before}"),
    ];
    let mut answers = Vec::new();
    for r in &reads {
        answers.push(app.ok(r).await);
    }
    let tmp = app.stop().await;
    let app = spawn_app_on(tmp, false).await;
    for (r, answer) in reads.iter().zip(answers) {
        assert_eq!(app.ok(r).await, answer, "{r}");
    }
}

#[tokio::test]
async fn an_amendment_that_would_make_a_cycle_or_names_nothing_is_refused() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    created(&app, location("al-ramouseh", Some("aleppo-south"))).await;
    let amend = |loc: &str, data: Value| json!({"type": "location_amended", "location": loc, "data": data});
    refused(
        &app,
        amend("aleppo", json!({"parent": "al-ramouseh"})),
        "validation_failed",
        "data.parent",
    )
    .await;
    refused(
        &app,
        amend("aleppo", json!({"parent": "aleppo"})),
        "validation_failed",
        "data.parent",
    )
    .await;
    refused(
        &app,
        amend("aleppo", json!({"parent": "nowhere"})),
        "unknown_location",
        "data.parent",
    )
    .await;
    refused(
        &app,
        amend("nowhere", json!({"name": "N"})),
        "unknown_location",
        "location",
    )
    .await;
    refused(&app, amend("aleppo", json!({})), "validation_failed", "data").await;
    refused(
        &app,
        amend("aleppo", json!({"lat": 36.2})),
        "validation_failed",
        "data.lon",
    )
    .await;
    refused(
        &app,
        amend("aleppo", json!({"kind": "castle"})),
        "validation_failed",
        "data.kind",
    )
    .await;
    // A batch that would close the cycle within itself is refused whole.
    refused(
        &app,
        json!([
            amend("aleppo-south", json!({"parent": "aleppo-north"})),
            amend("aleppo-north", json!({"parent": "aleppo-south"}))
        ]),
        "validation_failed",
        "[1].data.parent",
    )
    .await;
    let member = |a: &str, m: &str| json!({"type": "actor_amended", "actor": a, "data": {"member_of": m}});
    created(&app, member("saa", "hts")).await;
    refused(&app, member("hts", "saa"), "validation_failed", "data.member_of").await;
    refused(&app, member("hts", "ypg"), "unknown_actor", "data.member_of").await;
    refused(&app, member("ypg", "hts"), "unknown_actor", "actor").await;
}

#[tokio::test]
async fn the_new_location_kinds_register_and_filter() {
    let app = spawn_app().await;
    created(
        &app,
        json!([
            {"type": "location_registered", "location": "syria", "data": {"name": "Syria", "kind": "country", "gazetteer": {"wikidata": "Q858"}}},
            {"type": "location_registered", "location": "jebel-saman", "data": {"name": "Jebel Saman", "kind": "subdistrict", "parent": "syria"}},
            {"type": "location_registered", "location": "al-hamdaniyah", "data": {"name": "Al-Hamdaniyah", "kind": "neighbourhood", "parent": "jebel-saman"}}
        ]),
    )
    .await;
    for kind in ["country", "subdistrict", "neighbourhood"] {
        let found = app.ok(&format!("/v1/locations?kind={kind}")).await;
        assert_eq!(found["locations"].as_array().unwrap().len(), 1, "{kind}: {found}");
    }
}

#[tokio::test]
async fn the_demo_says_how_precise_the_article_is() {
    let app = spawn_demo_app().await;
    let evening = app.ok("/v1/locations/aleppo?as_of=2024-11-30T18:00:00Z").await;
    assert_eq!(
        (
            evening["control"]["since_precision"].clone(),
            evening["control"]["settled"].clone()
        ),
        (json!("day"), json!(false))
    );
    let aleppo = app.ok("/v1/locations/aleppo").await;
    assert_eq!(aleppo["names"]["ar"], "حلب");
    assert_eq!(aleppo["gazetteer"], json!({"geonames": 170063, "wikidata": "Q41183"}));
    assert_eq!(aleppo["geometry"]["type"], "Polygon");
    assert_eq!(
        app.ok("/v1/locations/aleppo-governorate").await["gazetteer"]["iso3166_2"],
        "SY-HL"
    );
    // "Dozens killed or wounded": no best estimate, no upper bound.
    let casualties = app.ok("/v1/locations/northwest-syria").await["casualties"].clone();
    assert_eq!(
        (casualties["killed_high"].clone(), casualties["wounded_high"].clone()),
        (Value::Null, Value::Null)
    );
    let found = app.ok("/v1/locations?q=%D8%AD%D9%8E%D9%84%D9%8E%D8%A8&kind=city").await;
    assert_eq!(found["locations"][0]["id"], "aleppo");
}
