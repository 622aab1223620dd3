//! Spawning the real server and talking to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sitrep::startup::{Application, Settings};
use tempfile::TempDir;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub dir: PathBuf,
    /// Keeps the temp dir alive for as long as any app on it runs.
    pub tmp: Arc<TempDir>,
    pub ledger: Arc<sitrep::ledger::Ledger>,
    handle: sitrep::startup::StopHandle,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A fresh server on an empty store.
pub async fn spawn_app() -> TestApp {
    let tmp = Arc::new(tempfile::tempdir().expect("temp dir"));
    spawn_app_on(tmp, false).await
}

/// A fresh server with the Aleppo demo loaded.
pub async fn spawn_demo_app() -> TestApp {
    let tmp = Arc::new(tempfile::tempdir().expect("temp dir"));
    spawn_app_on(tmp, true).await
}

/// A server on an existing data dir (a restart). Retries briefly while the
/// previous server releases the store.
pub async fn spawn_app_on(tmp: Arc<TempDir>, demo: bool) -> TestApp {
    spawn_with(tmp, |s| s.demo = demo).await
}

/// A server on `tmp` with settings of the test's choosing.
pub async fn spawn_with(tmp: Arc<TempDir>, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tmp.path().join("data");
    let mut settings = Settings::new(dir.clone(), "127.0.0.1:0");
    settings.workers = 2;
    settings.store = backend_store(&tmp);
    configure(&mut settings);
    let mut last_err = None;
    for _ in 0..100 {
        match Application::build(settings.clone()).await {
            Ok(app) => {
                let address = format!("http://127.0.0.1:{}", app.port());
                let handle = app.stop_handle();
                let ledger = app.ledger();
                let running = tokio::spawn(app.run_until_stopped());
                return TestApp {
                    address,
                    client: reqwest::Client::new(),
                    dir,
                    tmp,
                    ledger,
                    handle,
                    running,
                };
            }
            Err(e) => {
                last_err = Some(e);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    panic!("server did not start: {:?}", last_err);
}

/// With `SITREP_TEST_BACKEND=postgres`, the servers of these tests keep their
/// logs in PostgreSQL: a database of its own per temp dir, so a restart on the
/// same dir finds its log. (The databases live as long as the test server.)
fn backend_store(tmp: &TempDir) -> Option<sitrep::store::Location> {
    static DATABASES: std::sync::Mutex<Option<std::collections::HashMap<PathBuf, String>>> =
        std::sync::Mutex::new(None);
    match std::env::var("SITREP_TEST_BACKEND").as_deref() {
        Ok("postgres") => {}
        Ok("sled") | Err(_) => return None,
        Ok(other) => panic!("SITREP_TEST_BACKEND={other}: sled or postgres"),
    }
    let mut dbs = DATABASES.lock().unwrap();
    let url = dbs
        .get_or_insert_with(Default::default)
        .entry(tmp.path().to_owned())
        .or_insert_with(|| {
            let db =
                crate::postgres::fresh_database().expect("SITREP_TEST_BACKEND=postgres needs SITREP_TEST_POSTGRES");
            let url = db.url().to_owned();
            std::mem::forget(db);
            url
        })
        .clone();
    Some(sitrep::store::Location::Postgres(url))
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_events(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/events"))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// POST a body exactly as written (for JSON a `Value` cannot hold:
    /// duplicate members, number spellings).
    pub async fn post_text(&self, body: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/events"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request sent")
    }

    /// POST and return (status, JSON body).
    pub async fn post_json(&self, body: &Value) -> (u16, Value) {
        let res = self.post_events(body).await;
        let status = res.status().as_u16();
        (status, res.json().await.expect("JSON body"))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let res = self.get(path).await;
        let status = res.status().as_u16();
        (status, res.json().await.expect("JSON body"))
    }

    /// GET that must succeed; returns the body.
    pub async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get_json(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// GET with a bearer token that must succeed; returns the body.
    pub async fn ok_with(&self, path: &str, token: &str) -> Value {
        let res = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent");
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.expect("JSON body")
    }

    /// `GET path` with a bearer token: the body as text, whatever its status.
    pub async fn text_with(&self, path: &str, token: &str) -> String {
        let res = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent");
        res.text().await.expect("a text body")
    }

    /// Stop gracefully and wait until the store is released.
    pub async fn stop(self) -> Arc<TempDir> {
        drop(self.ledger);
        self.handle.stop().await;
        self.running.await.expect("server task").expect("server ran");
        self.tmp
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }
}

pub fn source() -> Value {
    json!({"name": "Reuters", "kind": "news_agency"})
}

pub fn claim(by: &str) -> Value {
    json!({"name": "General command", "kind": "official", "claimant": by})
}

pub fn actor(id: &str) -> Value {
    json!({"type": "actor_registered", "actor": id, "data": {"name": id.to_uppercase(), "kind": "non_state_group"}})
}

pub fn location(id: &str, parent: Option<&str>) -> Value {
    let mut data = json!({"name": id, "kind": "city", "lat": 36.2, "lon": 37.1});
    if let Some(p) = parent {
        data["parent"] = json!(p);
    }
    json!({"type": "location_registered", "location": id, "data": data})
}

/// A location development.
pub fn dev(ty: &str, location: &str, occurred_at: &str, data: Value) -> Value {
    json!({"type": ty, "location": location, "occurred_at": occurred_at, "source": source(), "data": data})
}

/// Actors saa and hts and the locations aleppo (with districts north and
/// south), as one batch.
pub fn basics() -> Value {
    json!([
        actor("saa"),
        actor("hts"),
        location("aleppo", None),
        location("aleppo-north", Some("aleppo")),
        location("aleppo-south", Some("aleppo")),
    ])
}

/// Register [`basics`].
pub async fn seed_basics(app: &TestApp) {
    let (status, body) = app.post_json(&basics()).await;
    assert_eq!(status, 201, "{body}");
}

/// Assert a problem+json answer with `status` and `code`; returns the body.
pub async fn assert_problem(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status);
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(ct.starts_with("application/problem+json"), "content-type {ct}");
    assert!(res.headers().contains_key("x-request-id"));
    let body: Value = res.json().await.expect("problem body");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string() && body["type"].is_string(),
        "{body}"
    );
    body
}

/// A fresh tokens file under `dir` with one token for each (principal, role);
/// returns its path and the tokens by principal.
pub fn tokens_in(dir: &Path, who: &[(&str, &str)]) -> (PathBuf, std::collections::HashMap<String, String>) {
    let mut file = String::from("# principal role sha256-of-the-token\n");
    let mut tokens = std::collections::HashMap::new();
    for (principal, role) in who {
        let (token, hash) = sitrep::auth::new_token();
        file.push_str(&format!("{principal} {role} {hash}\n"));
        tokens.insert((*principal).to_owned(), token);
    }
    let path = dir.join("tokens");
    std::fs::write(&path, file).expect("tokens file written");
    (path, tokens)
}

/// One answer read off a raw socket.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    /// The status line and headers, as sent.
    pub head: String,
    pub body: Vec<u8>,
    /// The server closed the connection after the answer.
    pub closed: bool,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// Assert a problem+json answer with `status` and `code`; returns the body.
    pub fn problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.describe());
        self.any_problem()["code"]
            .as_str()
            .filter(|c| *c == code)
            .unwrap_or_else(|| panic!("code {code} expected: {}", self.describe()));
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Assert a problem+json answer of any status whose `status` member matches; returns the body.
    pub fn any_problem(&self) -> Value {
        let ct = self.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/problem+json"), "{}", self.describe());
        let body: Value = serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("{}", self.describe()));
        assert_eq!(body["status"], self.status, "{}", self.describe());
        assert!(
            body["code"].is_string() && body["detail"].is_string(),
            "{}",
            self.describe()
        );
        body
    }

    pub fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        format!("{}\n\n{}", self.head, &body[..body.len().min(2000)])
    }
}

/// The longest a raw exchange waits for its answer.
pub const RAW_WAIT: Duration = Duration::from_secs(15);
/// The longest a raw exchange waits, after the answer, for the server to close.
const CLOSE_WAIT: Duration = Duration::from_secs(8);

/// Send `bytes` on a fresh connection to `address` (`http://host:port`), then
/// send `trickle` one byte at a time, `gap` apart, until the server answers;
/// read the first answer. `None` when nothing came within [`RAW_WAIT`].
pub async fn raw_exchange(address: &str, bytes: Vec<u8>, trickle: Vec<u8>, gap: Duration) -> Option<RawAnswer> {
    use std::io::{Read, Write};
    let addr = address.trim_start_matches("http://").to_owned();
    let head_only = bytes.starts_with(b"HEAD ");
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(gap.max(Duration::from_millis(50)))).unwrap();
        let _ = s.write_all(&bytes);
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let mut drip = trickle.into_iter();
        let mut closed = false;
        while started.elapsed() < RAW_WAIT {
            match s.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
            if let Some(split) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&out[..split]).into_owned();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.trim()
                            .eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                // An answer to HEAD has no body, whatever its Content-Length.
                let len = if head_only { 0 } else { len };
                if out.len() >= split + 4 + len {
                    // Whether the server closes: one more read, waiting out the
                    // server's disconnect timeout.
                    s.set_read_timeout(Some(CLOSE_WAIT)).unwrap();
                    closed = closed
                        || match s.read(&mut buf) {
                            Ok(n) => n == 0,
                            Err(e) => {
                                !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
                            }
                        };
                    let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
                    return Some(RawAnswer {
                        status,
                        head,
                        body: out[split + 4..split + 4 + len].to_vec(),
                        closed,
                    });
                }
            }
            if out.is_empty() {
                if let Some(b) = drip.next() {
                    let _ = s.write_all(&[b]);
                }
            }
        }
        (!out.is_empty()).then(|| RawAnswer {
            status: 0,
            head: String::from_utf8_lossy(&out).into_owned(),
            body: Vec::new(),
            closed,
        })
    })
    .await
    .expect("raw exchange")
}

/// [`raw_exchange`] without a trickled body.
pub async fn raw(address: &str, bytes: impl Into<Vec<u8>>) -> Option<RawAnswer> {
    raw_exchange(address, bytes.into(), Vec::new(), Duration::from_millis(200)).await
}

/// Copy a directory tree (a store, a fixture) file by file.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
