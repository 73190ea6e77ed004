//! `diff`: what changed between two snapshots (a walk of both trees that
//! skips equal subtrees by id), between two paths of any snapshots, or
//! between a snapshot and a folder or board as it is now (nothing is
//! written; a board hashes its own files, so only files whose lines are
//! compared cross the wire). Line counts and patches are computed here;
//! how they are shown is the caller's.

use std::io::Read;
use std::path::Path;

use belay_store::diff::{self, Change, ChangeKind, LiveDiff, PathFilter};
use belay_store::path as bpath;
use belay_store::repo::RefKind;
use belay_store::source::Source;
use belay_store::tree::{Node, TreeEntry};
use belay_store::{ObjectId, Repo, rev, walk};
use belay_transport::Location;
use belay_transport::dir::DirSource;
use serde::Serialize;
use similar::{ChangeTag, TextDiff};

use crate::board::{self, Board};
use crate::error::{Error, Result, ResultExt, bail};
use crate::progress::Progress;

/// Files larger than this are not compared line by line.
const MAX_TEXT: u64 = 8 << 20;

/// What to compare (the arguments of `belay diff`).
#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    /// `REV`, `REV:PATH`, `A..B`, or a folder or board (`dir:`, `serial:`)
    /// to compare with its latest snapshot.
    pub from: String,
    /// `REV`, `REV:PATH`, or a folder or board as it is now.
    pub to: Option<String>,
    /// Only these paths.
    pub paths: Vec<String>,
    /// Globs a live folder or board leaves out.
    pub excludes: Vec<String>,
    /// Count inserted and deleted lines.
    pub stat: bool,
    /// Make unified patches, with `context` lines around each change.
    pub patch: bool,
    pub context: usize,
}

/// What a text comparison of one change found.
#[derive(Clone, Debug, Default)]
pub struct Lines {
    pub binary: bool,
    pub insertions: usize,
    pub deletions: usize,
    /// Unified diff hunks (with `patch`).
    pub patch: String,
}

/// One change; `--json` prints it as it is.
#[derive(Clone, Debug, Serialize)]
pub struct DiffEntry {
    /// The change as the store found it (both sides' entries).
    #[serde(skip)]
    pub change: Change,
    /// Its lines, when they were compared (`stat` or `patch`, and a side
    /// has content).
    #[serde(skip)]
    pub lines: Option<Lines>,
    path: String,
    #[serde(rename = "change")]
    kind: &'static str,
    old_size: Option<u64>,
    new_size: Option<u64>,
    old_type: Option<&'static str>,
    new_type: Option<&'static str>,
    old_sha256: Option<String>,
    new_sha256: Option<String>,
    old_mode: Option<u32>,
    new_mode: Option<u32>,
    /// Only for changes that involve a symbolic link.
    #[serde(skip_serializing_if = "Option::is_none")]
    old_target: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_target: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    binary: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    insertions: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deletions: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
}

/// "file", "dir" or "symlink".
pub fn kind_word(e: &TreeEntry) -> &'static str {
    e.node.kind_name()
}

/// A side's size: none for a directory or an absent side.
pub fn size_of(e: &Option<TreeEntry>) -> Option<u64> {
    match e.as_ref().map(|e| &e.node) {
        Some(Node::Dir { .. }) | None => None,
        Some(n) => Some(n.size()),
    }
}

impl DiffEntry {
    fn new(change: Change, lines: Option<Lines>, opts: &DiffOptions) -> DiffEntry {
        let sha = |e: &Option<TreeEntry>| match e.as_ref().map(|e| &e.node) {
            Some(Node::File { sha256, .. }) => Some(belay_store::id::sha256_hex(sha256)),
            _ => None,
        };
        let target = |e: &Option<TreeEntry>| match e.as_ref().map(|e| &e.node) {
            Some(Node::Symlink { target }) => Some(bpath::display(target)),
            _ => None,
        };
        let (ol, nl) = (target(&change.old), target(&change.new));
        let links = ol.is_some() || nl.is_some();
        let l = lines.as_ref();
        DiffEntry {
            path: bpath::display(&change.path),
            kind: change.change.name(),
            old_size: size_of(&change.old),
            new_size: size_of(&change.new),
            old_type: change.old.as_ref().map(kind_word),
            new_type: change.new.as_ref().map(kind_word),
            old_sha256: sha(&change.old),
            new_sha256: sha(&change.new).filter(|_| change.new_sha256_known),
            old_mode: change.old.as_ref().map(|e| e.mode),
            new_mode: change.new.as_ref().map(|e| e.mode),
            old_target: links.then_some(ol),
            new_target: links.then_some(nl),
            binary: l.map(|l| l.binary),
            insertions: l.filter(|_| opts.stat).map(|l| l.insertions),
            deletions: l.filter(|_| opts.stat).map(|l| l.deletions),
            patch: l
                .filter(|l| opts.patch && !l.binary)
                .map(|l| l.patch.clone()),
            change,
            lines,
        }
    }
}

/// What comparing with a folder or board as it is now cost.
#[derive(Clone, Debug)]
pub struct LiveReport {
    /// The folder or board, as messages name it.
    pub what: String,
    pub warnings: Vec<String>,
    pub files_unchanged_by_mtime: u64,
    pub files_hashed_by_source: u64,
    pub files_read: u64,
    pub bytes_read: u64,
}

/// What `diff` found; `--json` prints `changes` as an array.
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub struct DiffResult {
    pub changes: Vec<DiffEntry>,
    /// The firmware of two boards' snapshots, when it differs (old, new).
    #[serde(skip)]
    pub firmware: Option<(String, String)>,
    /// Tree objects read to compare two snapshots.
    #[serde(skip)]
    pub trees_read: Option<u64>,
    /// Comparing with a live folder or board: what that cost.
    #[serde(skip)]
    pub live: Option<LiveReport>,
}

/// Where the new side's file contents come from.
enum NewSide<'a> {
    Repo,
    Live(&'a dyn Source),
}

/// A folder or board named on the command line, if `arg` is one.
pub fn live_location(repo: &Repo, arg: &str) -> Option<Location> {
    if arg.starts_with("dir:") || arg.starts_with("serial:") {
        return Location::parse(arg).ok();
    }
    // A plain path to an existing folder, when it is not a revision.
    if rev::resolve(repo, arg).is_err() && Path::new(arg).is_dir() {
        return Some(Location::Dir(arg.into()));
    }
    None
}

/// Compare what `opts` names.
pub fn diff(repo: &Repo, opts: &DiffOptions, p: &dyn Progress) -> Result<DiffResult> {
    let mut a = opts.clone();
    // git's `diff A..B` is `diff A B`.
    if a.to.is_none()
        && !a.from.contains(':')
        && let Some((from, to)) = rev::split_range(&a.from)?
    {
        if from.is_empty() || to.is_empty() {
            bail!(
                "{:?}: give both sides, e.g. `belay diff NAME~1..NAME` (or `belay diff NAME~1 NAME`)",
                a.from
            );
        }
        let (from, to) = (from.to_string(), to.to_string());
        a.from = from;
        a.to = Some(to);
    }
    let paths: Vec<Vec<u8>> = a.paths.iter().map(|p| bpath::parse_user_path(p)).collect();
    let filter = PathFilter::new(&paths)?;

    // `belay diff dir:PATH` / `serial:PORT` alone: against that source's
    // latest snapshot.
    if a.to.is_none() && (a.from.starts_with("dir:") || a.from.starts_with("serial:")) {
        let loc = Location::parse(&a.from).map_err(Error::Invalid)?;
        return live(repo, &a, None, loc, &filter, p);
    }
    if a.from.starts_with("dir:") || a.from.starts_with("serial:") {
        bail!(
            "a folder or board goes second: `belay diff REV {}` (or alone, against its latest snapshot)",
            a.from
        );
    }
    if rev::split_path(&a.from).1.is_some() {
        return diff_paths(repo, &a, &filter);
    }
    let from_id = rev::resolve(repo, &a.from)?;
    let from = repo.read_snapshot(&from_id)?;
    let Some(to) = &a.to else {
        // One revision: against its parent.
        let old_tree = match from.parents.first() {
            None => None,
            Some(p) if repo.has_object(p) => Some(repo.read_snapshot(p)?.tree),
            Some(p) => bail!(
                "the parent of {} ({}) was forgotten; give two revisions to compare",
                from_id.short(),
                p.short()
            ),
        };
        let changes = diff::diff_trees(repo, old_tree.as_ref(), Some(&from.tree), &filter)?;
        let mut r = lines(repo, &a, changes, NewSide::Repo)?;
        r.trees_read = Some(repo.trees_read());
        return Ok(r);
    };
    if let Some(loc) = live_location(repo, to) {
        return live(repo, &a, Some(from_id), loc, &filter, p);
    }
    if rev::split_path(to).1.is_some() {
        return diff_paths(repo, &a, &filter);
    }
    let to_id = rev::resolve(repo, to)?;
    let to_snap = repo.read_snapshot(&to_id)?;
    let changes = diff::diff_trees(repo, Some(&from.tree), Some(&to_snap.tree), &filter)?;
    let trees_read = repo.trees_read();
    let firmware = match (
        from.device_value("firmware"),
        to_snap.device_value("firmware"),
    ) {
        (Some(o), Some(n)) if o != n => Some((o.to_string(), n.to_string())),
        _ => None,
    };
    let mut r = lines(repo, &a, changes, NewSide::Repo)?;
    r.trees_read = Some(trees_read);
    r.firmware = firmware;
    Ok(r)
}

/// `belay diff A:PATH B:PATH`: two directories (their contents, with
/// paths relative to them) or two files of any snapshots. A side without
/// `:PATH` stands for the same path as the other side.
fn diff_paths(repo: &Repo, a: &DiffOptions, filter: &PathFilter) -> Result<DiffResult> {
    let Some(to) = &a.to else {
        bail!(
            "`belay diff REV:PATH` needs a second side, e.g. `belay diff {} OTHER:PATH`",
            a.from
        );
    };
    let (fr, fp) = rev::split_path(&a.from);
    let (tr, tp) = rev::split_path(to);
    let fp = fp.or(tp).map(bpath::parse_user_path).unwrap_or_default();
    let tp = tp.map(bpath::parse_user_path).unwrap_or_else(|| fp.clone());
    let side = |r: &str, p: &[u8]| -> Result<TreeEntry> {
        let id = rev::resolve(repo, r)?;
        let snap = repo.read_snapshot(&id)?;
        match walk::lookup(repo, &snap.tree, p)? {
            Some(e) => Ok(e),
            None => bail!(
                "{}: no such path in snapshot {}",
                bpath::display(p),
                id.short()
            ),
        }
    };
    let (old, new) = (side(fr, &fp)?, side(tr, &tp)?);
    let changes = match (&old.node, &new.node) {
        (Node::Dir { tree: t1 }, Node::Dir { tree: t2 }) => {
            diff::diff_trees(repo, Some(t1), Some(t2), filter)?
        }
        (Node::Dir { .. }, _) | (_, Node::Dir { .. }) => bail!(
            "{} is a {} and {} a {}: compare two directories or two files",
            bpath::display(&fp),
            old.node.kind_name(),
            bpath::display(&tp),
            new.node.kind_name()
        ),
        _ => {
            let mut c = Change {
                path: tp.clone(),
                change: ChangeKind::Modified,
                old: Some(old.clone()),
                new: Some(new.clone()),
                new_sha256_known: true,
            };
            if std::mem::discriminant(&old.node) != std::mem::discriminant(&new.node) {
                c.change = ChangeKind::TypeChanged;
            }
            let same = c.change == ChangeKind::Modified
                && !c.content_changed()
                && (old.mode == new.mode || old.mode == 0 || new.mode == 0);
            if same { Vec::new() } else { vec![c] }
        }
    };
    lines(repo, a, changes, NewSide::Repo)
}

/// The snapshot a live side without a revision is compared with.
fn latest_of(repo: &Repo, a: &DiffOptions, name: &str) -> Result<ObjectId> {
    match repo.read_ref(RefKind::Head, name)? {
        Some(id) => Ok(id),
        None => bail!(
            "no snapshot of a source named {name:?}; give the snapshot to compare with: `belay diff REV {}`",
            a.from
        ),
    }
}

/// Compare snapshot tree `tree` with `source` as it is now (`what`, in
/// messages), its lines too where asked.
fn compare_live(
    repo: &Repo,
    a: &DiffOptions,
    tree: &ObjectId,
    source: &dyn Source,
    what: String,
    filter: &PathFilter,
    p: &dyn Progress,
) -> Result<DiffResult> {
    let spinner = p.spinner(&what);
    let d = diff::diff_source(repo, tree, source, filter);
    drop(spinner);
    let d: LiveDiff = d?;
    let report = LiveReport {
        what,
        warnings: d.warnings.clone(),
        files_unchanged_by_mtime: d.files_unchanged_by_mtime,
        files_hashed_by_source: d.files_hashed_by_source,
        files_read: d.files_read,
        bytes_read: d.bytes_read,
    };
    let mut r = lines(repo, a, d.changes, NewSide::Live(source))?;
    r.live = Some(report);
    Ok(r)
}

fn live(
    repo: &Repo,
    a: &DiffOptions,
    from: Option<ObjectId>,
    loc: Location,
    filter: &PathFilter,
    p: &dyn Progress,
) -> Result<DiffResult> {
    match loc {
        Location::Dir(dir) => {
            let mut source = DirSource::new(&dir, a.excludes.clone(), false)
                .with_context(|| format!("cannot read {}", dir.display()))?;
            source.skip_path(repo.root());
            let from = match from {
                Some(f) => f,
                None => latest_of(repo, a, &belay_store::repo::default_source_name(&source))?,
            };
            let snap = repo.read_snapshot(&from)?;
            compare_live(repo, a, &snap.tree, &source, source.location(), filter, p)
        }
        Location::Serial { port, baud } => {
            let board = Board::open(&port, baud, p)?;
            let label = board.label().to_string();
            let from = match from {
                Some(f) => f,
                None => match board
                    .unique_id()
                    .map(|u| board::latest_for_unique_id(repo, &u))
                    .transpose()?
                {
                    Some(Some((_, id))) => id,
                    _ => bail!(
                        "{label}: no snapshot of this board found; give the snapshot to compare with: `belay diff REV {}`",
                        a.from
                    ),
                },
            };
            let snap = repo.read_snapshot(&from)?;
            if !board.has_hashlib() {
                p.warn(&format!(
                    "{label}: the board has no hashlib, so every file of the same size is pulled to compare it"
                ));
            }
            let result = board
                .source(None, true)
                .with_excludes(&a.excludes)
                .map_err(Error::from)
                .and_then(|source| {
                    compare_live(repo, a, &snap.tree, &source, label.clone(), filter, p)
                });
            if result.is_ok() {
                board.drain_warnings(p);
                board.close(p);
            }
            result.with_context(|| format!("diff against {label} failed"))
        }
    }
}

/// The changes with their lines compared where asked.
fn lines(repo: &Repo, a: &DiffOptions, changes: Vec<Change>, side: NewSide) -> Result<DiffResult> {
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        let l = if a.patch || a.stat {
            compare(repo, &c, &side, a.context, a.patch)?
        } else {
            None
        };
        out.push(DiffEntry::new(c, l, a));
    }
    Ok(DiffResult {
        changes: out,
        firmware: None,
        trees_read: None,
        live: None,
    })
}

// ---- contents ----------------------------------------------------------

/// The bytes of an entry for a text diff: a file's content or a link's
/// target; nothing for directories or absent entries.
fn content(repo: &Repo, e: Option<&TreeEntry>, path: &[u8], side: &NewSide) -> Result<Vec<u8>> {
    let Some(e) = e else { return Ok(Vec::new()) };
    match &e.node {
        Node::Dir { .. } => Ok(Vec::new()),
        Node::Symlink { target } => Ok(target.clone()),
        Node::File {
            size,
            sha256,
            chunks,
        } => {
            let mut buf = Vec::with_capacity(*size as usize);
            match side {
                NewSide::Live(src) => {
                    src.open(path)
                        .and_then(|mut r| r.read_to_end(&mut buf))
                        .with_context(|| format!("reading {}", bpath::display(path)))?;
                }
                NewSide::Repo => {
                    crate::browse::write_file(repo, (*size, sha256, chunks), path, &mut buf)?
                }
            }
            Ok(buf)
        }
    }
}

fn is_text(b: &[u8]) -> bool {
    !b[..b.len().min(8000)].contains(&0) && std::str::from_utf8(b).is_ok()
}

fn too_big(e: Option<&TreeEntry>) -> bool {
    matches!(e.map(|e| &e.node), Some(Node::File { size, .. }) if *size > MAX_TEXT)
}

/// Whether a side has content to compare (a file or a link).
pub fn has_content(e: Option<&TreeEntry>) -> bool {
    matches!(
        e.map(|e| &e.node),
        Some(Node::File { .. } | Node::Symlink { .. })
    )
}

/// git's `a/PATH` / `b/PATH` names for the two sides of a patch,
/// `/dev/null` for a side without content.
pub fn side_names(p: &str, o: Option<&TreeEntry>, n: Option<&TreeEntry>) -> (String, String) {
    let name = |side: &str, e| {
        if has_content(e) {
            format!("{side}/{p}")
        } else {
            "/dev/null".to_string()
        }
    };
    (name("a", o), name("b", n))
}

fn compare(
    repo: &Repo,
    c: &Change,
    side: &NewSide,
    context: usize,
    want_patch: bool,
) -> Result<Option<Lines>> {
    let binary = || {
        Ok(Some(Lines {
            binary: true,
            ..Lines::default()
        }))
    };
    let (o, n) = (c.old.as_ref(), c.new.as_ref());
    if !has_content(o) && !has_content(n) {
        return Ok(None);
    }
    if !c.content_changed() && c.change == ChangeKind::Modified {
        return Ok(Some(Lines::default()));
    }
    if too_big(o) || too_big(n) {
        return binary();
    }
    let old = if has_content(o) {
        content(repo, o, &c.path, &NewSide::Repo)?
    } else {
        Vec::new()
    };
    // Old binary content makes the pair binary whatever the new side is:
    // do not pull the new side (from a board, that saves the transfer).
    if !is_text(&old) {
        return binary();
    }
    let new = if has_content(n) {
        content(repo, n, &c.path, side)?
    } else {
        Vec::new()
    };
    if !is_text(&new) {
        return binary();
    }
    let (old, new) = (
        std::str::from_utf8(&old).expect("checked by is_text"),
        std::str::from_utf8(&new).expect("checked by is_text"),
    );
    let td = TextDiff::from_lines(old, new);
    let mut l = Lines::default();
    for ch in td.iter_all_changes() {
        match ch.tag() {
            ChangeTag::Insert => l.insertions += 1,
            ChangeTag::Delete => l.deletions += 1,
            ChangeTag::Equal => {}
        }
    }
    if want_patch {
        let p = bpath::display(&c.path);
        let (a_name, b_name) = side_names(&p, o, n);
        l.patch = td
            .unified_diff()
            .context_radius(context)
            .header(&a_name, &b_name)
            .to_string();
    }
    Ok(Some(l))
}
