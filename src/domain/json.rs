//! JSON that every reader reads alike. Numbers are IEEE 754 doubles to most
//! JSON parsers (JavaScript's, RFC 8785's), so an integer is exact only up to
//! 2^53 - 1 (I-JSON, RFC 7493 2.2); the service accepts no integer it could
//! not hand back exactly to each of them.

use serde_json::Value;

/// The largest integer every JSON parser reads exactly: 2^53 - 1.
pub const MAX_EXACT_INTEGER: u64 = (1 << 53) - 1;

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
    fn integers_beyond_2_pow_53_are_named_by_path() {
        let v = json!({"a": 9007199254740991u64, "b": -9007199254740991i64, "data": {"killed": 9007199254740992u64,
                       "list": [1, -9007199254740992i64, {"x": u64::MAX}]}, "f": 1e300});
        let mut out = Vec::new();
        inexact_integers(&v, "", &mut out);
        out.sort();
        assert_eq!(out, vec!["data.killed", "data.list[1]", "data.list[2].x"]);
    }
}
