//! The vocabulary: event types, kinds of locations, actors and sources, the
//! Admiralty grading, and how precise a time or a place is.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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
        LocationAmended = "location_amended",
        ActorAmended = "actor_amended",
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
        Country = "country",
        Subdistrict = "subdistrict",
        Neighbourhood = "neighbourhood",
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

string_enum!(
    /// How precisely `occurred_at` is known: the development happened at some
    /// instant of `[occurred_at, occurred_at + 1 unit)`.
    TimePrecision {
        Instant = "instant",
        Hour = "hour",
        Day = "day",
        Week = "week",
        Month = "month",
        Year = "year",
    }
);

string_enum!(
    /// How precisely the place of a development is known (ACLED's geo_precision 1, 2, 3).
    PlacePrecision {
        Exact = "exact",
        Near = "near",
        Region = "region",
    }
);

impl EventType {
    pub fn is_registration(self) -> bool {
        matches!(self, EventType::LocationRegistered | EventType::ActorRegistered)
    }

    pub fn is_amendment(self) -> bool {
        matches!(self, EventType::LocationAmended | EventType::ActorAmended)
    }

    /// Reference data (registrations and amendments): holds for every `as_of`,
    /// needs no `occurred_at` or source, cannot be retracted.
    pub fn is_reference(self) -> bool {
        self.is_registration() || self.is_amendment()
    }

    /// Actor registrations and amendments live on actor streams; every other
    /// event on a location stream.
    pub fn is_actor_stream(self) -> bool {
        matches!(self, EventType::ActorRegistered | EventType::ActorAmended)
    }
}
