//! One ACLED row: its columns read by header name, checked, and mapped to the
//! registrations and developments it reports (CONTRACT section 11). Pure: no IO.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::limits::{MAX_NAME_CHARS, MAX_SLUG_CHARS};
use crate::domain::time::format_time;
use crate::domain::vocabulary::{ActorKind, LocationKind, PlacePrecision, SourceKind, TimePrecision};

/// The columns the importer reads; a file without one of them is refused whole.
pub const COLUMNS: &[&str] = &[
    "event_id_cnty",
    "event_date",
    "time_precision",
    "event_type",
    "sub_event_type",
    "actor1",
    "inter1",
    "actor2",
    "inter2",
    "country",
    "admin1",
    "admin2",
    "admin3",
    "location",
    "latitude",
    "longitude",
    "geo_precision",
    "source",
    "source_scale",
    "notes",
    "fatalities",
    "timestamp",
];

/// The columns of a deletions file.
pub const DELETION_COLUMNS: &[&str] = &["event_id_cnty", "deleted_timestamp"];

/// Sub-event types that change who holds a place: actor1 takes control.
const TERRITORY_TAKEN: &[&str] = &["Government regains territory", "Non-state actor overtakes territory"];
/// A base set up: actor1's forces are present, without taking control.
const BASE_ESTABLISHED: &str = "Headquarters or base established";
const ARMED_CLASH: &str = "Armed clash";
/// The source of retractions the importer makes.
pub const ACLED_SOURCE: &str = "ACLED";
/// Largest ACLED `timestamp` an event id can carry (48 bits).
const MAX_TIMESTAMP: u64 = (1 << 48) - 1;
/// Hex digits of the path hash that keeps slugs of like-named places apart.
const SLUG_HASH_HEX: usize = 6;
/// Marks an event id as made by this importer (byte 9 of the UUID).
const ID_MARK: u8 = 0xac;

/// What a development of a row is; part of its event id, so each has its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Control = 1,
    Clash = 2,
    Casualties = 3,
    Report = 4,
    Presence = 5,
}

/// The key of an ACLED event: the first 8 bytes of its ids, the same for every
/// version and role of that `event_id_cnty`.
pub type RowKey = [u8; 8];

pub fn row_key(event_id_cnty: &str) -> RowKey {
    let h = Sha256::digest(format!("sitrep acled\0{event_id_cnty}").as_bytes());
    let mut k = [0u8; 8];
    k.copy_from_slice(&h[..8]);
    // The UUID version nibble (8: custom, RFC 9562 section 5.8) lives here.
    k[6] = 0x80 | (k[6] & 0x0f);
    k
}

/// The id of one development of one version of a row. A UUIDv8 laid out so that
/// the log alone says which row and which version an event came from (a hash
/// would not): bytes 0–7 the row key, byte 8 the variant and the role, byte 9
/// [`ID_MARK`], bytes 10–15 the row's `timestamp`. Re-importing the same row
/// gives the same ids; a newer version gives new ones whose older siblings the
/// importer finds in the log by their key.
pub fn event_id(key: RowKey, role: Role, timestamp: u64) -> Uuid {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&key);
    b[8] = 0x80 | role as u8;
    b[9] = ID_MARK;
    b[10..].copy_from_slice(&timestamp.to_be_bytes()[2..]);
    Uuid::from_bytes(b)
}

/// Read back an id made by [`event_id`]: its row key and timestamp.
pub fn parse_event_id(id: &Uuid) -> Option<(RowKey, u64)> {
    let b = id.as_bytes();
    if id.get_version_num() != 8 || b[9] != ID_MARK || b[8] & 0xc0 != 0x80 {
        return None;
    }
    let mut key = [0u8; 8];
    key.copy_from_slice(&b[..8]);
    let mut ts = [0u8; 8];
    ts[2..].copy_from_slice(&b[10..]);
    Some((key, u64::from_be_bytes(ts)))
}

/// The id of the retraction of `target`: one per target, so a retried
/// retraction is recognised.
pub fn retraction_id(target: &Uuid) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("sitrep acled retraction {target}").as_bytes(),
    )
}

/// `name` as slug characters: lowercase ASCII letters and digits, runs of
/// anything else as one '-'.
fn slug_text(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    s.trim_end_matches('-').to_owned()
}

/// A readable slug that stays unique: the name's slug text, cut to fit, then a
/// hash of `key` (the full path or name), as names repeat across a country.
fn hashed_slug(name: &str, key: &str) -> String {
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    let room = MAX_SLUG_CHARS - SLUG_HASH_HEX - 1;
    let text = slug_text(name);
    let text = text[..text.len().min(room)].trim_end_matches('-');
    let prefix = if text.is_empty() { "x" } else { text };
    format!("{prefix}-{}", &hash[..SLUG_HASH_HEX])
}

pub fn actor_slug(name: &str) -> String {
    hashed_slug(name, &format!("actor\0{name}"))
}

/// A country's slug is its name's (ACLED's country names are unique).
fn country_slug(name: &str) -> String {
    let s = slug_text(name);
    if s.is_empty() || s.len() > MAX_SLUG_CHARS {
        hashed_slug(name, &format!("country\0{name}"))
    } else {
        s
    }
}

/// An actor a row names, with the kind its `inter` code gives.
#[derive(Clone, Debug, PartialEq)]
pub struct ActorReg {
    pub slug: String,
    pub name: String,
    pub kind: ActorKind,
}

/// A place of a row's hierarchy.
#[derive(Clone, Debug, PartialEq)]
pub struct PlaceReg {
    pub slug: String,
    pub name: String,
    pub kind: LocationKind,
    pub parent: Option<String>,
    pub point: Option<(f64, f64)>,
}

impl ActorReg {
    pub fn event(&self) -> Value {
        json!({
            "id": Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("sitrep acled actor {}", self.slug).as_bytes()),
            "type": "actor_registered",
            "actor": self.slug,
            "data": {"name": self.name, "kind": self.kind},
        })
    }
}

impl PlaceReg {
    pub fn event(&self) -> Value {
        let mut data = json!({"name": self.name, "kind": self.kind});
        if let Some(parent) = &self.parent {
            data["parent"] = json!(parent);
        }
        if let Some((lat, lon)) = self.point {
            data["lat"] = json!(lat);
            data["lon"] = json!(lon);
        }
        json!({
            "id": Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("sitrep acled location {}", self.slug).as_bytes()),
            "type": "location_registered",
            "location": self.slug,
            "data": data,
        })
    }
}

/// A checked row: what it registers and the developments it posts.
#[derive(Clone, Debug)]
pub struct Row {
    pub line: u64,
    pub event_id_cnty: String,
    pub key: RowKey,
    pub timestamp: u64,
    pub actors: Vec<ActorReg>,
    /// Outermost first, so each parent is registered before its children.
    pub places: Vec<PlaceReg>,
    /// The row's location: the stream of its developments.
    pub location: String,
    pub developments: Vec<(Uuid, Value)>,
}

/// A row of a deletions file.
#[derive(Clone, Debug)]
pub struct Deletion {
    pub line: u64,
    pub event_id_cnty: String,
    pub key: RowKey,
    pub deleted_timestamp: u64,
}

/// The header of a file: where each needed column is.
pub struct Header {
    index: Vec<usize>,
}

impl Header {
    /// Find `columns` in `header` by name; the missing ones are the error.
    pub fn find(header: &csv::StringRecord, columns: &[&str]) -> Result<Header, String> {
        let mut index = Vec::with_capacity(columns.len());
        let mut missing = Vec::new();
        for c in columns {
            match header.iter().position(|h| h.trim() == *c) {
                Some(i) => index.push(i),
                None => missing.push(*c),
            }
        }
        if missing.is_empty() {
            Ok(Header { index })
        } else {
            Err(format!("the header lacks the column(s) {}", missing.join(", ")))
        }
    }

    /// The cell of column number `i` of the list given to [`Header::find`].
    fn cell<'r>(&self, record: &'r csv::StringRecord, columns: &[&str], i: usize) -> Result<&'r str, String> {
        record
            .get(self.index[i])
            .map(str::trim)
            .ok_or_else(|| format!("the row has no {} column (it has {} fields)", columns[i], record.len()))
    }
}

fn integer(text: &str, column: &str) -> Result<u64, String> {
    text.parse::<u64>()
        .map_err(|_| format!("{column} '{text}' is not a whole number >= 0"))
}

fn coordinate(text: &str, column: &str, bound: f64) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v.abs() <= bound => Ok(v),
        _ => Err(format!("{column} '{text}' is not a number from -{bound} to {bound}")),
    }
}

fn name(text: &str, column: &str) -> Result<String, String> {
    if text.chars().count() > MAX_NAME_CHARS {
        return Err(format!("{column} is longer than {MAX_NAME_CHARS} characters"));
    }
    Ok(text.to_owned())
}

/// ACLED dates: `2024-11-30` (API and current exports) or `30 November 2024`
/// (older exports).
fn date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%d %B %Y"))
        .map_err(|_| format!("event_date '{text}' is not a date (YYYY-MM-DD or '30 November 2024')"))
}

/// `time_precision` 1, 2, 3: the day, the week, the month is known. The
/// development's `occurred_at` is the start of that unit holding `event_date`.
fn occurred(day: NaiveDate, code: &str) -> Result<(DateTime<Utc>, TimePrecision), String> {
    let (start, precision) = match code {
        "1" => (day, TimePrecision::Day),
        "2" => (
            day - Duration::days(i64::from(day.weekday().num_days_from_monday())),
            TimePrecision::Week,
        ),
        "3" => (day.with_day(1).expect("every month has a 1st"), TimePrecision::Month),
        _ => return Err(format!("time_precision '{code}' is not 1, 2 or 3")),
    };
    let at = Utc.from_utc_datetime(&start.and_hms_opt(0, 0, 0).expect("midnight exists"));
    Ok((at, precision))
}

/// `geo_precision` 1, 2, 3 are the contract's place precisions.
fn place_precision(code: &str) -> Result<PlacePrecision, String> {
    match code {
        "1" => Ok(PlacePrecision::Exact),
        "2" => Ok(PlacePrecision::Near),
        "3" => Ok(PlacePrecision::Region),
        _ => Err(format!("geo_precision '{code}' is not 1, 2 or 3")),
    }
}

/// The actor kind of an `inter` code, given as ACLED's number (1–8) or as its
/// label (exports since 2024 write the label).
pub fn actor_kind(code: &str, column: &str) -> Result<ActorKind, String> {
    let kind = match code.to_ascii_lowercase().as_str() {
        "1" | "state forces" => ActorKind::StateForces,
        "2" | "rebel group" | "rebel groups" => ActorKind::NonStateGroup,
        "3" | "political militia" | "political militias" => ActorKind::NonStateGroup,
        "4" | "identity militia" | "identity militias" => ActorKind::NonStateGroup,
        "5" | "rioters" | "6" | "protesters" | "7" | "civilians" => ActorKind::Other,
        "8" | "external/other forces" => ActorKind::Other,
        _ => return Err(format!("{column} '{code}' is not an ACLED actor type (1 to 8)")),
    };
    Ok(kind)
}

/// The source kind of a `source_scale` ("National", "Local partner-Other",
/// "New media-Regional", ...): by its first part.
pub fn source_kind(scale: &str) -> SourceKind {
    let first = scale.split('-').next().unwrap_or_default().trim().to_ascii_lowercase();
    match first.as_str() {
        "local partner" => SourceKind::Monitor,
        "local" | "subnational" | "national" | "regional" | "international" => SourceKind::NewsAgency,
        _ => SourceKind::Other,
    }
}

/// A source name within the limit: ACLED joins several sources with '; ', which
/// can run long, so a longer one is cut with an ellipsis.
fn source_name(text: &str) -> String {
    if text.is_empty() {
        return ACLED_SOURCE.to_owned();
    }
    if text.chars().count() <= MAX_NAME_CHARS {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX_NAME_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Check one record and map it. `line` is where the record starts in the file.
pub fn parse_row(header: &Header, record: &csv::StringRecord, line: u64) -> Result<Row, String> {
    let mut cells = Vec::with_capacity(COLUMNS.len());
    for i in 0..COLUMNS.len() {
        cells.push(header.cell(record, COLUMNS, i)?);
    }
    let [event_id_cnty, event_date, time_precision, event_type, sub_event_type, actor1, inter1, actor2, inter2, country, admin1, admin2, admin3, location, latitude, longitude, geo_precision, source, source_scale, notes, fatalities, timestamp] =
        cells[..]
    else {
        unreachable!("one cell per column")
    };
    if event_id_cnty.is_empty() {
        return Err("event_id_cnty is empty".into());
    }
    let (occurred_at, time_precision) = occurred(date(event_date)?, time_precision)?;
    let place_precision = place_precision(geo_precision)?;
    let lat = coordinate(latitude, "latitude", 90.0)?;
    let lon = coordinate(longitude, "longitude", 180.0)?;
    let fatalities = integer(fatalities, "fatalities")?;
    let timestamp = integer(timestamp, "timestamp")?;
    if timestamp > MAX_TIMESTAMP {
        return Err(format!("timestamp {timestamp} is beyond {MAX_TIMESTAMP}"));
    }
    if event_type.is_empty() || sub_event_type.is_empty() {
        return Err("event_type and sub_event_type must not be empty".into());
    }
    if actor1.is_empty() {
        return Err("actor1 is empty".into());
    }
    if country.is_empty() || location.is_empty() {
        return Err("country and location must not be empty".into());
    }

    let mut actors = vec![ActorReg {
        slug: actor_slug(actor1),
        name: name(actor1, "actor1")?,
        kind: actor_kind(inter1, "inter1")?,
    }];
    if !actor2.is_empty() {
        actors.push(ActorReg {
            slug: actor_slug(actor2),
            name: name(actor2, "actor2")?,
            kind: actor_kind(inter2, "inter2")?,
        });
    }

    // country -> admin1 -> admin2 -> admin3 -> location; an empty level is
    // skipped and the next one hangs from the level above it.
    let levels = [
        (admin1, LocationKind::Region),
        (admin2, LocationKind::District),
        (admin3, LocationKind::Subdistrict),
        (location, LocationKind::Town),
    ];
    let mut places = vec![PlaceReg {
        slug: country_slug(country),
        name: name(country, "country")?,
        kind: LocationKind::Country,
        parent: None,
        point: None,
    }];
    let mut path = country.to_owned();
    for (i, (text, kind)) in levels.iter().enumerate() {
        path.push('\u{1f}');
        path.push_str(text);
        if text.is_empty() {
            continue;
        }
        let parent = places.last().map(|p| p.slug.clone());
        let is_location = i == levels.len() - 1;
        places.push(PlaceReg {
            slug: hashed_slug(text, &format!("place\0{path}")),
            name: name(text, COLUMNS[10 + i])?,
            kind: *kind,
            parent,
            point: is_location.then_some((lat, lon)),
        });
    }
    let stream = places.last().expect("the location level is never empty").slug.clone();

    let key = row_key(event_id_cnty);
    let src = json!({"name": source_name(source), "kind": source_kind(source_scale)});
    let development = |role: Role, ty: &str, data: Value| {
        let id = event_id(key, role, timestamp);
        let event = json!({
            "id": id,
            "type": ty,
            "location": stream,
            "occurred_at": format_time(&occurred_at),
            "occurred_precision": time_precision,
            "place_precision": place_precision,
            "source": src,
            "data": data,
        });
        (id, event)
    };
    let a1 = &actors[0].slug;
    let a2 = actors.get(1).map(|a| &a.slug).filter(|a2| *a2 != a1);
    let mut developments = Vec::new();
    if TERRITORY_TAKEN.contains(&sub_event_type) {
        developments.push(development(Role::Control, "control_established", json!({"actor": a1})));
    } else if sub_event_type == BASE_ESTABLISHED {
        developments.push(development(Role::Presence, "forces_entered", json!({"actor": a1})));
    } else if let (ARMED_CLASH, Some(a2)) = (sub_event_type, a2) {
        developments.push(development(
            Role::Clash,
            "clashes_reported",
            json!({"actors": [a1, a2]}),
        ));
    } else {
        let summary = if notes.is_empty() {
            format!("{event_type}: {sub_event_type}")
        } else {
            notes.to_owned()
        };
        developments.push(development(Role::Report, "report", json!({"summary": summary})));
    }
    if fatalities > 0 {
        // ACLED's figure is its best (and deliberately conservative) estimate
        // and it gives no range: `killed` alone, whose low and high default to
        // it (CONTRACT section 10).
        developments.push(development(
            Role::Casualties,
            "casualties_reported",
            json!({"killed": fatalities}),
        ));
    }

    Ok(Row {
        line,
        event_id_cnty: event_id_cnty.to_owned(),
        key,
        timestamp,
        actors,
        places,
        location: stream,
        developments,
    })
}

pub fn parse_deletion(header: &Header, record: &csv::StringRecord, line: u64) -> Result<Deletion, String> {
    let event_id_cnty = header.cell(record, DELETION_COLUMNS, 0)?;
    let deleted = header.cell(record, DELETION_COLUMNS, 1)?;
    if event_id_cnty.is_empty() {
        return Err("event_id_cnty is empty".into());
    }
    Ok(Deletion {
        line,
        event_id_cnty: event_id_cnty.to_owned(),
        key: row_key(event_id_cnty),
        deleted_timestamp: integer(deleted, "deleted_timestamp")?,
    })
}

/// A retraction of `target` (on stream `location`) made at Unix time `at`.
pub fn retraction(target: &Uuid, location: &str, at: u64, reason: String) -> (Uuid, Value) {
    let id = retraction_id(target);
    let when = i64::try_from(at)
        .ok()
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .unwrap_or_default();
    let event = json!({
        "id": id,
        "type": "event_retracted",
        "location": location,
        "occurred_at": format_time(&when),
        "source": {"name": ACLED_SOURCE, "kind": SourceKind::Monitor},
        "data": {"event_id": target, "reason": reason},
    });
    (id, event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::Slug;

    #[test]
    fn event_ids_carry_their_row_and_version() {
        let key = row_key("SYR123456");
        for role in [
            Role::Control,
            Role::Clash,
            Role::Casualties,
            Role::Report,
            Role::Presence,
        ] {
            let id = event_id(key, role, 1_733_000_000);
            assert_eq!(id.get_version_num(), 8);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(parse_event_id(&id), Some((key, 1_733_000_000)));
        }
        assert_ne!(event_id(key, Role::Report, 1), event_id(key, Role::Report, 2));
        assert_eq!(parse_event_id(&Uuid::new_v4()), None);
        assert_eq!(parse_event_id(&retraction_id(&Uuid::nil())), None);
    }

    #[test]
    fn slugs_are_valid_and_keep_like_names_apart() {
        for n in ["Military Forces of Syria (2000-2024)", "حلب", "", &"Ab ".repeat(100)] {
            assert!(Slug::parse(&actor_slug(n)).is_ok(), "{n}");
        }
        assert_ne!(actor_slug("Police (2019-)"), actor_slug("Police (2019)"));
        assert_eq!(country_slug("Syria"), "syria");
    }

    #[test]
    fn precision_codes_align_to_the_start_of_their_unit() {
        let d = NaiveDate::from_ymd_opt(2024, 11, 30).unwrap(); // a Saturday
        assert_eq!(format_time(&occurred(d, "1").unwrap().0), "2024-11-30T00:00:00Z");
        assert_eq!(format_time(&occurred(d, "2").unwrap().0), "2024-11-25T00:00:00Z");
        assert_eq!(format_time(&occurred(d, "3").unwrap().0), "2024-11-01T00:00:00Z");
        assert!(occurred(d, "4").is_err());
    }

    #[test]
    fn inter_codes_and_source_scales_map_as_documented() {
        assert_eq!(actor_kind("1", "inter1"), Ok(ActorKind::StateForces));
        assert_eq!(actor_kind("Rebel group", "inter1"), Ok(ActorKind::NonStateGroup));
        assert_eq!(actor_kind("8", "inter1"), Ok(ActorKind::Other));
        assert!(actor_kind("9", "inter1").is_err());
        assert_eq!(source_kind("Local partner-Other"), SourceKind::Monitor);
        assert_eq!(source_kind("National-International"), SourceKind::NewsAgency);
        assert_eq!(source_kind("New media"), SourceKind::Other);
    }
}
