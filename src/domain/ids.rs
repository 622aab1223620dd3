//! Identifiers: slugs for locations and actors.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::limits::MAX_SLUG_CHARS;

/// A location or actor id: `^[a-z0-9][a-z0-9-]{0,63}$`.
/// Read through `TryFrom<String>`; written as its text, without a copy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Slug(String);

impl Serialize for Slug {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Slug {
    pub fn parse(s: &str) -> Result<Slug, String> {
        Slug::check(s).map(|()| Slug(s.to_owned()))
    }

    fn check(s: &str) -> Result<(), String> {
        let bytes = s.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= MAX_SLUG_CHARS
            && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if ok {
            Ok(())
        } else {
            Err(format!(
                "must match ^[a-z0-9][a-z0-9-]{{0,63}}$ (lowercase letters, digits and '-', at most {MAX_SLUG_CHARS})"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Slug {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Slug::check(&s).map(|()| Slug(s))
    }
}

impl From<Slug> for String {
    fn from(s: Slug) -> String {
        s.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_slugs_and_refuses_the_rest() {
        for good in ["aleppo", "a", "0", "abu-al-duhur-airbase", &"a".repeat(64)] {
            assert!(Slug::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "Aleppo", "al eppo", "a_b", "é", &"a".repeat(65)] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }
}
