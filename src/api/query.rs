//! Strict query-string parsing: unknown or repeated parameters are refused, so a
//! typo (`asof=`) never silently answers a different question.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::{ApiError, Code};
use crate::domain::event::parse_time;
use crate::domain::Slug;
use crate::projection::{Point, Projection};

pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(raw: &str, allowed: &[&str]) -> Result<Query, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
            .map_err(|e| ApiError::new(Code::InvalidParameter, format!("the query string does not parse: {e}")))?;
        let mut map = HashMap::new();
        for (k, v) in pairs {
            if k == MIN_SEQ {
                // Every route takes it; reads wait on it (`guard`).
                if v.parse::<u64>().is_err() {
                    return Err(ApiError::invalid_parameter(MIN_SEQ, "must be a seq: a whole number"));
                }
            } else if !allowed.contains(&k.as_str()) {
                let known = if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                };
                return Err(ApiError::invalid_parameter(
                    &k,
                    format!("is not a parameter of this route (known: {known})"),
                ));
            }
            if map.insert(k.clone(), v).is_some() {
                return Err(ApiError::invalid_parameter(&k, "is given more than once"));
            }
        }
        Ok(Query(map))
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn parsed<T: FromStr>(&self, name: &str) -> Result<Option<T>, ApiError>
    where
        T::Err: std::fmt::Display,
    {
        self.str(name)
            .map(|v| v.parse::<T>().map_err(|e| ApiError::invalid_parameter(name, e)))
            .transpose()
    }

    pub fn uint(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.str(name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| ApiError::invalid_parameter(name, "must be a non-negative integer"))
            })
            .transpose()
    }

    pub fn slug(&self, name: &str) -> Result<Option<Slug>, ApiError> {
        self.str(name)
            .map(|v| Slug::parse(v).map_err(|m| ApiError::invalid_parameter(name, m)))
            .transpose()
    }

    /// `q`, a search text: not blank, at most a name's length.
    pub fn search(&self) -> Result<Option<String>, ApiError> {
        use crate::domain::limits::MAX_NAME_CHARS;
        match self.str("q") {
            None => Ok(None),
            Some(q) if q.trim().is_empty() => Err(ApiError::invalid_parameter("q", "must not be empty")),
            Some(q) if q.chars().count() > MAX_NAME_CHARS => Err(ApiError::invalid_parameter(
                "q",
                format!("must be at most {MAX_NAME_CHARS} characters"),
            )),
            Some(q) => Ok(Some(q.trim().to_owned())),
        }
    }

    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.str(name)
            .map(|v| parse_time(v).map_err(|m| ApiError::invalid_parameter(name, m)))
            .transpose()
    }

    /// `as_of` and `at_seq`; an `at_seq` beyond the head is refused because its
    /// answer could still change.
    pub fn point(&self, projection: &Projection) -> Result<Point, ApiError> {
        let as_of = self.time("as_of")?;
        let at_seq = self.uint("at_seq")?;
        if let Some(s) = at_seq {
            if s > projection.head_seq() {
                return Err(ApiError::invalid_parameter(
                    "at_seq",
                    format!(
                        "is beyond the head of the log (seq {}); its answer could still change",
                        projection.head_seq()
                    ),
                ));
            }
        }
        Ok(Point { as_of, at_seq })
    }
}

/// The parameter that makes a read wait until the server has folded a seq.
pub const MIN_SEQ: &str = "min_seq";

/// A well-formed `min_seq` in a query string (a malformed one is refused by
/// `Query::parse`, with the route's other parameters).
pub fn min_seq(raw: &str) -> Option<u64> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).ok()?;
    pairs
        .into_iter()
        .find(|(k, _)| k == MIN_SEQ)
        .and_then(|(_, v)| v.parse().ok())
}
