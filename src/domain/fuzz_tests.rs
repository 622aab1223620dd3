//! Property tests of the strict JSON reader, the decoder and the validator
//! with arbitrary input: nothing panics, whatever is accepted is a well-formed
//! event that reads back as itself, exactly, through its stored (RFC 8785)
//! form, and JSON that readers could read differently is refused.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::event::NewEvent;
use super::json::{self, JsonError};
use super::validation::Problem;

/// Keys that reach every branch of the decoder, plus noise.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            super::event::ENVELOPE_MEMBERS
                .iter()
                .copied()
                .chain([
                    "name",
                    "kind",
                    "parent",
                    "lat",
                    "lon",
                    "aliases",
                    "member_of",
                    "actors",
                    "defender",
                    "attacker",
                    "temporary",
                    "reason",
                    "provider",
                    "supported",
                    "killed",
                    "wounded",
                    "approximate",
                    "summary",
                    "event_id",
                    "claimant",
                    "url",
                    "reliability",
                    "credibility",
                ])
                .collect::<Vec<_>>(),
        )
        .prop_map(str::to_owned),
        "[a-z_]{0,8}",
        any::<String>(),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ((json::MAX_EXACT_INTEGER - 2)..=(json::MAX_EXACT_INTEGER + 2)).prop_map(Value::from),
        prop::sample::select(vec![-0.0, 5e-324, 36.0, 1e21]).prop_map(Value::from),
        prop::sample::select(vec![
            "\u{200b}",
            "\u{feff} \u{2060}",
            "2024-11-30T10:00:60Z",
            "2024-11-30T10:00:00.1234567891Z",
            "aleppo",
            "hts",
            "saa",
            "forces_entered",
            "location_registered",
            "actor_registered",
            "event_retracted",
            "2024-11-30T10:00:00Z",
            "2024-11-30",
            "city",
            "official",
            "A",
            "G",
            "",
            "0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        any::<String>().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn valid() -> Vec<Value> {
    let src =
        json!({"name": "Reuters", "kind": "news_agency", "claimant": "saa", "reliability": "B", "credibility": 2});
    vec![
        json!({"type": "location_registered", "location": "aleppo", "data": {"name": "Aleppo", "kind": "city", "parent": "syria", "lat": 36.2, "lon": 37.1}}),
        json!({"type": "actor_registered", "actor": "hts", "data": {"name": "HTS", "kind": "non_state_group", "aliases": ["x"]}}),
        json!({"type": "clashes_reported", "location": "aleppo", "occurred_at": "2024-11-30T10:00:00Z", "source": src, "data": {"actors": ["hts", "saa"]}}),
        json!({"type": "casualties_reported", "location": "aleppo", "occurred_at": "2024-11-30T10:00:00Z", "source": src, "data": {"killed": 3, "approximate": true}}),
        json!({"type": "event_retracted", "location": "aleppo", "occurred_at": "2024-11-30T10:00:00Z", "source": src, "expected_version": 4, "data": {"event_id": "0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b", "reason": "dup"}}),
    ]
}

/// Replace, add or remove one member somewhere in a valid event.
fn mutated() -> impl Strategy<Value = Value> {
    (
        0..valid().len(),
        prop::collection::vec((key(), json_value(), 0u8..4), 1..4),
    )
        .prop_map(|(i, edits)| {
            let mut v = valid()[i].clone();
            for (k, val, how) in edits {
                let target = match how {
                    0 => v.as_object_mut(),
                    1 => v.get_mut("data").and_then(Value::as_object_mut),
                    2 => v.get_mut("source").and_then(Value::as_object_mut),
                    _ => {
                        if let Some(m) = v.as_object_mut() {
                            m.remove(&k);
                        }
                        None
                    }
                };
                if let Some(m) = target {
                    m.insert(k, val);
                }
            }
            v
        })
}

/// Whatever the decoder accepts must be a well-formed event that reads back as
/// itself, exactly (`-0.0` is not `0`), from the canonical text it is stored
/// as; whatever it refuses must say where.
fn decode_holds(v: &Value) -> Result<(), TestCaseError> {
    match NewEvent::from_json(v) {
        Ok(e) => {
            let id = e.id.unwrap_or_else(uuid::Uuid::nil);
            let mut posted = e.posted_members(id);
            if let Some(ev) = e.expected_version {
                posted.insert("expected_version".into(), ev.into());
            }
            let stored = super::jcs::to_vec(&Value::Object(posted));
            let read = json::parse(&stored);
            prop_assert!(
                read.is_ok(),
                "accepted {v} but its stored form is not read back: {read:?}"
            );
            let again = NewEvent::from_json(&read.unwrap());
            prop_assert!(again.is_ok(), "accepted {v} but its stored form is refused: {again:?}");
            let again = again.unwrap();
            prop_assert_eq!(format!("{:?}", again.data), format!("{:?}", &e.data));
            prop_assert_eq!(again.stream, e.stream);
            prop_assert_eq!(again.occurred_at, e.occurred_at);
            prop_assert_eq!(again.expected_version, e.expected_version);
        }
        Err(Problem::Validation(errors)) => prop_assert!(!errors.is_empty(), "a refusal names at least one field"),
        Err(other) => prop_assert!(false, "shape checks only give validation errors, got {other:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_json_never_panics_the_decoder(v in json_value()) {
        decode_holds(&v)?;
    }

    #[test]
    fn mutated_events_are_accepted_whole_or_refused_with_fields(v in mutated()) {
        decode_holds(&v)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_body_parser(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(v) = json::parse(&bytes) {
            decode_holds(&v)?;
        }
    }

    #[test]
    fn truncated_valid_events_never_panic(i in 0..5usize, cut in 0.0f64..1.0) {
        let text = valid()[i].to_string();
        let end = (text.len() as f64 * cut) as usize;
        if let Ok(v) = json::parse(&text.as_bytes()[..end]) {
            decode_holds(&v)?;
        }
    }

    #[test]
    fn a_member_given_twice_is_refused_wherever_it_is(v in mutated(), pick in any::<prop::sample::Index>()) {
        let mut objects = 0;
        count_objects(&v, &mut objects);
        let target = pick.index(objects.max(1));
        let mut text = String::new();
        let mut seen = 0;
        write_doubling(&v, target, &mut seen, &mut text);
        let read = json::parse(text.as_bytes());
        if text.len() == v.to_string().len() {
            prop_assert!(read.is_ok(), "{text}: {read:?}");
        } else {
            prop_assert!(
                matches!(&read, Err(JsonError::Malformed(m)) if m.starts_with("duplicate member")),
                "{text}: {read:?}"
            );
        }
    }

    #[test]
    fn numbers_in_any_spelling_read_as_their_exact_value_or_are_refused(
        f in any::<f64>().prop_filter("finite", |f| f.is_finite()),
        digits in 0usize..25,
        exp in -400i32..400,
    ) {
        for text in [format!("{f:e}"), format!("{f:.digits$e}"), format!("{f}"), format!("{}e{exp}", f.abs().trunc())] {
            match json::parse(text.as_bytes()) {
                Ok(v) => {
                    // What is stored (RFC 8785) reads back as the same value, and
                    // is the value that was written.
                    let stored = String::from_utf8(super::jcs::to_vec(&v)).unwrap();
                    let back = json::parse(stored.as_bytes()).unwrap();
                    prop_assert_eq!(back.as_f64().map(f64::to_bits), v.as_f64().map(f64::to_bits), "{} -> {}", text, stored);
                    let written: f64 = text.parse().unwrap();
                    prop_assert_eq!(v.as_f64(), Some(written), "{}", text);
                }
                Err(JsonError::Inexact { .. }) => {}
                Err(e) => prop_assert!(false, "{text}: {e}"),
            }
        }
    }
}

fn count_objects(v: &Value, n: &mut usize) {
    match v {
        Value::Object(m) => {
            *n += 1;
            m.values().for_each(|x| count_objects(x, n));
        }
        Value::Array(a) => a.iter().for_each(|x| count_objects(x, n)),
        _ => {}
    }
}

/// `v` as JSON text, with the first member of its `target`-th object (in
/// document order) written twice.
fn write_doubling(v: &Value, target: usize, seen: &mut usize, out: &mut String) {
    match v {
        Value::Object(m) => {
            let doubled = *seen == target;
            *seen += 1;
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if doubled && i == 0 {
                    out.push_str(&format!("{}:{},", Value::String(k.clone()), x));
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_doubling(x, target, seen, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_doubling(x, target, seen, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[test]
fn every_valid_seed_decodes() {
    for v in valid() {
        assert!(NewEvent::from_json(&v).is_ok(), "{v}");
    }
}
