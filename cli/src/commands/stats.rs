//! `belay stats [REV]`.

use super::Ctx;

use std::io::Write;

use anyhow::Result;
use belay_store::{Repo, rev, stats};
use serde_json::json;

use crate::output::{self, print_json, size};

pub(crate) fn stats(ctx: &Ctx, repo: &Repo, r: Option<&str>) -> Result<()> {
    let only = r.map(|r| rev::resolve(repo, r)).transpose()?;
    let spinner = crate::progress::ObjectCounter::new(ctx, "stats");
    let st = stats::stats(repo, only, &spinner);
    spinner.finish();
    let st = st?;
    let mut out = std::io::stdout().lock();
    let growth: Vec<_> = st
        .growth
        .iter()
        .map(|g| {
            json!({
                "id": g.id.to_hex(), "source": g.source, "time": output::rfc3339(g.time_ns),
                "files": g.files, "bytes": g.bytes,
                "new_objects": g.new_objects, "new_bytes": g.new_bytes,
            })
        })
        .collect();
    if ctx.json {
        print_json(&json!({
            "snapshots": st.snapshots,
            "sources": st.sources,
            "files": st.files,
            "raw_bytes": st.raw_bytes,
            "unique_bytes": st.unique_bytes,
            "stored_bytes": st.stored_bytes,
            "allocated_bytes": st.allocated_bytes,
            "chunks": st.chunks,
            "trees": st.trees,
            "dedup_ratio": st.dedup_ratio(),
            "compression_ratio": st.compression_ratio(),
            "repository_objects": st.repo_objects,
            "repository_bytes": st.repo_bytes,
            "exclusive_bytes": st.exclusive_bytes,
            "growth": growth,
        }))?;
        return Ok(());
    }
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
        st.dedup_ratio(),
        st.compression_ratio()
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
        st.repo_objects,
        size(st.repo_bytes)
    )?;
    if only.is_none() && !st.growth.is_empty() {
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
