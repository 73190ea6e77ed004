//! Points in time typed by users: `log --since/--until` and `NAME@{DATE}`.
//! Calendar dates are days of the host's time zone (snapshot times are the
//! host's clock, see docs/format.md §6).
//!
//! Accepted forms:
//! - `2026-03-14` — a day: its start as a lower bound, its end as an upper
//!   bound (so `--until 2026-03-14` and `@{2026-03-14}` include that whole day);
//! - `2026-03-14 09:30`, `2026-03-14T09:30:15` — a local date and time;
//! - `2026-03-14T09:30:00Z`, `…+01:00` — an exact instant (RFC 3339);
//! - `today`, `yesterday` — days, like a date; `now`;
//! - `3 days ago`, `2w`, `12h`, `1 month ago` — that long before now
//!   (calendar units by the local calendar).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned};

/// Which end of a day a bare date stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// The first instant of the day (`--since`).
    Start,
    /// The last instant of the day (`--until`, `@{DATE}`).
    End,
}

/// A point in time as nanoseconds since the Unix epoch; with [`Bound::End`]
/// a day yields its last nanosecond. `now` and `tz` are parameters so tests
/// are deterministic; the CLI passes the host's clock and zone.
pub fn parse(s: &str, bound: Bound, now: Timestamp, tz: &TimeZone) -> Result<i64, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "cannot read {s:?} as a date: use YYYY-MM-DD, 'YYYY-MM-DD HH:MM', an RFC 3339 time, 'yesterday' or '3 days ago'"
        )
    };
    if t.is_empty() {
        return Err(bad());
    }
    let zoned_now = now.to_zoned(tz.clone());
    let day = |d: Date| -> Result<i64, String> {
        let start = d.to_zoned(tz.clone()).map_err(|e| e.to_string())?;
        let ns = match bound {
            Bound::Start => start.timestamp().as_nanosecond(),
            Bound::End => {
                let next = start
                    .tomorrow()
                    .map_err(|e| e.to_string())?
                    .start_of_day()
                    .map_err(|e| e.to_string())?;
                next.timestamp().as_nanosecond() - 1
            }
        };
        Ok(ns as i64)
    };
    match t.to_ascii_lowercase().as_str() {
        "now" => return Ok(now.as_nanosecond() as i64),
        "today" => return day(zoned_now.date()),
        "yesterday" => return day(zoned_now.date().yesterday().map_err(|e| e.to_string())?),
        _ => {}
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts.as_nanosecond() as i64);
    }
    if t.contains(':') {
        if let Ok(dt) = t.parse::<DateTime>() {
            let z = dt.to_zoned(tz.clone()).map_err(|e| e.to_string())?;
            return Ok(z.timestamp().as_nanosecond() as i64);
        }
    } else if let Ok(d) = t.parse::<Date>() {
        return day(d);
    }
    if t.chars().next().is_some_and(|c| c.is_ascii_digit())
        && let Ok(span) = t.parse::<Span>()
    {
        let back = if span.is_negative() {
            span
        } else {
            span.negate()
        };
        let z: Zoned = zoned_now.checked_add(back).map_err(|e| e.to_string())?;
        return Ok(z.timestamp().as_nanosecond() as i64);
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str, b: Bound) -> Result<i64, String> {
        let now: Timestamp = "2026-03-14T12:00:00Z".parse().unwrap();
        parse(s, b, now, &TimeZone::UTC)
    }

    fn ts(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_nanosecond() as i64
    }

    #[test]
    fn days_have_two_ends() {
        assert_eq!(
            utc("2026-03-10", Bound::Start).unwrap(),
            ts("2026-03-10T00:00:00Z")
        );
        assert_eq!(
            utc("2026-03-10", Bound::End).unwrap(),
            ts("2026-03-11T00:00:00Z") - 1
        );
        assert_eq!(
            utc("today", Bound::Start).unwrap(),
            ts("2026-03-14T00:00:00Z")
        );
        assert_eq!(
            utc("yesterday", Bound::End).unwrap(),
            ts("2026-03-14T00:00:00Z") - 1
        );
    }

    #[test]
    fn times_and_spans() {
        assert_eq!(
            utc("2026-03-10 09:30", Bound::End).unwrap(),
            ts("2026-03-10T09:30:00Z")
        );
        assert_eq!(
            utc("2026-03-10T09:30:00+01:00", Bound::Start).unwrap(),
            ts("2026-03-10T08:30:00Z")
        );
        assert_eq!(
            utc("2 days ago", Bound::Start).unwrap(),
            ts("2026-03-12T12:00:00Z")
        );
        assert_eq!(utc("3h", Bound::Start).unwrap(), ts("2026-03-14T09:00:00Z"));
        assert_eq!(
            utc("1 month ago", Bound::Start).unwrap(),
            ts("2026-02-14T12:00:00Z")
        );
        assert!(utc("next tuesday", Bound::Start).is_err());
        assert!(utc("2026-13-01", Bound::Start).is_err());
        assert!(utc("", Bound::Start).is_err());
    }
}
