//! The ledger: the single writer that owns appends, and the reader's way in.
//!
//! Appends from every request go through one bounded queue to one thread
//! (`writer`). The thread takes whatever has queued up (a *group*), takes the
//! store's write lock, folds anything other servers appended before it, checks
//! each request against the projection plus what the group has staged so far
//! (`plan`), assigns gapless seqs and versions, chains the hashes, writes the
//! whole group atomically and durably, advances the projection, and only then
//! answers every request of the group. Group commit needs no timer: while one
//! group syncs, the next one queues, so the batch grows with the load and a lone
//! client never waits for a window.
//!
//! Readers take the projection's read lock; the writer takes the write lock only
//! to apply a group that is already durable. Start-up (`restore`) and
//! `sitrep import` (`import`) have files of their own.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::domain::event::{NewEvent, Receipt, StoredEvent};
use crate::domain::limits::MAX_BATCH_EVENTS;
use crate::domain::Problem;
use crate::projection::Projection;
use crate::store::{Location, Store, StoreError};

mod import;
mod plan;
mod restore;
mod writer;

pub use restore::{check_and_apply, rebuild, restore};

/// Committed groups kept for the live feed; a receiver that falls further
/// behind catches up from the store instead.
const FEED_GROUPS: usize = 4096;
/// Events folded at start-up beyond which a fresh checkpoint is written.
const CHECKPOINT_AFTER_EVENTS: u64 = 10_000;
/// Requests waiting for the writer; beyond this, appends wait to enqueue.
const QUEUE_JOBS: usize = 1024;
/// Most events the writer puts in one group (one sled batch, one fsync).
const MAX_GROUP_EVENTS: usize = 8 * MAX_BATCH_EVENTS;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the log breaks a rule at seq {seq}: {reason}")]
    Invalid { seq: u64, reason: String },
    #[error("{0}")]
    Import(String),
}

/// How an append went.
#[derive(Debug)]
pub enum Appended {
    /// New events, now durable (HTTP 201).
    Created(Vec<Receipt>),
    /// Every event was already in the log with the same content (HTTP 200).
    Retried(Vec<Receipt>),
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Rejected(#[from] Problem),
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
}

enum Job {
    Append {
        events: Vec<NewEvent>,
        /// Posted as an array: answers and field paths are per item.
        batch: bool,
        principal: String,
        reply: oneshot::Sender<Result<Appended, AppendError>>,
    },
    /// Fold what other servers appended.
    Follow,
    Stop,
}

/// Events made durable and folded together (a group, or a step of following
/// other servers), in seq order, as the live feed receives them.
#[derive(Debug)]
pub struct Committed {
    pub events: Vec<StoredEvent>,
}

pub struct Ledger {
    store: Arc<dyn Store>,
    /// Where projection checkpoints are kept.
    checkpoints: Option<PathBuf>,
    projection: Arc<RwLock<Projection>>,
    feed: broadcast::Sender<Arc<Committed>>,
    folded: watch::Receiver<u64>,
    wake: Arc<dyn Fn() + Send + Sync>,
    tx: mpsc::Sender<Job>,
    writer: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Ledger {
    /// Open the sled store in `dir` (its checkpoints beside it).
    pub fn open(dir: &Path) -> Result<Ledger, LedgerError> {
        Ledger::open_at(&Location::Sled(dir.to_owned()), Some(dir))
    }

    /// Open the store at `location`, restore the projection (from its
    /// checkpoint in `checkpoints` and the events after it, or from the whole
    /// log; every hash and link checked), and start the writer.
    pub fn open_at(location: &Location, checkpoints: Option<&Path>) -> Result<Ledger, LedgerError> {
        let store = location.open()?;
        if let Some(dir) = checkpoints {
            std::fs::create_dir_all(dir).map_err(StoreError::Io)?;
        }
        let (projection, replayed) = restore(&*store, checkpoints)?;
        if let Some(dir) = checkpoints.filter(|_| replayed >= CHECKPOINT_AFTER_EVENTS) {
            // Spare the next start-up this fold; the server does not wait for it.
            let snapshot = projection.clone();
            let dir = dir.to_owned();
            std::thread::spawn(move || {
                if let Err(e) = crate::checkpoint::save(&dir, &snapshot) {
                    tracing::warn!(error = %e, "could not write a projection checkpoint");
                }
            });
        }
        let (folded_tx, folded) = watch::channel(projection.head_seq());
        let last_recorded_at = projection.last_recorded_at().map(|t| t.at());
        let projection = Arc::new(RwLock::new(projection));
        let (tx, rx) = mpsc::channel(QUEUE_JOBS);
        let (feed, _) = broadcast::channel(FEED_GROUPS);
        let follow_queued = Arc::new(AtomicBool::new(false));
        let wake: Arc<dyn Fn() + Send + Sync> = {
            let (tx, queued) = (tx.clone(), follow_queued.clone());
            Arc::new(move || {
                if !queued.swap(true, Ordering::SeqCst) && tx.try_send(Job::Follow).is_err() {
                    queued.store(false, Ordering::SeqCst);
                }
            })
        };
        let writer = {
            let writer = writer::Writer {
                store: store.clone(),
                projection: projection.clone(),
                feed: feed.clone(),
                folded: folded_tx,
                follow_queued,
                last_recorded_at,
            };
            std::thread::Builder::new()
                .name("sitrep-writer".into())
                .spawn(move || writer.run(rx))
                .map_err(StoreError::Io)?
        };
        {
            let wake = wake.clone();
            store.watch(Box::new(move || wake()));
        }
        Ok(Ledger {
            store,
            checkpoints: checkpoints.map(Path::to_owned),
            projection,
            feed,
            folded,
            wake,
            tx,
            writer: std::sync::Mutex::new(Some(writer)),
        })
    }

    /// The read models. Hold the guard briefly: the writer waits for it.
    pub fn read(&self) -> RwLockReadGuard<'_, Projection> {
        self.projection.read().expect("projection lock poisoned")
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The storage fault that stopped appends, if one did.
    pub fn fault(&self) -> Option<String> {
        self.store.fault()
    }

    /// Wait until the projection has folded `seq`, at most `timeout`. Returns
    /// the seq folded by then.
    pub async fn folded(&self, seq: u64, timeout: Duration) -> Result<u64, u64> {
        let mut folded = self.folded.clone();
        if *folded.borrow() >= seq {
            return Ok(*folded.borrow());
        }
        // Another server may have appended it: look now, not at the next poll.
        (self.wake)();
        let reached = match tokio::time::timeout(timeout, folded.wait_for(|f| *f >= seq)).await {
            Ok(Ok(f)) => Some(*f),
            _ => None,
        };
        reached.ok_or_else(|| *self.folded.borrow())
    }

    /// Committed events from now on, a group at a time, in seq order. A
    /// receiver that lags more than the feed holds gets `Lagged` and must
    /// catch up from the store.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Committed>> {
        self.feed.subscribe()
    }
    /// Append events (one, or an atomic batch) as `principal`.
    pub async fn append(&self, events: Vec<NewEvent>, batch: bool, principal: String) -> Result<Appended, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job::Append {
                events,
                batch,
                principal,
                reply,
            })
            .await
            .map_err(|_| AppendError::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| AppendError::Unavailable("the writer has stopped".into()))?
    }

    /// `append` for callers outside an async runtime.
    pub fn append_blocking(
        &self,
        events: Vec<NewEvent>,
        batch: bool,
        principal: String,
    ) -> Result<Appended, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .blocking_send(Job::Append {
                events,
                batch,
                principal,
                reply,
            })
            .map_err(|_| AppendError::Unavailable("the writer has stopped".into()))?;
        answer
            .blocking_recv()
            .map_err(|_| AppendError::Unavailable("the writer has stopped".into()))?
    }

    /// Finish every queued append, then stop the writer. Later appends answer
    /// `Unavailable`.
    pub fn close(&self) {
        let handle = self.writer.lock().expect("writer lock").take();
        if let Some(handle) = handle {
            // The writer answers everything queued before Stop, then exits. No
            // blocking send: close may run on an async runtime's thread.
            while let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(Job::Stop) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let _ = handle.join();
            if self.fault().is_none() {
                if let Some(dir) = &self.checkpoints {
                    if let Err(e) = crate::checkpoint::save(dir, &self.read()) {
                        tracing::warn!(error = %e, "could not write a projection checkpoint");
                    }
                }
            }
        }
    }

    /// One line of an export (without its newline): the event as served.
    pub fn export_line(event: &StoredEvent) -> String {
        serde_json::to_string(event).expect("stored events serialize")
    }

    /// Read one line of an export as strictly as a request body is read.
    pub fn import_line(line: &str) -> Result<StoredEvent, String> {
        let value = crate::domain::json::parse(line.as_bytes()).map_err(|e| format!("not a stored event: {e}"))?;
        serde_json::from_value(value).map_err(|e| format!("not a stored event: {e}"))
    }

    /// Restore an export into the empty store at `location`, exactly: same
    /// seqs, times, principals and hashes.
    pub fn import(
        location: &Location,
        events: impl Iterator<Item = Result<StoredEvent, String>>,
    ) -> Result<u64, LedgerError> {
        import::import(&*location.open()?, events)
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.close();
    }
}

/// The Merkle leaf of an event: its hash's 32 bytes.
fn leaf_of(event: &StoredEvent) -> [u8; 32] {
    *event.hash.as_bytes()
}
