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
    spawn_app_with(tmp, demo, |_| {}).await
}

/// A server on `tmp` with settings of the test's own on top of the defaults.
pub async fn spawn_app_with(tmp: Arc<TempDir>, demo: bool, configure: impl Fn(&mut Settings)) -> TestApp {
    let dir = tmp.path().join("data");
    let mut settings = Settings::new(dir.clone(), "127.0.0.1:0");
    settings.demo = demo;
    settings.workers = 2;
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

/// Register actors saa and hts and the locations aleppo (with districts north
/// and south) in one batch.
pub async fn seed_basics(app: &TestApp) {
    let (status, body) = app
        .post_json(&json!([
            actor("saa"),
            actor("hts"),
            location("aleppo", None),
            location("aleppo-north", Some("aleppo")),
            location("aleppo-south", Some("aleppo")),
        ]))
        .await;
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
