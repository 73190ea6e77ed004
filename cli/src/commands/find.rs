//! `belay find`: parse, call `belay_core::find`, print.

use super::Ctx;
use std::io::Write;

use anyhow::Result;
use belay_core::find::{FindHit, FindOptions};
use belay_store::Repo;

use crate::args::FindArgs;
use crate::output::{self, print_json};

/// The size column, what the entry is (a file's hash prefix) and its path
/// as listed.
fn columns(h: &FindHit) -> (String, String, String) {
    // A snapshot's symlink shows no size; a live one shows the link's.
    let size = match h.size {
        Some(n) if h.live || h.kind == "file" => output::size(n),
        _ => "-".into(),
    };
    let what = match h.kind {
        "dir" => "dir         ".to_string(),
        "symlink" => "link        ".to_string(),
        _ => h
            .sha256
            .as_deref()
            .map(|s| s[..12].to_string())
            .unwrap_or_default(),
    };
    let mut p = h.path.clone();
    match h.kind {
        "dir" => p.push('/'),
        "symlink" => {
            p.push_str(" -> ");
            p.push_str(h.target.as_deref().unwrap_or_default());
        }
        _ => {}
    }
    (size, what, p)
}

pub(crate) fn find(ctx: &Ctx, repo: &Repo, a: FindArgs) -> Result<()> {
    let opts = FindOptions {
        glob: a.glob,
        hash: a.hash,
        source: a.source,
        all: a.all,
    };
    let r = belay_core::find::find(repo, &opts, ctx)?;
    if ctx.json {
        print_json(&r)?;
        return Ok(());
    }
    if r.hits.is_empty() {
        if !ctx.quiet {
            match r.snapshots_searched {
                Some(n) => eprintln!(
                    "nothing found in {n} snapshot{}",
                    if n == 1 { "" } else { "s" }
                ),
                None => eprintln!("nothing found"),
            }
        }
        return Ok(());
    }
    let sw = r
        .hits
        .iter()
        .map(|h| h.source.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for h in &r.hits {
        let (size, what, p) = columns(h);
        match h.snapshot {
            Some(id) => writeln!(
                out,
                "{:sw$}  {}  {}  {:>10}  {}  {}",
                h.source,
                id.short(),
                output::time_ns(h.time_ns),
                size,
                what,
                p
            )?,
            None => writeln!(out, "{}  live  {:>10}  {}  {}", h.source, size, what, p)?,
        }
    }
    Ok(())
}
