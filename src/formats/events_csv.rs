//! Stored events as CSV rows (RFC 4180, UTF-8, CRLF, a header row): the
//! envelope flattened, `data` as compact JSON, and a few data members that
//! spreadsheets sort and sum by, flattened beside it.

use std::io::Write;

use serde_json::Value;

use super::csv::neutralise;
pub use super::csv::writer;
use crate::domain::StoredEvent;

/// The columns, in order. `data` is the whole data object as compact JSON;
/// the columns after it repeat members of `data` for spreadsheets.
pub const COLUMNS: &[&str] = &[
    "seq",
    "id",
    "type",
    "location",
    "actor",
    "occurred_at",
    "occurred_precision",
    "place_precision",
    "recorded_at",
    "recorded_by",
    "source_name",
    "source_kind",
    "source_url",
    "source_claimant",
    "source_reliability",
    "source_credibility",
    "version",
    "hash",
    "prev_hash",
    "data",
    "named_actors",
    "killed",
    "wounded",
    "summary",
    "retracts",
];

/// The data members that name actors, in the order `named_actors` lists them.
const ACTOR_MEMBERS: &[&str] = &[
    "actor",
    "actors",
    "defender",
    "attacker",
    "provider",
    "supported",
    "member_of",
];

pub fn write_header<W: Write>(w: &mut csv::Writer<W>) -> csv::Result<()> {
    w.write_record(COLUMNS)
}

/// One event as one row of [`COLUMNS`]; absent members are empty cells.
pub fn write_event<W: Write>(w: &mut csv::Writer<W>, e: &StoredEvent) -> csv::Result<()> {
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let source = e.source.as_ref();
    let named: Vec<&str> = ACTOR_MEMBERS
        .iter()
        .filter_map(|m| e.data.get(m))
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            other => other.as_str().into_iter().collect::<Vec<_>>(),
        })
        .collect();
    let cells: [String; COLUMNS.len()] = [
        e.seq.to_string(),
        e.id.to_string(),
        e.event_type.as_str().to_owned(),
        e.location.as_ref().map(ToString::to_string).unwrap_or_default(),
        e.actor.as_ref().map(ToString::to_string).unwrap_or_default(),
        e.occurred_at.as_ref().map(ToString::to_string).unwrap_or_default(),
        e.occurred_precision.map(|p| p.as_str().to_owned()).unwrap_or_default(),
        e.place_precision.map(|p| p.as_str().to_owned()).unwrap_or_default(),
        e.recorded_at.to_string(),
        e.recorded_by.clone(),
        source.map(|s| s.name.clone()).unwrap_or_default(),
        source.map(|s| s.kind.as_str().to_owned()).unwrap_or_default(),
        source.and_then(|s| s.url.clone()).unwrap_or_default(),
        source
            .and_then(|s| s.claimant.as_ref())
            .map(ToString::to_string)
            .unwrap_or_default(),
        source
            .and_then(|s| s.reliability)
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        source
            .and_then(|s| s.credibility)
            .map(|c| c.to_string())
            .unwrap_or_default(),
        e.version.to_string(),
        e.hash.to_string(),
        e.prev_hash.to_string(),
        e.data.to_string(),
        named.join(","),
        text(e.data.get("killed")),
        text(e.data.get("wounded")),
        text(e.data.get("summary")),
        text(e.data.get("event_id")),
    ];
    w.write_record(cells.iter().map(|c| neutralise(c).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_has_every_column_and_a_formula_summary_is_neutralised() {
        let event: StoredEvent = serde_json::from_value(serde_json::json!({
            "seq": 7, "id": "018f0000-0000-7000-8000-000000000001", "type": "report",
            "location": "aleppo", "occurred_at": "2024-11-30T10:00:00Z",
            "recorded_at": "2024-11-30T10:05:00.000Z", "recorded_by": "anonymous",
            "source": {"name": "Reuters, \"wire\"", "kind": "news_agency", "credibility": 2},
            "data": {"summary": "=HYPERLINK(\"http://x\")"}, "version": 3,
            "prev_hash": "00".repeat(32), "hash": "11".repeat(32)
        }))
        .unwrap();
        let mut w = writer(Vec::new());
        write_header(&mut w).unwrap();
        write_event(&mut w, &event).unwrap();
        let bytes = w.into_inner().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.ends_with("\r\n"), "{text}");
        assert!(text.contains(r#""'=HYPERLINK(""http://x"")""#), "{text}");
        let mut r = csv::Reader::from_reader(bytes.as_slice());
        let headers: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(headers, COLUMNS);
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(row.len(), COLUMNS.len());
        assert_eq!(&row[0], "7");
        assert_eq!(&row[10], "Reuters, \"wire\"");
        assert_eq!(&row[15], "2");
        assert_eq!(&row[23], "'=HYPERLINK(\"http://x\")");
        let data: Value = serde_json::from_str(&row[19]).unwrap();
        assert_eq!(data, event.data);
    }
}
