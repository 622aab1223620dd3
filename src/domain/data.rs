//! The typed `data` of each event type (`EventData`) and the checks that need
//! no state: lengths, ranges, distinctness, estimates, reference members.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::event::*;
use super::ids::Slug;
use super::limits::*;
use super::reference::{check_names, Gazetteer, Geometry, Names};
use super::validation::FieldError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationRegistered {
    pub name: String,
    pub kind: LocationKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Slug>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Names>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gazetteer: Option<Gazetteer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geometry: Option<Geometry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorRegistered {
    pub name: String,
    pub kind: ActorKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_of: Option<Slug>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Names>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gazetteer: Option<Gazetteer>,
}

/// A change of a location's reference data: each member given replaces the
/// registered (or last amended) one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationAmended {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<LocationKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Slug>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Names>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gazetteer: Option<Gazetteer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geometry: Option<Geometry>,
}

/// A change of an actor's reference data, as `LocationAmended` is for a location.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorAmended {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ActorKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_of: Option<Slug>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Names>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gazetteer: Option<Gazetteer>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorNamed {
    pub actor: Slug,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForcesWithdrew {
    pub actor: Slug,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClashesReported {
    pub actors: Vec<Slug>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackRepelled {
    pub defender: Slug,
    pub attacker: Slug,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacilityChanged {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AirSupportProvided {
    pub provider: Slug,
    pub supported: Slug,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasualtiesReported {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Slug>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wounded: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approximate: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed_low: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed_high: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wounded_low: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wounded_high: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub summary: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRetracted {
    pub event_id: Uuid,
    pub reason: String,
}

/// The typed `data` of an event; the variant always matches the event's type.
#[derive(Clone, Debug, PartialEq)]
pub enum EventData {
    LocationRegistered(LocationRegistered),
    ActorRegistered(ActorRegistered),
    ControlEstablished(ActorNamed),
    ForcesEntered(ActorNamed),
    ForcesWithdrew(ForcesWithdrew),
    ClashesReported(ClashesReported),
    AttackRepelled(AttackRepelled),
    FacilityClosed(FacilityChanged),
    FacilityReopened(FacilityChanged),
    AirSupportProvided(AirSupportProvided),
    CasualtiesReported(CasualtiesReported),
    Report(Report),
    EventRetracted(EventRetracted),
    LocationAmended(LocationAmended),
    ActorAmended(ActorAmended),
}

/// Deserialize `value` as `T`, naming the failing member under `prefix`.
pub(super) fn typed<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, FieldError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{path}")
        };
        FieldError::new(field, e.into_inner().to_string())
    })
}

/// Which rules an envelope is read by: a posted one by all of them; a stored
/// one by those in force when earlier releases wrote it, so that their logs
/// still read, verify and import (they stored text of only invisible
/// characters, leap seconds and integers up to 2^53).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reading {
    Posted,
    Stored,
}

pub(super) fn check_text(errors: &mut Vec<FieldError>, field: &str, text: &str, max: usize, reading: Reading) {
    let empty = match reading {
        Reading::Posted => super::validation::is_blank(text),
        Reading::Stored => text.trim().is_empty(),
    };
    if empty {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if text.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be at most {max} characters")));
    }
}

/// `lat` and `lon` come together, each in range.
fn check_position(errors: &mut Vec<FieldError>, lat: Option<f64>, lon: Option<f64>) {
    match (lat, lon) {
        (Some(lat), Some(lon)) => {
            if !(-90.0..=90.0).contains(&lat) {
                errors.push(FieldError::new("data.lat", "must be between -90 and 90"));
            }
            if !(-180.0..=180.0).contains(&lon) {
                errors.push(FieldError::new("data.lon", "must be between -180 and 180"));
            }
        }
        (Some(_), None) => errors.push(FieldError::new("data.lon", "is required when lat is given")),
        (None, Some(_)) => errors.push(FieldError::new("data.lat", "is required when lon is given")),
        (None, None) => {}
    }
}

/// The reference members beyond a name: names, aliases, gazetteer ids, shape.
fn check_reference(
    errors: &mut Vec<FieldError>,
    names: &Option<Names>,
    aliases: &Option<Vec<String>>,
    gazetteer: &Option<Gazetteer>,
    geometry: &Option<Geometry>,
) {
    if let Some(names) = names {
        check_names(errors, "data.names", names);
    }
    if let Some(aliases) = aliases {
        if aliases.len() > MAX_ALIASES {
            errors.push(FieldError::new(
                "data.aliases",
                format!("must hold at most {MAX_ALIASES} aliases"),
            ));
        }
        for (i, alias) in aliases.iter().enumerate() {
            check_text(
                errors,
                &format!("data.aliases[{i}]"),
                alias,
                MAX_NAME_CHARS,
                Reading::Posted,
            );
        }
    }
    if let Some(g) = gazetteer {
        g.check(errors, "data.gazetteer");
    }
    if let Some(g) = geometry {
        g.check(errors, "data.geometry");
    }
}

/// `low <= best <= high` where given (`low <= high` without a best estimate).
fn check_estimate(errors: &mut Vec<FieldError>, what: &str, low: Option<u64>, best: Option<u64>, high: Option<u64>) {
    if let (Some(l), Some(b)) = (low, best) {
        if l > b {
            errors.push(FieldError::new(
                format!("data.{what}_low"),
                format!("must be at most {what} ({b})"),
            ));
        }
    }
    if let (Some(b), Some(h)) = (best, high) {
        if b > h {
            errors.push(FieldError::new(
                format!("data.{what}_high"),
                format!("must be at least {what} ({b})"),
            ));
        }
    }
    if let (Some(l), Some(h)) = (low, high) {
        if l > h && best.is_none() {
            errors.push(FieldError::new(
                format!("data.{what}_high"),
                format!("must be at least {what}_low ({l})"),
            ));
        }
    }
}

impl EventData {
    /// Parse and check posted `data` for an event of type `ty`.
    pub fn parse(ty: EventType, value: &Value) -> Result<EventData, Vec<FieldError>> {
        EventData::read(ty, value, Reading::Posted)
    }

    pub(super) fn read(ty: EventType, value: &Value, reading: Reading) -> Result<EventData, Vec<FieldError>> {
        let f = "data";
        let one = |e: FieldError| vec![e];
        let data = match ty {
            EventType::LocationRegistered => EventData::LocationRegistered(typed(value, f).map_err(one)?),
            EventType::ActorRegistered => EventData::ActorRegistered(typed(value, f).map_err(one)?),
            EventType::ControlEstablished => EventData::ControlEstablished(typed(value, f).map_err(one)?),
            EventType::ForcesEntered => EventData::ForcesEntered(typed(value, f).map_err(one)?),
            EventType::ForcesWithdrew => EventData::ForcesWithdrew(typed(value, f).map_err(one)?),
            EventType::ClashesReported => EventData::ClashesReported(typed(value, f).map_err(one)?),
            EventType::AttackRepelled => EventData::AttackRepelled(typed(value, f).map_err(one)?),
            EventType::FacilityClosed => EventData::FacilityClosed(typed(value, f).map_err(one)?),
            EventType::FacilityReopened => EventData::FacilityReopened(typed(value, f).map_err(one)?),
            EventType::AirSupportProvided => EventData::AirSupportProvided(typed(value, f).map_err(one)?),
            EventType::CasualtiesReported => EventData::CasualtiesReported(typed(value, f).map_err(one)?),
            EventType::Report => EventData::Report(typed(value, f).map_err(one)?),
            EventType::EventRetracted => EventData::EventRetracted(typed(value, f).map_err(one)?),
            EventType::LocationAmended => EventData::LocationAmended(typed(value, f).map_err(one)?),
            EventType::ActorAmended => EventData::ActorAmended(typed(value, f).map_err(one)?),
        };
        let errors = data.check(reading);
        if errors.is_empty() {
            Ok(data)
        } else {
            Err(errors)
        }
    }

    /// Checks that need no state: lengths, ranges, distinctness.
    fn check(&self, reading: Reading) -> Vec<FieldError> {
        let check_text =
            |errors: &mut Vec<FieldError>, field: &str, text: &str, max| check_text(errors, field, text, max, reading);
        let mut errors = Vec::new();
        match self {
            EventData::LocationRegistered(d) => {
                check_text(&mut errors, "data.name", &d.name, MAX_NAME_CHARS);
                check_position(&mut errors, d.lat, d.lon);
                check_reference(&mut errors, &d.names, &d.aliases, &d.gazetteer, &d.geometry);
            }
            EventData::ActorRegistered(d) => {
                check_text(&mut errors, "data.name", &d.name, MAX_NAME_CHARS);
                check_reference(&mut errors, &d.names, &d.aliases, &d.gazetteer, &None);
            }
            EventData::LocationAmended(d) => {
                if *d == LocationAmended::default() {
                    errors.push(FieldError::new("data", "must name at least one member to amend"));
                }
                if let Some(name) = &d.name {
                    check_text(&mut errors, "data.name", name, MAX_NAME_CHARS);
                }
                check_position(&mut errors, d.lat, d.lon);
                check_reference(&mut errors, &d.names, &d.aliases, &d.gazetteer, &d.geometry);
            }
            EventData::ActorAmended(d) => {
                if *d == ActorAmended::default() {
                    errors.push(FieldError::new("data", "must name at least one member to amend"));
                }
                if let Some(name) = &d.name {
                    check_text(&mut errors, "data.name", name, MAX_NAME_CHARS);
                }
                check_reference(&mut errors, &d.names, &d.aliases, &d.gazetteer, &None);
            }
            EventData::CasualtiesReported(d) => {
                check_estimate(&mut errors, "killed", d.killed_low, d.killed, d.killed_high);
                check_estimate(&mut errors, "wounded", d.wounded_low, d.wounded, d.wounded_high);
            }
            EventData::ClashesReported(d) => {
                if d.actors.len() < 2 {
                    errors.push(FieldError::new("data.actors", "must name at least 2 actors"));
                } else if d.actors.len() > MAX_CLASH_ACTORS {
                    errors.push(FieldError::new(
                        "data.actors",
                        format!("must name at most {MAX_CLASH_ACTORS} actors"),
                    ));
                }
                for (i, a) in d.actors.iter().enumerate() {
                    if d.actors[..i].contains(a) {
                        errors.push(FieldError::new(
                            format!("data.actors[{i}]"),
                            format!("names '{a}' twice"),
                        ));
                    }
                }
            }
            EventData::AttackRepelled(d) => {
                if d.defender == d.attacker {
                    errors.push(FieldError::new("data.attacker", "must differ from the defender"));
                }
            }
            EventData::AirSupportProvided(d) => {
                if d.provider == d.supported {
                    errors.push(FieldError::new("data.supported", "must differ from the provider"));
                }
            }
            EventData::FacilityClosed(d) | EventData::FacilityReopened(d) => {
                if let Some(reason) = &d.reason {
                    check_text(&mut errors, "data.reason", reason, MAX_REASON_CHARS);
                }
            }
            EventData::Report(d) => check_text(&mut errors, "data.summary", &d.summary, MAX_SUMMARY_CHARS),
            EventData::EventRetracted(d) => check_text(&mut errors, "data.reason", &d.reason, MAX_REASON_CHARS),
            EventData::ControlEstablished(_) | EventData::ForcesEntered(_) | EventData::ForcesWithdrew(_) => {}
        }
        errors
    }

    /// The data as stored and served: posted members only, in a fixed order.
    pub fn to_value(&self) -> Value {
        let v = match self {
            EventData::LocationRegistered(d) => serde_json::to_value(d),
            EventData::ActorRegistered(d) => serde_json::to_value(d),
            EventData::ControlEstablished(d) | EventData::ForcesEntered(d) => serde_json::to_value(d),
            EventData::ForcesWithdrew(d) => serde_json::to_value(d),
            EventData::ClashesReported(d) => serde_json::to_value(d),
            EventData::AttackRepelled(d) => serde_json::to_value(d),
            EventData::FacilityClosed(d) | EventData::FacilityReopened(d) => serde_json::to_value(d),
            EventData::AirSupportProvided(d) => serde_json::to_value(d),
            EventData::CasualtiesReported(d) => serde_json::to_value(d),
            EventData::Report(d) => serde_json::to_value(d),
            EventData::EventRetracted(d) => serde_json::to_value(d),
            EventData::LocationAmended(d) => serde_json::to_value(d),
            EventData::ActorAmended(d) => serde_json::to_value(d),
        };
        let mut v = v.expect("plain data structs always serialize");
        super::json::as_read_back(&mut v);
        v
    }

    /// Every actor this event's data names, with the field that names it.
    pub fn named_actors(&self) -> Vec<(&'static str, &Slug)> {
        match self {
            EventData::ActorRegistered(d) => d.member_of.iter().map(|a| ("data.member_of", a)).collect(),
            EventData::ActorAmended(d) => d.member_of.iter().map(|a| ("data.member_of", a)).collect(),
            EventData::ControlEstablished(d) | EventData::ForcesEntered(d) => vec![("data.actor", &d.actor)],
            EventData::ForcesWithdrew(d) => vec![("data.actor", &d.actor)],
            EventData::ClashesReported(d) => d.actors.iter().map(|a| ("data.actors", a)).collect(),
            EventData::AttackRepelled(d) => vec![("data.defender", &d.defender), ("data.attacker", &d.attacker)],
            EventData::AirSupportProvided(d) => vec![("data.provider", &d.provider), ("data.supported", &d.supported)],
            EventData::CasualtiesReported(d) => d.actor.iter().map(|a| ("data.actor", a)).collect(),
            EventData::LocationRegistered(_)
            | EventData::LocationAmended(_)
            | EventData::FacilityClosed(_)
            | EventData::FacilityReopened(_)
            | EventData::Report(_)
            | EventData::EventRetracted(_) => Vec::new(),
        }
    }
}
