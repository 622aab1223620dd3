//! The live feed's fan-out: one thread of its own takes each committed group
//! from the ledger, frames its events once, and hands the frames to every live
//! subscriber, so the workers that answer requests only write them out.
//!
//! A subscriber catches up from the store on its own task, then joins here.
//! From then on it is *live*: each group's frames go to its buffer without
//! waiting. The frames for a subscriber that takes every event in one format
//! are one shared buffer, written once for all of them. A subscriber whose
//! buffer is full, or who would miss an event (the fan-out fell behind the
//! ledger), is sent back to catch up from the store from its next seq.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::{Bytes, BytesMut};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::domain::StoredEvent;
use crate::formats::cloudevents::CloudEvent;
use crate::ledger::Committed;

use super::stream::Filter;

/// Events buffered per subscriber while it catches up from the store (one a
/// message).
const BUFFER_MESSAGES: usize = 256;
/// Bytes of frames buffered per live subscriber between the fan-out and its
/// socket; one whose buffer would overflow goes back to the store.
const BUFFER_BYTES: usize = 1 << 20;
/// Most events one round of the fan-out hands out.
const ROUND_EVENTS: usize = 512;
/// Most events handed to a subscriber in one piece, so that its buffer's
/// bound applies piece by piece however large the events.
const CHUNK_EVENTS: usize = 64;
/// Subscribers the fan-out hands frames to (each one write on its socket)
/// a second, at most. With more subscribers a round takes longer and the
/// events committed meanwhile go out together in the next, in fewer, larger
/// writes: the feed's share of the machine is bounded, however many
/// subscribers it has, and its delay grows with them instead.
const WRITES_PER_SECOND: u32 = 40_000;
/// Live subscribers handed their frames at once, before the fan-out pauses
/// for their share of `WRITES_PER_SECOND`; the workers that write frames out
/// (and answer every other request) never have more than this many
/// subscribers to serve at once.
const SLICE_MEMBERS: usize = 64;

/// What each `data:` line carries (`format=`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The stored event, as `GET /v1/events` gives it.
    Stored,
    /// The stored event as a structured CloudEvent.
    CloudEvents,
}

/// The sending end of one subscriber's buffer.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Bytes>,
    /// Bytes sent and not yet taken by the socket.
    queued: Arc<AtomicUsize>,
}

/// The receiving end: the response body takes frames from it.
pub struct Inbox {
    rx: mpsc::Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// A subscriber's buffer.
pub fn buffer() -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(BUFFER_MESSAGES);
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            tx,
            queued: queued.clone(),
        },
        Inbox { rx, queued },
    )
}

impl Outbox {
    /// Queue one event's frame, waiting up to `stalled` for room; false when
    /// the subscriber is gone or stalled.
    pub async fn send(&self, frame: Bytes, stalled: Duration) -> bool {
        self.queued.fetch_add(frame.len(), Ordering::SeqCst);
        matches!(tokio::time::timeout(stalled, self.tx.send(frame)).await, Ok(Ok(())))
    }

    /// Queue `frames` if they fit the buffer now.
    fn try_send(&self, frames: Bytes) -> bool {
        let len = frames.len();
        if self.queued.load(Ordering::SeqCst) + len > BUFFER_BYTES {
            return false;
        }
        self.queued.fetch_add(len, Ordering::SeqCst);
        if self.tx.try_send(frames).is_err() {
            self.queued.fetch_sub(len, Ordering::SeqCst);
            return false;
        }
        true
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves when the subscriber's response is gone.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

impl Inbox {
    pub fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Bytes>> {
        self.rx.poll_recv(cx).map(|frames| {
            frames.inspect(|f| {
                self.queued.fetch_sub(f.len(), Ordering::SeqCst);
            })
        })
    }
}

/// Frame `e` as one server-sent event: its seq as `id:`, then its JSON in
/// `format`, as `data:` lines.
pub fn frame(buf: &mut BytesMut, e: &StoredEvent, format: Format, origin: &str) {
    let json = match format {
        Format::Stored => serde_json::to_string(e).expect("stored events serialize"),
        Format::CloudEvents => CloudEvent::of(e, origin).to_json(),
    };
    buf.extend_from_slice(b"id: ");
    buf.extend_from_slice(e.seq.to_string().as_bytes());
    buf.extend_from_slice(b"\n");
    // Compact JSON escapes every newline in strings; split anyway, as the
    // event-stream format requires of any data.
    for line in json.split('\n') {
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(line.as_bytes());
        buf.extend_from_slice(b"\n");
    }
    buf.extend_from_slice(b"\n");
}

/// A live subscriber.
struct Member {
    id: u64,
    filter: Arc<Filter>,
    format: Format,
    /// The seq it takes next.
    next: u64,
    outbox: Outbox,
    /// The last round that handed it frames (or passed it by).
    round: u64,
    /// Told the seq to catch up from, when it leaves the live set.
    demote: oneshot::Sender<u64>,
}

#[derive(Default)]
struct Members {
    next_id: u64,
    /// The last seq the fan-out handed out (0 before any).
    published: u64,
    live: Vec<Member>,
}

pub struct Fanout {
    origin: String,
    members: Mutex<Members>,
}

/// A subscriber's place in the live set; leaving it (drop) takes the
/// subscriber out.
pub struct Membership {
    fanout: Arc<Fanout>,
    id: u64,
    /// The seq to catch up from, once the fan-out sends the subscriber back.
    pub demoted: oneshot::Receiver<u64>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut m = self.fanout.members.lock().expect("fan-out lock");
        m.live.retain(|member| member.id != self.id);
    }
}

/// Up to `CHUNK_EVENTS` events of one committed group, framed lazily in each
/// format, once for every subscriber.
struct Chunk {
    group: Arc<Committed>,
    range: std::ops::Range<usize>,
    /// Per format: every event's frames in one buffer, and where each begins.
    framed: [Option<(Bytes, Vec<usize>)>; 2],
}

impl Chunk {
    /// `group` cut into chunks.
    fn of(group: &Arc<Committed>) -> impl Iterator<Item = Chunk> + '_ {
        (0..group.events.len()).step_by(CHUNK_EVENTS).map(|start| Chunk {
            group: group.clone(),
            range: start..(start + CHUNK_EVENTS).min(group.events.len()),
            framed: [None, None],
        })
    }

    fn events(&self) -> &[StoredEvent] {
        &self.group.events[self.range.clone()]
    }

    fn last(&self) -> u64 {
        self.events()[self.range.len() - 1].seq
    }

    fn all(&mut self, format: Format, origin: &str) -> &(Bytes, Vec<usize>) {
        let events = &self.group.events[self.range.clone()];
        self.framed[format as usize].get_or_insert_with(|| {
            let mut buf = BytesMut::new();
            let mut starts = Vec::with_capacity(events.len());
            for e in events {
                starts.push(buf.len());
                frame(&mut buf, e, format, origin);
            }
            (buf.freeze(), starts)
        })
    }

    /// The frames a subscriber with `filter` takes from the events at `from..`.
    fn frames_for(&mut self, from: usize, filter: &Filter, format: Format, origin: &str) -> Option<Bytes> {
        let group = self.group.clone();
        let events = &group.events[self.range.clone()];
        let (all, starts) = self.all(format, origin);
        if filter.takes_all() {
            return Some(all.slice(starts[from]..));
        }
        let mut buf = BytesMut::new();
        for (i, e) in events.iter().enumerate().skip(from) {
            if filter.keeps(e) {
                let end = starts.get(i + 1).copied().unwrap_or(all.len());
                buf.extend_from_slice(&all[starts[i]..end]);
            }
        }
        (!buf.is_empty()).then(|| buf.freeze())
    }
}

/// Hand `member` its frames of `chunks`; false when it must go back to the
/// store: its buffer is full or gone, or it would miss events (the fan-out
/// fell behind the ledger).
fn hand(member: &mut Member, chunks: &mut [Chunk], origin: &str) -> bool {
    for chunk in chunks {
        let last = chunk.last();
        if member.next > last {
            continue;
        }
        let from = chunk.events().partition_point(|e| e.seq < member.next);
        if chunk.events()[from].seq != member.next {
            return false;
        }
        if let Some(frames) = chunk.frames_for(from, &member.filter, member.format, origin) {
            if !member.outbox.try_send(frames) {
                if !member.outbox.is_closed() {
                    crate::metrics::SSE_FELL_BEHIND.inc();
                }
                return false;
            }
        }
        member.next = last + 1;
    }
    true
}

impl Fanout {
    /// Start the fan-out thread on the ledger's feed. It ends when the ledger
    /// does.
    pub fn start(feed: broadcast::Receiver<Arc<Committed>>, origin: String) -> std::io::Result<Arc<Fanout>> {
        let fanout = Arc::new(Fanout {
            origin,
            members: Mutex::default(),
        });
        let f = fanout.clone();
        std::thread::Builder::new()
            .name("sitrep-fanout".into())
            .spawn(move || f.run(feed))?;
        Ok(fanout)
    }

    /// The server's origin, the `source` of its CloudEvents.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Join the live set taking seqs from `next` on; `None` when the fan-out
    /// has already handed out `next` (catch up from the store again first).
    pub fn join(
        self: &Arc<Self>,
        filter: Arc<Filter>,
        format: Format,
        next: u64,
        outbox: Outbox,
    ) -> Option<Membership> {
        let mut m = self.members.lock().expect("fan-out lock");
        if m.published >= next {
            return None;
        }
        m.next_id += 1;
        let id = m.next_id;
        let (demote, demoted) = oneshot::channel();
        m.live.push(Member {
            id,
            filter,
            format,
            next,
            outbox,
            round: 0,
            demote,
        });
        Some(Membership {
            fanout: self.clone(),
            id,
            demoted,
        })
    }

    fn run(&self, mut feed: broadcast::Receiver<Arc<Committed>>) {
        let mut round = 0;
        let mut carried = Vec::new();
        loop {
            if carried.is_empty() {
                match feed.blocking_recv() {
                    Ok(group) => carried.extend(Chunk::of(&group)),
                    // Members see the gap in the next round and catch up.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
            round += 1;
            carried = self.round(round, carried, &mut feed);
        }
    }

    /// Hand `chunks` to every live subscriber, a slice of subscribers at a
    /// time. Before each slice, what has been committed meanwhile joins the
    /// round, so a subscriber waits at most one round for an event; the
    /// chunks that the round's earlier slices missed are returned, for the next.
    fn round(&self, round: u64, mut chunks: Vec<Chunk>, feed: &mut broadcast::Receiver<Arc<Committed>>) -> Vec<Chunk> {
        let mut missed_from = None;
        let mut handed_in_round = 0;
        loop {
            // Whatever else has been committed joins the round (up to a gap,
            // which a later round begins at).
            let mut events: usize = chunks.iter().map(|c| c.range.len()).sum();
            while events < ROUND_EVENTS {
                let Ok(group) = feed.try_recv() else { break };
                events += group.events.len();
                if handed_in_round > 0 && missed_from.is_none() {
                    missed_from = Some(chunks.len());
                }
                chunks.extend(Chunk::of(&group));
            }
            let slice_started = std::time::Instant::now();
            let mut m = self.members.lock().expect("fan-out lock");
            // From now on a subscriber that has not had these must take them
            // from the store: it joins after them, or not at all.
            if let Some(last) = chunks.last().map(Chunk::last) {
                m.published = m.published.max(last);
            }
            let (mut handed, mut i, mut more) = (0, 0, false);
            while i < m.live.len() {
                if m.live[i].round == round {
                    i += 1;
                    continue;
                }
                if handed == SLICE_MEMBERS {
                    more = true;
                    break;
                }
                handed += 1;
                let member = &mut m.live[i];
                member.round = round;
                if hand(member, &mut chunks, &self.origin) {
                    i += 1;
                } else {
                    let member = m.live.swap_remove(i);
                    let _ = member.demote.send(member.next);
                }
            }
            drop(m);
            handed_in_round += handed;
            // The slice's share of `WRITES_PER_SECOND`, the last one's too:
            // the next round waits for it, gathering what is committed meanwhile.
            let share = Duration::from_secs(1) * handed as u32 / WRITES_PER_SECOND;
            std::thread::sleep(share.saturating_sub(slice_started.elapsed()));
            if !more {
                return missed_from.map_or_else(Vec::new, |from| chunks.split_off(from));
            }
        }
    }
}
