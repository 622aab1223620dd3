//! The writer thread: group commit, and following what other servers append.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, watch};

use crate::domain::event::StoredEvent;
use crate::domain::fact::Fact;
use crate::projection::Projection;
use crate::store::{check_follows, corrupt, Head, Staged, Store, StoreError};

use super::plan::{Group, Plan, Request};
use super::{AppendError, Appended, Committed, Job, MAX_GROUP_EVENTS};

/// Events folded per step when following other servers.
const FOLLOW_CHUNK: u64 = 4096;
/// Times a group is planned again because other servers appended first, before
/// its requests are answered `503`. From the second, the writer holds the
/// others off (`Store::take_turn`), so a third is never needed.
const MAX_REPLANS: usize = 4;

pub(super) struct Writer {
    pub store: Arc<dyn Store>,
    pub projection: Arc<RwLock<Projection>>,
    pub feed: broadcast::Sender<Arc<Committed>>,
    /// The seq folded into the projection, for reads that wait on `min_seq`.
    pub folded: watch::Sender<u64>,
    /// A `Follow` job is queued; the wake-ups in between are the same one.
    pub follow_queued: Arc<AtomicBool>,
    pub last_recorded_at: Option<DateTime<Utc>>,
}

impl Writer {
    pub fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut stopping = false;
        while !stopping {
            let Some(first) = rx.blocking_recv() else { break };
            let mut group = Vec::new();
            let mut follow = false;
            let mut events = 0;
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Stop => {
                        stopping = true;
                        break;
                    }
                    Job::Follow => follow = true,
                    Job::Append {
                        events: evs,
                        batch,
                        principal,
                        reply,
                    } => {
                        events += evs.len();
                        group.push(Request {
                            events: evs,
                            batch,
                            principal,
                            reply,
                        });
                    }
                }
                if events < MAX_GROUP_EVENTS {
                    next = rx.try_recv().ok();
                }
            }
            if follow {
                self.follow_queued.store(false, Ordering::SeqCst);
            }
            // Fold what others appended first, when told they did: a group
            // planned without it would be refused and planned again.
            if follow {
                if let Err(e) = self.follow() {
                    tracing::warn!(error = %e, "could not follow the log");
                }
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
        }
        // Answer anything that raced with Stop.
        rx.close();
        while let Ok(job) = rx.try_recv() {
            if let Job::Append { reply, .. } = job {
                let _ = reply.send(Err(AppendError::Unavailable("the server is shutting down".into())));
            }
        }
    }

    /// Fold what other servers appended, up to the head in storage now.
    fn follow(&mut self) -> Result<(), StoreError> {
        let head = self.store.durable_head()?;
        self.catch_up(head.seq)
    }

    /// Fold the events after the projection's head up to `to`, each hash and
    /// link checked, and pass them to the live feed.
    fn catch_up(&mut self, to: u64) -> Result<(), StoreError> {
        loop {
            let (from, mut prev, mut tree) = {
                let p = self.projection.read().expect("projection lock");
                (p.head_seq() + 1, p.head_hash(), p.tree().clone())
            };
            if from > to {
                return Ok(());
            }
            let want = (to + 1 - from).min(FOLLOW_CHUNK);
            let mut folded: Vec<(crate::store::Record, Fact)> = Vec::with_capacity(want as usize);
            for r in self.store.records(from).take(want as usize) {
                let r = r?;
                r.check_hash()?;
                if r.prev_hash() != prev {
                    return Err(corrupt(r.seq(), "prev_hash does not match the hash before it"));
                }
                prev = r.hash();
                let fact = Fact::from_bytes(r.fact()).map_err(|e| corrupt(r.seq(), e))?;
                tree.push(r.hash().as_bytes());
                folded.push((r, fact));
            }
            if (folded.len() as u64) < want {
                return Err(corrupt(
                    from + folded.len() as u64,
                    "an event before the head is missing",
                ));
            }
            // Events are decoded only where they are needed: the last one for
            // its time, and all of them when the live feed has subscribers.
            let last = folded.last().expect("at least one").0.event()?;
            let events: Vec<StoredEvent> = if self.feed.receiver_count() > 0 {
                folded.iter().map(|(r, _)| r.event()).collect::<Result<_, _>>()?
            } else {
                Vec::new()
            };
            {
                let mut p = self.projection.write().expect("projection lock");
                for (r, fact) in &folded {
                    p.apply_fact(r.seq(), fact)
                        .map_err(|e| corrupt(r.seq(), format!("the projection refuses it: {}", e.reason)))?;
                }
                p.set_head(&last.hash, &last.recorded_at);
                p.set_tree(tree);
            }
            let at = last.recorded_at.at();
            self.last_recorded_at = Some(self.last_recorded_at.map_or(at, |t| t.max(at)));
            self.folded.send_replace(last.seq);
            self.publish(events.into_iter());
        }
    }

    /// Hand committed events to the live feed, as one group; rendering and
    /// fanning them out to subscribers is the feed's work, not the writer's.
    fn publish(&self, events: impl Iterator<Item = StoredEvent>) {
        if self.feed.receiver_count() > 0 {
            let _ = self.feed.send(Arc::new(Committed {
                events: events.collect(),
            }));
        }
    }

    fn commit_group(&mut self, group: Vec<Request>) {
        // Plan the group against the log as folded, and answer it only if no
        // other server appended meanwhile; if one did, fold what it appended
        // (so the rules see it) and plan again.
        let mut replans = 0;
        let mut turn = false;
        let (staged, tree, plans, written) = loop {
            let (base, staged, tree, plans) = {
                let projection = self.projection.read().expect("projection lock");
                let base = Head {
                    seq: projection.head_seq(),
                    hash: projection.head_hash(),
                };
                let mut g = Group::new(&projection, self.last_recorded_at);
                let plans: Vec<Plan> = group.iter().map(|r| g.plan(r, &*self.store)).collect();
                (base, std::mem::take(&mut g.staged), g.tree, plans)
            };
            let written = if staged.is_empty() {
                // Refusals and retries were decided on the log as folded: they
                // stand only if that is still the log's head. (Appends are
                // checked the same way by `append_after`.)
                match self.store.durable_head() {
                    Ok(head) if head == base => Ok(()),
                    Ok(_) => Err(StoreError::Moved { planned: base.seq }),
                    Err(e) => Err(e),
                }
            } else {
                let started = std::time::Instant::now();
                let w = check_follows(&base, &staged).and_then(|()| self.store.append_after(&base, &staged));
                crate::metrics::FLUSH_SECONDS.observe(started.elapsed().as_secs_f64());
                w.map(|_| ())
            };
            match written {
                Err(StoreError::Moved { .. }) if replans < MAX_REPLANS => {
                    replans += 1;
                    if replans >= 2 && !turn {
                        if let Err(e) = self.store.take_turn() {
                            break (staged, tree, plans, Err(e));
                        }
                        turn = true;
                    }
                    if let Err(e) = self.follow() {
                        break (staged, tree, plans, Err(e));
                    }
                }
                written => break (staged, tree, plans, written),
            }
        };
        if turn {
            self.store.end_turn();
        }
        match &written {
            Ok(()) if !staged.is_empty() => {
                crate::metrics::GROUP_EVENTS.observe(staged.len() as f64);
                crate::metrics::APPENDED_EVENTS.inc_by(staged.len() as u64);
                self.apply(&staged, tree);
            }
            Ok(()) => {}
            Err(e) => tracing::error!(error = %e, events = staged.len(), "append failed; nothing acknowledged"),
        }

        for (plan, r) in plans.into_iter().zip(group) {
            let answer = match (plan, &written) {
                (Plan::Answered(a), _) => a,
                (Plan::RetryOfPending(receipts), Ok(())) => Ok(Appended::Retried(receipts)),
                (Plan::Created(range), Ok(())) => Ok(Appended::Created(
                    staged[range].iter().map(|s| s.event.receipt()).collect(),
                )),
                (_, Err(e)) => Err(AppendError::Unavailable(e.to_string())),
            };
            let _ = r.reply.send(answer);
        }
        // The reporters first: their requests are woken before the feed's
        // fan-out competes with them for the workers.
        if written.is_ok() && !staged.is_empty() {
            self.publish(staged.into_iter().map(|s| s.event));
        }
    }

    /// Fold a durable group into the projection.
    fn apply(&mut self, staged: &[Staged], tree: crate::domain::integrity::MerkleFrontier) {
        let mut projection = self.projection.write().expect("projection lock");
        for s in staged {
            if let Err(e) = projection.apply_fact(s.event.seq, &s.fact) {
                // The writer checked every rule before writing; a refusal here
                // means the projection and the log disagree.
                panic!("durable event refused by the projection: {e}");
            }
        }
        let last = &staged.last().expect("a group with events").event;
        projection.set_head(&last.hash, &last.recorded_at);
        projection.set_tree(tree);
        drop(projection);
        self.last_recorded_at = Some(last.recorded_at.at());
        // Readers and subscribers see an event only once it is durable and
        // folded.
        self.folded.send_replace(last.seq);
    }
}
