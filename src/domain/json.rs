//! JSON that every reader reads alike. Numbers are IEEE 754 doubles to most
//! JSON parsers (JavaScript's, RFC 8785's), so an integer is exact only up to
//! 2^53 - 1 (I-JSON, RFC 7493 2.2); the service accepts no integer it could
//! not hand back exactly to each of them.
//!
//! Every JSON a client sends (a request body, an import line) is read by
//! `parse`, which refuses what readers disagree on: a member given twice is
//! read as the first by some parsers and as the last by others (serde_json).
//! A number is read as the value it will be stored and answered as: an
//! integer that fits 64 bits as itself, any other as the nearest double, which
//! must be the number written (`36.20` and `3.62e1` are 36.2, `-0` is 0; but
//! `1e-400` or `36.20210000000000000001`, which a double cannot hold, are
//! refused rather than stored as another number).

use serde_json::{Map, Value};
use struson::reader::{JsonReader, JsonStreamReader, ReaderSettings, ValueType};

/// The largest integer every JSON parser reads exactly: 2^53 - 1.
pub const MAX_EXACT_INTEGER: u64 = (1 << 53) - 1;

/// Why a client's JSON is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON (RFC 8259), or JSON that readers read differently.
    #[error("{0}")]
    Malformed(String),
    /// A number no double holds exactly, at `field` (a path such as `data.lat`).
    #[error("{field}: {message}")]
    Inexact { field: String, message: String },
}

/// Read one JSON text strictly (see the module documentation).
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    let settings = ReaderSettings {
        // Paths are named by `read` as an error unwinds.
        track_path: false,
        // `number` holds every number to a stricter rule.
        restrict_number_values: false,
        ..ReaderSettings::default()
    };
    let mut reader = JsonStreamReader::new_custom(bytes, settings);
    let value = read(&mut reader).map_err(|e| e.into_error())?;
    reader
        .consume_trailing_whitespace()
        .map_err(|e| JsonError::Malformed(format!("not valid JSON: {e}")))?;
    Ok(value)
}

/// A refusal on its way up, with the path below the current value.
struct Failure {
    /// Innermost segment last.
    path: Vec<String>,
    kind: FailureKind,
}

enum FailureKind {
    Syntax(String),
    Duplicate,
    Inexact(String),
}

impl Failure {
    fn at(mut self, segment: String) -> Failure {
        self.path.push(segment);
        self
    }

    fn into_error(self) -> JsonError {
        let mut path = String::new();
        for segment in self.path.iter().rev() {
            if !path.is_empty() && !segment.starts_with('[') {
                path.push('.');
            }
            path.push_str(segment);
        }
        match self.kind {
            FailureKind::Syntax(message) => JsonError::Malformed(format!("not valid JSON: {message}")),
            FailureKind::Duplicate => JsonError::Malformed(format!(
                "duplicate member '{path}' (JSON readers differ on which one counts)"
            )),
            FailureKind::Inexact(message) => JsonError::Inexact { field: path, message },
        }
    }
}

impl From<struson::reader::ReaderError> for Failure {
    fn from(e: struson::reader::ReaderError) -> Failure {
        Failure {
            path: Vec::new(),
            kind: FailureKind::Syntax(e.to_string()),
        }
    }
}

fn read(r: &mut JsonStreamReader<&[u8]>) -> Result<Value, Failure> {
    Ok(match r.peek()? {
        ValueType::Object => {
            r.begin_object()?;
            let mut members = Map::new();
            while r.has_next()? {
                let name = r.next_name_owned()?;
                if members.contains_key(&name) {
                    return Err(Failure {
                        path: vec![name],
                        kind: FailureKind::Duplicate,
                    });
                }
                let value = read(r).map_err(|f| f.at(name.clone()))?;
                members.insert(name, value);
            }
            r.end_object()?;
            Value::Object(members)
        }
        ValueType::Array => {
            r.begin_array()?;
            let mut items = Vec::new();
            while r.has_next()? {
                let i = items.len();
                items.push(read(r).map_err(|f| f.at(format!("[{i}]")))?);
            }
            r.end_array()?;
            Value::Array(items)
        }
        ValueType::String => Value::String(r.next_string()?),
        ValueType::Number => {
            let text = r.next_number_as_str()?;
            number(text).map_err(|message| Failure {
                path: Vec::new(),
                kind: FailureKind::Inexact(message),
            })?
        }
        ValueType::Boolean => Value::Bool(r.next_bool()?),
        ValueType::Null => {
            r.next_null()?;
            Value::Null
        }
    })
}

/// A JSON number (valid RFC 8259 text) as the value it is stored as.
fn number(text: &str) -> Result<Value, String> {
    if !text.contains(['.', 'e', 'E']) {
        if let Ok(u) = text.parse::<u64>() {
            return Ok(u.into());
        }
        if let Ok(i) = text.parse::<i64>() {
            return Ok(i.into());
        }
    }
    // Rust's parse rounds correctly: this is the double nearest the text.
    let f: f64 = text.parse().map_err(|_| format!("{text} is not a number"))?;
    if !f.is_finite() {
        return Err(format!("{text} is beyond the range of a JSON number (a double)"));
    }
    // RFC 8785 writes a double as its shortest decimal form.
    let mut buffer = ryu_js::Buffer::new();
    let stored = buffer.format_finite(f);
    match (decimal(text), decimal(stored)) {
        (Some(a), Some(b)) if a == b => Ok(Value::from(if f == 0.0 { 0.0 } else { f })),
        _ => Err(format!(
            "{text} is not a number a JSON double holds exactly: it would be stored as {stored}"
        )),
    }
}

/// The decimal value of a number's text as (negative, significant digits,
/// exponent), with zero as one value whatever its sign; `None` if the exponent
/// is beyond 64 bits.
fn decimal(text: &str) -> Option<(bool, String, i64)> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let significant = digits.trim_end_matches('0');
    let exponent = exponent
        .checked_sub(frac.len() as i64)?
        .checked_add((digits.len() - significant.len()) as i64)?;
    let significant = significant.trim_start_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    Some((negative, significant.to_owned(), exponent))
}

/// Rewrite `value` as reading its RFC 8785 form back gives it, so an event
/// held in memory serves as the stored one does: RFC 8785 writes an integral
/// double below 10^21 (36.0, -0.0) as integer digits, which read back as an
/// integer when they fit 64 bits.
pub fn as_read_back(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            if f.fract() == 0.0 && f.abs() < TWO_POW_63 {
                *value = Value::from(f as i64);
            } else if f.fract() == 0.0 && (0.0..2.0 * TWO_POW_63).contains(&f) {
                *value = Value::from(f as u64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(as_read_back),
        Value::Object(members) => members.values_mut().for_each(as_read_back),
        Value::Number(_) | Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

/// 2^63: doubles below it in magnitude convert to i64 exactly.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// The paths (`data.killed`, `[2].wounded`) of the integers in `value` that
/// lie beyond ±`MAX_EXACT_INTEGER`, each with `prefix` (a member name or "").
pub fn inexact_integers(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Number(n) => {
            let beyond = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u > MAX_EXACT_INTEGER,
                (None, Some(i)) => i.unsigned_abs() > MAX_EXACT_INTEGER,
                (None, None) => false,
            };
            if beyond {
                out.push(prefix.to_owned());
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                inexact_integers(item, &format!("{prefix}[{i}]"), out);
            }
        }
        Value::Object(members) => {
            for (k, v) in members {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                inexact_integers(v, &path, out);
            }
        }
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn duplicate_members_are_refused_by_their_path() {
        for (text, member) in [
            (r#"{"a":1,"a":1}"#, "a"),
            (r#"{"a":{"b":[{"c":1},{"c":1,"c":2}]}}"#, "a.b[1].c"),
            (r#"[{"x":1},{"y":{"z":1,"z":null}}]"#, "[1].y.z"),
        ] {
            let Err(JsonError::Malformed(m)) = parse(text.as_bytes()) else {
                panic!("{text} accepted")
            };
            assert!(m.starts_with(&format!("duplicate member '{member}'")), "{text}: {m}");
        }
        assert_eq!(
            parse(br#"{"a":{"a":1},"b":[{"a":1},{"a":1}]}"#).unwrap()["b"][1]["a"],
            1
        );
        for bad in [
            &b"{"[..],
            b"[1,]",
            b"{\"a\":1} x",
            b"\"\\ud800\"",
            b"\xff",
            b"01",
            b"NaN",
            b"",
        ] {
            assert!(
                matches!(parse(bad), Err(JsonError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn numbers_are_read_as_the_value_they_are_stored_as_or_refused() {
        for (text, read) in [
            ("36.20", json!(36.2)),
            ("3.62e1", json!(36.2)),
            ("-0.0", json!(0.0)),
            ("-0", json!(0)),
            ("0e-999999999999999999", json!(0.0)),
            ("1E+2", json!(100.0)),
            ("1e-7", json!(1e-7)),
            ("1.5e-323", json!(1.5e-323)),
            ("18446744073709551615", json!(u64::MAX)),
            ("-9223372036854775808", json!(i64::MIN)),
            ("1.7976931348623157e308", json!(f64::MAX)),
        ] {
            let v = parse(format!("[{text}]").as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
            // Compared as written, so -0.0 and 0.0 differ.
            assert_eq!(v[0].to_string(), read.to_string(), "{text}");
        }
        for text in [
            "1e-400",
            "36.20210000000000000001",
            "-1e-330",
            "1e400",
            "18446744073709551616",
            "0.1e99999999999999999999",
            "9007199254740993.0",
        ] {
            let Err(JsonError::Inexact { field, message }) = parse(format!(r#"{{"a":[{text}]}}"#).as_bytes()) else {
                panic!("{text} accepted")
            };
            assert_eq!(field, "a[0]");
            assert!(message.starts_with(text), "{message}");
        }
    }

    #[test]
    fn values_read_back_as_their_canonical_form_reads() {
        for v in [
            json!({"a": [36.0, -0.0, 0.5, 1e20, 1e21, -1e18, 1.8446744073709552e19, 5, "x"]}),
            json!(-2.5e-7),
        ] {
            let mut mine = v.clone();
            as_read_back(&mut mine);
            let back: Value = serde_json::from_slice(&super::super::jcs::to_vec(&v)).unwrap();
            assert_eq!(mine.to_string(), back.to_string());
        }
    }

    #[test]
    fn integers_beyond_2_pow_53_are_named_by_path() {
        let v = json!({"a": 9007199254740991u64, "b": -9007199254740991i64, "data": {"killed": 9007199254740992u64,
                       "list": [1, -9007199254740992i64, {"x": u64::MAX}]}, "f": 1e300});
        let mut out = Vec::new();
        inexact_integers(&v, "", &mut out);
        out.sort();
        assert_eq!(out, vec!["data.killed", "data.list[1]", "data.list[2].x"]);
    }
}
