//! Given/when/then tests of the projection, and the model test: for random
//! histories, the live projection equals one rebuilt from the log and the fold
//! recomputed from scratch, for any arrival order of the same events, with
//! time precision, casualty ranges and amendments of reference data.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::domain::fact::{Change, Fact};
use crate::domain::integrity::event_hash;
use crate::domain::rules;

/// A log kept in memory: events checked by the domain rules, chained, applied.
#[derive(Default)]
struct Log {
    projection: Projection,
    events: Vec<StoredEvent>,
}

impl Log {
    fn append(&mut self, v: Value) -> Result<StoredEvent, crate::domain::Problem> {
        let e = NewEvent::from_json(&v)?;
        rules::check(&e, &self.projection)?;
        let seq = self.events.len() as u64 + 1;
        let id = e.id.unwrap_or_else(|| Uuid::from_u128(seq as u128));
        let posted = e.posted_members(id);
        let mut stored = StoredEvent {
            seq,
            id,
            event_type: e.event_type,
            location: posted
                .get("location")
                .map(|v| Slug::parse(v.as_str().unwrap()).unwrap()),
            actor: posted.get("actor").map(|v| Slug::parse(v.as_str().unwrap()).unwrap()),
            occurred_at: e.occurred_at.map(crate::domain::time::UtcTime::occurred),
            occurred_precision: e.occurred_precision,
            place_precision: e.place_precision,
            recorded_at: crate::domain::time::UtcTime::parse("2024-12-01T00:00:00.000000Z").unwrap(),
            recorded_by: "test".into(),
            source: e.source.clone(),
            data: e.data.to_value(),
            version: self.projection.stream_version(&e.stream) + 1,
            prev_hash: self.events.last().map_or(GENESIS_HASH, |p| p.hash),
            hash: GENESIS_HASH,
        };
        stored.hash = event_hash(&stored);
        self.projection.apply(&stored, &e).expect("checked events apply");
        self.events.push(stored.clone());
        Ok(stored)
    }

    fn ok(&mut self, v: Value) -> StoredEvent {
        self.append(v).expect("accepted")
    }

    fn rebuilt(&self) -> Projection {
        let mut p = Projection::default();
        for e in &self.events {
            p.apply(e, &e.to_new_event().unwrap()).unwrap();
        }
        p
    }

    /// Folded as start-up folds: from the facts alone, in bulk.
    fn rebuilt_in_bulk(&self) -> Projection {
        let mut p = Projection::default();
        p.begin_bulk();
        for e in &self.events {
            let fact = Fact::of(e.id, e.version, &e.to_new_event().unwrap());
            p.apply_fact(e.seq, &Fact::from_bytes(&fact.to_bytes()).unwrap())
                .unwrap();
        }
        p.end_bulk();
        if let Some(last) = self.events.last() {
            p.set_head(&last.hash, &last.recorded_at);
        }
        p
    }

    fn view(&self, id: &str, point: Point) -> LocationView {
        self.projection
            .location_view(&Slug::parse(id).unwrap(), point, now())
            .expect("registered")
    }
}

fn src() -> Value {
    json!({"name": "Al Jazeera", "kind": "news_agency"})
}

fn dev(ty: &str, loc: &str, at: &str, data: Value) -> Value {
    json!({"type": ty, "location": loc, "occurred_at": at, "source": src(), "data": data})
}

/// Given: actors saa, hts; Aleppo with two districts.
fn given_aleppo() -> Log {
    let mut log = Log::default();
    for a in ["saa", "hts", "russia"] {
        log.ok(json!({"type": "actor_registered", "actor": a, "data": {"name": a, "kind": "other"}}));
    }
    log.ok(json!({"type": "location_registered", "location": "aleppo", "data": {"name": "Aleppo", "kind": "city"}}));
    for d in ["aleppo-central", "aleppo-south"] {
        log.ok(json!({"type": "location_registered", "location": d, "data": {"name": d, "kind": "district", "parent": "aleppo"}}));
    }
    log
}

fn live() -> Point {
    Point::default()
}

/// The clock that `settled` is judged by when a point has no `as_of`.
fn now() -> chrono::DateTime<Utc> {
    "2025-01-01T00:00:00Z".parse().unwrap()
}

fn as_of(t: &str) -> Point {
    Point {
        as_of: Some(t.parse().unwrap()),
        at_seq: None,
    }
}

#[test]
fn given_control_when_forces_enter_and_the_holder_withdraws_then_control_passes() {
    let mut log = given_aleppo();
    log.ok(dev(
        "control_established",
        "aleppo",
        "2016-12-22T00:00:00Z",
        json!({"actor": "saa"}),
    ));
    let entered = log.ok(dev(
        "forces_entered",
        "aleppo",
        "2024-11-29T00:00:00Z",
        json!({"actor": "hts"}),
    ));
    let v = log.view("aleppo", live());
    assert_eq!(
        (v.control.status, v.control.changed_by),
        ("contested", Some(entered.id))
    );
    let mut withdrawal = dev(
        "forces_withdrew",
        "aleppo",
        "2024-11-30T00:00:00Z",
        json!({"actor": "saa", "temporary": true}),
    );
    withdrawal["source"] = json!({"name": "General command", "kind": "official", "claimant": "saa"});
    let w = log.ok(withdrawal);
    let v = log.view("aleppo", live());
    assert_eq!(v.control.status, "controlled");
    assert_eq!(v.control.controller.as_ref().map(Slug::as_str), Some("hts"));
    assert_eq!(v.control.changed_by, Some(w.id));
    assert_eq!(v.control.confidence, Some("claimed"));
    assert_eq!(v.control.since.as_deref(), Some("2024-11-30T00:00:00Z"));
    assert_eq!(v.version, 4);
    assert_eq!(
        log.view("aleppo", as_of("2024-11-29T12:00:00Z")).control.status,
        "contested"
    );
}

#[test]
fn given_a_later_status_when_an_earlier_report_arrives_then_it_slots_in_by_occurred_at() {
    let mut log = given_aleppo();
    log.ok(dev(
        "control_established",
        "aleppo",
        "2024-11-30T00:00:00Z",
        json!({"actor": "hts"}),
    ));
    log.ok(dev(
        "control_established",
        "aleppo",
        "2024-11-01T00:00:00Z",
        json!({"actor": "saa"}),
    ));
    assert_eq!(log.view("aleppo", live()).control.controller.unwrap().as_str(), "hts");
    assert_eq!(
        log.view("aleppo", as_of("2024-11-15T00:00:00Z"))
            .control
            .controller
            .unwrap()
            .as_str(),
        "saa"
    );
}

#[test]
fn equal_occurred_at_is_ordered_by_seq() {
    let mut log = given_aleppo();
    log.ok(dev(
        "control_established",
        "aleppo",
        "2024-11-30T00:00:00Z",
        json!({"actor": "hts"}),
    ));
    log.ok(dev(
        "control_established",
        "aleppo",
        "2024-11-30T00:00:00Z",
        json!({"actor": "saa"}),
    ));
    assert_eq!(log.view("aleppo", live()).control.controller.unwrap().as_str(), "saa");
}

#[test]
fn given_a_retraction_then_the_target_stops_counting_from_the_retractions_seq_on() {
    let mut log = given_aleppo();
    log.ok(dev(
        "control_established",
        "aleppo",
        "2024-11-01T00:00:00Z",
        json!({"actor": "saa"}),
    ));
    let wrong = log.ok(dev(
        "forces_entered",
        "aleppo",
        "2024-11-29T00:00:00Z",
        json!({"actor": "hts"}),
    ));
    let r = log.ok(dev(
        "event_retracted",
        "aleppo",
        "2024-12-05T00:00:00Z",
        json!({"event_id": wrong.id, "reason": "misreported"}),
    ));
    assert_eq!(log.view("aleppo", live()).control.status, "controlled");
    assert_eq!(
        log.view("aleppo", as_of("2024-11-30T00:00:00Z")).control.status,
        "controlled"
    );
    let before = Point {
        as_of: None,
        at_seq: Some(r.seq - 1),
    };
    assert_eq!(log.view("aleppo", before).control.status, "contested");
    assert!(matches!(
        log.append(dev(
            "event_retracted",
            "aleppo",
            "2024-12-06T00:00:00Z",
            json!({"event_id": wrong.id, "reason": "again"})
        )),
        Err(crate::domain::Problem::AlreadyRetracted { .. })
    ));
}

#[test]
fn subdivisions_follow_the_childrens_status_at_the_same_point() {
    let mut log = given_aleppo();
    let v = log.view("aleppo", live());
    assert_eq!(v.subdivisions.as_ref().map(|s| (s.total, s.unknown)), Some((2, 2)));
    assert!(log.view("aleppo-central", live()).subdivisions.is_none());
    log.ok(dev(
        "control_established",
        "aleppo-central",
        "2024-11-30T00:00:00Z",
        json!({"actor": "hts"}),
    ));
    log.ok(dev(
        "clashes_reported",
        "aleppo-south",
        "2024-11-30T00:00:00Z",
        json!({"actors": ["hts", "saa"]}),
    ));
    let s = log.view("aleppo", live()).subdivisions.unwrap();
    assert_eq!((s.total, s.unknown, s.contested), (2, 0, 1));
    assert_eq!(s.by_controller.get(&Slug::parse("hts").unwrap()), Some(&1));
    let earlier = log.view("aleppo", as_of("2024-11-29T00:00:00Z")).subdivisions.unwrap();
    assert_eq!((earlier.unknown, earlier.contested), (2, 0));
    let at3 = Point {
        as_of: None,
        at_seq: Some(4),
    };
    assert!(
        log.view("aleppo", at3).subdivisions.is_none(),
        "no children registered at seq 4"
    );
}

#[test]
fn actors_controls_and_present_in_follow_the_statuses() {
    let mut log = given_aleppo();
    log.ok(dev(
        "control_established",
        "aleppo",
        "2024-11-01T00:00:00Z",
        json!({"actor": "saa"}),
    ));
    log.ok(dev(
        "clashes_reported",
        "aleppo-south",
        "2024-11-30T00:00:00Z",
        json!({"actors": ["hts", "saa"]}),
    ));
    let saa = log.projection.actor_view(&Slug::parse("saa").unwrap(), live()).unwrap();
    assert_eq!(
        saa.controls.iter().map(Slug::as_str).collect::<Vec<_>>(),
        vec!["aleppo"]
    );
    assert_eq!(
        saa.present_in.iter().map(Slug::as_str).collect::<Vec<_>>(),
        vec!["aleppo", "aleppo-south"]
    );
    let then = log
        .projection
        .actor_view(&Slug::parse("saa").unwrap(), as_of("2024-11-15T00:00:00Z"))
        .unwrap();
    assert_eq!(
        then.present_in.iter().map(Slug::as_str).collect::<Vec<_>>(),
        vec!["aleppo"]
    );
}

#[test]
fn registrations_hold_for_every_as_of_but_not_before_their_seq() {
    let log = given_aleppo();
    assert!(log
        .projection
        .location_view(&Slug::parse("aleppo").unwrap(), as_of("1900-01-01T00:00:00Z"), now())
        .is_some());
    let before = Point {
        as_of: None,
        at_seq: Some(3),
    };
    assert!(log
        .projection
        .location_view(&Slug::parse("aleppo").unwrap(), before, now())
        .is_none());
}

// ---- the model test ----

const ACTORS: [&str; 4] = ["a0", "a1", "a2", "a3"];
const LOCATIONS: [&str; 3] = ["l0", "l1", "l2"];

#[derive(Clone, Debug)]
struct Dev {
    location: usize,
    kind: u8,
    actors: (usize, usize),
    retract: bool,
    /// 0: instant, 1: hour, 2: day (its time then the start of a unit).
    precision: u8,
    /// Which bounds a casualty report gives: 0 none, 1 both, 2 a low bound only.
    bounds: u8,
}

fn dev_strategy() -> impl Strategy<Value = Dev> {
    (
        0..LOCATIONS.len(),
        0u8..8,
        (0..ACTORS.len(), 0..ACTORS.len()),
        prop::bool::weighted(0.15),
        0u8..3,
        0u8..3,
    )
        .prop_map(|(location, kind, actors, retract, precision, bounds)| Dev {
            location,
            kind,
            actors,
            retract,
            precision,
            bounds,
        })
}

/// Amendments of reference data, none of which can close a cycle: l2 moves
/// between l0 and l1, l1 and a2 are renamed, l0 gains a shape and ids, a2
/// joins a0 or a1.
const AMENDMENTS: usize = 6;

fn amendment_json(kind: usize, n: usize) -> Value {
    match kind {
        0 => json!({"type": "location_amended", "location": "l2", "data": {"parent": "l1"}}),
        1 => json!({"type": "location_amended", "location": "l2", "data": {"parent": "l0", "lat": 36.0, "lon": 37.0}}),
        2 => json!({"type": "location_amended", "location": "l1",
            "data": {"name": format!("L1 ({n})"), "names": {"ar": format!("حَلَب {n}")}, "kind": "neighbourhood"}}),
        3 => json!({"type": "location_amended", "location": "l0",
            "data": {"gazetteer": {"geonames": 100 + n}, "geometry": {"type": "Point", "coordinates": [37.0, 36.0 + n as f64 / 100.0]}}}),
        4 => {
            json!({"type": "actor_amended", "actor": "a2", "data": {"member_of": "a0", "aliases": [format!("alias {n}")]}})
        }
        _ => {
            json!({"type": "actor_amended", "actor": "a2", "data": {"member_of": "a1", "names": {"en": format!("A2 {n}")}}})
        }
    }
}

fn dev_json(i: usize, d: &Dev, minute: usize) -> Value {
    let (a, b) = (ACTORS[d.actors.0], ACTORS[d.actors.1]);
    let b = if a == b {
        ACTORS[(d.actors.0 + 1) % ACTORS.len()]
    } else {
        b
    };
    let killed = minute % 7;
    let casualties = match d.bounds {
        0 => json!({"killed": killed, "actor": a}),
        1 => json!({"killed": killed, "killed_low": killed / 2, "killed_high": killed + 3, "wounded_high": 4}),
        _ => json!({"killed_low": killed, "wounded": 1, "wounded_low": 1}),
    };
    let (ty, data) = match d.kind {
        0 => ("control_established", json!({"actor": a})),
        1 => ("forces_entered", json!({"actor": a})),
        2 => ("forces_withdrew", json!({"actor": a})),
        3 => ("clashes_reported", json!({"actors": [a, b]})),
        4 => ("attack_repelled", json!({"defender": a, "attacker": b})),
        5 => ("facility_closed", json!({})),
        6 => ("casualties_reported", casualties),
        _ => ("facility_reopened", json!({})),
    };
    let (secs, precision) = time_of(d.precision, minute);
    let at = chrono::DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
    let mut v = dev(ty, LOCATIONS[d.location], &crate::domain::event::format_time(&at), data);
    v["id"] = json!(Uuid::from_u128(1_000 + i as u128));
    if d.precision > 0 {
        v["occurred_precision"] = json!(precision);
        v["place_precision"] = json!("near");
    }
    if i % 3 == 0 {
        v["source"] = json!({"name": "party", "kind": "party_statement", "claimant": a});
    }
    v
}

/// Distinct times for distinct minutes, whatever the precision: instants
/// from 2024-11-19T07:06:40Z a minute apart, hours from 08:00 that day, days
/// from 21 November.
fn time_of(precision: u8, minute: usize) -> (i64, &'static str) {
    const INSTANT0: i64 = 1_732_000_000;
    const HOUR0: i64 = 1_732_003_200;
    const DAY0: i64 = 1_732_147_200;
    let m = minute as i64;
    match precision {
        0 => (INSTANT0 + 60 * m, "instant"),
        1 => (HOUR0 + 3_600 * m, "hour"),
        _ => (DAY0 + 86_400 * m, "day"),
    }
}

fn registered() -> Log {
    let mut log = Log::default();
    for a in ACTORS {
        log.ok(json!({"type": "actor_registered", "actor": a, "data": {"name": a, "kind": "other"}}));
    }
    log.ok(json!({"type": "location_registered", "location": "l0", "data": {"name": "L0", "kind": "region"}}));
    log.ok(json!({"type": "location_registered", "location": "l1", "data": {"name": "L1", "kind": "city", "parent": "l0"}}));
    log.ok(json!({"type": "location_registered", "location": "l2", "data": {"name": "L2", "kind": "city", "parent": "l0"}}));
    log
}

/// Append the developments in `order`, amendment `amends[n]` after the n-th
/// of them, then the retractions.
fn log_of(devs: &[Dev], minutes: &[usize], order: &[usize], amends: &[usize]) -> Log {
    let mut log = registered();
    for (n, &i) in order.iter().enumerate() {
        log.ok(dev_json(i, &devs[i], minutes[i]));
        if let Some(kind) = amends.get(n) {
            log.ok(amendment_json(*kind, n));
        }
    }
    for (i, d) in devs.iter().enumerate() {
        if d.retract {
            log.ok(json!({"type": "event_retracted", "location": LOCATIONS[d.location],
                "occurred_at": "2030-01-01T00:00:00Z", "source": src(),
                "id": Uuid::from_u128(9_000 + i as u128),
                "data": {"event_id": Uuid::from_u128(1_000 + i as u128), "reason": "wrong"}}));
        }
    }
    log
}

/// The fold from scratch: the location's counted developments, sorted, folded.
fn scratch(devs: &[Dev], minutes: &[usize], log: &Log, location: usize) -> Status<ActorIx> {
    let mine: Vec<usize> = (0..devs.len())
        .filter(|i| devs[*i].location == location && !devs[*i].retract)
        .collect();
    let mut developments: Vec<Development<ActorIx>> = mine
        .iter()
        .map(|&i| {
            let v = dev_json(i, &devs[i], minutes[i]);
            let e = NewEvent::from_json(&v).unwrap();
            Development {
                // Equal times (a unit's start) are ordered by seq.
                seq: log.projection.seq_of(&e.id.unwrap()).unwrap(),
                occurred_at: e.occurred_at.unwrap(),
                id: e.id.unwrap(),
                claimed: e.claimant().is_some(),
                precision: e
                    .occurred_precision
                    .unwrap_or(crate::domain::event::TimePrecision::Instant),
                effect: match Fact::of(e.id.unwrap(), 0, &e).change {
                    Change::Develop(effect) => effect.try_map(|a| log.projection.actor_ix(a).ok_or(())).unwrap(),
                    other => panic!("not a development: {other:?}"),
                },
            }
        })
        .collect();
    developments.sort_by_key(|d| (d.occurred_at, d.seq));
    fold(&developments)
}

fn everything(p: &Projection, point: Point) -> (Vec<LocationView>, Vec<ActorView>) {
    (
        p.location_views(point, &Default::default(), now()),
        p.actor_views(point, None),
    )
}

type History = (Vec<Dev>, Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>);

fn histories() -> impl Strategy<Value = History> {
    prop::collection::vec(dev_strategy(), 1..40).prop_flat_map(|devs| {
        let n = devs.len();
        let idx: Vec<usize> = (0..n).collect();
        (
            Just(devs),
            Just(idx.clone()).prop_shuffle(),
            Just(idx.clone()).prop_shuffle(),
            Just(idx).prop_shuffle(),
            prop::collection::vec(0..AMENDMENTS, 0..8),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn live_equals_rebuilt_equals_scratch_for_any_arrival_order((devs, minutes, order_a, order_b, amends) in histories()) {
        let a = log_of(&devs, &minutes, &order_a, &amends);
        let b = log_of(&devs, &minutes, &order_b, &amends);
        for (l, name) in LOCATIONS.iter().enumerate() {
            let ix = a.projection.location_ix(&Slug::parse(name).unwrap()).unwrap();
            prop_assert_eq!(&a.projection.status_at(ix, live()), &scratch(&devs, &minutes, &a, l));
        }
        let rebuilt = a.rebuilt();
        prop_assert_eq!(everything(&a.projection, live()), everything(&rebuilt, live()));
        let bulk = a.rebuilt_in_bulk();
        prop_assert_eq!(everything(&a.projection, live()), everything(&bulk, live()));
        let t = as_of("2024-11-19T08:00:00Z");
        prop_assert_eq!(everything(&a.projection, t), everything(&bulk, t));
        prop_assert_eq!((a.projection.head_seq(), a.projection.head_hash()), (bulk.head_seq(), bulk.head_hash()));
        prop_assert_eq!(everything(&a.projection, live()), everything(&b.projection, live()));
        // Time travel to the same world time agrees between arrival orders too.
        prop_assert_eq!(everything(&a.projection, t), everything(&b.projection, t));
    }

    #[test]
    fn an_answer_at_a_point_never_changes_after_more_appends(
        (devs, minutes, order, _, amends) in histories(),
        cut in 0.0f64..1.0,
        minute in 0usize..40,
        unit in 0u8..3,
    ) {
        let full = log_of(&devs, &minutes, &order, &amends);
        let total = full.events.len();
        let k = 7 + ((total - 7) as f64 * cut) as usize;
        let mut prefix = registered();
        for e in &full.events[7..k] {
            prefix.projection.apply(e, &e.to_new_event().unwrap()).unwrap();
            prefix.events.push(e.clone());
        }
        // Inside the window of a development of that unit, if there is one then.
        let at = chrono::DateTime::<Utc>::from_timestamp(time_of(unit, minute).0 + 30, 0).unwrap();
        let point = Point { as_of: Some(at), at_seq: Some(k as u64) };
        let then = everything(&prefix.projection, point);
        prop_assert_eq!(&then, &everything(&full.projection, point));
        prop_assert_eq!(everything(&prefix.projection, Point { as_of: None, at_seq: Some(k as u64) }).0, everything(&prefix.projection, live()).0);
    }
}
