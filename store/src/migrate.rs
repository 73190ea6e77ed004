//! `belay migrate`: convert a format-1 repository (one file per object)
//! to format 2 (packs) in place, crash-safely, while other clients may
//! read it (docs/format.md §13.6).
//!
//! Under the gc lock: mark what the live snapshots reach, pack every loose
//! chunk and tree among it with gc's packer, write the index and make it
//! durable, then switch `config` to version 2. A crash before the switch
//! leaves a format-1 repository plus unreferenced packs (a rerun packs
//! again; gc removes the leftovers); after it, the loose copies are
//! condemned and deleted by later gc runs through the grace period, so a
//! reader that opened the repository before the switch keeps finding them.

use crate::error::Result;
use crate::gc::{self, Progress};
use crate::repo::Repo;
use crate::session::GcLock;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct MigrateReport {
    pub from: u64,
    pub to: u64,
    /// Nothing to do: the repository was already format 2.
    pub already: bool,
    pub objects_packed: u64,
    pub packs_written: u64,
    pub warnings: Vec<String>,
}

pub fn migrate(repo: &Repo, progress: &dyn Progress) -> Result<MigrateReport> {
    let from = repo.format_version();
    let mut report = MigrateReport {
        from,
        to: crate::repo::FORMAT_VERSION,
        ..Default::default()
    };
    if from >= 2 {
        report.already = true;
        return Ok(report);
    }
    let _lock = GcLock::acquire(repo)?;
    progress.phase("marking");
    let roots = gc::roots(repo, &mut |w| {
        progress.warn(&w);
        report.warnings.push(w);
    })?;
    let live = gc::mark(repo, &roots, progress, &mut report.warnings)?;
    crate::session::pause_point("migrate-marked");
    let listed = gc::list_objects(repo)?;
    let plan = crate::repack::plan(repo, &listed, &live, &roots, false, progress)?;
    report.objects_packed = plan.figures.loose_packed;
    report.packs_written = plan.figures.packs_written;
    report.warnings.extend(plan.warnings);
    crate::session::pause_point("migrate-packed");
    // The switch: the packs and the index are durable (plan synced them).
    repo.set_format_version(2)?;
    Ok(report)
}
