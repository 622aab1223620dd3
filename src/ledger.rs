//! The ledger: the single writer that owns appends, and the reader's way in.
//!
//! Appends from every request go through one bounded queue to one thread. The
//! thread takes whatever has queued up (a *group*), checks each request against
//! the projection plus what the group has staged so far, assigns gapless seqs
//! and versions, chains the hashes, writes the whole group with one atomic sled
//! batch, flushes and fsyncs once, advances the projection, and only then
//! answers every request of the group. Group commit needs no timer: while one
//! group syncs, the next one queues, so the batch grows with the load and a lone
//! client never waits for a window.
//!
//! Readers take the projection's read lock; the writer takes the write lock only
//! to apply a group that is already durable.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use crate::domain::event::{ActorAmended, EventData, LocationAmended, NewEvent, Receipt, StoredEvent, StreamRef};
use crate::domain::fact::Fact;
use crate::domain::hash::Hash;
use crate::domain::integrity::{canonical_digest, canonical_event, check_link, MerkleFrontier, GENESIS_HASH};
use crate::domain::limits::{MAX_BATCH_EVENTS, MAX_EVENT_BYTES};
use crate::domain::rules::{self, Catalog, KnownEvent};
use crate::domain::time::UtcTime;
use crate::domain::{Problem, Slug};
use crate::projection::Projection;
use crate::store::{Staged, Store, StoreError};

/// Committed events kept for live subscribers; one that falls further behind
/// catches up from the store instead.
const FEED_EVENTS: usize = 4096;
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
    Stop,
}

/// A committed event as the live feed passes it on, rendered once for every
/// subscriber.
#[derive(Debug)]
pub struct FeedItem {
    pub event: StoredEvent,
    /// The stored event's JSON, as `GET /v1/events` serves it.
    pub json: String,
}

/// The storage fault that stopped appends, if any. sled refuses every write
/// after an I/O error, so appends stay refused until a restart reopens the store.
type Fault = Arc<std::sync::Mutex<Option<String>>>;

pub struct Ledger {
    store: Arc<Store>,
    projection: Arc<RwLock<Projection>>,
    feed: broadcast::Sender<Arc<FeedItem>>,
    fault: Fault,
    tx: mpsc::Sender<Job>,
    writer: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Ledger {
    /// Open the store in `dir`, restore the projection (from its checkpoint and
    /// the events after it, or from the whole log; every hash and link checked),
    /// and start the writer.
    pub fn open(dir: &Path) -> Result<Ledger, LedgerError> {
        let store = Arc::new(Store::open(dir)?);
        let (projection, replayed) = restore(&store)?;
        if replayed >= CHECKPOINT_AFTER_EVENTS {
            // Spare the next start-up this fold; the server does not wait for it.
            let snapshot = projection.clone();
            let dir = dir.to_owned();
            std::thread::spawn(move || {
                if let Err(e) = crate::checkpoint::save(&dir, &snapshot) {
                    tracing::warn!(error = %e, "could not write a projection checkpoint");
                }
            });
        }
        let projection = Arc::new(RwLock::new(projection));
        let (tx, rx) = mpsc::channel(QUEUE_JOBS);
        let (feed, _) = broadcast::channel(FEED_EVENTS);
        let fault = Fault::default();
        let writer = {
            let writer = Writer::new(store.clone(), projection.clone(), feed.clone(), fault.clone());
            std::thread::Builder::new()
                .name("sitrep-writer".into())
                .spawn(move || writer.run(rx))
                .map_err(StoreError::Io)?
        };
        Ok(Ledger {
            store,
            projection,
            feed,
            fault,
            tx,
            writer: std::sync::Mutex::new(Some(writer)),
        })
    }

    /// The read models. Hold the guard briefly: the writer waits for it.
    pub fn read(&self) -> RwLockReadGuard<'_, Projection> {
        self.projection.read().expect("projection lock poisoned")
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The storage fault that stopped appends, if one did.
    pub fn fault(&self) -> Option<String> {
        self.fault.lock().expect("fault lock").clone()
    }

    /// Committed events from now on, in seq order. A receiver that lags more
    /// than the feed holds gets `Lagged` and must catch up from the store.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FeedItem>> {
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
                if let Err(e) = crate::checkpoint::save(self.store.dir(), &self.read()) {
                    tracing::warn!(error = %e, "could not write a projection checkpoint");
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

    /// Restore an export into an empty store, exactly: same seqs, times,
    /// principals and hashes. Checks the chain and every rule as it goes and
    /// writes nothing past the first bad event.
    pub fn import(dir: &Path, events: impl Iterator<Item = Result<StoredEvent, String>>) -> Result<u64, LedgerError> {
        let store = Store::open(dir)?;
        if store.head().seq != 0 {
            return Err(LedgerError::Import(format!(
                "the store in {} is not empty (head seq {})",
                dir.display(),
                store.head().seq
            )));
        }
        let mut projection = Projection::default();
        let mut tree = MerkleFrontier::default();
        let mut chunk: Vec<Staged> = Vec::new();
        let mut prev = GENESIS_HASH;
        let mut count = 0;
        for (n, item) in events.enumerate() {
            let event = item.map_err(|e| LedgerError::Import(format!("line {}: {e}", n + 1)))?;
            let seq = n as u64 + 1;
            let canonical = check_link(&event, seq, &prev).map_err(|reason| LedgerError::Invalid { seq, reason })?;
            let parsed = check_and_apply(&mut projection, &event)?;
            prev = event.hash;
            let fact = Fact::of(event.id, event.version, &parsed);
            let nodes = tree.push(&leaf_of(&event));
            chunk.push(Staged {
                event,
                canonical,
                fact,
                nodes,
            });
            count += 1;
            if chunk.len() >= MAX_BATCH_EVENTS {
                store.append(&chunk)?;
                chunk.clear();
            }
        }
        store.append(&chunk)?;
        Ok(count)
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

/// Re-parse a stored event, hold it to the domain rules, and apply it.
pub fn check_and_apply(projection: &mut Projection, event: &StoredEvent) -> Result<NewEvent, LedgerError> {
    let invalid = |reason: String| LedgerError::Invalid { seq: event.seq, reason };
    let parsed = event
        .to_new_event()
        .map_err(|p| invalid(format!("{p}: {:?}", p.field_errors())))?;
    if parsed.stream != event.stream().ok_or_else(|| invalid("names no stream".into()))? {
        return Err(invalid("stream mismatch".into()));
    }
    rules::check(&parsed, &*projection).map_err(|p| invalid(p.to_string()))?;
    // Applying checks the seq and the stream version too.
    projection.apply(event, &parsed).map_err(|e| invalid(e.reason))?;
    Ok(parsed)
}

/// The projection at start-up: from a sound checkpoint plus the events after
/// it, or folded from the whole log. Returns it and the number of events folded.
pub fn restore(store: &Store) -> Result<(Projection, u64), LedgerError> {
    match crate::checkpoint::load(store.dir()) {
        Ok(Some((seq, hash, projection))) => {
            let matches =
                seq <= store.head().seq && (seq == 0 || store.get(seq).ok().flatten().is_some_and(|e| e.hash == hash));
            if matches {
                let from = seq;
                let p = replay(store, projection, seq + 1, hash)?;
                let folded = p.head_seq() - from;
                tracing::info!(checkpoint_seq = from, folded, "projection restored from its checkpoint");
                return Ok((p, folded));
            }
            tracing::warn!(
                seq,
                "the projection checkpoint does not match the log; folding the whole log"
            );
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "the projection checkpoint is unusable; folding the whole log"),
    }
    let p = rebuild(store)?;
    let folded = p.head_seq();
    Ok((p, folded))
}

/// Fold the whole log into a fresh projection, checking every event's hash
/// and link.
pub fn rebuild(store: &Store) -> Result<Projection, LedgerError> {
    replay(store, Projection::default(), 1, GENESIS_HASH)
}

/// Records handed from the reading thread to the folding thread at a time.
const REPLAY_CHUNK: usize = 1024;

/// Fold the events from `from_seq` on into `projection`; `prev_hash` is the
/// hash of the event before `from_seq`. One thread reads the records and checks
/// each hash (SHA-256 over the stored canonical JSON) and link; this one folds
/// their facts in bulk. Rules are not re-run: every event passed them when it
/// was written, and `sitrep verify` re-runs them and re-derives every fact.
fn replay(
    store: &Store,
    mut projection: Projection,
    from_seq: u64,
    prev_hash: Hash,
) -> Result<Projection, LedgerError> {
    let mut prev = prev_hash;
    projection.begin_bulk();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<crate::store::Record>, StoreError>>(8);
    std::thread::scope(|scope| -> Result<(), LedgerError> {
        scope.spawn(move || {
            let mut chunk = Vec::with_capacity(REPLAY_CHUNK);
            for item in store.records(from_seq) {
                let checked = item.and_then(|r| {
                    r.check_hash()?;
                    if r.prev_hash() != prev {
                        return Err(StoreError::Corrupt {
                            seq: r.seq(),
                            reason: format!(
                                "prev_hash {} does not match the hash of seq {}",
                                r.prev_hash(),
                                r.seq() - 1
                            ),
                        });
                    }
                    prev = r.hash();
                    Ok(r)
                });
                match checked {
                    Ok(r) => {
                        chunk.push(r);
                        if chunk.len() == REPLAY_CHUNK
                            && tx
                                .send(Ok(std::mem::replace(&mut chunk, Vec::with_capacity(REPLAY_CHUNK))))
                                .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
            if !chunk.is_empty() {
                let _ = tx.send(Ok(chunk));
            }
        });
        for chunk in rx {
            for r in chunk? {
                let invalid = |reason: String| LedgerError::Invalid { seq: r.seq(), reason };
                let fact = Fact::from_bytes(r.fact()).map_err(invalid)?;
                projection.apply_fact(r.seq(), &fact).map_err(|e| invalid(e.reason))?;
            }
        }
        Ok(())
    })?;
    projection.end_bulk();
    let head = store.head();
    if head.seq != projection.head_seq() {
        return Err(LedgerError::Invalid {
            seq: head.seq,
            reason: format!(
                "the stored head (seq {}) does not match the last event (seq {})",
                head.seq,
                projection.head_seq()
            ),
        });
    }
    if head.seq > 0 {
        let last = store.get(head.seq)?.ok_or_else(|| LedgerError::Invalid {
            seq: head.seq,
            reason: "the head event is missing".into(),
        })?;
        if last.hash != head.hash {
            return Err(LedgerError::Invalid {
                seq: head.seq,
                reason: "the stored head's hash is not the last event's".into(),
            });
        }
        projection.set_head(&last.hash, &last.recorded_at);
    }
    projection.set_tree(store.frontier(head.seq)?);
    Ok(projection)
}

/// What a group has staged but not yet written, layered over the projection.
#[derive(Default)]
struct Overlay {
    versions: HashMap<StreamRef, u64>,
    events: HashMap<Uuid, PendingEvent>,
    retracted: HashSet<Uuid>,
    /// Staged parents of locations and `member_of` of actors (`None`: none).
    links: HashMap<StreamRef, Option<Slug>>,
}

#[derive(Clone)]
struct PendingEvent {
    known: KnownEvent,
    /// The event as posted, when it came with an id: a retry in the same group
    /// must post the same content (the same members, `expected_version` aside).
    posted: Option<Box<NewEvent>>,
    receipt: Receipt,
}

impl Overlay {
    fn absorb(&mut self, other: Overlay) {
        self.versions.extend(other.versions);
        self.events.extend(other.events);
        self.retracted.extend(other.retracted);
        self.links.extend(other.links);
    }
}

/// The projection as seen through the group's and the request's overlays.
struct Layered<'a> {
    base: &'a Projection,
    group: &'a Overlay,
    request: &'a Overlay,
}

impl Layered<'_> {
    fn layers(&self) -> [&Overlay; 2] {
        [self.request, self.group]
    }

    fn retracted(&self, id: &Uuid) -> bool {
        self.layers().iter().any(|l| l.retracted.contains(id))
    }

    fn pending(&self, id: &Uuid) -> Option<&PendingEvent> {
        self.layers().into_iter().find_map(|l| l.events.get(id))
    }

    fn staged_link(&self, stream: StreamRef) -> Option<Option<Slug>> {
        self.layers().into_iter().find_map(|l| l.links.get(&stream).cloned())
    }
}

impl Catalog for Layered<'_> {
    fn location_registered(&self, id: &Slug) -> bool {
        let s = StreamRef::Location(id.clone());
        self.layers().iter().any(|l| l.versions.contains_key(&s)) || self.base.location_registered(id)
    }

    fn actor_registered(&self, id: &Slug) -> bool {
        let s = StreamRef::Actor(id.clone());
        self.layers().iter().any(|l| l.versions.contains_key(&s)) || self.base.actor_registered(id)
    }

    fn stream_version(&self, stream: &StreamRef) -> u64 {
        self.layers()
            .iter()
            .find_map(|l| l.versions.get(stream).copied())
            .unwrap_or_else(|| self.base.stream_version(stream))
    }

    fn known_event(&self, id: &Uuid) -> Option<KnownEvent> {
        let mut known = match self.pending(id) {
            Some(p) => p.known.clone(),
            None => self.base.known_event(id)?,
        };
        known.retracted |= self.retracted(id);
        Some(known)
    }

    fn location_parent(&self, id: &Slug) -> Option<Slug> {
        self.staged_link(StreamRef::Location(id.clone()))
            .unwrap_or_else(|| self.base.location_parent(id))
    }

    fn actor_member_of(&self, id: &Slug) -> Option<Slug> {
        self.staged_link(StreamRef::Actor(id.clone()))
            .unwrap_or_else(|| self.base.actor_member_of(id))
    }
}

/// One append request inside a group.
struct Request {
    events: Vec<NewEvent>,
    batch: bool,
    principal: String,
    reply: oneshot::Sender<Result<Appended, AppendError>>,
}

/// What the writer decided for one request of a group.
enum Plan {
    Answered(Result<Appended, AppendError>),
    /// A retry answered from events staged earlier in this group: valid only if
    /// the group's write succeeds.
    RetryOfPending(Vec<Receipt>),
    /// New events, staged at `range` of the group's batch.
    Created(std::ops::Range<usize>),
}

struct Writer {
    store: Arc<Store>,
    projection: Arc<RwLock<Projection>>,
    feed: broadcast::Sender<Arc<FeedItem>>,
    last_recorded_at: Option<DateTime<Utc>>,
    fault: Fault,
}

impl Writer {
    fn new(
        store: Arc<Store>,
        projection: Arc<RwLock<Projection>>,
        feed: broadcast::Sender<Arc<FeedItem>>,
        fault: Fault,
    ) -> Writer {
        let last_recorded_at = projection
            .read()
            .expect("projection lock")
            .last_recorded_at()
            .map(|t| t.at());
        Writer {
            store,
            projection,
            feed,
            last_recorded_at,
            fault,
        }
    }

    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut stopping = false;
        while !stopping {
            let Some(first) = rx.blocking_recv() else { break };
            let mut group = Vec::new();
            let mut events = 0;
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Stop => {
                        stopping = true;
                        break;
                    }
                    Job::Append {
                        events: evs,
                        batch,
                        principal,
                        reply,
                    } => {
                        events += evs.len();
                        group.push(Request {
                            events: evs,
                            batch,
                            principal,
                            reply,
                        });
                    }
                }
                if events < MAX_GROUP_EVENTS {
                    next = rx.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
        }
        // Answer anything that raced with Stop.
        rx.close();
        while let Ok(job) = rx.try_recv() {
            if let Job::Append { reply, .. } = job {
                let _ = reply.send(Err(AppendError::Unavailable("the server is shutting down".into())));
            }
        }
    }

    fn commit_group(&mut self, group: Vec<Request>) {
        if let Some(fault) = self.fault.lock().expect("fault lock").clone() {
            for r in group {
                let _ = r.reply.send(Err(AppendError::Unavailable(format!(
                    "storage fault ({fault}); appends are refused until the server restarts"
                ))));
            }
            return;
        }
        let mut staged: Vec<Staged> = Vec::new();
        let mut plans = Vec::with_capacity(group.len());
        let new_tree;
        let mut replies = Vec::with_capacity(group.len());
        {
            let base = self.projection.read().expect("projection lock");
            let mut overlay = Overlay::default();
            let mut head_seq = base.head_seq();
            let mut head_hash = base.head_hash();
            let mut tree = base.tree().clone();
            for Request {
                events,
                batch,
                principal,
                reply,
            } in group
            {
                replies.push(reply);
                let start = staged.len();
                let tree_before = tree.clone();
                let mut request = Overlay::default();
                let view_base: &Projection = &base;
                let plan = self.plan(
                    view_base,
                    &overlay,
                    &mut request,
                    &events,
                    batch,
                    &principal,
                    &mut staged,
                    &mut head_seq,
                    &mut head_hash,
                    &mut tree,
                );
                match &plan {
                    Plan::Created(_) => overlay.absorb(request),
                    _ => {
                        // Undo whatever this request staged before it failed.
                        staged.truncate(start);
                        tree = tree_before;
                        if let Some(last) = staged.last() {
                            head_seq = last.event.seq;
                            head_hash = last.event.hash;
                        } else {
                            head_seq = base.head_seq();
                            head_hash = base.head_hash();
                        }
                    }
                }
                plans.push(plan);
            }
            new_tree = tree;
        }

        let written = if staged.is_empty() {
            Ok(())
        } else {
            let started = std::time::Instant::now();
            let w = self.store.append(&staged).map(|_| ());
            crate::metrics::FLUSH_SECONDS.observe(started.elapsed().as_secs_f64());
            crate::metrics::GROUP_EVENTS.observe(staged.len() as f64);
            if w.is_ok() {
                crate::metrics::APPENDED_EVENTS.inc_by(staged.len() as u64);
            }
            w
        };
        match &written {
            Ok(()) => {
                let mut projection = self.projection.write().expect("projection lock");
                for s in &staged {
                    if let Err(e) = projection.apply_fact(s.event.seq, &s.fact) {
                        // The writer checked every rule before writing; a refusal here
                        // means the projection and the log disagree.
                        panic!("durable event refused by the projection: {e}");
                    }
                }
                if let Some(last) = staged.last() {
                    projection.set_head(&last.event.hash, &last.event.recorded_at);
                }
                projection.set_tree(new_tree);
                drop(projection);
                // Subscribers see an event only once it is durable and readable.
                if self.feed.receiver_count() > 0 {
                    for s in &staged {
                        let json = serde_json::to_string(&s.event).expect("stored events serialize");
                        let _ = self.feed.send(Arc::new(FeedItem {
                            event: s.event.clone(),
                            json,
                        }));
                    }
                }
                if let Some(last) = staged.last() {
                    self.last_recorded_at = Some(last.event.recorded_at.at());
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = staged.len(), "append failed; nothing acknowledged");
                if !matches!(e, StoreError::Invariant(_)) {
                    *self.fault.lock().expect("fault lock") = Some(e.to_string());
                }
            }
        }

        for (plan, reply) in plans.into_iter().zip(replies) {
            let answer = match (plan, &written) {
                (Plan::Answered(a), _) => a,
                (Plan::RetryOfPending(r), Ok(())) => Ok(Appended::Retried(r)),
                (Plan::Created(range), Ok(())) => Ok(Appended::Created(
                    staged[range].iter().map(|s| s.event.receipt()).collect(),
                )),
                (_, Err(e)) => Err(AppendError::Unavailable(e.to_string())),
            };
            let _ = reply.send(answer);
        }
    }

    /// Decide one request: retry, refusal, or new events staged onto `staged`.
    #[allow(clippy::too_many_arguments)]
    fn plan(
        &self,
        base: &Projection,
        group: &Overlay,
        request: &mut Overlay,
        events: &[NewEvent],
        batch: bool,
        principal: &str,
        staged: &mut Vec<Staged>,
        head_seq: &mut u64,
        head_hash: &mut Hash,
        tree: &mut MerkleFrontier,
    ) -> Plan {
        let in_item = |p: Problem, i: usize| if batch { p.in_batch_item(i) } else { p };
        let refuse = |p: Problem| Plan::Answered(Err(AppendError::Rejected(p)));

        // 1. Idempotency first, so a retry gets its receipt, never a conflict.
        let mut seen = HashSet::new();
        let mut retries = Vec::new();
        let mut pending_retry = false;
        let mut new_count = 0;
        for (i, e) in events.iter().enumerate() {
            let Some(id) = e.id else {
                new_count += 1;
                continue;
            };
            if !seen.insert(id) {
                return refuse(in_item(
                    Problem::invalid("id", format!("{id} appears twice in the batch")),
                    i,
                ));
            }
            let view = Layered { base, group, request };
            // Is `id` known, and was it posted with this same content?
            let known = if let Some(p) = view.pending(&id) {
                pending_retry = true;
                let same = p.posted.as_deref().is_some_and(|p| {
                    NewEvent {
                        expected_version: e.expected_version,
                        ..p.clone()
                    } == *e
                });
                Some((same, p.receipt.clone()))
            } else if let Some(seq) = base.seq_of(&id) {
                match self.committed(seq) {
                    Ok(Some((digest, receipt))) => Some((
                        digest == canonical_digest(&serde_json::Value::Object(e.posted_members(id))),
                        receipt,
                    )),
                    Ok(None) => None,
                    Err(e) => return Plan::Answered(Err(AppendError::Unavailable(e.to_string()))),
                }
            } else {
                None
            };
            match known {
                None => new_count += 1,
                Some((true, receipt)) => retries.push(receipt),
                Some((false, _)) => return refuse(in_item(Problem::IdConflict { field: "id".into(), id }, i)),
            }
        }
        if !retries.is_empty() {
            if new_count > 0 {
                let field = if batch { "[]" } else { "id" };
                return refuse(Problem::IdConflict {
                    field: field.into(),
                    id: retries[0].id,
                });
            }
            return if pending_retry {
                Plan::RetryOfPending(retries)
            } else {
                Plan::Answered(Ok(Appended::Retried(retries)))
            };
        }

        // 2. New events: rules, then seq, version, time and hash.
        let start = staged.len();
        let now = Utc::now();
        let recorded = match self.last_recorded_at {
            // recorded_at never goes back, even if the clock does.
            Some(last) if last > now => last,
            _ => now,
        };
        let recorded_at = UtcTime::recorded(recorded);
        for (i, e) in events.iter().enumerate() {
            let view = Layered { base, group, request };
            if let Err(p) = rules::check(e, &view) {
                return refuse(in_item(p, i));
            }
            let version = view.stream_version(&e.stream) + 1;
            // Only a posted id can be retried within the group.
            let posted = e.id.map(|_| Box::new(e.clone()));
            let id = e.id.unwrap_or_else(Uuid::now_v7);
            let mut event = StoredEvent {
                seq: *head_seq + 1,
                id,
                event_type: e.event_type,
                location: match &e.stream {
                    StreamRef::Location(l) => Some(l.clone()),
                    StreamRef::Actor(_) => None,
                },
                actor: match &e.stream {
                    StreamRef::Actor(a) => Some(a.clone()),
                    StreamRef::Location(_) => None,
                },
                occurred_at: e.occurred_at.map(UtcTime::occurred),
                occurred_precision: e.occurred_precision,
                place_precision: e.place_precision,
                recorded_at,
                recorded_by: principal.to_owned(),
                source: e.source.clone(),
                data: e.data.to_value(),
                version,
                prev_hash: *head_hash,
                hash: Hash::GENESIS,
            };
            let canonical = canonical_event(&event);
            event.hash = Hash::of(&canonical);
            // As served: the canonical JSON plus its `hash` member (64 hex digits).
            let size = canonical.len() + r#","hash":""#.len() + 64;
            if size > MAX_EVENT_BYTES {
                // A shape is what makes a registration large: name it.
                let field = if event.data.get("geometry").is_some() {
                    "data.geometry"
                } else {
                    ""
                };
                return refuse(in_item(
                    Problem::invalid(
                        field,
                        format!("the stored event would be {size} bytes; the limit is {MAX_EVENT_BYTES}"),
                    ),
                    i,
                ));
            }
            let fact = Fact::of(id, version, e);
            *head_seq = event.seq;
            *head_hash = event.hash;
            request.versions.insert(e.stream.clone(), version);
            match &e.data {
                EventData::LocationRegistered(d) => {
                    request.links.insert(e.stream.clone(), d.parent.clone());
                }
                EventData::ActorRegistered(d) => {
                    request.links.insert(e.stream.clone(), d.member_of.clone());
                }
                EventData::LocationAmended(LocationAmended { parent: Some(p), .. })
                | EventData::ActorAmended(ActorAmended { member_of: Some(p), .. }) => {
                    request.links.insert(e.stream.clone(), Some(p.clone()));
                }
                _ => {}
            }
            if let EventData::EventRetracted(r) = &e.data {
                request.retracted.insert(r.event_id);
            }
            request.events.insert(
                id,
                PendingEvent {
                    known: KnownEvent {
                        event_type: e.event_type,
                        location: event.location.clone(),
                        retracted: false,
                    },
                    posted,
                    receipt: event.receipt(),
                },
            );
            let nodes = tree.push(&leaf_of(&event));
            staged.push(Staged {
                event,
                canonical,
                fact,
                nodes,
            });
        }
        Plan::Created(start..staged.len())
    }

    /// The digest of the posted members and the original receipt of the
    /// committed event at `seq`.
    fn committed(&self, seq: u64) -> Result<Option<([u8; 32], Receipt)>, StoreError> {
        let event = self.store.get(seq)?.ok_or_else(|| StoreError::Corrupt {
            seq,
            reason: "an event the projection holds is missing from the log".into(),
        })?;
        let posted = event.to_new_event().map_err(|p| StoreError::Corrupt {
            seq,
            reason: format!("the stored event no longer reads as an event: {p}"),
        })?;
        let digest = canonical_digest(&serde_json::Value::Object(posted.posted_members(event.id)));
        Ok(Some((digest, event.receipt())))
    }
}
