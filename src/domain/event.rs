//! Events: the posted envelope (`NewEvent`), its typed `data` (`EventData`), its
//! `Source`, and the stored form (`StoredEvent`) that the log keeps and serves.
//!
//! Parsing is strict: unknown members are refused, so a typo never silently
//! drops data. Every refusal names the offending field.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::ids::Slug;
use super::limits::*;
use super::validation::{FieldError, Problem};

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "must be one of: {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// The v1 event types.
    EventType {
        LocationRegistered = "location_registered",
        ActorRegistered = "actor_registered",
        ControlEstablished = "control_established",
        ForcesEntered = "forces_entered",
        ForcesWithdrew = "forces_withdrew",
        ClashesReported = "clashes_reported",
        AttackRepelled = "attack_repelled",
        FacilityClosed = "facility_closed",
        FacilityReopened = "facility_reopened",
        AirSupportProvided = "air_support_provided",
        CasualtiesReported = "casualties_reported",
        Report = "report",
        EventRetracted = "event_retracted",
    }
);

string_enum!(
    LocationKind {
        Governorate = "governorate",
        City = "city",
        District = "district",
        Town = "town",
        Village = "village",
        Airport = "airport",
        Airbase = "airbase",
        MilitaryBase = "military_base",
        BorderCrossing = "border_crossing",
        Region = "region",
        Other = "other",
    }
);

string_enum!(
    ActorKind {
        StateForces = "state_forces",
        NonStateGroup = "non_state_group",
        ForeignState = "foreign_state",
        Coalition = "coalition",
        Other = "other",
    }
);

string_enum!(
    SourceKind {
        Official = "official",
        PartyStatement = "party_statement",
        NewsAgency = "news_agency",
        Witness = "witness",
        Monitor = "monitor",
        Other = "other",
    }
);

string_enum!(
    /// Admiralty grading of the source's reliability.
    Reliability { A = "A", B = "B", C = "C", D = "D", E = "E", F = "F" }
);

impl EventType {
    pub fn is_registration(self) -> bool {
        matches!(self, EventType::LocationRegistered | EventType::ActorRegistered)
    }

    /// Actor registrations live on actor streams; every other event on a location stream.
    pub fn is_actor_stream(self) -> bool {
        self == EventType::ActorRegistered
    }
}

/// Who says so. A source with a `claimant` makes the event a claim by that party.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    pub kind: SourceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimant: Option<Slug>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reliability: Option<Reliability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credibility: Option<u8>,
}

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
}

/// Deserialize `value` as `T`, naming the failing member under `prefix`.
fn typed<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, FieldError> {
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
enum Reading {
    Posted,
    Stored,
}

fn check_text(errors: &mut Vec<FieldError>, field: &str, text: &str, max: usize, reading: Reading) {
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

impl EventData {
    /// Parse and check posted `data` for an event of type `ty`.
    pub fn parse(ty: EventType, value: &Value) -> Result<EventData, Vec<FieldError>> {
        EventData::read(ty, value, Reading::Posted)
    }

    fn read(ty: EventType, value: &Value, reading: Reading) -> Result<EventData, Vec<FieldError>> {
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
                match (d.lat, d.lon) {
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
            EventData::ActorRegistered(d) => {
                check_text(&mut errors, "data.name", &d.name, MAX_NAME_CHARS);
                if let Some(aliases) = &d.aliases {
                    if aliases.len() > MAX_ALIASES {
                        errors.push(FieldError::new(
                            "data.aliases",
                            format!("must hold at most {MAX_ALIASES} aliases"),
                        ));
                    }
                    for (i, alias) in aliases.iter().enumerate() {
                        check_text(&mut errors, &format!("data.aliases[{i}]"), alias, MAX_NAME_CHARS);
                    }
                }
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
            EventData::ControlEstablished(_)
            | EventData::ForcesEntered(_)
            | EventData::ForcesWithdrew(_)
            | EventData::CasualtiesReported(_) => {}
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
        };
        let mut v = v.expect("plain data structs always serialize");
        super::json::as_read_back(&mut v);
        v
    }

    /// Every actor this event's data names, with the field that names it.
    pub fn named_actors(&self) -> Vec<(&'static str, &Slug)> {
        match self {
            EventData::ActorRegistered(d) => d.member_of.iter().map(|a| ("data.member_of", a)).collect(),
            EventData::ControlEstablished(d) | EventData::ForcesEntered(d) => vec![("data.actor", &d.actor)],
            EventData::ForcesWithdrew(d) => vec![("data.actor", &d.actor)],
            EventData::ClashesReported(d) => d.actors.iter().map(|a| ("data.actors", a)).collect(),
            EventData::AttackRepelled(d) => vec![("data.defender", &d.defender), ("data.attacker", &d.attacker)],
            EventData::AirSupportProvided(d) => vec![("data.provider", &d.provider), ("data.supported", &d.supported)],
            EventData::CasualtiesReported(d) => d.actor.iter().map(|a| ("data.actor", a)).collect(),
            EventData::LocationRegistered(_)
            | EventData::FacilityClosed(_)
            | EventData::FacilityReopened(_)
            | EventData::Report(_)
            | EventData::EventRetracted(_) => Vec::new(),
        }
    }
}

/// Which stream an event belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StreamRef {
    Location(Slug),
    Actor(Slug),
}

impl StreamRef {
    pub fn id(&self) -> &Slug {
        match self {
            StreamRef::Location(s) | StreamRef::Actor(s) => s,
        }
    }

    /// The envelope member that names the stream.
    pub fn member(&self) -> &'static str {
        match self {
            StreamRef::Location(_) => "location",
            StreamRef::Actor(_) => "actor",
        }
    }
}

/// A posted event, checked for shape and normalised (id lowercase, `occurred_at` in UTC).
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub id: Option<Uuid>,
    pub event_type: EventType,
    pub stream: StreamRef,
    pub occurred_at: Option<DateTime<Utc>>,
    pub source: Option<Source>,
    pub expected_version: Option<u64>,
    pub data: EventData,
}

/// The members a posted envelope may have.
pub(crate) const ENVELOPE_MEMBERS: &[&str] = &[
    "id",
    "type",
    "location",
    "actor",
    "occurred_at",
    "source",
    "expected_version",
    "data",
];

/// RFC 3339 in UTC, keeping sub-second digits only when there are some.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Most fractional digits of a second: nanoseconds, as kept.
const MAX_FRACTION_DIGITS: usize = 9;

/// Parse an RFC 3339 timestamp (any offset) to UTC. Refuses what could only be
/// kept as another time: a leap second (:60) and digits beyond nanoseconds.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    read_time(s, Reading::Posted)
}

fn read_time(s: &str, reading: Reading) -> Result<DateTime<Utc>, String> {
    use chrono::{Datelike, Timelike};
    let t = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("must be an RFC 3339 date-time such as 2024-11-30T10:00:00Z ({e})"))?;
    if t.nanosecond() >= 1_000_000_000 && reading == Reading::Posted {
        return Err("must not be a leap second (:60): the log keeps times without them".into());
    }
    let fraction = s
        .split_once('.')
        .map_or(0, |(_, f)| f.bytes().take_while(u8::is_ascii_digit).count());
    if fraction > MAX_FRACTION_DIGITS {
        return Err(format!(
            "must have at most {MAX_FRACTION_DIGITS} fractional digits (nanoseconds), not {fraction}"
        ));
    }
    // Stored in UTC, it must still be RFC 3339 (years 0000 to 9999).
    if !(0..=9999).contains(&t.year()) {
        return Err("must fall within the years 0000 to 9999 once converted to UTC".into());
    }
    Ok(t)
}

impl NewEvent {
    /// Parse one posted envelope. Collects every envelope-level error it can find.
    pub fn from_json(value: &Value) -> Result<NewEvent, Problem> {
        NewEvent::read(value, Reading::Posted)
    }

    fn read(value: &Value, reading: Reading) -> Result<NewEvent, Problem> {
        let Some(obj) = value.as_object() else {
            return Err(Problem::invalid("", "an event must be a JSON object"));
        };
        let normalised = normalise(obj);
        let obj = &normalised;
        let mut errors = Vec::new();
        let mut inexact = Vec::new();
        for (k, v) in obj {
            super::json::inexact_integers(v, k, &mut inexact);
        }
        if !inexact.is_empty() && reading == Reading::Posted {
            let message = format!(
                "must be an integer from -{MAX} to {MAX}: larger ones are not read exactly by every JSON parser",
                MAX = super::json::MAX_EXACT_INTEGER
            );
            return Err(Problem::Validation(
                inexact
                    .into_iter()
                    .map(|f| FieldError::new(f, message.clone()))
                    .collect(),
            ));
        }
        for key in obj.keys() {
            if !ENVELOPE_MEMBERS.contains(&key.as_str()) {
                errors.push(FieldError::new(key.clone(), "unknown member"));
            }
        }

        let id = match obj.get("id") {
            None => None,
            Some(Value::String(s)) => match Uuid::parse_str(s) {
                Ok(u) => Some(u),
                Err(_) => {
                    errors.push(FieldError::new("id", "must be a UUID"));
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::new("id", "must be a UUID string"));
                None
            }
        };

        let event_type = match obj.get("type") {
            None => {
                errors.push(FieldError::new("type", "is required"));
                None
            }
            Some(Value::String(s)) => match s.parse::<EventType>() {
                Ok(t) => Some(t),
                Err(m) => {
                    errors.push(FieldError::new("type", m));
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::new("type", "must be a string"));
                None
            }
        };

        let slug_member = |name: &str, errors: &mut Vec<FieldError>| -> Option<Slug> {
            match obj.get(name) {
                None => None,
                Some(Value::String(s)) => match Slug::parse(s) {
                    Ok(slug) => Some(slug),
                    Err(m) => {
                        errors.push(FieldError::new(name, m));
                        None
                    }
                },
                Some(_) => {
                    errors.push(FieldError::new(name, "must be a string"));
                    None
                }
            }
        };
        let location = slug_member("location", &mut errors);
        let actor = slug_member("actor", &mut errors);

        let occurred_at = match obj.get("occurred_at") {
            None => None,
            Some(Value::String(s)) => match read_time(s, reading) {
                Ok(t) => Some(t),
                Err(m) => {
                    errors.push(FieldError::new("occurred_at", m));
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::new("occurred_at", "must be an RFC 3339 date-time string"));
                None
            }
        };

        let source = match obj.get("source") {
            None => None,
            Some(v) => match typed::<Source>(v, "source") {
                Ok(s) => {
                    errors.extend(check_source(&s, reading));
                    Some(s)
                }
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
        };

        let expected_version = match obj.get("expected_version") {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n),
                None => {
                    errors.push(FieldError::new("expected_version", "must be a non-negative integer"));
                    None
                }
            },
        };

        let data = match (event_type, obj.get("data")) {
            (_, None) => {
                errors.push(FieldError::new(
                    "data",
                    "is required (an object, {} when it has no members)",
                ));
                None
            }
            (_, Some(v)) if !v.is_object() => {
                errors.push(FieldError::new("data", "must be a JSON object"));
                None
            }
            (None, Some(_)) => None,
            (Some(t), Some(v)) => match EventData::read(t, v, reading) {
                Ok(d) => Some(d),
                Err(es) => {
                    errors.extend(es);
                    None
                }
            },
        };

        let mut stream = None;
        if let Some(t) = event_type {
            let (wanted, other, wanted_value) = if t.is_actor_stream() {
                ("actor", "location", actor)
            } else {
                ("location", "actor", location)
            };
            if obj.contains_key(other) {
                errors.push(FieldError::new(
                    other,
                    format!("is not a member of {t} events (use '{wanted}')"),
                ));
            }
            match wanted_value {
                Some(s) => {
                    stream = Some(if t.is_actor_stream() {
                        StreamRef::Actor(s)
                    } else {
                        StreamRef::Location(s)
                    })
                }
                None if !obj.contains_key(wanted) => errors.push(FieldError::new(wanted, "is required")),
                None => {}
            }
            if !t.is_registration() {
                if !obj.contains_key("occurred_at") {
                    errors.push(FieldError::new("occurred_at", "is required"));
                }
                if !obj.contains_key("source") {
                    errors.push(FieldError::new("source", "is required"));
                }
            }
            if let (Some(EventData::LocationRegistered(d)), Some(StreamRef::Location(own))) = (&data, &stream) {
                if d.parent.as_ref() == Some(own) {
                    errors.push(FieldError::new("data.parent", "a location cannot be its own parent"));
                }
            }
            if let (Some(EventData::ActorRegistered(d)), Some(StreamRef::Actor(own))) = (&data, &stream) {
                if d.member_of.as_ref() == Some(own) {
                    errors.push(FieldError::new(
                        "data.member_of",
                        "an actor cannot be a member of itself",
                    ));
                }
            }
        }

        match (errors.is_empty(), event_type, stream, data) {
            (true, Some(event_type), Some(stream), Some(data)) => Ok(NewEvent {
                id,
                event_type,
                stream,
                occurred_at,
                source,
                expected_version,
                data,
            }),
            _ => Err(Problem::Validation(errors)),
        }
    }

    /// The posted members as stored (everything but `expected_version`), with `id` fixed.
    /// Its canonical JSON is what idempotent retries are compared by.
    pub fn posted_members(&self, id: Uuid) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(id.to_string()));
        m.insert("type".into(), Value::String(self.event_type.as_str().into()));
        m.insert(self.stream.member().into(), Value::String(self.stream.id().to_string()));
        if let Some(t) = &self.occurred_at {
            m.insert("occurred_at".into(), Value::String(format_time(t)));
        }
        if let Some(s) = &self.source {
            m.insert("source".into(), serde_json::to_value(s).expect("source serializes"));
        }
        m.insert("data".into(), self.data.to_value());
        m
    }

    /// Is this event a claim by a party (its source names a claimant)?
    pub fn claimant(&self) -> Option<&Slug> {
        self.source.as_ref().and_then(|s| s.claimant.as_ref())
    }
}

/// The envelope as the decoder reads it: an explicit `null` for an optional
/// member is the same as leaving it out, and every number is the value its
/// stored (RFC 8785) form reads back as: an integral float (5.0, 1e1) is that
/// integer, as JSON Schema sees it too, and -0 is 0.
fn normalise(obj: &Map<String, Value>) -> Map<String, Value> {
    let mut m: Map<String, Value> = obj
        .iter()
        .filter(|(k, v)| !(v.is_null() && matches!(k.as_str(), "id" | "occurred_at" | "source" | "expected_version")))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    m.values_mut().for_each(super::json::as_read_back);
    m
}

fn check_source(s: &Source, reading: Reading) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_text(&mut errors, "source.name", &s.name, MAX_NAME_CHARS, reading);
    if let Some(url) = &s.url {
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.chars().count() > MAX_URL_CHARS {
            errors.push(FieldError::new(
                "source.url",
                format!("must be an http(s) URL of at most {MAX_URL_CHARS} characters"),
            ));
        }
    }
    if let Some(c) = s.credibility {
        if !(1..=6).contains(&c) {
            errors.push(FieldError::new("source.credibility", "must be an integer from 1 to 6"));
        }
    }
    errors
}

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
    pub occurred_at: Option<String>,
    pub recorded_at: String,
    pub recorded_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    pub data: Value,
    pub version: u64,
    pub prev_hash: String,
    pub hash: String,
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
            m.insert("occurred_at".into(), Value::String(t.clone()));
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
            recorded_at: self.recorded_at.clone(),
            hash: self.hash.clone(),
        }
    }
}

/// What an append answers: where the event landed in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub id: Uuid,
    pub seq: u64,
    pub version: u64,
    pub recorded_at: String,
    pub hash: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn src() -> Value {
        json!({"name": "Reuters", "kind": "news_agency", "reliability": "B", "credibility": 2, "url": "https://example.org/a"})
    }

    /// One valid example per event type.
    fn examples() -> Vec<Value> {
        let d = |ty: &str, data: Value| json!({"type": ty, "location": "aleppo", "occurred_at": "2024-11-30T10:00:00+03:00", "source": src(), "data": data});
        vec![
            json!({"type": "location_registered", "location": "aleppo", "data": {"name": "Aleppo", "kind": "city", "parent": "aleppo-governorate", "lat": 36.2021, "lon": 37.1343}}),
            json!({"type": "actor_registered", "actor": "hts", "data": {"name": "Hay'at Tahrir al-Sham", "kind": "non_state_group", "aliases": ["HTS"], "member_of": "opposition"}}),
            d("control_established", json!({"actor": "hts"})),
            d("forces_entered", json!({"actor": "hts"})),
            d("forces_withdrew", json!({"actor": "saa", "temporary": true})),
            d("clashes_reported", json!({"actors": ["hts", "saa"]})),
            d("attack_repelled", json!({"defender": "saa", "attacker": "hts"})),
            d("facility_closed", json!({"reason": "flights cancelled"})),
            d("facility_reopened", json!({})),
            d(
                "air_support_provided",
                json!({"provider": "russia", "supported": "saa"}),
            ),
            d(
                "casualties_reported",
                json!({"actor": "saa", "killed": 12, "wounded": 30, "approximate": true}),
            ),
            d("report", json!({"summary": "rebels combing the city"})),
            d(
                "event_retracted",
                json!({"event_id": "0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b", "reason": "duplicate"}),
            ),
        ]
    }

    #[test]
    fn every_event_type_parses_and_its_data_round_trips() {
        let examples = examples();
        assert_eq!(examples.len(), EventType::ALL.len());
        for v in examples {
            let e = NewEvent::from_json(&v).unwrap_or_else(|p| panic!("{v}: {:?}", p.field_errors()));
            assert_eq!(e.event_type.as_str(), v["type"]);
            assert_eq!(e.data.to_value(), v["data"], "data is stored as posted");
            assert_eq!(EventData::parse(e.event_type, &e.data.to_value()).unwrap(), e.data);
        }
    }

    #[test]
    fn occurred_at_is_normalised_to_utc_and_ids_to_lowercase() {
        let mut v = examples()[2].clone();
        v["id"] = json!("0193A2B4-5C6D-7E8F-9A0B-1C2D3E4F5A6B");
        let e = NewEvent::from_json(&v).unwrap();
        let posted = e.posted_members(e.id.unwrap());
        assert_eq!(posted["occurred_at"], "2024-11-30T07:00:00Z");
        assert_eq!(posted["id"], "0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b");
        assert!(!posted.contains_key("expected_version"));
    }

    #[test]
    fn registrations_need_no_time_or_source_but_developments_do() {
        assert!(NewEvent::from_json(&examples()[0]).is_ok());
        let mut v = examples()[3].clone();
        v.as_object_mut().unwrap().remove("occurred_at");
        v.as_object_mut().unwrap().remove("source");
        let Err(Problem::Validation(errors)) = NewEvent::from_json(&v) else {
            panic!("accepted")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["occurred_at", "source"]);
    }

    #[test]
    fn unknown_members_are_refused_at_every_level() {
        for (path, patch) in [
            ("colour", json!({"colour": "red"})),
            (
                "source",
                json!({"source": {"name": "x", "kind": "witness", "mood": "calm"}}),
            ),
            ("data", json!({"data": {"actor": "hts", "strength": 300}})),
        ] {
            let mut v = examples()[3].clone();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            let Err(Problem::Validation(errors)) = NewEvent::from_json(&v) else {
                panic!("{v} accepted")
            };
            assert!(errors.iter().any(|e| e.field.starts_with(path)), "{errors:?}");
        }
    }

    #[test]
    fn nulls_for_optional_members_are_absent_and_integral_floats_are_integers() {
        let mut v = examples()[10].clone();
        v["id"] = Value::Null;
        v["expected_version"] = json!(5.0);
        v["source"]["credibility"] = json!(3.0);
        v["data"]["killed"] = json!(1e1);
        let e = NewEvent::from_json(&v).unwrap();
        assert_eq!((e.id, e.expected_version), (None, Some(5)));
        assert_eq!(e.source.as_ref().unwrap().credibility, Some(3));
        assert_eq!(e.data.to_value()["killed"], json!(10));
        v["data"]["killed"] = json!(2.5);
        assert!(NewEvent::from_json(&v).is_err());
        let mut reg = examples()[0].clone();
        reg["source"] = Value::Null;
        assert!(NewEvent::from_json(&reg).is_ok());
        let mut dev = examples()[3].clone();
        dev["occurred_at"] = Value::Null;
        assert!(NewEvent::from_json(&dev).is_err(), "a development still needs its time");
        // As stored (RFC 8785) and read back: -0 is 0, and 36.0 is 36.
        let mut at = examples()[0].clone();
        at["data"]["lat"] = json!(-0.0);
        at["data"]["lon"] = json!(36.0);
        let data = NewEvent::from_json(&at).unwrap().data;
        assert_eq!(data.to_value()["lat"].to_string(), "0");
        assert_eq!(
            format!("{data:?}"),
            format!(
                "{:?}",
                EventData::parse(EventType::LocationRegistered, &data.to_value()).unwrap()
            )
        );
    }

    #[test]
    fn times_must_stay_rfc_3339_in_utc_and_urls_count_characters() {
        let mut v = examples()[3].clone();
        for t in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+00:01"] {
            v["occurred_at"] = json!(t);
            let Err(Problem::Validation(e)) = NewEvent::from_json(&v) else {
                panic!("{t} accepted")
            };
            assert_eq!(e[0].field, "occurred_at");
        }
        v["occurred_at"] = json!("9999-12-31T23:59:59Z");
        assert!(NewEvent::from_json(&v).is_ok());
        v["source"]["url"] = json!(format!("https://x.org/{}", "Ï".repeat(1000)));
        assert!(NewEvent::from_json(&v).is_ok(), "1014 characters, 2014 bytes");
        v["source"]["url"] = json!(format!("https://x.org/{}", "Ï".repeat(2000)));
        assert!(NewEvent::from_json(&v).is_err());
    }

    #[test]
    fn a_stored_event_reads_back_as_the_event_it_was() {
        let e = NewEvent::from_json(&examples()[4]).unwrap();
        let posted = e.posted_members(Uuid::nil());
        let mut stored: Map<String, Value> = posted.clone();
        for (k, v) in [
            ("seq", json!(9)),
            ("recorded_at", json!("2024-12-01T00:00:00.000000Z")),
            ("recorded_by", json!("x")),
            ("version", json!(3)),
            ("prev_hash", json!("0".repeat(64))),
            ("hash", json!("0".repeat(64))),
        ] {
            stored.insert(k.into(), v);
        }
        let stored: StoredEvent = serde_json::from_value(Value::Object(stored)).unwrap();
        let again = stored.to_new_event().unwrap();
        assert_eq!(again.posted_members(Uuid::nil()), posted);
    }

    #[test]
    fn a_log_kept_by_an_earlier_release_still_reads() {
        // What earlier releases accepted and stored, and posts now refuse.
        let stored = json!({"seq": 9, "id": Uuid::nil(), "type": "casualties_reported", "location": "aleppo",
            "occurred_at": "2024-11-30T10:00:60Z", "recorded_at": "2024-12-01T00:00:00.000000Z", "recorded_by": "x",
            "source": {"name": "\u{200b}", "kind": "witness"}, "data": {"killed": 9_007_199_254_740_992u64},
            "version": 3, "prev_hash": "0".repeat(64), "hash": "0".repeat(64)});
        let stored: StoredEvent = serde_json::from_value(stored).unwrap();
        let again = stored
            .to_new_event()
            .unwrap_or_else(|p| panic!("{:?}", p.field_errors()));
        let mut posted = Value::Object(again.posted_members(Uuid::nil()));
        assert_eq!(posted["occurred_at"], "2024-11-30T10:00:60Z");
        posted["id"] = Value::Null;
        let Err(Problem::Validation(errors)) = NewEvent::from_json(&posted) else {
            panic!("posted anew, it is refused")
        };
        assert_eq!(errors.len(), 1, "{errors:?}");
    }
}
