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

/// A compiled glob and whether it matches names (no `/`) or whole paths.
type Glob = (globset::GlobMatcher, bool);

fn glob_matches(glob: &Option<Glob>, path: &[u8], name: &[u8]) -> bool {
    glob.as_ref().is_none_or(|(m, by_name)| {
        let subject = if *by_name { name } else { path };
        m.is_match(bpath::display(subject).as_str())
    })
}

fn hash_matches(hash: &Option<String>, sha256: Option<&[u8; 32]>) -> bool {
    hash.as_ref()
        .is_none_or(|h| sha256.is_some_and(|s| hex::encode(s).starts_with(h.as_str())))
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
    if let Some(loc) = a
        .source
        .as_deref()
        .and_then(|s| belay_core::diff::live_location(repo, s))
    {
        if a.all {
            bail!(
                "--all searches every snapshot of a source; {} is a live folder or board: leave out --all",
                a.source.as_deref().unwrap_or_default()
            );
        }
        return find_live(ctx, repo, loc, &glob, &hash);
    }
    let matcher = |p: &[u8], e: &TreeEntry| -> bool {
        glob_matches(&glob, p, &e.name)
            && (hash.is_none()
                || hash_matches(
                    &hash,
                    match &e.node {
                        Node::File { sha256, .. } => Some(sha256),
                        _ => None,
                    },
                ))
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

/// `find --source dir:PATH|serial:PORT`: search what a folder or a board
/// holds now (a board hashes the matching files itself).
fn find_live(
    ctx: &Ctx,
    repo: &Repo,
    loc: belay_transport::Location,
    glob: &Option<Glob>,
    hash: &Option<String>,
) -> Result<()> {
    use belay_store::source::{Source, SourceKind};
    use belay_transport::Location;
    let search = |src: &dyn Source| -> Result<Vec<Value>> {
        let mut entries = src.walk(&mut |w| ctx.warn(w))?;
        entries.retain(|e| {
            let name = e.path.rsplit(|&b| b == b'/').next().unwrap_or(&e.path);
            glob_matches(glob, &e.path, name) && (hash.is_none() || e.kind == SourceKind::File)
        });
        entries.sort_by(|x, y| x.path.cmp(&y.path));
        // The SHA-256 of every matching file: computed by a board itself,
        // read here from a folder.
        let files: Vec<&[u8]> = entries
            .iter()
            .filter(|e| e.kind == SourceKind::File)
            .map(|e| e.path.as_slice())
            .collect();
        let sums = match src.hashes(&files)? {
            Some(s) => s,
            None => files
                .iter()
                .map(|p| belay_store::diff::hash_file(src, p).map(|h| h.0))
                .collect::<std::io::Result<Vec<_>>>()?,
        };
        let mut sums = sums.into_iter();
        let location = src.location();
        let mut rows = Vec::new();
        for e in &entries {
            let sha = (e.kind == SourceKind::File).then(|| sums.next()).flatten();
            if !hash_matches(hash, sha.as_ref()) {
                continue;
            }
            let mut v = json!({
                "source": location,
                "location": location,
                "snapshot": null,
                "time": null,
                "live": true,
                "path": bpath::display(&e.path),
                "type": match e.kind {
                    SourceKind::File => "file",
                    SourceKind::Dir => "dir",
                    SourceKind::Symlink { .. } => "symlink",
                },
                "size": (e.kind != SourceKind::Dir).then_some(e.size),
                "sha256": sha.map(hex::encode),
            });
            if let SourceKind::Symlink { target } = &e.kind {
                v["target"] = json!(bpath::display(target));
            }
            rows.push(v);
        }
        Ok(rows)
    };
    let rows = match loc {
        Location::Dir(dir) => {
            let mut source = belay_transport::dir::DirSource::new(&dir, Vec::new(), false)
                .map_err(|e| anyhow!("cannot read {}: {e}", dir.display()))?;
            source.skip_path(repo.root());
            search(&source)?
        }
        Location::Serial { port, baud } => {
            belay_core::board::with_source(&port, baud, ctx, |b| search(b))?
        }
    };
    if ctx.json {
        print_json(&Value::Array(rows))?;
        return Ok(());
    }
    if rows.is_empty() {
        if !ctx.quiet {
            eprintln!("nothing found");
        }
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for r in &rows {
        let size = r["size"].as_u64().map(output::size).unwrap_or("-".into());
        let what = match r["type"].as_str() {
            Some("dir") => "dir         ".to_string(),
            Some("symlink") => "link        ".to_string(),
            _ => r["sha256"]
                .as_str()
                .map(|s| s[..12].to_string())
                .unwrap_or_default(),
        };
        let mut p = r["path"].as_str().unwrap_or_default().to_string();
        match r["type"].as_str() {
            Some("dir") => p.push('/'),
            Some("symlink") => {
                p.push_str(" -> ");
                p.push_str(r["target"].as_str().unwrap_or_default());
            }
            _ => {}
        }
        writeln!(
            out,
            "{}  live  {:>10}  {}  {}",
            r["source"].as_str().unwrap_or_default(),
            size,
            what,
            p
        )?;
    }
    Ok(())
}
