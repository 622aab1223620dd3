//! Storage faults against the real binary: a full disk, a read-only disk, a
//! store held by another process. Clear errors, never a partial write, never
//! a panic, and recovery once the fault is fixed.
//!
//! Full and read-only disks are real: a small tmpfs mounted for the test, which
//! needs root (as CI runs); elsewhere these two tests say so and return.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::process::*;

struct Tmpfs {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0"))
            .unwrap_or(false);
        if !is_root {
            eprintln!("not root: the tmpfs fault tests need to mount; skipped");
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "running as root, mounting a tmpfs must work");
        Some(Tmpfs { dir, _tmp: tmp })
    }

    fn remount(&self, opts: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {opts}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

async fn head(server: &ServerProcess) -> u64 {
    server.json("/v1/audit/head").await["seq"].as_u64().unwrap()
}

fn big(i: usize) -> Value {
    let mut e = dev(
        "report",
        "aleppo",
        "2024-12-01T00:00:00Z",
        json!({"summary": format!("{i} {}", "x".repeat(16000))}),
    );
    e["id"] = json!(uuid::Uuid::new_v4());
    e
}

/// After restart on a healthy disk: every acknowledged event is there, nothing
/// refused is, the chain checks, and appends work again.
async fn recovered(data: &Path, acked: &[(String, u64)], expected_head: u64) {
    let server = ServerProcess::start(data, &[]);
    let c = reqwest::Client::new();
    assert_eq!(head(&server).await, expected_head, "nothing refused was written");
    for (id, seq) in acked {
        let e = server.json(&format!("/v1/events/{id}")).await;
        assert_eq!(e["seq"].as_u64(), Some(*seq));
    }
    let v = server.json("/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(server.post_json(&c, &big(0)).await.0, 201);
}

#[tokio::test]
async fn a_full_disk_answers_503_writes_nothing_and_recovers_after_restart() {
    let Some(fs) = Tmpfs::mount("12m") else { return };
    let data = fs.dir.join("data");
    let mut server = ServerProcess::start(&data, &["--demo"]);
    let c = reqwest::Client::new();
    let mut acked = Vec::new();
    let mut refused = 0;
    for i in 0..2000 {
        let (s, body) = server.post_json(&c, &big(i)).await;
        match s {
            201 => acked.push((body["id"].as_str().unwrap().to_owned(), body["seq"].as_u64().unwrap())),
            503 => {
                assert_eq!(body["code"], "unavailable", "{body}");
                refused += 1;
                if refused == 5 {
                    break;
                }
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(refused, 5, "the disk filled up");
    let h = head(&server).await;
    assert_eq!(h, 32 + acked.len() as u64, "refused appends wrote nothing");
    // Still answering: reads from the projection, and health says why it is not fine.
    assert_eq!(
        c.get(server.url("/v1/locations/aleppo"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let health = c.get(server.url("/healthz")).send().await.unwrap();
    assert_problem(health, 503, "unavailable").await;
    server.signal("-TERM");
    assert!(server.wait(Duration::from_secs(40)).is_some());
    assert!(!server.log().contains("panicked"), "{}", server.log());
    fs.remount("size=64m");
    recovered(&data, &acked, h).await;
}

#[tokio::test]
async fn a_read_only_store_is_refused_at_start_up_clearly_and_left_intact() {
    let Some(fs) = Tmpfs::mount("64m") else { return };
    let data = fs.dir.join("data");
    let (code, _, err) = sitrep(&["demo", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    // A read-only view of the same store (a file system cannot turn read-only
    // under a process holding files open for writing).
    let ro = fs.dir.join("ro");
    std::fs::create_dir(&ro).unwrap();
    assert!(Command::new("mount")
        .arg("--bind")
        .arg(&data)
        .arg(&ro)
        .status()
        .unwrap()
        .success());
    assert!(Command::new("mount")
        .args(["-o", "remount,bind,ro"])
        .arg(&ro)
        .status()
        .unwrap()
        .success());
    let (code, _, err) = sitrep(&["serve", "--listen", "127.0.0.1:0", "--data-dir", ro.to_str().unwrap()]);
    let _ = Command::new("umount").arg(&ro).status();
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot open the store") && err.contains("Read-only"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    recovered(&data, &[], 32).await;
}

#[tokio::test]
async fn a_store_held_by_another_process_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = ServerProcess::start(&data, &["--demo"]);
    let d = data.to_str().unwrap();
    let (code, _, err) = sitrep(&["serve", "--listen", "127.0.0.1:0", "--data-dir", d]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot open the store"), "{err}");
    for cmd in [vec!["verify", "--data-dir", d], vec!["export", "--data-dir", d]] {
        let (code, _, err) = sitrep(&cmd);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("is a server using it"), "{err}");
    }
    // The running server is unaffected.
    assert_eq!(head(&server).await, 32);
}
