//! Several real server processes on one PostgreSQL database (CONTRACT
//! section 14): every guarantee of one server holds across them.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;
use crate::postgres::{fresh_database, PrivateCluster};
use crate::process::{sitrep_output, ServerProcess};

/// A server process on `url`, with its own directory for local files.
fn server_on(url: &str) -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &["--store", url]);
    (server, dir)
}

/// Post every body at once, the `i`th through `servers[i % servers.len()]`;
/// the answers in the bodies' order.
async fn post_at_once(client: &reqwest::Client, servers: &[&ServerProcess], bodies: Vec<Value>) -> Vec<(u16, Value)> {
    let tasks: Vec<_> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let (client, url) = (client.clone(), servers[i % servers.len()].url("/v1/events"));
            tokio::spawn(async move {
                let res = client.post(url).json(&body).send().await.unwrap();
                let status = res.status().as_u16();
                (status, res.json().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

async fn get(client: &reqwest::Client, server: &ServerProcess, path: &str) -> (u16, Value) {
    let res = client.get(server.url(path)).send().await.expect("the server answers");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Every stored event of a server, in seq order (waiting until it has folded `head`).
async fn all_events(client: &reqwest::Client, server: &ServerProcess, head: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = get(
            client,
            server,
            &format!("/v1/events?after={after}&limit=1000&min_seq={head}"),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().expect("events").clone();
        if events.is_empty() {
            return out;
        }
        after = events.last().unwrap()["seq"].as_u64().unwrap();
        out.extend(events);
    }
}

/// (seq, hash) of every event, checked gapless from 1.
fn seqs_and_hashes(events: &[Value]) -> Vec<(u64, String)> {
    let pairs: Vec<(u64, String)> = events
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap(), e["hash"].as_str().unwrap().to_owned()))
        .collect();
    let seqs: Vec<u64> = pairs.iter().map(|p| p.0).collect();
    assert_eq!(seqs, (1..=pairs.len() as u64).collect::<Vec<_>>(), "seqs are gapless");
    pairs
}

async fn verified(client: &reqwest::Client, server: &ServerProcess) {
    let (status, report) = get(client, server, "/v1/audit/verify").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_appends_over_two_servers_take_seqs_one_to_sixty_four() {
    let Some(db) = fresh_database() else { return };
    let (a, _da) = server_on(db.url());
    let (b, _db) = server_on(db.url());
    let client = reqwest::Client::new();
    let bodies = (0..64).map(|i| actor(&format!("group-{i}"))).collect();
    let answers = post_at_once(&client, &[&a, &b], bodies).await;
    let mut receipts = BTreeMap::new();
    for (status, receipt) in answers {
        assert_eq!(status, 201, "{receipt}");
        let seq = receipt["seq"].as_u64().unwrap();
        let hash = receipt["hash"].as_str().unwrap().to_owned();
        assert!(receipts.insert(seq, hash).is_none(), "seq {seq} was given twice");
    }
    assert_eq!(
        receipts.keys().copied().collect::<Vec<_>>(),
        (1..=64).collect::<Vec<_>>()
    );
    // Both servers serve the same log, chained and verified.
    let on_a = seqs_and_hashes(&all_events(&client, &a, 64).await);
    let on_b = seqs_and_hashes(&all_events(&client, &b, 64).await);
    assert_eq!(on_a, on_b);
    assert_eq!(on_a.into_iter().collect::<BTreeMap<_, _>>(), receipts);
    verified(&client, &a).await;
    verified(&client, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_writer_wins_an_expected_version_across_servers_and_a_retry_through_the_other_gets_its_receipt() {
    let Some(db) = fresh_database() else { return };
    let (a, _da) = server_on(db.url());
    let (b, _db) = server_on(db.url());
    let client = reqwest::Client::new();
    let (status, body) = a
        .post_json(&client, &json!([actor("hts"), location("aleppo", None)]))
        .await;
    assert_eq!(status, 201, "{body}");

    // Server b has never seen aleppo at version 1 through its own appends.
    let bodies = (0..16)
        .map(|i| {
            let mut e = dev(
                "report",
                "aleppo",
                "2024-11-30T00:00:00Z",
                json!({"summary": format!("writer {i}")}),
            );
            e["expected_version"] = json!(1);
            e
        })
        .collect();
    let answers = post_at_once(&client, &[&a, &b], bodies).await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 15, "{statuses:?}");

    // An id posted through a, retried through b: the original receipt, 200.
    let id = uuid::Uuid::new_v4();
    let mut e = dev("report", "aleppo", "2024-11-30T01:00:00Z", json!({"summary": "once"}));
    e["id"] = json!(id);
    let (status, first) = a.post_json(&client, &e).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = b.post_json(&client, &e).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(first, again);
    // The same id with other content through b is a conflict, as on one server.
    e["data"]["summary"] = json!("twice");
    let (status, body) = b.post_json(&client, &e).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "id_conflict");
}

/// The ids of the next `n` events of an open live feed.
async fn feed_ids(res: &mut reqwest::Response, buf: &mut String, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut ids = Vec::new();
    while ids.len() < n {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            for line in block.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    let e: Value = serde_json::from_str(data.trim_start()).unwrap();
                    ids.push(e["id"].as_str().unwrap().to_owned());
                }
            }
        }
        if ids.len() >= n {
            break;
        }
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .expect("the feed delivers in time")
            .unwrap()
            .expect("the feed stays open");
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_through_one_server_reaches_the_other_servers_feed_once_and_its_min_seq_reads() {
    let Some(db) = fresh_database() else { return };
    let (a, _da) = server_on(db.url());
    let (b, _db) = server_on(db.url());
    let client = reqwest::Client::new();
    let mut feed = client.get(b.url("/v1/events/stream")).send().await.unwrap();
    assert_eq!(feed.status().as_u16(), 200);
    let mut buf = String::new();

    let mut posted = Vec::new();
    for i in 0..5 {
        let (status, receipt) = a.post_json(&client, &actor(&format!("group-{i}"))).await;
        assert_eq!(status, 201, "{receipt}");
        // Read your own write through the other server.
        let seq = receipt["seq"].as_u64().unwrap();
        let (status, event) = get(
            &client,
            &b,
            &format!("/v1/events/{}?min_seq={seq}", receipt["id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(status, 200, "{event}");
        assert_eq!(event["hash"], receipt["hash"]);
        posted.push(receipt["id"].as_str().unwrap().to_owned());
    }
    let ids = feed_ids(&mut feed, &mut buf, 5).await;
    assert_eq!(ids, posted, "b's feed carries a's appends once each, in order");
    // Nothing more arrives: one more append shows what comes next.
    let (_, last) = a.post_json(&client, &actor("group-last")).await;
    let ids = feed_ids(&mut feed, &mut buf, 1).await;
    assert_eq!(ids, vec![last["id"].as_str().unwrap().to_owned()]);

    // A min_seq no server has yet waits, then answers 503.
    let started = Instant::now();
    let res = client.get(b.url("/v1/locations?min_seq=1000")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 503);
    assert!(started.elapsed() >= Duration::from_secs(4));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "unavailable");
    let (status, body) = get(&client, &b, "/v1/locations?min_seq=x").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_parameter");
}

/// An acknowledged append: seq, hash, id.
type Ack = (u64, String, String);

/// Appends from `writers` tasks, alternating servers, until `stop`; each
/// acknowledged receipt is kept.
fn load(
    urls: Vec<String>,
    writers: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<(Vec<Ack>, usize)> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        let mut tasks = Vec::new();
        for w in 0..writers {
            let (client, urls, stop) = (client.clone(), urls.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut refused = 0;
                let mut n = 0usize;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    n += 1;
                    let url = &urls[(w + n) % urls.len()];
                    let body = actor(&format!("w{w}-n{n}"));
                    match client.post(url).json(&body).send().await {
                        Ok(res) if res.status().as_u16() == 201 => {
                            let r: Value = res.json().await.unwrap();
                            acked.push((
                                r["seq"].as_u64().unwrap(),
                                r["hash"].as_str().unwrap().to_owned(),
                                r["id"].as_str().unwrap().to_owned(),
                            ));
                        }
                        _ => {
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                (acked, refused)
            }));
        }
        let mut all = Vec::new();
        let mut refused = 0;
        for t in tasks {
            let (a, r) = t.await.unwrap();
            all.extend(a);
            refused += r;
        }
        (all, refused)
    })
}

/// Every acknowledged append is in the log with its seq and hash, the log is
/// gapless and verifies on every server, and the servers agree.
async fn converged(servers: &[&ServerProcess], acked: &[Ack]) -> u64 {
    let client = reqwest::Client::new();
    let head = acked.iter().map(|a| a.0).max().unwrap_or(0);
    let mut logs = Vec::new();
    for s in servers {
        let events = all_events(&client, s, head).await;
        let pairs = seqs_and_hashes(&events);
        let by_seq: BTreeMap<u64, String> = pairs.iter().cloned().collect();
        for (seq, hash, _) in acked {
            assert_eq!(
                by_seq.get(seq),
                Some(hash),
                "acknowledged seq {seq} is in the log with its hash"
            );
        }
        let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), events.len(), "no event twice");
        verified(&client, s).await;
        logs.push(pairs);
    }
    let n = logs[0].len() as u64;
    for l in &logs[1..] {
        assert_eq!(l, &logs[0], "the servers hold the same log");
    }
    // The same answers at the same at_seq.
    let mut answers = Vec::new();
    for s in servers {
        let (status, body) = get(&client, s, &format!("/v1/actors?at_seq={n}&min_seq={n}")).await;
        assert_eq!(status, 200, "{body}");
        answers.push(body);
    }
    for a in &answers[1..] {
        assert_eq!(a, &answers[0]);
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_one_server_under_load_loses_nothing_acknowledged() {
    let Some(db) = fresh_database() else { return };
    let (mut a, dir_a) = server_on(db.url());
    let (b, _db) = server_on(db.url());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let running = load(vec![a.url("/v1/events"), b.url("/v1/events")], 16, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.signal("-KILL");
    a.wait(Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acked, _) = running.await.unwrap();
    assert!(acked.len() > 50, "the load ran ({} acknowledged)", acked.len());
    // The killed server starts again on the same database by itself.
    let a = ServerProcess::start(dir_a.path(), &["--store", db.url()]);
    let n = converged(&[&a, &b], &acked).await;
    assert!(n >= acked.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_stopped_under_load_is_503_then_both_servers_recover_by_themselves() {
    let Some(mut cluster) = PrivateCluster::start() else {
        return;
    };
    let url = cluster.url();
    let (a, _da) = server_on(&url);
    let (b, _db) = server_on(&url);
    let client = reqwest::Client::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let running = load(vec![a.url("/v1/events"), b.url("/v1/events")], 16, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.stop();

    // Down: appends are 503 and neither server is ready.
    let (status, body) = a.post_json(&client, &actor("while-down")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "unavailable");
    for s in [&a, &b] {
        let (status, body) = get(&client, s, "/readyz").await;
        assert_eq!(status, 503, "{body}");
    }
    cluster.start_again();

    // Back: both take appends again without a restart.
    let deadline = Instant::now() + Duration::from_secs(30);
    for s in [&a, &b] {
        loop {
            let (status, _) = get(&client, s, "/readyz").await;
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "the server did not recover");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acked, refused) = running.await.unwrap();
    assert!(refused > 0, "the load saw the database down");
    let (status, body) = b.post_json(&client, &actor("after")).await;
    assert_eq!(status, 201, "{body}");
    let mut all = acked;
    all.push((
        body["seq"].as_u64().unwrap(),
        body["hash"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().to_owned(),
    ));
    converged(&[&a, &b], &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_move_a_log_between_sled_and_postgresql_exactly() {
    let Some(db) = fresh_database() else { return };
    let Some(back) = fresh_database() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let sled = tmp.path().join("sled");
    let sled = sled.to_str().unwrap();
    let out = sitrep_output(&["demo", "--data-dir", sled]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let from_sled = sitrep_output(&["export", "--data-dir", sled]);
    assert!(from_sled.status.success());

    let file = tmp.path().join("export.ndjson");
    std::fs::write(&file, &from_sled.stdout).unwrap();
    let file = file.to_str().unwrap();
    let out = sitrep_output(&["import", "--store", db.url(), file]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let from_pg = sitrep_output(&["export", "--store", db.url()]);
    assert!(from_pg.status.success(), "{}", String::from_utf8_lossy(&from_pg.stderr));
    assert_eq!(
        from_pg.stdout, from_sled.stdout,
        "PostgreSQL exports the log sled exported, byte for byte"
    );

    // And back: into another database, then into sled again.
    let file2 = tmp.path().join("again.ndjson");
    std::fs::write(&file2, &from_pg.stdout).unwrap();
    let out = sitrep_output(&["import", "--store", back.url(), file2.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sled2 = tmp.path().join("sled2");
    let out = sitrep_output(&["import", "--data-dir", sled2.to_str().unwrap(), file2.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = sitrep_output(&["export", "--data-dir", sled2.to_str().unwrap()]);
    assert_eq!(again.stdout, from_sled.stdout);
    let out = sitrep_output(&["verify", "--store", back.url()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Importing into a database that holds a log is refused.
    let out = sitrep_output(&["import", "--store", db.url(), file]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
}
