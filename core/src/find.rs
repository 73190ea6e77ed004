//! `find`: which snapshots (and so which boards and folders) hold a path
//! matching a glob, or a given content; or what a folder or board holds
//! now.

use belay_store::history::{self, Finder};
use belay_store::path as bpath;
use belay_store::snapshot::Snapshot;
use belay_store::source::{Source, SourceKind};
use belay_store::tree::{Node, TreeEntry};
use belay_store::{ObjectId, Repo};
use belay_transport::Location;
use belay_transport::dir::DirSource;
use globset::GlobBuilder;
use serde::Serialize;

use crate::error::{Error, Result, bail};
use crate::progress::Progress;

/// What to look for, and where.
#[derive(Clone, Debug, Default)]
pub struct FindOptions {
    /// A glob: without `/` it matches names, with one whole paths.
    pub glob: Option<String>,
    /// 4 to 64 hex digits of a file's SHA-256.
    pub hash: Option<String>,
    /// A source name (its latest snapshot), or a live folder or board.
    pub source: Option<String>,
    /// Every live snapshot, not only the latest of each source.
    pub all: bool,
}

/// One entry found; `--json` prints the list.
#[derive(Clone, Debug, Serialize)]
pub struct FindHit {
    pub source: String,
    pub location: String,
    /// The snapshot (none: a live folder or board).
    #[serde(serialize_with = "crate::json::opt_id")]
    pub snapshot: Option<ObjectId>,
    /// The snapshot's time, RFC 3339.
    pub time: Option<String>,
    #[serde(skip)]
    pub time_ns: i64,
    /// Found in a folder or on a board as it is now.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub live: bool,
    pub path: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    /// A symbolic link's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// What `find` found.
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub struct FindResult {
    pub hits: Vec<FindHit>,
    /// How many snapshots were searched (none: a live source).
    #[serde(skip)]
    pub snapshots_searched: Option<usize>,
}

/// The snapshots to search, newest first.
fn scope(repo: &Repo, opts: &FindOptions) -> Result<Vec<(ObjectId, Snapshot)>> {
    let mut out = Vec::new();
    match (&opts.source, opts.all) {
        (Some(name), true) => {
            out = history::source_snapshots(repo, name)?;
            out.retain(|(id, _)| repo.is_live(id));
            if out.is_empty() {
                bail!("no source named {name:?} (`belay log --oneline` lists sources)");
            }
        }
        (Some(name), false) => {
            let Some(id) = repo.read_ref(belay_store::repo::RefKind::Head, name)? else {
                bail!("no source named {name:?} (`belay log --oneline` lists sources)");
            };
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
    hash.as_ref().is_none_or(|h| {
        sha256.is_some_and(|s| belay_store::id::sha256_hex(s).starts_with(h.as_str()))
    })
}

/// Find what `opts` asks for.
pub fn find(repo: &Repo, opts: &FindOptions, p: &dyn Progress) -> Result<FindResult> {
    let glob = match &opts.glob {
        Some(g) => {
            let anchored = g.trim_start_matches('/');
            let by_name = !g.contains('/');
            let m = GlobBuilder::new(anchored)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::invalid(format!("invalid glob {g:?}: {e}")))?
                .compile_matcher();
            Some((m, by_name))
        }
        None => None,
    };
    let hash = match &opts.hash {
        Some(h) => {
            let h = h.trim().to_ascii_lowercase();
            if h.len() < 4 || h.len() > 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                bail!("--hash {h:?}: give 4 to 64 hex digits of a SHA-256");
            }
            Some(h)
        }
        None => None,
    };
    if let Some(loc) = opts
        .source
        .as_deref()
        .and_then(|s| crate::diff::live_location(repo, s))
    {
        if opts.all {
            bail!(
                "--all searches every snapshot of a source; {} is a live folder or board: leave out --all",
                opts.source.as_deref().unwrap_or_default()
            );
        }
        return find_live(repo, loc, &glob, &hash, p);
    }
    let matcher = |path: &[u8], e: &TreeEntry| -> bool {
        glob_matches(&glob, path, &e.name)
            && (hash.is_none()
                || hash_matches(
                    &hash,
                    match &e.node {
                        Node::File { sha256, .. } => Some(sha256),
                        _ => None,
                    },
                ))
    };
    let snapshots = scope(repo, opts)?;
    let mut finder = Finder::new(repo, &matcher);
    let mut hits = Vec::new();
    for (id, s) in &snapshots {
        for f in finder.find(&s.tree)?.iter() {
            let node = &f.entry.node;
            hits.push(FindHit {
                source: s.source.clone(),
                location: s.location.clone(),
                snapshot: Some(*id),
                time: Some(crate::json::rfc3339(s.time_ns)),
                time_ns: s.time_ns,
                live: false,
                path: bpath::display(&f.path),
                kind: node.kind_name(),
                size: (!matches!(node, Node::Dir { .. })).then(|| node.size()),
                sha256: match node {
                    Node::File { sha256, .. } => Some(belay_store::id::sha256_hex(sha256)),
                    _ => None,
                },
                target: match node {
                    Node::Symlink { target } => Some(bpath::display(target)),
                    _ => None,
                },
            });
        }
    }
    Ok(FindResult {
        hits,
        snapshots_searched: Some(snapshots.len()),
    })
}

/// Search what a folder or a board holds now (a board hashes the
/// matching files itself).
fn find_live(
    repo: &Repo,
    loc: Location,
    glob: &Option<Glob>,
    hash: &Option<String>,
    p: &dyn Progress,
) -> Result<FindResult> {
    let search = |src: &dyn Source| -> Result<Vec<FindHit>> {
        let mut entries = src.walk(&mut |w| p.warn(&w))?;
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
                .map(|f| belay_store::diff::hash_file(src, f).map(|h| h.0))
                .collect::<std::io::Result<Vec<_>>>()?,
        };
        let mut sums = sums.into_iter();
        let location = src.location();
        let mut hits = Vec::new();
        for e in &entries {
            let sha = (e.kind == SourceKind::File).then(|| sums.next()).flatten();
            if !hash_matches(hash, sha.as_ref()) {
                continue;
            }
            hits.push(FindHit {
                source: location.clone(),
                location: location.clone(),
                snapshot: None,
                time: None,
                time_ns: 0,
                live: true,
                path: bpath::display(&e.path),
                kind: match e.kind {
                    SourceKind::File => "file",
                    SourceKind::Dir => "dir",
                    SourceKind::Symlink { .. } => "symlink",
                },
                size: (e.kind != SourceKind::Dir).then_some(e.size),
                sha256: sha.map(|s| belay_store::id::sha256_hex(&s)),
                target: match &e.kind {
                    SourceKind::Symlink { target } => Some(bpath::display(target)),
                    _ => None,
                },
            });
        }
        Ok(hits)
    };
    let hits = match loc {
        Location::Dir(dir) => {
            let mut source = DirSource::new(&dir, Vec::new(), false)
                .map_err(|e| Error::invalid(format!("cannot read {}: {e}", dir.display())))?;
            source.skip_path(repo.root());
            search(&source)?
        }
        Location::Serial { port, baud } => crate::board::with_source(&port, baud, p, search)?,
    };
    Ok(FindResult {
        hits,
        snapshots_searched: None,
    })
}
