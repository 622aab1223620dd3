//! The control fold: a location's counted developments, in `(occurred_at, seq)`
//! order, folded into its status. Which developments count (retractions,
//! `as_of`, `at_seq`) is decided by the caller; this module only folds.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event::TimePrecision;
use super::json::MAX_EXACT_INTEGER;

/// A number with its bounds: the best estimate and the range it lies in.
/// `high` is `None` when the range is unbounded above.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    pub best: u64,
    pub low: u64,
    pub high: Option<u64>,
}

impl Default for Estimate {
    fn default() -> Self {
        Estimate {
            best: 0,
            low: 0,
            high: Some(0),
        }
    }
}

impl Estimate {
    /// One report's figure by the contract's rule: low = `*_low`, else the best
    /// estimate, else 0; high = `*_high`, else the best estimate, else 0 when
    /// no `*_low` is given either, else unbounded. An absent best counts as 0.
    pub fn of(low: Option<u64>, best: Option<u64>, high: Option<u64>) -> Estimate {
        Estimate {
            best: best.unwrap_or(0),
            low: low.or(best).unwrap_or(0),
            high: match (high.or(best), low) {
                (Some(h), _) => Some(h),
                (None, None) => Some(0),
                (None, Some(_)) => None,
            },
        }
    }
}

/// The sum of two estimates; unbounded above if either is. Sums saturate
/// where JSON integers stop being exact for every reader.
impl std::ops::Add for Estimate {
    type Output = Estimate;

    fn add(self, other: Estimate) -> Estimate {
        let add = |a: u64, b: u64| a.saturating_add(b).min(MAX_EXACT_INTEGER);
        Estimate {
            best: add(self.best, other.best),
            low: add(self.low, other.low),
            high: self.high.zip(other.high).map(|(a, b)| add(a, b)),
        }
    }
}

/// The casualty figures of one report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CasualtyFigures {
    pub killed: Estimate,
    pub wounded: Estimate,
}

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
    /// `casualties_reported`, by `Estimate::of`. Boxed: its figures are twice
    /// the size of any other effect, and every history entry would carry that
    /// size. (The binary forms are those of the struct variant it was.)
    Casualties(Box<CasualtyFigures>),
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
            Effect::Casualties(figures) => Effect::Casualties(figures.clone()),
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
    /// How precisely `occurred_at` is known.
    pub precision: TimePrecision,
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
    /// The time precision of the development that last changed control.
    pub since_precision: Option<TimePrecision>,
    pub changed_by: Option<Uuid>,
    /// Whether the development that last changed control was a claim.
    pub claimed: Option<bool>,
    pub operational: Option<Operational>,
    pub killed: Estimate,
    pub wounded: Estimate,
    pub casualty_reports: u64,
}

impl<K: Ord> Default for Status<K> {
    fn default() -> Self {
        Status {
            present: BTreeSet::new(),
            since: None,
            since_precision: None,
            changed_by: None,
            claimed: None,
            operational: None,
            killed: Estimate::default(),
            wounded: Estimate::default(),
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

    /// Whether the development that last changed control is settled at `now`:
    /// `now` lies past its time window. `None` before any change.
    pub fn settled(&self, now: DateTime<Utc>) -> Option<bool> {
        Some(self.since_precision?.settled(self.since?, now))
    }

    /// Apply one development (the next in `(occurred_at, seq)` order).
    pub fn apply(&mut self, d: &Development<K>) {
        match &d.effect {
            Effect::Close => self.operational = Some(Operational::Closed),
            Effect::Reopen => self.operational = Some(Operational::Open),
            Effect::Casualties(figures) => {
                self.killed = self.killed + figures.killed;
                self.wounded = self.wounded + figures.wounded;
                self.casualty_reports += 1;
            }
            Effect::Nothing => {}
            // Only a change of who is present can change control.
            moves => {
                let before = self.control();
                self.move_forces(moves);
                if self.control() != before {
                    self.since = Some(d.occurred_at);
                    self.since_precision = Some(d.precision);
                    self.changed_by = Some(d.id);
                    self.claimed = Some(d.claimed);
                }
            }
        }
    }

    /// The effect on `present` (none for effects that do not move forces).
    fn move_forces(&mut self, effect: &Effect<K>) {
        match effect {
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
            Effect::Close | Effect::Reopen | Effect::Casualties(_) | Effect::Nothing => {}
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
            precision: TimePrecision::Instant,
            effect,
        }
    }

    fn casualties(killed: u64, wounded: u64) -> Effect<u32> {
        figures(
            Estimate::of(None, Some(killed), None),
            Estimate::of(None, Some(wounded), None),
        )
    }

    fn figures(killed: Estimate, wounded: Estimate) -> Effect<u32> {
        Effect::Casualties(Box::new(CasualtyFigures { killed, wounded }))
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
            dev(2, 28, false, casualties(3, 0)),
            dev(3, 29, false, Effect::Reopen),
            dev(4, 30, false, casualties(2, 5)),
        ]);
        assert_eq!(s.operational, Some(Operational::Open));
        assert_eq!((s.killed.best, s.wounded.best, s.casualty_reports), (5, 5, 2));
        assert_eq!((s.killed.low, s.killed.high), (5, Some(5)));
        assert_eq!(s.control(), Control::Unknown);
    }

    #[test]
    fn given_bounds_then_each_report_contributes_by_the_contract_rule() {
        // low = *_low, else best, else 0; high = *_high, else best, else 0
        // without a *_low, else unbounded.
        assert_eq!(
            Estimate::of(None, None, None),
            Estimate {
                best: 0,
                low: 0,
                high: Some(0)
            }
        );
        assert_eq!(
            Estimate::of(None, Some(7), None),
            Estimate {
                best: 7,
                low: 7,
                high: Some(7)
            }
        );
        assert_eq!(
            Estimate::of(Some(12), None, None),
            Estimate {
                best: 0,
                low: 12,
                high: None
            }
        );
        assert_eq!(
            Estimate::of(Some(12), Some(20), None),
            Estimate {
                best: 20,
                low: 12,
                high: Some(20)
            }
        );
        assert_eq!(
            Estimate::of(None, None, Some(30)),
            Estimate {
                best: 0,
                low: 0,
                high: Some(30)
            }
        );
        assert_eq!(
            Estimate::of(Some(1), Some(2), Some(3)),
            Estimate {
                best: 2,
                low: 1,
                high: Some(3)
            }
        );
    }

    #[test]
    fn given_an_unbounded_report_when_summed_then_the_high_sum_is_unbounded() {
        let bounded = figures(
            Estimate::of(Some(2), Some(3), Some(9)),
            Estimate::of(None, Some(4), None),
        );
        let dozens = figures(Estimate::of(Some(24), None, None), Estimate::default());
        let s = fold(&[dev(1, 27, false, bounded.clone())]);
        assert_eq!(
            s.killed,
            Estimate {
                best: 3,
                low: 2,
                high: Some(9)
            }
        );
        let s = fold(&[dev(1, 27, false, bounded), dev(2, 28, false, dozens)]);
        assert_eq!(
            s.killed,
            Estimate {
                best: 3,
                low: 26,
                high: None
            }
        );
        assert_eq!(
            s.wounded,
            Estimate {
                best: 4,
                low: 4,
                high: Some(4)
            }
        );
        assert_eq!(s.casualty_reports, 2);
    }

    #[test]
    fn given_a_day_precise_change_then_since_precision_is_day_and_settled_follows_the_clock() {
        let mut d = dev(1, 30, false, Effect::Establish(HTS));
        d.precision = TimePrecision::Day;
        let s = fold(&[d]);
        assert_eq!(s.since_precision, Some(TimePrecision::Day));
        assert_eq!(s.settled(at(30, 12)), Some(false));
        assert_eq!(s.settled(at(30, 0) + chrono::Days::new(1)), Some(true));
        let later = fold(&[
            dev(1, 29, false, Effect::Establish(HTS)),
            dev(2, 30, false, Effect::Nothing),
        ]);
        assert_eq!(later.since_precision, Some(TimePrecision::Instant));
        assert_eq!(
            later.settled(at(29, 0)),
            Some(true),
            "an instant is settled once counted"
        );
        assert_eq!(fold::<u32>(&[]).settled(at(30, 0)), None);
    }

    #[test]
    fn casualty_sums_stay_integers_every_json_parser_reads_exactly() {
        let most = MAX_EXACT_INTEGER;
        let report = figures(
            Estimate::of(None, Some(most), None),
            Estimate::of(Some(1), Some(1), Some(most)),
        );
        let s = fold(&[dev(1, 27, false, report.clone()), dev(2, 28, false, report)]);
        assert_eq!((s.killed.best, s.killed.low, s.killed.high), (most, most, Some(most)));
        assert_eq!((s.wounded.best, s.wounded.low, s.wounded.high), (2, 2, Some(most)));
        assert_eq!(s.casualty_reports, 2);
    }
}
