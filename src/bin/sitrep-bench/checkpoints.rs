//! `sitrep-bench --checkpoints`: signed checkpoints and witnesses. What a
//! checkpoint costs to sign, verify and serve, what a witness round trip costs
//! (a signed checkpoint one event larger, its consistency proof, the witness's
//! check, fsync and cosignature), and durable appends with and without two
//! witnesses attached to a server that signs every 0.1 s, measured back to
//! back in each repetition.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use base64::prelude::{Engine, BASE64_STANDARD};
use sha2::{Digest, Sha256};
use signed_note::StandardVerifier;
use sitrep::domain::integrity::{consistency_proof, MerkleFrontier, NodeId};
use sitrep::transparency::checkpoint::{self, Checkpoint};
use sitrep::transparency::cosignature::{count_cosigners, CosignatureVerifier, Cosigner};
use sitrep::transparency::note::{verifier, PrivateKey};

use crate::events::{event_body, setup_events, BENCH_LOCATIONS};
use crate::load::{get, median, post, print_table, tempfile_dir, Load, Row, Server, Target, Workload};
use crate::{http, Options};

/// Signatures timed in process.
const SIGNATURES: u32 = 2000;

/// Every workload, in order; the tables at the end.
pub async fn run(opts: &Options) -> anyhow::Result<()> {
    let (reps, secs) = (opts.reps, opts.seconds);
    println!("sitrep-bench --checkpoints: medians of {reps} runs of {secs:.1} s each");
    let tmp = tempfile_dir("sitrep-bench-checkpoints")?;
    let log = PrivateKey::generate("bench.example/log")?;
    let log_v = verifier(&log.vkey()).map_err(anyhow::Error::msg)?;
    let (sign_us, verify_us) = sign_and_verify(&log, &log_v)?;

    // Two witnesses; the first also watches a second log, for the round trips.
    let direct = PrivateKey::generate("bench.example/direct")?;
    let log_key = tmp.join("log.key");
    log.save(&log_key)?;
    let witnesses = spawn_witnesses(&tmp, &[log.vkey(), direct.vkey()])?;
    let mut rows = vec![witness_round_trips(&direct, &witnesses[0].server.url, secs * reps as f64).await?];

    // Appends: a plain server and one that signs every 0.1 s with both witnesses.
    let plain = Server::spawn(&tmp.join("plain"))?;
    let signed = spawn_signing(&tmp.join("signed"), &log_key, &witnesses)?;
    let mut plain_t = Target::new(plain.url.clone(), None, reps, secs);
    let mut signed_t = Target::new(signed.url.clone(), None, reps, secs);
    for t in [&plain_t, &signed_t] {
        set_up(t).await?;
    }
    let (without, with, ratio) = appends_with_and_without(&mut plain_t, &mut signed_t).await;
    rows.extend([without, with]);
    rows.push(
        signed_t
            .measure(Workload::new(
                "serve: GET /v1/audit/checkpoint, 64 conns",
                64,
                Arc::new(|_, _| get("/v1/audit/checkpoint".into())),
            ))
            .await,
    );
    rows.push(signed_t.measure(http::ceiling()).await);
    let verifiers: Vec<CosignatureVerifier> = witnesses.iter().map(|w| w.verifier.clone()).collect();
    let (size, cosigned) = served_checkpoint(&signed_t, &log_v, &verifiers).await?;

    println!();
    print_table(&rows);
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| sign a checkpoint (Ed25519 signed note), in process | {sign_us:.1} µs |");
    println!("| verify a checkpoint (parse + Ed25519), in process | {verify_us:.1} µs |");
    println!(
        "| durable appends with / without signing and 2 witnesses (median of per-repetition ratios) | {ratio:.2} |"
    );
    println!(
        "| served checkpoint after the runs: size, cosignatures | {size}, {cosigned} of {} |",
        verifiers.len()
    );
    println!();
    println!(
        "Non-2xx answers or errors during the HTTP runs: {}",
        plain_t.errors + signed_t.errors
    );
    drop((plain, signed, witnesses));
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// Sign and verify [`SIGNATURES`] checkpoints in process: µs each.
fn sign_and_verify(log: &PrivateKey, log_v: &StandardVerifier) -> anyhow::Result<(f64, f64)> {
    let sample = |i: u32| Checkpoint {
        origin: log.name().to_owned(),
        size: u64::from(i) + 1_000_000,
        root: Sha256::digest(i.to_be_bytes()).into(),
    };
    let started = Instant::now();
    let notes: Vec<Vec<u8>> = (0..SIGNATURES)
        .map(|i| sample(i).sign(log.signer()).to_bytes())
        .collect();
    let sign_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(SIGNATURES);
    let started = Instant::now();
    for n in &notes {
        checkpoint::open(n, log_v)?;
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(SIGNATURES);
    Ok((sign_us, verify_us))
}

/// A witness of its own, and how a log server and an auditor name it.
struct Witness {
    server: Server,
    verifier: CosignatureVerifier,
    /// `--witness URL+VKEY` of `sitrep serve`.
    target: String,
}

/// Two witnesses, each watching the logs of `log_vkeys`.
fn spawn_witnesses(tmp: &Path, log_vkeys: &[String]) -> anyhow::Result<Vec<Witness>> {
    let mut witnesses = Vec::new();
    for i in 1..=2 {
        let key = PrivateKey::generate(&format!("bench.example/w{i}"))?;
        let path = tmp.join(format!("w{i}.key"));
        key.save(&path)?;
        let vkey = Cosigner::new(key.name(), key.ed25519().clone()).vkey();
        let dir = tmp.join(format!("w{i}"));
        let (dir, path) = (dir.to_string_lossy(), path.to_string_lossy());
        let mut args = vec![
            "witness",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &dir,
            "--key",
            &path,
            "--log",
        ];
        args.extend(log_vkeys.iter().map(String::as_str));
        let server = Server::spawn_args(&args)?;
        witnesses.push(Witness {
            target: format!("{}+{vkey}", server.url),
            verifier: CosignatureVerifier::parse(&vkey).map_err(anyhow::Error::msg)?,
            server,
        });
    }
    Ok(witnesses)
}

/// Witness round trips for `secs`, one at a time: checkpoints of `log`, a log
/// growing by one leaf each, to the witness at `url`.
async fn witness_round_trips(log: &PrivateKey, url: &str, secs: f64) -> anyhow::Result<Row> {
    let client = reqwest::Client::new();
    let mut tree = MerkleFrontier::default();
    let mut nodes = std::collections::HashMap::new();
    let mut lat_us = Vec::new();
    let until = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < until {
        let old = tree.size();
        nodes.extend(tree.push(&Sha256::digest(old.to_be_bytes())));
        let new = tree.size();
        let proof = if old == 0 {
            Vec::new()
        } else {
            let mut get = |id: NodeId| nodes.get(&id).copied().ok_or(id);
            consistency_proof(old, new, &mut get).map_err(|id| anyhow::anyhow!("no node {id:?}"))?
        };
        let note = Checkpoint {
            origin: log.name().to_owned(),
            size: new,
            root: tree.root(),
        }
        .sign(log.signer())
        .to_bytes();
        let mut body = format!("old {old}\n");
        for h in &proof {
            body.push_str(&BASE64_STANDARD.encode(h));
            body.push('\n');
        }
        body.push('\n');
        let mut body = body.into_bytes();
        body.extend_from_slice(&note);
        let started = Instant::now();
        let res = client.post(format!("{url}/add-checkpoint")).body(body).send().await?;
        let status = res.status();
        res.bytes().await?;
        if status != 200 {
            bail!("the witness answered {status} to checkpoint {new}");
        }
        lat_us.push(started.elapsed().as_micros() as u32);
    }
    lat_us.sort_unstable();
    let round_trips = Load {
        done: lat_us.len() as u64,
        errors: 0,
        secs,
        lat_us,
    };
    Ok(Row {
        name: "witness round trip: add-checkpoint, one at a time".into(),
        rate: round_trips.rate(),
        unit: "req/s",
        p50: Some(round_trips.pct(0.5)),
        p99: Some(round_trips.pct(0.99)),
        p999: Some(round_trips.pct(0.999)),
    })
}

/// `sitrep serve` in `dir`, signing with `key` every 0.1 s, with `witnesses`.
fn spawn_signing(dir: &Path, key: &Path, witnesses: &[Witness]) -> anyhow::Result<Server> {
    let mut args = vec![
        "serve".to_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        dir.to_string_lossy().into_owned(),
        "--signing-key".into(),
        key.to_string_lossy().into_owned(),
        "--checkpoint-interval".into(),
        "0.1".into(),
    ];
    for w in witnesses {
        args.extend(["--witness".to_owned(), w.target.clone()]);
    }
    Server::spawn_args(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The streams to write to.
async fn set_up(t: &Target) -> anyhow::Result<()> {
    let res = t
        .client
        .post(format!("{}/v1/events", t.url))
        .json(&setup_events(BENCH_LOCATIONS, 10))
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("setting up the bench streams failed: {}", res.status());
    }
    Ok(())
}

/// Durable appends at 64 conns without and with signing, back to back in each
/// repetition: the median row of each, and the median of the per-repetition
/// ratios with / without.
async fn appends_with_and_without(plain: &mut Target, signed: &mut Target) -> (Row, Row, f64) {
    let appends = |name: &str| {
        Workload::new(
            &format!("durable appends, 64 conns, {name}"),
            64,
            Arc::new(|task, n| post("/v1/events", &event_body(task, n))),
        )
    };
    let mut with = Vec::new();
    let mut without = Vec::new();
    for _ in 0..plain.reps {
        without.push(plain.measure_reps(1, appends("no signing key")).await);
        with.push(
            signed
                .measure_reps(1, appends("signing every 0.1 s, 2 witnesses"))
                .await,
        );
    }
    let ratio = median(with.iter().zip(&without).map(|(a, b)| a.rate / b.rate).collect());
    let pick = |v: Vec<Row>| {
        let rates: Vec<f64> = v.iter().map(|r| r.rate).collect();
        let m = median(rates);
        v.into_iter().find(|r| r.rate == m).expect("the median is one of them")
    };
    (pick(without), pick(with), ratio)
}

/// The signer kept up: the served checkpoint's size, and how many of the
/// witnesses cosigned it.
async fn served_checkpoint(
    signed: &Target,
    log_v: &StandardVerifier,
    witnesses: &[CosignatureVerifier],
) -> anyhow::Result<(u64, usize)> {
    let served = signed
        .client
        .get(format!("{}/v1/audit/checkpoint", signed.url))
        .send()
        .await?
        .bytes()
        .await?;
    let (cp, note) = checkpoint::open(&served, log_v)?;
    Ok((cp.size, count_cosigners(&note, witnesses)))
}
