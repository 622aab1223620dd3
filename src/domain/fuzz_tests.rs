//! Property tests of the decoder and validator with arbitrary input: nothing
//! panics, and whatever is accepted is a well-formed event that reads back as
//! itself.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::event::NewEvent;
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
        prop::sample::select(vec![
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
/// itself; whatever it refuses must say where.
fn decode_holds(v: &Value) -> Result<(), TestCaseError> {
    match NewEvent::from_json(v) {
        Ok(e) => {
            let id = e.id.unwrap_or_else(uuid::Uuid::nil);
            let mut posted = e.posted_members(id);
            if let Some(ev) = e.expected_version {
                posted.insert("expected_version".into(), ev.into());
            }
            let again = NewEvent::from_json(&Value::Object(posted));
            prop_assert!(again.is_ok(), "accepted {v} but its normal form is refused: {again:?}");
            let again = again.unwrap();
            prop_assert_eq!(again.data, e.data);
            prop_assert_eq!(again.stream, e.stream);
            prop_assert_eq!(again.occurred_at, e.occurred_at);
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
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            decode_holds(&v)?;
        }
    }

    #[test]
    fn truncated_valid_events_never_panic(i in 0..5usize, cut in 0.0f64..1.0) {
        let text = valid()[i].to_string();
        let end = (text.len() as f64 * cut) as usize;
        if let Ok(v) = serde_json::from_str::<Value>(&text[..end]) {
            decode_holds(&v)?;
        }
    }
}

#[test]
fn every_valid_seed_decodes() {
    for v in valid() {
        assert!(NewEvent::from_json(&v).is_ok(), "{v}");
    }
}
