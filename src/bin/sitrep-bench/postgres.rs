//! `sitrep-bench --store postgres://…`: durable appends on PostgreSQL at 1,
//! 16 and 64 connections, on one server and on two servers sharing the
//! database, and the start-up of a server on a large database.
//!
//! The bench makes a database of its own on that server (the URL's role needs
//! CREATEDB) and drops it at the end. message-db's figures for the same
//! server come from `benches/message-db/run.sh`; `benches/postgres.sh` runs
//! both, one after the other, and prints them together.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};

use sitrep::ledger::Ledger;
use sitrep::store::Location;

use crate::events::{event_body, setup_events, write_scale_log, BENCH_LOCATIONS};
use crate::load::{load, median, post, tempfile_dir, Load, Server};

/// The connection counts measured.
const CONNS: [usize; 3] = [1, 16, 64];

/// A database made for the run, dropped at the end.
struct BenchDb {
    admin: String,
    name: String,
    url: String,
}

impl BenchDb {
    fn create(admin: &str) -> anyhow::Result<BenchDb> {
        let name = format!("sitrep_bench_{}", uuid::Uuid::new_v4().simple());
        let mut client = postgres::Client::connect(admin, postgres::NoTls)
            .with_context(|| format!("cannot connect to {}", sitrep::store::postgres::redact(admin)))?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .context("cannot create the bench's database (the role needs CREATEDB)")?;
        let mut url = url_with_database(admin, &name)?;
        if url.ends_with('/') {
            url.pop();
        }
        Ok(BenchDb {
            admin: admin.to_owned(),
            name,
            url,
        })
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// `url` with its database (the path) replaced by `name`.
fn url_with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let Some((scheme, rest)) = base.split_once("://") else {
        bail!("not a PostgreSQL URL");
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let mut out = format!("{scheme}://{authority}/{name}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

fn server_on(db: &str, dir: &std::path::Path) -> anyhow::Result<Server> {
    Server::spawn_args(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &dir.to_string_lossy(),
        "--store",
        db,
    ])
}

/// Appends from `conns` connections spread over `servers`, at once.
async fn appends(servers: &[&str], conns: usize, secs: f64) -> Load {
    let per: Vec<usize> = (0..servers.len())
        .map(|i| conns / servers.len() + usize::from(i < conns % servers.len()))
        .collect();
    let runs = servers.iter().zip(&per).filter(|(_, n)| **n > 0).map(|(url, n)| {
        load(
            url,
            None,
            *n,
            secs,
            Arc::new(|task, n| post("/v1/events", &event_body(task, n))),
        )
    });
    let loads = futures_util::future::join_all(runs).await;
    let mut total = Load::default();
    for l in loads {
        total.done += l.done;
        total.errors += l.errors;
        total.lat_us.extend(l.lat_us);
        total.secs = total.secs.max(l.secs);
    }
    total.lat_us.sort_unstable();
    total
}

/// Make the bench's database, measure, drop the database. (The synchronous
/// client does not run inside the load generator's runtime.)
pub fn run(opts: &crate::Options, admin: &str) -> anyhow::Result<()> {
    let db = BenchDb::create(admin)?;
    // The log at scale goes into a database of its own.
    let scale = if opts.scale_events > 0 {
        Some(BenchDb::create(admin)?)
    } else {
        None
    };
    crate::runtime(false)?.block_on(measure(opts, &db, scale.as_ref()))
}

async fn measure(opts: &crate::Options, db: &BenchDb, scale: Option<&BenchDb>) -> anyhow::Result<()> {
    let tmp = tempfile_dir("sitrep-bench-pg")?;
    println!(
        "sitrep-bench on PostgreSQL ({}); medians of {} runs of {:.1} s each",
        sitrep::store::postgres::redact(&db.url),
        opts.reps,
        opts.seconds
    );
    let a = server_on(&db.url, &tmp.join("a"))?;
    let b = server_on(&db.url, &tmp.join("b"))?;
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{}/v1/events", a.url))
        .json(&setup_events(BENCH_LOCATIONS, 10))
        .send()
        .await?;
    if !res.status().is_success() {
        bail!(
            "setting up the bench streams failed: {} {}",
            res.status(),
            res.text().await?
        );
    }

    println!();
    println!("| durable appends (POST /v1/events, one event each) | conns | events/s | p50 ms | p99 ms | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    for conns in CONNS {
        for (name, servers) in [
            ("one server", vec![a.url.as_str()]),
            ("two servers", vec![&a.url, &b.url]),
        ] {
            let mut rates = Vec::new();
            let mut p50 = Vec::new();
            let mut p99 = Vec::new();
            let mut errors = 0;
            for _ in 0..opts.reps {
                let l = appends(&servers, conns, opts.seconds).await;
                rates.push(l.rate());
                p50.push(l.pct(0.5));
                p99.push(l.pct(0.99));
                errors += l.errors;
            }
            println!(
                "| {name} | {conns} | {:.0} | {:.2} | {:.2} | {errors} |",
                median(rates),
                median(p50),
                median(p99)
            );
        }
    }
    drop((a, b));

    if let Some(db) = scale {
        eprintln!("at scale: writing {} events into PostgreSQL", opts.scale_events);
        let started = Instant::now();
        let ledger = tokio::task::spawn_blocking({
            let (url, dir) = (db.url.clone(), tmp.join("writer"));
            move || Ledger::open_at(&Location::Postgres(url), Some(&dir))
        })
        .await??;
        write_scale_log(ledger, opts.scale_events, opts.scale_locations).await?;
        let written = started.elapsed().as_secs_f64();
        let total = opts.scale_events + opts.scale_locations + 100;
        // A second server on that database: no checkpoint of its own, so it
        // folds the whole log from PostgreSQL before it binds.
        let mut startups = Vec::new();
        for r in 0..opts.reps {
            let t = Instant::now();
            let s = server_on(&db.url, &tmp.join(format!("second-{r}")))?;
            s.wait_healthy(&client).await;
            startups.push(t.elapsed().as_secs_f64());
        }
        println!();
        println!("| at scale on PostgreSQL | value |");
        println!("|---|---|");
        println!(
            "| write through the ledger (batches of 1000) | {:.0} events/s ({total} events) |",
            total as f64 / written
        );
        println!(
            "| start-up to healthy of a new server, folding the whole log (runs: {}) | {:.2} s |",
            startups
                .iter()
                .map(|s| format!("{s:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            median(startups.clone())
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
