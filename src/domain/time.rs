//! A UTC time as the log writes it: an instant and the number of fractional
//! digits of its RFC 3339 text. Inside it is a `DateTime<Utc>`; at the edges
//! (JSON) it is text that reads back to exactly the same bytes, so a stored
//! event's hash never depends on how a time was re-formatted.

use std::fmt;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UtcTime {
    at: DateTime<Utc>,
    /// Fractional digits of a second in the text: 0, 3, 6 or 9.
    digits: u8,
}

fn format_of(digits: u8) -> SecondsFormat {
    match digits {
        0 => SecondsFormat::Secs,
        3 => SecondsFormat::Millis,
        6 => SecondsFormat::Micros,
        _ => SecondsFormat::Nanos,
    }
}

impl UtcTime {
    /// `occurred_at` as stored: sub-second digits only when there are some
    /// (3, 6 or 9 of them, as RFC 3339 writers usually do).
    pub fn occurred(at: DateTime<Utc>) -> UtcTime {
        let text = at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let digits = text
            .split_once('.')
            .map_or(0, |(_, f)| f.bytes().take_while(u8::is_ascii_digit).count() as u8);
        UtcTime { at, digits }
    }

    /// `recorded_at` as stamped by the ledger: to the microsecond.
    pub fn recorded(at: DateTime<Utc>) -> UtcTime {
        UtcTime {
            at: at.trunc_subsecs(6),
            digits: 6,
        }
    }

    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// The fractional digits its text has.
    pub fn digits(&self) -> u8 {
        self.digits
    }

    /// Read a time as the log writes it: RFC 3339 in UTC with `Z` and 0, 3, 6
    /// or 9 fractional digits, such that writing it again gives the same text.
    pub fn parse(text: &str) -> Result<UtcTime, String> {
        let at = DateTime::parse_from_rfc3339(text)
            .map_err(|e| format!("'{text}' is not an RFC 3339 date-time ({e})"))?
            .with_timezone(&Utc);
        let digits = text
            .split_once('.')
            .map_or(0, |(_, f)| f.bytes().take_while(u8::is_ascii_digit).count());
        let time = UtcTime {
            at,
            digits: digits as u8,
        };
        if matches!(digits, 0 | 3 | 6 | 9) && time.to_string() == text {
            Ok(time)
        } else {
            Err(format!(
                "'{text}' is not a time as the log writes it (UTC with Z and 0, 3, 6 or 9 fractional digits)"
            ))
        }
    }
}

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.at.to_rfc3339_opts(format_of(self.digits), true))
    }
}

impl fmt::Debug for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UtcTime({self})")
    }
}

impl Serialize for UtcTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UtcTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<UtcTime, D::Error> {
        let text = String::deserialize(d)?;
        UtcTime::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// RFC 3339 in UTC, keeping sub-second digits only when there are some.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Most fractional digits of a second: nanoseconds, as kept.
const MAX_FRACTION_DIGITS: usize = 9;

/// Parse a posted RFC 3339 timestamp (any offset) to UTC. Refuses what could
/// only be kept as another time: a leap second (:60) and digits beyond
/// nanoseconds.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    read_time(s, true)
}

/// Parse an RFC 3339 timestamp; a leap second only when `strict` is false
/// (earlier releases stored them).
pub(super) fn read_time(s: &str, strict: bool) -> Result<DateTime<Utc>, String> {
    use chrono::{Datelike, Timelike};
    let t = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("must be an RFC 3339 date-time such as 2024-11-30T10:00:00Z ({e})"))?;
    if t.nanosecond() >= 1_000_000_000 && strict {
        return Err("must not be a leap second (:60): the log keeps times without them".into());
    }
    let fraction = s
        .split_once('.')
        .map_or(0, |(_, f)| f.bytes().take_while(u8::is_ascii_digit).count());
    if fraction > MAX_FRACTION_DIGITS {
        return Err(format!(
            "must have at most {MAX_FRACTION_DIGITS} fractional digits (nanoseconds), not {fraction}"
        ));
    }
    // Stored in UTC, it must still be RFC 3339 (years 0000 to 9999).
    if !(0..=9999).contains(&t.year()) {
        return Err("must fall within the years 0000 to 9999 once converted to UTC".into());
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_reads_back_to_the_same_text() {
        for text in [
            "2024-11-30T00:00:00Z",
            "2024-11-30T10:00:00.250Z",
            "2024-11-30T10:00:00.123456Z",
            "2024-11-30T10:00:00.000000Z",
            "2024-11-30T10:00:00.123456789Z",
            "2016-12-31T23:59:60Z",
        ] {
            let t = UtcTime::parse(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(t.to_string(), text);
            assert_eq!(serde_json::to_value(t).unwrap(), serde_json::json!(text));
        }
        for text in [
            "2024-11-30T10:00:00+02:00",
            "2024-11-30T10:00:00.5Z",
            "2024-11-30 10:00:00Z",
            "x",
        ] {
            assert!(UtcTime::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn occurred_keeps_digits_only_when_there_are_some_and_recorded_always_micros() {
        let t: DateTime<Utc> = "2024-11-30T10:00:00.5Z".parse().unwrap();
        assert_eq!(UtcTime::occurred(t).to_string(), "2024-11-30T10:00:00.500Z");
        let whole: DateTime<Utc> = "2024-11-30T10:00:00Z".parse().unwrap();
        assert_eq!(UtcTime::occurred(whole).to_string(), "2024-11-30T10:00:00Z");
        assert_eq!(UtcTime::recorded(whole).to_string(), "2024-11-30T10:00:00.000000Z");
    }
}
