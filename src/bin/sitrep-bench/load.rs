//! The load generator and what every workload shares: the server under test,
//! keep-alive connections sending requests back to back, medians over
//! repetitions, and the table the figures are printed in.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

/// How often a starting server is asked whether it is healthy.
const HEALTH_POLL: Duration = Duration::from_millis(5);

/// A `sitrep` child process (the binary next to this one), stopped on drop.
pub struct Server {
    child: Option<Child>,
    pub url: String,
}

impl Server {
    pub fn spawn(dir: &Path) -> anyhow::Result<Server> {
        Server::spawn_args(&["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir.to_string_lossy()])
    }

    /// `sitrep <args>`: a command that logs the port it listens on.
    pub fn spawn_args(args: &[&str]) -> anyhow::Result<Server> {
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

    /// Poll `GET /healthz` until it answers 200.
    pub async fn wait_healthy(&self, client: &reqwest::Client) {
        loop {
            if let Ok(res) = client.get(format!("{}/healthz", self.url)).send().await {
                if res.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn stop(&mut self) {
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
pub fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// A `/proc/PID/status` figure in kB (`VmRSS`, `VmHWM`), as MiB.
pub fn status_mib(pid: u32, field: &str) -> f64 {
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

#[derive(Default, Clone)]
pub struct Load {
    pub done: u64,
    pub errors: u64,
    pub secs: f64,
    pub lat_us: Vec<u32>,
}

impl Load {
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.secs
    }

    pub fn pct(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return 0.0;
        }
        let i = ((self.lat_us.len() as f64 * p).ceil() as usize).clamp(1, self.lat_us.len()) - 1;
        self.lat_us[i] as f64 / 1000.0
    }
}

/// One request of a workload.
pub struct Req {
    pub post: bool,
    pub path: String,
    pub body: Option<Vec<u8>>,
    /// The status that counts as done; any 2xx when `None`.
    pub expect: Option<u16>,
}

pub fn get(path: String) -> Req {
    Req {
        post: false,
        path,
        body: None,
        expect: None,
    }
}

pub fn post(path: &str, body: &Value) -> Req {
    Req {
        post: true,
        path: path.to_owned(),
        body: Some(serde_json::to_vec(body).expect("JSON")),
        expect: None,
    }
}

pub type MakeRequest = Arc<dyn Fn(usize, u64) -> Req + Send + Sync>;

/// A keep-alive HTTP/1.1 connection (hyper's client, no pool or middleware,
/// so the load generator stays cheap next to the server).
pub struct Conn {
    pub sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>,
}

pub async fn connect(authority: &str) -> anyhow::Result<Conn> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(Conn { sender })
}

/// `base` (`http://host:port`) as the `host:port` to connect to.
pub fn authority(base: &str) -> String {
    base.trim_start_matches("http://").trim_end_matches('/').to_owned()
}

/// `r` as a hyper request to `authority`, with `auth` as its `Authorization`.
pub fn request(
    r: Req,
    authority: &str,
    auth: Option<&str>,
) -> hyper::Request<http_body_util::Full<hyper::body::Bytes>> {
    let mut b = hyper::Request::builder()
        .method(if r.post { "POST" } else { "GET" })
        .uri(&r.path)
        .header("host", authority);
    if r.body.is_some() {
        b = b.header("content-type", "application/json");
    }
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(http_body_util::Full::new(hyper::body::Bytes::from(
        r.body.unwrap_or_default(),
    )))
    .expect("request")
}

/// `conns` connections, each sending requests back to back for `secs`.
pub async fn load(base: &str, token: Option<String>, conns: usize, secs: f64, make: MakeRequest) -> Load {
    use http_body_util::BodyExt;
    let authority = authority(base);
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
                let req = request(r, &authority, auth.as_deref());
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

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub struct Row {
    pub name: String,
    pub rate: f64,
    pub unit: &'static str,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
}

/// One HTTP workload.
pub struct Workload {
    pub name: String,
    pub conns: usize,
    /// Events per request (for batches).
    pub per_request: f64,
    pub make: MakeRequest,
}

impl Workload {
    pub fn new(name: &str, conns: usize, make: MakeRequest) -> Workload {
        Workload {
            name: name.to_owned(),
            conns,
            per_request: 1.0,
            make,
        }
    }
}

/// A set of workloads measured together.
pub struct Measured {
    pub rows: Vec<Row>,
    /// `rates[w][r]`: workload `w`'s rate in repetition `r`.
    pub rates: Vec<Vec<f64>>,
    pub errors: u64,
}

impl Measured {
    /// The median over repetitions of `rates[a] / rates[b]` in the same repetition.
    pub fn ratio(&self, a: usize, b: usize) -> f64 {
        median(self.rates[a].iter().zip(&self.rates[b]).map(|(x, y)| x / y).collect())
    }
}

/// Run the workloads one after the other, `reps` times over, so that the
/// workloads whose ratios are reported run back to back under the same
/// conditions on a shared machine; each row is the median of its repetitions.
pub async fn measure_set(base: &str, token: &Option<String>, reps: usize, secs: f64, set: Vec<Workload>) -> Measured {
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
pub async fn measure(base: &str, token: &Option<String>, reps: usize, secs: f64, w: Workload) -> (Row, u64) {
    let m = measure_set(base, token, reps, secs, vec![w]).await;
    let row = m.rows.into_iter().next().expect("one workload");
    (row, m.errors)
}

/// The server a run loads, how long and how often, and the errors seen so far.
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub reps: usize,
    pub secs: f64,
    /// For the setup and read-back calls around the measured load.
    pub client: reqwest::Client,
    /// Non-2xx answers or errors during the measured runs.
    pub errors: u64,
}

impl Target {
    pub fn new(url: String, token: Option<String>, reps: usize, secs: f64) -> Target {
        Target {
            url,
            token,
            reps,
            secs,
            client: reqwest::Client::new(),
            errors: 0,
        }
    }

    /// One workload, `reps` times ([`measure`]).
    pub async fn measure(&mut self, w: Workload) -> Row {
        self.measure_reps(self.reps, w).await
    }

    /// One workload, `reps` times, whatever the run's repetitions.
    pub async fn measure_reps(&mut self, reps: usize, w: Workload) -> Row {
        let (row, errors) = measure(&self.url, &self.token, reps, self.secs, w).await;
        self.errors += errors;
        row
    }

    /// Workloads back to back in every repetition ([`measure_set`]).
    pub async fn measure_set(&mut self, set: Vec<Workload>) -> Measured {
        let m = measure_set(&self.url, &self.token, self.reps, self.secs, set).await;
        self.errors += m.errors;
        m
    }

    /// `GET path` of the server, as JSON (setup and read-back calls only).
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        Ok(authed(self.client.get(format!("{}{path}", self.url)), &self.token)
            .send()
            .await?
            .json()
            .await?)
    }
}

pub fn authed(req: reqwest::RequestBuilder, token: &Option<String>) -> reqwest::RequestBuilder {
    // Setup calls only; the measured load goes through `load`.
    match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}

pub fn print_table(rows: &[Row]) {
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

pub fn tempfile_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
