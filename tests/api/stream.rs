//! The live feed as a client sees it: catch-up, live, filters, resume, many
//! subscribers, and slow consumers that do not slow appends.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// A minimal server-sent-events reader.
pub struct Sse {
    res: reqwest::Response,
    buf: String,
}

impl Sse {
    pub async fn open(app: &TestApp, query: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = app.client.get(app.url(&format!("/v1/events/stream{query}")));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Sse {
            res,
            buf: String::new(),
        }
    }

    /// The next event's (id, data), skipping comments; panics after `wait`.
    pub async fn next(&mut self, wait: Duration) -> (u64, Value) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse::<u64>().unwrap());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(id) = id {
                    return (id, serde_json::from_str(&data).unwrap());
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.res.chunk())
                .await
                .expect("an event in time")
                .unwrap()
                .expect("the stream is open");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    pub async fn ids(&mut self, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.next(Duration::from_secs(10)).await.0);
        }
        out
    }
}

#[tokio::test]
async fn catch_up_then_live_with_seq_ids_and_stored_events() {
    let app = spawn_demo_app().await;
    let mut sse = Sse::open(&app, "?after=30", None).await;
    let (id, e) = sse.next(Duration::from_secs(10)).await;
    assert_eq!(id, 31);
    assert_eq!(e, app.ok("/v1/events?after=30&limit=1").await["events"][0]);
    assert_eq!(sse.ids(1).await, vec![32]);
    let (_, r) = app
        .post_json(&dev(
            "report",
            "aleppo",
            "2024-12-01T00:00:00Z",
            json!({"summary": "live"}),
        ))
        .await;
    let (id, e) = sse.next(Duration::from_secs(10)).await;
    assert_eq!(id, 33);
    assert_eq!(e["hash"], r["hash"]);
}

#[tokio::test]
async fn last_event_id_wins_over_after_and_filters_apply() {
    let app = spawn_demo_app().await;
    let mut sse = Sse::open(&app, "?after=1", Some("31")).await;
    assert_eq!(sse.ids(1).await, vec![32]);
    let mut by_location = Sse::open(&app, "?location=aleppo", None).await;
    let expected: Vec<u64> = app.ok("/v1/events?location=aleppo").await["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(by_location.ids(expected.len()).await, expected);
    let mut by_actor = Sse::open(&app, "?actor=russia&type=air_support_provided", None).await;
    let (_, e) = by_actor.next(Duration::from_secs(10)).await;
    assert_eq!(e["data"]["provider"], "russia");
    // A live event that does not match is skipped; the next match arrives.
    app.post_json(&dev(
        "report",
        "aleppo",
        "2024-12-01T00:00:00Z",
        json!({"summary": "not russia"}),
    ))
    .await;
    let (_, r) = app
        .post_json(&dev(
            "air_support_provided",
            "aleppo",
            "2024-12-01T00:00:00Z",
            json!({"provider": "russia", "supported": "saa"}),
        ))
        .await;
    let (id, _) = by_actor.next(Duration::from_secs(10)).await;
    assert_eq!(id, r["seq"].as_u64().unwrap());
    assert_problem(app.get("/v1/events/stream?after=x").await, 400, "invalid_parameter").await;
    // Nothing follows the largest seq: no wrap-around replay, no panic.
    let mut last = Sse::open(&app, "?after=18446744073709551615", None).await;
    let (_, r) = app
        .post_json(&dev(
            "report",
            "aleppo",
            "2024-12-02T00:00:00Z",
            json!({"summary": "after max"}),
        ))
        .await;
    assert!(r["seq"].is_u64());
    assert!(
        tokio::time::timeout(Duration::from_millis(500), last.next(Duration::from_secs(1)))
            .await
            .is_err()
    );
    assert_eq!(app.ok("/healthz").await["status"], "ok");
    assert_problem(app.get("/v1/events/stream?colour=red").await, 400, "invalid_parameter").await;
}

#[tokio::test]
async fn many_subscribers_each_get_every_event_in_order() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    let mut subs = Vec::new();
    for _ in 0..50 {
        subs.push(Sse::open(&app, "", None).await);
    }
    let mut writers = Vec::new();
    for w in 0..4 {
        let client = app.client.clone();
        let url = app.url("/v1/events");
        writers.push(tokio::spawn(async move {
            for i in 0..25 {
                let e = dev(
                    "report",
                    "aleppo",
                    "2024-12-01T00:00:00Z",
                    json!({"summary": format!("{w}/{i}")}),
                );
                assert_eq!(client.post(&url).json(&e).send().await.unwrap().status().as_u16(), 201);
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let all: Vec<u64> = (1..=105).collect();
    let mut readers = Vec::new();
    for mut s in subs {
        readers.push(tokio::spawn(async move { s.ids(105).await }));
    }
    for r in readers {
        assert_eq!(r.await.unwrap(), all);
    }
}

#[tokio::test]
async fn a_subscriber_that_never_reads_does_not_slow_appends_and_can_resume() {
    let app = spawn_app().await;
    seed_basics(&app).await;
    // Opened and never read: its socket and buffers fill up.
    let stalled = Sse::open(&app, "", None).await;
    let big = "x".repeat(8 * 1024);
    for i in 0..600 {
        let e = dev(
            "report",
            "aleppo",
            "2024-12-01T00:00:00Z",
            json!({"summary": format!("{i} {big}")}),
        );
        let (status, _) = app.post_json(&e).await;
        assert_eq!(status, 201);
    }
    drop(stalled);
    // A client resuming from where it was gets the rest, in order.
    let mut resumed = Sse::open(&app, "", Some("400")).await;
    assert_eq!(resumed.ids(205).await, (401..=605).collect::<Vec<u64>>());
}

/// A live feed of a server process, opened with `query` (and a bearer token).
async fn open_feed(server: &crate::process::ServerProcess, query: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(server.url(&format!("/v1/events/stream{query}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// How long the server may take to notice clients that left.
const NOTICE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn streams_closed_on_a_quiet_log_give_their_slots_back_without_an_append() {
    use crate::process::*;
    let tmp = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&tmp.path().join("data"), &["--demo", "--max-subscribers", "4"]);
    let gauge = "sitrep_sse_subscribers";
    // Three rounds of a full feed opened and dropped: more streams than slots.
    for round in 0..3 {
        let mut open = Vec::new();
        for _ in 0..4 {
            let res = open_feed(&server, "", None).await;
            assert_eq!(res.status().as_u16(), 200, "round {round}");
            open.push(res);
        }
        assert_problem(open_feed(&server, "", None).await, 503, "unavailable").await;
        assert_eq!(server.metric(gauge).await, 4.0);
        drop(open);
        assert_eq!(
            server.metric_until(gauge, NOTICE, |v| v == 0.0).await,
            0.0,
            "round {round}: the slots of clients that left come back on a quiet log"
        );
    }
    assert_eq!(server.json("/healthz").await["seq"], 32, "nothing was appended");
    let res = open_feed(&server, "?after=31", None).await;
    assert_eq!(res.status().as_u16(), 200);
}

#[tokio::test]
async fn a_filtered_catch_up_stops_when_its_clients_leave_and_an_unknown_location_costs_nothing() {
    use crate::process::*;
    let events = 60_000;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    large_log(&data, events).await;
    let server = ServerProcess::start(&data, &[]);
    let gauge = "sitrep_sse_subscribers";
    let scanned = "sitrep_sse_catch_up_events_total";
    // Every event is at aleppo and none is air support: these catch-ups read
    // the whole log and send nothing.
    let mut feeds = Vec::new();
    for _ in 0..8 {
        let res = open_feed(&server, "?location=aleppo&type=air_support_provided", None).await;
        assert_eq!(res.status().as_u16(), 200);
        feeds.push(res);
    }
    drop(feeds);
    assert_eq!(
        server.metric_until(gauge, NOTICE, |v| v == 0.0).await,
        0.0,
        "the subscribers that left are let go"
    );
    let after = server.metric(scanned).await;
    assert!(
        after < (8 * events) as f64,
        "the catch-ups stopped before the end: {after}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.metric(scanned).await, after, "no catch-up works for nobody");

    // A location nobody registered: the catch-up reads nothing, and the feed
    // delivers the location's events once it exists.
    let before = server.metric(scanned).await;
    let mut sse = Sse {
        res: open_feed(&server, "?location=nowhere", None).await,
        buf: String::new(),
    };
    let client = reqwest::Client::new();
    let mut seqs = Vec::new();
    for e in [
        location("nowhere", None),
        dev("report", "nowhere", "2024-12-01T00:00:00Z", json!({"summary": "found"})),
    ] {
        let res = client.post(server.url("/v1/events")).json(&e).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 201);
        seqs.push(res.json::<Value>().await.unwrap()["seq"].as_u64().unwrap());
    }
    assert_eq!(sse.ids(2).await, seqs);
    assert_eq!(server.metric(scanned).await, before, "no stored event was read for it");
}

/// A feed holds its connection for good, so a server whose feed slots alone
/// could take every connection it accepts would, once its feed is full,
/// answer no other request: not a reporter's append, not `/healthz`. Its
/// connections leave room beyond the feed, whatever `--max-subscribers` is.
#[tokio::test]
async fn a_full_feed_leaves_connections_for_appends() {
    use crate::process::*;
    use sitrep::startup::MAX_CONNECTIONS_PER_WORKER;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // This process and the server (which inherits the limit) hold one socket
    // a feed each.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .unwrap();
    // As many feed slots as one worker's connections, before room was left.
    let feeds = MAX_CONNECTIONS_PER_WORKER;
    let tmp = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        &tmp.path().join("data"),
        &["--workers", "1", "--max-subscribers", &feeds.to_string()],
    );
    let address = server.address.trim_start_matches("http://").to_owned();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..feeds {
        let (address, gate) = (address.clone(), gate.clone());
        opening.spawn(async move {
            let _turn = gate.acquire_owned().await.unwrap();
            let mut s = tokio::net::TcpStream::connect(&address).await.unwrap();
            s.write_all(format!("GET /v1/events/stream HTTP/1.1\r\nhost: {address}\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = tokio::time::timeout(NOTICE, s.read(&mut buf))
                    .await
                    .expect("a feed is answered")
                    .unwrap();
                assert!(n > 0, "the server closed a feed");
                head.extend_from_slice(&buf[..n]);
            }
            assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
            s
        });
    }
    let mut open = Vec::new();
    while let Some(feed) = opening.join_next().await {
        open.push(feed.unwrap());
    }
    assert_eq!(open.len(), feeds);
    let append = reqwest::Client::new()
        .post(server.url("/v1/events"))
        .json(&location("aleppo", None))
        .timeout(NOTICE)
        .send()
        .await;
    let append = append.expect("with every feed slot taken, an append is still answered");
    assert_eq!(append.status().as_u16(), 201);
    drop(open);
}

/// A feed read over a bare connection with a small receive buffer, so that
/// the server sees it full soon after it stops reading.
struct RawFeed {
    stream: tokio::net::TcpStream,
    seen: String,
}

impl RawFeed {
    async fn open(address: &str, query: &str) -> RawFeed {
        use tokio::io::AsyncWriteExt;
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let addr = address.trim_start_matches("http://").parse().unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        let head = format!("GET /v1/events/stream{query} HTTP/1.1\r\nhost: localhost\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        RawFeed {
            stream,
            seen: String::new(),
        }
    }

    /// Read until the event `last` has arrived (bounded); every event's id in
    /// order. Each chunk of the response carries whole events, so `id:` lines
    /// are never cut by the chunked encoding.
    async fn ids_until(&mut self, last: u64) -> Vec<u64> {
        use tokio::io::AsyncReadExt;
        let want = format!("\nid: {last}\n");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut buf = vec![0u8; 64 * 1024];
        let mut from = 0;
        while !self.seen[from..].contains(&want) {
            from = self.seen.len().saturating_sub(want.len());
            let Ok(n) = tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await else {
                let tail = &self.seen[self.seen.len().saturating_sub(300)..];
                panic!("event {last} did not arrive in time; the feed ends with {tail:?}");
            };
            let n = n.unwrap();
            assert!(n > 0, "the feed ended early");
            self.seen.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
        self.seen
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .map(|id| id.trim().parse().unwrap())
            .collect()
    }
}

#[tokio::test]
async fn live_subscribers_that_fall_behind_go_back_to_the_store_and_miss_nothing() {
    // A server process of its own: the count of subscribers that fell behind
    // is the process's, and the in-process test servers share one.
    let tmp = tempfile::tempdir().unwrap();
    let server = crate::process::ServerProcess::start(&tmp.path().join("data"), &[]);
    let client = reqwest::Client::new();
    const FELL_BEHIND: &str = "sitrep_sse_fell_behind_total";
    let (status, body) = server.post_json(&client, &basics()).await;
    assert_eq!(status, 201, "{body}");
    // Three live subscribers: every event, one location's, and CloudEvents.
    let mut all = RawFeed::open(&server.address, "").await;
    let mut north = RawFeed::open(&server.address, "?location=aleppo-north").await;
    let mut cloud = RawFeed::open(&server.address, "?format=cloudevents").await;
    assert_eq!(all.ids_until(5).await, (1..=5).collect::<Vec<u64>>());
    assert_eq!(north.ids_until(4).await, vec![4]);
    assert_eq!(cloud.ids_until(5).await, (1..=5).collect::<Vec<u64>>());
    assert_eq!(server.metric(FELL_BEHIND).await, 0.0);
    // Unread, far more than a subscriber's buffer and its socket hold, in
    // batches (groups of many events), alternating locations.
    // (The server's send buffer grows up to 4 MiB by default.)
    let big = "x".repeat(3 * 1024);
    for b in 0..24 {
        let batch: Vec<Value> = (0..125)
            .map(|i| {
                let at = if i % 2 == 0 { "aleppo-north" } else { "aleppo-south" };
                dev(
                    "report",
                    at,
                    "2024-12-01T00:00:00Z",
                    json!({"summary": format!("{b}/{i} {big}")}),
                )
            })
            .collect();
        let (status, body) = server.post_json(&client, &Value::Array(batch)).await;
        assert_eq!(status, 201, "{body}");
    }
    // The fan-out hands a group out just after its append is answered.
    let behind = server
        .metric_until(FELL_BEHIND, Duration::from_secs(5), |v| v > 0.0)
        .await;
    assert!(behind >= 1.0, "no subscriber fell behind");
    // Each gets every event it takes once, in order, through the store, and
    // is live again after it.
    let (status, _) = server
        .post_json(
            &client,
            &dev(
                "report",
                "aleppo-north",
                "2024-12-01T00:00:00Z",
                json!({"summary": "after"}),
            ),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(all.ids_until(3006).await, (1..=3006).collect::<Vec<u64>>());
    let mut north_ids = vec![4];
    north_ids.extend((0..24).flat_map(|b| (0..125).step_by(2).map(move |i| 6 + 125 * b + i)));
    north_ids.push(3006);
    assert_eq!(north.ids_until(3006).await, north_ids);
    assert_eq!(cloud.ids_until(3006).await, (1..=3006).collect::<Vec<u64>>());
    assert!(cloud.seen.contains(r#""specversion":"1.0""#));
}
