//! `belay journal`: the repository's audit journal, oldest first.

use super::Ctx;

use anyhow::{Result, anyhow};
use belay_store::{Repo, journal, timespec};
use serde_json::json;

use crate::args::JournalArgs;
use crate::output::{self, print_json};

pub(crate) fn journal(ctx: &Ctx, repo: &Repo, a: JournalArgs) -> Result<()> {
    let now = jiff::Timestamp::now();
    let tz = jiff::tz::TimeZone::system();
    let bound = |s: &Option<String>, b: timespec::Bound| -> Result<Option<i64>> {
        s.as_deref()
            .map(|s| timespec::parse(s, b, now, &tz).map_err(|e| anyhow!("{e}")))
            .transpose()
    };
    let since = bound(&a.since, timespec::Bound::Start)?;
    let until = bound(&a.until, timespec::Bound::End)?;
    let mut warnings = Vec::new();
    let mut entries = journal::list(repo, &mut warnings)?;
    for w in &warnings {
        ctx.warn(w);
    }
    entries.retain(|e| {
        since.is_none_or(|t| e.time_ns >= t)
            && until.is_none_or(|t| e.time_ns <= t)
            && a.source
                .as_ref()
                .is_none_or(|s| e.source.as_ref() == Some(s))
            && (a.kinds.is_empty() || a.kinds.iter().any(|k| k == &e.kind))
    });
    if let Some(n) = a.max_count {
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
    }
    if ctx.json {
        print_json(&json!(entries))?;
        return Ok(());
    }
    for e in &entries {
        let what = e
            .snapshots
            .iter()
            .map(|s| s.get(..12).unwrap_or(s))
            .collect::<Vec<_>>()
            .join(",");
        let mut line = format!(
            "{}  {:<11} {:<5} {}@{}",
            output::time_ns(e.time_ns),
            e.kind,
            e.outcome,
            e.user,
            e.host
        );
        if let Some(s) = &e.source {
            line.push_str(&format!("  {s}"));
        }
        if !what.is_empty() {
            line.push_str(&format!("  {what}"));
        }
        if let Some(summary) = summary(e) {
            line.push_str(&format!("  ({summary})"));
        }
        if let Some(err) = &e.error {
            line.push_str(&format!("  error: {err}"));
        }
        println!("{line}");
    }
    if entries.is_empty() {
        ctx.info("no journal entries");
    }
    Ok(())
}

/// A few figures per kind, for the human listing.
fn summary(e: &journal::Entry) -> Option<String> {
    let n = |k: &str| e.details.get(k).and_then(|v| v.as_u64());
    let s = |k: &str| e.details.get(k).and_then(|v| v.as_str());
    let size = |k: &str| n(k).map(output::size);
    let parts: Vec<String> = match e.kind.as_str() {
        "backup" | "import" => [
            n("files").map(|v| format!("{v} files")),
            size("bytes_added").map(|v| format!("{v} added")),
        ]
        .into_iter()
        .flatten()
        .collect(),
        "restore" => [
            s("target").map(|t| format!("to {t}")),
            n("files").map(|v| format!("{v} files written")),
            size("bytes"),
        ]
        .into_iter()
        .flatten()
        .collect(),
        "forget" => [
            n("removed").map(|v| format!("{v} removed")),
            n("kept").map(|v| format!("{v} kept")),
        ]
        .into_iter()
        .flatten()
        .collect(),
        "gc" => [
            n("deleted_objects").map(|v| format!("{v} objects deleted")),
            size("deleted_bytes"),
            n("condemned_objects").map(|v| format!("{v} condemned")),
        ]
        .into_iter()
        .flatten()
        .collect(),
        "tag" => [s("action"), s("tag")]
            .into_iter()
            .flatten()
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    (!parts.is_empty()).then(|| parts.join(", "))
}
