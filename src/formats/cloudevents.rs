//! Stored events as CloudEvents 1.0 in the structured JSON format: the
//! context attributes, with the stored event, unchanged, as `data`. One
//! mapping for the batch answer, the live feed and the export.

use serde::Serialize;
use uuid::Uuid;

use crate::domain::time::UtcTime;
use crate::domain::StoredEvent;

pub const SPECVERSION: &str = "1.0";
/// The media type of one structured event.
pub const MEDIA_TYPE: &str = "application/cloudevents+json";
/// The media type of a batch: a JSON array of structured events.
pub const BATCH_MEDIA_TYPE: &str = "application/cloudevents-batch+json";
/// `type` is this prefix and the event's type.
pub const TYPE_PREFIX: &str = "org.sitrep.";
/// The `source` of a server or export not told otherwise (`--origin`).
pub const DEFAULT_ORIGIN: &str = "/sitrep";
/// Longest accepted origin.
pub const MAX_ORIGIN_CHARS: usize = 255;
/// Digits of `sequence`: a seq zero-padded to the width of the largest u64,
/// so that string order is log order, as the sequence extension asks.
const SEQUENCE_DIGITS: usize = 20;

/// One stored event as a structured CloudEvent.
#[derive(Serialize)]
pub struct CloudEvent<'a> {
    specversion: &'static str,
    id: Uuid,
    source: &'a str,
    #[serde(rename = "type")]
    event_type: String,
    /// The event's stream: `location/<id>` or `actor/<id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    time: UtcTime,
    /// The sequence extension: the seq, zero-padded.
    sequence: String,
    datacontenttype: &'static str,
    data: &'a StoredEvent,
}

impl<'a> CloudEvent<'a> {
    pub fn of(event: &'a StoredEvent, origin: &'a str) -> CloudEvent<'a> {
        let subject = match (&event.location, &event.actor) {
            (Some(l), _) => Some(format!("location/{l}")),
            (None, Some(a)) => Some(format!("actor/{a}")),
            (None, None) => None,
        };
        CloudEvent {
            specversion: SPECVERSION,
            id: event.id,
            source: origin,
            event_type: format!("{TYPE_PREFIX}{}", event.event_type.as_str()),
            subject,
            time: event.recorded_at,
            sequence: format!("{:0width$}", event.seq, width = SEQUENCE_DIGITS),
            datacontenttype: "application/json",
            data: event,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a stored event serializes")
    }
}

/// Check an origin: CloudEvents wants `source` a non-empty URI-reference
/// (RFC 3986), so only the characters a URI may hold, with `%` escapes.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let uri_char = |c: char| c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c);
    let escapes_ok = text.match_indices('%').all(|(i, _)| {
        text.get(i + 1..i + 3)
            .is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
    });
    if text.is_empty() || text.chars().count() > MAX_ORIGIN_CHARS || !text.chars().all(uri_char) || !escapes_ok {
        return Err(format!(
            "'{text}' is not a URI-reference of 1 to {MAX_ORIGIN_CHARS} characters (e.g. https://news.example/sitrep or /sitrep)"
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_uri_references() {
        for ok in [
            "/sitrep",
            "https://news.example/sitrep",
            "urn:sitrep:log",
            "news.example/sitrep",
            "a%20b",
        ] {
            assert_eq!(parse_origin(ok).as_deref(), Ok(ok));
        }
        for bad in ["", "has space", "a%2", "ünï", "a\nb", &"x".repeat(MAX_ORIGIN_CHARS + 1)] {
            assert!(parse_origin(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sequence_sorts_as_the_log() {
        let event = |seq: u64| -> StoredEvent {
            serde_json::from_value(serde_json::json!({
                "seq": seq, "id": "018f0000-0000-7000-8000-000000000001", "type": "actor_registered",
                "actor": "hts", "recorded_at": "2024-11-30T10:05:00Z", "recorded_by": "anonymous",
                "data": {"name": "HTS", "kind": "non_state_group"}, "version": 1,
                "prev_hash": "00".repeat(32), "hash": "11".repeat(32)
            }))
            .unwrap()
        };
        let (nine, ten) = (event(9), event(10));
        let (a, b) = (CloudEvent::of(&nine, "/sitrep"), CloudEvent::of(&ten, "/sitrep"));
        assert!(a.sequence < b.sequence);
        let v: serde_json::Value = serde_json::from_str(&b.to_json()).unwrap();
        assert_eq!(v["sequence"], "00000000000000000010");
        assert_eq!(v["subject"], "actor/hts");
        assert_eq!(v["type"], "org.sitrep.actor_registered");
        assert_eq!(v["time"], "2024-11-30T10:05:00Z");
        assert_eq!(v["data"], serde_json::to_value(&ten).unwrap());
    }
}
