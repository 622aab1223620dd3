//! Rules that need the log's state: registered streams, named actors and
//! locations, retraction targets and optimistic concurrency. The state is seen
//! through [`Catalog`], so these rules stay pure.

use uuid::Uuid;

use super::event::{EventData, EventType, NewEvent, StreamRef};
use super::ids::Slug;
use super::validation::Problem;

/// What the rules need to know about an event already in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownEvent {
    pub event_type: EventType,
    /// The location stream it belongs to (`None` for actor registrations).
    pub location: Option<Slug>,
    pub retracted: bool,
}

/// The log's state as the rules see it.
pub trait Catalog {
    fn location_registered(&self, id: &Slug) -> bool;
    fn actor_registered(&self, id: &Slug) -> bool;
    /// Number of events in the stream; 0 when it is not registered.
    fn stream_version(&self, stream: &StreamRef) -> u64;
    fn known_event(&self, id: &Uuid) -> Option<KnownEvent>;
    /// The current parent of a registered location.
    fn location_parent(&self, id: &Slug) -> Option<Slug>;
    /// The current `member_of` of a registered actor.
    fn actor_member_of(&self, id: &Slug) -> Option<Slug>;
}

/// Does following `up` from `start` reach `own`? Registered links form a
/// forest, so the walk ends; `limit` bounds it all the same.
fn chain_reaches(start: &Slug, own: &Slug, up: impl Fn(&Slug) -> Option<Slug>) -> bool {
    const LIMIT: usize = 100_000;
    let mut cur = Some(start.clone());
    for _ in 0..LIMIT {
        match cur {
            None => return false,
            Some(c) if &c == own => return true,
            Some(c) => cur = up(&c),
        }
    }
    true
}

/// Check `event` against the log's state. Idempotency (a known `id`) is decided
/// before this by the caller, so a retry never reaches these rules.
pub fn check(event: &NewEvent, catalog: &impl Catalog) -> Result<(), Problem> {
    let stream = &event.stream;
    let version = catalog.stream_version(stream);
    if event.event_type.is_registration() {
        if version > 0 {
            return Err(Problem::AlreadyRegistered {
                field: stream.member().into(),
                stream: stream.id().to_string(),
            });
        }
    } else if version == 0 {
        return Err(match stream {
            StreamRef::Location(id) => Problem::UnknownLocation {
                field: "location".into(),
                id: id.to_string(),
            },
            StreamRef::Actor(id) => Problem::UnknownActor {
                field: "actor".into(),
                id: id.to_string(),
            },
        });
    }
    if let Some(expected) = event.expected_version {
        if expected != version {
            return Err(Problem::VersionConflict {
                field: "expected_version".into(),
                stream: stream.id().to_string(),
                expected,
                current: version,
            });
        }
    }
    let parent = match &event.data {
        EventData::LocationRegistered(d) => d.parent.as_ref(),
        EventData::LocationAmended(d) => d.parent.as_ref(),
        _ => None,
    };
    if let Some(parent) = parent {
        if !catalog.location_registered(parent) {
            return Err(Problem::UnknownLocation {
                field: "data.parent".into(),
                id: parent.to_string(),
            });
        }
        // A registration's parent exists before its child, so only an
        // amendment can close a cycle: the new parent is the location or one
        // of its descendants.
        if event.event_type.is_amendment() && chain_reaches(parent, stream.id(), |l| catalog.location_parent(l)) {
            return Err(Problem::invalid(
                "data.parent",
                format!(
                    "'{parent}' is '{}' or lies within it: the hierarchy would have a cycle",
                    stream.id()
                ),
            ));
        }
    }
    if let EventData::ActorAmended(d) = &event.data {
        if let Some(m) = &d.member_of {
            if catalog.actor_registered(m) && chain_reaches(m, stream.id(), |a| catalog.actor_member_of(a)) {
                return Err(Problem::invalid(
                    "data.member_of",
                    format!(
                        "'{m}' is '{}' or a member of it: membership would have a cycle",
                        stream.id()
                    ),
                ));
            }
        }
    }
    for (field, actor) in event.data.named_actors() {
        if !catalog.actor_registered(actor) {
            return Err(Problem::UnknownActor {
                field: field.into(),
                id: actor.to_string(),
            });
        }
    }
    if let Some(claimant) = event.claimant() {
        if !catalog.actor_registered(claimant) {
            return Err(Problem::UnknownActor {
                field: "source.claimant".into(),
                id: claimant.to_string(),
            });
        }
    }
    if let EventData::EventRetracted(r) = &event.data {
        let Some(target) = catalog.known_event(&r.event_id) else {
            return Err(Problem::UnknownEvent {
                field: "data.event_id".into(),
                id: r.event_id,
            });
        };
        if target.event_type.is_reference() || target.event_type == EventType::EventRetracted {
            return Err(Problem::invalid(
                "data.event_id",
                format!("a {} cannot be retracted", target.event_type),
            ));
        }
        if target.location.as_ref() != Some(stream.id()) {
            return Err(Problem::invalid(
                "location",
                format!(
                    "must be the retracted event's location '{}'",
                    target.location.map(|l| l.to_string()).unwrap_or_default()
                ),
            ));
        }
        if target.retracted {
            return Err(Problem::AlreadyRetracted {
                field: "data.event_id".into(),
                id: r.event_id,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use serde_json::json;

    use super::*;

    #[derive(Default)]
    struct Given {
        locations: HashSet<String>,
        actors: HashSet<String>,
        versions: HashMap<String, u64>,
        events: HashMap<Uuid, KnownEvent>,
        parents: HashMap<String, String>,
    }

    impl Catalog for Given {
        fn location_registered(&self, id: &Slug) -> bool {
            self.locations.contains(id.as_str())
        }
        fn actor_registered(&self, id: &Slug) -> bool {
            self.actors.contains(id.as_str())
        }
        fn stream_version(&self, stream: &StreamRef) -> u64 {
            let key = format!("{}:{}", stream.member(), stream.id());
            self.versions.get(&key).copied().unwrap_or(0)
        }
        fn known_event(&self, id: &Uuid) -> Option<KnownEvent> {
            self.events.get(id).cloned()
        }
        fn location_parent(&self, id: &Slug) -> Option<Slug> {
            self.parents.get(id.as_str()).map(|p| Slug::parse(p).unwrap())
        }
        fn actor_member_of(&self, id: &Slug) -> Option<Slug> {
            self.parents.get(id.as_str()).map(|p| Slug::parse(p).unwrap())
        }
    }

    fn aleppo_world() -> Given {
        let mut g = Given::default();
        g.locations.insert("aleppo".into());
        g.versions.insert("location:aleppo".into(), 3);
        for a in ["saa", "hts"] {
            g.actors.insert(a.into());
            g.versions.insert(format!("actor:{a}"), 1);
        }
        g.events.insert(
            Uuid::from_u128(7),
            KnownEvent {
                event_type: EventType::ForcesEntered,
                location: Some(Slug::parse("aleppo").unwrap()),
                retracted: false,
            },
        );
        g
    }

    fn when(v: serde_json::Value) -> NewEvent {
        NewEvent::from_json(&v).expect("well-formed")
    }

    fn src() -> serde_json::Value {
        json!({"name": "Reuters", "kind": "news_agency"})
    }

    #[test]
    fn a_development_on_a_registered_location_with_registered_actors_passes() {
        let e = when(
            json!({"type": "forces_entered", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z",
            "source": src(), "data": {"actor": "hts"}, "expected_version": 3}),
        );
        assert_eq!(check(&e, &aleppo_world()), Ok(()));
    }

    #[test]
    fn the_first_event_of_a_stream_must_be_its_registration() {
        let e = when(
            json!({"type": "forces_entered", "location": "idlib", "occurred_at": "2024-11-29T00:00:00Z",
            "source": src(), "data": {"actor": "hts"}}),
        );
        assert!(
            matches!(check(&e, &aleppo_world()), Err(Problem::UnknownLocation { field, .. }) if field == "location")
        );
    }

    #[test]
    fn registering_twice_is_refused() {
        let e = when(
            json!({"type": "location_registered", "location": "aleppo", "data": {"name": "Aleppo", "kind": "city"}}),
        );
        assert!(matches!(
            check(&e, &aleppo_world()),
            Err(Problem::AlreadyRegistered { .. })
        ));
    }

    #[test]
    fn a_parent_must_already_be_registered() {
        let e = when(json!({"type": "location_registered", "location": "aleppo-south",
            "data": {"name": "Southern Aleppo", "kind": "district", "parent": "nowhere"}}));
        assert!(
            matches!(check(&e, &aleppo_world()), Err(Problem::UnknownLocation { field, .. }) if field == "data.parent")
        );
        let e = when(json!({"type": "location_registered", "location": "aleppo-south",
            "data": {"name": "Southern Aleppo", "kind": "district", "parent": "aleppo"}}));
        assert_eq!(check(&e, &aleppo_world()), Ok(()));
    }

    #[test]
    fn every_named_actor_and_the_claimant_must_be_registered() {
        let e = when(
            json!({"type": "clashes_reported", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z",
            "source": src(), "data": {"actors": ["hts", "ypg"]}}),
        );
        assert!(matches!(check(&e, &aleppo_world()), Err(Problem::UnknownActor { id, .. }) if id == "ypg"));
        let e = when(
            json!({"type": "report", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z",
            "source": {"name": "x", "kind": "party_statement", "claimant": "ypg"}, "data": {"summary": "s"}}),
        );
        assert!(
            matches!(check(&e, &aleppo_world()), Err(Problem::UnknownActor { field, .. }) if field == "source.claimant")
        );
    }

    #[test]
    fn a_stale_expected_version_is_a_conflict_naming_both_versions() {
        let e = when(
            json!({"type": "forces_entered", "location": "aleppo", "occurred_at": "2024-11-29T00:00:00Z",
            "source": src(), "data": {"actor": "hts"}, "expected_version": 2}),
        );
        assert!(matches!(
            check(&e, &aleppo_world()),
            Err(Problem::VersionConflict {
                expected: 2,
                current: 3,
                ..
            })
        ));
    }

    fn retraction(location: &str, target: u128) -> NewEvent {
        when(
            json!({"type": "event_retracted", "location": location, "occurred_at": "2024-11-30T00:00:00Z",
            "source": src(), "data": {"event_id": Uuid::from_u128(target), "reason": "misattributed"}}),
        )
    }

    #[test]
    fn retraction_rules() {
        let mut world = aleppo_world();
        world.locations.insert("idlib".into());
        world.versions.insert("location:idlib".into(), 1);
        assert_eq!(check(&retraction("aleppo", 7), &world), Ok(()));
        assert!(matches!(
            check(&retraction("aleppo", 8), &world),
            Err(Problem::UnknownEvent { .. })
        ));
        assert!(
            matches!(check(&retraction("idlib", 7), &world), Err(Problem::Validation(e)) if e[0].field == "location")
        );
        world.events.get_mut(&Uuid::from_u128(7)).unwrap().retracted = true;
        assert!(matches!(
            check(&retraction("aleppo", 7), &world),
            Err(Problem::AlreadyRetracted { .. })
        ));
        for t in [EventType::LocationRegistered, EventType::EventRetracted] {
            world.events.insert(
                Uuid::from_u128(9),
                KnownEvent {
                    event_type: t,
                    location: Some(Slug::parse("aleppo").unwrap()),
                    retracted: false,
                },
            );
            assert!(matches!(
                check(&retraction("aleppo", 9), &world),
                Err(Problem::Validation(_))
            ));
        }
    }

    #[test]
    fn given_a_hierarchy_when_an_amendment_would_close_a_cycle_then_it_is_refused() {
        let mut world = aleppo_world();
        for (child, parent) in [("aleppo-south", "aleppo"), ("al-ramouseh", "aleppo-south")] {
            world.locations.insert(child.into());
            world.versions.insert(format!("location:{child}"), 1);
            world.parents.insert(child.into(), parent.into());
        }
        let amend = |loc: &str, parent: &str| {
            when(json!({"type": "location_amended", "location": loc, "data": {"parent": parent}}))
        };
        let refused = check(&amend("aleppo", "al-ramouseh"), &world);
        assert!(
            matches!(&refused, Err(Problem::Validation(e)) if e[0].field == "data.parent"),
            "{refused:?}"
        );
        assert_eq!(
            check(&amend("al-ramouseh", "aleppo"), &world),
            Ok(()),
            "moving up is fine"
        );
        assert!(matches!(
            check(&amend("aleppo", "nowhere"), &world),
            Err(Problem::UnknownLocation { field, .. }) if field == "data.parent"
        ));
    }

    #[test]
    fn given_membership_when_an_amendment_would_close_a_cycle_then_it_is_refused() {
        let mut world = aleppo_world();
        world.parents.insert("saa".into(), "hts".into());
        let e = when(json!({"type": "actor_amended", "actor": "hts", "data": {"member_of": "saa"}}));
        assert!(matches!(check(&e, &world), Err(Problem::Validation(e)) if e[0].field == "data.member_of"));
    }

    #[test]
    fn an_amendment_needs_its_stream_and_cannot_be_retracted() {
        let mut world = aleppo_world();
        let e = when(json!({"type": "location_amended", "location": "idlib", "data": {"name": "Idlib"}}));
        assert!(matches!(check(&e, &world), Err(Problem::UnknownLocation { field, .. }) if field == "location"));
        let e = when(json!({"type": "actor_amended", "actor": "ypg", "data": {"name": "YPG"}}));
        assert!(matches!(check(&e, &world), Err(Problem::UnknownActor { field, .. }) if field == "actor"));
        world.events.insert(
            Uuid::from_u128(9),
            KnownEvent {
                event_type: EventType::LocationAmended,
                location: Some(Slug::parse("aleppo").unwrap()),
                retracted: false,
            },
        );
        assert!(
            matches!(check(&retraction("aleppo", 9), &world), Err(Problem::Validation(e)) if e[0].field == "data.event_id")
        );
    }
}
