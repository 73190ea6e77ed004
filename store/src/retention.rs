//! Retention policies (`belay forget`), with restic's semantics:
//!
//! - snapshots are grouped by source and each group is taken newest first;
//! - `keep-last N` keeps the N newest snapshots;
//! - `keep-hourly/daily/weekly/monthly/yearly N` keep, for each of the N most
//!   recent hours/days/ISO weeks/months/years *that have snapshots*, the newest
//!   snapshot in it (buckets are calendar periods of the given time zone);
//! - `keep-within DURATION` keeps every snapshot taken less than DURATION
//!   (`1y5m7d2h`: years, months, days, hours; `w` weeks) before the group's
//!   newest snapshot — not before "now", so an idle source keeps its history;
//! - `keep-tag NAME` keeps snapshots a tag of that name points at (tagged
//!   snapshots are always kept anyway, whatever the policy);
//! - a snapshot is kept when any rule keeps it; every rule that does is named;
//! - as in restic 0.17, when a calendar rule (`hourly` … `yearly`) finds
//!   fewer buckets than it may keep, the group's oldest snapshot is kept too
//!   ("oldest daily"), so the start of a history is never lost to a policy
//!   that has room for it.
//!
//! Times are the host's clock recorded at backup (`Snapshot.time_ns`): boards'
//! own clocks often start at 2000-01-01 and would put every snapshot in one
//! bucket.

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ToSpan};

/// How many buckets a rule keeps. `u32::MAX` means unlimited.
pub type Count = u32;
pub const UNLIMITED: Count = u32::MAX;

/// A calendar span for `--keep-within`: restic's `1y5m7d2h` (years, months,
/// days, hours); `w` (weeks) is accepted as 7 days.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Within {
    pub years: i64,
    pub months: i64,
    pub days: i64,
    pub hours: i64,
}

impl Within {
    pub fn parse(s: &str) -> Result<Within, String> {
        let bad = || {
            format!(
                "cannot read {s:?} as a duration: use numbers with units y (years), m (months), w (weeks), d (days), h (hours), e.g. 1y6m, 30d, 12h"
            )
        };
        let mut w = Within::default();
        let mut num = String::new();
        let mut any = false;
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: i64 = num.parse().map_err(|_| bad())?;
            if n > 100_000 {
                return Err(bad());
            }
            num.clear();
            match c {
                'y' => w.years += n,
                'm' => w.months += n,
                'w' => w.days += 7 * n,
                'd' => w.days += n,
                'h' => w.hours += n,
                _ => return Err(bad()),
            }
            any = true;
        }
        if !num.is_empty() || !any {
            return Err(bad());
        }
        if w == Within::default() {
            return Err(format!("{s:?}: the duration must be longer than 0"));
        }
        Ok(w)
    }

    /// The instant `self` before `t`, calendar-correct in `tz`.
    fn before(&self, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let z = t.to_zoned(tz.clone());
        let span: Span = self
            .years
            .years()
            .months(self.months)
            .days(self.days)
            .hours(self.hours);
        z.checked_sub(span).ok().map(|z| z.timestamp())
    }
}

impl std::fmt::Display for Within {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut any = false;
        for (n, u) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{u}")?;
                any = true;
            }
        }
        if !any {
            f.write_str("0h")?;
        }
        Ok(())
    }
}

/// A retention policy. An empty policy keeps nothing and is refused by
/// [`Policy::validate`]: forgetting every snapshot takes an explicit rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: Option<Count>,
    pub hourly: Option<Count>,
    pub daily: Option<Count>,
    pub weekly: Option<Count>,
    pub monthly: Option<Count>,
    pub yearly: Option<Count>,
    pub within: Option<Within>,
    /// Tag names (globs `*` and `?` allowed) whose snapshots are kept.
    pub tags: Vec<String>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        let zero = |c: Option<Count>| c.unwrap_or(0) == 0;
        zero(self.last)
            && zero(self.hourly)
            && zero(self.daily)
            && zero(self.weekly)
            && zero(self.monthly)
            && zero(self.yearly)
            && self.within.is_none()
            && self.tags.is_empty()
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.is_empty() {
            return Err("no retention policy given: forgetting every snapshot is refused; use --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within or --keep-tag".into());
        }
        Ok(())
    }

    /// A one-line description, e.g. `keep-last 3, keep-daily 7`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let n = |c: Count| {
            if c == UNLIMITED {
                "unlimited".to_string()
            } else {
                c.to_string()
            }
        };
        for (name, c) in [
            ("keep-last", self.last),
            ("keep-hourly", self.hourly),
            ("keep-daily", self.daily),
            ("keep-weekly", self.weekly),
            ("keep-monthly", self.monthly),
            ("keep-yearly", self.yearly),
        ] {
            if let Some(c) = c.filter(|&c| c > 0) {
                parts.push(format!("{name} {}", n(c)));
            }
        }
        if let Some(w) = self.within {
            parts.push(format!("keep-within {w}"));
        }
        for t in &self.tags {
            parts.push(format!("keep-tag {t}"));
        }
        parts.join(", ")
    }
}

/// Parse a `--keep-*` count: a number or `unlimited`.
pub fn parse_count(s: &str) -> Result<Count, String> {
    if s.eq_ignore_ascii_case("unlimited") || s == "-1" {
        return Ok(UNLIMITED);
    }
    s.parse::<u32>()
        .ok()
        .filter(|&n| n < UNLIMITED)
        .ok_or_else(|| format!("{s:?} is not a count: use a whole number or 'unlimited'"))
}

/// One snapshot of a group, as the policy sees it.
#[derive(Clone, Debug)]
pub struct Candidate<I> {
    pub id: I,
    pub time_ns: i64,
    /// Names of the tags pointing at it.
    pub tags: Vec<String>,
}

/// What the policy decided for one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<I> {
    pub id: I,
    pub time_ns: i64,
    pub keep: bool,
    /// Every rule that keeps it (`last snapshot`, `daily snapshot`,
    /// `within 30d`, `tagged v1`, `oldest daily snapshot`); empty when removed.
    pub reasons: Vec<String>,
}

#[derive(Clone, Copy)]
enum Unit {
    Last,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

fn bucket(unit: Unit, t: Timestamp, tz: &TimeZone, index: usize) -> i64 {
    let z = t.to_zoned(tz.clone());
    let (y, m, d, h) = (
        z.year() as i64,
        z.month() as i64,
        z.day() as i64,
        z.hour() as i64,
    );
    match unit {
        Unit::Last => index as i64,
        Unit::Hour => ((y * 100 + m) * 100 + d) * 100 + h,
        Unit::Day => (y * 100 + m) * 100 + d,
        Unit::Week => {
            let w = z.date().iso_week_date();
            w.year() as i64 * 100 + w.week() as i64
        }
        Unit::Month => y * 100 + m,
        Unit::Year => y,
    }
}

/// Apply `policy` to one group (one source). Returns one decision per
/// snapshot, newest first (ties broken by id, so the result is
/// deterministic). `tz` defines the calendar buckets.
pub fn apply<I: Clone + Ord>(
    policy: &Policy,
    snaps: &[Candidate<I>],
    tz: &TimeZone,
) -> Vec<Decision<I>> {
    let mut list: Vec<&Candidate<I>> = snaps.iter().collect();
    list.sort_by(|a, b| b.time_ns.cmp(&a.time_ns).then_with(|| b.id.cmp(&a.id)));
    let ts = |ns: i64| Timestamp::from_nanosecond(ns as i128).unwrap_or(Timestamp::UNIX_EPOCH);

    struct Rule {
        unit: Unit,
        left: Count,
        last: Option<i64>,
        reason: &'static str,
        calendar: bool,
    }
    let mut rules: Vec<Rule> = [
        (Unit::Last, policy.last, "last snapshot", false),
        (Unit::Hour, policy.hourly, "hourly snapshot", true),
        (Unit::Day, policy.daily, "daily snapshot", true),
        (Unit::Week, policy.weekly, "weekly snapshot", true),
        (Unit::Month, policy.monthly, "monthly snapshot", true),
        (Unit::Year, policy.yearly, "yearly snapshot", true),
    ]
    .into_iter()
    .filter_map(|(unit, c, reason, calendar)| {
        c.filter(|&c| c > 0).map(|left| Rule {
            unit,
            left,
            last: None,
            reason,
            calendar,
        })
    })
    .collect();

    let within_from = match (policy.within, list.first()) {
        (Some(w), Some(newest)) => w.before(ts(newest.time_ns), tz),
        _ => None,
    };
    let tag_matches = |tag: &str| policy.tags.iter().any(|p| glob_match(p, tag));

    let mut out = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let t = ts(s.time_ns);
        let mut reasons = Vec::new();
        for tag in &s.tags {
            if tag_matches(tag) {
                reasons.push(format!("keep-tag {tag}"));
            } else {
                reasons.push(format!("tagged {tag}"));
            }
        }
        if let (Some(from), Some(w)) = (within_from, policy.within)
            && t > from
        {
            reasons.push(format!("within {w}"));
        }
        for r in rules.iter_mut() {
            if r.left == 0 {
                continue;
            }
            let b = bucket(r.unit, t, tz, i);
            if r.last != Some(b) {
                r.last = Some(b);
                if r.left != UNLIMITED {
                    r.left -= 1;
                }
                reasons.push(r.reason.to_string());
            }
        }
        out.push(Decision {
            id: s.id.clone(),
            time_ns: s.time_ns,
            keep: !reasons.is_empty(),
            reasons,
        });
    }
    // restic 0.17: a calendar rule with buckets to spare keeps the oldest.
    if let Some(oldest) = out.last_mut() {
        for r in rules
            .iter()
            .filter(|r| r.calendar && r.left > 0 && r.left != UNLIMITED)
        {
            if !oldest.keep || oldest.reasons.iter().any(|x| x.starts_with("oldest ")) {
                oldest.reasons.push(format!("oldest {}", r.reason));
                oldest.keep = true;
            }
        }
    }
    out
}

/// `*` (any run of characters) and `?` (one character) globbing, for tag names.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// A duration for `gc --grace`: numbers with units `d`, `h`, `m` (minutes),
/// `s`, e.g. `24h`, `1d12h`, `90m`, or `0`.
pub fn parse_grace(s: &str) -> Result<std::time::Duration, String> {
    let bad = || {
        format!(
            "cannot read {s:?} as a duration: use numbers with units d, h, m (minutes), s, e.g. 24h, 2d, 30m, or 0"
        )
    };
    let t = s.trim();
    if t == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut secs: u64 = 0;
    let mut num = String::new();
    let mut any = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let mul = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        secs = n
            .checked_mul(mul)
            .and_then(|x| secs.checked_add(x))
            .ok_or_else(bad)?;
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(
            Within::parse("1y5m7d2h").unwrap(),
            Within {
                years: 1,
                months: 5,
                days: 7,
                hours: 2
            }
        );
        assert_eq!(Within::parse("2w").unwrap().days, 14);
        assert!(Within::parse("").is_err());
        assert!(Within::parse("5").is_err());
        assert!(Within::parse("5x").is_err());
        assert!(Within::parse("0d").is_err());
        assert_eq!(parse_grace("24h").unwrap().as_secs(), 86_400);
        assert_eq!(parse_grace("1d30m").unwrap().as_secs(), 88_200);
        assert_eq!(parse_grace("0").unwrap().as_secs(), 0);
        assert!(parse_grace("soon").is_err());
        assert_eq!(parse_count("unlimited").unwrap(), UNLIMITED);
        assert!(parse_count("-3").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_match("v*", "v1.2"));
        assert!(glob_match("release-?", "release-3"));
        assert!(!glob_match("release-?", "release-33"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a", "b"));
    }
}
