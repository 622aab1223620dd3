//! The floors: what this disk does for one synced write, raw; sled's own
//! insert, flush and fdatasync in this process, the floor of an append made
//! durable by sled's flush (a large group's; a small group's goes to the
//! store's write-ahead file instead); and a lone append through the ledger in
//! this process, everything an append over HTTP does but the HTTP exchange.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use sitrep::domain::NewEvent;
use sitrep::ledger::{Appended, Ledger};

use crate::events::{event_body, setup_events, BENCH_LOCATIONS};
use crate::load::{median, Row};

/// The raw floor's write: one page, as a WAL writes it.
const RAW_WRITE_BYTES: usize = 4096;
/// Synced writes per repetition of each floor row.
const SYNCS_PER_REP: usize = 2_000;

/// The raw floors (4 KiB + fdatasync, appended and over written space), then
/// sled's with one sync per event and one per hundred, then lone appends
/// through the ledger, `reps` times each.
pub fn rows(tmp: &Path, reps: usize) -> anyhow::Result<Vec<Row>> {
    eprintln!("storage floor");
    let mut floor = Vec::new();
    for overwrite in [false, true] {
        let name = if overwrite {
            "storage floor: write 4 KiB + fdatasync over written space (preallocated, zero-filled, as a WAL)"
        } else {
            "storage floor: write 4 KiB + fdatasync appended (the file grows: the size is committed too)"
        };
        floor.push(repeated(name, "syncs/s", reps, |r| {
            let path = tmp.join(format!("raw-{overwrite}-{r}"));
            let took = raw_floor(&path, overwrite)?;
            std::fs::remove_file(&path)?;
            Ok(took)
        })?);
    }

    let sample = serde_json::to_vec(&event_body(0, 0))?;
    let payload = [sample.as_slice(), &[b' '; 200]].concat();
    for (per_sync, events) in [(1usize, SYNCS_PER_REP), (100, 50_000)] {
        let name = format!(
            "storage floor: sled insert + flush + fdatasync, 1 sync per {per_sync} events ({} B)",
            payload.len()
        );
        let row = repeated(&name, "events/s", reps, |r| {
            let dir = tmp.join(format!("floor-{per_sync}-{r}"));
            let took = sitrep::store::sled::storage_floor(&dir, &payload, events, per_sync)?;
            Ok(took.into_iter().map(|d| (d, per_sync)).collect())
        })?;
        floor.push(if per_sync == 1 {
            row
        } else {
            Row {
                p50: None,
                p99: None,
                p999: None,
                ..row
            }
        });
    }

    floor.push(repeated(
        "ledger floor: Ledger::append_blocking, 1 event at a time from one thread, in this process (no HTTP)",
        "events/s",
        reps,
        |r| ledger_floor(&tmp.join(format!("ledger-{r}"))),
    )?);
    Ok(floor)
}

/// A floor row from `reps` runs of `run`, each returning how long each of its
/// steps took and how many events (or syncs) the step carried: the median of
/// the runs' rates, and the percentiles of the steps of all runs, in ms.
fn repeated(
    name: &str,
    unit: &'static str,
    reps: usize,
    mut run: impl FnMut(usize) -> anyhow::Result<Vec<(Duration, usize)>>,
) -> anyhow::Result<Row> {
    let mut rates = Vec::new();
    let mut latencies = Vec::new();
    for r in 0..reps {
        let steps = run(r)?;
        let (n, secs) = steps
            .iter()
            .fold((0usize, 0.0f64), |(n, s), (d, k)| (n + k, s + d.as_secs_f64()));
        rates.push(n as f64 / secs);
        latencies.extend(steps.iter().map(|(d, _)| d.as_secs_f64() * 1e3));
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let rate = median(rates);
    eprintln!("  {name}: {rate:.0} {unit}, p50 {:.3} ms", at(0.5));
    Ok(Row {
        name: name.to_owned(),
        rate,
        unit,
        p50: Some(at(0.5)),
        p99: Some(at(0.99)),
        p999: Some(at(0.999)),
    })
}

/// `SYNCS_PER_REP` lone appends of the bench's event through a ledger of its
/// own on `dir`, one after another from one thread, each built before it is
/// timed: the writer thread's hand-offs, planning, hashing, sled's write and
/// sync and the fold, without the HTTP exchange. Returns each append's time.
fn ledger_floor(dir: &Path) -> anyhow::Result<Vec<(Duration, usize)>> {
    let ledger = Ledger::open(dir)?;
    let setup: Vec<NewEvent> = setup_events(BENCH_LOCATIONS, 10)
        .iter()
        .map(|v| NewEvent::from_json(v).map_err(|p| anyhow::anyhow!("{p:?}")))
        .collect::<anyhow::Result<_>>()?;
    // The blocking calls may not run on the bench's runtime threads.
    let took = std::thread::scope(|s| {
        s.spawn(|| {
            ledger.append_blocking(setup, true, "bench".into())?;
            let mut took = Vec::with_capacity(SYNCS_PER_REP);
            for n in 0..SYNCS_PER_REP as u64 {
                let event = NewEvent::from_json(&event_body(0, n)).map_err(|p| anyhow::anyhow!("{p:?}"))?;
                let started = Instant::now();
                match ledger.append_blocking(vec![event], false, "bench".into())? {
                    Appended::Created(_) => took.push((started.elapsed(), 1)),
                    other => anyhow::bail!("a lone append was not created: {other:?}"),
                }
            }
            anyhow::Ok(took)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the ledger floor's thread panicked"))?
    })?;
    ledger.close();
    Ok(took)
}

/// `SYNCS_PER_REP` times: write 4 KiB and fdatasync. Appended, each sync also
/// commits the file's new size (a journal commit on ext4); over written space
/// (zero-filled and synced first, as PostgreSQL fills a WAL segment) it carries
/// the data alone. Returns each sync's time.
fn raw_floor(path: &Path, overwrite: bool) -> anyhow::Result<Vec<(Duration, usize)>> {
    let page = [b'x'; RAW_WRITE_BYTES];
    let mut file = File::create(path)?;
    if overwrite {
        let zeros = vec![0u8; RAW_WRITE_BYTES * SYNCS_PER_REP];
        file.write_all(&zeros)?;
        file.sync_all()?;
    }
    let mut took = Vec::with_capacity(SYNCS_PER_REP);
    for i in 0..SYNCS_PER_REP {
        let t = Instant::now();
        if overwrite {
            file.write_all_at(&page, (i * RAW_WRITE_BYTES) as u64)?;
        } else {
            file.write_all(&page)?;
        }
        file.sync_data()?;
        took.push((t.elapsed(), 1));
    }
    Ok(took)
}
