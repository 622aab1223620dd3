//! A fact: what the projections read from one event, and nothing else. It is
//! derived from the event once, when the event is written, and stored beside
//! it in a compact binary form, so that start-up folds the log without parsing
//! its JSON again. `sitrep verify` derives every fact again from its event and
//! compares.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event::{ActorKind, EventData, LocationKind, NewEvent, StreamRef};
use super::fold::Effect;
use super::{EventType, Slug};

/// What an event does to the read models.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Change {
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
    /// A development of a location (possibly one without effect on its status).
    Develop(Effect<Slug>),
    /// The retraction of an earlier development.
    Retract(Uuid),
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
            EventData::LocationRegistered(d) => Change::RegisterLocation {
                name: d.name.clone(),
                kind: d.kind,
                parent: d.parent.clone(),
                lat: d.lat,
                lon: d.lon,
            },
            EventData::ActorRegistered(d) => Change::RegisterActor {
                name: d.name.clone(),
                kind: d.kind,
                aliases: d.aliases.clone().unwrap_or_default(),
                member_of: d.member_of.clone(),
            },
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
            EventData::CasualtiesReported(d) => Change::Develop(Effect::Casualties {
                killed: d.killed.unwrap_or(0),
                wounded: d.wounded.unwrap_or(0),
            }),
            EventData::AirSupportProvided(_) | EventData::Report(_) => Change::Develop(Effect::Nothing),
        };
        Fact {
            id,
            event_type: event.event_type,
            stream: event.stream.clone(),
            version,
            occurred_at: event.occurred_at.map(Timestamp::from),
            claimed: event.claimant().is_some(),
            mentions: event.data.named_actors().into_iter().map(|(_, a)| a.clone()).collect(),
            change,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        bincode::serialize(self).expect("facts always serialize")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Fact, String> {
        bincode::deserialize(bytes).map_err(|e| format!("the stored fact does not decode: {e}"))
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
