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
//!
//! Durations — these, `forget --keep-within`, `gc --grace` — have one syntax,
//! [`parse_span`]: jiff's "friendly" format (`30d`, `2h 30m`, `1y 6mo`,
//! `90min`, `2 weeks`; `m` is minutes, `mo` months) or ISO 8601 (`P1Y6M`).

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
        && let Ok(span) = parse_span(t)
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

/// A duration typed by a user: jiff's friendly format (`30d`, `1y 6mo`,
/// `2h30m`, `90 minutes`, `3 days ago`) or ISO 8601 (`P30D`); `0` is none.
/// Units: `y` years, `mo` months, `w` weeks, `d` days, `h` hours, `m`/`min`
/// minutes, `s` seconds.
pub fn parse_span(s: &str) -> Result<Span, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Span::new());
    }
    t.parse::<Span>().map_err(|_| {
        format!(
            "cannot read {s:?} as a duration: use numbers with units y, mo (months), w, d, h, m (minutes), s, e.g. 30d, 1y 6mo, 2h30m"
        )
    })
}

/// Whether `s` uses `m` alone as a unit (`30m`, `1y6m`). It means minutes
/// in [`parse_span`], but months in restic's `--keep-within`: callers where
/// the old reading was months refuse it rather than change its meaning.
pub fn has_bare_m(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c == b'm'
            && i > 0
            && (b[i - 1].is_ascii_digit() || b[i - 1] == b' ')
            && b.get(i + 1).is_none_or(|n| !n.is_ascii_alphabetic())
    })
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
        assert_eq!(
            utc("2mo", Bound::Start).unwrap(),
            ts("2026-01-14T12:00:00Z")
        );
        assert_eq!(
            utc("90m", Bound::Start).unwrap(),
            ts("2026-03-14T10:30:00Z")
        );
        assert!(utc("next tuesday", Bound::Start).is_err());
        assert!(utc("2026-13-01", Bound::Start).is_err());
        assert!(utc("", Bound::Start).is_err());
    }
}

#[cfg(test)]
mod span_tests {
    use super::*;

    #[test]
    fn one_duration_syntax() {
        let hours = |s: &str| {
            parse_span(s)
                .unwrap()
                .total((jiff::Unit::Hour, jiff::SpanRelativeTo::days_are_24_hours()))
                .unwrap()
        };
        assert_eq!(hours("24h"), 24.0);
        assert_eq!(hours("1d 12h"), 36.0);
        assert_eq!(hours("1d12h"), 36.0);
        assert_eq!(hours("90m"), 1.5);
        assert_eq!(hours("90min"), 1.5);
        assert_eq!(hours("2w"), 336.0);
        assert_eq!(hours("P2D"), 48.0);
        assert_eq!(hours("0"), 0.0);
        let s = parse_span("1y 6mo").unwrap();
        assert_eq!((s.get_years(), s.get_months()), (1, 6));
        assert!(parse_span("soon").is_err());
        assert!(parse_span("5").is_err());
        assert!(has_bare_m("30m") && has_bare_m("1y6m") && has_bare_m("1y 6m 2d"));
        assert!(!has_bare_m("6mo") && !has_bare_m("30min") && !has_bare_m("2 months"));
    }
}
