//! The stored form of an event, as the log keeps it and every read returns
//! it, and the receipt an append answers with.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::event::*;
use super::hash::Hash;
use super::ids::Slug;
use super::time::UtcTime;
use super::validation::Problem;

/// An event as the log keeps it and every read returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredEvent {
    pub seq: u64,
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Slug>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Slug>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<UtcTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_precision: Option<TimePrecision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_precision: Option<PlacePrecision>,
    pub recorded_at: UtcTime,
    pub recorded_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    pub data: Value,
    pub version: u64,
    pub prev_hash: Hash,
    pub hash: Hash,
}

impl StoredEvent {
    /// The stream this event belongs to.
    pub fn stream(&self) -> Option<StreamRef> {
        match (&self.location, &self.actor) {
            (Some(l), None) => Some(StreamRef::Location(l.clone())),
            (None, Some(a)) => Some(StreamRef::Actor(a.clone())),
            _ => None,
        }
    }

    /// Re-read the stored event as the posted envelope it came from, re-running
    /// every shape check. Used when rebuilding and importing, so a stored event
    /// is held to the rules it was posted under (see `Reading`).
    pub fn to_new_event(&self) -> Result<NewEvent, Problem> {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.to_string()));
        m.insert("type".into(), Value::String(self.event_type.as_str().into()));
        if let Some(l) = &self.location {
            m.insert("location".into(), Value::String(l.to_string()));
        }
        if let Some(a) = &self.actor {
            m.insert("actor".into(), Value::String(a.to_string()));
        }
        if let Some(t) = &self.occurred_at {
            m.insert("occurred_at".into(), Value::String(t.to_string()));
        }
        if let Some(p) = self.occurred_precision {
            m.insert("occurred_precision".into(), Value::String(p.as_str().into()));
        }
        if let Some(p) = self.place_precision {
            m.insert("place_precision".into(), Value::String(p.as_str().into()));
        }
        if let Some(s) = &self.source {
            m.insert("source".into(), serde_json::to_value(s).expect("source serializes"));
        }
        m.insert("data".into(), self.data.clone());
        NewEvent::read(&Value::Object(m), Reading::Stored)
    }

    /// Does this event name `actor`: its registration, or any data member that
    /// names actors (the members `EventData::named_actors` reads)?
    pub fn names_actor(&self, actor: &Slug) -> bool {
        if self.actor.as_ref() == Some(actor) {
            return true;
        }
        let is = |v: &Value| v.as_str() == Some(actor.as_str());
        ["actor", "defender", "attacker", "provider", "supported", "member_of"]
            .iter()
            .any(|m| self.data.get(m).is_some_and(is))
            || self
                .data
                .get("actors")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(is))
    }

    /// The receipt an append answers with.
    pub fn receipt(&self) -> Receipt {
        Receipt {
            id: self.id,
            seq: self.seq,
            version: self.version,
            recorded_at: self.recorded_at,
            hash: self.hash,
        }
    }
}

/// What an append answers: where the event landed in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub id: Uuid,
    pub seq: u64,
    pub version: u64,
    pub recorded_at: UtcTime,
    pub hash: Hash,
}
