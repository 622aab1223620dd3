//! `--feed READERS`: a public map's many viewers on the live feed while
//! reporters post at a human pace. The readers (one hyper HTTP/1.1 connection
//! each, all on this process's runtime) follow `GET /v1/events/stream` while
//! one reporter appends at a steady rate; every reader must get every event
//! once and in order. Besides: the append latency at that pace with and
//! without the readers, readers that never read (the server's memory must stay
//! bounded), and full-load appends with 100 and 1,000 readers against none.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use http_body_util::BodyExt;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::events::event_body;
use crate::http::set_up;
use crate::load::{self, authority, connect, get, median, post, request, status_mib, tempfile_dir, Server, Target};
use crate::Options;

/// Appends a second at the reporters' pace.
const PACE_PER_SECOND: u32 = 20;
/// Connections the paced reporter spreads its appends over, so that one slow
/// answer does not hold back the next append.
const PACE_CONNS: usize = 4;
/// Readers that send their request and then never read.
const STALLED: usize = 100;
/// A stalled reader's socket receive buffer: small, so that what the server
/// sends it piles up on the server's side soon.
const STALLED_RECV_BUFFER: u32 = 4096;
/// Bytes of events appended past the stalled readers: far more than a
/// reader's buffer and the kernel's socket buffers (up to 4 MiB by default)
/// hold, so the server must let them go.
const STALL_PUSH_BYTES: usize = 16 << 20;
/// Events a request, and each one's summary size, while pushing past them.
const STALL_BATCH: usize = 100;
const STALL_SUMMARY_BYTES: usize = 3 * 1024;
/// How long the server is given after the push: its stall limit (10 s) and
/// some.
const STALL_WAIT: Duration = Duration::from_secs(15);
/// Readers attached during the full-load appends.
const LOADED_READERS: [usize; 2] = [100, 1000];
/// Connections of the full-load appends, as in the default run's row.
const LOAD_CONNS: usize = 64;
/// Readers connecting at once (each until its answer's head arrives), so the
/// server's accept backlog does not overflow.
const CONNECTING_AT_ONCE: usize = 64;
/// How long a reader waits for its answer's head before it counts as not attached.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the readers have, after the last append's answer, to receive it.
const DRAIN: Duration = Duration::from_secs(30);
/// How often the server's resident memory is sampled, and the readers polled while draining.
const SAMPLE: Duration = Duration::from_millis(500);
/// Time the server is given to let go of readers that left, before its memory is read.
const SETTLE: Duration = Duration::from_secs(2);

pub async fn run(opts: &Options, readers: usize) -> anyhow::Result<()> {
    let nofile = raise_open_files()?;
    let tmp = tempfile_dir("sitrep-bench-feed")?;
    let slots = readers + STALLED + LOADED_READERS[1];
    let mut own = match &opts.server {
        Some(_) => None,
        None => Some(Server::spawn_args(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &tmp.join("data").to_string_lossy(),
            "--max-subscribers",
            &slots.to_string(),
        ])?),
    };
    let url = opts
        .server
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_owned())
        .or_else(|| own.as_ref().map(|s| s.url.clone()))
        .expect("a server of its own or --server");
    let mut t = Target::new(url, opts.token.clone(), opts.reps, opts.seconds);
    if let Some(s) = &own {
        s.wait_healthy(&t.client).await;
    }
    set_up(&t).await?;
    let pid = own.as_ref().and_then(Server::pid);
    let rss = || pid.map(|p| status_mib(p, "VmRSS"));
    let start = Instant::now();
    let secs = opts.feed_seconds;
    println!(
        "sitrep-bench --feed {readers}: open files {nofile}; {PACE_PER_SECOND} appends/s for {secs:.0} s; \
         {STALLED} stalled readers; full load {LOAD_CONNS} conns, {} runs of {:.1} s",
        t.reps, t.secs
    );

    // Full-load appends with none, 100 and 1,000 readers, back to back in every repetition.
    eprintln!("full-load appends against {}", t.url);
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); LOADED_READERS.len() + 1];
    let mut loaded_seen = Vec::new();
    for _ in 0..t.reps {
        rates[0].push(full_load(&mut t).await);
        let stop = watch::channel(false).0;
        let mut attached: Vec<Readers> = Vec::new();
        for (i, n) in LOADED_READERS.iter().enumerate() {
            let more = n - attached.iter().map(|r| r.tasks.len()).sum::<usize>();
            let r = attach(&t, more, false, start, stop.subscribe()).await?;
            if r.refused > 0 {
                bail!("{} of {more} readers were not attached", r.refused);
            }
            attached.push(r);
            rates[i + 1].push(full_load(&mut t).await);
        }
        stop.send_replace(true);
        for r in attached {
            loaded_seen.extend(r.finish().await);
        }
    }
    let loaded_out_of_order: u64 = loaded_seen.iter().map(|s| s.out_of_order).sum();

    // The reporter's pace without readers.
    tokio::time::sleep(SETTLE).await;
    let rss_before = rss();
    eprintln!("{PACE_PER_SECOND} appends/s, no readers");
    let alone = paced(&t, secs, start).await;

    // The readers, and the stalled ones.
    let head = t.get_json("/v1/audit/head").await?["seq"].as_u64().unwrap_or(0);
    eprintln!("attaching {readers} readers and {STALLED} stalled ones");
    let attach_started = Instant::now();
    let stop = watch::channel(false).0;
    let live = attach(&t, readers, true, start, stop.subscribe()).await?;
    let stalled = stall(&t, head).await?;
    let attach_secs = attach_started.elapsed().as_secs_f64();
    tokio::time::sleep(SETTLE).await;
    let rss_attached = rss();

    eprintln!(
        "{PACE_PER_SECOND} appends/s, {} readers attached",
        live.tasks.len() - live.refused
    );
    let sampler = Peak::sample(pid);
    let with = paced(&t, secs, start).await;
    let last = with.acks.last().map_or(head, |a| a.seq);
    let drained = drain(&live, last).await;
    let rss_during = sampler.stop();
    stop.send_replace(true);
    let refused = live.refused;
    let seen = live.finish().await;
    tokio::time::sleep(SETTLE).await;
    let rss_after = rss();

    // The stalled readers alone: push far more than they can hold past them,
    // wait past the server's stall limit, and see what it still holds.
    eprintln!(
        "pushing {} MiB past the {STALLED} stalled readers",
        STALL_PUSH_BYTES >> 20
    );
    let held_before = subscribers(&t).await;
    let sampler = Peak::sample(pid);
    push(&t).await?;
    tokio::time::sleep(STALL_WAIT).await;
    let stall_peak = sampler.stop();
    let stall = Stall {
        held: [held_before, subscribers(&t).await],
        open: still_open(stalled).await,
        rss: [rss_after, stall_peak, rss()],
    };

    report(Report {
        readers,
        refused,
        attach_secs,
        head,
        with: &with,
        alone: &alone,
        seen: &seen,
        drained,
        stall,
        rss: [rss_before, rss_attached, rss_during, rss_after],
        rates: &rates,
        loaded_out_of_order,
        loaded_readers: loaded_seen.len(),
        errors: t.errors,
    });
    if let Some(mut s) = own.take() {
        s.stop();
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// The server's peak resident memory, sampled every `SAMPLE` while it runs.
struct Peak {
    kib: Arc<AtomicU64>,
    task: Option<JoinHandle<()>>,
}

impl Peak {
    /// Start sampling process `pid` (none without one: a `--server` run).
    fn sample(pid: Option<u32>) -> Peak {
        let kib = Arc::new(AtomicU64::new(0));
        let task = pid.map(|p| {
            let kib = kib.clone();
            tokio::spawn(async move {
                loop {
                    kib.fetch_max((status_mib(p, "VmRSS") * 1024.0) as u64, Ordering::Relaxed);
                    tokio::time::sleep(SAMPLE).await;
                }
            })
        });
        Peak { kib, task }
    }

    /// Stop; the peak in MiB.
    fn stop(self) -> Option<f64> {
        let task = self.task?;
        task.abort();
        Some(self.kib.load(Ordering::Relaxed) as f64 / 1024.0)
    }
}

/// Raise this process's open-file limit to its hard limit (the server it
/// starts inherits it); the limit now.
fn raise_open_files() -> anyhow::Result<u64> {
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .context("raising the open-file limit")?;
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

/// One full-load run of durable appends; events a second.
async fn full_load(t: &mut Target) -> f64 {
    let l = load::load(
        &t.url,
        t.token.clone(),
        LOAD_CONNS,
        t.secs,
        Arc::new(|task, n| post("/v1/events", &event_body(task, n))),
    )
    .await;
    t.errors += l.errors;
    eprintln!("  {:.0} events/s", l.rate());
    l.rate()
}

/// What the paced reporter did.
struct Paced {
    /// Each append, by seq.
    acks: Vec<Ack>,
    /// Each append's latency, µs, sorted.
    lat_us: Vec<u64>,
    errors: u64,
}

/// The reporter's appends at `PACE_PER_SECOND` for `secs`, on a thread and
/// runtime of their own at the normal priority: their timings must not wait
/// behind the readers' tasks on this process's runtime, nor take its lowered
/// priority (a thread of the runtime's blocking pool would).
async fn paced(t: &Target, secs: f64, start: Instant) -> Paced {
    let (url, token) = (t.url.clone(), t.token.clone());
    let (done, paced) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-reporter".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the reporter");
            let _ = done.send(runtime.block_on(reporter(&url, token, secs, start)));
        })
        .expect("the reporter's thread");
    paced.await.expect("the reporter's thread")
}

/// Append `PACE_PER_SECOND` events a second for `secs`, each on its schedule
/// however long the ones before took (over `PACE_CONNS` connections).
async fn reporter(url: &str, token: Option<String>, secs: f64, start: Instant) -> Paced {
    let authority = authority(url);
    let auth = token.as_ref().map(|t| format!("Bearer {t}"));
    let total = (secs * f64::from(PACE_PER_SECOND)).round() as u64;
    let every = Duration::from_secs(1) / PACE_PER_SECOND;
    let t0 = tokio::time::Instant::now();
    let tasks: Vec<JoinHandle<Paced>> = (0..PACE_CONNS)
        .map(|task| {
            let (authority, auth) = (authority.clone(), auth.clone());
            tokio::spawn(async move {
                let mut out = Paced {
                    acks: Vec::new(),
                    lat_us: Vec::new(),
                    errors: 0,
                };
                let mut conn = None;
                for i in (task as u64..total).step_by(PACE_CONNS) {
                    tokio::time::sleep_until(t0 + every * i as u32).await;
                    if conn.is_none() {
                        conn = connect(&authority).await.ok();
                    }
                    let Some(c) = conn.as_mut() else {
                        out.errors += 1;
                        continue;
                    };
                    let sent = Instant::now();
                    let req = request(post("/v1/events", &event_body(task, i)), &authority, auth.as_deref());
                    let answer = match c.sender.send_request(req).await {
                        Ok(res) if res.status().is_success() => res.into_body().collect().await.ok(),
                        Ok(_) => None,
                        Err(_) => {
                            conn = None;
                            None
                        }
                    };
                    let acked = Instant::now();
                    let seq = answer
                        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b.to_bytes()).ok()?["seq"].as_u64());
                    match seq {
                        Some(seq) => {
                            out.acks.push(Ack {
                                seq,
                                sent_us: (sent - start).as_micros() as u64,
                                acked_us: (acked - start).as_micros() as u64,
                            });
                            out.lat_us.push((acked - sent).as_micros() as u64);
                        }
                        None => out.errors += 1,
                    }
                }
                out
            })
        })
        .collect();
    let mut all = Paced {
        acks: Vec::new(),
        lat_us: Vec::new(),
        errors: 0,
    };
    for task in tasks {
        let p = task.await.expect("paced task");
        all.acks.extend(p.acks);
        all.lat_us.extend(p.lat_us);
        all.errors += p.errors;
    }
    all.acks.sort_unstable();
    all.lat_us.sort_unstable();
    all
}

/// One append at the reporters' pace; times in µs since the run's start.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Ack {
    seq: u64,
    /// When its request was sent.
    sent_us: u64,
    /// When its 2xx arrived.
    acked_us: u64,
}

/// What one reader saw.
#[derive(Default)]
struct Seen {
    /// Events received.
    received: u64,
    /// Events whose seq was not the one after the one before (lost, repeated
    /// or out of order).
    out_of_order: u64,
    /// When each event arrived, µs since the run's start, from the first one
    /// on, while they came in order (only when recording).
    arrivals: Vec<u64>,
    /// The feed ended before the reader was told to stop.
    ended: bool,
}

/// Readers attached to the live feed.
struct Readers {
    tasks: Vec<JoinHandle<Seen>>,
    /// The seq each reader last received.
    latest: Vec<Arc<AtomicU64>>,
    /// Readers whose request did not get a `200` (refused, or no answer in time).
    refused: usize,
}

impl Readers {
    async fn finish(self) -> Vec<Seen> {
        let mut seen = Vec::new();
        for t in self.tasks {
            seen.push(t.await.expect("reader task"));
        }
        seen
    }
}

/// Attach `n` readers from the head on, `CONNECTING_AT_ONCE` at a time; each
/// reads until `stop`, recording when each event arrived if `record`.
async fn attach(
    t: &Target,
    n: usize,
    record: bool,
    start: Instant,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Readers> {
    let after = t.get_json("/v1/audit/head").await?["seq"].as_u64().unwrap_or(0);
    let authority = authority(&t.url);
    let auth = t.token.as_ref().map(|t| format!("Bearer {t}"));
    let path = format!("/v1/events/stream?after={after}");
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let (attached_tx, mut attached) = mpsc::unbounded_channel::<bool>();
    let mut readers = Readers {
        tasks: Vec::new(),
        latest: Vec::new(),
        refused: 0,
    };
    for _ in 0..n {
        let latest = Arc::new(AtomicU64::new(after));
        readers.latest.push(latest.clone());
        let reader = Reader {
            authority: authority.clone(),
            auth: auth.clone(),
            path: path.clone(),
            after,
            record,
            start,
            latest,
        };
        let (gate, attached_tx, stop) = (gate.clone(), attached_tx.clone(), stop.clone());
        readers.tasks.push(tokio::spawn(reader.read(gate, attached_tx, stop)));
    }
    for _ in 0..n {
        if !attached.recv().await.unwrap_or(false) {
            readers.refused += 1;
        }
    }
    Ok(readers)
}

struct Reader {
    authority: String,
    auth: Option<String>,
    path: String,
    after: u64,
    record: bool,
    start: Instant,
    latest: Arc<AtomicU64>,
}

impl Reader {
    async fn read(
        self,
        gate: Arc<Semaphore>,
        attached: mpsc::UnboundedSender<bool>,
        mut stop: watch::Receiver<bool>,
    ) -> Seen {
        let mut seen = Seen::default();
        let permit = gate.acquire_owned().await.expect("gate");
        let answer = tokio::time::timeout(ATTACH_TIMEOUT, async {
            let mut c = connect(&self.authority).await?;
            let res = c
                .sender
                .send_request(request(get(self.path.clone()), &self.authority, self.auth.as_deref()))
                .await?;
            anyhow::Ok((c, res))
        })
        .await;
        drop(permit);
        let (_conn, res) = match answer {
            Ok(Ok((c, res))) if res.status() == 200 => (c, res),
            _ => {
                let _ = attached.send(false);
                return seen;
            }
        };
        let _ = attached.send(true);
        let mut body = res.into_body();
        let mut next = self.after + 1;
        // A line split over frames, until its end arrives.
        let mut partial: Vec<u8> = Vec::new();
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                _ = stop.wait_for(|stop| *stop) => break,
            };
            let Some(Ok(frame)) = frame else {
                seen.ended = true;
                break;
            };
            let Ok(data) = frame.into_data() else { continue };
            let at = (Instant::now() - self.start).as_micros() as u64;
            for piece in data.split_inclusive(|b| *b == b'\n') {
                let line = if partial.is_empty() && piece.ends_with(b"\n") {
                    piece
                } else {
                    partial.extend_from_slice(piece);
                    if !piece.ends_with(b"\n") {
                        continue;
                    }
                    &partial[..]
                };
                if let Some(seq) = line
                    .strip_prefix(b"id: ")
                    .and_then(|id| std::str::from_utf8(id).ok())
                    .and_then(|id| id.trim().parse::<u64>().ok())
                {
                    seen.received += 1;
                    if seq == next {
                        if self.record {
                            seen.arrivals.push(at);
                        }
                    } else {
                        seen.out_of_order += 1;
                    }
                    next = seq + 1;
                    self.latest.store(seq, Ordering::Relaxed);
                }
                partial.clear();
            }
        }
        seen
    }
}

/// `STALLED` readers that send their request and never read an answer.
async fn stall(t: &Target, after: u64) -> anyhow::Result<Vec<tokio::net::TcpStream>> {
    let addr: std::net::SocketAddr = authority(&t.url).parse().context("--server must be http://IP:PORT")?;
    let auth = t
        .token
        .as_ref()
        .map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let head = format!(
        "GET /v1/events/stream?after={after} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n{auth}\r\n"
    );
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_recv_buffer_size(STALLED_RECV_BUFFER)?;
        let mut s = socket.connect(addr).await?;
        s.write_all(head.as_bytes()).await?;
        stalled.push(s);
    }
    Ok(stalled)
}

/// Append `STALL_PUSH_BYTES` of events, in batches.
async fn push(t: &Target) -> anyhow::Result<()> {
    let summary = "x".repeat(STALL_SUMMARY_BYTES);
    let url = format!("{}/v1/events", t.url);
    for b in 0..STALL_PUSH_BYTES / (STALL_BATCH * STALL_SUMMARY_BYTES) {
        let batch: Vec<serde_json::Value> = (0..STALL_BATCH)
            .map(|i| {
                let mut e = event_body(b, i as u64);
                e["data"]["summary"] = serde_json::Value::String(summary.clone());
                e
            })
            .collect();
        let res = crate::load::authed(t.client.post(&url).json(&batch), &t.token)
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("a batch past the stalled readers got {}", res.status());
        }
    }
    Ok(())
}

/// The live-feed subscribers the server holds (`sitrep_sse_subscribers`),
/// when its metrics can be read.
async fn subscribers(t: &Target) -> Option<u64> {
    let res = crate::load::authed(t.client.get(format!("{}/metrics", t.url)), &t.token)
        .send()
        .await
        .ok()?;
    let text = res.text().await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("sitrep_sse_subscribers "))
        .and_then(|v| v.trim().parse().ok())
}

/// How many of the stalled readers' connections the server still holds open:
/// once it drops a stalled reader, it closes the connection, which a write
/// then finds (or a read, past what the server had sent).
async fn still_open(stalled: Vec<tokio::net::TcpStream>) -> usize {
    let mut open = 0;
    for s in stalled {
        let mut buf = vec![0u8; 1 << 16];
        let mut closed = false;
        // Read what is buffered, without waiting: a closed connection ends in EOF.
        loop {
            match s.try_read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        if !closed {
            open += 1;
        }
    }
    open
}

/// Wait until every reader has received `last`, or `DRAIN` has passed; the
/// readers that had.
async fn drain(readers: &Readers, last: u64) -> usize {
    let deadline = Instant::now() + DRAIN;
    loop {
        let done = readers
            .latest
            .iter()
            .filter(|l| l.load(Ordering::Relaxed) >= last)
            .count();
        if done == readers.latest.len() - readers.refused || Instant::now() >= deadline {
            return done;
        }
        tokio::time::sleep(SAMPLE).await;
    }
}

struct Report<'a> {
    readers: usize,
    refused: usize,
    attach_secs: f64,
    head: u64,
    with: &'a Paced,
    alone: &'a Paced,
    seen: &'a [Seen],
    drained: usize,
    stall: Stall,
    /// Server VmRSS (MiB): before the readers, attached and idle, peak while
    /// appending, after they left.
    rss: [Option<f64>; 4],
    /// Full-load rates, by readers attached (none, then `LOADED_READERS`), by repetition.
    rates: &'a [Vec<f64>],
    loaded_out_of_order: u64,
    loaded_readers: usize,
    errors: u64,
}

/// The stalled readers after the push past them.
struct Stall {
    /// Subscribers the server held before the push and after the wait.
    held: [Option<u64>; 2],
    /// Their connections still open after the wait.
    open: usize,
    /// Server VmRSS (MiB): before the push, peak during it and the wait, after.
    rss: [Option<f64>; 3],
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn report(r: Report) {
    let attached = r.readers - r.refused;
    let expected = r.with.acks.len() as u64;
    // Every append from the head on is the paced reporter's, so each reader
    // must receive exactly the seqs head+1 ..= the last append's, in order.
    let seqs_contiguous = r
        .with
        .acks
        .iter()
        .enumerate()
        .all(|(i, a)| a.seq == r.head + 1 + i as u64);
    let attached_seen: Vec<&Seen> = r.seen.iter().filter(|s| s.received > 0 || !s.ended).collect();
    let complete = r
        .seen
        .iter()
        .filter(|s| s.received == expected && s.out_of_order == 0 && s.arrivals.len() as u64 == expected)
        .count();
    let received: u64 = r.seen.iter().map(|s| s.received).sum();
    let out_of_order: u64 = r.seen.iter().map(|s| s.out_of_order).sum();
    let ended = r.seen.iter().filter(|s| s.ended).count();
    let deliveries = attached * r.with.acks.len();
    let (mut delays, mut from_sent) = (Vec::with_capacity(deliveries), Vec::with_capacity(deliveries));
    let mut early = 0u64;
    for s in r.seen {
        for (arrived, ack) in s.arrivals.iter().zip(&r.with.acks) {
            if *arrived < ack.acked_us {
                early += 1;
            }
            delays.push(arrived.saturating_sub(ack.acked_us));
            from_sent.push(arrived.saturating_sub(ack.sent_us));
        }
    }
    delays.sort_unstable();
    from_sent.sort_unstable();
    let ms = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.0} MiB"));
    let rate = |i: usize| median(r.rates[i].clone());
    let ratio = |i: usize| median(r.rates[i].iter().zip(&r.rates[0]).map(|(a, b)| a / b).collect());

    println!();
    println!("| live feed: {} readers | figure |", r.readers);
    println!("|---|---|");
    println!(
        "| readers attached | {attached} of {} in {:.1} s ({} not attached) |",
        r.readers, r.attach_secs, r.refused
    );
    println!(
        "| appends at {PACE_PER_SECOND}/s | {expected} (seqs {}..={}, contiguous: {seqs_contiguous}), {} failed |",
        r.head + 1,
        r.head + expected,
        r.with.errors
    );
    println!(
        "| readers that got every event once and in order | {complete} of {} ({received} events in all, {out_of_order} out of order, {} feeds ended early) |",
        attached_seen.len(),
        ended
    );
    println!(
        "| readers that had the last event within {} s of its append | {} of {attached} |",
        DRAIN.as_secs(),
        r.drained
    );
    println!(
        "| delay, append's 2xx to arrival at a reader: p50 / p99 / max | {:.1} / {:.1} / {:.1} ms ({} deliveries, {early} before the 2xx, counted as 0) |",
        pct(&delays, 0.5),
        pct(&delays, 0.99),
        pct(&delays, 1.0),
        delays.len()
    );
    println!(
        "| delay, append sent to arrival at a reader: p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        pct(&from_sent, 0.5),
        pct(&from_sent, 0.99),
        pct(&from_sent, 1.0)
    );
    println!(
        "| append latency at {PACE_PER_SECOND}/s, p50 / p99: without readers | {:.2} / {:.2} ms |",
        pct(&r.alone.lat_us, 0.5),
        pct(&r.alone.lat_us, 0.99)
    );
    println!(
        "| append latency at {PACE_PER_SECOND}/s, p50 / p99: with the readers | {:.2} / {:.2} ms ({:.2}x / {:.2}x) |",
        pct(&r.with.lat_us, 0.5),
        pct(&r.with.lat_us, 0.99),
        pct(&r.with.lat_us, 0.5) / pct(&r.alone.lat_us, 0.5),
        pct(&r.with.lat_us, 0.99) / pct(&r.alone.lat_us, 0.99)
    );
    println!(
        "| server VmRSS: before / readers attached / peak appending / after they left | {} / {} / {} / {} |",
        ms(r.rss[0]),
        ms(r.rss[1]),
        ms(r.rss[2]),
        ms(r.rss[3])
    );
    let held = |h: Option<u64>| h.map_or("?".to_owned(), |h| h.to_string());
    println!(
        "| {STALLED} stalled readers, {} MiB appended past them, then {} s: subscribers the server held before / after | {} / {} ({} of their connections still open) |",
        STALL_PUSH_BYTES >> 20,
        STALL_WAIT.as_secs(),
        held(r.stall.held[0]),
        held(r.stall.held[1]),
        r.stall.open
    );
    println!(
        "| server VmRSS around the push: before / peak / after | {} / {} / {} |",
        ms(r.stall.rss[0]),
        ms(r.stall.rss[1]),
        ms(r.stall.rss[2])
    );
    println!(
        "| full-load appends, {LOAD_CONNS} conns: no readers / {} / {} readers | {:.0} / {:.0} / {:.0} events/s ({:.2}x / {:.2}x) |",
        LOADED_READERS[0],
        LOADED_READERS[1],
        rate(0),
        rate(1),
        rate(2),
        ratio(1),
        ratio(2)
    );
    println!(
        "| readers during the full-load runs | {} readers, {} events out of order |",
        r.loaded_readers, r.loaded_out_of_order
    );
    println!("| non-2xx answers or errors during the full-load runs | {} |", r.errors);
}
