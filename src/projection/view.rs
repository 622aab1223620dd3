//! The read models as served: a location with its status, an actor with the
//! locations it controls and is present in.

use std::collections::BTreeMap;

use serde::Serialize;
use uuid::Uuid;

use super::{ActorIx, LocationIx, Point, Projection};
use crate::domain::event::{format_time, ActorKind, LocationKind};
use crate::domain::fold::{Control, Operational, Status};
use crate::domain::Slug;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocationView {
    pub id: Slug,
    pub name: String,
    pub kind: LocationKind,
    pub parent: Option<Slug>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
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
    pub changed_by: Option<Uuid>,
    pub confidence: Option<&'static str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CasualtiesView {
    pub killed: u64,
    pub wounded: u64,
    pub reports: u64,
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
        status: &Status<ActorIx>,
        subdivisions: Option<SubdivisionsView>,
    ) -> LocationView {
        let loc = &self.locations[ix as usize];
        let control = status.control();
        LocationView {
            id: loc.id.clone(),
            name: loc.name.clone(),
            kind: loc.kind,
            parent: loc.parent.map(|p| self.locations[p as usize].id.clone()),
            lat: loc.lat,
            lon: loc.lon,
            version: loc.seqs.partition_point(|s| point.sees_seq(*s)) as u64,
            control: ControlView {
                status: status_name(&control),
                controller: match control {
                    Control::Controlled(a) => Some(self.actor_slug(a)),
                    _ => None,
                },
                present: self.sorted_actor_slugs(&status.present),
                since: status.since.as_ref().map(format_time),
                changed_by: status.changed_by,
                confidence: status.claimed.map(|c| if c { "claimed" } else { "reported" }),
            },
            operational: status.operational.map(|o| match o {
                Operational::Open => "open",
                Operational::Closed => "closed",
            }),
            casualties: CasualtiesView {
                killed: status.killed,
                wounded: status.wounded,
                reports: status.casualty_reports,
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
            .filter(|c| self.location_visible(*c, point))
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
    pub fn location_view(&self, id: &Slug, point: Point) -> Option<LocationView> {
        let ix = self.location_ix(id)?;
        if !self.location_visible(ix, point) {
            return None;
        }
        let status = self.status_at(ix, point);
        let subdivisions = self.subdivisions(ix, point, &|c| self.status_at(c, point));
        Some(self.render_location(ix, point, &status, subdivisions))
    }

    /// The status of every location registered at `point` (index-aligned, `None`
    /// for the others).
    fn all_statuses(&self, point: Point) -> Vec<Option<Status<ActorIx>>> {
        (0..self.locations.len() as LocationIx)
            .map(|ix| self.location_visible(ix, point).then(|| self.status_at(ix, point)))
            .collect()
    }

    /// Every location at `point` that passes `filter`, sorted by id.
    pub fn location_views(&self, point: Point, filter: &LocationFilter) -> Vec<LocationView> {
        let statuses = self.all_statuses(point);
        let status_of = |c: LocationIx| statuses[c as usize].clone().unwrap_or_default();
        let mut out: Vec<LocationView> = Vec::new();
        for (ix, status) in statuses.iter().enumerate() {
            let Some(status) = status else { continue };
            let ix = ix as LocationIx;
            let loc = &self.locations[ix as usize];
            if filter.kind.is_some_and(|k| k != loc.kind) {
                continue;
            }
            if let Some(p) = &filter.parent {
                if loc.parent.map(|p| &self.locations[p as usize].id) != Some(p) {
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
            out.push(self.render_location(ix, point, status, subdivisions));
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
        ActorView {
            id: actor.id.clone(),
            name: actor.name.clone(),
            kind: actor.kind,
            aliases: actor.aliases.clone(),
            member_of: actor.member_of.map(|m| self.actor_slug(m)),
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

    /// Every actor registered at `point`, sorted by id.
    pub fn actor_views(&self, point: Point) -> Vec<ActorView> {
        let statuses = (!point.is_live()).then(|| self.all_statuses(point));
        let mut out: Vec<ActorView> = (0..self.actors.len() as ActorIx)
            .filter(|ix| self.actor_visible(*ix, point))
            .map(|ix| self.render_actor(ix, point, statuses.as_deref()))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}
