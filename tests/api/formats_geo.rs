//! The location list as GeoJSON and CSV, content negotiation on every read,
//! `sitrep export --format geojson`, and GDAL reading the GeoJSON from the URL.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::process::sitrep_output;

/// Every query of `GET /v1/locations` the formats must answer alike.
const QUERIES: &[&str] = &[
    "",
    "?as_of=2024-11-29T12:00:00Z",
    "?at_seq=8",
    "?kind=city",
    "?parent=aleppo",
    "?controller=hts",
    "?status=controlled",
    "?status=unknown",
    "?q=aleppo",
    "?at_seq=20&as_of=2024-11-28T00:00:00Z&status=controlled",
];

async fn get_accepting(app: &TestApp, path: &str, accept: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url(path));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    req.send().await.expect("request sent")
}

fn content_type(res: &reqwest::Response) -> String {
    res.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn text_or_null(v: &Value) -> Value {
    if v.is_null() {
        Value::Null
    } else {
        v.clone()
    }
}

/// The flat properties a location's JSON answer says its feature must carry.
fn expected_properties(l: &Value) -> Value {
    let c = &l["control"];
    let present: Vec<&str> = c["present"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let k = &l["casualties"];
    json!({
        "name": l["name"], "kind": l["kind"], "parent": text_or_null(&l["parent"]),
        "status": c["status"], "controller": c["controller"], "confidence": c["confidence"],
        "since": c["since"], "since_precision": c["since_precision"], "settled": c["settled"],
        "operational": l["operational"], "present": present.join(","), "version": l["version"],
        "killed": k["killed"], "wounded": k["wounded"], "killed_low": k["killed_low"],
        "killed_high": k["killed_high"], "wounded_low": k["wounded_low"], "wounded_high": k["wounded_high"],
    })
}

fn expected_geometry(l: &Value) -> Value {
    if !l["geometry"].is_null() {
        l["geometry"].clone()
    } else if l["lon"].is_number() && l["lat"].is_number() {
        json!({"type": "Point", "coordinates": [l["lon"], l["lat"]]})
    } else {
        Value::Null
    }
}

#[tokio::test]
async fn geojson_is_the_location_list_as_features_by_path_and_by_accept() {
    let app = spawn_demo_app().await;
    let mut shapes = 0;
    let mut points = 0;
    let mut nulls = 0;
    for query in QUERIES {
        let list = app.ok(&format!("/v1/locations{query}")).await;
        let res = app.get(&format!("/v1/locations.geojson{query}")).await;
        assert_eq!(res.status(), 200, "{query}");
        assert_eq!(content_type(&res), "application/geo+json", "{query}");
        let by_path = res.bytes().await.unwrap();
        let res = get_accepting(&app, &format!("/v1/locations{query}"), Some("application/geo+json")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(content_type(&res), "application/geo+json");
        assert_eq!(res.bytes().await.unwrap(), by_path, "{query}: the two routes differ");

        let fc: Value = serde_json::from_slice(&by_path).unwrap();
        assert_eq!(fc["type"], "FeatureCollection");
        assert_eq!(fc.as_object().unwrap().len(), 2, "no other members: {fc}");
        let features = fc["features"].as_array().unwrap();
        let locations = list["locations"].as_array().unwrap();
        assert_eq!(features.len(), locations.len(), "{query}");
        for (f, l) in features.iter().zip(locations) {
            assert_eq!(f["type"], "Feature");
            assert_eq!(f["id"], l["id"], "{query}");
            assert_eq!(f["properties"], expected_properties(l), "{query}: {}", l["id"]);
            assert_eq!(f["geometry"], expected_geometry(l), "{query}: {}", l["id"]);
            match f["geometry"]["type"].as_str() {
                Some("Point") if l["geometry"].is_null() => points += 1,
                Some(_) => shapes += 1,
                None => nulls += 1,
            }
        }
    }
    assert!(
        shapes > 0 && points > 0 && nulls > 0,
        "every geometry case seen: {shapes} {points} {nulls}"
    );
}

#[tokio::test]
async fn geojson_coordinates_are_longitude_first() {
    let app = spawn_app().await;
    let (status, body) = app
        .post_json(&json!({"type": "location_registered", "location": "kobani",
            "data": {"name": "Kobani", "kind": "city", "lat": 36.89, "lon": 38.35}}))
        .await;
    assert_eq!(status, 201, "{body}");
    let fc: Value = app.get("/v1/locations.geojson").await.json().await.unwrap();
    assert_eq!(
        fc["features"][0]["geometry"],
        json!({"type": "Point", "coordinates": [38.35, 36.89]})
    );
    assert_eq!(fc["features"][0]["properties"]["status"], "unknown");
    assert_eq!(fc["features"][0]["properties"]["present"], "");
}

/// Parse a CSV answer with the `csv` crate: header and rows.
fn parse_csv(body: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::ReaderBuilder::new().from_reader(body);
    let header = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn csv_is_the_location_list_as_rows_with_the_documented_columns() {
    let app = spawn_demo_app().await;
    let spec: Value = serde_yaml::from_str(&std::fs::read_to_string("api-spec/openapi.yaml").unwrap()).unwrap();
    let documented: Vec<String> = serde_json::from_value(
        spec["paths"]["/v1/locations.csv"]["get"]["responses"]["200"]["content"]["text/csv"]["x-csv-columns"].clone(),
    )
    .expect("the spec documents the columns");
    for query in QUERIES {
        let list = app.ok(&format!("/v1/locations{query}")).await;
        let res = app.get(&format!("/v1/locations.csv{query}")).await;
        assert_eq!(res.status(), 200, "{query}");
        assert_eq!(content_type(&res), "text/csv; charset=utf-8; header=present");
        let body = res.bytes().await.unwrap();
        assert!(body.ends_with(b"\r\n"), "RFC 4180 line ends");
        let (header, rows) = parse_csv(&body);
        assert_eq!(header, documented, "{query}");
        let locations = list["locations"].as_array().unwrap();
        assert_eq!(rows.len(), locations.len(), "{query}");
        for (row, l) in rows.iter().zip(locations) {
            let props = expected_properties(l);
            let mut expected = vec![cell(&l["id"])];
            expected.extend(documented[1..documented.len() - 2].iter().map(|c| cell(&props[c])));
            expected.push(cell(&l["lon"]));
            expected.push(cell(&l["lat"]));
            assert_eq!(row, &expected, "{query}");
        }
    }
}

#[tokio::test]
async fn csv_neutralises_cells_a_spreadsheet_would_run() {
    let app = spawn_app().await;
    let names = [
        ("eq", "=HYPERLINK(\"http://x\",\"y\")"),
        ("plus", "+1+2"),
        ("minus", "-2+3"),
        ("at", "@SUM(A1)"),
        ("tab", "\t=1"),
        ("plain", "Tall Rifaat, \"north\""),
    ];
    let mut batch = vec![];
    for (id, name) in names {
        batch.push(json!({"type": "location_registered", "location": id,
            "data": {"name": name, "kind": "town", "lat": -12.5, "lon": -45.25}}));
    }
    let (status, body) = app.post_json(&Value::Array(batch)).await;
    assert_eq!(status, 201, "{body}");
    let raw = app.get("/v1/locations.csv").await.bytes().await.unwrap();
    let text = String::from_utf8(raw.to_vec()).unwrap();
    for quoted in [
        "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"",
        "\"'+1+2\"",
        "\"'-2+3\"",
        "\"'@SUM(A1)\"",
        "\"'\t=1\"",
        "\"Tall Rifaat, \"\"north\"\"\"",
    ] {
        assert!(text.contains(quoted), "{quoted} not in:\n{text}");
    }
    // Numbers stay numbers: a negative coordinate is not a formula.
    assert!(text.contains(",-45.25,-12.5\r\n"), "{text}");
    let (_, rows) = parse_csv(&raw);
    let by_id: std::collections::HashMap<&str, &str> = rows.iter().map(|r| (r[0].as_str(), r[1].as_str())).collect();
    assert_eq!(by_id["plain"], "Tall Rifaat, \"north\"");
    assert_eq!(by_id["eq"], "'=HYPERLINK(\"http://x\",\"y\")");
}

#[tokio::test]
async fn reads_negotiate_their_format_and_refuse_what_they_cannot_answer() {
    let app = spawn_demo_app().await;
    let json_ct = "application/json";
    let geo = "application/geo+json";
    let csv_ct = "text/csv; charset=utf-8; header=present";
    // (path, Accept, status, content type of a 200)
    let cases: &[(&str, Option<&str>, u16, &str)] = &[
        ("/v1/locations", None, 200, json_ct),
        ("/v1/locations", Some(""), 200, json_ct),
        ("/v1/locations", Some("*/*"), 200, json_ct),
        ("/v1/locations", Some("application/*"), 200, json_ct),
        ("/v1/locations", Some("application/json"), 200, json_ct),
        ("/v1/locations", Some("application/json; charset=utf-8"), 200, json_ct),
        ("/v1/locations", Some(geo), 200, geo),
        ("/v1/locations", Some("APPLICATION/GEO+JSON"), 200, geo),
        (
            "/v1/locations",
            Some("application/json;q=0.5, application/geo+json"),
            200,
            geo,
        ),
        (
            "/v1/locations",
            Some("application/geo+json;q=0.4, application/json;q=0.5"),
            200,
            json_ct,
        ),
        // `application/json` also admits GeoJSON (RFC 6839 suffix), so its
        // q=0 refuses both; naming GeoJSON then admits it.
        ("/v1/locations", Some("application/json;q=0, */*"), 406, ""),
        (
            "/v1/locations",
            Some("application/json;q=0, application/geo+json"),
            200,
            geo,
        ),
        ("/v1/locations", Some("application/json;q=0, text/*"), 406, ""),
        ("/v1/locations", Some("text/html, */*;q=0.1"), 200, json_ct),
        ("/v1/locations", Some("text/html"), 406, ""),
        ("/v1/locations", Some("text/csv"), 406, ""),
        ("/v1/locations", Some("*/*;q=0"), 406, ""),
        ("/v1/locations", Some("application/*;q=0"), 406, ""),
        ("/v1/locations", Some("garbage"), 406, ""),
        ("/v1/locations.geojson", None, 200, geo),
        ("/v1/locations.geojson", Some("text/plain, application/json"), 200, geo),
        (
            "/v1/locations.geojson",
            Some("application/geo+json;q=0, application/json"),
            406,
            "",
        ),
        ("/v1/locations.geojson", Some("text/csv"), 406, ""),
        ("/v1/locations.csv", None, 200, csv_ct),
        ("/v1/locations.csv", Some("text/*"), 200, csv_ct),
        ("/v1/locations.csv", Some("text/csv;q=0.1"), 200, csv_ct),
        ("/v1/locations.csv", Some("application/json"), 406, ""),
        ("/v1/actors", Some(geo), 406, ""),
        ("/v1/actors/hts", Some("text/csv"), 406, ""),
        ("/v1/locations/aleppo", Some(geo), 406, ""),
        ("/v1/locations/aleppo/events", Some("text/html"), 406, ""),
        ("/v1/events", Some("text/csv"), 406, ""),
        ("/v1/audit/head", Some("text/plain"), 406, ""),
        ("/v1/actors", Some("application/*"), 200, json_ct),
        ("/v1/events", Some("*/*"), 200, json_ct),
    ];
    for (path, accept, status, ct) in cases {
        let res = get_accepting(&app, path, *accept).await;
        if *status == 200 {
            assert_eq!(res.status(), 200, "{path} {accept:?}");
            assert_eq!(content_type(&res), *ct, "{path} {accept:?}");
        } else {
            let p = assert_problem(res, *status, "not_acceptable").await;
            assert!(p["detail"].as_str().unwrap().contains("answers"), "{p}");
        }
    }
}

#[tokio::test]
async fn bad_parameters_on_the_format_routes_are_refused_and_write_nothing() {
    let app = spawn_demo_app().await;
    let head = app.ok("/v1/audit/head").await;
    for route in ["/v1/locations.geojson", "/v1/locations.csv"] {
        for query in [
            "?format=csv",
            "?asof=2024-11-29T12:00:00Z",
            "?as_of=yesterday",
            "?at_seq=999999",
            "?at_seq=-1",
            "?status=lost",
            "?kind=castle",
            "?parent=Not_A_Slug",
            "?controller=",
            "?q=",
            "?kind=city&kind=town",
        ] {
            let res = app.get(&format!("{route}{query}")).await;
            assert_problem(res, 400, "invalid_parameter").await;
        }
        // Every bad parameter is named before the format is refused.
        let res = get_accepting(&app, &format!("{route}?status=lost"), Some("text/html")).await;
        assert_problem(res, 400, "invalid_parameter").await;
        let res = app.client.post(app.url(route)).send().await.unwrap();
        assert_problem(res, 405, "method_not_allowed").await;
    }
    assert_eq!(app.ok("/v1/audit/head").await, head, "nothing was written");
}

#[tokio::test]
async fn export_writes_the_geojson_of_the_head() {
    let app = spawn_demo_app().await;
    let served: Value = app.get("/v1/locations.geojson").await.json().await.unwrap();
    let dir = app.data_dir().to_owned();
    let _tmp = app.stop().await;
    let out = sitrep_output(&["export", "--data-dir", dir.to_str().unwrap(), "--format", "geojson"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(exported, served);

    let ndjson = sitrep_output(&["export", "--data-dir", dir.to_str().unwrap(), "--format", "ndjson"]);
    let plain = sitrep_output(&["export", "--data-dir", dir.to_str().unwrap()]);
    assert!(ndjson.status.success());
    assert_eq!(ndjson.stdout, plain.stdout, "ndjson is the default");
    let bad = sitrep_output(&["export", "--data-dir", dir.to_str().unwrap(), "--format", "xml"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(bad.stdout.is_empty());
}

/// `tool` on PATH, or `None` with the reason printed; with `CI` set a missing
/// tool fails the test instead.
fn tool(name: &str) -> Option<()> {
    let found = std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is missing (Debian: apt-get install gdal-bin); CI must run the GDAL test"
    );
    eprintln!("skipped: {name} is not installed (Debian: apt-get install gdal-bin)");
    None
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        // Only loopback: no proxy, no retries that could outlast the test.
        .env("GDAL_HTTP_TIMEOUT", "30")
        .env("NO_PROXY", "127.0.0.1")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .output()
        .unwrap_or_else(|e| panic!("{cmd} runs: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn gdal_opens_the_geojson_from_the_url_and_sees_every_location_with_its_status() {
    if tool("ogrinfo").is_none() || tool("ogr2ogr").is_none() {
        return;
    }
    let app = spawn_demo_app().await;
    let list = app.ok("/v1/locations").await;
    let locations = list["locations"].as_array().unwrap();
    let url = app.url("/v1/locations.geojson");
    let (info, table) = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let info = run("ogrinfo", &["-ro", "-al", "-so", &url]);
            let table = run("ogr2ogr", &["-f", "CSV", "/vsistdout/", &url]);
            (info, table)
        })
        .await
        .unwrap()
    };
    assert!(info.contains("using driver `GeoJSON' successful"), "{info}");
    assert!(info.contains(&format!("Feature Count: {}", locations.len())), "{info}");
    for field in [
        "status: String",
        "controller: String",
        "present: String",
        "version: Integer",
    ] {
        assert!(info.contains(field), "{field} not in:\n{info}");
    }
    let mut r = csv::Reader::from_reader(table.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name} in {header:?}"))
    };
    let (id, status, controller) = (col("id"), col("status"), col("controller"));
    let seen: Vec<(String, String, String)> = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[id].to_owned(), rec[status].to_owned(), rec[controller].to_owned())
        })
        .collect();
    let expected: Vec<(String, String, String)> = locations
        .iter()
        .map(|l| {
            (
                cell(&l["id"]),
                cell(&l["control"]["status"]),
                cell(&l["control"]["controller"]),
            )
        })
        .collect();
    assert_eq!(seen, expected, "GDAL's rows against GET /v1/locations");
}
