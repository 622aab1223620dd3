//! Signed checkpoints and witnesses (CONTRACT section 13) with real processes:
//! `sitrep serve --signing-key` and `sitrep witness` talking over loopback
//! HTTP, and the auditor (`sitrep audit … --vkey`) as a third process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::json;
use sitrep::transparency::checkpoint::{self, Checkpoint};
use sitrep::transparency::cosignature::{count_cosigners, CosignatureVerifier};
use sitrep::transparency::note::{verifier, PrivateKey};

use crate::auditor::{audit, err};
use crate::helpers::{copy_dir, dev, raw, raw_exchange};
use crate::process::{sitrep, tokens_file, ServerProcess};

/// Time between two checkpoints in these tests.
const INTERVAL: &str = "0.1";
/// Polls of a condition, and the pause between two.
const POLLS: usize = 600;
const POLL_PAUSE: Duration = Duration::from_millis(50);

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `sitrep key new`: the key file and the printed verifier key.
fn key_new(dir: &Path, name: &str, witness: bool) -> (PathBuf, String) {
    let path = dir.join(format!("{}.key", name.replace('/', "_")));
    let mut args = vec!["key", "new", "--name", name, "--out", s(&path)];
    if witness {
        args.push("--witness");
    }
    let (code, out, err) = sitrep(&args);
    assert_eq!(code, Some(0), "{err}");
    (path, out.trim().to_owned())
}

/// A demo store (32 events) in `dir`.
fn demo_store(dir: &Path) {
    let (code, _, err) = sitrep(&["demo", "--data-dir", s(dir)]);
    assert_eq!(code, Some(0), "{err}");
}

fn witness(dir: &Path, key: &Path, logs: &[&str], listen: &str) -> ServerProcess {
    witness_with(dir, key, logs, listen, &[])
}

/// A witness with options of the test's own before its `--log` keys.
fn witness_with(dir: &Path, key: &Path, logs: &[&str], listen: &str, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["witness", "--listen", listen, "--data-dir", s(dir), "--key", s(key)];
    args.extend_from_slice(extra);
    args.push("--log");
    args.extend_from_slice(logs);
    ServerProcess::start_command(&args)
}

fn signing_server(data: &Path, key: &Path, witnesses: &[String]) -> ServerProcess {
    let mut args = vec!["--signing-key", s(key), "--checkpoint-interval", INTERVAL];
    for w in witnesses {
        args.extend(["--witness", w.as_str()]);
    }
    ServerProcess::start(data, &args)
}

async fn append(server: &ServerProcess, summary: &str) {
    let res = reqwest::Client::new()
        .post(server.url("/v1/events"))
        .json(&dev(
            "report",
            "aleppo",
            "2024-12-02T00:00:00Z",
            json!({ "summary": summary }),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

async fn checkpoint_text(server: &ServerProcess) -> (u16, String) {
    let res = reqwest::get(server.url("/v1/audit/checkpoint")).await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Poll the server's checkpoint until it is of `size` with at least
/// `cosigned` cosignatures of `witness` (bounded).
async fn wait_for_checkpoint(
    server: &ServerProcess,
    log: &str,
    witness: Option<&CosignatureVerifier>,
    size: u64,
    cosigned: usize,
) -> String {
    let log = verifier(log).unwrap();
    let mut last = String::new();
    for _ in 0..POLLS {
        let (status, text) = checkpoint_text(server).await;
        if status == 200 {
            let (cp, note) = checkpoint::open(text.as_bytes(), &log).expect("the served checkpoint verifies");
            let n = witness.map_or(0, |w| count_cosigners(&note, std::slice::from_ref(w)));
            if cp.size == size && n >= cosigned {
                return text;
            }
        }
        last = text;
        tokio::time::sleep(POLL_PAUSE).await;
    }
    panic!(
        "no checkpoint of {size} with {cosigned} cosignature(s); last: {last}\nserver log:\n{}",
        server.log()
    );
}

async fn wait_for_log(server: &ServerProcess, needle: &str) {
    for _ in 0..POLLS {
        if server.log().contains(needle) {
            return;
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
    panic!("'{needle}' never appeared in the log:\n{}", server.log());
}

/// POST a tlog-witness add-checkpoint body; (status, content type, body).
async fn add_checkpoint(witness: &ServerProcess, old: u64, proof: &[String], note: &str) -> (u16, String, String) {
    let mut body = format!("old {old}\n");
    for p in proof {
        body.push_str(p);
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    let res = reqwest::Client::new()
        .post(witness.url("/add-checkpoint"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, res.text().await.unwrap())
}

/// The server's consistency proof from `first` to `second`, as base64 lines.
async fn proof_lines(server: &ServerProcess, first: u64, second: u64) -> Vec<String> {
    let p = server
        .json(&format!("/v1/audit/proof/consistency?first={first}&second={second}"))
        .await;
    p["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| BASE64_STANDARD.encode(hex::decode(h.as_str().unwrap()).unwrap()))
        .collect()
}

/// A temp dir holding a log's key and a witness's, made by `sitrep key new`.
struct Keys {
    tmp: tempfile::TempDir,
    log_key: PathBuf,
    log_vkey: String,
    w_key: PathBuf,
    w_vkey: String,
    w: CosignatureVerifier,
}

fn keys() -> Keys {
    let tmp = tempfile::tempdir().unwrap();
    let (log_key, log_vkey) = key_new(tmp.path(), "sitrep.test/log", false);
    let (w_key, w_vkey) = key_new(tmp.path(), "witness.test/w1", true);
    let w = CosignatureVerifier::parse(&w_vkey).unwrap();
    Keys {
        tmp,
        log_key,
        log_vkey,
        w_key,
        w_vkey,
        w,
    }
}

#[tokio::test]
async fn a_split_view_is_caught_by_the_witness_and_by_an_auditor_with_a_quorum() {
    let Keys {
        tmp,
        log_key,
        log_vkey,
        w_key,
        w_vkey,
        w,
    } = keys();
    let root = tmp.path();
    // One log of 32 events, forked into two stores.
    demo_store(&root.join("base"));
    copy_dir(&root.join("base"), &root.join("a"));
    copy_dir(&root.join("base"), &root.join("b"));
    let wit = witness(&root.join("witness"), &w_key, &[&log_vkey], "127.0.0.1:0");
    let target = format!("{}+{w_vkey}", wit.address);

    // A: one more event; signed and cosigned at 33.
    let a = signing_server(&root.join("a"), &log_key, std::slice::from_ref(&target));
    append(&a, "the history shown to newsroom A").await;
    let a_note = wait_for_checkpoint(&a, &log_vkey, Some(&w), 33, 1).await;

    // B: the same key, two other events; signed at 34, but the witness, which
    // cosigned A's 33, cannot be shown that B's 34 extends it.
    let b = signing_server(&root.join("b"), &log_key, &[target]);
    append(&b, "the history shown to newsroom B").await;
    append(&b, "and more of it").await;
    let b_note = wait_for_checkpoint(&b, &log_vkey, None, 34, 0).await;
    wait_for_log(&b, "the witness answered 422").await;
    let (_, b_served) = checkpoint_text(&b).await;
    let (_, note) = checkpoint::open(b_served.as_bytes(), &verifier(&log_vkey).unwrap()).unwrap();
    assert_eq!(count_cosigners(&note, std::slice::from_ref(&w)), 0, "{b_served}");

    // The witness itself, asked directly: B's 34 with B's own proof from 33 is
    // refused (422), B's 34 claimed from 0 is told the witness's size (409),
    // and A's 33 again is cosigned again (200).
    let b_proof = proof_lines(&b, 33, 34).await;
    let (status, _, body) = add_checkpoint(&wit, 33, &b_proof, &b_note).await;
    assert_eq!(status, 422, "{body}");
    let (status, ct, body) = add_checkpoint(&wit, 0, &[], &b_note).await;
    assert_eq!((status, ct.as_str(), body.as_str()), (409, "text/x.tlog.size", "33\n"));
    let (status, _, body) = add_checkpoint(&wit, 33, &[], &a_note).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("— witness.test/w1 "), "{body}");

    // The auditor who requires one cosignature accepts A and rejects B.
    let quorum = ["--vkey", &log_vkey, "--witness", &w_vkey, "--quorum", "1"];
    let ok = audit("check-consistency", &a.address, &quorum).await;
    assert_eq!(ok.status.code(), Some(0), "{}", err(&ok));
    assert!(err(&ok).contains("save 33:"), "{}", err(&ok));
    let refused = audit("check-consistency", &b.address, &quorum).await;
    assert_eq!(refused.status.code(), Some(1), "{}", err(&refused));
    assert!(err(&refused).contains("0 valid cosignature"), "{}", err(&refused));
    let refused = audit(
        "check-inclusion",
        &b.address,
        &[&["--seq", "34"][..], &quorum[..]].concat(),
    )
    .await;
    assert_eq!(refused.status.code(), Some(1), "{}", err(&refused));
    // Control: the log's signature alone does not tell the two apart; that is
    // what the witness is for.
    let alone = audit("check-consistency", &b.address, &["--vkey", &log_vkey]).await;
    assert_eq!(alone.status.code(), Some(0), "{}", err(&alone));
    // B asked the witness about its 34 once: a refusal is final for that
    // checkpoint, although many rounds have passed since.
    let refusals = b
        .log()
        .lines()
        .filter(|l| l.contains("the witness refuses this checkpoint") && l.contains(r#""size":34"#))
        .count();
    assert_eq!(refusals, 1, "{}", b.log());
}

/// Serves a fixed checkpoint at `/v1/audit/checkpoint` and passes everything
/// else to `upstream`: a server that lies about its checkpoint.
async fn lying_proxy(upstream: String, checkpoint: String) -> (String, actix_web::dev::ServerHandle) {
    struct Upstream(String);
    struct Served(String);
    let client = web::Data::new(reqwest::Client::new());
    let upstream = web::Data::new(Upstream(upstream));
    let checkpoint = web::Data::new(Served(checkpoint));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(client.clone())
            .app_data(upstream.clone())
            .app_data(checkpoint.clone())
            .default_service(web::to(
                |req: actix_web::HttpRequest,
                 client: web::Data<reqwest::Client>,
                 upstream: web::Data<Upstream>,
                 checkpoint: web::Data<Served>| async move {
                    if req.path() == "/v1/audit/checkpoint" {
                        return HttpResponse::Ok().content_type("text/plain").body(checkpoint.0.clone());
                    }
                    let res = client.get(format!("{}{}", upstream.0, req.uri())).send().await.unwrap();
                    let status = res.status().as_u16();
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .content_type("application/json")
                        .body(res.bytes().await.unwrap())
                },
            ))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}"), handle)
}

/// A checkpoint signed by `key` over whatever origin, size and root.
fn forge(key: &PrivateKey, origin: &str, size: u64, root: [u8; 32]) -> String {
    let text = Checkpoint {
        origin: origin.into(),
        size,
        root,
    }
    .text();
    let mut note = signed_note::Note::new(text.as_bytes(), &[]).unwrap();
    note.add_sigs(&[key.signer()]).unwrap();
    String::from_utf8(note.to_bytes()).unwrap()
}

#[tokio::test]
async fn forged_misnamed_and_wrong_root_checkpoints_are_refused_by_auditor_and_witness() {
    let Keys {
        tmp,
        log_key,
        log_vkey,
        w_key,
        w_vkey,
        w,
    } = keys();
    let root = tmp.path();
    demo_store(&root.join("data"));
    let wit = witness(&root.join("witness"), &w_key, &[&log_vkey], "127.0.0.1:0");
    let server = signing_server(&root.join("data"), &log_key, &[format!("{}+{w_vkey}", wit.address)]);
    let real = wait_for_checkpoint(&server, &log_vkey, Some(&w), 32, 1).await;
    let head = server.json("/v1/audit/head").await;
    let cp = Checkpoint::parse(&format!("{}\n", real.split("\n\n").next().unwrap())).unwrap();
    assert_eq!(
        hex::encode(cp.root),
        head["root"].as_str().unwrap(),
        "the signed root is the tree's"
    );
    let saved = format!(
        "20:{}",
        server.json("/v1/audit/proof/consistency?first=20&second=32").await["first_root"]
            .as_str()
            .unwrap()
    );
    let key = PrivateKey::load(&log_key).unwrap();
    let (other_key, other_vkey) = key_new(root, "someone.else/log", false);
    let other = PrivateKey::load(&other_key).unwrap();

    // A tampered signature: one character of the log's signature changed.
    let sig_line = real.lines().find(|l| l.starts_with("— sitrep.test/log ")).unwrap();
    let mut sig = BASE64_STANDARD.decode(sig_line.rsplit(' ').next().unwrap()).unwrap();
    sig[20] ^= 1;
    let tampered = real.replace(sig_line, &format!("— sitrep.test/log {}", BASE64_STANDARD.encode(&sig)));
    // The log's key, over a root that is not the tree's.
    let wrong_root = forge(&key, "sitrep.test/log", 32, [7; 32]);
    // Another key's checkpoint, of the same tree, under its own name.
    let misnamed = forge(&other, "someone.else/log", 32, cp.root);

    let trust = ["--vkey", &log_vkey, "--saved", &saved];
    for (what, served, fails_with) in [
        ("the real checkpoint (control)", real.as_str(), None),
        ("a tampered signature", tampered.as_str(), Some("invalid signature")),
        (
            "a root that is not the tree's",
            wrong_root.as_str(),
            Some("does not verify"),
        ),
        ("another log's checkpoint", misnamed.as_str(), Some("origin")),
    ] {
        let (url, handle) = lying_proxy(server.address.clone(), served.to_owned()).await;
        let out = audit("check-consistency", &url, &trust).await;
        match fails_with {
            None => assert_eq!(out.status.code(), Some(0), "{what}: {}", err(&out)),
            Some(needle) => {
                assert_eq!(out.status.code(), Some(1), "{what}: {}", err(&out));
                assert!(err(&out).contains(needle), "{what}: {}", err(&out));
            }
        }
        let inc = audit("check-inclusion", &url, &["--seq", "5", "--vkey", &log_vkey]).await;
        assert_eq!(
            inc.status.code(),
            Some(if fails_with.is_none() { 0 } else { 1 }),
            "{what}: {}",
            err(&inc)
        );
        handle.stop(true).await;
    }
    // The auditor who trusts another key refuses the real checkpoint.
    let out = audit("check-consistency", &server.address, &["--vkey", &other_vkey]).await;
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    assert!(err(&out).contains("origin"), "{}", err(&out));

    // The witness, which cosigned the real 32: a tampered signature is not
    // signed by a trusted key (403); another origin is not watched (404); the
    // same size with another root is a conflict (409); garbage is 400.
    let (status, _, body) = add_checkpoint(&wit, 32, &[], &tampered).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("checkpoint_unverified"), "{body}");
    let (status, _, body) = add_checkpoint(&wit, 32, &[], &misnamed).await;
    assert_eq!(status, 404, "{body}");
    let (status, ct, body) = add_checkpoint(&wit, 32, &[], &wrong_root).await;
    assert_eq!((status, ct.as_str(), body.as_str()), (409, "text/x.tlog.size", "32\n"));
    let (status, _, body) = add_checkpoint(&wit, 33, &[], &real).await;
    assert_eq!(status, 400, "an old size beyond the checkpoint: {body}");
    let (status, _, body) = add_checkpoint(&wit, 32, &["not base64".into()], &real).await;
    assert_eq!(status, 400, "{body}");
    let huge = "A".repeat(64 * 1024);
    let (status, ct, body) = add_checkpoint(&wit, 32, &[huge], &real).await;
    assert_eq!((status, ct.as_str()), (413, "application/problem+json"), "{body}");
    let (status, _, _) = add_checkpoint(&wit, 32, &[], &real).await;
    assert_eq!(status, 200, "control: the real one is cosigned again");
}

#[tokio::test]
async fn a_witness_killed_mid_stream_comes_back_with_its_state() {
    let Keys {
        tmp,
        log_key,
        log_vkey,
        w_key,
        w_vkey,
        w,
    } = keys();
    let root = tmp.path();
    demo_store(&root.join("data"));
    let mut wit = witness(&root.join("witness"), &w_key, &[&log_vkey], "127.0.0.1:0");
    let listen = wit.address.trim_start_matches("http://").to_owned();
    let server = signing_server(&root.join("data"), &log_key, &[format!("{}+{w_vkey}", wit.address)]);
    append(&server, "one").await;
    wait_for_checkpoint(&server, &log_vkey, Some(&w), 33, 1).await;

    // kill -9 while the log keeps growing and the server keeps submitting.
    append(&server, "two").await;
    wit.child.kill().unwrap();
    wit.child.wait().unwrap();
    append(&server, "three").await;
    wait_for_checkpoint(&server, &log_vkey, None, 35, 0).await;

    // Back on another port, out of the server's reach: its state survived, it
    // still knows a size of 33 or more (34 if the checkpoint of two reached
    // it before the kill), not 0.
    let mut aside = witness(&root.join("witness"), &w_key, &[&log_vkey], "127.0.0.1:0");
    let (_, note) = checkpoint_text(&server).await;
    let (status, ct, body) = add_checkpoint(&aside, 0, &[], &note).await;
    assert_eq!((status, ct.as_str()), (409, "text/x.tlog.size"), "{body}");
    let size: u64 = body.trim().parse().unwrap();
    assert!((33..=34).contains(&size), "{body}");
    aside.signal("-TERM");
    assert_eq!(aside.wait(Duration::from_secs(60)), Some(0));
    // Back where the server looks for it: the server's next submission, from
    // that size, is cosigned.
    let wit = witness(&root.join("witness"), &w_key, &[&log_vkey], &listen);
    wait_for_checkpoint(&server, &log_vkey, Some(&w), 35, 1).await;
    let (status, _, body) = add_checkpoint(&wit, 0, &[], &note).await;
    assert_eq!((status, body.as_str()), (409, "35\n"));
}

#[tokio::test]
async fn a_server_restored_from_an_older_backup_refuses_to_sign_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (log_key, log_vkey) = key_new(root, "sitrep.test/log", false);
    let data = root.join("data");
    demo_store(&data);
    copy_dir(&data, &root.join("backup"));

    let mut server = signing_server(&data, &log_key, &[]);
    append(&server, "after the backup").await;
    let signed = wait_for_checkpoint(&server, &log_vkey, None, 33, 0).await;
    server.signal("-TERM");
    assert_eq!(server.wait(Duration::from_secs(60)), Some(0));

    // The operator restores the store from the older backup; the signed
    // checkpoint file stays.
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name() == Some(std::ffi::OsStr::new(sitrep::transparency::signer::STATE_FILE)) {
            continue;
        }
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else {
            std::fs::remove_file(path).unwrap();
        }
    }
    copy_dir(&root.join("backup"), &data);
    let server = signing_server(&data, &log_key, &[]);
    wait_for_log(&server, "the store was restored from an older backup").await;
    assert_eq!(
        checkpoint_text(&server).await,
        (200, signed.clone()),
        "the last good checkpoint"
    );
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("sitrep_checkpoint_refused 1"), "{metrics}");
    assert!(metrics.contains("sitrep_checkpoint_size 33"), "{metrics}");
    let health = server.json("/healthz").await;
    assert!(
        health["checkpoint_refused"]
            .as_str()
            .is_some_and(|r| r.contains("older backup")),
        "{health}"
    );

    // It grows past the signed size, on another history: still refused.
    append(&server, "another thirty-third").await;
    append(&server, "and a thirty-fourth").await;
    wait_for_log(&server, "the store was forked or rewritten").await;
    assert_eq!(
        checkpoint_text(&server).await,
        (200, signed),
        "still the last good checkpoint"
    );
    let (code, _, stderr) = sitrep(&[
        "audit",
        "check-consistency",
        "--server",
        &server.address,
        "--vkey",
        &log_vkey,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("save 33:"),
        "the auditor sees the signed 33, not the fork: {stderr}"
    );
}

#[tokio::test]
async fn an_empty_log_is_signed_and_cosigned_and_so_is_its_first_event() {
    let Keys {
        tmp,
        log_key,
        log_vkey,
        w_key,
        w_vkey,
        w,
    } = keys();
    let root = tmp.path();
    let wit = witness(&root.join("witness"), &w_key, &[&log_vkey], "127.0.0.1:0");
    let server = signing_server(&root.join("data"), &log_key, &[format!("{}+{w_vkey}", wit.address)]);
    wait_for_checkpoint(&server, &log_vkey, Some(&w), 0, 1).await;
    let res = reqwest::Client::new()
        .post(server.url("/v1/events"))
        .json(&crate::helpers::actor("saa"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    wait_for_checkpoint(&server, &log_vkey, Some(&w), 1, 1).await;
}

#[tokio::test]
async fn key_files_are_private_and_a_loose_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let (key, vkey) = key_new(tmp.path(), "sitrep.test/log", false);
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(vkey.starts_with("sitrep.test/log+"), "{vkey}");
    assert!(verifier(&vkey).is_ok());
    // Never over an existing key.
    let (code, _, _) = sitrep(&["key", "new", "--name", "x", "--out", s(&key)]);
    assert_ne!(code, Some(0));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let data = tmp.path().join("data");
    let (code, _, stderr) = sitrep(&[
        "serve",
        "--data-dir",
        s(&data),
        "--listen",
        "127.0.0.1:0",
        "--signing-key",
        s(&key),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("must be 0600"), "{stderr}");
    // Witnesses cosign only signed checkpoints.
    let (_, w_vkey) = key_new(tmp.path(), "witness.test/w1", true);
    let target = format!("http://127.0.0.1:1+{w_vkey}");
    let (code, _, stderr) = sitrep(&[
        "serve",
        "--data-dir",
        s(&data),
        "--listen",
        "127.0.0.1:0",
        "--witness",
        &target,
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--witness needs --signing-key"), "{stderr}");
}

/// `sitrep key new --name ORIGIN`, as the contract writes it: without `--out`
/// the key goes to a file of its kind's default name in the working directory.
#[tokio::test]
async fn key_new_with_only_a_name_writes_the_default_key_file() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sitrep"))
            .args(args)
            .current_dir(tmp.path())
            .output()
            .unwrap()
    };
    let out = run(&["key", "new", "--name", "sitrep.test/log"]);
    assert!(out.status.success(), "{}", err(&out));
    let vkey = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let key = tmp.path().join("sitrep.key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(PrivateKey::load(&key).unwrap().vkey(), vkey);
    let out = run(&["key", "new", "--name", "witness.test/w1", "--witness"]);
    assert!(out.status.success(), "{}", err(&out));
    let w_vkey = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let w_key = PrivateKey::load(&tmp.path().join("sitrep-witness.key")).unwrap();
    assert_eq!(w_key.name(), "witness.test/w1");
    assert!(CosignatureVerifier::parse(&w_vkey).is_ok(), "{w_vkey}");
    // Never over an existing key, the default one included.
    let out = run(&["key", "new", "--name", "other.test/log"]);
    assert!(!out.status.success());
    assert_eq!(PrivateKey::load(&key).unwrap().vkey(), vkey);
}

/// The witness is an HTTP server of its own: its refusals follow the server's
/// rules (problem+json, a deadline for the body), and only `409` keeps the
/// plain size body the C2SP spec fixes.
#[tokio::test]
async fn a_witness_refuses_at_its_edge_as_the_server_does() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (_, log_vkey) = key_new(root, "sitrep.test/log", false);
    let (w_key, _) = key_new(root, "witness.test/w1", true);
    let wit = witness_with(
        &root.join("witness"),
        &w_key,
        &[&log_vkey],
        "127.0.0.1:0",
        &["--body-timeout", "1"],
    );
    let answer = |req: String| {
        let address = wit.address.clone();
        async move {
            raw(&address, req.clone())
                .await
                .unwrap_or_else(|| panic!("no answer to {req:.80}"))
        }
    };
    for method in ["GET", "PUT", "BREW"] {
        let a = answer(format!(
            "{method} /add-checkpoint HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ))
        .await;
        a.problem(405, "method_not_allowed");
        assert_eq!(a.header("allow").as_deref(), Some("POST"), "{}", a.describe());
    }
    answer("GET /elsewhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into())
        .await
        .problem(404, "not_found");
    answer("\u{1}\u{2} not http\r\n\r\n".into())
        .await
        .problem(400, "malformed_request");
    let long = "a".repeat(9 * 1024);
    answer(format!(
        "POST /add-checkpoint?{long} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    ))
    .await
    .problem(414, "uri_too_long");
    let big = "a".repeat(130 * 1024);
    answer(format!(
        "GET /add-checkpoint HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"
    ))
    .await
    .problem(431, "header_too_large");
    // A body trickled a byte at a time is cut off at the deadline, not held.
    let head = "POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n";
    let a = raw_exchange(&wit.address, head.into(), vec![b'o'; 100], Duration::from_millis(300))
        .await
        .expect("an answer to a slow body");
    a.problem(408, "request_timeout");
    assert!(a.closed, "the connection is closed: {}", a.describe());
    // Control: a well-formed submission from a log it does not watch is still the spec's 404.
    let other = PrivateKey::generate("other.test/log").unwrap();
    let note = forge(&other, "other.test/log", 0, [0; 32]);
    let (status, ct, body) = add_checkpoint(&wit, 0, &[], &note).await;
    assert_eq!((status, ct.as_str()), (404, "application/problem+json"), "{body}");
}

/// tlog-witness with the old size equal to the checkpoint's: the roots must
/// match (else `409`), and the consistency proof from a tree to itself is
/// empty, so a non-empty one does not verify (`422`).
#[tokio::test]
async fn a_witness_judges_a_checkpoint_of_its_own_size_by_root_and_proof() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (log_key, log_vkey) = key_new(root, "sitrep.test/log", false);
    let (w_key, _) = key_new(root, "witness.test/w1", true);
    let key = PrivateKey::load(&log_key).unwrap();
    let wit = witness(&root.join("witness"), &w_key, &[&log_vkey], "127.0.0.1:0");
    let note = forge(&key, "sitrep.test/log", 5, [7; 32]);
    let (status, _, body) = add_checkpoint(&wit, 0, &[], &note).await;
    assert_eq!(status, 200, "{body}");
    let hash = BASE64_STANDARD.encode([9u8; 32]);
    let (status, ct, body) = add_checkpoint(&wit, 5, std::slice::from_ref(&hash), &note).await;
    assert_eq!((status, ct.as_str()), (422, "application/problem+json"), "{body}");
    let other_root = forge(&key, "sitrep.test/log", 5, [8; 32]);
    let (status, ct, body) = add_checkpoint(&wit, 5, &[], &other_root).await;
    assert_eq!((status, ct.as_str(), body.as_str()), (409, "text/x.tlog.size", "5\n"));
    // Control: the same checkpoint with the empty proof is cosigned again.
    let (status, _, body) = add_checkpoint(&wit, 5, &[], &note).await;
    assert_eq!(status, 200, "{body}");
}

/// tlog-cosignature: a checkpoint's extension lines, when a log writes them,
/// are part of the cosigned message, so the cosignature verifies over the
/// note body as submitted.
#[tokio::test]
async fn a_witness_cosigns_the_whole_checkpoint_body_extension_lines_included() {
    let Keys {
        tmp,
        log_key,
        log_vkey,
        w_key,
        w,
        ..
    } = keys();
    let root = tmp.path();
    let key = PrivateKey::load(&log_key).unwrap();
    let wit = witness(&root.join("witness"), &w_key, &[&log_vkey], "127.0.0.1:0");
    let body = format!(
        "sitrep.test/log\n3\n{}\nan extension line\n",
        BASE64_STANDARD.encode([5u8; 32])
    );
    let mut note = signed_note::Note::new(body.as_bytes(), &[]).unwrap();
    note.add_sigs(&[key.signer()]).unwrap();
    let note = String::from_utf8(note.to_bytes()).unwrap();
    let (status, _, line) = add_checkpoint(&wit, 0, &[], &note).await;
    assert_eq!(status, 200, "{line}");
    let cosigned = signed_note::Note::from_bytes(format!("{note}{line}").as_bytes()).unwrap();
    assert!(
        w.cosigned(&cosigned),
        "the cosignature does not verify over the note body: {line}"
    );
}

/// With tokens on (as on any address but loopback), the checkpoint is a
/// reader's route like the other audit routes, counted under its own label,
/// and the auditor reads it with `--token`.
#[tokio::test]
async fn the_checkpoint_needs_a_reader_token_and_the_auditor_sends_one() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file = root.join("tokens");
    let t = tokens_file(&file, &[("rita", "reader"), ("prom", "metrics")]);
    let (reader, metrics) = (t[0].as_str(), t[1].as_str());
    let (log_key, log_vkey) = key_new(root, "sitrep.test/log", false);
    let server = ServerProcess::start(
        &root.join("data"),
        &[
            "--demo",
            "--tokens",
            s(&file),
            "--signing-key",
            s(&log_key),
            "--checkpoint-interval",
            INTERVAL,
        ],
    );
    let c = reqwest::Client::new();
    let get = |token: Option<&str>| {
        let mut r = c.get(server.url("/v1/audit/checkpoint"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let mut signed = false;
    for _ in 0..POLLS {
        if get(Some(reader)).await.unwrap().status() == 200 {
            signed = true;
            break;
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
    assert!(signed, "no checkpoint:\n{}", server.log());
    let res = get(Some(reader)).await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    let (cp, _) = checkpoint::open(&res.bytes().await.unwrap(), &verifier(&log_vkey).unwrap()).unwrap();
    assert_eq!(cp.size, 32);
    let res = get(None).await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key("www-authenticate"));
    assert_eq!(get(Some(metrics)).await.unwrap().status(), 403);
    let scraped = c
        .get(server.url("/metrics"))
        .bearer_auth(metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for status in ["200", "401", "403"] {
        let label = format!("{{method=\"GET\",route=\"/v1/audit/checkpoint\",status=\"{status}\"}}");
        assert!(scraped.contains(&label), "{label} missing from\n{scraped}");
    }
    // The auditor: refused without a token, at home with a reader's.
    let o = audit("check-consistency", &server.address, &["--vkey", &log_vkey]).await;
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("401"), "{}", err(&o));
    let o = audit(
        "check-consistency",
        &server.address,
        &["--vkey", &log_vkey, "--token", reader],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = audit(
        "check-inclusion",
        &server.address,
        &["--seq", "7", "--vkey", &log_vkey, "--token", reader],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
}
