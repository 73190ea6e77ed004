//! `belay ls` and `belay cat`: reading a snapshot without restoring it.

use super::Ctx;
use std::io::Write;

use anyhow::Result;
use belay_store::Repo;
use belay_store::path as bpath;
use belay_store::tree::Node;

use crate::output::{self, print_json};

pub(crate) fn ls(ctx: &Ctx, repo: &Repo, spec: &str, recursive: bool) -> Result<()> {
    let rows = belay_core::browse::ls(repo, spec, recursive)?;
    if ctx.json {
        print_json(&rows)?;
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for r in &rows {
        let e = &r.entry;
        let mut name = bpath::display(&r.name);
        match &e.node {
            Node::Dir { .. } => name.push('/'),
            Node::Symlink { target } => {
                name.push_str(" -> ");
                name.push_str(&bpath::display(target));
            }
            Node::File { .. } => {}
        }
        let when = e
            .mtime_ns
            .map(output::time_ns)
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{} {:>10} {} {}",
            output::mode_string(e),
            e.node.size(),
            when,
            name
        )?;
    }
    Ok(())
}

pub(crate) fn cat(repo: &Repo, spec: &str) -> Result<()> {
    Ok(belay_core::browse::cat(
        repo,
        spec,
        &mut std::io::stdout().lock(),
    )?)
}
