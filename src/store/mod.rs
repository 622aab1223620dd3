//! The event store: where the log lives, behind one trait with two backends.
//!
//! - `sled` (the embedded default, [`sled::SledStore`]): one process, one
//!   directory.
//! - PostgreSQL ([`postgres::PgStore`]): several servers on one database.
//!
//! What every backend shares lives here, once: the record codec (an event's
//! hash, `prev_hash`, fact and canonical JSON), which Merkle subtrees are
//! stored, the checks before a write (seq follows the head, each `prev_hash`
//! links) and after a read (seq continuity, each hash recomputed over its
//! bytes, each link). A backend only moves records, heads and nodes to and from
//! durable storage, atomically; its quirks (sled's read-back and fault latch,
//! PostgreSQL's reconnection and wake-ups) stay inside it.
//!
//! This module must not: decide whether an event is valid (that is `domain`),
//! keep read models (that is `projection`), or know about HTTP.

use std::path::Path;
use std::sync::Arc;

use crate::domain::fact::Fact;
use crate::domain::hash::Hash;
use crate::domain::integrity::{leaf_hash, node_hash, MerkleFrontier, NodeId, GENESIS_HASH};
use crate::domain::StoredEvent;

pub mod postgres;
pub mod sled;
mod wal;

#[cfg(test)]
mod conformance;

pub use self::sled::SledStore;

/// Merkle subtrees of 2^4 leaves and up are stored; smaller ones are
/// recomputed from at most 16 event hashes.
pub const STORED_NODE_LEVEL: u32 = 4;
/// The layout of a record (below). Version 1 had no fact.
pub const LAYOUT: u8 = 2;
/// Bytes before a record's fact: layout, hash, prev_hash, fact length.
const RECORD_HEADER: usize = 1 + 32 + 32 + 4;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] ::sled::Error),
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The database cannot be reached or failed a statement; nothing of the
    /// operation took effect, and a later one may succeed.
    #[error("{0}")]
    Unavailable(String),
    #[error("the log is corrupt at seq {seq}: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error("refused to write: {0}")]
    Invariant(String),
    /// Another writer appended after the head the batch was planned on;
    /// nothing was written.
    #[error("the log's head moved past seq {planned} before the append; nothing was written")]
    Moved { planned: u64 },
}

pub(crate) fn corrupt(seq: u64, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        seq,
        reason: reason.into(),
    }
}

/// The chain head: the last event's seq and hash (seq 0 and 64 zeros when empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: Hash,
}

impl Head {
    pub fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS_HASH,
        }
    }
}

/// An event ready to be written.
pub struct Staged {
    pub event: StoredEvent,
    /// RFC 8785 JSON of the event without `hash`: what `event.hash` is the SHA-256 of.
    pub canonical: Vec<u8>,
    pub fact: Fact,
    /// The perfect Merkle subtrees this event completes.
    pub nodes: Vec<(NodeId, [u8; 32])>,
}

impl Staged {
    /// The subtrees this event completes that the store keeps.
    pub fn stored_nodes(&self) -> impl Iterator<Item = &(NodeId, [u8; 32])> {
        self.nodes.iter().filter(|(n, _)| stores_node(*n))
    }

    /// The event's record, in the layout `Record` reads.
    pub fn record(&self) -> Vec<u8> {
        encode_record(
            &self.event.hash,
            &self.event.prev_hash,
            &self.fact.to_bytes(),
            &self.canonical,
        )
    }
}

/// Is this Merkle subtree kept in the store (rather than recomputed)?
pub fn stores_node(id: NodeId) -> bool {
    id.level >= STORED_NODE_LEVEL
}

/// Check that `batch` follows `head`: gapless seqs and linked hashes. (The
/// hashes themselves were computed by the caller a moment ago; recomputing
/// them here would double the cost of every append for no new evidence.)
pub fn check_follows(head: &Head, batch: &[Staged]) -> Result<(), StoreError> {
    let mut expected_prev = head.hash;
    for (i, s) in batch.iter().enumerate() {
        let seq = head.seq + 1 + i as u64;
        if s.event.seq != seq || s.event.prev_hash != expected_prev {
            return Err(StoreError::Invariant(format!(
                "event {} does not follow the head: seq {} (expected {seq}), prev_hash {} (expected {expected_prev})",
                s.event.id, s.event.seq, s.event.prev_hash
            )));
        }
        expected_prev = s.event.hash;
    }
    Ok(())
}

/// The head after `batch`, appended to `head`.
pub fn head_after(head: &Head, batch: &[Staged]) -> Head {
    batch.last().map_or_else(
        || head.clone(),
        |last| Head {
            seq: last.event.seq,
            hash: last.event.hash,
        },
    )
}

/// A record's bytes as a backend hands them over.
#[derive(Clone)]
pub enum RecordBytes {
    Sled(::sled::IVec),
    Owned(Arc<[u8]>),
}

impl std::ops::Deref for RecordBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            RecordBytes::Sled(v) => v,
            RecordBytes::Owned(v) => v,
        }
    }
}

/// One stored event's record, as read, before any check.
///
/// A record is `[layout][hash 32 B][prev_hash 32 B][fact length u32 LE][fact][canonical JSON]`:
/// the canonical JSON is the RFC 8785 form of the event without its `hash`
/// member, exactly the bytes its hash is the SHA-256 of, so checking an event
/// is one SHA-256 over what is stored. The fact is what the projections read
/// (`domain::fact`), so start-up folds the log without parsing JSON.
#[derive(Clone)]
pub struct Record {
    seq: u64,
    value: RecordBytes,
}

/// A record in the layout `Record` reads.
pub fn encode_record(hash: &Hash, prev_hash: &Hash, fact: &[u8], canonical: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(RECORD_HEADER + fact.len() + canonical.len());
    v.push(LAYOUT);
    v.extend_from_slice(hash.as_bytes());
    v.extend_from_slice(prev_hash.as_bytes());
    v.extend_from_slice(&(fact.len() as u32).to_le_bytes());
    v.extend_from_slice(fact);
    v.extend_from_slice(canonical);
    v
}

impl Record {
    pub fn new(seq: u64, value: RecordBytes) -> Result<Record, StoreError> {
        let ok = value.len() >= RECORD_HEADER && value[0] == LAYOUT && {
            let fact_len = u32::from_le_bytes(value[65..69].try_into().expect("4 bytes")) as usize;
            value.len() >= RECORD_HEADER + fact_len
        };
        if ok {
            Ok(Record { seq, value })
        } else {
            Err(corrupt(seq, "the stored record is malformed"))
        }
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn hash(&self) -> Hash {
        Hash::from_bytes(self.value[1..33].try_into().expect("32 bytes"))
    }

    pub fn prev_hash(&self) -> Hash {
        Hash::from_bytes(self.value[33..65].try_into().expect("32 bytes"))
    }

    fn fact_len(&self) -> usize {
        u32::from_le_bytes(self.value[65..69].try_into().expect("4 bytes")) as usize
    }

    /// The fact's bytes (`Fact::from_bytes` reads them).
    pub fn fact(&self) -> &[u8] {
        &self.value[RECORD_HEADER..RECORD_HEADER + self.fact_len()]
    }

    /// The canonical JSON the hash covers.
    pub fn canonical(&self) -> &[u8] {
        &self.value[RECORD_HEADER + self.fact_len()..]
    }

    /// The whole record, as stored.
    pub fn bytes(&self) -> &[u8] {
        &self.value
    }

    /// The event's bytes still hash to its hash.
    pub fn check_hash(&self) -> Result<(), StoreError> {
        let actual = Hash::of(self.canonical());
        if actual == self.hash() {
            Ok(())
        } else {
            Err(corrupt(
                self.seq,
                format!(
                    "stored hash {} does not match the recomputed hash {actual}",
                    self.hash()
                ),
            ))
        }
    }

    /// The event, its hash checked against its bytes and its JSON against the
    /// record's seq and `prev_hash`.
    pub fn event(&self) -> Result<StoredEvent, StoreError> {
        self.check_hash()?;
        let canonical = self.canonical();
        if canonical.first() != Some(&b'{') {
            return Err(corrupt(self.seq, "the stored event is not a JSON object"));
        }
        // The hash member goes first: member order carries no meaning in JSON.
        let mut json = Vec::with_capacity(canonical.len() + 80);
        json.extend_from_slice(b"{\"hash\":\"");
        json.extend_from_slice(self.hash().to_hex().as_bytes());
        json.push(b'"');
        if canonical.len() > 2 {
            json.push(b',');
        }
        json.extend_from_slice(&canonical[1..]);
        let event: StoredEvent = serde_json::from_slice(&json)
            .map_err(|e| corrupt(self.seq, format!("the stored event does not decode: {e}")))?;
        if event.seq != self.seq {
            return Err(corrupt(
                self.seq,
                format!("the event stored at seq {} says seq {}", self.seq, event.seq),
            ));
        }
        if event.prev_hash != self.prev_hash() {
            return Err(corrupt(self.seq, "the record's prev_hash is not the event's"));
        }
        Ok(event)
    }
}

/// What every backend provides. Reads may run on any thread, async runtimes
/// included; appends run on the writer's thread.
pub trait Store: Send + Sync {
    /// Where the log is, for messages ("sled in /var/lib/sitrep").
    fn describe(&self) -> String;

    /// The head of the log as this process last saw it.
    fn head(&self) -> Head;

    /// The head of the log in storage now: with several servers on one
    /// database, it may be past the one this process last saw.
    fn durable_head(&self) -> Result<Head, StoreError> {
        Ok(self.head())
    }

    /// Changes since the store was opened: two reads that see the same
    /// generation saw the same contents.
    fn generation(&self) -> u64;

    /// Append `batch` after `base`, atomically and durably, provided `base` is
    /// still the head of the log. A writer checks a group's rules against the
    /// log as it has folded it, up to `base`; if another writer appended since,
    /// the store refuses the group (`Moved`), and the writer folds what was
    /// appended and plans the group again. On `Ok`, every event is on stable
    /// storage. On `Err`, nothing of the batch is visible in the store. `batch`
    /// must follow `base` (`check_follows`), which the callers check.
    fn append_after(&self, base: &Head, batch: &[Staged]) -> Result<Head, StoreError>;

    /// The record at `seq`, unchecked.
    fn record(&self, seq: u64) -> Result<Option<Record>, StoreError>;

    /// A stored Merkle subtree (`stores_node`), unchecked.
    fn stored_node(&self, id: NodeId) -> Result<Option<[u8; 32]>, StoreError>;

    /// Raw records from `from_seq` (at least 1) on, in seq order.
    fn raw_records(&self, from_seq: u64) -> RawRecords<'_>;

    /// Bytes the log takes in storage.
    fn size_on_disk(&self) -> Result<u64, StoreError>;

    /// The fault that stopped appends for good, if any (sled refuses every
    /// write after an I/O error, until a restart reopens the store).
    fn fault(&self) -> Option<String> {
        None
    }

    /// Can the store be read and written now? (`/readyz`.)
    fn ready(&self) -> Result<(), StoreError> {
        match self.fault() {
            Some(f) => Err(StoreError::Unavailable(f)),
            None => Ok(()),
        }
    }

    /// Call `wake` whenever another process may have appended, so this one
    /// folds what it wrote. A backend with one writer never calls it.
    fn watch(&self, _wake: Box<dyn Fn() + Send + Sync>) {}

    /// Overwrite the record at `seq` as an attacker with disk access would.
    /// For tests only; nothing in the service calls it.
    #[doc(hidden)]
    fn overwrite_record(&self, seq: u64, record: &[u8]) -> Result<(), StoreError>;

    // Provided: the same over every backend.

    /// Hold off every other writer's appends until `end_turn`. A writer whose
    /// group was refused (`Moved`) again takes a turn, so writers that keep
    /// appending cannot starve it. A backend with one writer has nothing to do.
    fn take_turn(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Let the other writers append again.
    fn end_turn(&self) {}

    /// Append `batch` after the head it must follow (an import, a test).
    fn append(&self, batch: &[Staged]) -> Result<Head, StoreError> {
        let base = self.durable_head()?;
        check_follows(&base, batch)?;
        self.append_after(&base, batch)
    }

    /// The event at `seq`, its hash re-checked.
    fn get(&self, seq: u64) -> Result<Option<StoredEvent>, StoreError> {
        self.record(seq)?.map(|r| r.event()).transpose()
    }

    /// A perfect Merkle subtree: stored from `STORED_NODE_LEVEL` up, below it
    /// recomputed from the stored event hashes it covers.
    fn node(&self, id: NodeId) -> Result<[u8; 32], StoreError> {
        let first = (id.index << id.level) + 1;
        if stores_node(id) {
            return match self.stored_node(id)? {
                Some(v) => Ok(v),
                None => Err(corrupt(
                    first,
                    format!("Merkle node {}/{} is missing or malformed", id.level, id.index),
                )),
            };
        }
        let width = 1usize << id.level;
        let mut level: Vec<[u8; 32]> = Vec::with_capacity(width);
        for r in self.records(first).take(width) {
            level.push(leaf_hash(r?.hash().as_bytes()));
        }
        if level.len() < width {
            return Err(corrupt(
                first + level.len() as u64,
                format!(
                    "Merkle node {}/{} covers events the log does not hold",
                    id.level, id.index
                ),
            ));
        }
        while level.len() > 1 {
            level = level.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
        }
        Ok(level[0])
    }

    /// The Merkle frontier of the first `size` events, from stored nodes:
    /// O(log n) reads, no rehashing above `STORED_NODE_LEVEL`.
    fn frontier(&self, size: u64) -> Result<MerkleFrontier, StoreError> {
        MerkleFrontier::from_nodes(size, &mut |id| self.node(id))
    }

    /// Records from `from_seq` on, in seq order, with gapless seqs checked and
    /// nothing else: callers check hashes and links as they need.
    fn records(&self, from_seq: u64) -> Records<'_> {
        let from = from_seq.max(1);
        Records {
            inner: self.raw_records(from),
            expected_seq: from,
        }
    }

    /// Events from `from_seq` on, in seq order, each hash re-checked and each
    /// link to its predecessor in the scan checked.
    fn scan(&self, from_seq: u64) -> Scan<'_> {
        Scan {
            inner: self.records(from_seq),
            prev_hash: None,
        }
    }

    /// Overwrite a stored event as an attacker with disk access would: `json`
    /// is the event as served (with its `hash`); its record keeps the stored
    /// fact and takes the hash and `prev_hash` the JSON states. For tests.
    #[doc(hidden)]
    fn tamper_raw(&self, seq: u64, json: &[u8]) -> Result<(), StoreError> {
        let bad = |e: String| StoreError::Invariant(e);
        let mut value: serde_json::Value = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
        let obj = value.as_object_mut().ok_or_else(|| bad("not an object".into()))?;
        let text = |v: Option<serde_json::Value>| v.and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let hash: Hash = text(obj.remove("hash")).parse().map_err(bad)?;
        let prev: Hash = text(obj.get("prev_hash").cloned()).parse().map_err(bad)?;
        let fact = match self.record(seq)? {
            Some(r) => r.fact().to_vec(),
            None => Vec::new(),
        };
        let record = encode_record(&hash, &prev, &fact, &crate::domain::jcs::to_vec(&value));
        self.overwrite_record(seq, &record)
    }

    /// Overwrite the fact stored beside event `seq`, leaving its event as it
    /// is. For tests, like `tamper_raw`.
    #[doc(hidden)]
    fn tamper_fact(&self, seq: u64, fact: &[u8]) -> Result<(), StoreError> {
        let r = self.record(seq)?.ok_or_else(|| corrupt(seq, "no such event"))?;
        let record = encode_record(&r.hash(), &r.prev_hash(), fact, r.canonical());
        self.overwrite_record(seq, &record)
    }
}

/// Raw `(seq, record)` pairs from a backend, in seq order.
pub type RawRecords<'a> = Box<dyn Iterator<Item = Result<(u64, RecordBytes), StoreError>> + Send + 'a>;

/// Where a log lives: a sled directory or a PostgreSQL database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Sled(std::path::PathBuf),
    Postgres(String),
}

impl Location {
    /// `postgres://…` or `postgresql://…` is a database; anything else a
    /// directory (`sled:` may prefix it).
    pub fn parse(spec: &str) -> Location {
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            Location::Postgres(spec.to_owned())
        } else {
            Location::Sled(spec.strip_prefix("sled:").unwrap_or(spec).into())
        }
    }

    /// Open (or create) the store.
    pub fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Location::Sled(dir) => Arc::new(SledStore::open(dir)?),
            Location::Postgres(url) => Arc::new(postgres::PgStore::open(url)?),
        })
    }

    /// For messages: the directory, or the database URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Location::Sled(dir) => format!("sled in {}", dir.display()),
            Location::Postgres(url) => format!("PostgreSQL at {}", postgres::redact(url)),
        }
    }

    pub fn sled_dir(&self) -> Option<&Path> {
        match self {
            Location::Sled(dir) => Some(dir),
            Location::Postgres(_) => None,
        }
    }
}

/// Records in seq order, with seq continuity checked.
pub struct Records<'a> {
    inner: RawRecords<'a>,
    expected_seq: u64,
}

impl Iterator for Records<'_> {
    type Item = Result<Record, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next()?;
        let seq = self.expected_seq;
        let result = item.and_then(|(found, value)| {
            if found != seq {
                return Err(corrupt(seq, format!("seq {seq} is missing (next stored is {found})")));
            }
            Record::new(seq, value)
        });
        if result.is_ok() {
            self.expected_seq += 1;
        }
        Some(result)
    }
}

/// An iterator over stored events that checks seq continuity and the chain.
pub struct Scan<'a> {
    inner: Records<'a>,
    prev_hash: Option<Hash>,
}

impl Scan<'_> {
    /// Check the first event's link against a known predecessor hash too.
    pub fn linked_to(mut self, prev_hash: Hash) -> Self {
        self.prev_hash = Some(prev_hash);
        self
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<StoredEvent, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let result = self.inner.next()?.and_then(|r| {
            let event = r.event()?;
            if let Some(prev) = &self.prev_hash {
                if event.prev_hash != *prev {
                    return Err(corrupt(
                        event.seq,
                        format!(
                            "prev_hash {} does not match the hash of seq {}",
                            event.prev_hash,
                            event.seq - 1
                        ),
                    ));
                }
            }
            Ok(event)
        });
        if let Ok(e) = &result {
            self.prev_hash = Some(e.hash);
        }
        Some(result)
    }
}
