//! The default run: the HTTP workloads against a server, the storage floor,
//! and the log at scale, then the tables.

use crate::load::{cpu_seconds, print_table, tempfile_dir, Row, Server, Target};
use crate::{floor, http, scale, Options};

/// Every workload, in order; the tables at the end.
pub async fn run(opts: &Options) -> anyhow::Result<()> {
    print_machine(opts);
    let tmp = tempfile_dir("sitrep-bench")?;
    let mut own = match &opts.server {
        Some(_) => None,
        None => Some(Server::spawn(&tmp.join("http"))?),
    };
    let url = opts
        .server
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_owned())
        .or_else(|| own.as_ref().map(|s| s.url.clone()))
        .expect("a server of its own or --server");
    let mut t = Target::new(url, opts.token.clone(), opts.reps, opts.seconds);
    http::set_up(&t).await?;
    let server_pid = own.as_ref().and_then(Server::pid).map(|p| p.to_string());
    let cpu = || (cpu_seconds("self"), server_pid.as_deref().map_or(0.0, cpu_seconds));
    let cpu_before = cpu();

    eprintln!("HTTP workloads against {}", t.url);
    http::warm_up(&mut t).await;
    let after_ceiling = cpu();
    let ceiling_cpu = (after_ceiling.0 - cpu_before.0, after_ceiling.1 - cpu_before.1);
    let round_trip = http::round_trip(&mut t).await;
    let appends_1 = http::durable_appends(&mut t, 1).await;
    let appends_16 = http::durable_appends(&mut t, 16).await;
    let compared = http::compared(&mut t).await;
    let appends_256 = http::durable_appends(&mut t, 256).await;
    let batches = http::batch_appends(&mut t).await;
    let reads = http::time_travel_and_proofs(&mut t).await?;
    let live = http::live_subscribers(&mut t).await?;
    let cpu_after = cpu();
    if let Some(mut s) = own.take() {
        s.stop();
    }

    let floor = floor::rows(&tmp, opts.reps)?;
    let scale_rows = if opts.scale_events > 0 {
        scale::rows(opts, &tmp.join("scale")).await?
    } else {
        Vec::new()
    };

    let live_ratio = live.rate / compared.appends_64.rate;
    let mut rows: Vec<Row> = vec![
        compared.ceiling,
        round_trip,
        appends_1,
        appends_16,
        compared.appends_64,
        appends_256,
        compared.refused,
        compared.status_reads,
        batches,
    ];
    rows.extend(reads);
    rows.push(live);
    rows.extend(floor);

    println!();
    print_table(&rows);
    println!();
    println!("| ratio (median of per-repetition ratios, back-to-back runs) | value | target |");
    println!("|---|---:|---:|");
    for (value, name, target) in compared.ratios {
        println!("| {name} | {value:.2} | {target} |");
    }
    println!("| durable appends at 64 conns, with / without 100 live subscribers | {live_ratio:.2} | |");
    if !scale_rows.is_empty() {
        println!();
        println!("| at scale | figure |");
        println!("|---|---|");
        for r in scale_rows {
            println!("{r}");
        }
    }
    println!();
    if server_pid.is_some() {
        println!(
            "Load generator vs server CPU: during the ceiling run {:.1} s vs {:.1} s; over all HTTP runs {:.1} s vs {:.1} s.",
            ceiling_cpu.0,
            ceiling_cpu.1,
            cpu_after.0 - cpu_before.0,
            cpu_after.1 - cpu_before.1
        );
    }
    println!("Non-2xx answers or errors during the HTTP runs: {}", t.errors);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// The first line: this machine's cores and CPU, and the run's repetitions.
fn print_machine(opts: &Options) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "sitrep-bench: {cores} cores ({cpu}); medians of {} runs of {:.1} s each",
        opts.reps, opts.seconds
    );
}
