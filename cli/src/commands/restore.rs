//! `belay restore`: parse, call `belay_core::restore`, print.

use super::Ctx;
use crate::output::outln;

use anyhow::{Result, anyhow};
use belay_core::board::{BoardRestore, BoardRestorePlan, BoardRestored};
use belay_core::restore::{RestoreOptions, RestoreResult};
use belay_store::Repo;
use belay_transport::Location;

use crate::args::RestoreArgs;
use crate::output::{self, print_json};

pub(crate) fn restore(ctx: &Ctx, repo: &Repo, a: RestoreArgs) -> Result<()> {
    let target = Location::parse(&a.to).map_err(|e| anyhow!("{e}"))?;
    let opts = RestoreOptions {
        spec: a.spec,
        includes: a.includes,
        dry_run: a.dry_run,
        force: a.force,
        delete: a.delete,
        yes: a.yes,
        safety_snapshot: !a.no_safety_snapshot,
        names: crate::config::get().board_names(),
    };
    let r = belay_core::restore(repo, &target, &opts, ctx)?;
    let doc = serde_json::to_value(&r)?;
    crate::journal::note(&doc);
    print(ctx, &doc, &r)?;
    if let RestoreResult::Folder(f) = &r
        && ctx.verbose > 0
    {
        eprintln!("verified {} bytes against the snapshot", f.bytes);
    }
    Ok(())
}

fn print(ctx: &Ctx, doc: &serde_json::Value, r: &RestoreResult) -> Result<()> {
    if ctx.json {
        print_json(doc)?;
        return Ok(());
    }
    match r {
        RestoreResult::FolderPlan(plan) => {
            for e in &plan.entries {
                outln!("would restore {}", e.path)?;
            }
            ctx.info(format!(
                "{} entries (dry run, nothing written)",
                plan.entries.len()
            ));
        }
        RestoreResult::Folder(r) => {
            ctx.info(format!(
                "restored {} files, {} dirs, {} symlinks ({}) from {} to {} in {:.2}s",
                r.files,
                r.dirs,
                r.symlinks,
                output::size(r.bytes),
                r.snapshot.short(),
                r.target.display(),
                r.seconds
            ));
        }
        RestoreResult::Board(BoardRestore::Planned(plan)) => print_plan(ctx, plan)?,
        RestoreResult::Board(BoardRestore::Restored(r)) => print_restored(ctx, r),
    }
    Ok(())
}

fn print_plan(ctx: &Ctx, plan: &BoardRestorePlan) -> Result<()> {
    let changes = &plan.changes;
    if plan.dry_run {
        for p in &changes.remove {
            outln!("would remove {p}")?;
        }
        for p in &changes.mkdir {
            outln!("would create {p}/")?;
        }
        for p in &changes.write {
            outln!("would write {p}")?;
        }
        ctx.info(format!("{} (dry run, nothing changed)", changes.summary()));
    } else {
        ctx.info(format!(
            "{} already matches snapshot {} ({} files identical); nothing to do",
            plan.board,
            plan.snapshot.short(),
            changes.unchanged
        ));
    }
    Ok(())
}

fn print_restored(ctx: &Ctx, r: &BoardRestored) {
    ctx.info(format!(
        "restored {} to {}: wrote {} files ({}), created {} directories, removed {} entries, {} files were already identical, {:.2}s",
        r.snapshot.short(),
        r.board,
        r.files,
        output::size(r.bytes),
        r.dirs,
        r.removed,
        r.unchanged,
        r.seconds
    ));
    if let Some(h) = r.head {
        ctx.info(format!(
            "the board's new state is snapshot {} of {} (its parent, {}~1, is the state before)",
            h.short(),
            r.source,
            r.source
        ));
    }
}
