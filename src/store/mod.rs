//! The event store: the only code that knows sled.
//!
//! One sled tree, `log`, holds three kinds of keys:
//!
//! | key                      | value                              |
//! |--------------------------|------------------------------------|
//! | `e` + seq (u64, BE)      | the stored event, JSON             |
//! | `i` + event id (16 B)    | seq (u64, BE) + content digest (32 B) |
//! | `h`                      | head: seq (u64, BE) + hash (32 B)  |
//! | `m` + level (1 B) + index (u64, BE) | a perfect Merkle subtree's hash (32 B) |
//!
//! An append writes all of a group's keys with one `apply_batch`, which sled
//! makes atomic across crashes, then calls `flush` and, because sled 0.34's flush
//! ends in `sync_file_range` (no metadata, no device cache flush), an
//! `fdatasync` of sled's log file. Only then does the caller acknowledge.
//! Invariants are checked at both ends: before writing (seq follows the head,
//! each `prev_hash` links, hashes recompute) and after reading (each event's hash
//! recomputes; scans check the links).
//!
//! This module must not: decide whether an event is valid (that is `domain`),
//! keep read models (that is `projection`), or know about HTTP.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::domain::integrity::{event_hash, MerkleFrontier, NodeId, GENESIS_HASH};
use crate::domain::StoredEvent;

/// sled's segment size. With it, sled's inline threshold (a quarter segment) is
/// far above any node that events of at most `MAX_EVENT_BYTES` can make, so sled
/// never writes a blob file (sled 0.34 does not fsync blob files).
const SEGMENT_SIZE: usize = 4 * 1024 * 1024;
/// sled's page cache.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;

const EVENT_PREFIX: u8 = b'e';
const ID_PREFIX: u8 = b'i';
const HEAD_KEY: &[u8] = b"h";
const NODE_PREFIX: u8 = b'm';

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

/// The chain head: the last event's seq and hash (seq 0 and 64 zeros when empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Head {
    pub fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS_HASH.to_owned(),
        }
    }
}

/// An event ready to be written, with the digest idempotent retries compare.
pub struct Staged {
    pub event: StoredEvent,
    pub bytes: Vec<u8>,
    pub digest: [u8; 32],
    /// The perfect Merkle subtrees this event completes.
    pub nodes: Vec<(NodeId, [u8; 32])>,
}

/// What the store remembers about an event id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRecord {
    pub seq: u64,
    pub digest: [u8; 32],
}

pub struct Store {
    db: sled::Db,
    log: sled::Tree,
    /// Our own handle on sled's log file, to fsync what `flush` wrote.
    log_file: File,
    dir: PathBuf,
    head: Mutex<Head>,
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

fn id_key(id: &uuid::Uuid) -> [u8; 17] {
    let mut k = [ID_PREFIX; 17];
    k[1..].copy_from_slice(id.as_bytes());
    k
}

fn decode_hash(hex_hash: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_hash, &mut out).map_err(|e| format!("hash is not 64 hex digits: {e}"))?;
    Ok(out)
}

impl Store {
    /// Open (or create) the store in `dir`. Fails clearly when another process
    /// holds it or the directory is unusable.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)?;
        let db = sled::Config::new()
            .path(dir)
            .segment_size(SEGMENT_SIZE)
            .cache_capacity(CACHE_BYTES)
            .use_compression(false)
            .flush_every_ms(None)
            .open()?;
        let log = db.open_tree("log")?;
        // Make sure sled's files exist on disk and their directory entries are durable.
        db.flush()?;
        let log_file = File::open(dir.join("db"))?;
        log_file.sync_all()?;
        File::open(dir)?.sync_all()?;
        let head = match log.get(HEAD_KEY)? {
            None => Head::genesis(),
            Some(v) if v.len() == 40 => Head {
                seq: u64::from_be_bytes(v[..8].try_into().expect("8 bytes")),
                hash: hex::encode(&v[8..]),
            },
            Some(_) => {
                return Err(StoreError::Corrupt {
                    seq: 0,
                    reason: "the head record is malformed".into(),
                })
            }
        };
        Ok(Store {
            db,
            log,
            log_file,
            dir: dir.to_owned(),
            head: Mutex::new(head),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn head(&self) -> Head {
        self.head.lock().expect("head lock").clone()
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
        let mut expected_prev = head.hash.as_str();
        for (i, s) in batch.iter().enumerate() {
            let seq = head.seq + 1 + i as u64;
            if s.event.seq != seq || s.event.prev_hash != expected_prev || s.event.hash.len() != 64 {
                return Err(StoreError::Invariant(format!(
                    "event {} does not follow the head: seq {} (expected {seq}), prev_hash {} (expected {expected_prev})",
                    s.event.id, s.event.seq, s.event.prev_hash
                )));
            }
            expected_prev = s.event.hash.as_str();
        }
        let mut b = sled::Batch::default();
        for s in batch {
            b.insert(&event_key(s.event.seq), s.bytes.as_slice());
            let mut rec = Vec::with_capacity(40);
            rec.extend_from_slice(&s.event.seq.to_be_bytes());
            rec.extend_from_slice(&s.digest);
            b.insert(&id_key(&s.event.id), rec);
            for (node, hash) in &s.nodes {
                b.insert(&node_key(*node), hash);
            }
        }
        let new_head = Head {
            seq: last.event.seq,
            hash: last.event.hash.clone(),
        };
        b.insert(HEAD_KEY, head_record(&new_head)?);
        self.log.apply_batch(b)?;
        if let Err(e) = self.sync() {
            self.undo(batch, &head);
            return Err(e);
        }
        *head = new_head.clone();
        Ok(new_head)
    }

    /// flush, then fsync sled's log file: a real barrier, not `sync_file_range`.
    fn sync(&self) -> Result<(), StoreError> {
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
            b.remove(&id_key(&s.event.id));
            for (node, _) in &s.nodes {
                b.remove(&node_key(*node));
            }
        }
        match head_record(head) {
            Ok(rec) if head.seq > 0 => b.insert(HEAD_KEY, rec),
            _ => b.remove(HEAD_KEY),
        }
        if let Err(e) = self.log.apply_batch(b) {
            tracing::error!(error = %e, "could not undo a batch whose flush failed");
        }
    }

    /// The event at `seq`, its hash re-checked.
    pub fn get(&self, seq: u64) -> Result<Option<StoredEvent>, StoreError> {
        match self.log.get(event_key(seq))? {
            None => Ok(None),
            Some(bytes) => decode_checked(seq, &bytes).map(Some),
        }
    }

    /// What the store knows of event `id`: its seq and content digest.
    pub fn id_record(&self, id: &uuid::Uuid) -> Result<Option<IdRecord>, StoreError> {
        match self.log.get(id_key(id))? {
            None => Ok(None),
            Some(v) if v.len() == 40 => Ok(Some(IdRecord {
                seq: u64::from_be_bytes(v[..8].try_into().expect("8 bytes")),
                digest: v[8..].try_into().expect("32 bytes"),
            })),
            Some(_) => Err(StoreError::Corrupt {
                seq: 0,
                reason: format!("the id record of {id} is malformed"),
            }),
        }
    }

    /// A stored perfect Merkle subtree.
    pub fn node(&self, id: NodeId) -> Result<[u8; 32], StoreError> {
        match self.log.get(node_key(id))? {
            Some(v) if v.len() == 32 => Ok(v.as_ref().try_into().expect("32 bytes")),
            _ => Err(StoreError::Corrupt {
                seq: (id.index << id.level) + 1,
                reason: format!("Merkle node {}/{} is missing or malformed", id.level, id.index),
            }),
        }
    }

    /// The Merkle frontier of the first `size` events, from stored nodes:
    /// O(log n) reads, no rehashing.
    pub fn frontier(&self, size: u64) -> Result<MerkleFrontier, StoreError> {
        MerkleFrontier::from_nodes(size, &mut |id| self.node(id))
    }

    /// Events from `from_seq` on, in seq order, each hash re-checked and each
    /// link to its predecessor in the scan checked.
    pub fn scan(&self, from_seq: u64) -> Scan {
        let from = from_seq.max(1);
        Scan {
            inner: self.log.range(event_key(from)..event_key(u64::MAX)),
            expected_seq: from,
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

    /// Overwrite a stored event's bytes without any check. This exists so tests
    /// can play an attacker with disk access; nothing in the service calls it.
    #[doc(hidden)]
    pub fn tamper_raw(&self, seq: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.log.insert(event_key(seq), bytes)?;
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

fn head_record(head: &Head) -> Result<Vec<u8>, StoreError> {
    let mut rec = Vec::with_capacity(40);
    rec.extend_from_slice(&head.seq.to_be_bytes());
    rec.extend_from_slice(&decode_hash(&head.hash).map_err(StoreError::Invariant)?);
    Ok(rec)
}

/// Decode a stored event and check its own hash (not its link).
fn decode_checked(seq: u64, bytes: &[u8]) -> Result<StoredEvent, StoreError> {
    let event: StoredEvent = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        seq,
        reason: format!("the stored event does not decode: {e}"),
    })?;
    if event.seq != seq {
        return Err(StoreError::Corrupt {
            seq,
            reason: format!("the event stored at seq {seq} says seq {}", event.seq),
        });
    }
    let actual = event_hash(&event);
    if actual != event.hash {
        return Err(StoreError::Corrupt {
            seq,
            reason: format!("stored hash {} does not match the recomputed hash {actual}", event.hash),
        });
    }
    Ok(event)
}

/// An iterator over stored events that checks seq continuity and the chain.
pub struct Scan {
    inner: sled::Iter,
    expected_seq: u64,
    prev_hash: Option<String>,
}

impl Scan {
    /// Check the first event's link against a known predecessor hash too.
    pub fn linked_to(mut self, prev_hash: String) -> Scan {
        self.prev_hash = Some(prev_hash);
        self
    }
}

impl Iterator for Scan {
    type Item = Result<StoredEvent, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next()?;
        let seq = self.expected_seq;
        let result = (|| {
            let (key, bytes) = item?;
            let found = u64::from_be_bytes(key[1..9].try_into().expect("8 bytes"));
            if found != seq {
                return Err(StoreError::Corrupt {
                    seq,
                    reason: format!("seq {seq} is missing (next stored is {found})"),
                });
            }
            let event = decode_checked(seq, &bytes)?;
            if let Some(prev) = &self.prev_hash {
                if &event.prev_hash != prev {
                    return Err(StoreError::Corrupt {
                        seq,
                        reason: format!(
                            "prev_hash {} does not match the hash of seq {}",
                            event.prev_hash,
                            seq - 1
                        ),
                    });
                }
            }
            Ok(event)
        })();
        if let Ok(e) = &result {
            self.prev_hash = Some(e.hash.clone());
            self.expected_seq += 1;
        }
        Some(result)
    }
}
