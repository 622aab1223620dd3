//! Who says so: an event's source and its checks.

use serde::{Deserialize, Serialize};

use super::event::*;
use super::ids::Slug;
use super::limits::*;
use super::validation::FieldError;

/// Who says so. A source with a `claimant` makes the event a claim by that party.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    pub kind: SourceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimant: Option<Slug>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reliability: Option<Reliability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credibility: Option<u8>,
}

pub(super) fn check_source(s: &Source, reading: Reading) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_text(&mut errors, "source.name", &s.name, MAX_NAME_CHARS, reading);
    if let Some(url) = &s.url {
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.chars().count() > MAX_URL_CHARS {
            errors.push(FieldError::new(
                "source.url",
                format!("must be an http(s) URL of at most {MAX_URL_CHARS} characters"),
            ));
        }
    }
    if let Some(c) = s.credibility {
        if !(1..=6).contains(&c) {
            errors.push(FieldError::new("source.credibility", "must be an integer from 1 to 6"));
        }
    }
    errors
}
