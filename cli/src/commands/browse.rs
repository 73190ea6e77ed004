//! `belay ls` and `belay cat`: reading a snapshot without restoring it.

use super::Ctx;
use std::io::{Read, Write};

use anyhow::{Result, bail};
use belay_store::Repo;
use belay_store::path as bpath;
use belay_store::restore::ContentReader;
use belay_store::tree::Node;

use crate::output::{self, print_json};

use belay_core::restore::resolve_spec;

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
