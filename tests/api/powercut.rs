//! Power cuts (CONTRACT section 15): the real binary on `lazyfs`, a file system
//! that forgets every byte and every name not fsynced, under the crash test's
//! concurrent writers (single events, batches, retried ids, `expected_version`
//! writes). Each round cuts the power at a random write, rename, unlink or sync
//! of the server's start or of the load, killing the server with SIGKILL before
//! that operation is answered; the server must then start on what a disk would
//! hold, with every acknowledged event at its seq with its hash, and the chain
//! and the Merkle tree verifying. A `kill -9` alone cannot show a missing
//! fsync: the page cache outlives the process, it does not outlive a power cut.
//!
//! The control runs the same store on a disk that ignores `fdatasync`, the
//! barrier the store adds after sled's flush, and shows the same check
//! catching the acknowledged events that this loses.

mod lazyfs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

use crate::crash::{check, load, seed, Acked};
use crate::process::*;
use lazyfs::{Cut, Disk, Fdatasync, Loss};

/// Power cuts in the default run.
const CUTS: usize = 10;
/// Concurrent writers, of the four kinds `crash::load` has.
const WRITERS: usize = 8;
/// The changing operation a cut comes at is chosen at random in one of these
/// ranges, counted from the mount and, once the server is up and checked,
/// from the load's start. A start takes 10 to 30 (sled's recovery writes a
/// snapshot and renames it over the last, the store syncs its files and
/// directories and applies its write-ahead file), so every third cut is armed
/// for the start; the writers make some 300 to 500 a second.
const START_CUT_AT: std::ops::RangeInclusive<u64> = 1..=30;
const LOAD_CUT_AT: std::ops::RangeInclusive<u64> = 1..=400;
/// The control's cut: well after its start and seed.
const CONTROL_CUT_AT: u64 = 300;
/// The writers stop at the latest after this long (then the server is killed
/// and the power cut after the fact).
const LOAD_LIMIT: Duration = Duration::from_secs(3);

/// A temp dir holding the disk (`backing`) and where it is mounted.
struct Rig {
    // Unmounted before the temp dir is removed: fields drop in this order.
    disk: Option<Disk>,
    tmp: tempfile::TempDir,
}

impl Rig {
    /// A rig with the disk mounted, or `None` (after saying why) when this
    /// machine cannot mount FUSE and CI is not set; with CI set, that fails.
    fn new(fdatasync: Fdatasync, cut_at: Option<u64>) -> Option<Rig> {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("disk")).unwrap();
        std::fs::create_dir(tmp.path().join("mnt")).unwrap();
        let mut rig = Rig { disk: None, tmp };
        match rig.try_mount(fdatasync, cut_at) {
            Ok(()) => Some(rig),
            Err(e) => {
                let msg = format!(
                    "the power-cut tests need FUSE (/dev/fuse, root or the Debian package fuse3): mounting failed: {e}"
                );
                assert!(std::env::var_os("CI").is_none(), "CI is set: {msg}");
                eprintln!("SKIPPED: {msg}");
                None
            }
        }
    }

    fn try_mount(&mut self, fdatasync: Fdatasync, cut_at: Option<u64>) -> std::io::Result<()> {
        if !Path::new("/dev/fuse").exists() {
            return Err(std::io::Error::other("/dev/fuse does not exist"));
        }
        let (backing, mnt) = (self.tmp.path().join("disk"), self.tmp.path().join("mnt"));
        self.disk = Some(Disk::mount(&backing, &mnt, fdatasync, cut_at)?);
        Ok(())
    }

    fn mount(&mut self, fdatasync: Fdatasync, cut_at: Option<u64>) {
        self.try_mount(fdatasync, cut_at).expect("the disk mounts again");
    }

    fn disk(&self) -> &Disk {
        self.disk.as_ref().expect("mounted")
    }

    /// The server's data directory, on the mounted disk.
    fn data(&self) -> PathBuf {
        self.disk().mountpoint().join("data")
    }

    fn cut(&mut self, loss: Loss) -> Cut {
        self.disk.take().expect("mounted").cut(loss)
    }
}

/// Run the writers against `server` until the power goes out at its
/// operation or, at the latest, until `LOAD_LIMIT`, when the server is killed
/// with SIGKILL; then cut the power.
async fn load_then_cut(rig: &mut Rig, mut server: ServerProcess, acked: &Acked, loss: Loss) -> Cut {
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(load(server.address.clone(), acked.clone(), w)))
        .collect();
    let deadline = Instant::now() + LOAD_LIMIT;
    while Instant::now() < deadline && server.child.try_wait().unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = server.child.kill();
    server.child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    drop(server);
    rig.cut(loss)
}

/// The seed events are still there with their seq and hash (the writers'
/// events are `check`'s).
async fn check_seed(server: &ServerProcess, seed: &[Value]) {
    for r in seed {
        let e = server.json(&format!("/v1/events/{}", r["id"].as_str().unwrap())).await;
        assert_eq!(
            (&e["seq"], &e["hash"]),
            (&r["seq"], &r["hash"]),
            "acknowledged seed event {} (seq {}) was lost or changed: {e}",
            r["id"],
            r["seq"]
        );
    }
}

fn describe(cut: &Cut) -> String {
    let when = if cut.at_op {
        format!("at operation {}", cut.ops)
    } else {
        format!("after the kill, {} operations", cut.ops)
    };
    let dropped = if cut.dropped.is_empty() {
        "nothing".to_owned()
    } else {
        cut.dropped.join("; ")
    };
    let torn = match cut.kept_pages {
        0 => String::new(),
        n => format!(" ({n} of the unsynced pages reached the disk all the same)"),
    };
    format!("{when}; dropped: {dropped}{torn}")
}

/// `cuts` power cuts, each at a random operation of the server's start-up or
/// of the writers' load (or after the kill when the load ends first), each
/// followed by a restart and the checks; (events acknowledged, final head),
/// or `None` when skipped.
async fn power_cuts(cuts: usize) -> Option<(usize, u64)> {
    let cut_at = |n: usize| {
        let range = if n % 3 == 0 { START_CUT_AT } else { LOAD_CUT_AT };
        Some(rand::rng().random_range(range))
    };
    // Every other cut keeps some unsynced pages: the store must start on a torn tail too.
    let loss = |n: usize| if n % 2 == 1 { Loss::TornPages } else { Loss::All };
    let mut rig = Rig::new(Fdatasync::Honoured, cut_at(0))?;
    let acked: Acked = Arc::default();
    let mut seeded: Option<Vec<Value>> = None;
    for n in 0..cuts {
        if n > 0 {
            rig.mount(Fdatasync::Honoured, cut_at(n));
        }
        let server = match ServerProcess::try_start(&rig.data(), &[]) {
            Ok(server) => server,
            Err(_) if rig.disk().power_out() => {
                eprintln!("cut {n}: during start-up, {}", describe(&rig.cut(loss(n))));
                continue;
            }
            Err(log) => panic!("the server did not start before cut {n}: {log}"),
        };
        // The server is up: no cut while it is checked (its background work,
        // such as a projection checkpoint, would otherwise take the power
        // out under the check); then one during the load.
        rig.disk().arm(None);
        match &seeded {
            None => seeded = seed(&server).await,
            Some(seed) => {
                check_seed(&server, seed).await;
                check(&server, &acked).await;
            }
        }
        rig.disk().arm(Some(rand::rng().random_range(LOAD_CUT_AT)));
        let cut = load_then_cut(&mut rig, server, &acked, loss(n)).await;
        eprintln!(
            "cut {n}: {} acknowledged so far; {}",
            acked.lock().unwrap().len(),
            describe(&cut)
        );
    }
    rig.mount(Fdatasync::Honoured, None);
    let mut server = ServerProcess::start(&rig.data(), &[]);
    check_seed(&server, seeded.as_deref().unwrap_or_default()).await;
    let head = check(&server, &acked).await;
    server.signal("-TERM");
    assert_eq!(server.wait(Duration::from_secs(30)), Some(0));
    // The offline verifier agrees: every hash, link and stored Merkle node.
    let (code, out, err) = sitrep(&["verify", "--data-dir", rig.data().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let n = acked.lock().unwrap().len();
    Some((n, head))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_under_load_lose_nothing_acknowledged() {
    let Some((acked, head)) = power_cuts(CUTS).await else {
        return;
    };
    eprintln!("power-cut test: {CUTS} cuts, {acked} events acknowledged, 0 lost, head {head}");
    assert!(acked > 100, "the writers got work done: {acked}");
}

/// The long soak: `SITREP_POWERCUT_CUTS=300 cargo test --release --test api power_cut_soak -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a long soak; run it by hand"]
async fn power_cut_soak() {
    let cuts = std::env::var("SITREP_POWERCUT_CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let Some((acked, head)) = power_cuts(cuts).await else {
        return;
    };
    eprintln!("power-cut soak: {cuts} cuts, {acked} events acknowledged, 0 lost, head {head}");
}

/// The disk itself: after a cut, only what was synced, names by their
/// directory's fsync and contents by their file's.
#[test]
fn the_disk_keeps_only_what_was_synced() {
    let Some(mut rig) = Rig::new(Fdatasync::Honoured, None) else {
        return;
    };
    let root = rig.disk().mountpoint().to_owned();
    let sync_dir = |dir: &Path| std::fs::File::open(dir).unwrap().sync_all().unwrap();
    let write = |name: &str, text: &str| {
        let mut f = std::fs::File::create(root.join(name)).unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    };
    write("kept", "synced").sync_data().unwrap();
    write("renamed.tmp", "synced").sync_all().unwrap();
    sync_dir(&root);
    // Not synced: appended bytes, a name whose file was synced, a rename, a directory.
    let mut kept = std::fs::OpenOptions::new()
        .append(true)
        .open(root.join("kept"))
        .unwrap();
    std::io::Write::write_all(&mut kept, b" and more").unwrap();
    drop(kept);
    write("unnamed", "synced").sync_all().unwrap();
    std::fs::rename(root.join("renamed.tmp"), root.join("renamed")).unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    let cut = rig.cut(Loss::All);
    let disk = rig.tmp.path().join("disk");
    let mut left: Vec<String> = std::fs::read_dir(&disk)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["kept", "renamed.tmp"], "{}", describe(&cut));
    assert_eq!(std::fs::read_to_string(disk.join("kept")).unwrap(), "synced");
    assert_eq!(std::fs::read_to_string(disk.join("renamed.tmp")).unwrap(), "synced");
    // What was dropped is named.
    for lost in [
        "/kept: 1 unsynced pages",
        "/unnamed: new name",
        "/renamed: new name",
        "/renamed.tmp: removed",
        "/sub: new name",
    ] {
        assert!(
            cut.dropped.iter().any(|d| d.starts_with(lost)),
            "{lost} in {:?}",
            cut.dropped
        );
    }
}

/// The control: on a disk that answers `fdatasync` without making anything
/// durable (as if the store skipped it), acknowledged events are lost at the
/// cut, and the check the power-cut test relies on says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_without_fdatasync_the_check_catches_the_loss() {
    let Some(mut rig) = Rig::new(Fdatasync::Ignored, Some(CONTROL_CUT_AT)) else {
        return;
    };
    let acked: Acked = Arc::default();
    let server = ServerProcess::start(&rig.data(), &[]);
    seed(&server).await.expect("the seed is acknowledged");
    let cut = load_then_cut(&mut rig, server, &acked, Loss::All).await;
    eprintln!(
        "control cut: {} acknowledged; {}",
        acked.lock().unwrap().len(),
        describe(&cut)
    );
    assert!(!acked.lock().unwrap().is_empty(), "the writers got work done");
    rig.mount(Fdatasync::Honoured, None);
    let server = ServerProcess::start(&rig.data(), &[]);
    let held = server.json("/v1/audit/head").await["seq"].clone();
    eprintln!("control: the log holds {held} events after the cut");
    // `check` panics on a lost event; run it where that panic can be read.
    let verdict = tokio::spawn(async move { check(&server, &acked).await }).await;
    let failure = match verdict {
        Ok(head) => panic!("the check passed (head {head}) although fdatasync did nothing"),
        Err(e) => {
            let panic = e.into_panic();
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        }
    };
    eprintln!("control: the check failed as it must: {failure}");
    assert!(failure.contains("was lost"), "{failure}");
}
