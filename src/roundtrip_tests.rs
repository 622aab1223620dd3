//! Every event the service accepts survives the whole life of a log unchanged:
//! read from the text a client sends, appended to a real store, served, retried,
//! streamed, exported, imported into a fresh store and served again, byte for
//! byte, and both logs verify.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::audit::verify_chain;
use crate::domain::json::{self, MAX_EXACT_INTEGER};
use crate::domain::{NewEvent, Problem};
use crate::ledger::{Appended, Ledger};

/// A number as a client might spell it, as JSON text.
fn spelt(x: f64, how: u8) -> String {
    match how {
        0 => ryu_js::Buffer::new().format_finite(x).to_owned(),
        1 => format!("{x:?}"),
        2 => format!("{x:e}"),
        3 => format!("{x:.3}"),
        _ => {
            let plain = format!("{x}");
            if plain.contains('.') {
                plain + "0"
            } else {
                plain + ".0"
            }
        }
    }
}

fn coordinate(max: f64) -> impl Strategy<Value = f64> {
    prop_oneof![
        -max..=max,
        (-max as i64..=max as i64).prop_map(|i| i as f64),
        prop::sample::select(vec![0.0, -0.0, max, -max, 1e-7, 5e-324, 1e-320, 36.2021, 0.1 + 0.2]),
    ]
}

fn count() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..100u64,
        (MAX_EXACT_INTEGER - 3)..=(MAX_EXACT_INTEGER + 3),
        any::<u64>(),
    ]
}

/// An integer as JSON text: plain, or as an integral float.
fn integer(n: u64, how: u8) -> String {
    match how {
        0 | 1 => n.to_string(),
        2 => format!("{n}.0"),
        _ => format!("{:e}", n as f64),
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{1,12}",
        any::<String>(),
        prop::collection::vec(
            prop::sample::select(vec![
                '\u{200b}',
                '\u{feff}',
                ' ',
                '\u{a0}',
                'a',
                'ب',
                '\u{301}',
                '\u{1f600}',
                '"',
                '\\',
                '\u{0}'
            ]),
            0..6
        )
        .prop_map(|c| c.into_iter().collect()),
    ]
}

fn time() -> impl Strategy<Value = String> {
    (
        0..10000i32,
        1..=12u32,
        1..=28u32,
        0..24u32,
        0..=60u32,
        0..=10usize,
        0..100_000_000_000u64,
        -23..=23i32,
    )
        .prop_map(|(y, mo, d, h, s, digits, frac, off)| {
            let frac = if digits == 0 {
                String::new()
            } else {
                format!(".{:0>11}", frac)[..digits + 1].to_owned()
            };
            let zone = if off == 0 {
                "Z".to_owned()
            } else {
                format!("{:+03}:30", off)
            };
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{s:02}:{s:02}{frac}{zone}")
        })
}

/// The text of one event a client could post, accepted or not.
fn posted() -> impl Strategy<Value = String> {
    let source = json!({"name": "Reuters", "kind": "news_agency"});
    prop_oneof![
        (coordinate(90.0), coordinate(180.0), 0..5u8, 0..5u8, text(), "[a-z]{1,8}").prop_map(|(lat, lon, a, b, name, id)| {
            json!({"type": "location_registered", "location": format!("l-{id}"), "data": {"name": name, "kind": "town", "lat": "@lat", "lon": "@lon"}})
                .to_string()
                .replace(r#""@lat""#, &spelt(lat, a))
                .replace(r#""@lon""#, &spelt(lon, b))
        }),
        (count(), count(), 0..4u8, 0..4u8, time(), prop::option::of(any::<u128>()), prop::option::of(0..4u64), prop::option::of(1..=6u64))
            .prop_map(move |(k, w, a, b, t, id, version, credibility)| {
                let mut e = json!({"type": "casualties_reported", "location": "aleppo", "occurred_at": t,
                                   "source": source.clone(), "data": {"actor": "hts", "killed": "@k", "wounded": "@w"}});
                if let Some(id) = id {
                    e["id"] = json!(uuid::Uuid::from_u128(id).to_string());
                }
                if let Some(v) = version {
                    e["expected_version"] = json!(v);
                }
                if let Some(c) = credibility {
                    e["source"]["credibility"] = json!(c);
                }
                e.to_string().replace(r#""@k""#, &integer(k, a)).replace(r#""@w""#, &integer(w, b))
            }),
        (text(), time(), any::<u128>()).prop_map(|(summary, t, id)| {
            json!({"id": uuid::Uuid::from_u128(id).to_string(), "type": "report", "location": "aleppo", "occurred_at": t,
                   "source": {"name": "Witness", "kind": "witness"}, "data": {"summary": summary}})
            .to_string()
        }),
        (text(), prop::collection::vec(text(), 0..3)).prop_map(|(name, aliases)| {
            json!({"type": "actor_registered", "actor": "saa", "data": {"name": name, "kind": "state_forces", "aliases": aliases}})
                .to_string()
        }),
    ]
}

/// The events every case starts from.
fn basics() -> Vec<String> {
    [
        json!({"type": "actor_registered", "actor": "hts", "data": {"name": "HTS", "kind": "non_state_group"}}),
        json!({"type": "location_registered", "location": "aleppo", "data": {"name": "Aleppo", "kind": "city"}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect()
}

fn served(ledger: &Ledger) -> Vec<String> {
    let head = ledger.store().head().seq;
    ledger
        .store()
        .scan(1)
        .take(head as usize)
        .map(|e| serde_json::to_string(&e.expect("stored events read")).expect("serializes"))
        .collect()
}

/// Open a store just written by another handle. sled releases its file lock
/// once its background writes finish, a moment after the last handle drops.
fn reopen(dir: &std::path::Path) -> Ledger {
    const TRIES: usize = 500;
    for _ in 0..TRIES {
        match Ledger::open(dir) {
            Ok(ledger) => return ledger,
            Err(e) if e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => panic!("the imported store does not open: {e}"),
        }
    }
    panic!("the imported store stayed locked")
}

fn life_of_a_log(bodies: &[String]) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().expect("temp dir");
    let ledger = Ledger::open(&tmp.path().join("a")).expect("store opens");
    let mut feed = ledger.subscribe();
    let mut accepted = Vec::new();
    for body in basics().iter().chain(bodies) {
        let event = match json::parse(body.as_bytes()) {
            Ok(v) => NewEvent::from_json(&v),
            Err(json::JsonError::Inexact { field, message }) => Err(Problem::invalid(field, message)),
            Err(e) => return Err(TestCaseError::fail(format!("{body}: generated JSON is malformed: {e}"))),
        };
        let Ok(event) = event else { continue };
        if let Ok(Appended::Created(_)) = ledger.append_blocking(vec![event.clone()], false, "fuzz".into()) {
            accepted.push(event);
        }
    }
    let before = served(&ledger);
    // Every integer served is one every parser reads exactly.
    for text in &before {
        let v = json::parse(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("served {text}: {e}")))?;
        let mut inexact = Vec::new();
        json::inexact_integers(&v, "", &mut inexact);
        prop_assert!(inexact.is_empty(), "served {text} has inexact integers {inexact:?}");
    }
    // The stored event is the event that was accepted (the fold's facts come from it).
    for (i, event) in accepted.iter().enumerate() {
        let stored = ledger.store().get(i as u64 + 1).expect("reads").expect("stored");
        let again = stored
            .to_new_event()
            .map_err(|p| TestCaseError::fail(format!("{stored:?}: {p:?}")))?;
        prop_assert_eq!(format!("{:?}", again.data), format!("{:?}", event.data));
        prop_assert_eq!(again.occurred_at, event.occurred_at);
        // A retry of a posted id is a retry.
        if event.id.is_some() {
            let retried = ledger.append_blocking(vec![event.clone()], false, "fuzz".into());
            prop_assert!(
                matches!(retried, Ok(Appended::Retried(_))),
                "retry of {event:?}: {retried:?}"
            );
        }
    }
    // The live feed carries the events a read serves (the writer hands a
    // group to the feed just after answering it).
    let mut fed = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fed.len() < before.len() && std::time::Instant::now() < deadline {
        match feed.try_recv() {
            Ok(group) => fed.extend(
                group
                    .events
                    .iter()
                    .map(|e| serde_json::to_string(e).expect("serializes")),
            ),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    }
    prop_assert_eq!(&fed, &before);
    let report = verify_chain(ledger.store(), before.len() as u64, None).expect("store reads");
    prop_assert!(report.is_ok(), "{report:?}");
    let lines: Vec<String> = ledger
        .store()
        .scan(1)
        .take(before.len())
        .map(|e| Ledger::export_line(&e.expect("reads")))
        .collect();
    ledger.close();
    drop(ledger);

    let target = tmp.path().join("b");
    let imported = Ledger::import(
        &crate::store::Location::Sled(target.clone()),
        lines.iter().map(|l| Ledger::import_line(l)),
    );
    prop_assert!(imported.is_ok(), "import: {imported:?}");
    let restored = reopen(&target);
    prop_assert_eq!(served(&restored), before);
    let report = verify_chain(restored.store(), lines.len() as u64, None).expect("store reads");
    prop_assert!(report.is_ok(), "{report:?}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_accepted_event_survives_store_export_import_and_serve(bodies in prop::collection::vec(posted(), 1..12)) {
        life_of_a_log(&bodies)?;
    }
}
