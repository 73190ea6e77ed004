//! `belay forget` and `belay undo-forget`: parse, call
//! `belay_core::forget`, print.

use super::Ctx;

use std::io::Write;

use anyhow::{Result, anyhow};
use belay_core::forget::{ForgetOptions, ForgetWhat};
use belay_store::Repo;
use belay_store::retention::{Policy, Within, parse_count};
use serde_json::json;

use crate::args::ForgetArgs;
use crate::output::{self, print_json};

fn policy(a: &ForgetArgs) -> Result<Policy> {
    let count = |flag: &str, v: &Option<String>| -> Result<Option<u32>> {
        v.as_deref()
            .map(|s| parse_count(s).map_err(|e| anyhow!("--{flag}: {e}")))
            .transpose()
    };
    let p = Policy {
        last: count("keep-last", &a.keep_last)?,
        hourly: count("keep-hourly", &a.keep_hourly)?,
        daily: count("keep-daily", &a.keep_daily)?,
        weekly: count("keep-weekly", &a.keep_weekly)?,
        monthly: count("keep-monthly", &a.keep_monthly)?,
        yearly: count("keep-yearly", &a.keep_yearly)?,
        within: a
            .keep_within
            .as_deref()
            .map(|s| Within::parse(s).map_err(|e| anyhow!("--keep-within: {e}")))
            .transpose()?,
        tags: a.keep_tags.clone(),
    };
    p.validate().map_err(|e| anyhow!(e))?;
    Ok(p)
}

fn has_keep_flags(a: &ForgetArgs) -> bool {
    a.keep_last.is_some()
        || a.keep_hourly.is_some()
        || a.keep_daily.is_some()
        || a.keep_weekly.is_some()
        || a.keep_monthly.is_some()
        || a.keep_yearly.is_some()
        || a.keep_within.is_some()
        || !a.keep_tags.is_empty()
}

pub(crate) fn forget(ctx: &Ctx, repo: &Repo, a: ForgetArgs) -> Result<()> {
    if a.undo {
        return undo(ctx, repo);
    }
    let config = crate::config::get();
    let by_id = !a.snapshots.is_empty();
    let per_source = |s: &str| config.retention_for(s);
    let what = if by_id {
        ForgetWhat::Snapshots(a.snapshots.clone())
    } else if !has_keep_flags(&a) && config.has_retention() {
        if let Some(s) = &a.source
            && config.retention_for(s).is_none()
        {
            anyhow::bail!(
                "the config file has no retention policy for {s:?} (add [retention.{s}] or [retention.\"*\"]), or give --keep-* flags"
            );
        }
        let from = config
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        ForgetWhat::PerSource {
            policy_for: &per_source,
            described: format!("the policies of {from}"),
        }
    } else {
        ForgetWhat::Policy(policy(&a)?)
    };
    let opts = ForgetOptions {
        what,
        source: a.source.clone(),
        dry_run: a.dry_run,
    };
    let r = belay_core::forget::forget(repo, &opts)?;
    let (kept, removed) = (r.kept, r.removed);
    crate::journal::note(&json!({
        "policy": r.policy,
        "kept": kept,
        "removed": removed,
        "removed_ids": r.removed_ids.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
        "source": a.source,
    }));
    if ctx.json {
        print_json(&r)?;
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    if !ctx.quiet {
        for s in &r.sources {
            let k = s.snapshots.iter().filter(|d| d.keep()).count();
            writeln!(
                out,
                "{}: keep {k}, remove {} ({})",
                s.source,
                s.snapshots.len() - k,
                s.policy
            )?;
            // Naming snapshots: only those removed are worth a line.
            for d in s.snapshots.iter().filter(|d| !by_id || !d.keep()) {
                let line = format!(
                    "  {:<6}  {}  {}  {}",
                    d.action,
                    d.id.short(),
                    output::time_ns(d.time_ns),
                    d.reasons.join(", ")
                );
                writeln!(out, "{}", line.trim_end())?;
            }
            if s.head_before != s.head_after {
                let verb = if a.dry_run { "would move" } else { "moved" };
                match s.head_after {
                    Some(h) => writeln!(
                        out,
                        "  head {} {verb} to {} (its newest kept snapshot)",
                        s.source,
                        h.short()
                    )?,
                    None => writeln!(
                        out,
                        "  head {} {} (no snapshot of it is kept; its next backup starts a new history)",
                        s.source,
                        if a.dry_run {
                            "would be removed"
                        } else {
                            "removed"
                        }
                    )?,
                }
            }
        }
    }
    if a.dry_run {
        ctx.info(format!(
            "dry run: would keep {kept} and remove {removed} snapshots; nothing changed"
        ));
    } else if removed > 0 {
        ctx.info(format!(
            "kept {kept}, removed {removed} snapshots (moved to the trash: `belay undo-forget` brings them back until a gc after the grace period); `belay gc` frees their space"
        ));
    } else {
        ctx.info(format!("kept all {kept} snapshots; nothing to remove"));
    }
    Ok(())
}

pub(crate) fn undo(ctx: &Ctx, repo: &Repo) -> Result<()> {
    let r = belay_core::forget::undo_forget(repo)?;
    crate::journal::note(&json!({
        "restored": r.restored.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
        "lost": r.lost.len(),
    }));
    if ctx.json {
        print_json(&r)?;
        return Ok(());
    }
    ctx.info(format!("brought back {} snapshots", r.restored.len()));
    for h in &r.heads {
        ctx.info(format!(
            "  head {} points at {} again",
            h.source,
            h.after.as_deref().map(|s| &s[..12]).unwrap_or("?")
        ));
    }
    if !r.lost.is_empty() {
        eprintln!(
            "warning: {} snapshots could not be brought back (a gc already removed them)",
            r.lost.len()
        );
    }
    Ok(())
}
