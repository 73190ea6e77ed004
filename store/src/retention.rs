//! Retention policies (`belay forget`), with restic's semantics:
//!
//! - snapshots are grouped by source and each group is taken newest first;
//! - `keep-last N` keeps the N newest snapshots;
//! - `keep-hourly/daily/weekly/monthly/yearly N` keep, for each of the N most
//!   recent hours/days/ISO weeks/months/years *that have snapshots*, the newest
//!   snapshot in it (buckets are calendar periods of the given time zone);
//! - `keep-within DURATION` keeps every snapshot taken less than DURATION
//!   (`1y 6mo`, `30d`, `12h`: see `timespec::parse_span`) before the group's
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
use jiff::{Span, Timestamp};

/// How many buckets a rule keeps. `u32::MAX` means unlimited.
pub type Count = u32;
pub const UNLIMITED: Count = u32::MAX;

/// A span for `--keep-within`, in the one duration syntax
/// ([`crate::timespec::parse_span`]): `30d`, `1y 6mo`, `12h`. restic's
/// `m` for months is refused with a hint (`m` is minutes elsewhere).
#[derive(Clone, Copy, Debug)]
pub struct Within(Span);

impl PartialEq for Within {
    fn eq(&self, other: &Within) -> bool {
        self.0.fieldwise() == other.0.fieldwise()
    }
}
impl Eq for Within {}

impl Within {
    pub fn parse(s: &str) -> Result<Within, String> {
        if crate::timespec::has_bare_m(s) {
            return Err(format!(
                "{s:?}: `m` is ambiguous here (restic reads months, belay's durations minutes); write `mo` for months (e.g. {}) or `min` for minutes",
                s.replace('m', "mo")
            ));
        }
        let span = crate::timespec::parse_span(s)?;
        if span.is_zero() || span.is_negative() {
            return Err(format!("{s:?}: the duration must be longer than 0"));
        }
        Ok(Within(span))
    }

    /// The instant `self` before `t`, calendar-correct in `tz`.
    fn before(&self, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let z = t.to_zoned(tz.clone());
        z.checked_sub(self.0).ok().map(|z| z.timestamp())
    }
}

impl std::fmt::Display for Within {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The friendly format without spaces: `1y6mo`, `30d`.
        write!(f, "{}", format!("{:#}", self.0).replace(' ', ""))
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
        tag_matcher(&self.tags)?;
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
    // `validate` has checked the patterns; an invalid one matches nothing.
    let tag_set = tag_matcher(&policy.tags).unwrap_or_else(|_| globset::GlobSet::empty());
    let tag_matches = |tag: &str| tag_set.is_match(tag);

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

/// The `--keep-tag` patterns as one matcher (globset syntax: `*`, `?`,
/// `[abc]`, `{a,b}`; tag names have no `/`).
pub fn tag_matcher(patterns: &[String]) -> Result<globset::GlobSet, String> {
    let mut set = globset::GlobSetBuilder::new();
    for p in patterns {
        set.add(globset::Glob::new(p).map_err(|e| format!("--keep-tag {p:?}: {e}"))?);
    }
    set.build().map_err(|e| e.to_string())
}

/// A duration for `gc --grace`, in the one duration syntax
/// ([`crate::timespec::parse_span`]): `24h`, `2d`, `90m`, `0`. Days are 24
/// hours; months and years are refused (a grace period is short).
pub fn parse_grace(s: &str) -> Result<std::time::Duration, String> {
    let span = crate::timespec::parse_span(s)?;
    if span.get_years() != 0 || span.get_months() != 0 {
        return Err(format!(
            "{s:?}: give the grace period in weeks, days, hours or minutes (e.g. 30d)"
        ));
    }
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| format!("{s:?}: {e}"))?;
    std::time::Duration::try_from(d)
        .map_err(|_| format!("{s:?}: the duration must not be negative"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(Within::parse("1y5mo7d2h").unwrap().to_string(), "1y5mo7d2h");
        assert_eq!(Within::parse("2w").unwrap().to_string(), "2w");
        let hint = Within::parse("1y5m").unwrap_err();
        assert!(hint.contains("1y5mo"), "{hint}");
        assert!(Within::parse("").is_err());
        assert!(Within::parse("5").is_err());
        assert!(Within::parse("5x").is_err());
        assert!(Within::parse("0d").is_err());
        assert_eq!(parse_grace("24h").unwrap().as_secs(), 86_400);
        assert_eq!(parse_grace("1d30m").unwrap().as_secs(), 88_200);
        assert_eq!(parse_grace("30m").unwrap().as_secs(), 1_800);
        assert!(parse_grace("1mo").is_err());
        assert_eq!(parse_grace("0").unwrap().as_secs(), 0);
        assert!(parse_grace("soon").is_err());
        assert_eq!(parse_count("unlimited").unwrap(), UNLIMITED);
        assert!(parse_count("-3").is_err());
    }

    #[test]
    fn globs() {
        let m = |p: &str, name: &str| tag_matcher(&[p.to_string()]).unwrap().is_match(name);
        assert!(m("v*", "v1.2"));
        assert!(m("release-?", "release-3"));
        assert!(!m("release-?", "release-33"));
        assert!(m("*", ""));
        assert!(!m("a", "b"));
        assert!(m("{shipped,field}-*", "field-7"));
        assert!(tag_matcher(&["[".to_string()]).is_err());
    }
}
