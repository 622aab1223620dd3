//! The PostgreSQL backend: several servers on one database.
//!
//! Tables, in schema `sitrep` (created and migrated on open, see `MIGRATIONS`):
//!
//! | table        | rows                                                        |
//! |--------------|-------------------------------------------------------------|
//! | `head`       | one: the last event's `seq` and `hash`                      |
//! | `events`     | one per event: `seq`, `id`, `hash`, `prev_hash`, `fact`, `canonical` |
//! | `nodes`      | the stored Merkle subtrees (`level`, `index`, `hash`)       |
//! | `migrations` | the schema versions applied                                 |
//!
//! **Seqs gapless and in commit order across servers.** A sequence or
//! `bigserial` hands out numbers before commit, so it leaves gaps (rolled back
//! transactions) and lets a later number commit first. Instead a writer
//! checks a group's rules against the log it has folded, numbers the group
//! from that head, and appends it with one statement (`APPEND`) that locks
//! the one `head` row and writes only if the head is still that one: the
//! events, their Merkle nodes and the new head, committed together with
//! `synchronous_commit` on. If another server appended first, nothing is
//! written; the writer folds what it appended and plans the group again. One
//! statement per group: one round trip and one commit, however many events.
//!
//! **Following.** Each commit sends `NOTIFY sitrep_log`; a listener thread
//! wakes the server's writer, which folds every event up to the `head` row.
//! The notification is only a wake-up: the tables are the source, and the
//! listener also wakes the writer once a second in case one was missed.
//!
//! **Threads.** The `postgres` crate is synchronous and runs its own small
//! runtime per connection, which must not run on an async runtime's thread.
//! So every connection lives on a thread of its own: the writer's, the
//! listener's, and a small pool for reads from request handlers, which hand
//! their query over and wait for the answer. A connection that fails is
//! dropped and reopened on its next use, so the servers recover by themselves
//! when the database comes back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls, Statement};

use super::{corrupt, head_after, Head, RawRecords, Record, RecordBytes, Staged, Store, StoreError};
use crate::domain::hash::Hash;
use crate::domain::integrity::NodeId;

/// Connections for reads from request handlers.
const READ_CONNECTIONS: usize = 4;
/// Events read per query when scanning.
const PAGE_EVENTS: i64 = 4096;
/// How long connecting may take before the database counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a query may take before its caller is answered `Unavailable`.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the listener wakes the writer without a notification.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// The channel commits notify.
const CHANNEL: &str = "sitrep_log";
/// A writer's turn (`Store::take_turn`): held exclusively by the writer whose
/// turn it is, and shared by every append (`APPEND`).
const TURN_LOCK: i64 = 6_147_659_743_930_499_073;
/// Serialises migrations across servers starting at once.
const MIGRATION_LOCK: i64 = 0x5174_7265_7030_0001;

/// The schema, one step per version. A step never changes once released.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE sitrep.head (
         singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
         seq bigint NOT NULL CHECK (seq >= 0),
         hash bytea NOT NULL CHECK (length(hash) = 32)
     );
     INSERT INTO sitrep.head (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));
     CREATE TABLE sitrep.events (
         seq bigint PRIMARY KEY CHECK (seq > 0),
         id uuid NOT NULL UNIQUE,
         hash bytea NOT NULL CHECK (length(hash) = 32),
         prev_hash bytea NOT NULL CHECK (length(prev_hash) = 32),
         fact bytea NOT NULL,
         canonical bytea NOT NULL
     );
     CREATE TABLE sitrep.nodes (
         level smallint NOT NULL,
         index bigint NOT NULL,
         hash bytea NOT NULL CHECK (length(hash) = 32),
         PRIMARY KEY (level, index)
     );",
)];

/// The database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((user, host)) => {
                let user = user.split(':').next().unwrap_or("");
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_owned(),
        },
        None => "(not a URL)".to_owned(),
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("PostgreSQL is unavailable: {e}"))
}

/// One connection and the statements prepared on it.
struct Session {
    client: Client,
    statements: std::collections::HashMap<&'static str, Statement>,
}

impl Session {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }
}

type Job = Box<dyn FnOnce(&mut Option<Session>, &postgres::Config) + Send>;

/// Threads that each own a connection, taking jobs from one queue.
struct Connections {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Connections {
    fn start(config: &postgres::Config, threads: usize, name: &str) -> Result<Connections, StoreError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = rx.clone();
            let config = config.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("sitrep-pg-{name}-{i}"))
                    .spawn(move || {
                        let mut session: Option<Session> = None;
                        loop {
                            let job = rx.lock().expect("job queue lock").recv();
                            match job {
                                Ok(job) => job(&mut session, &config),
                                Err(_) => return,
                            }
                        }
                    })?,
            );
        }
        Ok(Connections {
            jobs: Mutex::new(Some(tx)),
            threads: Mutex::new(handles),
        })
    }

    /// Run `f` on one of the connections (opened first if it is not), and
    /// wait for its answer. A connection that fails is dropped, to be
    /// reopened by the next job.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |session, config| {
            let answer = (|| {
                if session.as_ref().is_none_or(|s| s.client.is_closed()) {
                    *session = None;
                    let client = config.connect(NoTls).map_err(unavailable)?;
                    *session = Some(Session {
                        client,
                        statements: Default::default(),
                    });
                }
                let s = session.as_mut().expect("connected");
                let answer = f(s);
                if answer.is_err() && s.client.is_closed() {
                    *session = None;
                }
                answer
            })();
            let _ = tx.send(answer);
        });
        {
            let jobs = self.jobs.lock().expect("jobs lock");
            let jobs = jobs.as_ref().ok_or_else(|| unavailable("the store is closed"))?;
            jobs.send(job).map_err(|_| unavailable("the store is closed"))?;
        }
        match rx.recv_timeout(QUERY_TIMEOUT) {
            Ok(answer) => answer,
            Err(_) => Err(unavailable("the database did not answer in time")),
        }
    }

    fn stop(&self) {
        self.jobs.lock().expect("jobs lock").take();
        for t in self.threads.lock().expect("threads lock").drain(..) {
            let _ = t.join();
        }
    }
}

pub struct PgStore {
    url: String,
    config: postgres::Config,
    writer: Connections,
    readers: Connections,
    /// The head as this process last saw it.
    head: Mutex<Head>,
    generation: AtomicU64,
    stop: Arc<AtomicBool>,
    listener: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn pg_err(e: postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => unavailable(format!("{} ({})", db.message(), db.code().code())),
        None => unavailable(e),
    }
}

fn hash_of(bytes: &[u8], seq: u64, what: &str) -> Result<Hash, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(Hash::from_bytes)
        .map_err(|_| corrupt(seq, format!("the stored {what} is not 32 bytes")))
}

fn read_head(s: &mut Session, for_update: bool) -> Result<Head, StoreError> {
    let sql = if for_update {
        "SELECT seq, hash FROM sitrep.head FOR UPDATE"
    } else {
        "SELECT seq, hash FROM sitrep.head"
    };
    let st = s.statement(sql).map_err(pg_err)?;
    let row = s.client.query_one(&st, &[]).map_err(pg_err)?;
    let seq: i64 = row.get(0);
    let hash: &[u8] = row.get(1);
    Ok(Head {
        seq: seq as u64,
        hash: hash_of(hash, seq as u64, "head hash")?,
    })
}

fn as_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Invariant(format!("{n} does not fit the database's bigint")))
}

impl PgStore {
    /// Connect, create or migrate the schema, and read the head.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invariant(format!("not a PostgreSQL URL ({}): {e}", redact(url))))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.keepalives_idle(Duration::from_secs(10));
        if config.get_application_name().is_none() {
            config.application_name("sitrep");
        }
        // A 2xx means committed on stable storage, whatever the database's
        // default; and the notices of an idempotent migration are no news.
        config.options("-c synchronous_commit=on -c client_min_messages=warning");
        let writer = Connections::start(&config, 1, "writer")?;
        let readers = Connections::start(&config, READ_CONNECTIONS, "read")?;
        let head = writer.run(|s| {
            migrate(&mut s.client)?;
            read_head(s, false)
        })?;
        Ok(PgStore {
            url: url.to_owned(),
            config,
            writer,
            readers,
            head: Mutex::new(head),
            generation: AtomicU64::new(0),
            stop: Arc::new(AtomicBool::new(false)),
            listener: Mutex::new(None),
        })
    }

    fn set_head(&self, head: &Head) {
        let mut h = self.head.lock().expect("head lock");
        if head.seq > h.seq {
            *h = head.clone();
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.writer.stop();
        self.readers.stop();
        if let Some(t) = self.listener.lock().expect("listener lock").take() {
            let _ = t.join();
        }
    }
}

/// Create the schema or bring it up to `MIGRATIONS`, one server at a time.
fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg_err)?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS sitrep;
         CREATE TABLE IF NOT EXISTS sitrep.migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .map_err(pg_err)?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM sitrep.migrations", &[])
        .map_err(pg_err)?
        .get(0);
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > latest {
        return Err(StoreError::Invariant(format!(
            "the database's schema is at version {current}; this server knows up to {latest}: upgrade the server"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql).map_err(pg_err)?;
        tx.execute("INSERT INTO sitrep.migrations (version) VALUES ($1)", &[version])
            .map_err(pg_err)?;
        tracing::info!(version, "database schema migrated");
    }
    tx.commit().map_err(pg_err)
}

/// A group's append: one statement, so one round trip and one commit. It locks
/// the `head` row and goes on only if the head is still the one the group was
/// planned on; if another server's append got the lock first, PostgreSQL
/// re-reads the row once that append commits, the seq no longer matches, and
/// nothing is written. The statement runs as its own transaction, committed
/// (and, with `synchronous_commit` on, flushed) before the server says it is
/// ready for the next query, which is when the client returns.
const APPEND: &str = "WITH turn AS (
         SELECT pg_advisory_xact_lock_shared($13)
     ), h AS (
         SELECT seq FROM sitrep.head, turn WHERE seq = $12 FOR UPDATE OF head
     ), e AS (
         INSERT INTO sitrep.events (seq, id, hash, prev_hash, fact, canonical)
         SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[])
         WHERE EXISTS (SELECT 1 FROM h)
     ), n AS (
         INSERT INTO sitrep.nodes (level, index, hash)
         SELECT * FROM unnest($7::smallint[], $8::bigint[], $9::bytea[])
         WHERE EXISTS (SELECT 1 FROM h)
     )
     UPDATE sitrep.head SET seq = $10, hash = $11
     WHERE seq = $12 AND EXISTS (SELECT 1 FROM h)
     RETURNING pg_notify($14, seq::text)";

/// An append's rows, as arrays for one `INSERT … SELECT unnest(…)`.
#[derive(Default)]
struct EventRows {
    seq: Vec<i64>,
    id: Vec<uuid::Uuid>,
    hash: Vec<Vec<u8>>,
    prev_hash: Vec<Vec<u8>>,
    fact: Vec<Vec<u8>>,
    canonical: Vec<Vec<u8>>,
    node_level: Vec<i16>,
    node_index: Vec<i64>,
    node_hash: Vec<Vec<u8>>,
}

fn record_of(row: &postgres::Row) -> Result<(u64, RecordBytes), StoreError> {
    let seq = row.get::<_, i64>(0) as u64;
    let hash = hash_of(row.get(1), seq, "hash")?;
    let prev = hash_of(row.get(2), seq, "prev_hash")?;
    let record = super::encode_record(&hash, &prev, row.get(3), row.get(4));
    Ok((seq, RecordBytes::Owned(record.into())))
}

const SELECT_EVENTS: &str = "SELECT seq, hash, prev_hash, fact, canonical FROM sitrep.events \
                             WHERE seq >= $1 ORDER BY seq LIMIT $2";

impl PgStore {
    fn page(&self, from: u64, limit: i64) -> Result<Vec<(u64, RecordBytes)>, StoreError> {
        let from = as_i64(from)?;
        self.readers.run(move |s| {
            let st = s.statement(SELECT_EVENTS).map_err(pg_err)?;
            let rows = s.client.query(&st, &[&from, &limit]).map_err(pg_err)?;
            rows.iter().map(record_of).collect()
        })
    }
}

impl Store for PgStore {
    fn describe(&self) -> String {
        format!("PostgreSQL at {}", redact(&self.url))
    }

    fn head(&self) -> Head {
        self.head.lock().expect("head lock").clone()
    }

    fn durable_head(&self) -> Result<Head, StoreError> {
        let head = self.readers.run(|s| read_head(s, false))?;
        self.set_head(&head);
        Ok(head)
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn append_after(&self, base: &Head, batch: &[Staged]) -> Result<Head, StoreError> {
        let new_head = head_after(base, batch);
        if batch.is_empty() {
            return Ok(new_head);
        }
        let mut rows = EventRows::default();
        for s in batch {
            rows.seq.push(as_i64(s.event.seq)?);
            rows.id.push(s.event.id);
            rows.hash.push(s.event.hash.as_bytes().to_vec());
            rows.prev_hash.push(s.event.prev_hash.as_bytes().to_vec());
            rows.fact.push(s.fact.to_bytes());
            rows.canonical.push(s.canonical.clone());
            for (node, hash) in s.stored_nodes() {
                rows.node_level.push(node.level as i16);
                rows.node_index.push(as_i64(node.index)?);
                rows.node_hash.push(hash.to_vec());
            }
        }
        let (head_seq, head_hash, base_seq) = (
            as_i64(new_head.seq)?,
            new_head.hash.as_bytes().to_vec(),
            as_i64(base.seq)?,
        );
        let updated = self.writer.run(move |s| {
            let st = s.statement(APPEND).map_err(pg_err)?;
            let rows = s
                .client
                .query(
                    &st,
                    &[
                        &rows.seq,
                        &rows.id,
                        &rows.hash,
                        &rows.prev_hash,
                        &rows.fact,
                        &rows.canonical,
                        &rows.node_level,
                        &rows.node_index,
                        &rows.node_hash,
                        &head_seq,
                        &head_hash,
                        &base_seq,
                        &TURN_LOCK,
                        &CHANNEL,
                    ],
                )
                .map_err(pg_err)?;
            Ok(rows.len())
        })?;
        if updated != 1 {
            return Err(StoreError::Moved { planned: base.seq });
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.set_head(&new_head);
        Ok(new_head)
    }

    fn take_turn(&self) -> Result<(), StoreError> {
        self.writer.run(|s| {
            s.client
                .execute("SELECT pg_advisory_lock($1)", &[&TURN_LOCK])
                .map(|_| ())
                .map_err(pg_err)
        })
    }

    fn end_turn(&self) {
        // A connection that failed meanwhile took the lock with it.
        let _ = self.writer.run(|s| {
            s.client
                .execute("SELECT pg_advisory_unlock($1)", &[&TURN_LOCK])
                .map(|_| ())
                .map_err(pg_err)
        });
    }

    fn record(&self, seq: u64) -> Result<Option<Record>, StoreError> {
        let found = self.page(seq, 1)?.into_iter().next();
        match found {
            Some((s, bytes)) if s == seq => Record::new(seq, bytes).map(Some),
            _ => Ok(None),
        }
    }

    fn stored_node(&self, id: NodeId) -> Result<Option<[u8; 32]>, StoreError> {
        let (level, index) = (id.level as i16, as_i64(id.index)?);
        self.readers.run(move |s| {
            let st = s
                .statement("SELECT hash FROM sitrep.nodes WHERE level = $1 AND index = $2")
                .map_err(pg_err)?;
            let row = s.client.query_opt(&st, &[&level, &index]).map_err(pg_err)?;
            Ok(row.and_then(|r| <[u8; 32]>::try_from(r.get::<_, &[u8]>(0)).ok()))
        })
    }

    fn raw_records(&self, from_seq: u64) -> RawRecords<'_> {
        let mut next = from_seq.max(1);
        let mut page: std::vec::IntoIter<(u64, RecordBytes)> = Vec::new().into_iter();
        let mut done = false;
        Box::new(std::iter::from_fn(move || {
            if let Some(r) = page.next() {
                return Some(Ok(r));
            }
            if done {
                return None;
            }
            match self.page(next, PAGE_EVENTS) {
                Ok(rows) => {
                    done = (rows.len() as i64) < PAGE_EVENTS;
                    if let Some((last, _)) = rows.last() {
                        next = last + 1;
                    }
                    page = rows.into_iter();
                    page.next().map(Ok)
                }
                Err(e) => {
                    done = true;
                    Some(Err(e))
                }
            }
        }))
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.readers.run(|s| {
            let row = s
                .client
                .query_one(
                    "SELECT pg_total_relation_size('sitrep.events') + pg_total_relation_size('sitrep.nodes')",
                    &[],
                )
                .map_err(pg_err)?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    fn ready(&self) -> Result<(), StoreError> {
        self.durable_head().map(|_| ())
    }

    fn watch(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let config = self.config.clone();
        let stop = self.stop.clone();
        let listener = std::thread::Builder::new()
            .name("sitrep-pg-listen".into())
            .spawn(move || listen(&config, &stop, &*wake))
            .expect("spawn the listener thread");
        *self.listener.lock().expect("listener lock") = Some(listener);
    }

    fn overwrite_record(&self, seq: u64, record: &[u8]) -> Result<(), StoreError> {
        let r = Record::new(seq, RecordBytes::Owned(record.into()))?;
        let (seq, hash, prev, fact, canonical) = (
            as_i64(seq)?,
            r.hash().as_bytes().to_vec(),
            r.prev_hash().as_bytes().to_vec(),
            r.fact().to_vec(),
            r.canonical().to_vec(),
        );
        self.readers.run(move |s| {
            s.client
                .execute(
                    "UPDATE sitrep.events SET hash = $2, prev_hash = $3, fact = $4, canonical = $5 WHERE seq = $1",
                    &[&seq, &hash, &prev, &fact, &canonical],
                )
                .map_err(pg_err)
        })?;
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Wake the writer on every notification of a commit, and every `POLL_EVERY`
/// without one; reconnect when the connection fails.
fn listen(config: &postgres::Config, stop: &AtomicBool, wake: &(dyn Fn() + Send + Sync)) {
    while !stop.load(Ordering::SeqCst) {
        let mut client = match config.connect(NoTls) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "the listener cannot connect; retrying");
                std::thread::sleep(POLL_EVERY);
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
            tracing::debug!(error = %e, "LISTEN failed; retrying");
            std::thread::sleep(POLL_EVERY);
            continue;
        }
        // Anything committed while we were not listening.
        wake();
        while !stop.load(Ordering::SeqCst) {
            let next = client.notifications().timeout_iter(POLL_EVERY).next();
            match next {
                Ok(_) => wake(),
                Err(e) => {
                    tracing::debug!(error = %e, "the listener's connection failed; reconnecting");
                    break;
                }
            }
            if client.is_closed() {
                break;
            }
        }
    }
}
