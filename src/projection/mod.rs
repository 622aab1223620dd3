//! Read models folded from the log: every location's history and live status,
//! every actor's `controls` and `present_in`, and the index of event ids that
//! the domain rules consult. Kept in memory, rebuilt from the log at start-up,
//! and advanced by the ledger after each durable append.
//!
//! Bitemporal queries (`as_of`, `at_seq`) fold one location's history only, so
//! their cost grows with that location's history, not with the log.
//!
//! This module must not touch sled or HTTP: it is fed stored events and answers
//! queries.

pub mod view;

use std::collections::BTreeSet;
use std::num::NonZeroU64;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::event::{NewEvent, StoredEvent, StreamRef};
use crate::domain::fact::{ActorRef, Change, Fact, LocationRef};
use crate::domain::fold::{fold, Control, Development, Status};
use crate::domain::hash::Hash;
use crate::domain::integrity::{MerkleFrontier, GENESIS_HASH};
use crate::domain::rules::{Catalog, KnownEvent};
use crate::domain::time::UtcTime;
use crate::domain::{EventType, Slug};

pub use view::{ActorView, CasualtiesView, ControlView, LocationView, SubdivisionsView};

/// Index of an actor in `Projection::actors`.
pub type ActorIx = u32;
/// Index of a location in `Projection::locations`.
pub type LocationIx = u32;

/// A point in both times: what the log said at `at_seq` about the world at `as_of`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Point {
    pub as_of: Option<DateTime<Utc>>,
    pub at_seq: Option<u64>,
}

impl Point {
    pub fn is_live(&self) -> bool {
        self.as_of.is_none() && self.at_seq.is_none()
    }

    fn sees_seq(&self, seq: u64) -> bool {
        self.at_seq.is_none_or(|s| seq <= s)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    dev: Development<ActorIx>,
    /// Seq of the retraction of this development, if any.
    retracted_at: Option<NonZeroU64>,
}

/// A location's reference data from `seq` (its registration or an amendment) on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LocationVersion {
    pub seq: u64,
    pub data: LocationRef,
    pub parent: Option<LocationIx>,
}

/// An actor's reference data from `seq` on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActorVersion {
    pub seq: u64,
    pub data: ActorRef,
    pub member_of: Option<ActorIx>,
}

/// The version in force at `point`: the last one whose seq it sees (the
/// registration when the stream is visible at all).
fn version_at<T>(versions: &[T], seq_of: impl Fn(&T) -> u64, point: Point) -> &T {
    let n = versions.partition_point(|v| point.sees_seq(seq_of(v)));
    &versions[n.saturating_sub(1)]
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LocationState {
    pub id: Slug,
    /// Reference data: the registration, then each amendment, by seq.
    versions: Vec<LocationVersion>,
    /// Seqs of the stream's events (registration first), ascending.
    seqs: Vec<u64>,
    /// Every location that has had this one as its parent at some seq.
    children: Vec<LocationIx>,
    /// Developments sorted by `(occurred_at, seq)`.
    history: Vec<Entry>,
    /// `(occurred_at, seq)` of the stream's retractions, which are not developments.
    retractions: Vec<(DateTime<Utc>, u64)>,
    live: Status<ActorIx>,
}

impl LocationState {
    /// Reference data at `point`.
    pub fn at(&self, point: Point) -> &LocationVersion {
        version_at(&self.versions, |v| v.seq, point)
    }

    fn current(&self) -> &LocationVersion {
        self.versions.last().expect("a location has its registration")
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActorState {
    pub id: Slug,
    /// Reference data: the registration, then each amendment, by seq.
    versions: Vec<ActorVersion>,
    seqs: Vec<u64>,
    /// Seqs of the events that name this actor: its registration and any data member.
    mentions: Vec<u64>,
    controls: BTreeSet<LocationIx>,
    present_in: BTreeSet<LocationIx>,
}

impl ActorState {
    pub fn at(&self, point: Point) -> &ActorVersion {
        version_at(&self.versions, |v| v.seq, point)
    }

    fn current(&self) -> &ActorVersion {
        self.versions.last().expect("an actor has its registration")
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct EventEntry {
    seq: u64,
    event_type: EventType,
    /// The location stream, or `None` for actor registrations.
    location: Option<LocationIx>,
    retracted_at: Option<NonZeroU64>,
}

/// Everything the service answers reads from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Projection {
    head_seq: u64,
    head_hash: Hash,
    merkle: MerkleFrontier,
    last_recorded_at: Option<UtcTime>,
    actors: Vec<ActorState>,
    actor_ix: HashMap<Slug, ActorIx>,
    locations: Vec<LocationState>,
    location_ix: HashMap<Slug, LocationIx>,
    events: HashMap<Uuid, EventEntry>,
    by_type: HashMap<EventType, Vec<u64>>,
    /// Locations a bulk fold has touched; `None` outside one.
    #[serde(skip)]
    bulk: Option<HashSet<LocationIx>>,
}

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

impl Default for Projection {
    fn default() -> Self {
        Projection {
            head_seq: 0,
            head_hash: GENESIS_HASH,
            merkle: MerkleFrontier::default(),
            last_recorded_at: None,
            actors: Vec::new(),
            actor_ix: HashMap::default(),
            locations: Vec::new(),
            location_ix: HashMap::default(),
            events: HashMap::default(),
            by_type: HashMap::default(),
            bulk: None,
        }
    }
}

/// Why a stored event could not be applied: the log breaks a rule it should keep.
#[derive(Debug, thiserror::Error)]
#[error("event seq {seq} cannot be applied: {reason}")]
pub struct ApplyError {
    pub seq: u64,
    pub reason: String,
}

impl Projection {
    pub fn head_seq(&self) -> u64 {
        self.head_seq
    }

    pub fn head_hash(&self) -> Hash {
        self.head_hash
    }

    pub fn merkle_root(&self) -> [u8; 32] {
        self.merkle.root()
    }

    /// The Merkle frontier of the log. The ledger keeps it in step with the
    /// head: `apply` folds events, the tree comes from the store's nodes.
    pub fn tree(&self) -> &MerkleFrontier {
        &self.merkle
    }

    pub fn set_tree(&mut self, tree: MerkleFrontier) {
        self.merkle = tree;
    }

    pub fn last_recorded_at(&self) -> Option<UtcTime> {
        self.last_recorded_at
    }

    pub fn location_ix(&self, id: &Slug) -> Option<LocationIx> {
        self.location_ix.get(id).copied()
    }

    pub fn actor_ix(&self, id: &Slug) -> Option<ActorIx> {
        self.actor_ix.get(id).copied()
    }

    /// Seq of event `id`, if the log holds it.
    pub fn seq_of(&self, id: &Uuid) -> Option<u64> {
        self.events.get(id).map(|e| e.seq)
    }

    /// Apply one stored event that follows the head. `parsed` is the event's
    /// envelope re-read by the domain (its data typed).
    pub fn apply(&mut self, stored: &StoredEvent, parsed: &NewEvent) -> Result<(), ApplyError> {
        self.apply_fact(stored.seq, &Fact::of(stored.id, stored.version, parsed))?;
        self.set_head(&stored.hash, &stored.recorded_at);
        Ok(())
    }

    /// The hash and `recorded_at` of the event at the head, which `apply_fact`
    /// leaves to the caller (a bulk fold sets them once, at the end).
    pub fn set_head(&mut self, hash: &Hash, recorded_at: &UtcTime) {
        self.head_hash = *hash;
        self.last_recorded_at = Some(*recorded_at);
    }

    /// Fold many events at once (start-up): developments are appended to their
    /// location's history in seq order and each touched location is sorted and
    /// folded once, in `end_bulk`, instead of after every event.
    pub fn begin_bulk(&mut self) {
        self.bulk = Some(HashSet::default());
    }

    /// Sort and fold every location the bulk fold touched.
    pub fn end_bulk(&mut self) {
        let Some(dirty) = self.bulk.take() else { return };
        for ix in dirty {
            let loc = &mut self.locations[ix as usize];
            loc.history.sort_unstable_by_key(|e| (e.dev.occurred_at, e.dev.seq));
            self.refold_live(ix);
        }
    }

    /// Apply the fact of the event at `seq`, which must follow the head.
    pub fn apply_fact(&mut self, seq: u64, fact: &Fact) -> Result<(), ApplyError> {
        let fail = |reason: String| ApplyError { seq, reason };
        if seq != self.head_seq + 1 {
            return Err(fail(format!("the projection is at seq {}", self.head_seq)));
        }
        let version = self.stream_version(&fact.stream) + 1;
        if fact.version != version {
            return Err(fail(format!(
                "version {} where the stream is at {}",
                fact.version,
                version - 1
            )));
        }
        let mut location = None;
        match (&fact.stream, &fact.change) {
            (StreamRef::Actor(id), Change::RegisterActor(data)) => {
                if self.actor_ix.contains_key(id) {
                    return Err(fail(format!("actor '{id}' registered twice")));
                }
                let member_of = match &data.member_of {
                    Some(m) => Some(self.actor(m).ok_or_else(|| fail(format!("unknown actor '{m}'")))?),
                    None => None,
                };
                let ix = self.actors.len() as ActorIx;
                self.actors.push(ActorState {
                    id: id.clone(),
                    versions: vec![ActorVersion {
                        seq,
                        data: (**data).clone(),
                        member_of,
                    }],
                    seqs: vec![seq],
                    mentions: vec![seq],
                    controls: BTreeSet::new(),
                    present_in: BTreeSet::new(),
                });
                self.actor_ix.insert(id.clone(), ix);
                if let Some(m) = member_of {
                    self.actors[m as usize].mentions.push(seq);
                }
            }
            (StreamRef::Actor(id), Change::AmendActor(patch)) => {
                let ix = self.actor(id).ok_or_else(|| fail(format!("unknown actor '{id}'")))?;
                let data = self.actors[ix as usize].current().data.amended(patch);
                let member_of = match &data.member_of {
                    Some(m) => Some(self.actor(m).ok_or_else(|| fail(format!("unknown actor '{m}'")))?),
                    None => None,
                };
                if patch.member_of.is_some() && self.actor_chain_reaches(member_of, ix) {
                    return Err(fail(format!("member_of would make a cycle through '{id}'")));
                }
                let actor = &mut self.actors[ix as usize];
                actor.versions.push(ActorVersion { seq, data, member_of });
                actor.seqs.push(seq);
                actor.mentions.push(seq);
                if let (Some(m), Some(_)) = (member_of, &patch.member_of) {
                    self.actors[m as usize].mentions.push(seq);
                }
            }
            (StreamRef::Location(id), Change::AmendLocation(patch)) => {
                let ix = self
                    .location(id)
                    .ok_or_else(|| fail(format!("unknown location '{id}'")))?;
                let data = self.locations[ix as usize].current().data.amended(patch);
                let parent = match &data.parent {
                    Some(p) => Some(
                        self.location(p)
                            .ok_or_else(|| fail(format!("unknown location '{p}'")))?,
                    ),
                    None => None,
                };
                if patch.parent.is_some() && self.location_chain_reaches(parent, ix) {
                    return Err(fail(format!("the parent would make a cycle through '{id}'")));
                }
                let loc = &mut self.locations[ix as usize];
                loc.versions.push(LocationVersion { seq, data, parent });
                loc.seqs.push(seq);
                if let Some(p) = parent {
                    let siblings = &mut self.locations[p as usize].children;
                    if !siblings.contains(&ix) {
                        siblings.push(ix);
                    }
                }
                location = Some(ix);
            }
            (StreamRef::Location(id), Change::RegisterLocation(data)) => {
                if self.location_ix.contains_key(id) {
                    return Err(fail(format!("location '{id}' registered twice")));
                }
                let parent = match &data.parent {
                    Some(p) => Some(
                        self.location(p)
                            .ok_or_else(|| fail(format!("unknown location '{p}'")))?,
                    ),
                    None => None,
                };
                let ix = self.locations.len() as LocationIx;
                self.locations.push(LocationState {
                    id: id.clone(),
                    versions: vec![LocationVersion {
                        seq,
                        data: (**data).clone(),
                        parent,
                    }],
                    seqs: vec![seq],
                    children: Vec::new(),
                    history: Vec::new(),
                    retractions: Vec::new(),
                    live: Status::default(),
                });
                self.location_ix.insert(id.clone(), ix);
                if let Some(p) = parent {
                    self.locations[p as usize].children.push(ix);
                }
                location = Some(ix);
            }
            (StreamRef::Location(id), change @ (Change::Develop(_) | Change::Retract(_))) => {
                let ix = self
                    .location(id)
                    .ok_or_else(|| fail(format!("unknown location '{id}'")))?;
                location = Some(ix);
                let occurred_at = fact
                    .occurred_at
                    .and_then(|t| t.to_utc())
                    .ok_or_else(|| fail("occurred_at is missing".into()))?;
                let mut named = Vec::with_capacity(fact.mentions.len());
                for a in &fact.mentions {
                    named.push(self.actor(a).ok_or_else(|| fail(format!("unknown actor '{a}'")))?);
                }
                named.dedup();
                for a in &named {
                    self.actors[*a as usize].mentions.push(seq);
                }
                match change {
                    Change::Retract(target_id) => {
                        let target = self
                            .events
                            .get_mut(target_id)
                            .ok_or_else(|| fail(format!("unknown event {target_id}")))?;
                        if target.retracted_at.is_some()
                            || target.location != Some(ix)
                            || target.event_type.is_reference()
                        {
                            return Err(fail(format!("event {target_id} cannot be retracted here")));
                        }
                        target.retracted_at = NonZeroU64::new(seq);
                        let target_seq = target.seq;
                        let loc = &mut self.locations[ix as usize];
                        loc.seqs.push(seq);
                        loc.retractions.push((occurred_at, seq));
                        if let Some(entry) = loc.history.iter_mut().rev().find(|e| e.dev.seq == target_seq) {
                            entry.retracted_at = NonZeroU64::new(seq);
                        }
                        self.touched(ix);
                    }
                    Change::Develop(effect) => {
                        let effect =
                            effect.try_map(|a| self.actor(a).ok_or_else(|| fail(format!("unknown actor '{a}'"))))?;
                        let dev = Development {
                            seq,
                            occurred_at,
                            id: fact.id,
                            claimed: fact.claimed,
                            precision: fact.occurred_precision,
                            effect,
                        };
                        let entry = Entry {
                            dev,
                            retracted_at: None,
                        };
                        let bulk = self.bulk.is_some();
                        let loc = &mut self.locations[ix as usize];
                        loc.seqs.push(seq);
                        if bulk {
                            loc.history.push(entry);
                            self.touched(ix);
                        } else {
                            let key = (entry.dev.occurred_at, seq);
                            let pos = loc.history.partition_point(|e| (e.dev.occurred_at, e.dev.seq) < key);
                            let at_end = pos == loc.history.len();
                            loc.history.insert(pos, entry);
                            if at_end {
                                // The common case, a development later than all others:
                                // advance the live status instead of refolding.
                                let before = loc.live.clone();
                                let dev = &loc.history[pos].dev;
                                loc.live.apply(dev);
                                self.reindex_actors(ix, &before);
                            } else {
                                self.refold_live(ix);
                            }
                        }
                    }
                    _ => unreachable!("matched above"),
                }
            }
            (StreamRef::Location(id), _) => return Err(fail(format!("location '{id}' registered twice"))),
            (StreamRef::Actor(id), _) => return Err(fail(format!("actor stream '{id}' only holds its registration"))),
        }
        self.events.insert(
            fact.id,
            EventEntry {
                seq,
                event_type: fact.event_type,
                location,
                retracted_at: None,
            },
        );
        self.by_type.entry(fact.event_type).or_default().push(seq);
        self.head_seq = seq;
        Ok(())
    }

    /// Does the parent chain from `start` (current reference data) reach `ix`?
    fn location_chain_reaches(&self, start: Option<LocationIx>, ix: LocationIx) -> bool {
        let mut cur = start;
        // Registered parents form a forest, so each step goes up; the bound
        // only guards against a broken one.
        for _ in 0..=self.locations.len() {
            match cur {
                None => return false,
                Some(c) if c == ix => return true,
                Some(c) => cur = self.locations[c as usize].current().parent,
            }
        }
        true
    }

    /// Does the `member_of` chain from `start` reach `ix`?
    fn actor_chain_reaches(&self, start: Option<ActorIx>, ix: ActorIx) -> bool {
        let mut cur = start;
        for _ in 0..=self.actors.len() {
            match cur {
                None => return false,
                Some(c) if c == ix => return true,
                Some(c) => cur = self.actors[c as usize].current().member_of,
            }
        }
        true
    }

    fn actor(&self, id: &Slug) -> Option<ActorIx> {
        self.actor_ix.get(id).copied()
    }

    fn location(&self, id: &Slug) -> Option<LocationIx> {
        self.location_ix.get(id).copied()
    }

    /// A location's history changed out of order: refold it now, or at the end
    /// of a bulk fold.
    fn touched(&mut self, ix: LocationIx) {
        match &mut self.bulk {
            Some(dirty) => {
                dirty.insert(ix);
            }
            None => self.refold_live(ix),
        }
    }

    fn refold_live(&mut self, ix: LocationIx) {
        let loc = &mut self.locations[ix as usize];
        let before = std::mem::replace(
            &mut loc.live,
            fold(loc.history.iter().filter(|e| e.retracted_at.is_none()).map(|e| &e.dev)),
        );
        self.reindex_actors(ix, &before);
    }

    /// Keep actors' live `controls` and `present_in` in step with a location's
    /// live status.
    fn reindex_actors(&mut self, ix: LocationIx, before: &Status<ActorIx>) {
        let after = self.locations[ix as usize].live.clone();
        for a in before.present.difference(&after.present) {
            self.actors[*a as usize].present_in.remove(&ix);
        }
        for a in after.present.difference(&before.present) {
            self.actors[*a as usize].present_in.insert(ix);
        }
        let (b, n) = (before.control(), after.control());
        if b != n {
            if let Control::Controlled(a) = b {
                self.actors[a as usize].controls.remove(&ix);
            }
            if let Control::Controlled(a) = n {
                self.actors[a as usize].controls.insert(ix);
            }
        }
    }

    /// Is location `ix` registered at `point`?
    fn location_visible(&self, ix: LocationIx, point: Point) -> bool {
        point.sees_seq(self.locations[ix as usize].seqs[0])
    }

    fn actor_visible(&self, ix: ActorIx, point: Point) -> bool {
        point.sees_seq(self.actors[ix as usize].seqs[0])
    }

    /// A location's status at `point`: O(its history).
    pub fn status_at(&self, ix: LocationIx, point: Point) -> Status<ActorIx> {
        let loc = &self.locations[ix as usize];
        if point.is_live() {
            return loc.live.clone();
        }
        let end = match point.as_of {
            Some(t) => loc.history.partition_point(|e| e.dev.occurred_at <= t),
            None => loc.history.len(),
        };
        fold(
            loc.history[..end]
                .iter()
                .filter(|e| point.sees_seq(e.dev.seq) && !e.retracted_at.is_some_and(|r| point.sees_seq(r.get())))
                .map(|e| &e.dev),
        )
    }

    /// Seqs of location `ix`'s stream.
    pub fn location_seqs(&self, ix: LocationIx) -> &[u64] {
        &self.locations[ix as usize].seqs
    }

    /// Seqs of the events naming actor `ix`.
    pub fn actor_mentions(&self, ix: ActorIx) -> &[u64] {
        &self.actors[ix as usize].mentions
    }

    /// Seqs of the events of one type.
    pub fn seqs_of_type(&self, t: EventType) -> &[u64] {
        self.by_type.get(&t).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Seqs of location `ix`'s stream in `(occurred_at, seq)` order, its
    /// reference data (registration and amendments, which hold for every
    /// `as_of`) first, by seq.
    pub fn location_seqs_by_occurrence(&self, ix: LocationIx) -> Vec<u64> {
        let loc = &self.locations[ix as usize];
        let mut timed: Vec<(DateTime<Utc>, u64)> = loc
            .history
            .iter()
            .map(|e| (e.dev.occurred_at, e.dev.seq))
            .chain(loc.retractions.iter().copied())
            .collect();
        timed.sort_unstable();
        loc.versions
            .iter()
            .map(|v| v.seq)
            .chain(timed.into_iter().map(|(_, s)| s))
            .collect()
    }
}

impl Catalog for Projection {
    fn location_registered(&self, id: &Slug) -> bool {
        self.location_ix.contains_key(id)
    }

    fn actor_registered(&self, id: &Slug) -> bool {
        self.actor_ix.contains_key(id)
    }

    fn stream_version(&self, stream: &StreamRef) -> u64 {
        match stream {
            StreamRef::Location(id) => self
                .location(id)
                .map_or(0, |ix| self.locations[ix as usize].seqs.len() as u64),
            StreamRef::Actor(id) => self
                .actor(id)
                .map_or(0, |ix| self.actors[ix as usize].seqs.len() as u64),
        }
    }

    fn location_parent(&self, id: &Slug) -> Option<Slug> {
        let loc = &self.locations[self.location(id)? as usize];
        loc.current().parent.map(|p| self.locations[p as usize].id.clone())
    }

    fn actor_member_of(&self, id: &Slug) -> Option<Slug> {
        let actor = &self.actors[self.actor(id)? as usize];
        actor.current().member_of.map(|m| self.actors[m as usize].id.clone())
    }

    fn known_event(&self, id: &Uuid) -> Option<KnownEvent> {
        self.events.get(id).map(|e| KnownEvent {
            event_type: e.event_type,
            location: e.location.map(|ix| self.locations[ix as usize].id.clone()),
            retracted: e.retracted_at.is_some(),
        })
    }
}

#[cfg(test)]
mod tests;
