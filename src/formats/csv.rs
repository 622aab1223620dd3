//! RFC 4180 CSV (UTF-8, CRLF, a header row) through the `csv` crate, with
//! cells a spreadsheet would run as a formula neutralised.

use std::borrow::Cow;

use serde_json::Value;

use super::row::{location_row, LOCATION_COLUMNS};
use crate::projection::LocationView;

/// What a spreadsheet may take as the start of a formula (OWASP, "CSV
/// Injection"): `=`, `+`, `-`, `@`, and tab and carriage return, which some
/// spreadsheets strip before looking.
const FORMULA_STARTS: &[char] = &['=', '+', '-', '@', '\t', '\r'];

/// A text cell that could be read as a formula gets a leading `'` (OWASP's
/// advice), which spreadsheets show as text; every other cell is unchanged.
/// Only text goes through here: a number the server writes (a negative
/// longitude) is a number to a spreadsheet, not a formula.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// A CSV writer in the shape every export uses: RFC 4180 line ends, and
/// every cell that is not a number in quotes, so a neutralised cell is both
/// prefixed and quoted.
pub fn writer<W: std::io::Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::NonNumeric)
        .from_writer(out)
}

/// A JSON scalar as a cell: `null` is empty, strings as they are (neutralised).
fn cell(v: &Value) -> Cow<'_, str> {
    match v {
        Value::Null => Cow::Borrowed(""),
        Value::String(s) => neutralise(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// The location columns: `id`, the flat row, then `lon` and `lat`.
pub fn location_header() -> impl Iterator<Item = &'static str> {
    std::iter::once("id")
        .chain(LOCATION_COLUMNS.iter().copied())
        .chain(["lon", "lat"])
}

pub fn locations(views: &[LocationView]) -> Vec<u8> {
    let mut w = writer(Vec::new());
    let written = w.write_record(location_header()).and_then(|()| {
        views.iter().try_for_each(|v| {
            let row = location_row(v);
            let position = [v.lon, v.lat].map(|c| c.map_or(Value::Null, Value::from));
            let cells = std::iter::once(neutralise(v.id.as_str()))
                .chain(row.iter().map(cell))
                .chain(position.iter().map(cell));
            w.write_record(cells.map(|c| c.into_owned()))
        })
    });
    written.expect("writing CSV into memory cannot fail");
    w.into_inner().expect("flushing into memory cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_get_a_quote_mark_and_other_text_is_kept() {
        for (cell, written) in [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("Aleppo", "Aleppo"),
            ("a=b", "a=b"),
            ("", ""),
            ("حلب", "حلب"),
        ] {
            assert_eq!(neutralise(cell), written, "{cell:?}");
        }
    }

    #[test]
    fn the_writer_quotes_every_cell_that_is_not_a_number() {
        let mut w = writer(Vec::new());
        w.write_record(["'=1", "a,b", "say \"hi\"", "-45.25", "7", ""]).unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(out, "\"'=1\",\"a,b\",\"say \"\"hi\"\"\",-45.25,7,\"\"\r\n");
    }
}
