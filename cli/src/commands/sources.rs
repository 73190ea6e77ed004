//! `belay sources`: every board and folder that has snapshots, and
//! `belay sources rm NAME` (its snapshots go to the trash, as forget's do).

use super::Ctx;

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Result, bail};
use belay_store::forget;
use belay_store::repo::RefKind;
use belay_store::snapshot::Snapshot;
use belay_store::{ObjectId, Repo};
use serde::Serialize;

use crate::output::{self, print_json};

/// One line of `belay sources` (and its JSON).
#[derive(Serialize)]
struct SourceRow {
    name: String,
    /// "board" or "folder".
    kind: &'static str,
    /// A board's unique id (`machine.unique_id()`), else the folder's path.
    id: String,
    /// Where the latest snapshot was taken (`serial:PORT`, `dir:PATH`).
    location: String,
    firmware: Option<String>,
    snapshots: usize,
    latest: String,
    last_backup: String,
    /// Size of the files in the latest snapshot.
    bytes: u64,
}

fn row(name: &str, snaps: &[(ObjectId, Snapshot)]) -> SourceRow {
    // Newest first.
    let (id, s) = &snaps[0];
    let board = s.location.starts_with("serial:") || s.device_value("unique_id").is_some();
    SourceRow {
        name: name.to_string(),
        kind: if board { "board" } else { "folder" },
        id: s
            .device_value("unique_id")
            .map(str::to_string)
            .unwrap_or_else(|| {
                s.location
                    .strip_prefix("dir:")
                    .unwrap_or(&s.location)
                    .to_string()
            }),
        location: s.location.clone(),
        firmware: s.device_value("firmware").map(str::to_string),
        snapshots: snaps.len(),
        latest: id.to_hex(),
        last_backup: output::rfc3339(s.time_ns),
        bytes: s.summary.bytes,
    }
}

/// Live snapshots by source name, newest first in each.
fn by_source(repo: &Repo) -> Result<BTreeMap<String, Vec<(ObjectId, Snapshot)>>> {
    let mut groups: BTreeMap<String, Vec<(ObjectId, Snapshot)>> = BTreeMap::new();
    for (id, s) in belay_store::catalog::Catalog::open(repo).live()? {
        groups.entry(s.source.clone()).or_default().push((id, s));
    }
    for list in groups.values_mut() {
        list.sort_by(|a, b| b.1.time_ns.cmp(&a.1.time_ns).then(a.0.cmp(&b.0)));
    }
    Ok(groups)
}

pub(crate) fn list(ctx: &Ctx, repo: &Repo) -> Result<()> {
    let rows: Vec<SourceRow> = by_source(repo)?
        .iter()
        .map(|(name, snaps)| row(name, snaps))
        .collect();
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

#[derive(Serialize)]
struct Removed {
    source: String,
    dry_run: bool,
    snapshots: Vec<String>,
    head_removed: bool,
}

pub(crate) fn remove(ctx: &Ctx, repo: &Repo, name: &str, dry_run: bool) -> Result<()> {
    let groups = by_source(repo)?;
    let Some(snaps) = groups.get(name) else {
        if repo.read_ref(RefKind::Head, name)?.is_some() {
            bail!("source {name:?} has a head but no live snapshot; `belay check` says more");
        }
        let names: Vec<&str> = groups.keys().map(String::as_str).collect();
        bail!(
            "no source named {name:?} (sources: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    };
    let ids: Vec<ObjectId> = snaps.iter().map(|(id, _)| *id).collect();
    let plan = forget::plan_ids(repo, &ids)?;
    if !dry_run {
        forget::execute(repo, &plan)?;
    }
    let head_removed = plan
        .sources
        .iter()
        .any(|s| s.head_before.is_some() && s.head_after.is_none());
    if ctx.json {
        print_json(&Removed {
            source: name.to_string(),
            dry_run,
            snapshots: ids.iter().map(|i| i.to_hex()).collect(),
            head_removed,
        })?;
        return Ok(());
    }
    if dry_run {
        ctx.info(format!(
            "dry run: would remove source {name} and its {} snapshots; nothing changed",
            ids.len()
        ));
    } else {
        ctx.info(format!(
            "removed source {name}: {} snapshots moved to the trash (`belay undo-forget` brings them back until a gc after the grace period; `belay gc` frees their space)",
            ids.len()
        ));
    }
    Ok(())
}

/// `belay rename OLD NEW`: the history OLD continues as NEW (format.md §14).
pub(crate) fn rename(ctx: &Ctx, repo: &Repo, old: &str, new: &str, force: bool) -> Result<()> {
    let r = belay_store::rename::rename(
        repo,
        old,
        new,
        force,
        &super::username(),
        &super::hostname(),
    )?;
    let doc = serde_json::json!({
        "old": old,
        "new": new,
        "source": new,
        "snapshots": r.snapshots.len(),
        "head": r.head.to_hex(),
        "merged": r.merged,
    });
    crate::journal::note(&doc);
    if ctx.json {
        print_json(&doc)?;
    } else {
        ctx.info(format!(
            "renamed {old} to {new}: {} snapshots{}; head {}",
            r.snapshots.len(),
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
