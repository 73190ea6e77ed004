//! `belay sources`: every board and folder that has snapshots, and
//! `belay sources rm NAME` (its snapshots go to the trash, as forget's do).

use super::Ctx;

use std::io::Write;

use anyhow::Result;
use belay_store::Repo;

use crate::output::{self, print_json};

pub(crate) fn list(ctx: &Ctx, repo: &Repo) -> Result<()> {
    let rows = belay_core::sources::list(repo)?;
    if ctx.json {
        print_json(&rows)?;
        return Ok(());
    }
    if rows.is_empty() {
        ctx.info("no sources yet: `belay backup PATH` or `belay backup serial:PORT` makes the first snapshot");
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let idw = rows
        .iter()
        .map(|r| r.id.len())
        .max()
        .unwrap_or(2)
        .clamp(2, 40);
    writeln!(
        out,
        "{:<w$}  {:<6}  {:<idw$}  {:<20}  {:>9}  {:<25}  SIZE",
        "NAME", "KIND", "ID", "FIRMWARE", "SNAPSHOTS", "LAST BACKUP"
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:<w$}  {:<6}  {:<idw$}  {:<20}  {:>9}  {:<25}  {}",
            r.name,
            r.kind,
            r.id,
            r.firmware.as_deref().unwrap_or("-"),
            r.snapshots,
            r.last_backup,
            output::size(r.bytes)
        )?;
    }
    Ok(())
}

pub(crate) fn remove(ctx: &Ctx, repo: &Repo, name: &str, dry_run: bool) -> Result<()> {
    let r = belay_core::sources::remove(repo, name, dry_run)?;
    if ctx.json {
        print_json(&r)?;
        return Ok(());
    }
    let n = r.snapshots.len();
    if dry_run {
        ctx.info(format!(
            "dry run: would remove source {name} and its {n} snapshots; nothing changed"
        ));
    } else {
        ctx.info(format!(
            "removed source {name}: {n} snapshots moved to the trash (`belay undo-forget` brings them back until a gc after the grace period; `belay gc` frees their space)"
        ));
    }
    Ok(())
}

/// `belay rename OLD NEW`: the history OLD continues as NEW (format.md §14).
pub(crate) fn rename(ctx: &Ctx, repo: &Repo, old: &str, new: &str, force: bool) -> Result<()> {
    let r = belay_core::sources::rename(repo, old, new, force)?;
    let doc = serde_json::to_value(&r)?;
    crate::journal::note(&doc);
    if ctx.json {
        print_json(&doc)?;
    } else {
        ctx.info(format!(
            "renamed {old} to {new}: {} snapshots{}; head {}",
            r.snapshots,
            if r.merged {
                format!(" joined {new}'s history")
            } else {
                String::new()
            },
            r.head.short()
        ));
    }
    Ok(())
}
