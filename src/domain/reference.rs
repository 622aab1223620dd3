//! Reference data beyond a name: names by language, gazetteer ids and shapes
//! (CONTRACT section 10), with their checks, and the text folding that `?q=`
//! search matches with.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::limits::{MAX_NAMES, MAX_NAME_CHARS};
use super::validation::FieldError;

/// Names by BCP 47 language tag, e.g. `{"ar": "حلب", "en": "Aleppo"}`.
pub type Names = BTreeMap<String, String>;

/// Is `tag` shaped as a BCP 47 language tag (RFC 5646 section 2.1)? A primary
/// language subtag of 2–3 letters (or 5–8 registered letters), then subtags of
/// 1–8 letters or digits; a private-use tag `x-…` on its own. Whether each
/// subtag is registered is not checked, only the shape.
pub fn is_language_tag(tag: &str) -> bool {
    const MAX_TAG_CHARS: usize = 64;
    if tag.is_empty() || tag.len() > MAX_TAG_CHARS {
        return false;
    }
    let mut parts = tag.split('-');
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    let alnum = |s: &str| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric());
    if first.eq_ignore_ascii_case("x") {
        return !rest.is_empty() && rest.iter().all(|s| alnum(s));
    }
    let letters = first.bytes().all(|b| b.is_ascii_alphabetic());
    letters && matches!(first.len(), 2 | 3 | 5..=8) && rest.iter().all(|s| alnum(s))
}

/// Check a `names` member under `field`: well-formed tags, each once (tags are
/// case-insensitive), non-empty names within the name limit.
pub fn check_names(errors: &mut Vec<FieldError>, field: &str, names: &Names) {
    if names.len() > MAX_NAMES {
        errors.push(FieldError::new(field, format!("must hold at most {MAX_NAMES} names")));
    }
    let mut seen: Vec<String> = Vec::with_capacity(names.len());
    for (tag, name) in names {
        let at = format!("{field}.{tag}");
        if !is_language_tag(tag) {
            errors.push(FieldError::new(
                at.clone(),
                "the key must be a BCP 47 language tag such as 'ar', 'en' or 'ar-Latn'",
            ));
        } else if seen.contains(&tag.to_ascii_lowercase()) {
            errors.push(FieldError::new(
                at.clone(),
                "names the same language as another key (tags are case-insensitive)",
            ));
        }
        seen.push(tag.to_ascii_lowercase());
        check_name(errors, &at, name);
    }
}

/// A name or an alias: not blank, at most `MAX_NAME_CHARS` characters.
pub fn check_name(errors: &mut Vec<FieldError>, field: &str, text: &str) {
    if super::validation::is_blank(text) {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if text.chars().count() > MAX_NAME_CHARS {
        errors.push(FieldError::new(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
}

/// Ids of the same place or party in public gazetteers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gazetteer {
    /// GeoNames feature id.
    pub geonames: Option<u64>,
    /// Wikidata item, `Q…`.
    pub wikidata: Option<String>,
    /// OpenStreetMap element, `relation/…`, `way/…` or `node/…`.
    pub osm: Option<String>,
    /// ISO 3166-2 subdivision code, e.g. `SY-HL`.
    pub iso3166_2: Option<String>,
}

/// The fields as the binary forms hold them (by position).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GazetteerFields {
    #[serde(default)]
    geonames: Option<u64>,
    #[serde(default)]
    wikidata: Option<String>,
    #[serde(default)]
    osm: Option<String>,
    #[serde(default)]
    iso3166_2: Option<String>,
}

/// Read a JSON object only: serde's derived readers would also take an array
/// of the fields' values, which is not what the member means.
fn json_object<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    Map::<String, Value>::deserialize(d).map(Value::Object)
}

impl<'de> Deserialize<'de> for Gazetteer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Gazetteer, D::Error> {
        let f = if d.is_human_readable() {
            GazetteerFields::deserialize(json_object(d)?).map_err(serde::de::Error::custom)?
        } else {
            GazetteerFields::deserialize(d)?
        };
        Ok(Gazetteer {
            geonames: f.geonames,
            wikidata: f.wikidata,
            osm: f.osm,
            iso3166_2: f.iso3166_2,
        })
    }
}

/// In JSON only the ids given are written (stored data holds the posted
/// members only); in the binary forms (facts, checkpoints) every field is, as
/// their decoder reads fields by position.
impl Serialize for Gazetteer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let all = !s.is_human_readable();
        let mut st = s.serialize_struct("Gazetteer", 4)?;
        macro_rules! field {
            ($name:ident) => {
                if all || self.$name.is_some() {
                    st.serialize_field(stringify!($name), &self.$name)?;
                } else {
                    st.skip_field(stringify!($name))?;
                }
            };
        }
        field!(geonames);
        field!(wikidata);
        field!(osm);
        field!(iso3166_2);
        st.end()
    }
}

fn positive_decimal(s: &str) -> bool {
    !s.is_empty() && s.len() <= 19 && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit())
}

impl Gazetteer {
    pub fn check(&self, errors: &mut Vec<FieldError>, field: &str) {
        if self.geonames == Some(0) {
            errors.push(FieldError::new(
                format!("{field}.geonames"),
                "must be a positive integer",
            ));
        }
        if let Some(q) = &self.wikidata {
            if !q.strip_prefix('Q').is_some_and(positive_decimal) {
                errors.push(FieldError::new(
                    format!("{field}.wikidata"),
                    "must be a Wikidata item id such as Q41183",
                ));
            }
        }
        if let Some(osm) = &self.osm {
            let ok = osm
                .split_once('/')
                .is_some_and(|(kind, n)| matches!(kind, "relation" | "way" | "node") && positive_decimal(n));
            if !ok {
                errors.push(FieldError::new(
                    format!("{field}.osm"),
                    "must be relation/<id>, way/<id> or node/<id>",
                ));
            }
        }
        if let Some(code) = &self.iso3166_2 {
            let ok = code.split_once('-').is_some_and(|(country, sub)| {
                country.len() == 2
                    && country.bytes().all(|b| b.is_ascii_uppercase())
                    && (1..=3).contains(&sub.len())
                    && sub.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            });
            if !ok {
                errors.push(FieldError::new(
                    format!("{field}.iso3166_2"),
                    "must be an ISO 3166-2 code such as SY-02",
                ));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Gazetteer::default()
    }
}

/// A position: longitude, latitude and an optional altitude (RFC 7946 3.1.1).
pub type Position = Vec<f64>;

/// An RFC 7946 geometry of the kinds a location may have. In JSON it is the
/// GeoJSON object (`{"type": "Polygon", "coordinates": …}`); in the binary
/// forms (facts, checkpoints), whose decoder cannot read a tagged object, a
/// plain enum.
#[derive(Clone, Debug, PartialEq)]
pub enum Geometry {
    Point(Position),
    Polygon(Vec<Vec<Position>>),
    MultiPolygon(Vec<Vec<Vec<Position>>>),
}

macro_rules! geometry_form {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        enum $name {
            Point(Position),
            Polygon(Vec<Vec<Position>>),
            MultiPolygon(Vec<Vec<Vec<Position>>>),
        }

        impl From<Geometry> for $name {
            fn from(g: Geometry) -> Self {
                match g {
                    Geometry::Point(p) => $name::Point(p),
                    Geometry::Polygon(p) => $name::Polygon(p),
                    Geometry::MultiPolygon(p) => $name::MultiPolygon(p),
                }
            }
        }

        impl From<$name> for Geometry {
            fn from(g: $name) -> Self {
                match g {
                    $name::Point(p) => Geometry::Point(p),
                    $name::Polygon(p) => Geometry::Polygon(p),
                    $name::MultiPolygon(p) => Geometry::MultiPolygon(p),
                }
            }
        }
    };
}

geometry_form!(
    #[derive(Serialize, Deserialize)]
    #[serde(tag = "type", content = "coordinates", deny_unknown_fields)]
    GeoJson
);
geometry_form!(
    #[derive(Serialize, Deserialize)]
    Binary
);

impl Serialize for Geometry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            GeoJson::from(self.clone()).serialize(s)
        } else {
            Binary::from(self.clone()).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Geometry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            GeoJson::deserialize(json_object(d)?)
                .map(Geometry::from)
                .map_err(serde::de::Error::custom)
        } else {
            Binary::deserialize(d).map(Geometry::from)
        }
    }
}

impl Geometry {
    /// Ranges and closed rings of at least four positions; the size is bounded
    /// by the stored event's limit. Winding order is not required (RFC 7946 3.1.6 asks parsers not to reject it).
    pub fn check(&self, errors: &mut Vec<FieldError>, field: &str) {
        let at = |path: &str| format!("{field}.coordinates{path}");
        let position = |errors: &mut Vec<FieldError>, p: &Position, path: &str| {
            if !(2..=3).contains(&p.len()) {
                errors.push(FieldError::new(
                    at(path),
                    "a position is [longitude, latitude] or [longitude, latitude, altitude]",
                ));
                return;
            }
            if !(-180.0..=180.0).contains(&p[0]) {
                errors.push(FieldError::new(
                    at(&format!("{path}[0]")),
                    "longitude must be between -180 and 180",
                ));
            }
            if !(-90.0..=90.0).contains(&p[1]) {
                errors.push(FieldError::new(
                    at(&format!("{path}[1]")),
                    "latitude must be between -90 and 90",
                ));
            }
        };
        let polygon = |errors: &mut Vec<FieldError>, rings: &[Vec<Position>], path: &str| {
            if rings.is_empty() {
                errors.push(FieldError::new(at(path), "a polygon needs an exterior ring"));
            }
            for (r, ring) in rings.iter().enumerate() {
                let ring_path = format!("{path}[{r}]");
                if ring.len() < 4 {
                    errors.push(FieldError::new(
                        at(&ring_path),
                        "a linear ring needs at least 4 positions",
                    ));
                } else if ring.first() != ring.last() {
                    errors.push(FieldError::new(
                        at(&ring_path),
                        "a linear ring must be closed: its last position equal to its first",
                    ));
                }
                for (i, p) in ring.iter().enumerate() {
                    position(errors, p, &format!("{ring_path}[{i}]"));
                }
            }
        };
        match self {
            Geometry::Point(p) => position(errors, p, ""),
            Geometry::Polygon(rings) => polygon(errors, rings, ""),
            Geometry::MultiPolygon(polygons) => {
                if polygons.is_empty() {
                    errors.push(FieldError::new(at(""), "a MultiPolygon needs at least one polygon"));
                }
                for (i, rings) in polygons.iter().enumerate() {
                    polygon(errors, rings, &format!("[{i}]"));
                }
            }
        }
    }
}

/// Text as `?q=` search compares it: lowercase, without Arabic diacritics
/// (harakat, U+064B–U+065F, and the superscript alef U+0670) and without
/// tatweel (U+0640), so "حَلَب", "حلب" and "حـلب" are one word.
pub fn search_key(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{0640}'))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn language_tags_are_checked_for_shape() {
        for ok in [
            "ar",
            "en",
            "ar-Latn",
            "apc",
            "zh-Hant-TW",
            "ar-SY",
            "es-419",
            "x-klingon",
        ] {
            assert!(is_language_tag(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "arabic!",
            "en_GB",
            "-en",
            "en-",
            "1a",
            "en--GB",
            "x",
            "toolongsubtag-x",
            "en-abcdefghi",
        ] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn given_names_when_a_tag_is_malformed_or_repeated_then_the_key_is_named() {
        let mut errors = Vec::new();
        let names: Names = [("ar", "حلب"), ("EN", "Aleppo"), ("en", "Alep"), ("en_GB", "Aleppo")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        check_names(&mut errors, "data.names", &names);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["data.names.en", "data.names.en_GB"]);
    }

    #[test]
    fn gazetteer_ids_must_have_their_shapes() {
        let good = Gazetteer {
            geonames: Some(170063),
            wikidata: Some("Q41183".into()),
            osm: Some("relation/6775938".into()),
            iso3166_2: Some("SY-02".into()),
        };
        let mut errors = Vec::new();
        good.check(&mut errors, "data.gazetteer");
        assert!(errors.is_empty(), "{errors:?}");
        let bad = Gazetteer {
            geonames: Some(0),
            wikidata: Some("41183".into()),
            osm: Some("area/1".into()),
            iso3166_2: Some("sy-02".into()),
        };
        bad.check(&mut errors, "data.gazetteer");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "data.gazetteer.geonames",
                "data.gazetteer.wikidata",
                "data.gazetteer.osm",
                "data.gazetteer.iso3166_2"
            ]
        );
    }

    fn errors_of(v: serde_json::Value) -> Vec<String> {
        let g: Geometry = serde_json::from_value(v).unwrap();
        let mut errors = Vec::new();
        g.check(&mut errors, "data.geometry");
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn given_a_geometry_then_rings_must_close_and_positions_be_in_range() {
        let square = json!([[37.0, 36.1], [37.3, 36.1], [37.3, 36.3], [37.0, 36.3], [37.0, 36.1]]);
        assert!(errors_of(json!({"type": "Polygon", "coordinates": [square]})).is_empty());
        let clockwise: Vec<_> = square.as_array().unwrap().iter().rev().cloned().collect();
        assert!(
            errors_of(json!({"type": "Polygon", "coordinates": [clockwise]})).is_empty(),
            "winding is not required"
        );
        assert!(errors_of(json!({"type": "MultiPolygon", "coordinates": [[square]]})).is_empty());
        assert_eq!(
            errors_of(
                json!({"type": "Polygon", "coordinates": [[[37.0, 36.1], [37.3, 36.1], [37.3, 36.3], [37.0, 36.3]]]})
            ),
            vec!["data.geometry.coordinates[0]"],
            "an open ring"
        );
        assert_eq!(
            errors_of(json!({"type": "Point", "coordinates": [37.1, 91.0]})),
            vec!["data.geometry.coordinates[1]"]
        );
        assert_eq!(
            errors_of(
                json!({"type": "MultiPolygon", "coordinates": [[[[181.0, 0.0], [0.0, 0.0], [0.0, 1.0], [181.0, 0.0]]]]})
            ),
            vec![
                "data.geometry.coordinates[0][0][0][0]",
                "data.geometry.coordinates[0][0][3][0]"
            ]
        );
        assert!(
            serde_json::from_value::<Geometry>(json!({"type": "LineString", "coordinates": [[0, 0], [1, 1]]})).is_err()
        );
        // Serde would read a struct or a tagged enum from an array too: not here.
        assert!(serde_json::from_value::<Geometry>(json!(["Point", [1, 2]])).is_err());
        assert!(serde_json::from_value::<Gazetteer>(json!([null, null])).is_err());
        assert!(serde_json::from_value::<Gazetteer>(json!({"geonames": 1, "tgn": 2})).is_err());
    }

    #[test]
    fn reference_data_survives_the_binary_form() {
        let g = Gazetteer {
            geonames: Some(170063),
            wikidata: None,
            osm: Some("relation/1".into()),
            iso3166_2: None,
        };
        assert_eq!(
            bincode::deserialize::<Gazetteer>(&bincode::serialize(&g).unwrap()).unwrap(),
            g
        );
        assert_eq!(
            serde_json::to_value(&g).unwrap(),
            json!({"geonames": 170063, "osm": "relation/1"})
        );
        let shape: Geometry = serde_json::from_value(
            json!({"type": "Polygon", "coordinates": [[[37.0, 36.1], [37.3, 36.1], [37.3, 36.3], [37.0, 36.1]]]}),
        )
        .unwrap();
        assert_eq!(
            bincode::deserialize::<Geometry>(&bincode::serialize(&shape).unwrap()).unwrap(),
            shape
        );
    }

    #[test]
    fn search_keys_ignore_case_harakat_and_tatweel() {
        assert_eq!(search_key("حَلَب"), search_key("حلب"));
        assert_eq!(search_key("حـلب"), search_key("حلب"));
        assert_eq!(search_key("ALEPPO"), "aleppo");
        assert_ne!(search_key("حلب"), search_key("حماة"));
    }
}
