//! How precisely a time is known (CONTRACT section 10): `occurred_at` is the
//! start of its unit, and the development happened at some instant of
//! `[occurred_at, occurred_at + 1 unit)`.

use chrono::{DateTime, Datelike, Days, Months, TimeDelta, Timelike, Utc, Weekday};

use super::event::TimePrecision;

impl TimePrecision {
    /// Is `t` the start of a unit of this precision, in UTC?
    pub fn is_aligned(self, t: &DateTime<Utc>) -> bool {
        let midnight = t.num_seconds_from_midnight() == 0 && t.nanosecond() == 0;
        match self {
            TimePrecision::Instant => true,
            TimePrecision::Hour => t.minute() == 0 && t.second() == 0 && t.nanosecond() == 0,
            TimePrecision::Day => midnight,
            TimePrecision::Week => midnight && t.weekday() == Weekday::Mon,
            TimePrecision::Month => midnight && t.day() == 1,
            TimePrecision::Year => midnight && t.ordinal() == 1,
        }
    }

    /// What an `occurred_at` of this precision must be, for error messages.
    pub fn alignment(self) -> &'static str {
        match self {
            TimePrecision::Instant => "any instant",
            TimePrecision::Hour => "the start of an hour (mm:ss 00:00) in UTC",
            TimePrecision::Day => "the start of a day (T00:00:00Z)",
            TimePrecision::Week => "the start of an ISO 8601 week (a Monday, T00:00:00Z)",
            TimePrecision::Month => "the start of a month (the 1st, T00:00:00Z)",
            TimePrecision::Year => "the start of a year (1 January, T00:00:00Z)",
        }
    }

    /// The end (exclusive) of the window that starts at `start`; `start` itself
    /// for an instant, whose window is over as soon as it is reached.
    pub fn window_end(self, start: DateTime<Utc>) -> DateTime<Utc> {
        let end = match self {
            TimePrecision::Instant => Some(start),
            TimePrecision::Hour => start.checked_add_signed(TimeDelta::hours(1)),
            TimePrecision::Day => start.checked_add_days(Days::new(1)),
            TimePrecision::Week => start.checked_add_days(Days::new(7)),
            TimePrecision::Month => start.checked_add_months(Months::new(1)),
            TimePrecision::Year => start.checked_add_months(Months::new(12)),
        };
        // Beyond chrono's range (years past 262,143) the window never ends.
        end.unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Is a development of this precision starting at `start` settled at
    /// `now`, that is, `now` past its window?
    pub fn settled(self, start: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        now >= self.window_end(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn given_a_precision_then_occurred_at_must_start_its_unit() {
        use TimePrecision::*;
        let cases = [
            (Hour, "2024-11-30T10:00:00Z", true),
            (Hour, "2024-11-30T10:00:01Z", false),
            (Day, "2024-11-30T00:00:00Z", true),
            (Day, "2024-11-30T10:00:00Z", false),
            (Day, "2024-11-30T00:00:00.5Z", false),
            (Week, "2024-11-25T00:00:00Z", true),
            (Week, "2024-11-30T00:00:00Z", false),
            (Month, "2024-11-01T00:00:00Z", true),
            (Month, "2024-11-02T00:00:00Z", false),
            (Year, "2024-01-01T00:00:00Z", true),
            (Year, "2024-02-01T00:00:00Z", false),
            (Instant, "2024-11-30T10:11:12.5Z", true),
        ];
        for (p, at, ok) in cases {
            assert_eq!(p.is_aligned(&t(at)), ok, "{p} {at}");
        }
    }

    #[test]
    fn given_a_window_when_now_is_inside_then_unsettled_and_after_then_settled() {
        let day = t("2024-11-30T00:00:00Z");
        assert!(!TimePrecision::Day.settled(day, t("2024-11-30T23:59:59Z")));
        assert!(TimePrecision::Day.settled(day, t("2024-12-01T00:00:00Z")));
        assert!(TimePrecision::Instant.settled(day, day));
        assert_eq!(
            TimePrecision::Month.window_end(t("2024-02-01T00:00:00Z")),
            t("2024-03-01T00:00:00Z")
        );
        assert_eq!(
            TimePrecision::Year.window_end(t("2024-01-01T00:00:00Z")),
            t("2025-01-01T00:00:00Z")
        );
        assert_eq!(
            TimePrecision::Week.window_end(t("2024-11-25T00:00:00Z")),
            t("2024-12-02T00:00:00Z")
        );
        assert_eq!(
            TimePrecision::Hour.window_end(t("2024-11-25T23:00:00Z")),
            t("2024-11-26T00:00:00Z")
        );
    }
}
