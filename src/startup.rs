//! Building and running the server: open the ledger (rebuilding the projection
//! from the log), optionally load the demo, bind, serve until told to stop.
//! Tests call [`Application::build`] with port 0 and talk to the real thing.

use std::net::{IpAddr, TcpListener};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::web;
use anyhow::{bail, Context};
use governor::{Quota, RateLimiter};
use tokio::sync::watch;

use crate::api::{self, AppState};
use crate::auth::Tokens;
use crate::domain::limits::MAX_BODY_BYTES;
use crate::ledger::{Appended, Ledger};
use crate::transparency::signer::Checkpointer;

/// Time a client has to send its request head.
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to send a request body, once its head has arrived
/// (`--body-timeout`): a body trickled slower is refused with `408`.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle time before a keep-alive connection is closed.
pub const KEEP_ALIVE: Duration = Duration::from_secs(75);
/// Time a client has to acknowledge a connection shutdown.
pub const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Open connections per worker thread besides its share of the live feed's
/// slots (`--max-subscribers`); more wait in the accept backlog.
pub const MAX_CONNECTIONS_PER_WORKER: usize = 4096;
/// Time graceful shutdown gives in-flight requests.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default per-principal rate limit (requests per second, and burst) when tokens are on.
pub const DEFAULT_RATE_PER_SECOND: u32 = 200;
/// Default number of live-feed subscribers served at once: what
/// `sitrep-bench --feed 10000` shows a 2-core machine serving with every
/// event delivered and appends unslowed (README, "Performance").
pub const DEFAULT_MAX_SUBSCRIBERS: usize = 10_000;
/// Open files kept for everything but the live feed's subscribers (the
/// store, requests) when judging whether the open-file limit holds the feed.
const FILES_BESIDES_THE_FEED: u64 = 1024;

/// Everything `serve` needs, passed explicitly.
#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// Where the log is, when not sled in `data_dir`.
    pub store: Option<crate::store::Location>,
    /// How long a read with `min_seq` waits for this server to fold it.
    pub min_seq_wait: Duration,
    pub listen: String,
    pub body_limit: usize,
    /// Time a client has to send a request body.
    pub body_timeout: Duration,
    pub demo: bool,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// The tokens file; without one the server runs open, on loopback only.
    pub tokens: Option<PathBuf>,
    /// Requests per second per principal (0: no limit). Applies with tokens.
    pub rate_per_second: u32,
    /// The log's signing key: with it, the server signs checkpoints.
    pub signing_key: Option<PathBuf>,
    /// Time between two checkpoints.
    pub checkpoint_interval: Duration,
    /// Witnesses to send each new checkpoint to.
    pub witnesses: Vec<crate::transparency::signer::WitnessTarget>,
    /// Live-feed subscribers served at once (with tokens, a quarter per principal).
    pub max_subscribers: usize,
    /// The log's origin name, the `source` of its CloudEvents.
    pub origin: String,
}

impl Settings {
    pub fn new(data_dir: PathBuf, listen: impl Into<String>) -> Settings {
        Settings {
            data_dir,
            store: None,
            min_seq_wait: crate::api::guard::MIN_SEQ_WAIT,
            listen: listen.into(),
            body_limit: MAX_BODY_BYTES,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            demo: false,
            workers: 0,
            tokens: None,
            rate_per_second: DEFAULT_RATE_PER_SECOND,
            signing_key: None,
            checkpoint_interval: crate::transparency::signer::DEFAULT_INTERVAL,
            witnesses: Vec::new(),
            max_subscribers: DEFAULT_MAX_SUBSCRIBERS,
            origin: crate::formats::cloudevents::DEFAULT_ORIGIN.to_owned(),
        }
    }
}

/// Is `listen` (host:port) a loopback address? `localhost` counts.
pub fn is_loopback(listen: &str) -> bool {
    let host = match listen.rsplit_once(':') {
        Some((h, _)) => h,
        None => listen,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

pub struct Application {
    server: Server,
    port: u16,
    ledger: Arc<Ledger>,
    auth: api::guard::Auth,
    tokens_path: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    tokens_reloaded: watch::Sender<u64>,
}

/// Stops a running application gracefully: live feeds end, in-flight requests
/// finish, queued appends are written, the store is closed.
#[derive(Clone)]
pub struct StopHandle {
    server: ServerHandle,
    shutdown: watch::Sender<bool>,
}

impl StopHandle {
    pub async fn stop(&self) {
        let _ = self.shutdown.send(true);
        self.server.stop(true).await;
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        crate::metrics::init();
        open_files_for(settings.max_subscribers);
        // Protected mode: refuse before touching the store.
        let auth = match &settings.tokens {
            Some(path) => {
                let tokens =
                    Tokens::load(path).with_context(|| format!("refusing to start with {}", path.display()))?;
                tracing::info!(tokens = tokens.len(), "bearer tokens loaded");
                Some(Arc::new(RwLock::new(tokens)))
            }
            None if !is_loopback(&settings.listen) => bail!(
                "refusing to listen on {} without tokens: anyone who can reach it could write to the log. \
                 Give --tokens FILE (see `sitrep token new`) or listen on a loopback address such as 127.0.0.1:8080",
                settings.listen
            ),
            None => None,
        };
        if settings.signing_key.is_none() && !settings.witnesses.is_empty() {
            bail!("--witness needs --signing-key: witnesses cosign only signed checkpoints");
        }
        // The key and the last signed checkpoint, also before the store.
        let checkpoints = match &settings.signing_key {
            Some(key) => Some(Arc::new(Checkpointer::open(
                &settings.data_dir,
                key,
                settings.witnesses.clone(),
                settings.checkpoint_interval,
            )?)),
            None => None,
        };
        let dir = settings.data_dir.clone();
        let location = (settings.store.clone()).unwrap_or_else(|| crate::store::Location::Sled(dir.clone()));
        let started = std::time::Instant::now();
        let ledger = {
            let location = location.clone();
            tokio::task::spawn_blocking(move || Ledger::open_at(&location, Some(&dir)))
        }
        .await
        .context("opening the store")?
        .with_context(|| format!("cannot open the store ({})", location.describe()))?;
        let ledger = Arc::new(ledger);
        tracing::info!(
            store = %location.describe(),
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
        let limiter = match (&auth, NonZeroU32::new(settings.rate_per_second)) {
            (Some(_), Some(rate)) => Some(Arc::new(RateLimiter::keyed(Quota::per_second(rate)))),
            _ => None,
        };
        let listener =
            TcpListener::bind(&settings.listen).with_context(|| format!("cannot listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (tokens_reloaded, tokens_reloaded_rx) = watch::channel(0);
        if let Some(signer) = &checkpoints {
            tracing::info!(vkey = %signer.vkey(), witnesses = settings.witnesses.len(), "signing checkpoints");
            tokio::spawn(signer.clone().run(ledger.clone(), shutdown_rx.clone()));
        }
        let state = web::Data::new(AppState {
            ledger: ledger.clone(),
            body_limit: settings.body_limit,
            body_timeout: settings.body_timeout,
            auth: auth.clone(),
            limiter,
            refusals: auth.as_ref().map(|_| Arc::new(api::guard::peer_limiter())),
            shutdown: shutdown_rx,
            checkpoints,
            subscribers: Arc::new(api::Subscribers::new(settings.max_subscribers, auth.is_some())),
            fanout: api::Fanout::start(ledger.subscribe(), settings.origin.clone())?,
            verifier: Arc::default(),
            tokens_reloaded: tokens_reloaded_rx,
            origin: settings.origin.clone(),
            min_seq_wait: settings.min_seq_wait,
        });
        let server = api::serve(listener, state, settings.workers)?;
        tracing::info!(listen = %settings.listen, port, open = auth.is_none(), "serving");
        Ok(Application {
            server,
            port,
            ledger,
            auth,
            tokens_path: settings.tokens.clone(),
            shutdown,
            tokens_reloaded,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn ledger(&self) -> Arc<Ledger> {
        self.ledger.clone()
    }

    /// A handle that stops the server gracefully.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            server: self.server.handle(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// Serve until stopped through a [`StopHandle`], then finish the appends
    /// already queued and close the store.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let ledger = self.ledger;
        tokio::task::spawn_blocking(move || ledger.close()).await.ok();
        tracing::info!("stopped; every acknowledged append is on disk");
        result
    }

    /// Serve with the process's signals: SIGTERM and SIGINT stop gracefully,
    /// SIGHUP reloads the tokens file (keeping the old tokens if it is bad).
    pub async fn run_with_signals(self) -> anyhow::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let stop = self.stop_handle();
        let auth = self.auth.clone();
        let tokens_path = self.tokens_path.clone();
        let reloaded = self.tokens_reloaded.clone();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                    _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
                    _ = hup.recv() => reload(&auth, tokens_path.as_deref(), &reloaded),
                }
            }
            stop.stop().await;
        });
        self.run_until_stopped().await?;
        Ok(())
    }
}

/// Swap in the tokens file's tokens; live feeds whose token is gone then end.
fn reload(auth: &api::guard::Auth, path: Option<&std::path::Path>, reloaded: &watch::Sender<u64>) {
    let (Some(auth), Some(path)) = (auth, path) else {
        tracing::info!("SIGHUP: no tokens file to reload");
        return;
    };
    match Tokens::load(path) {
        Ok(tokens) => {
            let n = tokens.len();
            *auth.write().expect("tokens lock") = tokens;
            reloaded.send_modify(|n| *n += 1);
            tracing::info!(tokens = n, "SIGHUP: tokens reloaded");
        }
        Err(e) => tracing::error!(error = %e, "SIGHUP: tokens file not reloaded; the previous tokens stay in force"),
    }
}

/// Raise the open-file limit to its hard limit (each subscriber is a socket),
/// and warn when even that cannot hold `subscribers` besides the rest.
fn open_files_for(subscribers: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if let Err(e) = setrlimit(Resource::Nofile, raised) {
        tracing::warn!(error = %e, "could not raise the open-file limit");
    }
    let files = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let wanted = subscribers as u64 + FILES_BESIDES_THE_FEED;
    if files < wanted {
        tracing::warn!(
            open_files = files,
            max_subscribers = subscribers,
            "the open-file limit cannot hold the live feed's subscribers besides other connections: \
             raise it (ulimit -n, LimitNOFILE=) to {wanted} or lower --max-subscribers"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_addresses() {
        for a in [
            "127.0.0.1:8080",
            "127.8.9.1:1",
            "localhost:80",
            "[::1]:8080",
            "LOCALHOST:1",
        ] {
            assert!(is_loopback(a), "{a}");
        }
        for a in [
            "0.0.0.0:8080",
            "[::]:8080",
            "10.0.0.1:80",
            "example.org:80",
            "192.168.1.2:8080",
        ] {
            assert!(!is_loopback(a), "{a}");
        }
    }
}
