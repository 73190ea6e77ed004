//! `belay find`: which snapshots (and so which boards and folders) hold a
//! path matching a glob, or a given content.

use super::Ctx;
use std::io::Write;

use anyhow::{Result, anyhow, bail};
use belay_store::history::{self, Finder};
use belay_store::path as bpath;
use belay_store::snapshot::Snapshot;
use belay_store::tree::{Node, TreeEntry};
use belay_store::{ObjectId, Repo};
use globset::GlobBuilder;
use serde_json::{Value, json};

use crate::args::FindArgs;
use crate::output::{self, print_json};

/// The snapshots to search, newest first.
fn scope(repo: &Repo, a: &FindArgs) -> Result<Vec<(ObjectId, Snapshot)>> {
    let mut out = Vec::new();
    match (&a.source, a.all) {
        (Some(name), true) => {
            out = history::source_snapshots(repo, name)?;
            out.retain(|(id, _)| repo.is_live(id));
            if out.is_empty() {
                bail!("no source named {name:?} (`belay log --oneline` lists sources)");
            }
        }
        (Some(name), false) => {
            let id = repo
                .read_ref(belay_store::repo::RefKind::Head, name)?
                .ok_or_else(|| {
                    anyhow!("no source named {name:?} (`belay log --oneline` lists sources)")
                })?;
            out.push((id, repo.read_snapshot(&id)?));
        }
        (None, true) => {
            out = belay_store::catalog::Catalog::open(repo).live()?;
        }
        (None, false) => {
            for id in history::heads(repo)?.into_values() {
                if !out.iter().any(|(i, _)| *i == id) {
                    out.push((id, repo.read_snapshot(&id)?));
                }
            }
        }
    }
    out.sort_by(|x, y| {
        y.1.time_ns
            .cmp(&x.1.time_ns)
            .then(x.1.source.cmp(&y.1.source))
    });
    Ok(out)
}

pub(crate) fn find(ctx: &Ctx, repo: &Repo, a: FindArgs) -> Result<()> {
    let glob = match &a.glob {
        Some(g) => {
            let anchored = g.trim_start_matches('/');
            let by_name = !g.contains('/');
            let m = GlobBuilder::new(anchored)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| anyhow!("invalid glob {g:?}: {e}"))?
                .compile_matcher();
            Some((m, by_name))
        }
        None => None,
    };
    let hash = match &a.hash {
        Some(h) => {
            let h = h.trim().to_ascii_lowercase();
            if h.len() < 4 || h.len() > 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                bail!("--hash {h:?}: give 4 to 64 hex digits of a SHA-256");
            }
            Some(h)
        }
        None => None,
    };
    let matcher = |p: &[u8], e: &TreeEntry| -> bool {
        if let Some((m, by_name)) = &glob {
            let subject = if *by_name { &e.name[..] } else { p };
            let text = bpath::display(subject);
            if !m.is_match(text.as_str()) {
                return false;
            }
        }
        if let Some(h) = &hash {
            match &e.node {
                Node::File { sha256, .. } => hex::encode(sha256).starts_with(h.as_str()),
                _ => false,
            }
        } else {
            true
        }
    };
    let snapshots = scope(repo, &a)?;
    let mut finder = Finder::new(repo, &matcher);
    let mut rows: Vec<(ObjectId, &Snapshot, history::Found)> = Vec::new();
    for (id, s) in &snapshots {
        for f in finder.find(&s.tree)?.iter() {
            rows.push((*id, s, f.clone()));
        }
    }
    if ctx.json {
        let arr: Vec<Value> = rows
            .iter()
            .map(|(id, s, f)| {
                let mut v = json!({
                    "source": s.source,
                    "location": s.location,
                    "snapshot": id.to_hex(),
                    "time": output::rfc3339(s.time_ns),
                    "path": bpath::display(&f.path),
                    "type": f.entry.node.kind_name(),
                    "size": (!matches!(f.entry.node, Node::Dir { .. })).then(|| f.entry.node.size()),
                    "sha256": match &f.entry.node {
                        Node::File { sha256, .. } => Some(hex::encode(sha256)),
                        _ => None,
                    },
                });
                if let Node::Symlink { target } = &f.entry.node {
                    v["target"] = json!(bpath::display(target));
                }
                v
            })
            .collect();
        print_json(&Value::Array(arr))?;
        return Ok(());
    }
    if rows.is_empty() {
        if !ctx.quiet {
            eprintln!(
                "nothing found in {} snapshot{}",
                snapshots.len(),
                if snapshots.len() == 1 { "" } else { "s" }
            );
        }
        return Ok(());
    }
    let sw = rows
        .iter()
        .map(|r| r.1.source.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for (id, s, f) in &rows {
        let (size, what) = match &f.entry.node {
            Node::File { size, sha256, .. } => (output::size(*size), hex::encode(&sha256[..6])),
            Node::Dir { .. } => ("-".to_string(), "dir         ".to_string()),
            Node::Symlink { .. } => ("-".to_string(), "link        ".to_string()),
        };
        let mut p = bpath::display(&f.path);
        match &f.entry.node {
            Node::Dir { .. } => p.push('/'),
            Node::Symlink { target } => {
                p.push_str(" -> ");
                p.push_str(&bpath::display(target));
            }
            Node::File { .. } => {}
        }
        writeln!(
            out,
            "{:sw$}  {}  {}  {:>10}  {}  {}",
            s.source,
            id.short(),
            output::time_ns(s.time_ns),
            size,
            what,
            p
        )?;
    }
    Ok(())
}
