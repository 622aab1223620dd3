//! RFC 7946 GeoJSON: locations as a `FeatureCollection` a GIS client opens as
//! a layer.

use geojson::{feature, Feature, FeatureCollection, GeometryValue, Position};

use super::row::{location_row, LOCATION_COLUMNS};
use crate::domain::reference::Geometry;
use crate::projection::LocationView;

fn geometry(v: &LocationView) -> Option<geojson::Geometry> {
    let value = match (&v.geometry, v.lon, v.lat) {
        (Some(Geometry::Point(p)), _, _) => GeometryValue::new_point(p.clone()),
        (Some(Geometry::Polygon(rings)), _, _) => GeometryValue::new_polygon(rings.iter().cloned()),
        (Some(Geometry::MultiPolygon(polygons)), _, _) => {
            GeometryValue::new_multi_polygon(polygons.iter().map(|rings| rings.iter().cloned()))
        }
        // RFC 7946 3.1.1: longitude first.
        (None, Some(lon), Some(lat)) => GeometryValue::new_point(Position::from([lon, lat])),
        (None, _, _) => return None,
    };
    Some(geojson::Geometry::new(value))
}

/// One feature: `id` the location id, `geometry` its shape, else the point of
/// its coordinates, else `null`; `properties` the flat row.
pub fn location_feature(v: &LocationView) -> Feature {
    let properties = LOCATION_COLUMNS
        .iter()
        .map(|c| c.to_string())
        .zip(location_row(v))
        .collect();
    Feature {
        bbox: None,
        geometry: geometry(v),
        id: Some(feature::Id::String(v.id.to_string())),
        properties: Some(properties),
        foreign_members: None,
    }
}

/// The collection, built by hand: the crate's collector derives a `bbox`
/// from the features' own boxes, and writes an empty one (not RFC 7946) when
/// there are no features.
pub fn locations(views: &[LocationView]) -> FeatureCollection {
    FeatureCollection {
        bbox: None,
        features: views.iter().map(location_feature).collect(),
        foreign_members: None,
    }
}
