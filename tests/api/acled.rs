//! `sitrep acled import`, the real binary against a real server, with the
//! realistic ACLED files in tests/fixtures/acled.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::process::sitrep;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/acled")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Run `sitrep acled import ARGS --server <app>`: (exit code, stderr).
async fn import(app: &TestApp, args: &[&str]) -> (Option<i32>, String) {
    let mut all: Vec<String> = vec!["acled".into(), "import".into()];
    all.extend(args.iter().map(|a| a.to_string()));
    all.extend(["--server".into(), app.address.clone()]);
    let (code, _, stderr) = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        sitrep(&refs)
    })
    .await
    .expect("the import ran");
    (code, stderr)
}

async fn head(app: &TestApp) -> u64 {
    app.ok("/v1/audit/head").await["seq"].as_u64().unwrap()
}

/// The one item of `list` (under `key`) named `name` with kind `kind`.
async fn find(app: &TestApp, what: &str, name: &str, kind: &str) -> Value {
    let q = name.replace(' ', "%20").replace('(', "%28").replace(')', "%29");
    let list = app.ok(&format!("/v1/{what}?q={q}")).await;
    let hits: Vec<Value> = list[what]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["name"] == name && x["kind"] == kind)
        .cloned()
        .collect();
    assert_eq!(hits.len(), 1, "one {kind} named {name}: {list}");
    hits[0].clone()
}

async fn place(app: &TestApp, name: &str, kind: &str) -> Value {
    find(app, "locations", name, kind).await
}

async fn actor_id(app: &TestApp, name: &str, kind: &str) -> String {
    find(app, "actors", name, kind).await["id"].as_str().unwrap().to_owned()
}

/// The developments (not retractions) at a location, retracted or not.
async fn developments(app: &TestApp, location: &Value) -> Vec<Value> {
    let id = location["id"].as_str().unwrap();
    let all = app.ok(&format!("/v1/events?location={id}&limit=1000")).await;
    all["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] != "location_registered" && e["type"] != "event_retracted")
        .cloned()
        .collect()
}

/// Ids of the events retracted so far.
async fn retracted(app: &TestApp) -> Vec<String> {
    let r = app.ok("/v1/events?type=event_retracted&limit=1000").await;
    r["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_row_kind_of_an_acled_export_lands_as_the_mapping_says() {
    let app = spawn_app().await;
    let (code, err) = import(&app, &[&fixture("export.csv")]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("rows read 10, written 10, unchanged 0, retracted 0, refused 0"),
        "{err}"
    );

    // Actors by name, kind from the inter code (numbers and labels alike).
    let hts = actor_id(&app, "Hayat Tahrir al-Sham", "non_state_group").await;
    let saa = actor_id(&app, "Military Forces of Syria (2000-2024)", "state_forces").await;
    let turkey = actor_id(&app, "Military Forces of Turkey (2016-)", "other").await;
    let saf = actor_id(&app, "Military Forces of Sudan (2019-)", "state_forces").await;
    let rsf = actor_id(&app, "Rapid Support Forces", "non_state_group").await;
    actor_id(&app, "Protesters (Ukraine)", "other").await;
    actor_id(&app, "Rioters (Sudan)", "other").await;
    actor_id(&app, "Civilians (Sudan)", "other").await;

    // The place hierarchy: country -> admin1 -> admin2 -> admin3 -> location.
    let syria = place(&app, "Syria", "country").await;
    assert_eq!(syria["parent"], Value::Null);
    assert_eq!(syria["id"], "syria");
    let aleppo_gov = place(&app, "Aleppo", "region").await;
    assert_eq!(aleppo_gov["parent"], "syria");
    let jebel_district = place(&app, "Jebel Saman", "district").await;
    assert_eq!(jebel_district["parent"], aleppo_gov["id"]);
    let jebel_sub = place(&app, "Jebel Saman", "subdistrict").await;
    assert_eq!(jebel_sub["parent"], jebel_district["id"]);
    let aleppo = place(&app, "Aleppo", "town").await;
    assert_eq!(aleppo["parent"], jebel_sub["id"]);
    assert_eq!(
        (aleppo["lat"].clone(), aleppo["lon"].clone()),
        (json!(36.2021), json!(37.1343))
    );
    assert_eq!(
        aleppo_gov["lat"],
        Value::Null,
        "coordinates sit on the location level only"
    );
    // Without admin3 the location hangs from admin2; without admin2 and 3, from admin1.
    let atareb = place(&app, "Atareb", "town").await;
    assert_eq!(atareb["parent"], jebel_district["id"]);
    let kyiv = place(&app, "Kyiv", "town").await;
    assert_eq!(kyiv["parent"], place(&app, "Kyiv City", "region").await["id"]);
    assert_eq!(kyiv["parent"].as_str().map(|p| p.is_empty()), Some(false));

    // Territory taken: control for actor1; fatalities: a casualty report of
    // the best estimate, which is also its low and high; day precision.
    assert_eq!(aleppo["control"]["controller"], hts.as_str());
    assert_eq!(aleppo["control"]["since"], "2024-11-30T00:00:00Z");
    assert_eq!(aleppo["control"]["since_precision"], "day");
    assert_eq!(aleppo["casualties"]["killed"], 12);
    assert_eq!(aleppo["casualties"]["killed_low"], 12);
    assert_eq!(aleppo["casualties"]["killed_high"], 12);
    let evs = developments(&app, &aleppo).await;
    let types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["control_established", "casualties_reported"]);
    assert_eq!(
        evs[0]["source"],
        json!({"name": "Syrian Observatory for Human Rights; Enab Baladi", "kind": "other"})
    );

    // An armed clash, known to the week (aligned to its Monday), near the place.
    assert_eq!(atareb["control"]["status"], "contested");
    let evs = developments(&app, &atareb).await;
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0]["type"], "clashes_reported");
    assert_eq!(evs[0]["data"]["actors"], json!([hts, saa]));
    assert_eq!(evs[0]["occurred_at"], "2024-11-25T00:00:00Z");
    assert_eq!(evs[0]["occurred_precision"], "week");
    assert_eq!(evs[0]["place_precision"], "near");
    assert_eq!(evs[0]["source"], json!({"name": "SANA", "kind": "news_agency"}));

    // A base established: presence, known to the month, only the region known.
    let azaz = place(&app, "Azaz", "town").await;
    assert_eq!(azaz["control"]["present"], json!([turkey]));
    let evs = developments(&app, &azaz).await;
    assert_eq!(evs[0]["type"], "forces_entered");
    assert_eq!(evs[0]["occurred_at"], "2024-11-01T00:00:00Z");
    assert_eq!(evs[0]["occurred_precision"], "month");
    assert_eq!(evs[0]["place_precision"], "region");
    assert_eq!(evs[0]["source"]["kind"], "monitor");

    // Everything else: a report with the notes as written (quotes, commas).
    let kharkiv = place(&app, "Kharkiv", "town").await;
    let evs = developments(&app, &kharkiv).await;
    let types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["report", "casualties_reported"]);
    assert_eq!(
        evs[0]["data"]["summary"],
        "On 10 October 2024, Russian forces struck Kharkiv city with a guided aerial bomb (\"KAB-500\"), killing 3 civilians, injuring 10."
    );
    assert_eq!(evs[0]["source"]["kind"], "other", "New media");
    assert_eq!(evs[1]["data"], json!({"killed": 3}));
    let ariha = place(&app, "Ariha", "town").await;
    assert_eq!(
        developments(&app, &ariha).await[0]["data"]["summary"],
        "Regime forces shelled Ariha; a \"double-tap\" strike hit a market, killing 2 civilians."
    );
    // Notes over several lines, with quotes and commas, arrive as written.
    let khartoum = place(&app, "Khartoum", "town").await;
    let evs = developments(&app, &khartoum).await;
    assert_eq!(
        evs[0]["data"]["summary"],
        "During the week of 16 September 2024, rioters attacked a market in Khartoum; one person killed.\nLocal committees said, \"the market is closed\", until further notice."
    );
    assert_eq!(evs[0]["occurred_at"], "2024-09-16T00:00:00Z", "the Monday of its week");
    // A report without notes says what kind of event it was.
    let evs = developments(&app, &kyiv).await;
    assert_eq!(evs[0]["data"]["summary"], "Protests: Peaceful protest");

    // Sudan: a clash known to the month, only the region known.
    let bahri = place(&app, "Bahri", "town").await;
    let evs = developments(&app, &bahri).await;
    assert_eq!(evs[0]["data"]["actors"], json!([saf, rsf]));
    assert_eq!(evs[0]["occurred_at"], "2024-09-01T00:00:00Z");
    assert_eq!(bahri["casualties"]["killed"], 15);
    let fasher = place(&app, "El Fasher", "town").await;
    assert_eq!(developments(&app, &fasher).await[0]["source"]["kind"], "news_agency");
    app.stop().await;
}

#[tokio::test]
async fn importing_the_same_file_again_writes_nothing() {
    let app = spawn_app().await;
    let (code, err) = import(&app, &[&fixture("export.csv")]).await;
    assert_eq!(code, Some(0), "{err}");
    let before = head(&app).await;
    let (code, err) = import(&app, &[&fixture("export.csv")]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("rows read 10, written 0, unchanged 10, retracted 0, refused 0"),
        "{err}"
    );
    assert_eq!(head(&app).await, before);
    app.stop().await;
}

#[tokio::test]
async fn newer_rows_retract_and_replace_and_deletions_retract() {
    let app = spawn_app().await;
    let (code, err) = import(&app, &[&fixture("export.csv")]).await;
    assert_eq!(code, Some(0), "{err}");
    let atareb = place(&app, "Atareb", "town").await;
    let old_clash = developments(&app, &atareb).await[0]["id"].clone();
    let ariha = place(&app, "Ariha", "town").await;
    assert_eq!(ariha["casualties"]["killed"], 2);

    let (code, err) = import(
        &app,
        &[&fixture("update.csv"), "--deletions", &fixture("deletions.csv")],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    // SYR1002 and UKR2002 updated, SYR1004 deleted, SDN3001 as before, SYR1005 new.
    assert!(
        err.contains("rows read 5, written 1, unchanged 1, retracted 3, refused 0"),
        "{err}"
    );
    let gone = retracted(&app).await;
    assert!(gone.contains(&old_clash.as_str().unwrap().to_owned()), "{gone:?}");
    // The update adds fatalities: a new clash and a casualty report replace the old clash.
    let atareb = place(&app, "Atareb", "town").await;
    assert_eq!(atareb["casualties"]["killed"], 4);
    let live: Vec<Value> = developments(&app, &atareb)
        .await
        .into_iter()
        .filter(|e| !gone.contains(&e["id"].as_str().unwrap().to_owned()))
        .collect();
    let types: Vec<&str> = live.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["clashes_reported", "casualties_reported"]);
    // UKR2002 became an armed clash: Ukraine no longer holds Kupiansk alone.
    let kupiansk = place(&app, "Kupiansk", "town").await;
    assert_eq!(kupiansk["control"]["status"], "contested");
    // SYR1004 was deleted: its casualties no longer count.
    let ariha = place(&app, "Ariha", "town").await;
    assert_eq!(ariha["casualties"]["killed"], 0);
    assert_eq!(ariha["casualties"]["reports"], 0);
    let hama = place(&app, "Hama", "town").await;
    assert_eq!(hama["control"]["status"], "controlled");

    // Again, and the older export too: nothing more is written.
    let before = head(&app).await;
    let (code, err) = import(
        &app,
        &[&fixture("update.csv"), "--deletions", &fixture("deletions.csv")],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("written 0, unchanged 5, retracted 0"), "{err}");
    let (code, err) = import(&app, &[&fixture("export.csv")]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("written 0, unchanged 10, retracted 0"), "{err}");
    assert_eq!(head(&app).await, before);
    app.stop().await;
}

#[tokio::test]
async fn malformed_rows_are_named_by_line_and_nothing_of_them_is_written() {
    let app = spawn_app().await;
    let file = fixture("malformed.csv");
    let (code, err) = import(&app, &[&file]).await;
    assert_eq!(code, Some(1), "some rows were refused: {err}");
    for (line, why) in [
        (3, "event_date '2024-13-45'"),
        (4, "time_precision '4'"),
        (5, "geo_precision '0'"),
        (6, "latitude '136.5'"),
        (7, "has 20 fields"),
        (8, "inter1 '9'"),
    ] {
        assert!(
            err.contains(&format!("malformed.csv:{line}: refused")),
            "line {line}: {err}"
        );
        assert!(err.contains(why), "{why}: {err}");
    }
    assert!(!err.contains("malformed.csv:2:"), "{err}");
    assert!(
        err.contains("rows read 7, written 1, unchanged 0, retracted 0, refused 6"),
        "{err}"
    );
    // Only the good row: Syria, Damascus at four levels, its actor, its report.
    assert_eq!(head(&app).await, 7);
    assert_eq!(app.ok("/v1/locations?q=Nowhere").await["locations"], json!([]));
    assert_eq!(app.ok("/v1/actors?q=Nowhere").await["actors"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn a_row_the_server_refuses_is_named_and_the_rest_goes_in() {
    let app = spawn_app().await;
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("export.csv")).unwrap();
    // Notes beyond the server's summary limit on the fourth row (line 6).
    let long = "x".repeat(sitrep::domain::limits::MAX_SUMMARY_CHARS + 1);
    let text = text.replacen(
        "Regime forces shelled Ariha; a \"\"double-tap\"\" strike hit a market, killing 2 civilians.",
        &long,
        1,
    );
    let path = tmp.path().join("long.csv");
    std::fs::write(&path, text).unwrap();
    let (code, err) = import(&app, &[path.to_str().unwrap()]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("long.csv:6: refused by the server"), "{err}");
    assert!(err.contains("data.summary"), "{err}");
    assert!(err.contains("written 9, unchanged 0, retracted 0, refused 1"), "{err}");
    let ariha = place(&app, "Ariha", "town").await;
    assert_eq!(developments(&app, &ariha).await, Vec::<Value>::new());
    assert_eq!(ariha["casualties"]["reports"], 0, "nothing of the refused row");
    app.stop().await;
}

#[tokio::test]
async fn a_file_without_a_needed_column_is_refused_whole() {
    let app = spawn_app().await;
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("export.csv")).unwrap();
    let path = tmp.path().join("renamed.csv");
    std::fs::write(&path, text.replacen("geo_precision", "geoprecision", 1)).unwrap();
    let (code, err) = import(&app, &[path.to_str().unwrap()]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("geo_precision"), "{err}");
    assert_eq!(head(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn the_import_takes_a_token_and_a_reader_is_refused() {
    let tmp = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let (file, tokens) = tokens_in(tmp.path(), &[("desk", "reporter"), ("viewer", "reader")]);
    let app = spawn_with(tmp, |s| s.tokens = Some(file)).await;
    let (code, err) = import(&app, &[&fixture("export.csv"), "--token", &tokens["viewer"]]).await;
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("403"), "{err}");
    let (code, err) = import(&app, &[&fixture("export.csv"), "--token", &tokens["desk"]]).await;
    assert_eq!(code, Some(0), "{err}");
    let seq = app.ok_with("/v1/audit/head", &tokens["desk"]).await["seq"].clone();
    assert!(seq.as_u64().unwrap() > 0);
    app.stop().await;
}

#[tokio::test]
async fn a_row_deleted_in_the_same_run_is_not_imported() {
    let app = spawn_app().await;
    let (code, err) = import(
        &app,
        &[&fixture("export.csv"), "--deletions", &fixture("deletions.csv")],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("rows read 11, written 9, unchanged 2, retracted 0, refused 0"),
        "{err}"
    );
    // Nothing of the deleted row, not even the places only it names.
    assert_eq!(app.ok("/v1/locations?q=Ariha").await["locations"], json!([]));
    assert_eq!(retracted(&app).await, Vec::<String>::new());
    app.stop().await;
}
