//! At scale: a large log written through the ledger in this process, then
//! read back (raw scan, rebuild), started from (with and without a
//! checkpoint), queried and exported by a server of its own.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sitrep::ledger::Ledger;

use crate::events::write_scale_log;
use crate::load::{get, load, median, status_mib, Load, Server};
use crate::Options;

/// How often the server's resident memory is sampled during the CSV export.
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// The whole log as CSV from a running server, and the server's memory.
struct CsvExport {
    rows: u64,
    secs: f64,
    bytes: u64,
    rss_before: f64,
    rss_peak: f64,
    hwm_after: f64,
}

/// Read `GET /v1/events.csv` to its end, counting rows (the bench's cells hold
/// no line breaks, so a row is a line), while a task samples the server's
/// `VmRSS`: the export streams, so its peak should stay near where it started.
async fn csv_export(client: &reqwest::Client, url: &str, pid: u32) -> anyhow::Result<CsvExport> {
    let rss_before = status_mib(pid, "VmRSS:");
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0.0f64;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(status_mib(pid, "VmRSS:"));
                tokio::time::sleep(RSS_SAMPLE_EVERY).await;
            }
            peak
        })
    };
    let started = Instant::now();
    let mut res = client
        .get(format!("{url}/v1/events.csv"))
        .send()
        .await?
        .error_for_status()?;
    let (mut lines, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = res.chunk().await? {
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        bytes += chunk.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let rss_peak = sampler.await?;
    Ok(CsvExport {
        rows: lines.saturating_sub(1),
        secs,
        bytes,
        rss_before,
        rss_peak,
        hwm_after: status_mib(pid, "VmHWM:"),
    })
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The at-scale figures, as rows of the `| at scale | figure |` table.
pub async fn rows(opts: &Options, dir: &Path) -> anyhow::Result<Vec<String>> {
    let (total, write_secs) = write(opts, dir).await?;
    let (scan, rebuild) = scan_and_rebuild(dir, opts.reps)?;
    let s = start_ups(opts, dir, total).await?;
    let bytes = dir_bytes(dir);
    let startup = median(s.from_checkpoint.clone());
    let mut scale_rows = Vec::new();
    scale_rows.push(format!(
        "| events in the log | {total} ({} locations, 100 actors) |",
        opts.scale_locations
    ));
    scale_rows.push(format!(
        "| write through the ledger (batches of 1000) | {:.0} events/s |",
        total as f64 / write_secs
    ));
    scale_rows.push(format!("| raw sled scan of the log | {scan:.0} events/s |"));
    scale_rows.push(format!(
        "| rebuild: fold the whole log into projections | {rebuild:.0} events/s ({:.2} x raw scan) |",
        rebuild / scan
    ));
    scale_rows.push(format!(
        "| start-up to healthy, folding the whole log (no checkpoint) | {:.2} s |",
        s.full_fold
    ));
    scale_rows.push(format!(
        "| start-up to healthy from the checkpoint (runs: {}) | {startup:.2} s |",
        s.from_checkpoint
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    scale_rows.push(format!("| resident memory after start-up | {:.0} MiB |", s.rss));
    scale_rows.push(format!(
        "| as_of + at_seq status query, 16 conns | {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms |",
        s.as_of.rate(),
        s.as_of.pct(0.5),
        s.as_of.pct(0.99)
    ));
    if let Some(x) = &s.export {
        scale_rows.push(format!(
            "| GET /v1/events.csv, the whole log streamed | {:.0} rows/s ({} rows, {:.0} MiB in {:.1} s) |",
            x.rows as f64 / x.secs,
            x.rows,
            x.bytes as f64 / 1048576.0,
            x.secs
        ));
        scale_rows.push(format!(
            "| server memory during the CSV export: resident before, peak sampled every {} ms (VmRSS) | {:.0} MiB, {:.0} MiB (+{:.0} MiB); VmHWM since start {:.0} MiB |",
            RSS_SAMPLE_EVERY.as_millis(),
            x.rss_before,
            x.rss_peak,
            x.rss_peak - x.rss_before,
            x.hwm_after
        ));
    }
    scale_rows.push(format!(
        "| log size on disk | {:.0} MiB ({:.0} B/event) |",
        bytes as f64 / 1048576.0,
        bytes as f64 / total as f64
    ));
    Ok(scale_rows)
}

/// Write the at-scale log in `dir` through the ledger: (events in the log, seconds).
async fn write(opts: &Options, dir: &Path) -> anyhow::Result<(u64, f64)> {
    eprintln!(
        "at scale: writing {} events over {} locations",
        opts.scale_events, opts.scale_locations
    );
    let started = Instant::now();
    write_scale_log(Ledger::open(dir)?, opts.scale_events, opts.scale_locations).await?;
    let write_secs = started.elapsed().as_secs_f64();
    let total = opts.scale_events + opts.scale_locations + 100;
    eprintln!(
        "  written in {write_secs:.1} s ({:.0} events/s through the ledger)",
        total as f64 / write_secs
    );
    Ok((total, write_secs))
}

/// Raw scan vs rebuild, both warm: the medians of their rates, in events/s.
fn scan_and_rebuild(dir: &Path, reps: usize) -> anyhow::Result<(f64, f64)> {
    let (mut scans, mut rebuilds) = (Vec::new(), Vec::new());
    let store = sitrep::store::SledStore::open(dir)?;
    for _ in 0..reps {
        let t = Instant::now();
        let mut n = 0u64;
        for item in store.raw_scan() {
            item?;
            n += 1;
        }
        scans.push(n as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let p = sitrep::ledger::rebuild(&store)?;
        rebuilds.push(p.head_seq() as f64 / t.elapsed().as_secs_f64());
    }
    let (scan, rebuild) = (median(scans), median(rebuilds));
    eprintln!("  raw scan {scan:.0} events/s, rebuild {rebuild:.0} events/s");
    Ok((scan, rebuild))
}

/// What a server of its own on the at-scale log showed.
struct StartUps {
    /// Seconds to healthy, folding the whole log (no checkpoint).
    full_fold: f64,
    /// Seconds to healthy from the checkpoint, each run.
    from_checkpoint: Vec<f64>,
    /// Resident memory after the last start-up, MiB.
    rss: f64,
    as_of: Load,
    export: Option<CsvExport>,
}

/// Start a server on the log `reps + 1` times: the first start folds the
/// whole log (no checkpoint); the others start from the checkpoint the
/// previous stop wrote. The last one is queried as of a time and seq, and
/// exported as CSV.
async fn start_ups(opts: &Options, dir: &Path, total: u64) -> anyhow::Result<StartUps> {
    let client = reqwest::Client::new();
    let mut out = StartUps {
        full_fold: 0.0,
        from_checkpoint: Vec::new(),
        rss: 0.0,
        as_of: Load::default(),
        export: None,
    };
    let _ = std::fs::remove_file(dir.join("projection.checkpoint"));
    for r in 0..=opts.reps {
        let t = Instant::now();
        let mut s = Server::spawn(dir)?;
        s.wait_healthy(&client).await;
        if r == 0 {
            out.full_fold = t.elapsed().as_secs_f64();
        } else {
            out.from_checkpoint.push(t.elapsed().as_secs_f64());
        }
        if r == opts.reps {
            out.rss = s.pid().map_or(0.0, |pid| status_mib(pid, "VmRSS:"));
            let locs = opts.scale_locations as usize;
            out.as_of = load(
                &s.url,
                None,
                16,
                opts.seconds,
                Arc::new(move |task, n| {
                    get(format!(
                        "/v1/locations/bench-{}?as_of=2024-11-15T00:00:00Z&at_seq={}",
                        (task * 7919 + n as usize * 104_729) % locs,
                        total / 2
                    ))
                }),
            )
            .await;
            if let Some(pid) = s.pid() {
                eprintln!("  exporting the log as CSV");
                out.export = Some(csv_export(&client, &s.url, pid).await?);
            }
        }
        s.stop();
    }
    Ok(out)
}
