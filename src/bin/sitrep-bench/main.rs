//! `sitrep-bench`: figures for this machine, printed as a table. Against its own
//! server (the `sitrep` binary next to this one, as a child process on a temp
//! dir, so server and load generator CPU can be told apart) or against
//! `--server URL`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};

use sitrep::domain::NewEvent;
use sitrep::ledger::Ledger;

mod acled;
mod postgres;

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

/// Locations the HTTP workloads write to and read from.
const BENCH_LOCATIONS: usize = 100;

struct Server {
    child: Option<Child>,
    url: String,
}

impl Server {
    fn spawn(dir: &Path) -> anyhow::Result<Server> {
        Server::spawn_args(&["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir.to_string_lossy()])
    }

    /// `sitrep <args>`: a command that logs the port it listens on.
    fn spawn_args(args: &[&str]) -> anyhow::Result<Server> {
        let mut child = Command::new(server_binary()?)
            .args(["--log-format", "json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if let Some(p) = v["fields"]["port"].as_u64() {
                        let _ = tx.send(p);
                    }
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(300))
            .context("the server did not start")?;
        Ok(Server {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `sitrep` binary next to this one: the bench measures the build it came with.
fn server_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let server = exe.with_file_name(format!("sitrep{}", std::env::consts::EXE_SUFFIX));
    if !server.is_file() {
        bail!(
            "no sitrep binary next to {} (build both: cargo build --release)",
            exe.display()
        );
    }
    Ok(server)
}

/// CPU seconds a process has used (user + system), from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// A `/proc/PID/status` figure in kB (`VmRSS`, `VmHWM`), as MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

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

#[derive(Default, Clone)]
struct Load {
    done: u64,
    errors: u64,
    secs: f64,
    lat_us: Vec<u32>,
}

impl Load {
    fn rate(&self) -> f64 {
        self.done as f64 / self.secs
    }

    fn pct(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return 0.0;
        }
        let i = ((self.lat_us.len() as f64 * p).ceil() as usize).clamp(1, self.lat_us.len()) - 1;
        self.lat_us[i] as f64 / 1000.0
    }
}

/// One request of a workload.
struct Req {
    post: bool,
    path: String,
    body: Option<Vec<u8>>,
    /// The status that counts as done; any 2xx when `None`.
    expect: Option<u16>,
}

fn get(path: String) -> Req {
    Req {
        post: false,
        path,
        body: None,
        expect: None,
    }
}

fn post(path: &str, body: &Value) -> Req {
    Req {
        post: true,
        path: path.to_owned(),
        body: Some(serde_json::to_vec(body).expect("JSON")),
        expect: None,
    }
}

type MakeRequest = Arc<dyn Fn(usize, u64) -> Req + Send + Sync>;

/// A keep-alive HTTP/1.1 connection (hyper's client, no pool or middleware,
/// so the load generator stays cheap next to the server).
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>,
}

async fn connect(authority: &str) -> anyhow::Result<Conn> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(Conn { sender })
}

/// `conns` connections, each sending requests back to back for `secs`.
async fn load(base: &str, token: Option<String>, conns: usize, secs: f64, make: MakeRequest) -> Load {
    use http_body_util::BodyExt;
    let authority = base.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let auth = token.map(|t| format!("Bearer {t}"));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..conns {
        let make = make.clone();
        let authority = authority.clone();
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Load::default();
            let mut conn = None;
            let mut n = 0u64;
            while Instant::now() < deadline {
                if conn.is_none() {
                    match connect(&authority).await {
                        Ok(c) => conn = Some(c),
                        Err(_) => {
                            out.errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let c = conn.as_mut().expect("connected");
                let r = make(task, n);
                let expect = r.expect;
                n += 1;
                let mut b = hyper::Request::builder()
                    .method(if r.post { "POST" } else { "GET" })
                    .uri(&r.path)
                    .header("host", &authority);
                if r.body.is_some() {
                    b = b.header("content-type", "application/json");
                }
                if let Some(a) = &auth {
                    b = b.header("authorization", a);
                }
                let req = b
                    .body(http_body_util::Full::new(hyper::body::Bytes::from(
                        r.body.unwrap_or_default(),
                    )))
                    .expect("request");
                let t = Instant::now();
                let ok = match c.sender.send_request(req).await {
                    Ok(res) => {
                        let status = res.status();
                        let done = res.into_body().collect().await.is_ok();
                        done && expect.map_or(status.is_success(), |e| status.as_u16() == e)
                    }
                    Err(_) => {
                        conn = None;
                        false
                    }
                };
                if ok {
                    out.done += 1;
                    out.lat_us.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                } else {
                    out.errors += 1;
                }
            }
            out
        }));
    }
    let mut total = Load::default();
    for t in tasks {
        let l = t.await.expect("load task");
        total.done += l.done;
        total.errors += l.errors;
        total.lat_us.extend(l.lat_us);
    }
    total.secs = started.elapsed().as_secs_f64();
    total.lat_us.sort_unstable();
    total
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Row {
    name: String,
    rate: f64,
    unit: &'static str,
    p50: Option<f64>,
    p99: Option<f64>,
    p999: Option<f64>,
}

/// Open `n` live-feed subscribers that read everything from the head on; each
/// counts the events it receives.
async fn subscribe(
    base: &str,
    token: &Option<String>,
    n: usize,
) -> anyhow::Result<Vec<Arc<std::sync::atomic::AtomicU64>>> {
    let client = reqwest::Client::new();
    let head: Value = authed(client.get(format!("{base}/v1/audit/head")), token)
        .send()
        .await?
        .json()
        .await?;
    let after = head["seq"].as_u64().unwrap_or(0);
    let mut counters = Vec::new();
    for _ in 0..n {
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = counter.clone();
        let mut res = authed(client.get(format!("{base}/v1/events/stream?after={after}")), token)
            .send()
            .await?;
        tokio::spawn(async move {
            while let Ok(Some(chunk)) = res.chunk().await {
                let ids = chunk.windows(4).filter(|w| w == b"id: ").count() as u64;
                c.fetch_add(ids, std::sync::atomic::Ordering::Relaxed);
            }
        });
        counters.push(counter);
    }
    Ok(counters)
}

/// One HTTP workload.
struct Workload {
    name: String,
    conns: usize,
    /// Events per request (for batches).
    per_request: f64,
    make: MakeRequest,
}

impl Workload {
    fn new(name: &str, conns: usize, make: MakeRequest) -> Workload {
        Workload {
            name: name.to_owned(),
            conns,
            per_request: 1.0,
            make,
        }
    }
}

/// A set of workloads measured together.
struct Measured {
    rows: Vec<Row>,
    /// `rates[w][r]`: workload `w`'s rate in repetition `r`.
    rates: Vec<Vec<f64>>,
    errors: u64,
}

impl Measured {
    /// The median over repetitions of `rates[a] / rates[b]` in the same repetition.
    fn ratio(&self, a: usize, b: usize) -> f64 {
        median(self.rates[a].iter().zip(&self.rates[b]).map(|(x, y)| x / y).collect())
    }
}

/// Run the workloads one after the other, `reps` times over, so that the
/// workloads whose ratios are reported run back to back under the same
/// conditions on a shared machine; each row is the median of its repetitions.
async fn measure_set(base: &str, token: &Option<String>, reps: usize, secs: f64, set: Vec<Workload>) -> Measured {
    let mut loads: Vec<Vec<Load>> = set.iter().map(|_| Vec::new()).collect();
    let mut errors = 0;
    for _ in 0..reps {
        for (w, l) in set.iter().zip(&mut loads) {
            let load = load(base, token.clone(), w.conns, secs, w.make.clone()).await;
            errors += load.errors;
            l.push(load);
        }
    }
    let mut rows = Vec::new();
    let mut rates = Vec::new();
    for (w, l) in set.iter().zip(loads) {
        let r: Vec<f64> = l.iter().map(|l| l.rate() * w.per_request).collect();
        let row = Row {
            name: w.name.clone(),
            rate: median(r.clone()),
            unit: if w.per_request > 1.0 || w.name.contains("append") {
                "events/s"
            } else {
                "req/s"
            },
            p50: Some(median(l.iter().map(|l| l.pct(0.5)).collect())),
            p99: Some(median(l.iter().map(|l| l.pct(0.99)).collect())),
            p999: Some(median(l.iter().map(|l| l.pct(0.999)).collect())),
        };
        eprintln!("  {:<44} {:>10.0} {}", row.name, row.rate, row.unit);
        rows.push(row);
        rates.push(r);
    }
    Measured { rows, rates, errors }
}

/// One workload, `reps` times; the median of each figure.
async fn measure(base: &str, token: &Option<String>, reps: usize, secs: f64, w: Workload) -> (Row, u64) {
    let m = measure_set(base, token, reps, secs, vec![w]).await;
    let row = m.rows.into_iter().next().expect("one workload");
    (row, m.errors)
}

fn authed(req: reqwest::RequestBuilder, token: &Option<String>) -> reqwest::RequestBuilder {
    // Setup calls only; the measured load goes through `load`.
    match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}

fn event_body(task: usize, n: u64) -> Value {
    json!({
        "id": uuid::Uuid::new_v4(),
        "type": "report",
        "location": format!("bench-{}", (task + n as usize) % BENCH_LOCATIONS),
        "occurred_at": "2024-11-30T10:00:00Z",
        "source": {"name": "Al Jazeera", "kind": "news_agency", "reliability": "B", "credibility": 2},
        "data": {"summary": "Rebel fighters were combing the city in search of soldiers, a witness said; people were confused because they had not been following the news"}
    })
}

fn setup_events(locations: usize, actors: usize) -> Vec<Value> {
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
fn scale_event(i: u64, locations: u64, actors: u64) -> Value {
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

fn print_table(rows: &[Row]) {
    println!("| figure | rate | p50 ms | p99 ms | p99.9 ms |");
    println!("|---|---:|---:|---:|---:|");
    let f = |v: Option<f64>| v.map_or("".to_owned(), |x| format!("{x:.2}"));
    for r in rows {
        println!(
            "| {} | {:.0} {} | {} | {} | {} |",
            r.name,
            r.rate,
            r.unit,
            f(r.p50),
            f(r.p99),
            f(r.p999)
        );
    }
}

fn run(opts: Options) -> anyhow::Result<()> {
    if let Some(rows) = opts.acled_rows {
        return acled(&opts, rows);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(opts))
}

async fn run_async(opts: Options) -> anyhow::Result<()> {
    if opts.checkpoints {
        return checkpoints(opts).await;
    }
    if let Some(url) = &opts.store {
        return postgres::run(&opts, url).await;
    }
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
    let tmp = tempfile_dir("sitrep-bench")?;
    let mut own = None;
    let url = match &opts.server {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            let s = Server::spawn(&tmp.join("http"))?;
            let u = s.url.clone();
            own = Some(s);
            u
        }
    };
    let token = opts.token.clone();
    let client = reqwest::Client::new();
    // Streams to write to (idempotent: a rerun against the same server is a retry).
    let setup = setup_events(BENCH_LOCATIONS, 10);
    let res = authed(client.post(format!("{url}/v1/events")), &token)
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
    let server_pid = own.as_ref().and_then(Server::pid).map(|p| p.to_string());
    let cpu_before = (cpu_seconds("self"), server_pid.as_deref().map_or(0.0, cpu_seconds));
    let (reps, secs) = (opts.reps, opts.seconds);
    let mut rows = Vec::new();
    let mut errors = 0;

    eprintln!("HTTP workloads against {url}");
    let ceiling = || {
        Workload::new(
            "HTTP ceiling: GET /healthz, 64 conns",
            64,
            Arc::new(|_, _| get("/healthz".into())),
        )
    };
    let appends = |conns: usize| {
        Workload::new(
            &format!("durable appends: POST /v1/events, {conns} conns"),
            conns,
            Arc::new(|task, n| post("/v1/events", &event_body(task, n))),
        )
    };
    // One ceiling run first, alone: it warms the server up and shows how the
    // CPU splits between the load generator and the server at the ceiling.
    let (_, e) = measure(&url, &token, 1, secs, ceiling()).await;
    errors += e;
    let ceiling_cpu = (
        cpu_seconds("self") - cpu_before.0,
        server_pid.as_deref().map_or(0.0, cpu_seconds) - cpu_before.1,
    );
    for conns in [1, 16] {
        let (row, e) = measure(&url, &token, reps, secs, appends(conns)).await;
        errors += e;
        rows.push(row);
    }
    // The workloads the targets compare, back to back in every repetition.
    // Refused appends post the same bodies to an unregistered location: a rule
    // in the writer refuses them (422), so they cost everything an append
    // costs but the hash chain, the sled write and the fsync.
    let set = measure_set(
        &url,
        &token,
        reps,
        secs,
        vec![
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
        ],
    )
    .await;
    errors += set.errors;
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
    let append64 = set.rows[1].rate;
    let mut set_rows = set.rows.into_iter();
    rows.insert(0, set_rows.next().expect("ceiling"));
    rows.push(set_rows.next().expect("appends"));
    let (row, e) = measure(&url, &token, reps, secs, appends(256)).await;
    errors += e;
    rows.push(row);
    rows.extend(set_rows);
    let (row, e) = measure(
        &url,
        &token,
        reps,
        secs,
        Workload {
            per_request: 100.0,
            ..Workload::new(
                "batch appends: 100 events a request, 16 conns",
                16,
                Arc::new(|task, n| {
                    let batch: Vec<Value> = (0..100).map(|k| event_body(task, n * 100 + k)).collect();
                    post("/v1/events", &json!(batch))
                }),
            )
        },
    )
    .await;
    errors += e;
    rows.push(row);
    let head: Value = authed(client.get(format!("{url}/v1/audit/head")), &token)
        .send()
        .await?
        .json()
        .await?;
    let at_seq = head["seq"].as_u64().unwrap_or(0) / 2;
    // Time travel and proofs, over the log the appends above have written.
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
    for w in reads {
        let (row, e) = measure(&url, &token, reps, secs, w).await;
        errors += e;
        rows.push(row);
    }
    // Appends with 100 live subscribers attached (same run).
    let subscribers = subscribe(&url, &token, 100).await?;
    let (row, e) = measure(
        &url,
        &token,
        reps,
        secs,
        Workload::new(
            "durable appends, 64 conns, 100 live subscribers attached",
            64,
            Arc::new(|task, n| post("/v1/events", &event_body(task, n))),
        ),
    )
    .await;
    errors += e;
    rows.push(row);
    let delivered: u64 = subscribers
        .iter()
        .map(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    eprintln!("  the 100 subscribers received {delivered} events in all");
    let cpu_after = (cpu_seconds("self"), server_pid.as_deref().map_or(0.0, cpu_seconds));
    if let Some(mut s) = own.take() {
        s.stop();
    }

    // The storage floor, in this process, with the store's own sync.
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
    rows.extend(floor);

    // At scale.
    let mut scale_rows = Vec::new();
    if opts.scale_events > 0 {
        let dir = tmp.join("scale");
        eprintln!(
            "at scale: writing {} events over {} locations",
            opts.scale_events, opts.scale_locations
        );
        let started = Instant::now();
        write_scale_log(Ledger::open(&dir)?, opts.scale_events, opts.scale_locations).await?;
        let write_secs = started.elapsed().as_secs_f64();
        let total = opts.scale_events + opts.scale_locations + 100;
        eprintln!(
            "  written in {write_secs:.1} s ({:.0} events/s through the ledger)",
            total as f64 / write_secs
        );
        // Raw scan vs rebuild, both warm.
        let (mut scans, mut rebuilds) = (Vec::new(), Vec::new());
        {
            let store = sitrep::store::SledStore::open(&dir)?;
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
        }
        let (scan, rebuild) = (median(scans), median(rebuilds));
        eprintln!("  raw scan {scan:.0} events/s, rebuild {rebuild:.0} events/s");
        // Start-up to healthy, memory, as_of latency, size on disk.
        let mut startups = Vec::new();
        let mut rss = 0.0;
        let mut as_of = Load::default();
        let mut export = None;
        // The first start folds the whole log (no checkpoint); the others start
        // from the checkpoint the previous stop wrote.
        let _ = std::fs::remove_file(dir.join("projection.checkpoint"));
        let mut full_fold = 0.0;
        for r in 0..=reps {
            let t = Instant::now();
            let mut s = Server::spawn(&dir)?;
            loop {
                if let Ok(res) = client.get(format!("{}/healthz", s.url)).send().await {
                    if res.status().is_success() {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if r == 0 {
                full_fold = t.elapsed().as_secs_f64();
            } else {
                startups.push(t.elapsed().as_secs_f64());
            }
            if r == reps {
                rss = s.pid().map_or(0.0, |pid| status_mib(pid, "VmRSS:"));
                let locs = opts.scale_locations as usize;
                as_of = load(
                    &s.url,
                    None,
                    16,
                    secs,
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
                    export = Some(csv_export(&client, &s.url, pid).await?);
                }
            }
            s.stop();
        }
        let startup = median(startups.clone());
        let bytes = dir_bytes(&dir);
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
            "| start-up to healthy, folding the whole log (no checkpoint) | {full_fold:.2} s |"
        ));
        scale_rows.push(format!(
            "| start-up to healthy from the checkpoint (runs: {}) | {startup:.2} s |",
            startups
                .iter()
                .map(|s| format!("{s:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        scale_rows.push(format!("| resident memory after start-up | {rss:.0} MiB |"));
        scale_rows.push(format!(
            "| as_of + at_seq status query, 16 conns | {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms |",
            as_of.rate(),
            as_of.pct(0.5),
            as_of.pct(0.99)
        ));
        if let Some(x) = &export {
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
    }

    println!();
    print_table(&rows);
    println!();
    println!("| ratio (median of per-repetition ratios, back-to-back runs) | value | target |");
    println!("|---|---:|---:|");
    for (value, name, target) in ratios {
        println!("| {name} | {value:.2} | {target} |");
    }
    if let Some(with_subs) = rows.iter().find(|r| r.name.contains("live subscribers")) {
        println!(
            "| durable appends at 64 conns, with / without 100 live subscribers | {:.2} | |",
            with_subs.rate / append64
        );
    }
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
    println!("Non-2xx answers or errors during the HTTP runs: {errors}");
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// Signed checkpoints and witnesses: what a checkpoint costs to sign, verify
/// and serve, what a witness round trip costs (a signed checkpoint one event
/// larger, its consistency proof, the witness's check, fsync and cosignature),
/// and durable appends with and without two witnesses attached to a server that
/// signs every 0.1 s, measured back to back in each repetition.
async fn checkpoints(opts: Options) -> anyhow::Result<()> {
    use base64::prelude::{Engine, BASE64_STANDARD};
    use sha2::{Digest, Sha256};
    use sitrep::domain::integrity::{consistency_proof, MerkleFrontier, NodeId};
    use sitrep::transparency::checkpoint::{self, Checkpoint};
    use sitrep::transparency::cosignature::{count_cosigners, CosignatureVerifier, Cosigner};
    use sitrep::transparency::note::{verifier, PrivateKey};
    /// Signatures timed in process.
    const SIGNATURES: u32 = 2000;

    let (reps, secs) = (opts.reps, opts.seconds);
    println!("sitrep-bench --checkpoints: medians of {reps} runs of {secs:.1} s each");
    let tmp = tempfile_dir("sitrep-bench-checkpoints")?;
    let mut rows = Vec::new();

    // Sign and verify, in process.
    let log = PrivateKey::generate("bench.example/log")?;
    let log_v = verifier(&log.vkey()).map_err(anyhow::Error::msg)?;
    let sample = |i: u32| Checkpoint {
        origin: log.name().to_owned(),
        size: u64::from(i) + 1_000_000,
        root: Sha256::digest(i.to_be_bytes()).into(),
    };
    let started = Instant::now();
    let notes: Vec<Vec<u8>> = (0..SIGNATURES)
        .map(|i| sample(i).sign(log.signer()).to_bytes())
        .collect();
    let sign_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(SIGNATURES);
    let started = Instant::now();
    for n in &notes {
        checkpoint::open(n, &log_v)?;
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(SIGNATURES);

    // Two witnesses; the first also watches a second log, for the round trips.
    let direct = PrivateKey::generate("bench.example/direct")?;
    let log_key = tmp.join("log.key");
    log.save(&log_key)?;
    let mut witnesses = Vec::new();
    let mut targets = Vec::new();
    for i in 1..=2 {
        let key = PrivateKey::generate(&format!("bench.example/w{i}"))?;
        let path = tmp.join(format!("w{i}.key"));
        key.save(&path)?;
        let vkey = Cosigner::new(key.name(), key.ed25519().clone()).vkey();
        let dir = tmp.join(format!("w{i}"));
        let (lv, dv) = (log.vkey(), direct.vkey());
        let w = Server::spawn_args(&[
            "witness",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &dir.to_string_lossy(),
            "--key",
            &path.to_string_lossy(),
            "--log",
            &lv,
            &dv,
        ])?;
        targets.push(format!("{}+{vkey}", w.url));
        witnesses.push((w, CosignatureVerifier::parse(&vkey).map_err(anyhow::Error::msg)?));
    }

    // Witness round trips: checkpoints of a log growing by one leaf each.
    let client = reqwest::Client::new();
    let mut tree = MerkleFrontier::default();
    let mut nodes = std::collections::HashMap::new();
    let mut lat_us = Vec::new();
    let until = Instant::now() + Duration::from_secs_f64(secs * reps as f64);
    while Instant::now() < until {
        let old = tree.size();
        nodes.extend(tree.push(&Sha256::digest(old.to_be_bytes())));
        let new = tree.size();
        let proof = if old == 0 {
            Vec::new()
        } else {
            let mut get = |id: NodeId| nodes.get(&id).copied().ok_or(id);
            consistency_proof(old, new, &mut get).map_err(|id| anyhow::anyhow!("no node {id:?}"))?
        };
        let note = Checkpoint {
            origin: direct.name().to_owned(),
            size: new,
            root: tree.root(),
        }
        .sign(direct.signer())
        .to_bytes();
        let mut body = format!("old {old}\n");
        for h in &proof {
            body.push_str(&BASE64_STANDARD.encode(h));
            body.push('\n');
        }
        body.push('\n');
        let mut body = body.into_bytes();
        body.extend_from_slice(&note);
        let started = Instant::now();
        let res = client
            .post(format!("{}/add-checkpoint", witnesses[0].0.url))
            .body(body)
            .send()
            .await?;
        let status = res.status();
        res.bytes().await?;
        if status != 200 {
            bail!("the witness answered {status} to checkpoint {new}");
        }
        lat_us.push(started.elapsed().as_micros() as u32);
    }
    lat_us.sort_unstable();
    let round_trips = Load {
        done: lat_us.len() as u64,
        errors: 0,
        secs: secs * reps as f64,
        lat_us,
    };
    rows.push(Row {
        name: "witness round trip: add-checkpoint, one at a time".into(),
        rate: round_trips.rate(),
        unit: "req/s",
        p50: Some(round_trips.pct(0.5)),
        p99: Some(round_trips.pct(0.99)),
        p999: Some(round_trips.pct(0.999)),
    });

    // Appends: a plain server and one that signs every 0.1 s with both witnesses.
    let plain = Server::spawn(&tmp.join("plain"))?;
    let mut args = vec![
        "serve".to_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        tmp.join("signed").to_string_lossy().into_owned(),
        "--signing-key".into(),
        log_key.to_string_lossy().into_owned(),
        "--checkpoint-interval".into(),
        "0.1".into(),
    ];
    for t in &targets {
        args.extend(["--witness".to_owned(), t.clone()]);
    }
    let signed = Server::spawn_args(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    for s in [&plain, &signed] {
        let res = client
            .post(format!("{}/v1/events", s.url))
            .json(&setup_events(BENCH_LOCATIONS, 10))
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("setting up the bench streams failed: {}", res.status());
        }
    }
    let appends = |name: &str| {
        Workload::new(
            &format!("durable appends, 64 conns, {name}"),
            64,
            Arc::new(|task, n| post("/v1/events", &event_body(task, n))),
        )
    };
    let mut with = Vec::new();
    let mut without = Vec::new();
    let mut errors = 0;
    for _ in 0..reps {
        let (row, e) = measure(&plain.url, &None, 1, secs, appends("no signing key")).await;
        errors += e;
        without.push(row);
        let (row, e) = measure(&signed.url, &None, 1, secs, appends("signing every 0.1 s, 2 witnesses")).await;
        errors += e;
        with.push(row);
    }
    let ratio = median(with.iter().zip(&without).map(|(a, b)| a.rate / b.rate).collect());
    let pick = |v: Vec<Row>| {
        let rates: Vec<f64> = v.iter().map(|r| r.rate).collect();
        let m = median(rates);
        v.into_iter().find(|r| r.rate == m).expect("the median is one of them")
    };
    rows.push(pick(without));
    rows.push(pick(with));
    let (row, e) = measure(
        &signed.url,
        &None,
        reps,
        secs,
        Workload::new(
            "serve: GET /v1/audit/checkpoint, 64 conns",
            64,
            Arc::new(|_, _| get("/v1/audit/checkpoint".into())),
        ),
    )
    .await;
    errors += e;
    rows.push(row);
    let (row, e) = measure(
        &signed.url,
        &None,
        reps,
        secs,
        Workload::new(
            "HTTP ceiling: GET /healthz, 64 conns",
            64,
            Arc::new(|_, _| get("/healthz".into())),
        ),
    )
    .await;
    errors += e;
    rows.push(row);
    // The signer kept up: the served checkpoint carries both cosignatures.
    let served = client
        .get(format!("{}/v1/audit/checkpoint", signed.url))
        .send()
        .await?
        .bytes()
        .await?;
    let (cp, note) = checkpoint::open(&served, &log_v)?;
    let verifiers: Vec<CosignatureVerifier> = witnesses.iter().map(|(_, v)| v.clone()).collect();
    let cosigned = count_cosigners(&note, &verifiers);

    println!();
    print_table(&rows);
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| sign a checkpoint (Ed25519 signed note), in process | {sign_us:.1} µs |");
    println!("| verify a checkpoint (parse + Ed25519), in process | {verify_us:.1} µs |");
    println!(
        "| durable appends with / without signing and 2 witnesses (median of per-repetition ratios) | {ratio:.2} |"
    );
    println!(
        "| served checkpoint after the runs: size, cosignatures | {}, {cosigned} of {} |",
        cp.size,
        verifiers.len()
    );
    println!();
    println!("Non-2xx answers or errors during the HTTP runs: {errors}");
    drop((plain, signed, witnesses));
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// `sitrep-bench --acled ROWS`: the import rate of a synthetic ACLED export
/// into a server of its own (or `--server`), printed as a table.
fn acled(opts: &Options, rows: u64) -> anyhow::Result<()> {
    let tmp = tempfile_dir("sitrep-bench-acled")?;
    let own = match &opts.server {
        Some(_) => None,
        None => Some(Server::spawn(&tmp.join("data"))?),
    };
    let url = opts
        .server
        .clone()
        .or_else(|| own.as_ref().map(|s| s.url.clone()))
        .expect("a server of its own or --server");
    let figures = acled::rates(&url, opts.token.clone(), &tmp, rows)?;
    drop(own);
    println!("| figure | rate |");
    println!("|---|---:|");
    for (name, rate) in figures {
        println!("| {name} | {rate:.0} rows/s |");
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// Write the at-scale log through `ledger`: `locations` locations, 100 actors
/// and `events` developments, as fast as the writer goes; then close it.
async fn write_scale_log(ledger: Ledger, events: u64, locations: u64) -> anyhow::Result<()> {
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

fn tempfile_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
