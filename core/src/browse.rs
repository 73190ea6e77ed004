//! `ls` and `cat`: what a snapshot (or a directory of it) holds, and a
//! file's content, without restoring it.

use std::io::{Read, Write};

use belay_store::path as bpath;
use belay_store::restore::ContentReader;
use belay_store::tree::{Node, TreeEntry};
use belay_store::{Repo, walk};
use serde::Serialize;

use crate::error::{Result, bail};
use crate::restore::resolve_spec;

/// One entry; `ls --json` prints the list.
#[derive(Clone, Debug, Serialize)]
pub struct ListedEntry {
    /// The full path in the snapshot.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub mode: u32,
    pub size: u64,
    /// RFC 3339, where the source keeps times.
    pub mtime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The path relative to what was listed.
    #[serde(skip)]
    pub name: Vec<u8>,
    #[serde(skip)]
    pub entry: TreeEntry,
}

/// The entries of `REV[:PATH]` (a directory's, `recursive`ly or not; a
/// file itself).
pub fn ls(repo: &Repo, spec: &str, recursive: bool) -> Result<Vec<ListedEntry>> {
    let (_, base, entry) = resolve_spec(repo, spec)?;
    let rows: Vec<(Vec<u8>, TreeEntry)> = match &entry.node {
        Node::Dir { tree } if recursive => walk::flatten(repo, tree)?,
        Node::Dir { tree } => repo
            .read_tree(tree)?
            .entries
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect(),
        _ => vec![(entry.name.clone(), entry.clone())],
    };
    let is_dir = matches!(entry.node, Node::Dir { .. });
    Ok(rows
        .into_iter()
        .map(|(p, e)| {
            let full = if is_dir {
                bpath::join(&base, &p)
            } else {
                base.clone()
            };
            ListedEntry {
                path: bpath::display(&full),
                kind: e.node.kind_name(),
                mode: e.mode,
                size: e.node.size(),
                mtime: e.mtime_ns.map(crate::json::rfc3339),
                sha256: match &e.node {
                    Node::File { sha256, .. } => Some(belay_store::id::sha256_hex(sha256)),
                    _ => None,
                },
                target: match &e.node {
                    Node::Symlink { target } => Some(bpath::display(target)),
                    _ => None,
                },
                name: p,
                entry: e,
            }
        })
        .collect())
}

/// Write the content of file `path` of a snapshot (`size`, `sha256`,
/// `chunks` from its tree entry) to `out`, checking it as it goes; a
/// damaged chunk fails with the store's error.
pub fn write_file(
    repo: &Repo,
    (size, sha256, chunks): (u64, &belay_store::id::Sha256, &[belay_store::ObjectId]),
    path: &[u8],
    out: &mut dyn Write,
) -> Result<()> {
    let mut reader = ContentReader::new(repo, chunks, size, *sha256, path);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                return Err(match reader.error.take() {
                    Some(err) => err.into(),
                    None => e.into(),
                });
            }
        };
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
    }
}

/// `cat REV:PATH`: one file's content, to `out`.
pub fn cat(repo: &Repo, spec: &str, out: &mut dyn Write) -> Result<()> {
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
    write_file(repo, (*size, sha256, chunks), &path, out)?;
    out.flush()?;
    Ok(())
}
