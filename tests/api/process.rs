//! The real `sitrep serve` binary as a child process, for signals and crashes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct ServerProcess {
    pub child: Child,
    pub address: String,
    /// Everything the server wrote to stderr so far.
    pub log: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Start `sitrep serve` on a random loopback port with JSON logs.
    pub fn start(data_dir: &Path, extra: &[&str]) -> ServerProcess {
        ServerProcess::try_start(data_dir, extra).unwrap_or_else(|log| panic!("the server did not start: {log}"))
    }

    /// Start `sitrep <args>` (a command that logs the port it listens on) with
    /// JSON logs, e.g. `serve` or `witness`.
    pub fn start_command(args: &[&str]) -> ServerProcess {
        ServerProcess::try_start_command(args).unwrap_or_else(|log| panic!("the server did not start: {log}"))
    }

    /// `start`, or the server's log when it does not start (it exited, or did
    /// not listen within a minute).
    pub fn try_start(data_dir: &Path, extra: &[&str]) -> Result<ServerProcess, String> {
        let data_dir = data_dir.to_str().expect("a UTF-8 path");
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir];
        args.extend_from_slice(extra);
        ServerProcess::try_start_command(&args)
    }

    fn try_start_command(args: &[&str]) -> Result<ServerProcess, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sitrep"))
            .args(["--log-format", "json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sitrep starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if let Some(port) = v["fields"]["port"].as_u64() {
                        let _ = tx.send(port);
                    }
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let Ok(port) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(log.lock().unwrap().clone());
        };
        Ok(ServerProcess {
            child,
            address: format!("http://127.0.0.1:{port}"),
            log,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GET `path` and read the answer as JSON.
    pub async fn json(&self, path: &str) -> serde_json::Value {
        reqwest::get(self.url(path)).await.unwrap().json().await.unwrap()
    }

    /// POST `body` to `/v1/events` with `client`: the status and the answer
    /// (null when it is not JSON).
    pub async fn post_json(&self, client: &reqwest::Client, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let res = client
            .post(self.url("/v1/events"))
            .json(body)
            .send()
            .await
            .expect("the server answers");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Wait for the process to exit; its exit code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the server did not exit in {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `sitrep` to completion.
pub fn sitrep_output(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sitrep"))
        .args(args)
        .output()
        .expect("sitrep runs")
}

/// Run `sitrep` to completion; (exit code, stdout, stderr).
pub fn sitrep(args: &[&str]) -> (Option<i32>, String, String) {
    let out = sitrep_output(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A tokens file with fresh tokens for each (principal, role); returns the tokens.
pub fn tokens_file(path: &PathBuf, who: &[(&str, &str)]) -> Vec<String> {
    let mut lines = String::from("# principal role sha256\n");
    let mut tokens = Vec::new();
    for (principal, role) in who {
        let (code, token, err) = sitrep(&["token", "new", "--principal", principal, "--role", role]);
        assert_eq!(code, Some(0), "{err}");
        lines.push_str(err.lines().last().unwrap());
        lines.push('\n');
        tokens.push(token.trim().to_owned());
    }
    std::fs::write(path, lines).unwrap();
    tokens
}

/// What an attacker with disk access does: edit an exported log, then re-chain
/// every hash so the chain checks again. Returns the events and their NDJSON.
pub fn rechained(export: &[u8], edit: impl FnOnce(&mut [serde_json::Value])) -> (Vec<serde_json::Value>, String) {
    let mut events: Vec<serde_json::Value> = String::from_utf8_lossy(export)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    edit(&mut events);
    let mut prev = "0".repeat(64);
    for e in events.iter_mut() {
        e["prev_hash"] = serde_json::json!(prev);
        let stored: sitrep::domain::StoredEvent = serde_json::from_value(e.clone()).unwrap();
        prev = sitrep::domain::integrity::event_hash(&stored).to_hex();
        e["hash"] = serde_json::json!(prev);
    }
    let ndjson = events.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n");
    (events, ndjson)
}

/// Events per append while building a large log.
const BUILD_BATCH_EVENTS: usize = 1000;

/// Fill the empty data dir `dir` with `events` events: the location `aleppo`,
/// then reports on it, written through the ledger in full batches.
pub async fn large_log(dir: &Path, events: usize) {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let ledger = sitrep::ledger::Ledger::open(&dir).unwrap();
        let parse = |v: serde_json::Value| sitrep::domain::NewEvent::from_json(&v).unwrap();
        let mut batch = vec![parse(crate::helpers::location("aleppo", None))];
        for i in 1..events {
            batch.push(parse(crate::helpers::dev(
                "report",
                "aleppo",
                "2024-12-01T00:00:00Z",
                serde_json::json!({ "summary": format!("report {i}") }),
            )));
            if batch.len() == BUILD_BATCH_EVENTS || i + 1 == events {
                ledger
                    .append_blocking(std::mem::take(&mut batch), true, "builder".into())
                    .unwrap();
            }
        }
        ledger.close();
    })
    .await
    .unwrap();
}

/// The value of the unlabelled metric `name` in a `/metrics` text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} is not in the metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

impl ServerProcess {
    /// The current value of the unlabelled metric `name` (a server without tokens).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(self.url("/metrics")).await.unwrap().text().await.unwrap();
        metric(&text, name)
    }

    /// Poll the metric `name` until `done` holds for it (at most `limit`);
    /// its last value.
    pub async fn metric_until(&self, name: &str, limit: Duration, done: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.metric(name).await;
            if done(v) || Instant::now() > deadline {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
