//! `belay ls` and `belay cat`: reading a snapshot without restoring it.

use super::Ctx;
use std::io::{Read, Write};

use anyhow::{Result, bail};
use belay_store::path as bpath;
use belay_store::restore::ContentReader;
use belay_store::tree::{Node, TreeEntry};
use belay_store::{Repo, walk};
use serde_json::json;

use crate::output::{self, print_json};

use belay_core::restore::resolve_spec;

pub(crate) fn ls(ctx: &Ctx, repo: &Repo, spec: &str, recursive: bool) -> Result<()> {
    let (_, base, entry) = resolve_spec(repo, spec)?;
    let mut rows: Vec<(Vec<u8>, TreeEntry)> = Vec::new();
    match &entry.node {
        Node::Dir { tree } => {
            if recursive {
                rows = walk::flatten(repo, tree)?;
            } else {
                rows = repo
                    .read_tree(tree)?
                    .entries
                    .into_iter()
                    .map(|e| (e.name.clone(), e))
                    .collect();
            }
        }
        _ => rows.push((entry.name.clone(), entry.clone())),
    }
    if ctx.json {
        let arr: Vec<_> = rows
            .iter()
            .map(|(p, e)| {
                let full = if matches!(entry.node, Node::Dir { .. }) {
                    bpath::join(&base, p)
                } else {
                    base.clone()
                };
                let mut v = json!({
                    "path": bpath::display(&full),
                    "type": e.node.kind_name(),
                    "mode": e.mode,
                    "size": e.node.size(),
                    "mtime": e.mtime_ns.map(output::rfc3339),
                });
                match &e.node {
                    Node::File { sha256, .. } => {
                        v["sha256"] = json!(hex::encode(sha256));
                    }
                    Node::Symlink { target } => {
                        v["target"] = json!(bpath::display(target));
                    }
                    Node::Dir { .. } => {}
                }
                v
            })
            .collect();
        print_json(&serde_json::Value::Array(arr))?;
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for (p, e) in &rows {
        let mut name = bpath::display(p);
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
    let (_, path, entry) = resolve_spec(repo, spec)?;
    let Node::File {
        size,
        sha256,
        chunks,
    } = &entry.node
    else {
        bail!(
            "{} is a {}, not a file (use `belay ls`)",
            bpath::display(&path),
            entry.node.kind_name()
        );
    };
    let mut reader = ContentReader::new(repo, chunks, *size, *sha256, &path);
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) => match reader.error.take() {
                Some(err) => return Err(err.into()),
                None => return Err(e.into()),
            },
        };
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
    }
    out.flush()?;
    Ok(())
}
