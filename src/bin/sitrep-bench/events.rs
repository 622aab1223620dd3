//! What the workloads write: bodies of appends, the streams they go to, and
//! the at-scale log.

use std::sync::Arc;

use serde_json::{json, Value};
use sitrep::domain::NewEvent;
use sitrep::ledger::Ledger;

/// Locations the HTTP workloads write to and read from.
pub const BENCH_LOCATIONS: usize = 100;

pub fn event_body(task: usize, n: u64) -> Value {
    json!({
        "id": uuid::Uuid::new_v4(),
        "type": "report",
        "location": format!("bench-{}", (task + n as usize) % BENCH_LOCATIONS),
        "occurred_at": "2024-11-30T10:00:00Z",
        "source": {"name": "Al Jazeera", "kind": "news_agency", "reliability": "B", "credibility": 2},
        "data": {"summary": "Rebel fighters were combing the city in search of soldiers, a witness said; people were confused because they had not been following the news"}
    })
}

pub fn setup_events(locations: usize, actors: usize) -> Vec<Value> {
    let mut v: Vec<Value> = (0..actors)
        .map(|a| json!({"type": "actor_registered", "actor": format!("actor-{a}"), "data": {"name": format!("Actor {a}"), "kind": "non_state_group"}}))
        .collect();
    v.extend((0..locations).map(|l| {
        json!({"type": "location_registered", "location": format!("bench-{l}"),
               "data": {"name": format!("Bench {l}"), "kind": "town", "lat": 36.0 + (l % 100) as f64 / 100.0, "lon": 37.0}})
    }));
    v
}

/// A development for the at-scale log, spread over locations and actors.
pub fn scale_event(i: u64, locations: u64, actors: u64) -> Value {
    let loc = format!("bench-{}", i % locations);
    let a = format!("actor-{}", (i / locations) % actors);
    let b = format!("actor-{}", (i / locations + 1) % actors);
    let day = 1 + (i * 7919) % 28;
    let at = format!("2024-11-{day:02}T{:02}:00:00Z", i % 24);
    let src = json!({"name": "Reuters", "kind": "news_agency"});
    let (ty, data) = match i % 5 {
        0 => ("control_established", json!({"actor": a})),
        1 => ("forces_entered", json!({"actor": b})),
        2 => ("clashes_reported", json!({"actors": [a, b]})),
        3 => ("forces_withdrew", json!({"actor": a})),
        _ => (
            "report",
            json!({"summary": "Skirmishes reported on the southern edge of the town"}),
        ),
    };
    json!({"type": ty, "location": loc, "occurred_at": at, "source": src, "data": data})
}

/// Write the at-scale log through `ledger`: `locations` locations, 100 actors
/// and `events` developments, as fast as the writer goes; then close it.
pub async fn write_scale_log(ledger: Ledger, events: u64, locations: u64) -> anyhow::Result<()> {
    let setup: Vec<NewEvent> = setup_events(locations as usize, 100)
        .iter()
        .map(|v| NewEvent::from_json(v).map_err(|p| anyhow::anyhow!("{p:?}")))
        .collect::<anyhow::Result<_>>()?;
    for chunk in setup.chunks(1000) {
        ledger.append(chunk.to_vec(), true, "bench".into()).await?;
    }
    // Two producers build batches while the ledger commits, so the log is
    // written as fast as the writer goes.
    let ledger = Arc::new(ledger);

    let mut producers = Vec::new();
    for p in 0..2u64 {
        let ledger = ledger.clone();
        producers.push(tokio::spawn(async move {
            let mut i = p * 1000;
            while i < events {
                let n = 1000.min(events - i);
                let batch: Vec<NewEvent> = (i..i + n)
                    .map(|k| NewEvent::from_json(&scale_event(k, locations, 100)).expect("valid scale event"))
                    .collect();
                ledger.append(batch, true, "bench".into()).await?;
                i += 2000;
            }
            anyhow::Ok(())
        }));
    }
    for p in producers {
        p.await??;
    }
    let ledger = Arc::try_unwrap(ledger).map_err(|_| anyhow::anyhow!("the ledger is still shared"))?;
    tokio::task::spawn_blocking(move || ledger.close()).await?;
    Ok(())
}
