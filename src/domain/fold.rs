//! The control fold: a location's counted developments, in `(occurred_at, seq)`
//! order, folded into its status. Which developments count (retractions,
//! `as_of`, `at_seq`) is decided by the caller; this module only folds.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::json::MAX_EXACT_INTEGER;

/// What a development does to a location, with actors as keys of type `K`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect<K> {
    /// `control_established`: present := {actor}
    Establish(K),
    /// `forces_entered`: present += actor
    Enter(K),
    /// `forces_withdrew`: present -= actor
    Withdraw(K),
    /// `clashes_reported`: present += each actor
    Clash(Vec<K>),
    /// `attack_repelled`: present += defender, present -= attacker
    Repel { defender: K, attacker: K },
    /// `facility_closed`
    Close,
    /// `facility_reopened`
    Reopen,
    /// `casualties_reported`, absent numbers as 0
    Casualties { killed: u64, wounded: u64 },
    /// history only (`report`, `air_support_provided`)
    Nothing,
}

impl<K> Effect<K> {
    /// The same effect with every actor key mapped by `f`; the first failure stops.
    pub fn try_map<J, E>(&self, mut f: impl FnMut(&K) -> Result<J, E>) -> Result<Effect<J>, E> {
        Ok(match self {
            Effect::Establish(a) => Effect::Establish(f(a)?),
            Effect::Enter(a) => Effect::Enter(f(a)?),
            Effect::Withdraw(a) => Effect::Withdraw(f(a)?),
            Effect::Clash(actors) => Effect::Clash(actors.iter().map(&mut f).collect::<Result<_, _>>()?),
            Effect::Repel { defender, attacker } => Effect::Repel {
                defender: f(defender)?,
                attacker: f(attacker)?,
            },
            Effect::Close => Effect::Close,
            Effect::Reopen => Effect::Reopen,
            Effect::Casualties { killed, wounded } => Effect::Casualties {
                killed: *killed,
                wounded: *wounded,
            },
            Effect::Nothing => Effect::Nothing,
        })
    }
}

/// One development of a location, as the fold needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Development<K> {
    pub seq: u64,
    #[serde(with = "super::fact::utc_as_timestamp")]
    pub occurred_at: DateTime<Utc>,
    pub id: Uuid,
    /// Its source names a claimant.
    pub claimed: bool,
    pub effect: Effect<K>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operational {
    Open,
    Closed,
}

/// `(status, controller)`, the pair whose changes `since` and `changed_by` track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control<K> {
    Unknown,
    Controlled(K),
    Contested,
}

/// A location's status after folding its developments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status<K: Ord> {
    pub present: BTreeSet<K>,
    pub since: Option<DateTime<Utc>>,
    pub changed_by: Option<Uuid>,
    /// Whether the development that last changed control was a claim.
    pub claimed: Option<bool>,
    pub operational: Option<Operational>,
    pub killed: u64,
    pub wounded: u64,
    pub casualty_reports: u64,
}

impl<K: Ord> Default for Status<K> {
    fn default() -> Self {
        Status {
            present: BTreeSet::new(),
            since: None,
            changed_by: None,
            claimed: None,
            operational: None,
            killed: 0,
            wounded: 0,
            casualty_reports: 0,
        }
    }
}

impl<K: Ord + Copy> Status<K> {
    pub fn control(&self) -> Control<K> {
        let mut it = self.present.iter();
        match (it.next(), it.next()) {
            (None, _) => Control::Unknown,
            (Some(k), None) => Control::Controlled(*k),
            _ => Control::Contested,
        }
    }

    /// Apply one development (the next in `(occurred_at, seq)` order).
    pub fn apply(&mut self, d: &Development<K>) {
        let before = self.control();
        match &d.effect {
            Effect::Establish(a) => {
                self.present.clear();
                self.present.insert(*a);
            }
            Effect::Enter(a) => {
                self.present.insert(*a);
            }
            Effect::Withdraw(a) => {
                self.present.remove(a);
            }
            Effect::Clash(actors) => self.present.extend(actors.iter().copied()),
            Effect::Repel { defender, attacker } => {
                self.present.insert(*defender);
                self.present.remove(attacker);
            }
            Effect::Close => self.operational = Some(Operational::Closed),
            Effect::Reopen => self.operational = Some(Operational::Open),
            Effect::Casualties { killed, wounded } => {
                // Sums saturate where JSON integers stop being exact for every reader.
                let add = |sum: u64, n: u64| sum.saturating_add(n).min(MAX_EXACT_INTEGER);
                self.killed = add(self.killed, *killed);
                self.wounded = add(self.wounded, *wounded);
                self.casualty_reports += 1;
            }
            Effect::Nothing => {}
        }
        if self.control() != before {
            self.since = Some(d.occurred_at);
            self.changed_by = Some(d.id);
            self.claimed = Some(d.claimed);
        }
    }
}

/// Fold developments that are already in `(occurred_at, seq)` order.
pub fn fold<'a, K: Ord + Copy + 'a>(developments: impl IntoIterator<Item = &'a Development<K>>) -> Status<K> {
    let mut status = Status::default();
    for d in developments {
        status.apply(d);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAA: u32 = 1;
    const HTS: u32 = 2;
    const RUS: u32 = 3;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        format!("2024-11-{day:02}T{hour:02}:00:00Z").parse().unwrap()
    }

    fn dev(seq: u64, day: u32, claimed: bool, effect: Effect<u32>) -> Development<u32> {
        Development {
            seq,
            occurred_at: at(day, 0),
            id: Uuid::from_u128(seq as u128),
            claimed,
            effect,
        }
    }

    #[test]
    fn given_nothing_then_unknown_with_no_change() {
        let s = fold::<u32>(&[]);
        assert_eq!(s.control(), Control::Unknown);
        assert_eq!(
            (s.since, s.changed_by, s.claimed, s.operational),
            (None, None, None, None)
        );
    }

    #[test]
    fn given_control_when_forces_enter_then_contested_and_withdrawal_leaves_the_other() {
        let history = [
            dev(1, 22, false, Effect::Establish(SAA)),
            dev(2, 29, false, Effect::Enter(HTS)),
            dev(3, 30, true, Effect::Withdraw(SAA)),
        ];
        let s = fold(&history[..2]);
        assert_eq!(s.control(), Control::Contested);
        assert_eq!(s.changed_by, Some(Uuid::from_u128(2)));
        let s = fold(&history);
        assert_eq!(s.control(), Control::Controlled(HTS));
        assert_eq!(s.since, Some(at(30, 0)));
        assert_eq!(s.changed_by, Some(Uuid::from_u128(3)));
        assert_eq!(s.claimed, Some(true));
    }

    #[test]
    fn establish_replaces_everyone_present() {
        let s = fold(&[
            dev(1, 27, false, Effect::Clash(vec![SAA, HTS, RUS])),
            dev(2, 28, false, Effect::Establish(HTS)),
        ]);
        assert_eq!(s.present, BTreeSet::from([HTS]));
    }

    #[test]
    fn repel_keeps_the_defender_and_removes_the_attacker() {
        let s = fold(&[
            dev(1, 27, false, Effect::Clash(vec![SAA, HTS])),
            dev(
                2,
                28,
                true,
                Effect::Repel {
                    defender: SAA,
                    attacker: HTS,
                },
            ),
        ]);
        assert_eq!(s.control(), Control::Controlled(SAA));
        assert_eq!(s.claimed, Some(true));
    }

    #[test]
    fn a_development_that_keeps_the_pair_does_not_move_since() {
        let s = fold(&[
            dev(1, 27, false, Effect::Clash(vec![SAA, HTS])),
            dev(2, 28, true, Effect::Enter(RUS)),
            dev(3, 29, false, Effect::Withdraw(RUS)),
            dev(4, 30, false, Effect::Nothing),
        ]);
        assert_eq!(s.control(), Control::Contested);
        assert_eq!(s.changed_by, Some(Uuid::from_u128(1)));
        assert_eq!(s.claimed, Some(false));
    }

    #[test]
    fn withdrawing_the_last_actor_is_a_change_to_unknown() {
        let s = fold(&[
            dev(1, 27, false, Effect::Enter(SAA)),
            dev(2, 28, false, Effect::Withdraw(SAA)),
        ]);
        assert_eq!(s.control(), Control::Unknown);
        assert_eq!(s.changed_by, Some(Uuid::from_u128(2)));
    }

    #[test]
    fn facility_state_follows_the_latest_report_and_casualties_sum() {
        let s = fold(&[
            dev(1, 27, false, Effect::Close),
            dev(2, 28, false, Effect::Casualties { killed: 3, wounded: 0 }),
            dev(3, 29, false, Effect::Reopen),
            dev(4, 30, false, Effect::Casualties { killed: 2, wounded: 5 }),
        ]);
        assert_eq!(s.operational, Some(Operational::Open));
        assert_eq!((s.killed, s.wounded, s.casualty_reports), (5, 5, 2));
        assert_eq!(s.control(), Control::Unknown);
    }

    #[test]
    fn casualty_sums_stay_integers_every_json_parser_reads_exactly() {
        let most = MAX_EXACT_INTEGER;
        let report = Effect::Casualties {
            killed: most,
            wounded: 1,
        };
        let s = fold(&[dev(1, 27, false, report.clone()), dev(2, 28, false, report)]);
        assert_eq!((s.killed, s.wounded, s.casualty_reports), (most, 2, 2));
    }
}
