//! The event store: the only code that knows sled.
//!
//! One sled tree, `log`, holds these keys:
//!
//! | key                      | value                              |
//! |--------------------------|------------------------------------|
//! | `e` + seq (u64, BE)      | the event's record (below)          |
//! | `h`                      | head: seq (u64, BE) + hash (32 B)  |
//! | `m` + level (1 B) + index (u64, BE) | a perfect Merkle subtree's hash (32 B), for levels >= `STORED_NODE_LEVEL` |
//! | `v`                      | the layout version (1 B)           |
//!
//! An event's record is `[layout][hash 32 B][prev_hash 32 B][fact length u32 LE][fact][canonical JSON]`:
//! the canonical JSON is the RFC 8785 form of the event without its `hash`
//! member, exactly the bytes its hash is the SHA-256 of, so checking an event
//! is one SHA-256 over what is stored. The fact is what the projections read
//! (`domain::fact`), so start-up folds the log without parsing JSON.
//! Merkle subtrees below `STORED_NODE_LEVEL` are recomputed from at most
//! 2^(level) stored hashes when a proof needs them.
//!
//! An append writes all of a group's keys with one `apply_batch`, which sled
//! makes atomic across crashes, then calls `flush` and, because sled 0.34's flush
//! ends in `sync_file_range` (no metadata, no device cache flush), an
//! `fdatasync` of sled's log file. Only then does the caller acknowledge.
//! Invariants are checked at both ends: before writing (seq follows the head,
//! each `prev_hash` links) and after reading (each event's hash recomputes over
//! its bytes; scans check the links).
//!
//! This module must not: decide whether an event is valid (that is `domain`),
//! keep read models (that is `projection`), or know about HTTP.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::domain::fact::Fact;
use crate::domain::hash::Hash;
use crate::domain::integrity::{leaf_hash, node_hash, MerkleFrontier, NodeId, GENESIS_HASH};
use crate::domain::StoredEvent;

/// sled's segment size. With it, sled's inline threshold (a quarter segment) is
/// far above any node that events of at most `MAX_EVENT_BYTES` can make, so sled
/// never writes a blob file (sled 0.34 does not fsync blob files).
const SEGMENT_SIZE: usize = 4 * 1024 * 1024;
/// sled's page cache.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;

const EVENT_PREFIX: u8 = b'e';
const HEAD_KEY: &[u8] = b"h";
const NODE_PREFIX: u8 = b'm';
const LAYOUT_KEY: &[u8] = b"v";
/// The layout of records and keys described above.
const LAYOUT: u8 = 2;
/// Merkle subtrees of 2^4 leaves and up are stored; smaller ones are
/// recomputed from at most 16 event hashes.
pub const STORED_NODE_LEVEL: u32 = 4;
/// Bytes before a record's fact: layout, hash, prev_hash, fact length.
const RECORD_HEADER: usize = 1 + 32 + 32 + 4;
/// sled 0.34 counts a page against its cache only when the page is read, so
/// the pages of an append-only log, written and never read, stayed in memory
/// (about 2 KB per event: 2 GiB after a million appends, whatever the cache
/// size). Every this many events the store reads back the ones it has written
/// since the last time, which lets sled's cache evict them.
const READ_BACK_EVENTS: u64 = 8192;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the log is corrupt at seq {seq}: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error("refused to write: {0}")]
    Invariant(String),
}

fn corrupt(seq: u64, reason: impl Into<String>) -> StoreError {
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

/// One stored event's record, as read, before any check.
#[derive(Clone)]
pub struct Record {
    seq: u64,
    value: sled::IVec,
}

impl Record {
    fn new(seq: u64, value: sled::IVec) -> Result<Record, StoreError> {
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

    fn encode(s: &Staged) -> Vec<u8> {
        encode_record(&s.event.hash, &s.event.prev_hash, &s.fact.to_bytes(), &s.canonical)
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

pub struct Store {
    db: sled::Db,
    log: sled::Tree,
    /// Our own handle on sled's log file, to fsync what `flush` wrote.
    log_file: File,
    dir: PathBuf,
    head: Mutex<Head>,
    /// The last seq read back (see `READ_BACK_EVENTS`); guarded by `head`'s lock.
    read_back: std::sync::atomic::AtomicU64,
    /// Bumped by every write: a verdict about the store's contents holds while
    /// this stays the same.
    generation: std::sync::atomic::AtomicU64,
}

fn event_key(seq: u64) -> [u8; 9] {
    let mut k = [EVENT_PREFIX; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn node_key(id: NodeId) -> [u8; 10] {
    let mut k = [NODE_PREFIX; 10];
    k[1] = id.level as u8;
    k[2..].copy_from_slice(&id.index.to_be_bytes());
    k
}

/// A record in the layout described at the top of this module.
fn encode_record(hash: &Hash, prev_hash: &Hash, fact: &[u8], canonical: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(RECORD_HEADER + fact.len() + canonical.len());
    v.push(LAYOUT);
    v.extend_from_slice(hash.as_bytes());
    v.extend_from_slice(prev_hash.as_bytes());
    v.extend_from_slice(&(fact.len() as u32).to_le_bytes());
    v.extend_from_slice(fact);
    v.extend_from_slice(canonical);
    v
}

/// Is this Merkle subtree kept in the store (rather than recomputed)?
pub fn stores_node(id: NodeId) -> bool {
    id.level >= STORED_NODE_LEVEL
}

/// The subtrees an event completes that the store keeps.
fn stored_nodes(s: &Staged) -> impl Iterator<Item = &(NodeId, [u8; 32])> {
    s.nodes.iter().filter(|(n, _)| stores_node(*n))
}

impl Store {
    /// Open (or create) the store in `dir`. Fails clearly when another process
    /// holds it, the directory is unusable, or the store has another layout.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        create_dir_all_durably(dir)?;
        let db = sled::Config::new()
            .path(dir)
            .segment_size(SEGMENT_SIZE)
            .cache_capacity(CACHE_BYTES)
            .use_compression(false)
            .flush_every_ms(None)
            .open()?;
        let log = db.open_tree("log")?;
        let head = match log.get(HEAD_KEY)? {
            None => Head::genesis(),
            Some(v) if v.len() == 40 => Head {
                seq: u64::from_be_bytes(v[..8].try_into().expect("8 bytes")),
                hash: Hash::from_bytes(v[8..].try_into().expect("32 bytes")),
            },
            Some(_) => return Err(corrupt(0, "the head record is malformed")),
        };
        match log.get(LAYOUT_KEY)? {
            Some(v) if v.as_ref() == [LAYOUT] => {}
            None if head.seq == 0 => {
                log.insert(LAYOUT_KEY, &[LAYOUT])?;
            }
            found => {
                return Err(StoreError::Invariant(format!(
                    "the store in {} has record layout {}, this version reads layout {LAYOUT}: export it with the version that wrote it and import the export",
                    dir.display(),
                    found.map_or("1".to_owned(), |v| format!("{v:?}"))
                )))
            }
        }
        // Make sure sled's files exist on disk and their directory entries are
        // durable. sled never fsyncs `conf` (it writes it once, at creation); an
        // empty one after a power cut makes it warn and write it again.
        db.flush()?;
        let log_file = File::open(dir.join("db"))?;
        log_file.sync_all()?;
        File::open(dir.join("conf"))?.sync_all()?;
        File::open(dir)?.sync_all()?;
        Ok(Store {
            db,
            log,
            log_file,
            dir: dir.to_owned(),
            read_back: std::sync::atomic::AtomicU64::new(head.seq),
            generation: std::sync::atomic::AtomicU64::new(0),
            head: Mutex::new(head),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn head(&self) -> Head {
        self.head.lock().expect("head lock").clone()
    }

    /// Changes since the store was opened: two reads that see the same
    /// generation saw the same contents.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Append `batch` after the current head, atomically and durably. On return
    /// `Ok`, every event is on stable storage. On `Err`, nothing of the batch is
    /// visible in the store (a failed flush is undone in memory).
    pub fn append(&self, batch: &[Staged]) -> Result<Head, StoreError> {
        let mut head = self.head.lock().expect("head lock");
        let Some(last) = batch.last() else {
            return Ok(head.clone());
        };
        // Invariants before writing: gapless seq and linked hashes. (The hashes
        // themselves were computed by the caller a moment ago; recomputing them
        // here would double the cost of every append for no new evidence.)
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
        let mut b = sled::Batch::default();
        for s in batch {
            b.insert(&event_key(s.event.seq), Record::encode(s));
            for (node, hash) in stored_nodes(s) {
                b.insert(&node_key(*node), hash);
            }
        }
        let new_head = Head {
            seq: last.event.seq,
            hash: last.event.hash,
        };
        b.insert(HEAD_KEY, head_record(&new_head));
        self.log.apply_batch(b)?;
        if let Err(e) = self.sync() {
            self.undo(batch, &head);
            return Err(e);
        }
        *head = new_head.clone();
        self.read_back(new_head.seq);
        Ok(new_head)
    }

    /// Read back what was written since the last read-back, once there are
    /// `READ_BACK_EVENTS` of it, so sled's cache can evict those pages.
    fn read_back(&self, head: u64) {
        use std::sync::atomic::Ordering;
        let from = self.read_back.load(Ordering::Relaxed) + 1;
        if head + 1 - from < READ_BACK_EVENTS {
            return;
        }
        self.read_back.store(head, Ordering::Relaxed);
        for r in self.log.range(event_key(from)..=event_key(head)) {
            if r.is_err() {
                return;
            }
        }
        // The stored Merkle nodes those events completed.
        for level in STORED_NODE_LEVEL..64 {
            let (lo, hi) = ((from - 1) >> level, head >> level);
            if lo >= hi {
                break;
            }
            let _ = self
                .log
                .range(node_key(NodeId { level, index: lo })..node_key(NodeId { level, index: hi }))
                .count();
        }
    }

    /// flush, then fsync sled's log file: a real barrier, not `sync_file_range`.
    fn sync(&self) -> Result<(), StoreError> {
        // Every write ends here, so this is where the store's contents change.
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.log.flush()?;
        self.log_file.sync_data()?;
        Ok(())
    }

    /// Best effort to take back a batch whose flush failed, so the in-memory tree
    /// matches what was acknowledged. If even this fails, later appends will be
    /// refused by the invariant check against the head.
    fn undo(&self, batch: &[Staged], head: &Head) {
        let mut b = sled::Batch::default();
        for s in batch {
            b.remove(&event_key(s.event.seq));
            for (node, _) in stored_nodes(s) {
                b.remove(&node_key(*node));
            }
        }
        if head.seq > 0 {
            b.insert(HEAD_KEY, head_record(head));
        } else {
            b.remove(HEAD_KEY);
        }
        if let Err(e) = self.log.apply_batch(b) {
            tracing::error!(error = %e, "could not undo a batch whose flush failed");
        }
    }

    /// The record at `seq`, unchecked.
    pub fn record(&self, seq: u64) -> Result<Option<Record>, StoreError> {
        match self.log.get(event_key(seq))? {
            None => Ok(None),
            Some(value) => Record::new(seq, value).map(Some),
        }
    }

    /// The event at `seq`, its hash re-checked.
    pub fn get(&self, seq: u64) -> Result<Option<StoredEvent>, StoreError> {
        self.record(seq)?.map(|r| r.event()).transpose()
    }

    /// A perfect Merkle subtree: stored from `STORED_NODE_LEVEL` up, below it
    /// recomputed from the stored event hashes it covers.
    pub fn node(&self, id: NodeId) -> Result<[u8; 32], StoreError> {
        let first = (id.index << id.level) + 1;
        if stores_node(id) {
            return match self.log.get(node_key(id))? {
                Some(v) if v.len() == 32 => Ok(v.as_ref().try_into().expect("32 bytes")),
                _ => Err(corrupt(
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
    pub fn frontier(&self, size: u64) -> Result<MerkleFrontier, StoreError> {
        MerkleFrontier::from_nodes(size, &mut |id| self.node(id))
    }

    /// Records from `from_seq` on, in seq order, with gapless seqs checked and
    /// nothing else: callers check hashes and links as they need.
    pub fn records(&self, from_seq: u64) -> Records {
        let from = from_seq.max(1);
        Records {
            inner: self.log.range(event_key(from)..event_key(u64::MAX)),
            expected_seq: from,
        }
    }

    /// Events from `from_seq` on, in seq order, each hash re-checked and each
    /// link to its predecessor in the scan checked.
    pub fn scan(&self, from_seq: u64) -> Scan {
        Scan {
            inner: self.records(from_seq),
            prev_hash: None,
        }
    }

    /// The raw bytes of every stored event, without decoding (for measuring).
    pub fn raw_scan(&self) -> impl Iterator<Item = Result<(u64, sled::IVec), StoreError>> + '_ {
        self.log.range(event_key(1)..event_key(u64::MAX)).map(|r| {
            let (k, v) = r?;
            Ok((u64::from_be_bytes(k[1..9].try_into().expect("8 bytes")), v))
        })
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// Overwrite a stored event as an attacker with disk access would: `json`
    /// is the event as served (with its `hash`); its record keeps the stored
    /// fact and takes the hash and `prev_hash` the JSON states. This exists so
    /// tests can play that attacker; nothing in the service calls it.
    #[doc(hidden)]
    pub fn tamper_raw(&self, seq: u64, json: &[u8]) -> Result<(), StoreError> {
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
        self.log.insert(event_key(seq), record)?;
        self.sync()
    }
}

impl Store {
    /// Overwrite the fact stored beside event `seq`, leaving its event as it is.
    /// For tests, like `tamper_raw`.
    #[doc(hidden)]
    pub fn tamper_fact(&self, seq: u64, fact: &[u8]) -> Result<(), StoreError> {
        let r = self.record(seq)?.ok_or_else(|| corrupt(seq, "no such event"))?;
        let record = encode_record(&r.hash(), &r.prev_hash(), fact, r.canonical());
        self.log.insert(event_key(seq), record)?;
        self.sync()
    }
}

/// The storage floor, for `sitrep bench`: write `events` records of `payload`
/// into a fresh sled tree configured as the store's, syncing exactly as an
/// append does (flush, then fdatasync of sled's log file) once every
/// `per_sync` records. Returns the time taken.
pub fn storage_floor(
    dir: &Path,
    payload: &[u8],
    events: usize,
    per_sync: usize,
) -> Result<std::time::Duration, StoreError> {
    let store = Store::open(dir)?;
    let started = std::time::Instant::now();
    let mut seq = 0u64;
    while (seq as usize) < events {
        let mut b = sled::Batch::default();
        for _ in 0..per_sync.min(events - seq as usize) {
            seq += 1;
            b.insert(&event_key(seq), payload);
        }
        store.log.apply_batch(b)?;
        store.sync()?;
    }
    Ok(started.elapsed())
}

/// `create_dir_all`, then fsync the parent of `dir` and of every directory
/// made for it: a directory's fsync makes the names in it durable, not its own
/// name, so without this a power cut after the first appends could take the
/// whole store with the directory's name. The parent is synced even when `dir`
/// existed: an earlier start may have made it and died before syncing.
fn create_dir_all_durably(dir: &Path) -> std::io::Result<()> {
    let made: Vec<&Path> = dir.ancestors().skip(1).take_while(|d| !d.exists()).collect();
    std::fs::create_dir_all(dir)?;
    for named in std::iter::once(dir).chain(made) {
        let parent = match named.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            Some(_) => Path::new("."),
            None => continue,
        };
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn head_record(head: &Head) -> Vec<u8> {
    let mut rec = Vec::with_capacity(40);
    rec.extend_from_slice(&head.seq.to_be_bytes());
    rec.extend_from_slice(head.hash.as_bytes());
    rec
}

/// Records in seq order, with seq continuity checked.
pub struct Records {
    inner: sled::Iter,
    expected_seq: u64,
}

impl Iterator for Records {
    type Item = Result<Record, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next()?;
        let seq = self.expected_seq;
        let result = item.map_err(StoreError::from).and_then(|(key, value)| {
            let found = u64::from_be_bytes(key[1..9].try_into().expect("8 bytes"));
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
pub struct Scan {
    inner: Records,
    prev_hash: Option<Hash>,
}

impl Scan {
    /// Check the first event's link against a known predecessor hash too.
    pub fn linked_to(mut self, prev_hash: Hash) -> Scan {
        self.prev_hash = Some(prev_hash);
        self
    }
}

impl Iterator for Scan {
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
