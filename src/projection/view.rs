//! The read models as served: a location with its status, an actor with the
//! locations it controls and is present in.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{ActorIx, LocationIx, Point, Projection};
use crate::domain::event::{format_time, ActorKind, LocationKind, TimePrecision};
use crate::domain::fold::{Control, Operational, Status};
use crate::domain::reference::{search_key, Gazetteer, Geometry, Names};
use crate::domain::Slug;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocationView {
    pub id: Slug,
    pub name: String,
    pub kind: LocationKind,
    pub parent: Option<Slug>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub names: Names,
    pub aliases: Vec<String>,
    pub gazetteer: Gazetteer,
    pub geometry: Option<Geometry>,
    pub version: u64,
    pub control: ControlView,
    pub operational: Option<&'static str>,
    pub casualties: CasualtiesView,
    pub subdivisions: Option<SubdivisionsView>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ControlView {
    pub status: &'static str,
    pub controller: Option<Slug>,
    pub present: Vec<Slug>,
    pub since: Option<String>,
    pub since_precision: Option<TimePrecision>,
    /// Whether `as_of` (or now) lies past the window of the change's time.
    pub settled: Option<bool>,
    pub changed_by: Option<Uuid>,
    pub confidence: Option<&'static str>,
}

/// Summed casualties: best estimates and their bounds (`null` high bound:
/// some counted report gives no upper bound).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CasualtiesView {
    pub killed: u64,
    pub wounded: u64,
    pub reports: u64,
    pub killed_low: u64,
    pub killed_high: Option<u64>,
    pub wounded_low: u64,
    pub wounded_high: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubdivisionsView {
    pub total: u64,
    pub unknown: u64,
    pub contested: u64,
    pub by_controller: BTreeMap<Slug, u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActorView {
    pub id: Slug,
    pub name: String,
    pub kind: ActorKind,
    pub aliases: Vec<String>,
    pub member_of: Option<Slug>,
    pub names: Names,
    pub gazetteer: Gazetteer,
    pub version: u64,
    pub controls: Vec<Slug>,
    pub present_in: Vec<Slug>,
}

/// Filters of `GET /v1/locations`.
#[derive(Clone, Debug, Default)]
pub struct LocationFilter {
    pub kind: Option<LocationKind>,
    pub parent: Option<Slug>,
    pub controller: Option<Slug>,
    pub status: Option<&'static str>,
    /// `?q=`: a text the id, name, names or aliases contain (see `search_key`).
    pub q: Option<String>,
}

/// Does any of `texts` contain `key` (a `search_key`)?
fn matches_search<'a>(key: &str, texts: impl IntoIterator<Item = &'a str>) -> bool {
    texts.into_iter().any(|t| search_key(t).contains(key))
}

fn status_name<K>(c: &Control<K>) -> &'static str {
    match c {
        Control::Unknown => "unknown",
        Control::Controlled(_) => "controlled",
        Control::Contested => "contested",
    }
}

impl Projection {
    fn actor_slug(&self, ix: ActorIx) -> Slug {
        self.actors[ix as usize].id.clone()
    }

    fn sorted_actor_slugs<'a>(&self, ixs: impl IntoIterator<Item = &'a ActorIx>) -> Vec<Slug> {
        let mut v: Vec<Slug> = ixs.into_iter().map(|a| self.actor_slug(*a)).collect();
        v.sort();
        v
    }

    fn sorted_location_slugs<'a>(&self, ixs: impl IntoIterator<Item = &'a LocationIx>) -> Vec<Slug> {
        let mut v: Vec<Slug> = ixs
            .into_iter()
            .map(|l| self.locations[*l as usize].id.clone())
            .collect();
        v.sort();
        v
    }

    fn render_location(
        &self,
        ix: LocationIx,
        point: Point,
        now: DateTime<Utc>,
        status: &Status<ActorIx>,
        subdivisions: Option<SubdivisionsView>,
    ) -> LocationView {
        let loc = &self.locations[ix as usize];
        let reference = loc.at(point);
        let data = &reference.data;
        let control = status.control();
        LocationView {
            id: loc.id.clone(),
            name: data.name.clone(),
            kind: data.kind,
            parent: reference.parent.map(|p| self.locations[p as usize].id.clone()),
            lat: data.lat,
            lon: data.lon,
            names: data.names.clone(),
            aliases: data.aliases.clone(),
            gazetteer: data.gazetteer.clone(),
            geometry: data.geometry.clone(),
            version: loc.seqs.partition_point(|s| point.sees_seq(*s)) as u64,
            control: ControlView {
                status: status_name(&control),
                controller: match control {
                    Control::Controlled(a) => Some(self.actor_slug(a)),
                    _ => None,
                },
                present: self.sorted_actor_slugs(&status.present),
                since: status.since.as_ref().map(format_time),
                since_precision: status.since_precision,
                settled: status.settled(point.as_of.unwrap_or(now)),
                changed_by: status.changed_by,
                confidence: status.claimed.map(|c| if c { "claimed" } else { "reported" }),
            },
            operational: status.operational.map(|o| match o {
                Operational::Open => "open",
                Operational::Closed => "closed",
            }),
            casualties: CasualtiesView {
                killed: status.killed.best,
                wounded: status.wounded.best,
                reports: status.casualty_reports,
                killed_low: status.killed.low,
                killed_high: status.killed.high,
                wounded_low: status.wounded.low,
                wounded_high: status.wounded.high,
            },
            subdivisions,
        }
    }

    fn subdivisions(
        &self,
        ix: LocationIx,
        point: Point,
        status_of: &dyn Fn(LocationIx) -> Status<ActorIx>,
    ) -> Option<SubdivisionsView> {
        let children: Vec<LocationIx> = self.locations[ix as usize]
            .children
            .iter()
            .copied()
            .filter(|c| self.location_visible(*c, point) && self.locations[*c as usize].at(point).parent == Some(ix))
            .collect();
        if children.is_empty() {
            return None;
        }
        let mut view = SubdivisionsView {
            total: children.len() as u64,
            unknown: 0,
            contested: 0,
            by_controller: BTreeMap::new(),
        };
        for c in children {
            match status_of(c).control() {
                Control::Unknown => view.unknown += 1,
                Control::Contested => view.contested += 1,
                Control::Controlled(a) => *view.by_controller.entry(self.actor_slug(a)).or_insert(0) += 1,
            }
        }
        Some(view)
    }

    /// Location `id` at `point`; `None` when it is not registered there.
    /// `settled` is judged at `as_of`, or at `now` without one.
    pub fn location_view(&self, id: &Slug, point: Point, now: DateTime<Utc>) -> Option<LocationView> {
        let ix = self.location_ix(id)?;
        if !self.location_visible(ix, point) {
            return None;
        }
        let status = self.status_at(ix, point);
        let subdivisions = self.subdivisions(ix, point, &|c| self.status_at(c, point));
        Some(self.render_location(ix, point, now, &status, subdivisions))
    }

    /// The status of every location registered at `point` (index-aligned, `None`
    /// for the others).
    fn all_statuses(&self, point: Point) -> Vec<Option<Status<ActorIx>>> {
        (0..self.locations.len() as LocationIx)
            .map(|ix| self.location_visible(ix, point).then(|| self.status_at(ix, point)))
            .collect()
    }

    /// Every location at `point` that passes `filter`, sorted by id.
    pub fn location_views(&self, point: Point, filter: &LocationFilter, now: DateTime<Utc>) -> Vec<LocationView> {
        let statuses = self.all_statuses(point);
        let q = filter.q.as_deref().map(search_key);
        let status_of = |c: LocationIx| statuses[c as usize].clone().unwrap_or_default();
        let mut out: Vec<LocationView> = Vec::new();
        for (ix, status) in statuses.iter().enumerate() {
            let Some(status) = status else { continue };
            let ix = ix as LocationIx;
            let loc = &self.locations[ix as usize];
            let reference = loc.at(point);
            if filter.kind.is_some_and(|k| k != reference.data.kind) {
                continue;
            }
            if let Some(p) = &filter.parent {
                if reference.parent.map(|p| &self.locations[p as usize].id) != Some(p) {
                    continue;
                }
            }
            if let Some(key) = &q {
                let d = &reference.data;
                let texts = [loc.id.as_str(), d.name.as_str()]
                    .into_iter()
                    .chain(d.names.values().map(String::as_str))
                    .chain(d.aliases.iter().map(String::as_str));
                if !matches_search(key, texts) {
                    continue;
                }
            }
            let control = status.control();
            if filter.status.is_some_and(|s| s != status_name(&control)) {
                continue;
            }
            if let Some(c) = &filter.controller {
                match control {
                    Control::Controlled(a) if &self.actors[a as usize].id == c => {}
                    _ => continue,
                }
            }
            let subdivisions = self.subdivisions(ix, point, &status_of);
            out.push(self.render_location(ix, point, now, status, subdivisions));
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    fn render_actor(&self, ix: ActorIx, point: Point, statuses: Option<&[Option<Status<ActorIx>>]>) -> ActorView {
        let actor = &self.actors[ix as usize];
        let (controls, present_in) = match statuses {
            None => (
                self.sorted_location_slugs(&actor.controls),
                self.sorted_location_slugs(&actor.present_in),
            ),
            Some(statuses) => {
                let mut controls = Vec::new();
                let mut present_in = Vec::new();
                for (l, s) in statuses.iter().enumerate() {
                    let Some(s) = s else { continue };
                    if s.present.contains(&ix) {
                        present_in.push(l as LocationIx);
                    }
                    if s.control() == Control::Controlled(ix) {
                        controls.push(l as LocationIx);
                    }
                }
                (
                    self.sorted_location_slugs(&controls),
                    self.sorted_location_slugs(&present_in),
                )
            }
        };
        let reference = actor.at(point);
        let data = &reference.data;
        ActorView {
            id: actor.id.clone(),
            name: data.name.clone(),
            kind: data.kind,
            aliases: data.aliases.clone(),
            member_of: reference.member_of.map(|m| self.actor_slug(m)),
            names: data.names.clone(),
            gazetteer: data.gazetteer.clone(),
            version: actor.seqs.partition_point(|s| point.sees_seq(*s)) as u64,
            controls,
            present_in,
        }
    }

    /// Actor `id` at `point`; `None` when it is not registered there.
    pub fn actor_view(&self, id: &Slug, point: Point) -> Option<ActorView> {
        let ix = self.actor_ix(id)?;
        if !self.actor_visible(ix, point) {
            return None;
        }
        if point.is_live() {
            Some(self.render_actor(ix, point, None))
        } else {
            let statuses = self.all_statuses(point);
            Some(self.render_actor(ix, point, Some(&statuses)))
        }
    }

    /// Every actor registered at `point` that `q` (if any) finds, sorted by id.
    pub fn actor_views(&self, point: Point, q: Option<&str>) -> Vec<ActorView> {
        let key = q.map(search_key);
        let found = |ix: ActorIx| {
            let Some(key) = &key else { return true };
            let actor = &self.actors[ix as usize];
            let d = &actor.at(point).data;
            let texts = [actor.id.as_str(), d.name.as_str()]
                .into_iter()
                .chain(d.names.values().map(String::as_str))
                .chain(d.aliases.iter().map(String::as_str));
            matches_search(key, texts)
        };
        let statuses = (!point.is_live()).then(|| self.all_statuses(point));
        let mut out: Vec<ActorView> = (0..self.actors.len() as ActorIx)
            .filter(|ix| self.actor_visible(*ix, point) && found(*ix))
            .map(|ix| self.render_actor(ix, point, statuses.as_deref()))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}
