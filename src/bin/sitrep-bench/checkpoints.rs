//! `sitrep-bench --checkpoints`: signed checkpoints and witnesses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::events::{event_body, setup_events, BENCH_LOCATIONS};
use crate::load::{get, measure, median, post, print_table, tempfile_dir, Load, Row, Server, Workload};
use crate::Options;

/// Signed checkpoints and witnesses: what a checkpoint costs to sign, verify
/// and serve, what a witness round trip costs (a signed checkpoint one event
/// larger, its consistency proof, the witness's check, fsync and cosignature),
/// and durable appends with and without two witnesses attached to a server that
/// signs every 0.1 s, measured back to back in each repetition.
pub async fn run(opts: &Options) -> anyhow::Result<()> {
    use base64::prelude::{Engine, BASE64_STANDARD};
    use sha2::{Digest, Sha256};
    use sitrep::domain::integrity::{consistency_proof, MerkleFrontier, NodeId};
    use sitrep::transparency::checkpoint::{self, Checkpoint};
    use sitrep::transparency::cosignature::{count_cosigners, CosignatureVerifier, Cosigner};
    use sitrep::transparency::note::{verifier, PrivateKey};
    /// Signatures timed in process.
    const SIGNATURES: u32 = 2000;

    let (reps, secs) = (opts.reps, opts.seconds);
    println!("sitrep-bench --checkpoints: medians of {reps} runs of {secs:.1} s each");
    let tmp = tempfile_dir("sitrep-bench-checkpoints")?;
    let mut rows = Vec::new();

    // Sign and verify, in process.
    let log = PrivateKey::generate("bench.example/log")?;
    let log_v = verifier(&log.vkey()).map_err(anyhow::Error::msg)?;
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
        checkpoint::open(n, &log_v)?;
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(SIGNATURES);

    // Two witnesses; the first also watches a second log, for the round trips.
    let direct = PrivateKey::generate("bench.example/direct")?;
    let log_key = tmp.join("log.key");
    log.save(&log_key)?;
    let mut witnesses = Vec::new();
    let mut targets = Vec::new();
    for i in 1..=2 {
        let key = PrivateKey::generate(&format!("bench.example/w{i}"))?;
        let path = tmp.join(format!("w{i}.key"));
        key.save(&path)?;
        let vkey = Cosigner::new(key.name(), key.ed25519().clone()).vkey();
        let dir = tmp.join(format!("w{i}"));
        let (lv, dv) = (log.vkey(), direct.vkey());
        let w = Server::spawn_args(&[
            "witness",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &dir.to_string_lossy(),
            "--key",
            &path.to_string_lossy(),
            "--log",
            &lv,
            &dv,
        ])?;
        targets.push(format!("{}+{vkey}", w.url));
        witnesses.push((w, CosignatureVerifier::parse(&vkey).map_err(anyhow::Error::msg)?));
    }

    // Witness round trips: checkpoints of a log growing by one leaf each.
    let client = reqwest::Client::new();
    let mut tree = MerkleFrontier::default();
    let mut nodes = std::collections::HashMap::new();
    let mut lat_us = Vec::new();
    let until = Instant::now() + Duration::from_secs_f64(secs * reps as f64);
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
            origin: direct.name().to_owned(),
            size: new,
            root: tree.root(),
        }
        .sign(direct.signer())
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
        let res = client
            .post(format!("{}/add-checkpoint", witnesses[0].0.url))
            .body(body)
            .send()
            .await?;
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
        secs: secs * reps as f64,
        lat_us,
    };
    rows.push(Row {
        name: "witness round trip: add-checkpoint, one at a time".into(),
        rate: round_trips.rate(),
        unit: "req/s",
        p50: Some(round_trips.pct(0.5)),
        p99: Some(round_trips.pct(0.99)),
        p999: Some(round_trips.pct(0.999)),
    });

    // Appends: a plain server and one that signs every 0.1 s with both witnesses.
    let plain = Server::spawn(&tmp.join("plain"))?;
    let mut args = vec![
        "serve".to_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        tmp.join("signed").to_string_lossy().into_owned(),
        "--signing-key".into(),
        log_key.to_string_lossy().into_owned(),
        "--checkpoint-interval".into(),
        "0.1".into(),
    ];
    for t in &targets {
        args.extend(["--witness".to_owned(), t.clone()]);
    }
    let signed = Server::spawn_args(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    for s in [&plain, &signed] {
        let res = client
            .post(format!("{}/v1/events", s.url))
            .json(&setup_events(BENCH_LOCATIONS, 10))
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("setting up the bench streams failed: {}", res.status());
        }
    }
    let appends = |name: &str| {
        Workload::new(
            &format!("durable appends, 64 conns, {name}"),
            64,
            Arc::new(|task, n| post("/v1/events", &event_body(task, n))),
        )
    };
    let mut with = Vec::new();
    let mut without = Vec::new();
    let mut errors = 0;
    for _ in 0..reps {
        let (row, e) = measure(&plain.url, &None, 1, secs, appends("no signing key")).await;
        errors += e;
        without.push(row);
        let (row, e) = measure(&signed.url, &None, 1, secs, appends("signing every 0.1 s, 2 witnesses")).await;
        errors += e;
        with.push(row);
    }
    let ratio = median(with.iter().zip(&without).map(|(a, b)| a.rate / b.rate).collect());
    let pick = |v: Vec<Row>| {
        let rates: Vec<f64> = v.iter().map(|r| r.rate).collect();
        let m = median(rates);
        v.into_iter().find(|r| r.rate == m).expect("the median is one of them")
    };
    rows.push(pick(without));
    rows.push(pick(with));
    let (row, e) = measure(
        &signed.url,
        &None,
        reps,
        secs,
        Workload::new(
            "serve: GET /v1/audit/checkpoint, 64 conns",
            64,
            Arc::new(|_, _| get("/v1/audit/checkpoint".into())),
        ),
    )
    .await;
    errors += e;
    rows.push(row);
    let (row, e) = measure(
        &signed.url,
        &None,
        reps,
        secs,
        Workload::new(
            "HTTP ceiling: GET /healthz, 64 conns",
            64,
            Arc::new(|_, _| get("/healthz".into())),
        ),
    )
    .await;
    errors += e;
    rows.push(row);
    // The signer kept up: the served checkpoint carries both cosignatures.
    let served = client
        .get(format!("{}/v1/audit/checkpoint", signed.url))
        .send()
        .await?
        .bytes()
        .await?;
    let (cp, note) = checkpoint::open(&served, &log_v)?;
    let verifiers: Vec<CosignatureVerifier> = witnesses.iter().map(|(_, v)| v.clone()).collect();
    let cosigned = count_cosigners(&note, &verifiers);

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
        "| served checkpoint after the runs: size, cosignatures | {}, {cosigned} of {} |",
        cp.size,
        verifiers.len()
    );
    println!();
    println!("Non-2xx answers or errors during the HTTP runs: {errors}");
    drop((plain, signed, witnesses));
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
