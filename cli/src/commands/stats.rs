//! `belay stats [REV]`: parse, call `belay_core::stats`, print.

use super::Ctx;

use std::io::Write;

use anyhow::Result;
use belay_store::Repo;

use crate::output::{self, print_json, size};

pub(crate) fn stats(ctx: &Ctx, repo: &Repo, r: Option<&str>) -> Result<()> {
    let st = belay_core::stats::stats(repo, r, ctx)?;
    if ctx.json {
        print_json(&st)?;
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Snapshots:       {} of {} sources",
        st.snapshots, st.sources
    )?;
    writeln!(out, "Files:           {} (summed over snapshots)", st.files)?;
    writeln!(
        out,
        "Raw bytes:       {}  (what restoring every snapshot would write)",
        size(st.raw_bytes)
    )?;
    writeln!(
        out,
        "Unique bytes:    {}  in {} chunks, {} trees",
        size(st.unique_bytes),
        st.chunks,
        st.trees
    )?;
    writeln!(
        out,
        "Stored bytes:    {}  ({} allocated on disk)",
        size(st.stored_bytes),
        size(st.allocated_bytes)
    )?;
    writeln!(
        out,
        "Dedup ratio:     {:.2}x   compression ratio: {:.2}x",
        st.dedup_ratio, st.compression_ratio
    )?;
    if let Some(x) = st.exclusive_bytes {
        writeln!(
            out,
            "Only here:       {}  (freed by forgetting it, then gc)",
            size(x)
        )?;
    }
    writeln!(
        out,
        "Repository:      {} objects, {} (including unreferenced ones gc has yet to remove)",
        st.repository_objects,
        size(st.repository_bytes)
    )?;
    if st.only.is_none() && !st.growth.is_empty() {
        writeln!(out)?;
        writeln!(out, "Growth per snapshot (oldest first):")?;
        for g in &st.growth {
            writeln!(
                out,
                "  {}  {}  {:<20} {:>10} in {:>6} files   +{} in {} objects",
                g.id.short(),
                output::time_ns(g.time_ns),
                g.source,
                size(g.bytes),
                g.files,
                size(g.new_bytes),
                g.new_objects
            )?;
        }
    }
    Ok(())
}
