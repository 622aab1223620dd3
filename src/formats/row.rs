//! A location's status as one flat row: the properties GIS styling keys on
//! and the columns of a spreadsheet. GeoJSON and CSV share this list.

use serde_json::Value;

use crate::projection::LocationView;

/// The flat fields of a location, in column order (the id, and the position
/// a GeoJSON feature carries as its geometry, come apart from these).
pub const LOCATION_COLUMNS: &[&str] = &[
    "name",
    "kind",
    "parent",
    "status",
    "controller",
    "confidence",
    "since",
    "since_precision",
    "settled",
    "operational",
    "present",
    "version",
    "killed",
    "wounded",
    "killed_low",
    "killed_high",
    "wounded_low",
    "wounded_high",
];

fn text(s: Option<impl ToString>) -> Value {
    s.map_or(Value::Null, |s| Value::String(s.to_string()))
}

/// The values of [`LOCATION_COLUMNS`] for one location, in that order. A
/// missing value is `null`; `present` is its actor ids joined by commas, so a
/// flat format can hold it ("" when none are present).
pub fn location_row(v: &LocationView) -> [Value; LOCATION_COLUMNS.len()] {
    let c = &v.control;
    let present: Vec<&str> = c.present.iter().map(|s| s.as_str()).collect();
    [
        Value::String(v.name.clone()),
        Value::String(v.kind.as_str().to_owned()),
        text(v.parent.as_ref()),
        Value::String(c.status.to_owned()),
        text(c.controller.as_ref()),
        text(c.confidence),
        text(c.since.as_ref()),
        text(c.since_precision.map(|p| p.as_str())),
        c.settled.map_or(Value::Null, Value::Bool),
        text(v.operational),
        Value::String(present.join(",")),
        v.version.into(),
        v.casualties.killed.into(),
        v.casualties.wounded.into(),
        v.casualties.killed_low.into(),
        v.casualties.killed_high.map_or(Value::Null, Value::from),
        v.casualties.wounded_low.into(),
        v.casualties.wounded_high.map_or(Value::Null, Value::from),
    ]
}
