//! `sitrep-bench`: figures for this machine, printed as a table. Against its own
//! server (the `sitrep` binary next to this one, as a child process on a temp
//! dir, so server and load generator CPU can be told apart) or against
//! `--server URL`.
//!
//! Each run is a list of workloads ([`machine::run`] by default;
//! [`checkpoints`], [`acled`], [`postgres`] and [`feed`] with their options) sharing one
//! load generator ([`load`]) and the events it writes ([`events`]).

use clap::Parser;

mod acled;
mod checkpoints;
mod events;
mod feed;
mod floor;
mod http;
mod load;
mod machine;
mod postgres;
mod scale;

/// The in-process parts (the storage floor, the at-scale log) allocate as the
/// server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measure this machine: HTTP ceiling, durable and batch appends, reads, the
/// storage floor, rebuild and start-up at scale. Prints a table.
#[derive(Parser, Clone, Debug)]
#[command(name = "sitrep-bench", version)]
struct Options {
    /// Measure a running deployment instead of a server of its own.
    #[arg(long)]
    server: Option<String>,
    /// Bearer token (a reporter) for --server.
    #[arg(long, env = "SITREP_BENCH_TOKEN")]
    token: Option<String>,
    /// Runs of each measurement; the table shows medians.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Events of the at-scale log (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    scale_events: u64,
    /// Locations of the at-scale log.
    #[arg(long, default_value_t = 10_000)]
    scale_locations: u64,
    /// Measure only signed checkpoints and witnesses: signing, serving, a
    /// witness round trip, appends with and without two witnesses.
    #[arg(long)]
    checkpoints: bool,
    /// Measure only the ACLED import rate, importing a synthetic export of
    /// this many rows (new, again, then updated).
    #[arg(long = "acled", value_name = "ROWS")]
    acled_rows: Option<u64>,
    /// Measure durable appends on this PostgreSQL server, on one and on two
    /// servers, and start-up on a large database (--scale-events). The
    /// bench makes a database of its own there (the role needs CREATEDB).
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Measure only the live feed with this many readers: every event
    /// delivered once and in order to each, its delay, appends with and
    /// without them, stalled readers, full-load appends with 100 and 1,000.
    #[arg(long = "feed", value_name = "READERS")]
    feed_readers: Option<usize>,
    /// Seconds of appends at the reporters' pace for --feed.
    #[arg(long, default_value_t = 30.0)]
    feed_seconds: f64,
}

fn main() {
    let mut opts = Options::parse();
    opts.reps = opts.reps.max(1);
    opts.scale_locations = opts.scale_locations.max(1);
    sitrep::telemetry::init(sitrep::telemetry::LogFormat::Text);
    if let Err(e) = run(opts) {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

fn run(opts: Options) -> anyhow::Result<()> {
    if let Some(rows) = opts.acled_rows {
        return acled::run(&opts, rows);
    }
    if let Some(url) = &opts.store {
        return postgres::run(&opts, url);
    }
    runtime(opts.feed_readers.is_some())?.block_on(async {
        if let Some(readers) = opts.feed_readers {
            feed::run(&opts, readers).await
        } else if opts.checkpoints {
            checkpoints::run(&opts).await
        } else {
            machine::run(&opts).await
        }
    })
}

/// The load generator's runtime. With `yield_cpu` (`--feed`), its threads run
/// at the lowest priority (nice 19): the feed's thousands of readers stand for
/// viewers on other machines, and on a machine shared with the server they
/// take only the CPU the server and the reporter (a thread of its own, at the
/// normal priority) leave.
fn runtime(yield_cpu: bool) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    if yield_cpu {
        // On Linux, a priority set for "this process" (no pid) is the
        // calling thread's alone.
        builder.on_thread_start(|| {
            if let Err(e) = rustix::process::setpriority_process(None, 19) {
                eprintln!("could not lower the readers' priority: {e}");
            }
        });
    }
    Ok(builder.build()?)
}
