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

/// Events buffered per subscriber between the store or the fan-out and its
/// socket; a live subscriber whose buffer would overflow goes back to the store.
pub const BUFFER_EVENTS: usize = 256;
/// Most events handed to one subscriber at once (one write).
const CHUNK_EVENTS: usize = 64;
/// Most events one round of the fan-out hands out.
const ROUND_EVENTS: usize = 4096;
/// Live subscribers handed their frames between two pauses of a round, so
/// the workers that write frames out (and answer every other request) never
/// have more than this many subscribers to serve at once.
const SLICE_MEMBERS: usize = 256;
/// The pause between two slices of a round.
const SLICE_PAUSE: Duration = Duration::from_millis(1);

/// What each `data:` line carries (`format=`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The stored event, as `GET /v1/events` gives it.
    Stored,
    /// The stored event as a structured CloudEvent.
    CloudEvents,
}

/// Frames on their way to one subscriber's socket, and how many events they carry.
pub struct Frames {
    bytes: Bytes,
    events: usize,
}

/// The sending end of one subscriber's buffer.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Frames>,
    /// Events sent and not yet taken by the socket.
    queued: Arc<AtomicUsize>,
}

/// The receiving end: the response body takes frames from it.
pub struct Inbox {
    rx: mpsc::Receiver<Frames>,
    queued: Arc<AtomicUsize>,
}

/// A subscriber's buffer of `BUFFER_EVENTS`.
pub fn buffer() -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(BUFFER_EVENTS);
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
        self.queued.fetch_add(1, Ordering::SeqCst);
        let frames = Frames {
            bytes: frame,
            events: 1,
        };
        matches!(tokio::time::timeout(stalled, self.tx.send(frames)).await, Ok(Ok(())))
    }

    /// Queue `events` events' frames if they fit the buffer now.
    fn try_send(&self, bytes: Bytes, events: usize) -> bool {
        if self.queued.load(Ordering::SeqCst) + events > BUFFER_EVENTS {
            return false;
        }
        self.queued.fetch_add(events, Ordering::SeqCst);
        if self.tx.try_send(Frames { bytes, events }).is_err() {
            self.queued.fetch_sub(events, Ordering::SeqCst);
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
            frames.map(|f| {
                self.queued.fetch_sub(f.events, Ordering::SeqCst);
                f.bytes
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

/// Events of one round handed out together, framed lazily in each format,
/// once for every subscriber.
struct Chunk<'a> {
    events: &'a [&'a StoredEvent],
    origin: &'a str,
    /// Per format: every event's frames in one buffer, and where each begins.
    framed: [Option<(Bytes, Vec<usize>)>; 2],
}

impl<'a> Chunk<'a> {
    fn last(&self) -> u64 {
        self.events[self.events.len() - 1].seq
    }

    fn all(&mut self, format: Format) -> &(Bytes, Vec<usize>) {
        let (events, origin) = (self.events, self.origin);
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

    /// The frames a subscriber with `filter` takes from the events at
    /// `from..`, and how many events they are.
    fn frames_for(&mut self, from: usize, filter: &Filter, format: Format) -> Option<(Bytes, usize)> {
        let events = self.events;
        let (all, starts) = self.all(format);
        if filter.takes_all() {
            return Some((all.slice(starts[from]..), events.len() - from));
        }
        let mut buf = BytesMut::new();
        let mut kept = 0;
        for (i, e) in events.iter().enumerate().skip(from) {
            if filter.keeps(e) {
                let end = starts.get(i + 1).copied().unwrap_or(all.len());
                buf.extend_from_slice(&all[starts[i]..end]);
                kept += 1;
            }
        }
        (kept > 0).then(|| (buf.freeze(), kept))
    }
}

/// Hand `member` its frames of `chunks`; false when it must go back to the
/// store: its buffer is full or gone, or it would miss events (the fan-out
/// fell behind the ledger).
fn hand(member: &mut Member, chunks: &mut [Chunk]) -> bool {
    for chunk in chunks {
        let last = chunk.last();
        if member.next > last {
            continue;
        }
        let from = chunk.events.partition_point(|e| e.seq < member.next);
        if chunk.events[from].seq != member.next {
            return false;
        }
        if let Some((bytes, events)) = chunk.frames_for(from, &member.filter, member.format) {
            if !member.outbox.try_send(bytes, events) {
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
        loop {
            let mut groups = match feed.blocking_recv() {
                Ok(group) => vec![group],
                // Members see the gap in the next round and catch up.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            // Whatever else has been committed meanwhile goes in the same
            // round (up to a gap, which the next round begins at).
            let mut events = groups[0].events.len();
            while events < ROUND_EVENTS {
                let Ok(group) = feed.try_recv() else { break };
                events += group.events.len();
                groups.push(group);
            }
            round += 1;
            self.round(round, &groups);
        }
    }

    /// Hand the events of `groups` to every live subscriber, a slice of
    /// subscribers at a time.
    fn round(&self, round: u64, groups: &[Arc<Committed>]) {
        let events: Vec<&StoredEvent> = groups.iter().flat_map(|g| g.events.iter()).collect();
        let Some(last) = events.last().map(|e| e.seq) else {
            return;
        };
        let mut chunks: Vec<Chunk> = events
            .chunks(CHUNK_EVENTS)
            .map(|events| Chunk {
                events,
                origin: &self.origin,
                framed: [None, None],
            })
            .collect();
        // From now on a subscriber that has not had these must take them from
        // the store: it joins after them, or not at all.
        {
            let mut m = self.members.lock().expect("fan-out lock");
            m.published = m.published.max(last);
        }
        loop {
            let mut m = self.members.lock().expect("fan-out lock");
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
                if hand(member, &mut chunks) {
                    i += 1;
                } else {
                    let member = m.live.swap_remove(i);
                    let _ = member.demote.send(member.next);
                }
            }
            drop(m);
            if !more {
                return;
            }
            std::thread::sleep(SLICE_PAUSE);
        }
    }
}
