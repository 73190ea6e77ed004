//! `belay gc`, `belay migrate` and `belay unlock`: parse, call
//! `belay_core::maintenance`, print.

use super::Ctx;

use std::time::Duration;

use anyhow::{Result, anyhow};
use belay_store::Repo;
use belay_store::gc::GcOptions;
use belay_store::retention::parse_grace;
use serde_json::json;

use crate::args::GcArgs;
use crate::output::{print_json, size};

pub(crate) fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86_400 {
        format!("{}d{}h", s / 86_400, (s % 86_400) / 3600)
    } else if s >= 3600 {
        format!("{}h{}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// `belay migrate`: format 1 → 2 in place.
pub(crate) fn migrate(ctx: &Ctx, repo: &Repo) -> Result<()> {
    let r = belay_core::maintenance::migrate(repo, ctx)?;
    crate::journal::note(&json!({
        "from": r.from, "to": r.to, "objects_packed": r.objects_packed, "packs_written": r.packs_written,
    }));
    if ctx.json {
        print_json(&r)?;
    } else if r.already {
        ctx.info(format!(
            "{} is already format {}: nothing to do",
            repo.root().display(),
            r.from
        ));
    } else {
        ctx.info(format!(
            "migrated {} from format {} to {}: {} objects into {} packs; the loose copies go with later gc runs (after the grace period)",
            repo.root().display(),
            r.from,
            r.to,
            r.objects_packed,
            r.packs_written
        ));
    }
    Ok(())
}

pub(crate) fn gc(ctx: &Ctx, repo: &Repo, a: GcArgs) -> Result<()> {
    let grace = parse_grace(&a.grace).map_err(|e| anyhow!("--grace: {e}"))?;
    let opts = GcOptions {
        dry_run: a.dry_run,
        grace,
        now: a.now,
    };
    let r = belay_core::maintenance::gc(repo, &opts, ctx)?;
    crate::journal::note(&json!({
        "generation": r.generation,
        "live_objects": r.live_objects,
        "deleted_objects": r.deleted_objects,
        "deleted_bytes": r.deleted_bytes,
        "condemned_objects": r.condemned_objects,
        "condemned_bytes": r.condemned_bytes,
        "trash_emptied": r.trash_emptied,
        "journal_files_compacted": r.journal_files_compacted,
    }));
    let seconds = r.seconds;
    if ctx.json {
        print_json(&r)?;
        return Ok(());
    }
    let would = if r.dry_run { "would be " } else { "" };
    // Format 2 keeps and deletes files (packs, index objects, snapshots),
    // not objects.
    let unit = if repo.format_version() >= 2 {
        "files"
    } else {
        "objects"
    };
    ctx.info(format!(
        "{} {unit} ({}) in use by {} snapshots and refs, of {} {unit} ({})",
        r.live_objects,
        size(r.live_bytes),
        r.roots,
        r.objects,
        size(r.bytes)
    ));
    if r.packs.packs_repacked > 0 || r.packs.loose_packed > 0 {
        ctx.info(format!(
            "{}repacked: {} sparse or small packs and {} loose objects into {} packs ({} objects, {})",
            would,
            r.packs.packs_repacked,
            r.packs.loose_packed,
            r.packs.packs_written,
            r.packs.objects_repacked + r.packs.loose_packed,
            size(r.packs.bytes_repacked)
        ));
    }
    ctx.info(format!(
        "{}deleted: {} {unit} ({})",
        would,
        r.deleted_objects,
        size(r.deleted_bytes)
    ));
    if r.condemned_objects > 0 {
        ctx.info(format!(
            "{}condemned: {} unreferenced {unit} ({}); a gc after the grace period ({}) deletes them",
            would,
            r.condemned_objects,
            size(r.condemned_bytes),
            human_duration(grace)
        ));
    }
    if r.pending_objects > 0 {
        let when = r
            .next_deletion_in
            .map(|d| {
                if d.is_zero() {
                    "the next gc can delete them".to_string()
                } else {
                    format!("the first can be deleted in {}", human_duration(d))
                }
            })
            .unwrap_or_default();
        ctx.info(format!(
            "waiting: {} condemned {unit} ({}); {when}",
            r.pending_objects,
            size(r.pending_bytes)
        ));
    }
    if !r.postponed_by.is_empty() {
        if r.deleted_while_backups_ran {
            ctx.info(format!(
                "backups are running ({}): deleted only objects condemned more than the grace period + 1h ago; a backup that reused one re-checks before committing and asks to be run again",
                r.postponed_by.join("; ")
            ));
        } else {
            ctx.info(format!(
                "deletion postponed while backups run: {}",
                r.postponed_by.join("; ")
            ));
        }
        if a.now {
            ctx.info("--now was not applied: a backup is running");
        }
    }
    if r.trash_emptied > 0 {
        ctx.info(format!(
            "{}emptied from the trash: {} forgotten snapshots (undo-forget is no longer possible)",
            would, r.trash_emptied
        ));
    }
    if r.trash_kept > 0 {
        ctx.info(format!(
            "kept in the trash: {} snapshots of the last forget (`belay undo-forget` works until a gc in {}; `gc --now` empties it)",
            r.trash_kept,
            human_duration(r.trash_expires_in.unwrap_or_default())
        ));
    }
    if r.stale_sessions_removed > 0 {
        ctx.info(format!(
            "removed {} stale backup sessions (their processes are gone)",
            r.stale_sessions_removed
        ));
    }
    if !r.dry_run {
        ctx.info(format!("generation {} in {:.2}s", r.generation, seconds));
    }
    Ok(())
}

/// `belay unlock`.
pub(crate) fn unlock(ctx: &Ctx, repo: &Repo, remove_all: bool) -> Result<()> {
    let done = belay_core::maintenance::unlock(repo, remove_all)?;
    if ctx.json {
        print_json(&done)?;
        return Ok(());
    }
    for a in &done.removed {
        ctx.info(format!(
            "removed {} ({}{})",
            a.path.display(),
            a.owner,
            if a.stale { ", gone" } else { "" }
        ));
    }
    for a in &done.kept {
        ctx.warn(format!(
            "kept {}: {} still runs (`belay unlock --remove-all` if you are sure it does not)",
            a.path.display(),
            a.owner
        ));
    }
    if done.removed.is_empty() && done.kept.is_empty() {
        ctx.info("no locks or sessions");
    }
    Ok(())
}
