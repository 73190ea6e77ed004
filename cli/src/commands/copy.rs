//! `belay copy`: snapshots with their history into another repository
//! (the work is in `belay_store::copy`).

use anyhow::{Result, bail};
use belay_store::Repo;
use belay_store::copy::{self, CopyReport};
use belay_store::id::ObjectId;
use belay_store::repo::RefKind;

use super::{Ctx, init_repository, open};
use crate::args::CopyArgs;
use crate::output::print_json;
use crate::progress::ObjectCounter;

pub(crate) fn copy(ctx: &Ctx, src: &Repo, a: CopyArgs) -> Result<()> {
    let dst = if a.init {
        init_repository(
            &a.to,
            src.chunker(),
            src.config().compression.level,
            src.format_version(),
        )?
    } else {
        open(&a.to)?
    };
    let mut roots: Vec<ObjectId> = Vec::new();
    for name in &a.sources {
        match src.read_ref(RefKind::Head, name)? {
            Some(h) => roots.push(h),
            None => bail!(
                "no source named {name:?} in {} (`belay sources` lists them)",
                src.root().display()
            ),
        }
    }
    for rev in &a.revs {
        roots.push(belay_store::rev::resolve(src, rev)?);
    }
    if a.sources.is_empty() && a.revs.is_empty() {
        roots = src.list_snapshots()?;
    }
    let snapshots = copy::with_history(src, &roots)?;
    let spinner = ObjectCounter::new(ctx, "copy");
    let report = copy::copy(src, &dst, &snapshots, &spinner);
    spinner.finish();
    let report = report?;
    print(ctx, &dst, &report)
}

fn print(ctx: &Ctx, dst: &Repo, r: &CopyReport) -> Result<()> {
    if ctx.json {
        return Ok(print_json(&serde_json::to_value(r)?)?);
    }
    for w in &r.warnings {
        ctx.warn(w);
    }
    ctx.info(format!(
        "copied {} snapshot(s) to {} ({} already there): {} object(s), {} sent, {} object(s) already present",
        r.copied.len(),
        dst.root().display(),
        r.already_present,
        r.objects_copied,
        crate::output::size(r.bytes_copied),
        r.objects_present,
    ));
    for (source, id) in &r.heads {
        ctx.info(format!("  {source} -> {}", &id[..12]));
    }
    for t in &r.tags {
        ctx.info(format!("  tag {t}"));
    }
    Ok(())
}
