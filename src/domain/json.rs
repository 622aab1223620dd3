//! JSON that every reader reads alike. Numbers are IEEE 754 doubles to most
//! JSON parsers (JavaScript's, RFC 8785's), so an integer is exact only up to
//! 2^53 - 1 (I-JSON, RFC 7493 2.2); the service accepts no integer it could
//! not hand back exactly to each of them.
//!
//! Every JSON a client sends (a request body, an import line) is read by
//! `parse`, which refuses what readers disagree on: a member given twice is
//! read as the first by some parsers and as the last by others (serde_json).

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
}

/// Read one JSON text strictly (see the module documentation).
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    let settings = ReaderSettings {
        // Paths are named by `read` as an error unwinds.
        track_path: false,
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
            serde_json::from_str(text).map_err(|e| Failure {
                path: Vec::new(),
                kind: FailureKind::Syntax(e.to_string()),
            })?
        }
        ValueType::Boolean => Value::Bool(r.next_bool()?),
        ValueType::Null => {
            r.next_null()?;
            Value::Null
        }
    })
}

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
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
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
        assert_eq!(parse(br#"{"a":{"a":1},"b":[{"a":1},{"a":1}]}"#).unwrap()["b"][1]["a"], 1);
        for bad in [&b"{"[..], b"[1,]", b"{\"a\":1} x", b"\"\\ud800\"", b"\xff", b"01", b"NaN", b""] {
            assert!(matches!(parse(bad), Err(JsonError::Malformed(_))), "{}", String::from_utf8_lossy(bad));
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
