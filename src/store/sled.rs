//! The sled backend: the embedded default, one process, one directory.
//!
//! One sled tree, `log`, holds these keys:
//!
//! | key                      | value                              |
//! |--------------------------|------------------------------------|
//! | `e` + seq (u64, BE)      | the event's record (`store::Record`) |
//! | `h`                      | head as of the last batch: seq (u64, BE) + hash (32 B) |
//! | `m` + level (1 B) + index (u64, BE) | a perfect Merkle subtree's hash (32 B), for levels >= `STORED_NODE_LEVEL` |
//! | `v`                      | the layout version (1 B)           |
//!
//! An append writes all of a group's keys with one `apply_batch`, which sled
//! makes atomic across crashes, and makes them durable before the caller
//! acknowledges, one of two ways. A small group (`WAL_GROUP_EVENTS`, a lone
//! reporter's) goes as one record to the write-ahead file ([`super::wal`]),
//! which is then `fdatasync`ed: one device round trip. A large one is made
//! durable by sled's `flush` and an `fdatasync` of sled's log file: two round
//! trips in series (sled 0.34's flush waits for its write with
//! `sync_file_range`, which carries no metadata and no device cache flush),
//! shared by the group's events. That also makes everything sled holds
//! durable, so the file starts over then when half full, and when full.
//! Opening the store applies the file's records to sled again (writing the
//! same values under the same keys), makes them durable in sled, and starts
//! the file over.
//!
//! A lone event that completes no stored Merkle node is one key, and is written
//! with a plain `insert` instead: sled 0.34's `apply_batch` first seals its batch
//! manifest in a log buffer of its own, which sled writes apart (with its flush,
//! one more device round trip than the event's; without, one more write on
//! sled's I/O threads). `h` then lags; the head is the last
//! event, whose record holds its seq and hash. sled recovers its log as a prefix,
//! so events after `h` are always a run without gaps.
//!
//! Two quirks of sled stay here: its page cache keeps written pages until they
//! are read (the read-back below), and after an I/O error it refuses every
//! write, so a failed append latches a fault until a restart reopens the store.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::wal::{Entry, Wal};
use super::{
    corrupt, head_after, Head, RawRecords, Record, RecordBytes, Staged, Store, StoreError, LAYOUT, STORED_NODE_LEVEL,
};
use crate::domain::hash::Hash;
use crate::domain::integrity::NodeId;

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
/// sled 0.34 counts a page against its cache only when the page is read, so
/// the pages of an append-only log, written and never read, stayed in memory
/// (about 2 KB per event: 2 GiB after a million appends, whatever the cache
/// size). Every this many events the store reads back the ones it has written
/// since the last time, which lets sled's cache evict them.
const READ_BACK_EVENTS: u64 = 8192;
/// Groups of up to this many events are made durable by the write-ahead file,
/// in one device round trip; larger ones by sled's flush and an fsync, whose
/// two round trips they share among more events, and which do not write their
/// bytes twice (measured: at 64 connections, groups of dozens of events, the
/// file for every group cost about a tenth of the appends a second).
const WAL_GROUP_EVENTS: usize = 8;

pub struct SledStore {
    db: sled::Db,
    log: sled::Tree,
    /// Our own handle on sled's log file, to fsync what `flush` wrote.
    log_file: File,
    dir: PathBuf,
    /// The head; its lock is held for the length of an append.
    head: Mutex<Head>,
    /// The last seq read back (see `READ_BACK_EVENTS`); guarded by `head`'s lock.
    read_back: std::sync::atomic::AtomicU64,
    /// Bumped by every write: a verdict about the store's contents holds while
    /// this stays the same.
    generation: std::sync::atomic::AtomicU64,
    /// The storage fault that stopped appends, if any.
    fault: Mutex<Option<String>>,
    /// The write-ahead file; taken under `head`'s lock when both are.
    wal: Mutex<Wal>,
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

impl SledStore {
    /// Open (or create) the store in `dir`. Fails clearly when another process
    /// holds it, the directory is unusable, or the store has another layout.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        create_dir_all_durably(dir)?;
        let db = sled::Config::new()
            .path(dir)
            .segment_size(SEGMENT_SIZE)
            .cache_capacity(CACHE_BYTES)
            .use_compression(false)
            .flush_every_ms(None)
            .open()?;
        let log = db.open_tree("log")?;
        // The groups written to the write-ahead file since it last started
        // over, in order: every one acknowledged since sled was last made
        // durable, and perhaps some that sled holds already (the same values
        // again) or one whose append failed.
        let (mut wal, acknowledged) = Wal::open(dir)?;
        for group in &acknowledged {
            insert(&log, group)?;
        }
        if !acknowledged.is_empty() {
            tracing::info!(groups = acknowledged.len(), "applied the write-ahead file to the log");
        }
        let batched = match log.get(HEAD_KEY)? {
            None => Head::genesis(),
            Some(v) if v.len() == 40 => Head {
                seq: u64::from_be_bytes(v[..8].try_into().expect("8 bytes")),
                hash: Hash::from_bytes(v[8..].try_into().expect("32 bytes")),
            },
            Some(_) => return Err(corrupt(0, "the head record is malformed")),
        };
        // Lone appends after the last batch (see the module's notes).
        let head = match log.range(event_key(batched.seq + 1)..=event_key(u64::MAX)).next_back() {
            None => batched,
            Some(kv) => {
                let (k, v) = kv?;
                let seq = u64::from_be_bytes(k[1..9].try_into().expect("8 bytes"));
                Head {
                    seq,
                    hash: Record::new(seq, RecordBytes::Sled(v))?.hash(),
                }
            }
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
        // Make sure sled's files exist on disk, hold what the write-ahead file
        // gave back, and their directory entries are durable; then the file
        // can start over. sled never fsyncs `conf` (it writes it once, at
        // creation); an empty one after a power cut makes it warn and write it
        // again.
        db.flush()?;
        let log_file = File::open(dir.join("db"))?;
        log_file.sync_all()?;
        File::open(dir.join("conf"))?.sync_all()?;
        File::open(dir)?.sync_all()?;
        wal.restart()?;
        Ok(SledStore {
            db,
            log,
            log_file,
            dir: dir.to_owned(),
            read_back: std::sync::atomic::AtomicU64::new(head.seq),
            generation: std::sync::atomic::AtomicU64::new(0),
            head: Mutex::new(head),
            fault: Mutex::new(None),
            wal: Mutex::new(wal),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
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

    /// Make a group of `events` events that sled holds durable: a small one
    /// as one record of the write-ahead file, a large one (or one the file has
    /// no room for) by sled's flush and fsync. That makes everything sled
    /// holds durable, so the file starts over then if it is full or half so.
    fn make_durable(&self, entries: &[Entry], events: usize) -> Result<(), StoreError> {
        let mut wal = self.wal.lock().expect("wal lock");
        let small = events <= WAL_GROUP_EVENTS;
        if small && wal.append(entries)? {
            self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return Ok(());
        }
        self.sync()?;
        if small || wal.is_half_full() {
            wal.restart()?;
        }
        Ok(())
    }

    /// After a failed append was taken back: a record of it may reach the
    /// disk all the same (a failed `fdatasync` leaves its pages' fate unknown)
    /// and would be applied again when the store opens. Best effort to make
    /// sled durable without it and start the write-ahead file over; if that
    /// fails too, the store is latched and the group may still appear after a
    /// restart, unacknowledged.
    fn forget_records(&self) {
        let mut wal = self.wal.lock().expect("wal lock");
        if let Err(e) = self.sync().and_then(|()| wal.restart().map_err(StoreError::Io)) {
            tracing::error!(error = %e, "could not start the write-ahead file over after a failed append");
        }
    }

    /// Best effort to take back a batch whose flush failed, so the in-memory tree
    /// matches what was acknowledged. If even this fails, later appends will be
    /// refused by the invariant check against the head.
    fn undo(&self, batch: &[Staged], head: &Head) {
        let mut b = sled::Batch::default();
        for s in batch {
            b.remove(&event_key(s.event.seq));
            for (node, _) in s.stored_nodes() {
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

    /// The raw bytes of every stored event, without decoding (for measuring).
    pub fn raw_scan(&self) -> impl Iterator<Item = Result<(u64, sled::IVec), StoreError>> + '_ {
        self.log.range(event_key(1)..event_key(u64::MAX)).map(|r| {
            let (k, v) = r?;
            Ok((u64::from_be_bytes(k[1..9].try_into().expect("8 bytes")), v))
        })
    }
}

impl Store for SledStore {
    fn describe(&self) -> String {
        format!("sled in {}", self.dir.display())
    }

    fn head(&self) -> Head {
        self.head.lock().expect("head lock").clone()
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn append_after(&self, base: &Head, batch: &[Staged]) -> Result<Head, StoreError> {
        let mut head = self.head.lock().expect("head lock");
        if let Some(fault) = self.fault() {
            return Err(StoreError::Unavailable(format!(
                "storage fault ({fault}); appends are refused until the server restarts"
            )));
        }
        if *head != *base {
            return Err(StoreError::Moved { planned: base.seq });
        }
        if batch.is_empty() {
            return Ok(head.clone());
        }
        let new_head = head_after(&head, batch);
        let entries = entries(batch, &new_head);
        let written = insert(&self.log, &entries)
            .map_err(StoreError::from)
            .and_then(|()| self.make_durable(&entries, batch.len()));
        let written = written.inspect_err(|_| {
            self.undo(batch, &head);
            self.forget_records();
        });
        if let Err(e) = written {
            // sled refuses every write after an I/O error: stop appending until
            // a restart reopens the store, rather than fail one group at a time.
            *self.fault.lock().expect("fault lock") = Some(e.to_string());
            return Err(e);
        }
        *head = new_head.clone();
        self.read_back(new_head.seq);
        Ok(new_head)
    }

    fn record(&self, seq: u64) -> Result<Option<Record>, StoreError> {
        match self.log.get(event_key(seq))? {
            None => Ok(None),
            Some(value) => Record::new(seq, RecordBytes::Sled(value)).map(Some),
        }
    }

    fn stored_node(&self, id: NodeId) -> Result<Option<[u8; 32]>, StoreError> {
        Ok(self
            .log
            .get(node_key(id))?
            .and_then(|v| <[u8; 32]>::try_from(v.as_ref()).ok()))
    }

    fn raw_records(&self, from_seq: u64) -> RawRecords<'_> {
        Box::new(
            self.log
                .range(event_key(from_seq.max(1))..event_key(u64::MAX))
                .map(|r| {
                    let (k, v) = r?;
                    Ok((
                        u64::from_be_bytes(k[1..9].try_into().expect("8 bytes")),
                        RecordBytes::Sled(v),
                    ))
                }),
        )
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    fn fault(&self) -> Option<String> {
        self.fault.lock().expect("fault lock").clone()
    }

    fn overwrite_record(&self, seq: u64, record: &[u8]) -> Result<(), StoreError> {
        // Everything durable in sled and the write-ahead file started over
        // first, so that opening the store cannot write the record back.
        let mut wal = self.wal.lock().expect("wal lock");
        self.sync()?;
        wal.restart()?;
        self.log.insert(event_key(seq), record)?;
        self.sync()
    }
}

/// sled's storage floor, for `sitrep-bench`: write `events` records of
/// `payload` into a fresh sled tree configured as the store's, syncing as an
/// append of a large group does (flush, then fdatasync of sled's log file; a
/// small group's goes to the write-ahead file instead) once every
/// `per_sync` records: one record is one `insert`, as a lone append writes
/// it, more are one `apply_batch`. Returns the time each sync's records took,
/// write and sync together, in order.
pub fn storage_floor(
    dir: &Path,
    payload: &[u8],
    events: usize,
    per_sync: usize,
) -> Result<Vec<std::time::Duration>, StoreError> {
    let store = SledStore::open(dir)?;
    let mut took = Vec::with_capacity(events / per_sync.max(1) + 1);
    let mut seq = 0u64;
    while (seq as usize) < events {
        let started = std::time::Instant::now();
        let group: Vec<Entry> = (seq + 1..=seq + per_sync.min(events - seq as usize) as u64)
            .map(|k| (event_key(k).to_vec(), payload.to_vec()))
            .collect();
        seq += group.len() as u64;
        insert(&store.log, &group)?;
        store.sync()?;
        took.push(started.elapsed());
    }
    Ok(took)
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

/// A group's keys and values: each event's record and the stored Merkle
/// nodes it completes, then the head, unless the group is a lone key (a lone
/// event's record is the head; see the module's notes).
fn entries(batch: &[Staged], new_head: &Head) -> Vec<Entry> {
    let mut entries = Vec::new();
    for s in batch {
        entries.push((event_key(s.event.seq).to_vec(), s.record()));
        for (node, hash) in s.stored_nodes() {
            entries.push((node_key(*node).to_vec(), hash.to_vec()));
        }
    }
    if entries.len() > 1 {
        entries.push((HEAD_KEY.to_vec(), head_record(new_head)));
    }
    entries
}

/// Write a group's entries into sled at once: a lone key with `insert`,
/// more with one `apply_batch`, atomic across crashes.
fn insert(log: &sled::Tree, entries: &[Entry]) -> sled::Result<()> {
    match entries {
        [(key, value)] => log.insert(key, value.as_slice()).map(|_| ()),
        _ => {
            let mut b = sled::Batch::default();
            for (k, v) in entries {
                b.insert(k.as_slice(), v.as_slice());
            }
            log.apply_batch(b)
        }
    }
}

fn head_record(head: &Head) -> Vec<u8> {
    let mut rec = Vec::with_capacity(40);
    rec.extend_from_slice(&head.seq.to_be_bytes());
    rec.extend_from_slice(head.hash.as_bytes());
    rec
}
