//! `sitrep bench`: figures for this machine, printed as a table. Against its own
//! server (a child process on a temp dir, so server and load generator CPU can
//! be told apart) or against `--server URL`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::domain::NewEvent;
use crate::ledger::Ledger;

#[derive(Clone, Debug)]
pub struct Options {
    pub server: Option<String>,
    pub token: Option<String>,
    pub reps: usize,
    pub seconds: f64,
    pub scale_events: u64,
    pub scale_locations: u64,
    /// Where the at-scale log is written, and reused by later runs.
    pub scale_dir: Option<PathBuf>,
    /// The parts to run; every part when empty.
    pub only: Vec<Part>,
}

impl Options {
    fn runs(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }
}

/// A part of the bench, for `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// HTTP ceiling, durable, refused and batch appends, status reads, and their ratios.
    Appends,
    /// `as_of` + `at_seq` location reads over HTTP.
    TimeTravel,
    /// Inclusion and consistency proofs.
    Proofs,
    /// Durable appends with 100 live subscribers attached.
    Live,
    /// sled's own insert + flush + fdatasync rate.
    Floor,
    /// A log of `--scale-events` events: raw scan, rebuild, start-up, memory, `as_of` reads, size.
    Scale,
}

/// Locations the HTTP workloads write to and read from.
const BENCH_LOCATIONS: usize = 100;

/// Events the log holds at least before the time-travel and proof figures:
/// batches top it up when the append figures have not written as many (as
/// under `--only`), so that those reads fold a history of a known depth.
const READ_LOG_EVENTS: u64 = 100_000;

/// Events a request of the batch workloads and of the top-up carries.
const BATCH_EVENTS: u64 = 100;

struct Server {
    child: Option<Child>,
    url: String,
}

impl Server {
    fn spawn(dir: &Path) -> anyhow::Result<Server> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
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

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
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
pub struct Req {
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

/// A request of `BATCH_EVENTS` events.
fn batch_body(task: usize, n: u64) -> Value {
    json!((0..BATCH_EVENTS)
        .map(|k| event_body(task, n * BATCH_EVENTS + k))
        .collect::<Vec<_>>())
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

pub fn run(opts: Options) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(opts))
}

async fn run_async(opts: Options) -> anyhow::Result<()> {
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
        "sitrep bench: {cores} cores ({cpu}); medians of {} runs of {:.1} s each",
        opts.reps, opts.seconds
    );
    let tmp = tempfile_dir("sitrep-bench")?;
    let http_parts = [Part::Appends, Part::TimeTravel, Part::Proofs, Part::Live];
    let mut http = if http_parts.iter().any(|p| opts.runs(*p)) {
        Some(http_figures(&opts, &tmp).await?)
    } else {
        None
    };
    let (reps, secs) = (opts.reps, opts.seconds);
    let mut rows = http.as_mut().map(|h| std::mem::take(&mut h.rows)).unwrap_or_default();
    if opts.runs(Part::Floor) {
        rows.extend(floor_figures(&tmp, reps)?);
    }
    let client = reqwest::Client::new();

    // At scale.
    let mut scale_rows = Vec::new();
    if opts.runs(Part::Scale) && opts.scale_events > 0 {
        let dir = opts.scale_dir.clone().unwrap_or_else(|| tmp.join("scale"));
        let total = opts.scale_events + opts.scale_locations + 100;
        let held = if dir.exists() {
            crate::store::Store::open(&dir)?.head().seq
        } else {
            0
        };
        if held != 0 && held != total {
            bail!("{} holds a log of {held} events, not {total}", dir.display());
        }
        let started = Instant::now();
        if held == total {
            eprintln!("at scale: reusing the log of {total} events in {}", dir.display());
        } else {
            eprintln!(
                "at scale: writing {} events over {} locations",
                opts.scale_events, opts.scale_locations
            );
            let ledger = Ledger::open(&dir)?;
            let setup: Vec<NewEvent> = setup_events(opts.scale_locations as usize, 100)
                .iter()
                .map(|v| NewEvent::from_json(v).map_err(|p| anyhow::anyhow!("{p:?}")))
                .collect::<anyhow::Result<_>>()?;
            for chunk in setup.chunks(1000) {
                ledger.append(chunk.to_vec(), true, "bench".into()).await?;
            }
            // Two producers build batches while the ledger commits, so the log is
            // written as fast as the writer goes.
            let ledger = Arc::new(ledger);
            let (events, locations) = (opts.scale_events, opts.scale_locations);
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
        }
        let write_secs = (held != total).then(|| started.elapsed().as_secs_f64());
        if let Some(secs) = write_secs {
            eprintln!(
                "  written in {secs:.1} s ({:.0} events/s through the ledger)",
                total as f64 / secs
            );
        }
        // Raw scan vs rebuild, both warm.
        let (mut scans, mut rebuilds) = (Vec::new(), Vec::new());
        {
            let store = crate::store::Store::open(&dir)?;
            for _ in 0..reps {
                let t = Instant::now();
                let mut n = 0u64;
                for item in store.raw_scan() {
                    item?;
                    n += 1;
                }
                scans.push(n as f64 / t.elapsed().as_secs_f64());
                let t = Instant::now();
                let p = crate::ledger::rebuild(&store)?;
                rebuilds.push(p.head_seq() as f64 / t.elapsed().as_secs_f64());
            }
        }
        let (scan, rebuild) = (median(scans), median(rebuilds));
        eprintln!("  raw scan {scan:.0} events/s, rebuild {rebuild:.0} events/s");
        // Start-up to healthy, memory, as_of latency, size on disk.
        let mut startups = Vec::new();
        let mut rss = 0.0;
        let mut as_of = Load::default();
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
                rss = s.pid().map_or(0.0, rss_mib);
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
            }
            s.stop();
        }
        let startup = median(startups.clone());
        let bytes = dir_bytes(&dir);
        scale_rows.push(format!(
            "| events in the log | {total} ({} locations, 100 actors) |",
            opts.scale_locations
        ));
        scale_rows.push(match write_secs {
            Some(secs) => format!(
                "| write through the ledger (batches of 1000) | {:.0} events/s |",
                total as f64 / secs
            ),
            None => "| write through the ledger (batches of 1000) | (the log of --scale-dir was reused) |".to_owned(),
        });
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
        scale_rows.push(format!(
            "| log size on disk | {:.0} MiB ({:.0} B/event) |",
            bytes as f64 / 1048576.0,
            bytes as f64 / total as f64
        ));
    }

    println!();
    if !rows.is_empty() {
        print_table(&rows);
        println!();
    }
    if let Some(h) = http.as_ref().filter(|h| !h.ratios.is_empty()) {
        println!("| ratio (median of per-repetition ratios, back-to-back runs) | value | target |");
        println!("|---|---:|---:|");
        for (value, name, target) in &h.ratios {
            println!("| {name} | {value:.2} | {target} |");
        }
        println!();
    }
    if !scale_rows.is_empty() {
        println!("| at scale | figure |");
        println!("|---|---|");
        for r in scale_rows {
            println!("{r}");
        }
        println!();
    }
    if let Some(h) = &http {
        if let Some((ceiling, all)) = h.cpu {
            println!(
                "Load generator vs server CPU: during the ceiling run {:.1} s vs {:.1} s; over all HTTP runs {:.1} s vs {:.1} s.",
                ceiling.0, ceiling.1, all.0, all.1
            );
        }
        println!("Non-2xx answers or errors during the HTTP runs: {}", h.errors);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// What the HTTP parts measured.
struct Http {
    rows: Vec<Row>,
    /// `(value, name, target)`.
    ratios: Vec<(f64, String, &'static str)>,
    /// Load generator vs server CPU seconds, during the ceiling run and over all HTTP runs.
    cpu: Option<((f64, f64), (f64, f64))>,
    errors: u64,
}

/// The HTTP figures of the parts `opts` selects, against `--server` or a
/// server of its own on a directory under `tmp`.
async fn http_figures(opts: &Options, tmp: &Path) -> anyhow::Result<Http> {
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
    let mut ratios = Vec::new();
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
    let mut append64 = None;
    if opts.runs(Part::Appends) {
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
        ratios.extend([
            (
                set.ratio(1, 0),
                "durable appends at 64 conns / HTTP ceiling".to_owned(),
                ">= 0.5",
            ),
            (
                set.ratio(2, 0),
                "refused appends at 64 conns / HTTP ceiling".to_owned(),
                "",
            ),
            (
                set.ratio(1, 2),
                "durable / refused appends at 64 conns (hashing, writing, syncing)".to_owned(),
                "",
            ),
            (set.ratio(3, 0), "status reads / HTTP ceiling".to_owned(), ">= 0.7"),
        ]);
        append64 = Some(set.rows[1].rate);
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
                per_request: BATCH_EVENTS as f64,
                ..Workload::new(
                    "batch appends: 100 events a request, 16 conns",
                    16,
                    Arc::new(|task, n| post("/v1/events", &batch_body(task, n))),
                )
            },
        )
        .await;
        errors += e;
        rows.push(row);
    }
    let head_seq = || async {
        let head: Value = authed(client.get(format!("{url}/v1/audit/head")), &token)
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok(head["seq"].as_u64().unwrap_or(0))
    };
    if opts.runs(Part::TimeTravel) || opts.runs(Part::Proofs) {
        let mut n = 0;
        while head_seq().await? < READ_LOG_EVENTS {
            let res = authed(client.post(format!("{url}/v1/events")), &token)
                .json(&batch_body(0, n))
                .send()
                .await?;
            if !res.status().is_success() {
                bail!("topping up the log failed: {} {}", res.status(), res.text().await?);
            }
            n += 1;
        }
    }
    let head = head_seq().await?;
    let at_seq = head / 2;
    // Time travel and proofs, over the log the appends above have written.
    let size = head.max(2);
    let mut reads = Vec::new();
    if opts.runs(Part::TimeTravel) {
        reads.push(Workload::new(
            "time travel: as_of + at_seq, 64 conns",
            64,
            Arc::new(move |task, n| {
                get(format!(
                    "/v1/locations/bench-{}?as_of=2024-11-30T12:00:00Z&at_seq={at_seq}",
                    (task + n as usize) % BENCH_LOCATIONS
                ))
            }),
        ));
    }
    if opts.runs(Part::Proofs) {
        reads.push(Workload::new(
            "inclusion proof: GET /v1/audit/proof/inclusion, 16 conns",
            16,
            Arc::new(move |task, n| {
                get(format!(
                    "/v1/audit/proof/inclusion?seq={}&tree_size={size}",
                    1 + (task as u64 * 7919 + n) % size
                ))
            }),
        ));
        reads.push(Workload::new(
            "consistency proof: GET /v1/audit/proof/consistency, 16 conns",
            16,
            Arc::new(move |task, n| {
                get(format!(
                    "/v1/audit/proof/consistency?first={}&second={size}",
                    1 + (task as u64 * 7919 + n) % size
                ))
            }),
        ));
    }
    for w in reads {
        let (row, e) = measure(&url, &token, reps, secs, w).await;
        errors += e;
        rows.push(row);
    }
    if opts.runs(Part::Live) {
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
        let delivered: u64 = subscribers
            .iter()
            .map(|s| s.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        eprintln!("  the 100 subscribers received {delivered} events in all");
        if let Some(append64) = append64 {
            ratios.push((
                row.rate / append64,
                "durable appends at 64 conns, with / without 100 live subscribers".to_owned(),
                "",
            ));
        }
        rows.push(row);
    }
    let cpu_after = (cpu_seconds("self"), server_pid.as_deref().map_or(0.0, cpu_seconds));
    if let Some(mut s) = own.take() {
        s.stop();
    }
    let cpu = server_pid
        .is_some()
        .then_some((ceiling_cpu, (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1)));
    Ok(Http {
        rows,
        ratios,
        cpu,
        errors,
    })
}

/// The storage floor, in this process, with the store's own sync.
fn floor_figures(tmp: &Path, reps: usize) -> anyhow::Result<Vec<Row>> {
    eprintln!("storage floor");
    let sample = serde_json::to_vec(&event_body(0, 0))?;
    let payload = [sample.as_slice(), &[b' '; 200]].concat();
    let mut floor = Vec::new();
    for (per_sync, events) in [(1usize, 2_000usize), (100, 50_000)] {
        let mut rates = Vec::new();
        for r in 0..reps {
            let d =
                crate::store::storage_floor(&tmp.join(format!("floor-{per_sync}-{r}")), &payload, events, per_sync)?;
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

fn tempfile_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
