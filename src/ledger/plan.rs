//! Planning a group: each request checked against the projection plus what
//! the group has staged before it, then numbered, chained and hashed.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::domain::event::{ActorAmended, EventData, LocationAmended, NewEvent, Receipt, StoredEvent, StreamRef};
use crate::domain::fact::Fact;
use crate::domain::hash::Hash;
use crate::domain::integrity::{canonical_digest, canonical_event, MerkleFrontier};
use crate::domain::limits::MAX_EVENT_BYTES;
use crate::domain::rules::{self, Catalog, KnownEvent};
use crate::domain::time::UtcTime;
use crate::domain::{Problem, Slug};
use crate::projection::Projection;
use crate::store::{Head, Staged, Store, StoreError};

use super::{leaf_of, AppendError, Appended};

/// What a group has staged but not yet written, layered over the projection.
#[derive(Default)]
struct Overlay {
    versions: HashMap<StreamRef, u64>,
    events: HashMap<Uuid, PendingEvent>,
    retracted: HashSet<Uuid>,
    /// Staged parents of locations and `member_of` of actors (`None`: none).
    links: HashMap<StreamRef, Option<Slug>>,
}

#[derive(Clone)]
struct PendingEvent {
    known: KnownEvent,
    /// The event as posted, when it came with an id: a retry in the same group
    /// must post the same content (the same members, `expected_version` aside).
    posted: Option<Box<NewEvent>>,
    receipt: Receipt,
}

impl Overlay {
    fn absorb(&mut self, other: Overlay) {
        self.versions.extend(other.versions);
        self.events.extend(other.events);
        self.retracted.extend(other.retracted);
        self.links.extend(other.links);
    }
}

/// The projection as seen through the group's and the request's overlays.
struct Layered<'a> {
    base: &'a Projection,
    group: &'a Overlay,
    request: &'a Overlay,
}

impl Layered<'_> {
    fn layers(&self) -> [&Overlay; 2] {
        [self.request, self.group]
    }

    fn retracted(&self, id: &Uuid) -> bool {
        self.layers().iter().any(|l| l.retracted.contains(id))
    }

    fn pending(&self, id: &Uuid) -> Option<&PendingEvent> {
        self.layers().into_iter().find_map(|l| l.events.get(id))
    }

    fn staged_link(&self, stream: StreamRef) -> Option<Option<Slug>> {
        self.layers().into_iter().find_map(|l| l.links.get(&stream).cloned())
    }
}

impl Catalog for Layered<'_> {
    fn location_registered(&self, id: &Slug) -> bool {
        let s = StreamRef::Location(id.clone());
        self.layers().iter().any(|l| l.versions.contains_key(&s)) || self.base.location_registered(id)
    }

    fn actor_registered(&self, id: &Slug) -> bool {
        let s = StreamRef::Actor(id.clone());
        self.layers().iter().any(|l| l.versions.contains_key(&s)) || self.base.actor_registered(id)
    }

    fn stream_version(&self, stream: &StreamRef) -> u64 {
        self.layers()
            .iter()
            .find_map(|l| l.versions.get(stream).copied())
            .unwrap_or_else(|| self.base.stream_version(stream))
    }

    fn known_event(&self, id: &Uuid) -> Option<KnownEvent> {
        let mut known = match self.pending(id) {
            Some(p) => p.known.clone(),
            None => self.base.known_event(id)?,
        };
        known.retracted |= self.retracted(id);
        Some(known)
    }

    fn location_parent(&self, id: &Slug) -> Option<Slug> {
        self.staged_link(StreamRef::Location(id.clone()))
            .unwrap_or_else(|| self.base.location_parent(id))
    }

    fn actor_member_of(&self, id: &Slug) -> Option<Slug> {
        self.staged_link(StreamRef::Actor(id.clone()))
            .unwrap_or_else(|| self.base.actor_member_of(id))
    }
}

/// One append request inside a group.
pub(super) struct Request {
    pub events: Vec<NewEvent>,
    pub batch: bool,
    pub principal: String,
    pub reply: oneshot::Sender<Result<Appended, AppendError>>,
}

/// What the writer decided for one request of a group.
pub(super) enum Plan {
    Answered(Result<Appended, AppendError>),
    /// A retry answered from events staged earlier in this group: valid only if
    /// the group's write succeeds.
    RetryOfPending(Vec<Receipt>),
    /// New events, staged at `range` of the group's batch.
    Created(std::ops::Range<usize>),
}

/// A group being planned: what it has staged so far, over the projection.
pub(super) struct Group<'a> {
    base: &'a Projection,
    overlay: Overlay,
    pub staged: Vec<Staged>,
    head: Head,
    pub tree: MerkleFrontier,
    /// `recorded_at` never goes back, even if the clock does.
    last_recorded_at: Option<DateTime<Utc>>,
}

impl<'a> Group<'a> {
    pub fn new(base: &'a Projection, last_recorded_at: Option<DateTime<Utc>>) -> Group<'a> {
        Group {
            base,
            overlay: Overlay::default(),
            staged: Vec::new(),
            head: Head {
                seq: base.head_seq(),
                hash: base.head_hash(),
            },
            tree: base.tree().clone(),
            last_recorded_at,
        }
    }

    /// Decide one request. Anything but new events leaves the group as it was.
    pub fn plan(&mut self, req: &Request, store: &dyn Store) -> Plan {
        let (start, tree_before, head_before) = (self.staged.len(), self.tree.clone(), self.head.clone());
        let mut request = Overlay::default();
        let plan = self.decide(&mut request, req, store);
        match &plan {
            Plan::Created(_) => self.overlay.absorb(request),
            _ => {
                self.staged.truncate(start);
                self.tree = tree_before;
                self.head = head_before;
            }
        }
        plan
    }

    /// Decide one request: retry, refusal, or new events staged onto the group.
    fn decide(&mut self, request: &mut Overlay, req: &Request, store: &dyn Store) -> Plan {
        let Request {
            events,
            batch,
            principal,
            ..
        } = req;
        let batch = *batch;
        let base = self.base;
        let group = &self.overlay;
        let in_item = |p: Problem, i: usize| if batch { p.in_batch_item(i) } else { p };
        let refuse = |p: Problem| Plan::Answered(Err(AppendError::Rejected(p)));

        // 1. Idempotency first, so a retry gets its receipt, never a conflict.
        let mut seen = HashSet::new();
        let mut retries = Vec::new();
        let mut pending_retry = false;
        let mut new_count = 0;
        for (i, e) in events.iter().enumerate() {
            let Some(id) = e.id else {
                new_count += 1;
                continue;
            };
            if !seen.insert(id) {
                return refuse(in_item(
                    Problem::invalid("id", format!("{id} appears twice in the batch")),
                    i,
                ));
            }
            let view = Layered { base, group, request };
            // Is `id` known, and was it posted with this same content?
            let known = if let Some(p) = view.pending(&id) {
                pending_retry = true;
                let same = p.posted.as_deref().is_some_and(|p| {
                    NewEvent {
                        expected_version: e.expected_version,
                        ..p.clone()
                    } == *e
                });
                Some((same, p.receipt.clone()))
            } else if let Some(seq) = base.seq_of(&id) {
                match committed(store, seq) {
                    Ok(Some((digest, receipt))) => Some((
                        digest == canonical_digest(&serde_json::Value::Object(e.posted_members(id))),
                        receipt,
                    )),
                    Ok(None) => None,
                    Err(e) => return Plan::Answered(Err(AppendError::Unavailable(e.to_string()))),
                }
            } else {
                None
            };
            match known {
                None => new_count += 1,
                Some((true, receipt)) => retries.push(receipt),
                Some((false, _)) => return refuse(in_item(Problem::IdConflict { field: "id".into(), id }, i)),
            }
        }
        if !retries.is_empty() {
            if new_count > 0 {
                let field = if batch { "[]" } else { "id" };
                return refuse(Problem::IdConflict {
                    field: field.into(),
                    id: retries[0].id,
                });
            }
            return if pending_retry {
                Plan::RetryOfPending(retries)
            } else {
                Plan::Answered(Ok(Appended::Retried(retries)))
            };
        }

        // 2. New events: rules, then seq, version, time and hash.
        let start = self.staged.len();
        let now = Utc::now();
        let recorded = match self.last_recorded_at {
            // recorded_at never goes back, even if the clock does.
            Some(last) if last > now => last,
            _ => now,
        };
        let recorded_at = UtcTime::recorded(recorded);
        for (i, e) in events.iter().enumerate() {
            let view = Layered { base, group, request };
            if let Err(p) = rules::check(e, &view) {
                return refuse(in_item(p, i));
            }
            let version = view.stream_version(&e.stream) + 1;
            // Only a posted id can be retried within the group.
            let posted = e.id.map(|_| Box::new(e.clone()));
            let id = e.id.unwrap_or_else(Uuid::now_v7);
            let mut event = StoredEvent {
                seq: self.head.seq + 1,
                id,
                event_type: e.event_type,
                location: match &e.stream {
                    StreamRef::Location(l) => Some(l.clone()),
                    StreamRef::Actor(_) => None,
                },
                actor: match &e.stream {
                    StreamRef::Actor(a) => Some(a.clone()),
                    StreamRef::Location(_) => None,
                },
                occurred_at: e.occurred_at.map(UtcTime::occurred),
                occurred_precision: e.occurred_precision,
                place_precision: e.place_precision,
                recorded_at,
                recorded_by: principal.clone(),
                source: e.source.clone(),
                data: e.data.to_value(),
                version,
                prev_hash: self.head.hash,
                hash: Hash::GENESIS,
            };
            let canonical = canonical_event(&event);
            event.hash = Hash::of(&canonical);
            // As served: the canonical JSON plus its `hash` member (64 hex digits).
            let size = canonical.len() + r#","hash":""#.len() + 64;
            if size > MAX_EVENT_BYTES {
                // A shape is what makes a registration large: name it.
                let field = if event.data.get("geometry").is_some() {
                    "data.geometry"
                } else {
                    ""
                };
                return refuse(in_item(
                    Problem::invalid(
                        field,
                        format!("the stored event would be {size} bytes; the limit is {MAX_EVENT_BYTES}"),
                    ),
                    i,
                ));
            }
            let fact = Fact::of(id, version, e);
            self.head = Head {
                seq: event.seq,
                hash: event.hash,
            };
            request.versions.insert(e.stream.clone(), version);
            match &e.data {
                EventData::LocationRegistered(d) => {
                    request.links.insert(e.stream.clone(), d.parent.clone());
                }
                EventData::ActorRegistered(d) => {
                    request.links.insert(e.stream.clone(), d.member_of.clone());
                }
                EventData::LocationAmended(LocationAmended { parent: Some(p), .. })
                | EventData::ActorAmended(ActorAmended { member_of: Some(p), .. }) => {
                    request.links.insert(e.stream.clone(), Some(p.clone()));
                }
                _ => {}
            }
            if let EventData::EventRetracted(r) = &e.data {
                request.retracted.insert(r.event_id);
            }
            request.events.insert(
                id,
                PendingEvent {
                    known: KnownEvent {
                        event_type: e.event_type,
                        location: event.location.clone(),
                        retracted: false,
                    },
                    posted,
                    receipt: event.receipt(),
                },
            );
            let nodes = self.tree.push(&leaf_of(&event));
            self.staged.push(Staged {
                event,
                canonical,
                fact,
                nodes,
            });
        }
        Plan::Created(start..self.staged.len())
    }
}

/// The digest of the posted members and the original receipt of the
/// committed event at `seq`.
fn committed(store: &dyn Store, seq: u64) -> Result<Option<([u8; 32], Receipt)>, StoreError> {
    let event = store.get(seq)?.ok_or_else(|| StoreError::Corrupt {
        seq,
        reason: "an event the projection holds is missing from the log".into(),
    })?;
    let posted = event.to_new_event().map_err(|p| StoreError::Corrupt {
        seq,
        reason: format!("the stored event no longer reads as an event: {p}"),
    })?;
    let digest = canonical_digest(&serde_json::Value::Object(posted.posted_members(event.id)));
    Ok(Some((digest, event.receipt())))
}
