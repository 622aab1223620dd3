//! The log in other formats, as their readers see it: `GET /v1/events.csv`
//! read back with a CSV reader, CloudEvents batches and the live feed in
//! CloudEvents read by the CloudEvents Python SDK, and `sitrep export
//! --format`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::process::sitrep_output;
use crate::stream::Sse;

const BATCH: &str = "application/cloudevents-batch+json";

/// The CSV columns the contract documents, in order.
const COLUMNS: &[&str] = &[
    "seq",
    "id",
    "type",
    "location",
    "actor",
    "occurred_at",
    "occurred_precision",
    "place_precision",
    "recorded_at",
    "recorded_by",
    "source_name",
    "source_kind",
    "source_url",
    "source_claimant",
    "source_reliability",
    "source_credibility",
    "version",
    "hash",
    "prev_hash",
    "data",
    "named_actors",
    "killed",
    "wounded",
    "summary",
    "retracts",
];

/// A cell as a spreadsheet must get it: formula starts behind a `'`.
fn neutral(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// The row the CSV must hold for a stored event as `GET /v1/events` gives it.
fn expected_row(e: &Value) -> Vec<String> {
    let s = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let d = &e["data"];
    let mut named = Vec::new();
    for m in [
        "actor",
        "actors",
        "defender",
        "attacker",
        "provider",
        "supported",
        "member_of",
    ] {
        match &d[m] {
            Value::String(a) => named.push(a.clone()),
            Value::Array(items) => named.extend(items.iter().filter_map(|a| a.as_str().map(str::to_owned))),
            _ => {}
        }
    }
    let src = &e["source"];
    [
        s(&e["seq"]),
        s(&e["id"]),
        s(&e["type"]),
        s(&e["location"]),
        s(&e["actor"]),
        s(&e["occurred_at"]),
        s(&e["occurred_precision"]),
        s(&e["place_precision"]),
        s(&e["recorded_at"]),
        s(&e["recorded_by"]),
        s(&src["name"]),
        s(&src["kind"]),
        s(&src["url"]),
        s(&src["claimant"]),
        s(&src["reliability"]),
        s(&src["credibility"]),
        s(&e["version"]),
        s(&e["hash"]),
        s(&e["prev_hash"]),
        String::new(), // data: compared as JSON
        named.join(","),
        s(&d["killed"]),
        s(&d["wounded"]),
        s(&d["summary"]),
        s(&d["event_id"]),
    ]
    .into_iter()
    .map(neutral)
    .collect()
}

/// Every event `GET /v1/events{query}` pages through, following `next_after`
/// from the query's own `after`.
async fn json_events(app: &TestApp, query: &str) -> Vec<Value> {
    let mut after = 0u64;
    let mut rest = Vec::new();
    for pair in query.trim_start_matches('?').split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("after=") {
            Some(a) => after = a.parse().unwrap(),
            None => rest.push(pair),
        }
    }
    let rest: String = rest.iter().map(|p| format!("&{p}")).collect();
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let page = app.ok(&format!("/v1/events?after={after}&limit=1000{rest}")).await;
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_u64() {
            Some(n) => after = n,
            None => return out,
        }
    }
    panic!("GET /v1/events{query} did not end");
}

/// GET a CSV export; (body as sent, the rows read back by a CSV reader).
async fn csv_rows(app: &TestApp, query: &str) -> (String, Vec<Vec<String>>) {
    let res = app.get(&format!("/v1/events.csv{query}")).await;
    assert_eq!(res.status(), 200, "GET /v1/events.csv{query}");
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(ct, "text/csv; charset=utf-8; header=present");
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let body = res.text().await.unwrap();
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(body.as_bytes());
    let headers: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(headers, COLUMNS);
    let rows = reader
        .records()
        .map(|r| r.expect("an RFC 4180 row").iter().map(str::to_owned).collect())
        .collect();
    (body, rows)
}

/// Assert that `rows` are the CSV form of `events`, cell by cell.
fn assert_rows_are(rows: &[Vec<String>], events: &[Value]) {
    assert_eq!(rows.len(), events.len(), "rows vs events");
    let data_col = COLUMNS.iter().position(|c| *c == "data").unwrap();
    for (row, e) in rows.iter().zip(events) {
        let mut want = expected_row(e);
        let data: Value = serde_json::from_str(&row[data_col]).expect("data is JSON");
        assert_eq!(data, e["data"], "data of seq {}", e["seq"]);
        want[data_col] = row[data_col].clone();
        assert_eq!(*row, want, "seq {}", e["seq"]);
    }
}

/// Events with cells a spreadsheet would run or a naive CSV writer would
/// break: formulas, quotes, commas, line breaks, non-ASCII.
async fn post_awkward(app: &TestApp) {
    let mut casualties = dev(
        "casualties_reported",
        "aleppo",
        "2024-12-01T05:00:00Z",
        json!({"actor": "hts", "killed": 12, "wounded": 30, "approximate": true}),
    );
    casualties["source"] = json!({"name": "=Monitor, \"SOHR\"", "kind": "monitor",
        "url": "https://example.org/a?b=1,2", "reliability": "B", "credibility": 2});
    let summaries = [
        "=cmd|' /C calc'!A0",
        "+1 and -1, \"quoted\"\r\nnext line",
        "@SUM(A1:A9)",
        "-12",
        "\tTab first; حلب",
    ];
    let mut batch: Vec<Value> = summaries
        .iter()
        .enumerate()
        .map(|(i, s)| {
            dev(
                "report",
                "aleppo",
                &format!("2024-12-01T0{i}:00:00Z"),
                json!({"summary": s}),
            )
        })
        .collect();
    batch.push(casualties);
    let (status, body) = app.post_json(&Value::Array(batch)).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn the_csv_export_read_back_with_a_csv_reader_equals_the_json_log() {
    let app = spawn_demo_app().await;
    post_awkward(&app).await;
    let (body, rows) = csv_rows(&app, "").await;
    // RFC 4180: CRLF after every record, the last included.
    assert!(body.ends_with("\r\n"));
    assert!(body.starts_with("\"seq\",\"id\","), "{}", &body[..80]);
    // A formula cell is quoted and behind a `'`, as it is written on the wire.
    assert!(body.contains("\"'=cmd|' /C calc'!A0\""), "the formula cell as sent");
    assert!(
        body.contains("\"'=Monitor, \"\"SOHR\"\"\""),
        "quotes doubled inside a quoted cell"
    );
    let events = json_events(&app, "").await;
    assert!(events.len() > 30);
    assert_rows_are(&rows, &events);
    // The flattened data members of the casualty report.
    let last = rows.last().unwrap();
    let col = |name: &str| COLUMNS.iter().position(|c| *c == name).unwrap();
    assert_eq!(
        (
            &*last[col("killed")],
            &*last[col("wounded")],
            &*last[col("named_actors")]
        ),
        ("12", "30", "hts")
    );
    assert_eq!(last[col("source_reliability")], "B");
    assert_eq!(last[col("source_name")], "'=Monitor, \"SOHR\"");
    app.stop().await;
}

#[tokio::test]
async fn the_csv_export_takes_every_filter_of_the_json_log() {
    let app = spawn_demo_app().await;
    post_awkward(&app).await;
    for query in [
        "?type=report",
        "?location=aleppo",
        "?actor=hts",
        "?actor=russia&type=air_support_provided",
        "?location=aleppo&actor=hts",
        "?location=aleppo&actor=hts&type=casualties_reported",
        "?after=20",
        "?after=20&type=report",
        "?location=nowhere",
        "?after=100000",
    ] {
        let (_, rows) = csv_rows(&app, query).await;
        let events = json_events(&app, query).await;
        assert_rows_are(&rows, &events);
        if query == "?location=nowhere" || query == "?after=100000" {
            assert!(rows.is_empty(), "{query}: a header row only");
        } else {
            assert!(!rows.is_empty(), "{query} matches something");
        }
    }
    // `limit` cuts the export; without it, everything after `after`.
    for (query, take) in [
        ("?limit=5", 5),
        ("?after=3&limit=7", 7),
        ("?location=aleppo&limit=2", 2),
    ] {
        let (_, rows) = csv_rows(&app, query).await;
        let without: String = query
            .split('&')
            .filter(|p| !p.contains("limit"))
            .collect::<Vec<_>>()
            .join("&");
        let without = if without.starts_with('?') {
            without
        } else {
            format!("?{without}")
        };
        let events = json_events(&app, without.trim_end_matches('?')).await;
        assert_rows_are(&rows, &events[..take]);
    }
    app.stop().await;
}

#[tokio::test]
async fn the_csv_export_streams_page_after_page_to_the_head_it_started_at() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    // More than a page of the export (1000 events), and more than a filtered
    // scan window (10 000 candidates): a location with 10 500 reports, of which
    // only the last names hts. A filtered page then finds nothing for a while,
    // and the export must read on rather than end.
    let mut k = 0;
    while k < 10_500 {
        let batch: Vec<Value> = (k..k + 1000)
            .map(|i| {
                dev(
                    "report",
                    "aleppo",
                    "2024-12-01T00:00:00Z",
                    json!({"summary": format!("r{i}")}),
                )
            })
            .collect();
        let (status, body) = app.post_json(&Value::Array(batch)).await;
        assert_eq!(status, 201, "{body}");
        k += 1000;
    }
    let (status, _) = app
        .post_json(&dev(
            "forces_entered",
            "aleppo",
            "2024-12-02T00:00:00Z",
            json!({"actor": "hts"}),
        ))
        .await;
    assert_eq!(status, 201);
    let head = app.ok("/v1/audit/head").await["seq"].as_u64().unwrap();

    let (_, all) = csv_rows(&app, "").await;
    let got: Vec<u64> = all.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(got, (1..=head).collect::<Vec<_>>(), "every event once, in order");

    let (_, sparse) = csv_rows(&app, "?location=aleppo&actor=hts").await;
    assert_eq!(sparse.len(), 1, "the one match past the scan windows");
    assert_eq!(sparse[0][2], "forces_entered");
    assert_eq!(sparse[0][0], head.to_string());

    // An export ends at the head it started at, while the log grows.
    let res = app.get("/v1/events.csv").await;
    assert_eq!(res.status(), 200);
    let (status, _) = app
        .post_json(&dev(
            "report",
            "aleppo",
            "2024-12-03T00:00:00Z",
            json!({"summary": "later"}),
        ))
        .await;
    assert_eq!(status, 201);
    let body = res.text().await.unwrap();
    let rows = csv::Reader::from_reader(body.as_bytes()).records().count() as u64;
    assert_eq!(rows, head, "the export stops at the head of its request");
    app.stop().await;
}

#[tokio::test]
async fn bad_csv_parameters_are_refused_as_on_the_json_log() {
    let app = spawn_demo_app().await;
    for query in [
        "?limit=0",
        "?limit=x",
        "?after=-1",
        "?type=bogus",
        "?location=Not%20a%20slug",
        "?actor=",
        "?format=csv",
        "?after=1&after=2",
    ] {
        let body = assert_problem(
            app.get(&format!("/v1/events.csv{query}")).await,
            400,
            "invalid_parameter",
        )
        .await;
        assert!(
            body["detail"].as_str().unwrap().contains("parameter"),
            "{query}: {body}"
        );
    }
    // Other methods are not allowed.
    let res = app.client.post(app.url("/v1/events.csv")).send().await.unwrap();
    assert_problem(res, 405, "method_not_allowed").await;
    app.stop().await;
}

async fn get_batch(app: &TestApp, path: &str, accept: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("accept", accept)
        .send()
        .await
        .unwrap()
}

/// Check one CloudEvent against the stored event it carries.
fn assert_cloudevent(ce: &Value, stored: &Value, origin: &str) {
    let subject = match (stored["location"].as_str(), stored["actor"].as_str()) {
        (Some(l), _) => format!("location/{l}"),
        (None, Some(a)) => format!("actor/{a}"),
        _ => panic!("an event without a stream: {stored}"),
    };
    let want = json!({
        "specversion": "1.0",
        "id": stored["id"],
        "source": origin,
        "type": format!("org.sitrep.{}", stored["type"].as_str().unwrap()),
        "subject": subject,
        "time": stored["recorded_at"],
        "sequence": format!("{:020}", stored["seq"].as_u64().unwrap()),
        "datacontenttype": "application/json",
        "data": stored,
    });
    assert_eq!(*ce, want);
}

#[tokio::test]
async fn accept_cloudevents_batch_answers_the_page_as_cloudevents_with_a_link_to_the_next() {
    let app = spawn_demo_app().await;
    for query in ["", "?location=aleppo", "?actor=hts&type=clashes_reported", "?after=10"] {
        let want = json_events(&app, query).await;
        let mut got = Vec::new();
        let sep = if query.is_empty() { "?" } else { "&" };
        let mut next = Some(format!("/v1/events{query}{sep}limit=4"));
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            assert!(pages < 100, "paging ends");
            let res = get_batch(&app, &path, BATCH).await;
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["content-type"], BATCH);
            next = res.headers().get("link").map(|l| {
                let l = l.to_str().unwrap();
                assert!(l.ends_with(">; rel=\"next\""), "{l}");
                l.trim_start_matches('<').split('>').next().unwrap().to_owned()
            });
            let batch: Vec<Value> = res.json().await.unwrap();
            assert!(batch.len() <= 4);
            got.extend(batch);
        }
        assert_eq!(got.len(), want.len(), "{query}");
        for (ce, stored) in got.iter().zip(&want) {
            assert_cloudevent(ce, stored, "/sitrep");
        }
    }
    // The last page has no Link; the same page as JSON has next_after null.
    let res = get_batch(&app, "/v1/events?after=30", BATCH).await;
    assert!(res.headers().get("link").is_none());
    app.stop().await;
}

#[tokio::test]
async fn accept_chooses_between_json_and_a_cloudevents_batch() {
    let app = spawn_demo_app().await;
    for (accept, cloudevents) in [
        (BATCH, true),
        ("application/json", false),
        ("*/*", false),
        ("application/*", false),
        ("application/json, application/cloudevents-batch+json", false),
        ("application/cloudevents-batch+json, application/json", true),
        ("application/json;q=0.5, application/cloudevents-batch+json", true),
        ("application/cloudevents-batch+json;q=0.2, application/json", false),
        ("application/cloudevents-batch+json;q=0.9, */*;q=0.1", true),
    ] {
        let res = get_batch(&app, "/v1/events?limit=2", accept).await;
        assert_eq!(res.status(), 200, "{accept}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        let body: Value = res.json().await.unwrap();
        if cloudevents {
            assert_eq!(ct, BATCH, "{accept}");
            assert_eq!(body[0]["specversion"], "1.0", "{accept}");
        } else {
            assert_eq!(ct, "application/json", "{accept}");
            assert!(body["events"].is_array(), "{accept}");
        }
    }
    // An Accept that refuses the batch and names nothing else allows no format.
    let res = get_batch(&app, "/v1/events?limit=2", "application/cloudevents-batch+json;q=0").await;
    assert_problem(res, 406, "not_acceptable").await;
    // Bad parameters are refused whatever the format asked for.
    let res = get_batch(&app, "/v1/events?limit=0", BATCH).await;
    assert_problem(res, 400, "invalid_parameter").await;
    app.stop().await;
}

#[tokio::test]
async fn the_live_feed_carries_cloudevents_when_asked() {
    let app = spawn_demo_app().await;
    let stored = app.ok("/v1/events?after=30&limit=2").await["events"].clone();
    let mut sse = Sse::open(&app, "?after=30&format=cloudevents", None).await;
    let (id, ce) = sse.next(Duration::from_secs(10)).await;
    assert_eq!(id, 31);
    assert_cloudevent(&ce, &stored[0], "/sitrep");
    let (id, ce) = sse.next(Duration::from_secs(10)).await;
    assert_eq!(id, 32);
    assert_cloudevent(&ce, &stored[1], "/sitrep");
    // Live, past the catch-up, and with a filter.
    let mut filtered = Sse::open(&app, "?format=cloudevents&type=report&after=32", None).await;
    let (_, r) = app
        .post_json(&dev(
            "report",
            "aleppo",
            "2024-12-01T00:00:00Z",
            json!({"summary": "live"}),
        ))
        .await;
    let live = app.ok(&format!("/v1/events/{}", r["id"].as_str().unwrap())).await;
    for feed in [&mut sse, &mut filtered] {
        let (id, ce) = feed.next(Duration::from_secs(10)).await;
        assert_eq!(id, r["seq"].as_u64().unwrap());
        assert_cloudevent(&ce, &live, "/sitrep");
    }
    // The default, and its explicit name, stay the stored event.
    let mut plain = Sse::open(&app, "?after=30&format=stored", None).await;
    assert_eq!(plain.next(Duration::from_secs(10)).await.1, stored[0]);
    let res = app.get("/v1/events/stream?format=xml").await;
    assert_problem(res, 400, "invalid_parameter").await;
    app.stop().await;
}

#[tokio::test]
async fn the_origin_is_the_source_of_every_cloudevent() {
    let tmp = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_with(tmp, |s| {
        s.demo = true;
        s.origin = "https://news.example/sitrep".into();
    })
    .await;
    let res = get_batch(&app, "/v1/events?limit=3", BATCH).await;
    let batch: Vec<Value> = res.json().await.unwrap();
    let stored = app.ok("/v1/events?limit=3").await["events"].clone();
    for (ce, e) in batch.iter().zip(stored.as_array().unwrap()) {
        assert_cloudevent(ce, e, "https://news.example/sitrep");
    }
    app.stop().await;
}

/// Run the CloudEvents Python SDK on `text` (`mode`: batch or lines); what it
/// read, one object per event, or `Err(stderr)` when it refused the input.
/// `None` when Python or the SDK is missing and `CI` is not set.
fn sdk_read(mode: &str, text: &str) -> Option<Result<Vec<Value>, String>> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.json");
    std::fs::write(&file, text).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/cloudevents_sdk.py");
    let out = std::process::Command::new("python3")
        .args([script, mode, file.to_str().unwrap()])
        .output();
    let missing = |why: String| {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: the CloudEvents SDK test needs python3 and `pip install cloudevents`: {why}"
        );
        eprintln!("skipped: the CloudEvents SDK test needs python3 and `pip install cloudevents`: {why}");
        None
    };
    let out = match out {
        Ok(out) => out,
        Err(e) => return missing(format!("python3: {e}")),
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code() == Some(3) {
        return missing(stderr);
    }
    if !out.status.success() {
        return Some(Err(stderr));
    }
    Some(Ok(String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()))
}

/// What the SDK read equals the event the server sent.
fn assert_sdk_read(read: &[Value], sent: &[Value]) {
    assert_eq!(read.len(), sent.len());
    for (r, s) in read.iter().zip(sent) {
        for attr in [
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "sequence",
            "datacontenttype",
            "data",
        ] {
            assert_eq!(r[attr], s[attr], "{attr} as the SDK read it");
        }
        let t = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
        assert_eq!(t(&r["time"]), t(&s["time"]));
    }
}

#[tokio::test]
async fn the_cloudevents_python_sdk_reads_the_batch_and_the_feed() {
    let app = spawn_demo_app().await;
    let text = get_batch(&app, "/v1/events?limit=1000", BATCH)
        .await
        .text()
        .await
        .unwrap();
    let sent: Vec<Value> = serde_json::from_str(&text).unwrap();
    let Some(read) = sdk_read("batch", &text) else {
        app.stop().await;
        return;
    };
    assert_sdk_read(&read.expect("the SDK reads the batch"), &sent);

    // The feed's `data:` lines, one structured event each.
    let mut sse = Sse::open(&app, "?format=cloudevents&after=25", None).await;
    let mut lines = Vec::new();
    let mut events = Vec::new();
    for _ in 0..7 {
        let (_, ce) = sse.next(Duration::from_secs(10)).await;
        lines.push(ce.to_string());
        events.push(ce);
    }
    let read = sdk_read("lines", &lines.join("\n")).unwrap();
    assert_sdk_read(&read.expect("the SDK reads the feed"), &events);

    // The controls: the SDK refuses the same batch with one event of another
    // `specversion`, or without its `source`, so the checks above are ones it
    // can fail. (It fills in a missing `specversion`, `id` or `time` itself;
    // `assert_sdk_read` catches those, as what it read would differ from what
    // was sent.)
    for (attr, broken_value) in [("specversion", Some(json!("2.0"))), ("source", None)] {
        let mut broken = sent.clone();
        let event = broken[3].as_object_mut().unwrap();
        match broken_value {
            Some(v) => event.insert(attr.into(), v),
            None => event.remove(attr),
        };
        let refused = sdk_read("batch", &Value::Array(broken).to_string()).unwrap();
        let stderr = refused.expect_err("the SDK refuses the broken event");
        assert!(stderr.contains(attr), "{stderr}");
    }
    app.stop().await;
}

#[tokio::test]
async fn sitrep_export_writes_ndjson_csv_and_cloudevents() {
    let app = spawn_demo_app().await;
    post_awkward(&app).await;
    let csv_body = app.get("/v1/events.csv").await.text().await.unwrap();
    let batch: Vec<Value> = get_batch(&app, "/v1/events?limit=1000", BATCH)
        .await
        .json()
        .await
        .unwrap();
    let events = json_events(&app, "").await;
    let dir = app.data_dir().to_owned();
    let dir = dir.to_str().unwrap().to_owned();
    let _tmp = app.stop().await;

    let run = |args: &[&str]| {
        let out = sitrep_output(&[&["export", "--data-dir", &dir], args].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let lines = |text: &str| -> Vec<Value> { text.lines().map(|l| serde_json::from_str(l).unwrap()).collect() };
    assert_eq!(lines(&run(&[])), events, "NDJSON stays the default");
    assert_eq!(lines(&run(&["--format", "ndjson"])), events);
    assert_eq!(
        run(&["--format", "csv"]),
        csv_body,
        "the CSV of GET /v1/events.csv, byte for byte"
    );
    assert_eq!(
        lines(&run(&["--format", "cloudevents"])),
        batch,
        "one CloudEvent a line, as the batch"
    );
    let origin = lines(&run(&["--format", "cloudevents", "--origin", "urn:example:log"]));
    assert!(origin.iter().all(|ce| ce["source"] == "urn:example:log"));
    if let Some(read) = sdk_read("lines", &run(&["--format", "cloudevents"])) {
        assert_sdk_read(&read.expect("the SDK reads the export"), &batch);
    }

    for bad in [
        &["--format", "xml"][..],
        &["--format", "cloudevents", "--origin", "not a uri"],
    ] {
        let out = sitrep_output(&[&["export", "--data-dir", &dir], bad].concat());
        assert!(!out.status.success(), "{bad:?}");
    }
}
