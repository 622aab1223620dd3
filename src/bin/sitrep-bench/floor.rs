//! The storage floors: what this disk does for one synced write, raw, and
//! sled's own insert, flush and fdatasync in this process, what no durable
//! append through the server can beat.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use crate::events::event_body;
use crate::load::{median, Row};

/// The raw floor's write: one page, as a WAL writes it.
const RAW_WRITE_BYTES: usize = 4096;
/// Synced writes per repetition of each floor row.
const SYNCS_PER_REP: usize = 2_000;

/// The raw floors (4 KiB + fdatasync, appended and over written space), then
/// sled's with one sync per event and one per hundred, `reps` times each.
pub fn rows(tmp: &Path, reps: usize) -> anyhow::Result<Vec<Row>> {
    eprintln!("storage floor");
    let mut floor = Vec::new();
    for overwrite in [false, true] {
        let mut rates = Vec::new();
        let mut latencies = Vec::new();
        for r in 0..reps {
            let path = tmp.join(format!("raw-{overwrite}-{r}"));
            let (rate, mut lat) = raw_floor(&path, overwrite)?;
            std::fs::remove_file(&path)?;
            rates.push(rate);
            latencies.append(&mut lat);
        }
        latencies.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        let rate = median(rates);
        let name = if overwrite {
            "storage floor: write 4 KiB + fdatasync over written space (preallocated, zero-filled, as a WAL)"
        } else {
            "storage floor: write 4 KiB + fdatasync appended (the file grows: the size is committed too)"
        };
        eprintln!("  {name}: {rate:.0} syncs/s");
        floor.push(Row {
            name: name.to_owned(),
            rate,
            unit: "syncs/s",
            p50: Some(at(0.5)),
            p99: Some(at(0.99)),
            p999: Some(at(0.999)),
        });
    }

    let sample = serde_json::to_vec(&event_body(0, 0))?;
    let payload = [sample.as_slice(), &[b' '; 200]].concat();
    for (per_sync, events) in [(1usize, SYNCS_PER_REP), (100, 50_000)] {
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

/// `SYNCS_PER_REP` times: write 4 KiB and fdatasync. Appended, each sync also
/// commits the file's new size (a journal commit on ext4); over written space
/// (zero-filled and synced first, as PostgreSQL fills a WAL segment) it carries
/// the data alone. Returns syncs per second and each sync's latency in ms.
fn raw_floor(path: &Path, overwrite: bool) -> anyhow::Result<(f64, Vec<f64>)> {
    let page = [b'x'; RAW_WRITE_BYTES];
    let mut file = File::create(path)?;
    if overwrite {
        let zeros = vec![0u8; RAW_WRITE_BYTES * SYNCS_PER_REP];
        file.write_all(&zeros)?;
        file.sync_all()?;
    }
    let mut latencies = Vec::with_capacity(SYNCS_PER_REP);
    let started = Instant::now();
    for i in 0..SYNCS_PER_REP {
        let t = Instant::now();
        if overwrite {
            file.write_all_at(&page, (i * RAW_WRITE_BYTES) as u64)?;
        } else {
            file.write_all(&page)?;
        }
        file.sync_data()?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let rate = SYNCS_PER_REP as f64 / started.elapsed().as_secs_f64();
    Ok((rate, latencies))
}
