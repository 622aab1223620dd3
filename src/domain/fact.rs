//! A fact: what the projections read from one event, and nothing else. It is
//! derived from the event once, when the event is written, and stored beside
//! it in a compact binary form, so that start-up folds the log without parsing
//! its JSON again. `sitrep verify` derives every fact again from its event and
//! compares.
//!
//! The bytes are `[FACT_LAYOUT][bincode of Fact]`. Facts written before the
//! layout byte existed are bincode of the older `legacy::Fact`, whose first
//! byte is always 16 (the length of the event id's bytes), and still decode.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event::{ActorKind, EventData, LocationKind, NewEvent, StreamRef, TimePrecision};
use super::fold::{CasualtyFigures, Effect, Estimate};
use super::reference::{Gazetteer, Geometry, Names};
use super::{EventType, Slug};

/// The layout byte of facts written with it (legacy facts start with 16).
const FACT_LAYOUT: u8 = 2;

/// A location's reference data: what its registration gives and amendments replace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocationRef {
    pub name: String,
    pub kind: LocationKind,
    pub parent: Option<Slug>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub names: Names,
    pub aliases: Vec<String>,
    pub gazetteer: Gazetteer,
    pub geometry: Option<Geometry>,
}

/// The members a `location_amended` replaces (`None`: left as they are).
/// `lat` and `lon` come together.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LocationPatch {
    pub name: Option<String>,
    pub kind: Option<LocationKind>,
    pub parent: Option<Slug>,
    pub position: Option<(f64, f64)>,
    pub names: Option<Names>,
    pub aliases: Option<Vec<String>>,
    pub gazetteer: Option<Gazetteer>,
    pub geometry: Option<Geometry>,
}

impl LocationRef {
    /// This reference data with `patch`'s members replacing its own.
    pub fn amended(&self, patch: &LocationPatch) -> LocationRef {
        let mut r = self.clone();
        if let Some(v) = &patch.name {
            r.name = v.clone();
        }
        if let Some(v) = patch.kind {
            r.kind = v;
        }
        if let Some(v) = &patch.parent {
            r.parent = Some(v.clone());
        }
        if let Some((lat, lon)) = patch.position {
            (r.lat, r.lon) = (Some(lat), Some(lon));
        }
        if let Some(v) = &patch.names {
            r.names = v.clone();
        }
        if let Some(v) = &patch.aliases {
            r.aliases = v.clone();
        }
        if let Some(v) = &patch.gazetteer {
            r.gazetteer = v.clone();
        }
        if let Some(v) = &patch.geometry {
            r.geometry = Some(v.clone());
        }
        r
    }
}

/// An actor's reference data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActorRef {
    pub name: String,
    pub kind: ActorKind,
    pub aliases: Vec<String>,
    pub member_of: Option<Slug>,
    pub names: Names,
    pub gazetteer: Gazetteer,
}

/// The members an `actor_amended` replaces.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActorPatch {
    pub name: Option<String>,
    pub kind: Option<ActorKind>,
    pub aliases: Option<Vec<String>>,
    pub member_of: Option<Slug>,
    pub names: Option<Names>,
    pub gazetteer: Option<Gazetteer>,
}

impl ActorRef {
    pub fn amended(&self, patch: &ActorPatch) -> ActorRef {
        let mut r = self.clone();
        if let Some(v) = &patch.name {
            r.name = v.clone();
        }
        if let Some(v) = patch.kind {
            r.kind = v;
        }
        if let Some(v) = &patch.aliases {
            r.aliases = v.clone();
        }
        if let Some(v) = &patch.member_of {
            r.member_of = Some(v.clone());
        }
        if let Some(v) = &patch.names {
            r.names = v.clone();
        }
        if let Some(v) = &patch.gazetteer {
            r.gazetteer = v.clone();
        }
        r
    }
}

/// What an event does to the read models.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Change {
    RegisterLocation(Box<LocationRef>),
    RegisterActor(Box<ActorRef>),
    /// A development of a location (possibly one without effect on its status).
    Develop(Effect<Slug>),
    /// The retraction of an earlier development.
    Retract(Uuid),
    AmendLocation(Box<LocationPatch>),
    AmendActor(Box<ActorPatch>),
}

/// A point in time as seconds and nanoseconds since the epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp {
            secs: t.timestamp(),
            nanos: t.timestamp_subsec_nanos(),
        }
    }
}

impl Timestamp {
    pub fn to_utc(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.secs, self.nanos)
    }
}

/// Serde for a `DateTime<Utc>` as a `Timestamp` (two integers, not a string),
/// for the binary forms: facts and projection checkpoints.
pub mod utc_as_timestamp {
    use chrono::{DateTime, Utc};
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    use super::Timestamp;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        Timestamp::from(*t).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        Timestamp::deserialize(d)?
            .to_utc()
            .ok_or_else(|| D::Error::custom("timestamp out of range"))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub id: Uuid,
    pub event_type: EventType,
    pub stream: StreamRef,
    pub version: u64,
    pub occurred_at: Option<Timestamp>,
    pub occurred_precision: TimePrecision,
    /// Its source names a claimant.
    pub claimed: bool,
    /// Every actor the event's data names, in the order `EventData::named_actors` gives.
    pub mentions: Vec<Slug>,
    pub change: Change,
}

impl Fact {
    /// The fact of event `id`, at `version` of its stream, posted as `event`.
    pub fn of(id: Uuid, version: u64, event: &NewEvent) -> Fact {
        let change = match &event.data {
            EventData::LocationRegistered(d) => Change::RegisterLocation(Box::new(LocationRef {
                name: d.name.clone(),
                kind: d.kind,
                parent: d.parent.clone(),
                lat: d.lat,
                lon: d.lon,
                names: d.names.clone().unwrap_or_default(),
                aliases: d.aliases.clone().unwrap_or_default(),
                gazetteer: d.gazetteer.clone().unwrap_or_default(),
                geometry: d.geometry.clone(),
            })),
            EventData::ActorRegistered(d) => Change::RegisterActor(Box::new(ActorRef {
                name: d.name.clone(),
                kind: d.kind,
                aliases: d.aliases.clone().unwrap_or_default(),
                member_of: d.member_of.clone(),
                names: d.names.clone().unwrap_or_default(),
                gazetteer: d.gazetteer.clone().unwrap_or_default(),
            })),
            EventData::LocationAmended(d) => Change::AmendLocation(Box::new(LocationPatch {
                name: d.name.clone(),
                kind: d.kind,
                parent: d.parent.clone(),
                position: d.lat.zip(d.lon),
                names: d.names.clone(),
                aliases: d.aliases.clone(),
                gazetteer: d.gazetteer.clone(),
                geometry: d.geometry.clone(),
            })),
            EventData::ActorAmended(d) => Change::AmendActor(Box::new(ActorPatch {
                name: d.name.clone(),
                kind: d.kind,
                aliases: d.aliases.clone(),
                member_of: d.member_of.clone(),
                names: d.names.clone(),
                gazetteer: d.gazetteer.clone(),
            })),
            EventData::EventRetracted(r) => Change::Retract(r.event_id),
            EventData::ControlEstablished(d) => Change::Develop(Effect::Establish(d.actor.clone())),
            EventData::ForcesEntered(d) => Change::Develop(Effect::Enter(d.actor.clone())),
            EventData::ForcesWithdrew(d) => Change::Develop(Effect::Withdraw(d.actor.clone())),
            EventData::ClashesReported(d) => Change::Develop(Effect::Clash(d.actors.clone())),
            EventData::AttackRepelled(d) => Change::Develop(Effect::Repel {
                defender: d.defender.clone(),
                attacker: d.attacker.clone(),
            }),
            EventData::FacilityClosed(_) => Change::Develop(Effect::Close),
            EventData::FacilityReopened(_) => Change::Develop(Effect::Reopen),
            EventData::CasualtiesReported(d) => Change::Develop(Effect::Casualties(Box::new(CasualtyFigures {
                killed: Estimate::of(d.killed_low, d.killed, d.killed_high),
                wounded: Estimate::of(d.wounded_low, d.wounded, d.wounded_high),
            }))),
            EventData::AirSupportProvided(_) | EventData::Report(_) => Change::Develop(Effect::Nothing),
        };
        Fact {
            id,
            event_type: event.event_type,
            stream: event.stream.clone(),
            version,
            occurred_at: event.occurred_at.map(Timestamp::from),
            occurred_precision: event.occurred_precision.unwrap_or(TimePrecision::Instant),
            claimed: event.claimant().is_some(),
            mentions: event.data.named_actors().into_iter().map(|(_, a)| a.clone()).collect(),
            change,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = vec![FACT_LAYOUT];
        bincode::serialize_into(&mut bytes, self).expect("facts always serialize");
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Fact, String> {
        let decoded = match bytes.split_first() {
            Some((&FACT_LAYOUT, body)) => bincode::deserialize(body),
            _ => bincode::deserialize::<legacy::Fact>(bytes).map(Fact::from),
        };
        decoded.map_err(|e| format!("the stored fact does not decode: {e}"))
    }
}

/// The facts written before precision, estimates and amendments, as they were
/// encoded (bincode, no layout byte). Kept so that every old log still opens.
mod legacy {
    use serde::Deserialize;
    use uuid::Uuid;

    use super::{
        ActorRef, CasualtyFigures, Change as NewChange, Effect as NewEffect, Estimate, LocationRef, Timestamp,
    };
    use crate::domain::event::{ActorKind, LocationKind, StreamRef, TimePrecision};
    use crate::domain::{EventType, Slug};

    #[derive(Deserialize)]
    pub struct Fact {
        id: Uuid,
        event_type: EventType,
        stream: StreamRef,
        version: u64,
        occurred_at: Option<Timestamp>,
        claimed: bool,
        mentions: Vec<Slug>,
        change: Change,
    }

    #[derive(Deserialize)]
    enum Change {
        RegisterLocation {
            name: String,
            kind: LocationKind,
            parent: Option<Slug>,
            lat: Option<f64>,
            lon: Option<f64>,
        },
        RegisterActor {
            name: String,
            kind: ActorKind,
            aliases: Vec<String>,
            member_of: Option<Slug>,
        },
        Develop(Effect),
        Retract(Uuid),
    }

    #[derive(Deserialize)]
    enum Effect {
        Establish(Slug),
        Enter(Slug),
        Withdraw(Slug),
        Clash(Vec<Slug>),
        Repel { defender: Slug, attacker: Slug },
        Close,
        Reopen,
        Casualties { killed: u64, wounded: u64 },
        Nothing,
    }

    impl From<Fact> for super::Fact {
        fn from(f: Fact) -> super::Fact {
            let change = match f.change {
                Change::RegisterLocation {
                    name,
                    kind,
                    parent,
                    lat,
                    lon,
                } => NewChange::RegisterLocation(Box::new(LocationRef {
                    name,
                    kind,
                    parent,
                    lat,
                    lon,
                    names: Default::default(),
                    aliases: Vec::new(),
                    gazetteer: Default::default(),
                    geometry: None,
                })),
                Change::RegisterActor {
                    name,
                    kind,
                    aliases,
                    member_of,
                } => NewChange::RegisterActor(Box::new(ActorRef {
                    name,
                    kind,
                    aliases,
                    member_of,
                    names: Default::default(),
                    gazetteer: Default::default(),
                })),
                Change::Develop(e) => NewChange::Develop(match e {
                    Effect::Establish(a) => NewEffect::Establish(a),
                    Effect::Enter(a) => NewEffect::Enter(a),
                    Effect::Withdraw(a) => NewEffect::Withdraw(a),
                    Effect::Clash(a) => NewEffect::Clash(a),
                    Effect::Repel { defender, attacker } => NewEffect::Repel { defender, attacker },
                    Effect::Close => NewEffect::Close,
                    Effect::Reopen => NewEffect::Reopen,
                    // A report of that time gave best estimates only.
                    Effect::Casualties { killed, wounded } => NewEffect::Casualties(Box::new(CasualtyFigures {
                        killed: Estimate::of(None, Some(killed), None),
                        wounded: Estimate::of(None, Some(wounded), None),
                    })),
                    Effect::Nothing => NewEffect::Nothing,
                }),
                Change::Retract(id) => NewChange::Retract(id),
            };
            super::Fact {
                id: f.id,
                event_type: f.event_type,
                stream: f.stream,
                version: f.version,
                occurred_at: f.occurred_at,
                occurred_precision: TimePrecision::Instant,
                claimed: f.claimed,
                mentions: f.mentions,
                change,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_fact_survives_its_bytes_and_carries_what_the_fold_needs() {
        let posted = NewEvent::from_json(&json!({
            "type": "clashes_reported",
            "location": "aleppo",
            "occurred_at": "2024-11-29T10:00:00.123456789+02:00",
            "source": {"name": "SAA statement", "kind": "party_statement", "claimant": "saa"},
            "data": {"actors": ["hts", "saa"]}
        }))
        .unwrap();
        let fact = Fact::of(Uuid::from_u128(7), 3, &posted);
        assert_eq!(Fact::from_bytes(&fact.to_bytes()).unwrap(), fact);
        assert!(fact.claimed);
        assert_eq!(fact.version, 3);
        assert_eq!(fact.mentions.len(), 2);
        assert_eq!(fact.occurred_at.and_then(Timestamp::to_utc), posted.occurred_at);
        let hts = Slug::parse("hts").unwrap();
        let saa = Slug::parse("saa").unwrap();
        assert_eq!(fact.change, Change::Develop(Effect::Clash(vec![hts, saa])));
    }

    #[test]
    fn garbage_is_not_a_fact() {
        assert!(Fact::from_bytes(b"\x01\x02").is_err());
    }
}
