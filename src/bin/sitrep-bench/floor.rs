//! The storage floor: sled's own insert, flush and fdatasync in this process,
//! what no durable append through the server can beat.

use std::path::Path;

use crate::events::event_body;
use crate::load::{median, Row};

/// One sync per event and one per hundred, `reps` times each.
pub fn rows(tmp: &Path, reps: usize) -> anyhow::Result<Vec<Row>> {
    eprintln!("storage floor");
    let sample = serde_json::to_vec(&event_body(0, 0))?;
    let payload = [sample.as_slice(), &[b' '; 200]].concat();
    let mut floor = Vec::new();
    for (per_sync, events) in [(1usize, 2_000usize), (100, 50_000)] {
        let mut rates = Vec::new();
        for r in 0..reps {
            let d = sitrep::store::sled::storage_floor(
                &tmp.join(format!("floor-{per_sync}-{r}")),
                &payload,
                events,
                per_sync,
            )?;
            rates.push(events as f64 / d.as_secs_f64());
        }
        let rate = median(rates);
        eprintln!("  sled insert + flush + fdatasync, one sync per {per_sync}: {rate:.0} events/s");
        floor.push(Row {
            name: format!(
                "storage floor: sled insert + flush + fdatasync, 1 sync per {per_sync} events ({} B)",
                payload.len()
            ),
            rate,
            unit: "events/s",
            p50: None,
            p99: None,
            p999: None,
        });
    }

    Ok(floor)
}
