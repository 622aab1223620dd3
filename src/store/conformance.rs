//! One suite, generic over `Store`, run against every backend: what the
//! ledger relies on from a store, whichever it is.
//!
//! PostgreSQL is found through `SITREP_TEST_POSTGRES` (a server URL where the
//! tests may create databases). Without it the PostgreSQL half is skipped,
//! unless `CI` is set: then it fails.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use super::postgres::PgStore;
use super::{Head, SledStore, Staged, Store, StoreError};
use crate::domain::fact::Fact;
use crate::domain::hash::Hash;
use crate::domain::integrity::{canonical_event, MerkleFrontier, GENESIS_HASH};
use crate::domain::StoredEvent;

/// Events `n`.. `n + count - 1` after `head`, each an actor registration, with
/// their Merkle nodes from `tree`.
fn events_after(head: &Head, count: usize, tree: &mut MerkleFrontier) -> Vec<Staged> {
    let mut prev = head.hash;
    (0..count as u64)
        .map(|i| {
            let seq = head.seq + 1 + i;
            let mut event: StoredEvent = serde_json::from_value(json!({
                "seq": seq,
                "id": Uuid::now_v7(),
                "type": "actor_registered",
                "actor": format!("actor-{seq}"),
                "recorded_at": "2024-11-30T12:00:00.000000Z",
                "recorded_by": "conformance",
                "data": {"name": format!("Actor {seq}"), "kind": "non_state_group"},
                "version": 1,
                "prev_hash": prev,
                "hash": GENESIS_HASH,
            }))
            .expect("a stored event");
            let canonical = canonical_event(&event);
            event.hash = Hash::of(&canonical);
            prev = event.hash;
            let parsed = event.to_new_event().expect("reads as an event");
            let fact = Fact::of(event.id, event.version, &parsed);
            let nodes = tree.push(event.hash.as_bytes());
            Staged {
                event,
                canonical,
                fact,
                nodes,
            }
        })
        .collect()
}

/// A fresh, empty store of one backend, and how to open it again.
trait Backend {
    fn name(&self) -> &'static str;
    fn open(&self) -> Arc<dyn Store>;
}

struct Sled(tempfile::TempDir);

impl Backend for Sled {
    fn name(&self) -> &'static str {
        "sled"
    }

    fn open(&self) -> Arc<dyn Store> {
        Arc::new(SledStore::open(self.0.path()).expect("sled opens"))
    }
}

struct Postgres {
    server: String,
    database: String,
}

impl Postgres {
    /// A fresh database on the test server, or `None` (skip) without one.
    fn fresh() -> Option<Postgres> {
        let server = match std::env::var("SITREP_TEST_POSTGRES") {
            Ok(url) => url,
            Err(_) if std::env::var_os("CI").is_some() => {
                panic!("CI is set but SITREP_TEST_POSTGRES is not: the PostgreSQL conformance tests need a server")
            }
            Err(_) => {
                eprintln!("skipped: set SITREP_TEST_POSTGRES to run the PostgreSQL half");
                return None;
            }
        };
        let database = format!("sitrep_conformance_{}", Uuid::new_v4().simple());
        let mut client = ::postgres::Client::connect(&server, ::postgres::NoTls).expect("the test server answers");
        client
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .expect("create a database");
        Some(Postgres { server, database })
    }

    fn url(&self) -> String {
        let mut url = url::Url::parse(&self.server).expect("a URL");
        url.set_path(&self.database);
        url.to_string()
    }
}

impl Backend for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn open(&self) -> Arc<dyn Store> {
        Arc::new(PgStore::open(&self.url()).expect("postgres opens"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Ok(mut c) = ::postgres::Client::connect(&self.server, ::postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database));
        }
    }
}

/// Run `check` against every backend available.
fn each_backend(check: impl Fn(&dyn Backend)) {
    let sled = Sled(tempfile::tempdir().expect("temp dir"));
    check(&sled);
    if let Some(pg) = Postgres::fresh() {
        check(&pg);
    }
}

fn all_records(store: &dyn Store) -> Vec<(u64, Vec<u8>)> {
    store
        .records(1)
        .map(|r| r.map(|r| (r.seq(), r.bytes().to_vec())))
        .collect::<Result<_, _>>()
        .expect("records read")
}

#[test]
fn an_ok_append_is_durable_and_reopening_restores_the_head() {
    each_backend(|b| {
        let mut tree = MerkleFrontier::default();
        let (head, written) = {
            let store = b.open();
            let batch = events_after(&Head::genesis(), 3, &mut tree);
            let head = store.append(&batch).expect("appends");
            assert_eq!(head.seq, 3, "{}", b.name());
            assert_eq!(head.hash, batch[2].event.hash, "{}", b.name());
            (head, all_records(&*store))
        };
        let store = b.open();
        assert_eq!(store.head(), head, "{}: the head after reopening", b.name());
        assert_eq!(store.durable_head().expect("reads"), head, "{}", b.name());
        assert_eq!(
            all_records(&*store),
            written,
            "{}: the records after reopening",
            b.name()
        );
        for seq in 1..=3 {
            let event = store.get(seq).expect("reads").expect("present");
            assert_eq!(event.seq, seq, "{}", b.name());
        }
        assert!(store.get(4).expect("reads").is_none(), "{}", b.name());
    });
}

#[test]
fn lone_appends_between_batches_reopen_to_the_last_event_with_every_stored_node() {
    each_backend(|b| {
        let mut tree = MerkleFrontier::default();
        let mut roots = Vec::new();
        let (head, written) = {
            let store = b.open();
            // A batch, then lone events up to and past seq 16 (whose event
            // completes a stored node), then a batch, then lone events again.
            for size in [3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 5, 1, 1] {
                let batch = events_after(&store.head(), size, &mut tree);
                let head = store.append(&batch).expect("appends");
                assert_eq!(head.hash, batch[size - 1].event.hash, "{}", b.name());
                roots.push((head.seq, tree.root()));
            }
            (store.head(), all_records(&*store))
        };
        assert_eq!(head.seq, 24, "{}", b.name());
        for _ in 0..2 {
            let store = b.open();
            assert_eq!(store.head(), head, "{}: the head after reopening", b.name());
            assert_eq!(
                all_records(&*store),
                written,
                "{}: the records after reopening",
                b.name()
            );
            for (size, root) in &roots {
                let from_store = store.frontier(*size).expect("the frontier reads");
                assert_eq!(from_store.root(), *root, "{}: the root at size {size}", b.name());
            }
        }
        // The next append, lone, follows the reopened head, and so on.
        let store = b.open();
        let batch = events_after(&head, 1, &mut tree);
        assert_eq!(store.append(&batch).expect("appends").seq, 25, "{}", b.name());
        drop(store);
        assert_eq!(b.open().head().hash, batch[0].event.hash, "{}", b.name());
    });
}

#[test]
fn seqs_stay_gapless_across_appends_and_a_scan_checks_the_chain() {
    each_backend(|b| {
        let store = b.open();
        let mut tree = MerkleFrontier::default();
        for size in [1, 5, 2, 17, 1] {
            let batch = events_after(&store.head(), size, &mut tree);
            store.append(&batch).expect("appends");
        }
        let seqs: Vec<u64> = store.scan(1).map(|e| e.expect("checks").seq).collect();
        assert_eq!(seqs, (1..=26).collect::<Vec<_>>(), "{}", b.name());
        let from_ten: Vec<u64> = store.scan(10).map(|e| e.expect("checks").seq).collect();
        assert_eq!(from_ten, (10..=26).collect::<Vec<_>>(), "{}", b.name());
    });
}

#[test]
fn a_batch_that_does_not_follow_the_head_is_refused_and_leaves_nothing() {
    each_backend(|b| {
        let store = b.open();
        let mut tree = MerkleFrontier::default();
        store
            .append(&events_after(&Head::genesis(), 2, &mut tree))
            .expect("appends");
        let before = all_records(&*store);

        // A bad link in the middle of a batch: nothing of the batch is written.
        let mut batch = events_after(&store.head(), 3, &mut tree.clone());
        batch[1].event.prev_hash = GENESIS_HASH;
        assert!(
            matches!(store.append(&batch), Err(StoreError::Invariant(_))),
            "{}",
            b.name()
        );
        // A seq that skips one.
        let mut batch = events_after(&store.head(), 2, &mut tree.clone());
        batch[0].event.seq += 1;
        assert!(
            matches!(store.append(&batch), Err(StoreError::Invariant(_))),
            "{}",
            b.name()
        );
        // A batch that starts over from genesis.
        let batch = events_after(&Head::genesis(), 1, &mut MerkleFrontier::default());
        assert!(
            matches!(store.append(&batch), Err(StoreError::Invariant(_))),
            "{}",
            b.name()
        );

        assert_eq!(
            all_records(&*store),
            before,
            "{}: refused batches left records",
            b.name()
        );
        assert_eq!(store.head().seq, 2, "{}", b.name());
        drop(store);
        let reopened = b.open();
        assert_eq!(all_records(&*reopened), before, "{}", b.name());
        // The log goes on from where it was.
        reopened
            .append(&events_after(&reopened.head(), 1, &mut tree))
            .expect("appends after the refusals");
        assert_eq!(reopened.head().seq, 3, "{}", b.name());
    });
}

#[test]
fn the_stored_merkle_nodes_are_the_tree_of_the_events() {
    each_backend(|b| {
        let store = b.open();
        let mut tree = MerkleFrontier::default();
        let mut roots = Vec::new();
        for size in [3, 16, 1, 31, 20] {
            let batch = events_after(&store.head(), size, &mut tree);
            store.append(&batch).expect("appends");
            roots.push((store.head().seq, tree.root()));
        }
        for (size, root) in roots {
            let from_store = store.frontier(size).expect("the frontier reads");
            assert_eq!(from_store.root(), root, "{}: the root at size {size}", b.name());
        }
        // A node of level 4 and up comes from storage; it covers the events it should.
        let id = crate::domain::integrity::NodeId { level: 4, index: 2 };
        let stored = store.node(id).expect("stored");
        let mut recomputed = MerkleFrontier::default();
        let leaves: Vec<_> = store.records(1).take(48).map(|r| r.expect("reads").hash()).collect();
        for h in &leaves[32..48] {
            recomputed.push(h.as_bytes());
        }
        assert_eq!(stored, recomputed.root(), "{}: node 4/2", b.name());
    });
}

#[test]
fn an_append_planned_on_a_head_that_moved_is_refused_and_leaves_nothing() {
    each_backend(|b| {
        // Two handles on one log where the backend allows it (two servers on
        // one database); one handle otherwise.
        let first = b.open();
        let second = if b.name() == "postgres" {
            b.open()
        } else {
            first.clone()
        };
        let mut tree = MerkleFrontier::default();
        let base = Head::genesis();
        let mine = events_after(&base, 2, &mut tree.clone());
        let theirs = events_after(&base, 3, &mut tree);
        second
            .append_after(&base, &theirs)
            .expect("the first append after genesis");
        let refused = first.append_after(&base, &mine);
        assert!(
            matches!(refused, Err(StoreError::Moved { planned: 0 })),
            "{}: {refused:?}",
            b.name()
        );
        let hashes: Vec<Hash> = first.scan(1).map(|e| e.expect("checks").hash).collect();
        let theirs: Vec<Hash> = theirs.iter().map(|s| s.event.hash).collect();
        assert_eq!(hashes, theirs, "{}: the refused batch left nothing", b.name());
    });
}

#[test]
fn concurrent_writers_that_replan_on_a_moved_head_make_one_gapless_chain() {
    const WRITERS: usize = 4;
    const EACH: usize = 15;
    each_backend(|b| {
        let shared = b.open();
        let handles: Vec<Arc<dyn Store>> = (0..WRITERS)
            .map(|_| {
                if b.name() == "postgres" {
                    b.open()
                } else {
                    shared.clone()
                }
            })
            .collect();
        let threads: Vec<_> = handles
            .into_iter()
            .map(|store| {
                std::thread::spawn(move || {
                    let mut written = Vec::new();
                    while written.len() < EACH {
                        let base = store.durable_head().expect("reads");
                        let mut tree = store.frontier(base.seq).expect("the frontier reads");
                        let batch = events_after(&base, 1, &mut tree);
                        match store.append_after(&base, &batch) {
                            Ok(head) => written.push(head.seq),
                            Err(StoreError::Moved { .. }) => {}
                            Err(e) => panic!("append: {e}"),
                        }
                    }
                    written
                })
            })
            .collect();
        let mut seqs = Vec::new();
        for t in threads {
            seqs.extend(t.join().expect("joins"));
        }
        seqs.sort_unstable();
        let all = (WRITERS * EACH) as u64;
        assert_eq!(
            seqs,
            (1..=all).collect::<Vec<_>>(),
            "{}: every append got a seq of its own",
            b.name()
        );
        let scanned: Vec<u64> = shared.scan(1).map(|e| e.expect("links check").seq).collect();
        assert_eq!(scanned, seqs, "{}", b.name());
        let mut tree = MerkleFrontier::default();
        for e in shared.scan(1) {
            tree.push(e.expect("reads").hash.as_bytes());
        }
        assert_eq!(shared.frontier(all).expect("reads").root(), tree.root(), "{}", b.name());
    });
}

#[test]
fn a_failed_database_write_leaves_nothing_behind() {
    // An id already in the log: the database refuses the insert mid-batch, and
    // the whole group goes with it. (sled does not index ids; the ledger's
    // rules keep them unique before any backend sees them.)
    let Some(pg) = Postgres::fresh() else { return };
    let store = pg.open();
    let mut tree = MerkleFrontier::default();
    let first = events_after(&Head::genesis(), 2, &mut tree);
    let id = first[0].event.id;
    store.append(&first).expect("appends");
    let before = all_records(&*store);
    let mut batch = events_after(&store.head(), 3, &mut tree.clone());
    batch[2].event.id = id;
    let err = store.append(&batch).expect_err("a duplicate id is refused");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert_eq!(all_records(&*store), before);
    assert_eq!(store.durable_head().expect("reads").seq, 2);
    // And the connection is usable for the next append.
    store
        .append(&events_after(&store.head(), 1, &mut tree))
        .expect("appends");
    assert_eq!(store.durable_head().expect("reads").seq, 3);
}

#[test]
fn a_writers_turn_holds_off_other_writers_until_it_ends() {
    // Only a backend with several writers has turns to take.
    let Some(pg) = Postgres::fresh() else { return };
    let (mine, theirs) = (pg.open(), pg.open());
    mine.take_turn().expect("takes the turn");
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let batch = events_after(&Head::genesis(), 1, &mut MerkleFrontier::default());
        tx.send(theirs.append_after(&Head::genesis(), &batch).map(|h| h.seq))
            .expect("sends");
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(500)).is_err(),
        "another writer appended during this one's turn"
    );
    mine.end_turn();
    let appended = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("appends once the turn ends");
    assert_eq!(appended.expect("appends"), 1);
    waiter.join().expect("joins");
}

/// The files of `from`, copied into `to` while the store that owns them is
/// open: what a process killed at that moment leaves on disk (written, if
/// not yet synced). `skip` names files left out.
fn copy_files(from: &std::path::Path, to: &std::path::Path, skip: &[&str]) {
    std::fs::create_dir_all(to).expect("a directory");
    for entry in std::fs::read_dir(from).expect("the store's directory reads") {
        let entry = entry.expect("an entry");
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        if entry.file_type().expect("a file type").is_dir() {
            copy_files(&entry.path(), &to.join(&name), &[]);
        } else {
            std::fs::copy(entry.path(), to.join(&name)).expect("the file copies");
        }
    }
}

/// sled only: small groups are durable through the write-ahead file while
/// sled holds them in memory, unflushed. The store's files as a killed process
/// leaves them open to every group, in order, the head on the last; without
/// the write-ahead file (the control) sled alone has lost the small groups.
#[test]
fn small_groups_only_in_the_write_ahead_file_come_back_when_the_store_opens() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let live = dir.path().join("live");
    let mut tree = MerkleFrontier::default();
    let store = SledStore::open(&live).expect("sled opens");
    // A large group (sled's flush), then small ones, up to and past seq 32
    // (whose event completes a stored node).
    for size in [20, 1, 1, 3, 1, 8, 1] {
        let batch = events_after(&store.head(), size, &mut tree);
        store.append(&batch).expect("appends");
    }
    let head = store.head();
    assert_eq!(head.seq, 35);
    let written = all_records(&store);

    let killed = dir.path().join("killed");
    copy_files(&live, &killed, &[]);
    let without_wal = dir.path().join("without-wal");
    copy_files(&live, &without_wal, &[super::wal::WAL_FILE]);
    drop(store);

    for _ in 0..2 {
        let reopened = SledStore::open(&killed).expect("the killed store opens");
        assert_eq!(reopened.head(), head, "the head after the kill");
        assert_eq!(all_records(&reopened), written, "the records after the kill");
        assert_eq!(
            reopened.frontier(head.seq).expect("the frontier reads").root(),
            tree.root(),
            "the Merkle root after the kill"
        );
    }
    let sled_alone = SledStore::open(&without_wal).expect("sled alone opens");
    assert!(
        sled_alone.head().seq < head.seq,
        "sled alone kept every small group, so this test shows nothing: head {}",
        sled_alone.head().seq
    );
}
