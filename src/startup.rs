//! Building and running the server: open the ledger (rebuilding the projection
//! from the log), optionally load the demo, bind, serve until told to stop.
//! Tests call [`Application::build`] with port 0 and talk to the real thing.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context;

use crate::api::{self, AppState};
use crate::domain::limits::MAX_BODY_BYTES;
use crate::ledger::{Appended, Ledger};

/// The principal recorded as `recorded_by` while the server runs without tokens.
pub const ANONYMOUS: &str = "anonymous";

/// Everything `serve` needs, passed explicitly.
#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: String,
    pub body_limit: usize,
    pub demo: bool,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
}

impl Settings {
    pub fn new(data_dir: PathBuf, listen: impl Into<String>) -> Settings {
        Settings {
            data_dir,
            listen: listen.into(),
            body_limit: MAX_BODY_BYTES,
            demo: false,
            workers: 0,
        }
    }
}

pub struct Application {
    server: Server,
    port: u16,
    ledger: Arc<Ledger>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let dir = settings.data_dir.clone();
        let started = std::time::Instant::now();
        let ledger = tokio::task::spawn_blocking(move || Ledger::open(&dir))
            .await
            .context("opening the store")?
            .with_context(|| format!("cannot open the store in {}", settings.data_dir.display()))?;
        let ledger = Arc::new(ledger);
        tracing::info!(
            data_dir = %settings.data_dir.display(),
            seq = ledger.read().head_seq(),
            millis = started.elapsed().as_millis() as u64,
            "log loaded and projections rebuilt"
        );
        if settings.demo {
            match crate::demo::load(&ledger).await {
                Ok(Appended::Created(r)) => tracing::info!(events = r.len(), "demo scenario loaded"),
                Ok(Appended::Retried(_)) => tracing::info!("demo scenario already present"),
                Err(e) => tracing::warn!(error = %e, "demo scenario not loaded (the store holds other events)"),
            }
        }
        let listener =
            TcpListener::bind(&settings.listen).with_context(|| format!("cannot listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState {
            ledger: ledger.clone(),
            body_limit: settings.body_limit,
            principal: ANONYMOUS.to_owned(),
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(middleware::from_fn(api::request_id))
                .configure(api::configure)
        })
        .listen(listener)?;
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        let server = server.run();
        tracing::info!(listen = %settings.listen, port, "serving");
        Ok(Application { server, port, ledger })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn ledger(&self) -> Arc<Ledger> {
        self.ledger.clone()
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serve until stopped (SIGINT/SIGTERM or the handle), then finish the
    /// appends already queued and close the store.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let ledger = self.ledger;
        tokio::task::spawn_blocking(move || ledger.close()).await.ok();
        result
    }
}
