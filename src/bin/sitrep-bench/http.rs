//! The HTTP workloads of the default run, one function each, in the order
//! [`crate::machine::run`] calls them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::bail;
use serde_json::{json, Value};

use crate::events::{event_body, setup_events, BENCH_LOCATIONS};
use crate::load::{authed, get, post, Measured, Req, Row, Target, Workload};

/// Live-feed subscribers attached while appending.
const SUBSCRIBERS: usize = 100;

/// The streams to write to (idempotent: a rerun against the same server is a retry).
pub async fn set_up(t: &Target) -> anyhow::Result<()> {
    let setup = setup_events(BENCH_LOCATIONS, 10);
    let res = authed(t.client.post(format!("{}/v1/events", t.url)), &t.token)
        .json(&setup)
        .send()
        .await?;
    if !(res.status().is_success() || res.status().as_u16() == 409) {
        bail!(
            "setting up the bench streams failed: {} {}",
            res.status(),
            res.text().await?
        );
    }
    Ok(())
}

pub fn ceiling() -> Workload {
    Workload::new(
        "HTTP ceiling: GET /healthz, 64 conns",
        64,
        Arc::new(|_, _| get("/healthz".into())),
    )
}

/// One request at a time on one connection: the HTTP exchange a lone append
/// adds to the ledger floor (see [`crate::floor`]).
pub async fn round_trip(t: &mut Target) -> Row {
    t.measure(Workload::new(
        "HTTP round trip: GET /healthz, 1 conn",
        1,
        Arc::new(|_, _| get("/healthz".into())),
    ))
    .await
}

fn appends(conns: usize) -> Workload {
    Workload::new(
        &format!("durable appends: POST /v1/events, {conns} conns"),
        conns,
        Arc::new(|task, n| post("/v1/events", &event_body(task, n))),
    )
}

/// One ceiling run first, alone: it warms the server up and shows how the CPU
/// splits between the load generator and the server at the ceiling.
pub async fn warm_up(t: &mut Target) {
    t.measure_reps(1, ceiling()).await;
}

/// Durable appends, one event a request, from `conns` connections.
pub async fn durable_appends(t: &mut Target, conns: usize) -> Row {
    t.measure(appends(conns)).await
}

/// The workloads the targets compare, back to back in every repetition.
pub struct Compared {
    pub ceiling: Row,
    pub appends_64: Row,
    pub refused: Row,
    pub status_reads: Row,
    /// (value, name, target) of each ratio.
    pub ratios: [(f64, &'static str, &'static str); 4],
}

/// The HTTP ceiling, durable and refused appends at 64 connections, and status
/// reads. Refused appends post the same bodies to an unregistered location: a
/// rule in the writer refuses them (422), so they cost everything an append
/// costs but the hash chain, the sled write and the fsync.
pub async fn compared(t: &mut Target) -> Compared {
    let set: Measured = t
        .measure_set(vec![
            ceiling(),
            appends(64),
            Workload::new(
                "refused appends: same bodies, unregistered location (422), 64 conns",
                64,
                Arc::new(|task, n| {
                    let mut body = event_body(task, n);
                    body["location"] = json!("nowhere");
                    Req {
                        expect: Some(422),
                        ..post("/v1/events", &body)
                    }
                }),
            ),
            Workload::new(
                "status reads: GET /v1/locations/{id}, 64 conns",
                64,
                Arc::new(|task, n| get(format!("/v1/locations/bench-{}", (task + n as usize) % BENCH_LOCATIONS))),
            ),
        ])
        .await;
    let ratios = [
        (set.ratio(1, 0), "durable appends at 64 conns / HTTP ceiling", ">= 0.5"),
        (set.ratio(2, 0), "refused appends at 64 conns / HTTP ceiling", ""),
        (
            set.ratio(1, 2),
            "durable / refused appends at 64 conns (hashing, writing, syncing)",
            "",
        ),
        (set.ratio(3, 0), "status reads / HTTP ceiling", ">= 0.7"),
    ];
    let [ceiling, appends_64, refused, status_reads]: [Row; 4] =
        set.rows.try_into().map_err(|_| ()).expect("four workloads");
    Compared {
        ceiling,
        appends_64,
        refused,
        status_reads,
        ratios,
    }
}

/// Batch appends: 100 events a request.
pub async fn batch_appends(t: &mut Target) -> Row {
    t.measure(Workload {
        per_request: 100.0,
        ..Workload::new(
            "batch appends: 100 events a request, 16 conns",
            16,
            Arc::new(|task, n| {
                let batch: Vec<Value> = (0..100).map(|k| event_body(task, n * 100 + k)).collect();
                post("/v1/events", &json!(batch))
            }),
        )
    })
    .await
}

/// Time travel and proofs, over the log the appends before have written.
pub async fn time_travel_and_proofs(t: &mut Target) -> anyhow::Result<Vec<Row>> {
    let head = t.get_json("/v1/audit/head").await?;
    let at_seq = head["seq"].as_u64().unwrap_or(0) / 2;
    let size = head["seq"].as_u64().unwrap_or(1).max(2);
    let reads = [
        Workload::new(
            "time travel: as_of + at_seq, 64 conns",
            64,
            Arc::new(move |task, n| {
                get(format!(
                    "/v1/locations/bench-{}?as_of=2024-11-30T12:00:00Z&at_seq={at_seq}",
                    (task + n as usize) % BENCH_LOCATIONS
                ))
            }),
        ),
        Workload::new(
            "inclusion proof: GET /v1/audit/proof/inclusion, 16 conns",
            16,
            Arc::new(move |task, n| {
                get(format!(
                    "/v1/audit/proof/inclusion?seq={}&tree_size={size}",
                    1 + (task as u64 * 7919 + n) % size
                ))
            }),
        ),
        Workload::new(
            "consistency proof: GET /v1/audit/proof/consistency, 16 conns",
            16,
            Arc::new(move |task, n| {
                get(format!(
                    "/v1/audit/proof/consistency?first={}&second={size}",
                    1 + (task as u64 * 7919 + n) % size
                ))
            }),
        ),
    ];
    let mut rows = Vec::new();
    for w in reads {
        rows.push(t.measure(w).await);
    }
    Ok(rows)
}

/// Durable appends at 64 connections with 100 live subscribers attached.
pub async fn live_subscribers(t: &mut Target) -> anyhow::Result<Row> {
    let subscribers = subscribe(t, SUBSCRIBERS).await?;
    let row = t
        .measure(Workload::new(
            "durable appends, 64 conns, 100 live subscribers attached",
            64,
            Arc::new(|task, n| post("/v1/events", &event_body(task, n))),
        ))
        .await;
    let delivered: u64 = subscribers.iter().map(|s| s.load(Ordering::Relaxed)).sum();
    eprintln!("  the {SUBSCRIBERS} subscribers received {delivered} events in all");
    Ok(row)
}

/// Open `n` live-feed subscribers that read everything from the head on; each
/// counts the events it receives.
async fn subscribe(t: &Target, n: usize) -> anyhow::Result<Vec<Arc<AtomicU64>>> {
    let head = t.get_json("/v1/audit/head").await?;
    let after = head["seq"].as_u64().unwrap_or(0);
    let mut counters = Vec::new();
    for _ in 0..n {
        let counter = Arc::new(AtomicU64::new(0));
        let c = counter.clone();
        let mut res = authed(
            t.client.get(format!("{}/v1/events/stream?after={after}", t.url)),
            &t.token,
        )
        .send()
        .await?;
        tokio::spawn(async move {
            while let Ok(Some(chunk)) = res.chunk().await {
                let ids = chunk.windows(4).filter(|w| w == b"id: ").count() as u64;
                c.fetch_add(ids, Ordering::Relaxed);
            }
        });
        counters.push(counter);
    }
    Ok(counters)
}
