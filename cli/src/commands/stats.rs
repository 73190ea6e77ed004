//! `belay stats [REV]`.

use super::Ctx;

use anyhow::Result;
use belay_store::{Repo, rev, stats};
use serde_json::json;

use crate::output::{self, print_json, size};

pub(crate) fn stats(ctx: &Ctx, repo: &Repo, r: Option<&str>) -> Result<()> {
    let only = r.map(|r| rev::resolve(repo, r)).transpose()?;
    let spinner = super::gc::Spinner::new(ctx, "stats");
    let st = stats::stats(repo, only, &spinner);
    spinner.finish();
    let st = st?;
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
        }));
        return Ok(());
    }
    println!(
        "Snapshots:       {} of {} sources",
        st.snapshots, st.sources
    );
    println!("Files:           {} (summed over snapshots)", st.files);
    println!(
        "Raw bytes:       {}  (what restoring every snapshot would write)",
        size(st.raw_bytes)
    );
    println!(
        "Unique bytes:    {}  in {} chunks, {} trees",
        size(st.unique_bytes),
        st.chunks,
        st.trees
    );
    println!(
        "Stored bytes:    {}  ({} allocated on disk)",
        size(st.stored_bytes),
        size(st.allocated_bytes)
    );
    println!(
        "Dedup ratio:     {:.2}x   compression ratio: {:.2}x",
        st.dedup_ratio(),
        st.compression_ratio()
    );
    if let Some(x) = st.exclusive_bytes {
        println!(
            "Only here:       {}  (freed by forgetting it, then gc)",
            size(x)
        );
    }
    println!(
        "Repository:      {} objects, {} (including unreferenced ones gc has yet to remove)",
        st.repo_objects,
        size(st.repo_bytes)
    );
    if only.is_none() && !st.growth.is_empty() {
        println!();
        println!("Growth per snapshot (oldest first):");
        for g in &st.growth {
            println!(
                "  {}  {}  {:<20} {:>10} in {:>6} files   +{} in {} objects",
                g.id.short(),
                output::time_ns(g.time_ns),
                g.source,
                size(g.bytes),
                g.files,
                size(g.new_bytes),
                g.new_objects
            );
        }
    }
    Ok(())
}
