//! The posted envelope (`NewEvent`): strict parsing (unknown members are
//! refused, so a typo never silently drops data; every refusal names its
//! field), normalisation, and the members stored for it.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::event::*;
use super::ids::Slug;
use super::time::read_time;
use super::validation::{FieldError, Problem};

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
    /// Absent means `instant`.
    pub occurred_precision: Option<TimePrecision>,
    /// Absent means `exact`.
    pub place_precision: Option<PlacePrecision>,
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
    "occurred_precision",
    "place_precision",
    "source",
    "expected_version",
    "data",
];

impl NewEvent {
    /// Parse one posted envelope. Collects every envelope-level error it can find.
    pub fn from_json(value: &Value) -> Result<NewEvent, Problem> {
        NewEvent::read(value, Reading::Posted)
    }

    pub(super) fn read(value: &Value, reading: Reading) -> Result<NewEvent, Problem> {
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

        let id = text_member(obj, "id", "must be a UUID string", &mut errors, |s| {
            Uuid::parse_str(s).map_err(|_| "must be a UUID".to_owned())
        });
        if !obj.contains_key("type") {
            errors.push(FieldError::new("type", "is required"));
        }
        let event_type = text_member(obj, "type", "must be a string", &mut errors, str::parse::<EventType>);

        let location = text_member(obj, "location", "must be a string", &mut errors, Slug::parse);
        let actor = text_member(obj, "actor", "must be a string", &mut errors, Slug::parse);
        let occurred_at = text_member(
            obj,
            "occurred_at",
            "must be an RFC 3339 date-time string",
            &mut errors,
            |s| read_time(s, reading == Reading::Posted),
        );

        let occurred_precision = enum_member::<TimePrecision>(obj, "occurred_precision", &mut errors);
        if let Some(p) = occurred_precision {
            match &occurred_at {
                Some(t) if !p.is_aligned(t) => errors.push(FieldError::new(
                    "occurred_at",
                    format!("with occurred_precision '{p}' must be {}", p.alignment()),
                )),
                None if !obj.contains_key("occurred_at") => {
                    errors.push(FieldError::new("occurred_precision", "is given without occurred_at"))
                }
                _ => {}
            }
        }
        let place_precision = enum_member::<PlacePrecision>(obj, "place_precision", &mut errors);

        let source = match obj.get("source") {
            None => None,
            // serde would also read a struct from an array, by position.
            Some(v) if !v.is_object() => {
                errors.push(FieldError::new("source", "must be a JSON object"));
                None
            }
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
            if place_precision.is_some() && t.is_actor_stream() {
                errors.push(FieldError::new(
                    "place_precision",
                    "is a member of location events only",
                ));
            }
            if !t.is_reference() {
                if !obj.contains_key("occurred_at") {
                    errors.push(FieldError::new("occurred_at", "is required"));
                }
                if !obj.contains_key("source") {
                    errors.push(FieldError::new("source", "is required"));
                }
            }
            let (parent, member_of) = match &data {
                Some(EventData::LocationRegistered(d)) => (d.parent.as_ref(), None),
                Some(EventData::LocationAmended(d)) => (d.parent.as_ref(), None),
                Some(EventData::ActorRegistered(d)) => (None, d.member_of.as_ref()),
                Some(EventData::ActorAmended(d)) => (None, d.member_of.as_ref()),
                _ => (None, None),
            };
            if let (Some(parent), Some(StreamRef::Location(own))) = (parent, &stream) {
                if parent == own {
                    errors.push(FieldError::new("data.parent", "a location cannot be its own parent"));
                }
            }
            if let (Some(member_of), Some(StreamRef::Actor(own))) = (member_of, &stream) {
                if member_of == own {
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
                occurred_precision,
                place_precision,
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
        if let Some(p) = self.occurred_precision {
            m.insert("occurred_precision".into(), Value::String(p.as_str().into()));
        }
        if let Some(p) = self.place_precision {
            m.insert("place_precision".into(), Value::String(p.as_str().into()));
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

/// An optional envelope member holding one of `T`'s names.
fn enum_member<T: FromStr<Err = String>>(
    obj: &Map<String, Value>,
    name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    text_member(obj, name, "must be a string", errors, str::parse::<T>)
}

/// An optional envelope member holding text that `parse` reads; what is
/// wrong with it, if anything, is added to `errors` under its name.
fn text_member<T, E: Into<String>>(
    obj: &Map<String, Value>,
    name: &str,
    not_text: &str,
    errors: &mut Vec<FieldError>,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Option<T> {
    let outcome = match obj.get(name)? {
        Value::String(s) => parse(s).map_err(Into::into),
        _ => Err(not_text.to_owned()),
    };
    outcome.map_err(|m| errors.push(FieldError::new(name, m))).ok()
}

/// The envelope as the decoder reads it: an explicit `null` for an optional
/// member is the same as leaving it out, and every number is the value its
/// stored (RFC 8785) form reads back as: an integral float (5.0, 1e1) is that
/// integer, as JSON Schema sees it too, and -0 is 0.
fn normalise(obj: &Map<String, Value>) -> Map<String, Value> {
    let mut m: Map<String, Value> = obj
        .iter()
        .filter(|(k, v)| {
            !(v.is_null()
                && matches!(
                    k.as_str(),
                    "id" | "occurred_at" | "occurred_precision" | "place_precision" | "source" | "expected_version"
                ))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    m.values_mut().for_each(super::json::as_read_back);
    m
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
            json!({"type": "location_amended", "location": "aleppo", "data": {"names": {"ar": "حلب", "en": "Aleppo"},
                "gazetteer": {"geonames": 170063, "wikidata": "Q41183"},
                "geometry": {"type": "Polygon", "coordinates": [[[37.0, 36.1], [37.3, 36.1], [37.3, 36.3], [37.0, 36.1]]]}}}),
            json!({"type": "actor_amended", "actor": "hts", "data": {"names": {"ar": "هيئة تحرير الشام"}, "gazetteer": {"wikidata": "Q3474155"}}}),
        ]
    }

    /// The fields a refused event names.
    fn refused(v: &Value) -> Vec<String> {
        match NewEvent::from_json(v) {
            Err(Problem::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{v} not refused: {other:?}"),
        }
    }

    #[test]
    fn given_a_precision_when_occurred_at_is_not_the_start_of_its_unit_then_occurred_at_is_named() {
        let mut v = examples()[3].clone();
        v["occurred_precision"] = json!("day");
        v["occurred_at"] = json!("2024-11-30T00:00:00Z");
        let e = NewEvent::from_json(&v).unwrap();
        assert_eq!(e.occurred_precision, Some(TimePrecision::Day));
        assert_eq!(e.posted_members(Uuid::nil())["occurred_precision"], "day");
        // Midnight in Damascus is not midnight in UTC.
        v["occurred_at"] = json!("2024-11-30T00:00:00+03:00");
        assert_eq!(refused(&v), vec!["occurred_at"]);
        v["occurred_precision"] = json!("fortnight");
        assert_eq!(refused(&v), vec!["occurred_precision"]);
        let mut reg = examples()[0].clone();
        reg["occurred_precision"] = json!("year");
        assert_eq!(refused(&reg), vec!["occurred_precision"], "a precision needs its time");
    }

    #[test]
    fn place_precision_belongs_to_location_events() {
        let mut v = examples()[3].clone();
        v["place_precision"] = json!("region");
        assert_eq!(
            NewEvent::from_json(&v).unwrap().place_precision,
            Some(PlacePrecision::Region)
        );
        let mut actor = examples()[1].clone();
        actor["place_precision"] = json!("near");
        assert_eq!(refused(&actor), vec!["place_precision"]);
        v["place_precision"] = json!("city");
        assert_eq!(refused(&v), vec!["place_precision"]);
    }

    #[test]
    fn without_the_new_members_the_stored_form_is_unchanged() {
        for v in examples() {
            let e = NewEvent::from_json(&v).unwrap();
            let posted = e.posted_members(Uuid::nil());
            assert!(!posted.contains_key("occurred_precision") && !posted.contains_key("place_precision"));
        }
    }

    #[test]
    fn given_estimates_then_low_best_high_must_be_ordered() {
        let mut v = examples()[10].clone();
        v["data"] = json!({"killed": 12, "killed_low": 10, "killed_high": 20, "wounded_low": 24});
        assert!(NewEvent::from_json(&v).is_ok());
        for (data, field) in [
            (json!({"killed": 12, "killed_low": 13}), "data.killed_low"),
            (json!({"killed": 12, "killed_high": 11}), "data.killed_high"),
            (json!({"wounded_low": 5, "wounded_high": 4}), "data.wounded_high"),
            (json!({"wounded_low": -1}), "data.wounded_low"),
        ] {
            v["data"] = data;
            assert_eq!(refused(&v), vec![field.to_owned()]);
        }
    }

    #[test]
    fn given_reference_members_then_bad_values_name_their_field() {
        let mut v = examples()[0].clone();
        v["data"]["names"] = json!({"en_GB": "Aleppo"});
        assert_eq!(refused(&v), vec!["data.names.en_GB"]);
        let mut v = examples()[0].clone();
        v["data"]["kind"] = json!("neighbourhood");
        v["data"]["geometry"] = json!({"type": "Point", "coordinates": [37.1, 91]});
        assert_eq!(refused(&v), vec!["data.geometry.coordinates[1]"]);
        v["data"]["geometry"] =
            json!({"type": "Polygon", "coordinates": [[[37.0, 36.1], [37.3, 36.1], [37.3, 36.3], [37.0, 36.3]]]});
        assert_eq!(refused(&v), vec!["data.geometry.coordinates[0]"]);
        let mut v = examples()[1].clone();
        v["data"]["gazetteer"] = json!({"wikidata": "L123"});
        assert_eq!(refused(&v), vec!["data.gazetteer.wikidata"]);
        let empty = json!({"type": "location_amended", "location": "aleppo", "data": {}});
        assert_eq!(refused(&empty), vec!["data"]);
        let own = json!({"type": "location_amended", "location": "aleppo", "data": {"parent": "aleppo"}});
        assert_eq!(refused(&own), vec!["data.parent"]);
        let half = json!({"type": "location_amended", "location": "aleppo", "data": {"lat": 36.2}});
        assert_eq!(refused(&half), vec!["data.lon"]);
    }

    #[test]
    fn amendments_like_registrations_need_no_time_or_source() {
        let v = examples()[13].clone();
        let e = NewEvent::from_json(&v).unwrap();
        assert_eq!(e.stream, StreamRef::Location(Slug::parse("aleppo").unwrap()));
        let e = NewEvent::from_json(&examples()[14]).unwrap();
        assert_eq!(e.stream, StreamRef::Actor(Slug::parse("hts").unwrap()));
    }

    #[test]
    fn every_event_type_parses_and_its_data_round_trips() {
        let examples = examples();
        assert_eq!(examples.len(), EventType::ALL.len());
        for v in examples {
            let e = NewEvent::from_json(&v).unwrap_or_else(|p| panic!("{v}: {:?}", p.field_errors()));
            assert_eq!(e.event_type.as_str(), v["type"]);
            let mut posted = v["data"].clone();
            crate::domain::json::as_read_back(&mut posted);
            assert_eq!(
                e.data.to_value(),
                posted,
                "data is stored as posted (37.0 is 37, as RFC 8785 writes it)"
            );
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
            // A struct read from an array by position would drop its member names.
            ("source", json!({"source": ["Reuters", "news_agency"]})),
            ("data.actor", json!({"data": {"actor": ["hts"]}})),
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
            ("hash", json!("1".repeat(64))),
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
