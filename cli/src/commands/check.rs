//! `belay check`: parse, call `belay_core::maintenance::check`, print;
//! exit code 3 when something is wrong.

use super::Ctx;

use std::io::Write;

use anyhow::{Result, anyhow};
use belay_store::Repo;
use belay_store::check::ReadData;

use crate::args::CheckArgs;
use crate::output::{print_json, size};

pub(crate) fn check(ctx: &Ctx, repo: &Repo, a: CheckArgs) -> Result<()> {
    let day = (jiff::Timestamp::now().as_second() / 86_400) as u64;
    let read_data = match (&a.read_data_subset, a.read_data) {
        (Some(s), _) => {
            ReadData::parse_subset(s, day).map_err(|e| anyhow!("--read-data-subset: {e}"))?
        }
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    let r = belay_core::maintenance::check(repo, read_data, ctx)?;
    let mut out = std::io::stdout().lock();
    if ctx.json {
        print_json(&r)?;
    } else {
        let read = match read_data {
            ReadData::None => String::new(),
            _ => format!(
                "; read and re-hashed {} chunks ({})",
                r.chunks_read,
                size(r.bytes_read)
            ),
        };
        let packs = if r.packs > 0 || r.indexes > 0 {
            format!(
                " in {} packs listed by {} index objects",
                r.packs, r.indexes
            )
        } else {
            String::new()
        };
        ctx.info(format!(
            "checked {} snapshots, {} trees, {} chunks{packs}{read}",
            r.snapshots, r.trees, r.chunks
        ));
        for w in &r.pack_warnings {
            ctx.warn(format!(
                "{w}: every live object it held was checked on its own; gc removes the pack once nothing needs it"
            ));
        }
        for p in &r.problems {
            writeln!(out, "{}: {}", p.kind, p.message)?;
            writeln!(out, "  path: {}", p.path.display())?;
            if !p.snapshots.is_empty() {
                let s: Vec<String> = p.snapshots.iter().map(|s| s.short()).collect();
                writeln!(out, "  snapshots: {}", s.join(", "))?;
            }
            for f in &p.files {
                writeln!(out, "  file: {f}")?;
            }
            if p.more_files > 0 {
                writeln!(out, "  … and {} more files", p.more_files)?;
            }
        }
        if r.unreferenced > 0 && r.ok {
            ctx.info(format!(
                "{} unreferenced objects (not a problem: gc removes them)",
                r.unreferenced
            ));
        } else if r.unreferenced > 0 {
            ctx.info(format!(
                "{} objects not reached (some may be below the damaged trees)",
                r.unreferenced
            ));
        }
        if r.ok {
            ctx.info("no problems found");
        }
    }
    match r.error() {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
