//! Comparing two snapshots (or a snapshot and a live source) as a
//! simultaneous walk of two trees. Equal tree ids end the descent: an
//! unchanged directory costs one comparison of two ids, never a read of its
//! contents, so the cost of a diff grows with what changed, not with the
//! size of the tree.
//!
//! What counts as a change, for a path present on one side or both:
//! - only in the new tree: **added**; only in the old: **removed** (the
//!   contents of an added or removed directory are listed too);
//! - a different kind (file, directory, symlink) on each side:
//!   **type changed** (and the contents of a directory on either side are
//!   listed as removed or added);
//! - a file whose size or SHA-256 differs, a symlink whose target differs,
//!   or a file or directory whose permission bits differ (when both sides
//!   record them: boards keep none): **modified**. Modification times alone
//!   are not a change.
//!
//! Changes come in path order, component by component (a directory's
//! contents right after it).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};

use sha2::{Digest, Sha256 as Sha256Hasher};

use crate::error::{Error, Result};
use crate::id::{ObjectId, Sha256};
use crate::path;
use crate::repo::Repo;
use crate::source::{Source, SourceEntry, SourceKind};
use crate::tree::{MAX_DEPTH, Node, Tree, TreeEntry};
use crate::walk;

/// The kind of a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    Added,
    Removed,
    Modified,
    TypeChanged,
}

impl ChangeKind {
    /// The name used in JSON output: `added`, `removed`, `modified`,
    /// `type_changed`.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Modified => "modified",
            ChangeKind::TypeChanged => "type_changed",
        }
    }

    /// One letter, as `git diff --name-status` prints: A, D, M, T.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Removed => 'D',
            ChangeKind::Modified => 'M',
            ChangeKind::TypeChanged => 'T',
        }
    }
}

/// One changed path. `old` / `new` are the entries on each side (`None`
/// where the path does not exist). For a live source, the new side's file
/// entries carry the size and SHA-256 of the file but no chunks, and its
/// directories carry no tree id (all zeros).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub path: Vec<u8>,
    pub change: ChangeKind,
    pub old: Option<TreeEntry>,
    pub new: Option<TreeEntry>,
    /// False when the new side is a live file that was not hashed (added,
    /// or its size changed, so no hash was needed): its `sha256` is zeros.
    pub new_sha256_known: bool,
}

impl Change {
    /// Whether the content differs (not only the permission bits).
    pub fn content_changed(&self) -> bool {
        match (&self.old, &self.new) {
            (Some(o), Some(n)) => !same_content(&o.node, &n.node),
            _ => true,
        }
    }
}

/// Restricts a diff to some paths (and everything below them). An empty
/// filter lets everything through.
#[derive(Clone, Debug, Default)]
pub struct PathFilter {
    paths: Vec<Vec<u8>>,
}

impl PathFilter {
    /// Everything.
    pub fn all() -> PathFilter {
        PathFilter::default()
    }

    /// Only these paths (relative, `/`-separated; leading and trailing
    /// slashes ignored). The empty path is the root: everything.
    pub fn new(paths: &[Vec<u8>]) -> Result<PathFilter> {
        let mut out = Vec::new();
        for p in paths {
            let mut p = p.as_slice();
            while let [b'/', rest @ ..] = p {
                p = rest;
            }
            let parts = path::components(p).map_err(Error::Rev)?;
            if parts.is_empty() {
                return Ok(PathFilter::all());
            }
            out.push(parts.join(&b'/'));
        }
        out.sort();
        out.dedup();
        Ok(PathFilter { paths: out })
    }

    pub fn is_all(&self) -> bool {
        self.paths.is_empty()
    }

    /// Is `p` one of the paths or below one of them?
    pub fn wants(&self, p: &[u8]) -> bool {
        self.is_all() || self.paths.iter().any(|f| is_under(p, f))
    }

    /// Must a walk look at `p`: wanted, or an ancestor of a wanted path?
    pub fn visits(&self, p: &[u8]) -> bool {
        self.is_all() || self.paths.iter().any(|f| is_under(p, f) || is_under(f, p))
    }
}

/// `p` equals `dir` or lies below it.
fn is_under(p: &[u8], dir: &[u8]) -> bool {
    p == dir || (p.len() > dir.len() && p.starts_with(dir) && p[dir.len()] == b'/')
}

/// Sort key giving path order component by component: `/` sorts before
/// every byte a name may contain.
pub fn path_order_key(p: &[u8]) -> Vec<u8> {
    p.iter().map(|&b| if b == b'/' { 0 } else { b }).collect()
}

fn same_kind(a: &Node, b: &Node) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn same_content(a: &Node, b: &Node) -> bool {
    match (a, b) {
        (
            Node::File {
                size: sa,
                sha256: ha,
                ..
            },
            Node::File {
                size: sb,
                sha256: hb,
                ..
            },
        ) => sa == sb && ha == hb,
        (Node::Symlink { target: ta }, Node::Symlink { target: tb }) => ta == tb,
        (Node::Dir { .. }, Node::Dir { .. }) => true,
        _ => false,
    }
}

/// Permission bits differ, counting only when both sides record them.
/// Symlinks' bits mean nothing on most systems and are ignored.
fn mode_changed(a: &TreeEntry, b: &TreeEntry) -> bool {
    a.mode != 0 && b.mode != 0 && a.mode != b.mode && !matches!(a.node, Node::Symlink { .. })
}

struct Walker<'a> {
    repo: &'a Repo,
    filter: &'a PathFilter,
    out: Vec<Change>,
    /// Stop as soon as one change is found (for `log -- PATH`).
    first_only: bool,
}

impl Walker<'_> {
    fn done(&self) -> bool {
        self.first_only && !self.out.is_empty()
    }

    fn emit(
        &mut self,
        path: &[u8],
        change: ChangeKind,
        old: Option<&TreeEntry>,
        new: Option<&TreeEntry>,
    ) {
        if self.filter.wants(path) {
            self.out.push(Change {
                path: path.to_vec(),
                change,
                old: old.cloned(),
                new: new.cloned(),
                new_sha256_known: true,
            });
        }
    }

    fn tree(&self, id: Option<&ObjectId>) -> Result<Tree> {
        match id {
            Some(id) => self.repo.read_tree(id),
            None => Ok(Tree::default()),
        }
    }

    /// Compare the trees `old` and `new` (`None`: empty) below the root.
    /// Iterative, one frame per directory being compared, so the stack
    /// does not grow with the depth of the trees.
    fn walk(&mut self, old: Option<&ObjectId>, new: Option<&ObjectId>) -> Result<()> {
        let mut stack: Vec<Frame> = Vec::new();
        self.open(&mut stack, Vec::new(), old, new)?;
        while !self.done() {
            let Some(top) = stack.last_mut() else { break };
            let (o, n) = match (top.old.last(), top.new.last()) {
                (None, None) => {
                    stack.pop();
                    continue;
                }
                (Some(x), Some(y)) if x.name == y.name => (top.old.pop(), top.new.pop()),
                (Some(x), Some(y)) if x.name < y.name => (top.old.pop(), None),
                (Some(_), Some(_)) | (None, Some(_)) => (None, top.new.pop()),
                (Some(_), None) => (top.old.pop(), None),
            };
            let name = &o
                .as_ref()
                .or(n.as_ref())
                .expect("one side has the entry")
                .name;
            let p = path::join(&top.prefix, name);
            if !self.filter.visits(&p) {
                continue;
            }
            self.entry(&mut stack, p, o, n)?;
        }
        Ok(())
    }

    /// Start comparing the directories `old` and `new` at `prefix` (nothing
    /// to do when their ids are equal).
    fn open(
        &self,
        stack: &mut Vec<Frame>,
        prefix: Vec<u8>,
        old: Option<&ObjectId>,
        new: Option<&ObjectId>,
    ) -> Result<()> {
        if old.is_some() && old == new {
            return Ok(());
        }
        if stack.len() > MAX_DEPTH {
            return Err(walk::too_deep(&prefix));
        }
        let mut a = self.tree(old)?.entries;
        let mut b = self.tree(new)?.entries;
        // Popped from the end: the smallest name last.
        a.reverse();
        b.reverse();
        stack.push(Frame {
            prefix,
            old: a,
            new: b,
        });
        Ok(())
    }

    fn entry(
        &mut self,
        stack: &mut Vec<Frame>,
        p: Vec<u8>,
        o: Option<TreeEntry>,
        n: Option<TreeEntry>,
    ) -> Result<()> {
        let dir = |e: &Option<TreeEntry>| match e.as_ref().map(|e| &e.node) {
            Some(Node::Dir { tree }) => Some(*tree),
            _ => None,
        };
        let (old_dir, new_dir) = (dir(&o), dir(&n));
        let (o, n) = (o.as_ref(), n.as_ref());
        match (o, n) {
            (Some(o), None) => self.emit(&p, ChangeKind::Removed, Some(o), None),
            (None, Some(n)) => self.emit(&p, ChangeKind::Added, None, Some(n)),
            (Some(o), Some(n)) if !same_kind(&o.node, &n.node) => {
                self.emit(&p, ChangeKind::TypeChanged, Some(o), Some(n))
            }
            (Some(o), Some(n)) => {
                if !same_content(&o.node, &n.node) || mode_changed(o, n) {
                    self.emit(&p, ChangeKind::Modified, Some(o), Some(n));
                }
                if let (Some(a), Some(b)) = (old_dir, new_dir) {
                    return self.open(stack, p, Some(&a), Some(&b));
                }
                return Ok(());
            }
            (None, None) => return Ok(()),
        }
        // One side is not a directory (or is missing): list each side's
        // contents on its own, the old side's first (so it is pushed last).
        if let Some(t) = new_dir {
            self.open(stack, p.clone(), None, Some(&t))?;
        }
        if let Some(t) = old_dir {
            self.open(stack, p, Some(&t), None)?;
        }
        Ok(())
    }
}

/// One directory being compared: its path and the entries of each side
/// not yet looked at, in reverse name order.
struct Frame {
    prefix: Vec<u8>,
    old: Vec<TreeEntry>,
    new: Vec<TreeEntry>,
}

/// Every change between the trees `old` and `new` (`None`: an empty tree),
/// restricted to `filter`, in path order. Reads only the trees of
/// directories that differ.
pub fn diff_trees(
    repo: &Repo,
    old: Option<&ObjectId>,
    new: Option<&ObjectId>,
    filter: &PathFilter,
) -> Result<Vec<Change>> {
    let mut w = Walker {
        repo,
        filter,
        out: Vec::new(),
        first_only: false,
    };
    w.walk(old, new)?;
    Ok(w.out)
}

/// Whether anything under `filter` differs between the two trees; stops at
/// the first change (and reads only the directories on the way to it).
pub fn any_change(
    repo: &Repo,
    old: Option<&ObjectId>,
    new: Option<&ObjectId>,
    filter: &PathFilter,
) -> Result<bool> {
    let mut w = Walker {
        repo,
        filter,
        out: Vec::new(),
        first_only: true,
    };
    w.walk(old, new)?;
    Ok(!w.out.is_empty())
}

/// What a comparison with a live source found, beyond the changes.
#[derive(Clone, Debug, Default)]
pub struct LiveDiff {
    pub changes: Vec<Change>,
    /// Files found unchanged by size and modification time, not read.
    pub files_unchanged_by_mtime: u64,
    /// Files whose SHA-256 was computed by the source itself (a board).
    pub files_hashed_by_source: u64,
    /// Files read here to compute their SHA-256.
    pub files_read: u64,
    pub bytes_read: u64,
    pub warnings: Vec<String>,
}

/// Compare the snapshot tree `old` with what `source` holds now. Nothing is
/// written. A file whose size and modification time match the snapshot is
/// taken as unchanged without reading it (when the source's times can be
/// trusted, as for folders); every other file of the same path and size is
/// compared by SHA-256: computed by the source where it can (a board hashes
/// its own files, so nothing is transferred), else by reading the file.
/// Added files and files whose size changed are not hashed.
pub fn diff_source(
    repo: &Repo,
    old: &ObjectId,
    source: &dyn Source,
    filter: &PathFilter,
) -> Result<LiveDiff> {
    let mut report = LiveDiff::default();
    let mut warnings = Vec::new();
    let mut entries = source
        .walk(&mut |w| warnings.push(w))
        .map_err(|e| Error::Source {
            path: source.location(),
            source: e,
        })?;
    entries.retain(|e| match path::components(&e.path) {
        Ok(c) if !c.is_empty() => filter.wants(&e.path),
        Ok(_) => false,
        Err(_) => {
            warnings.push(format!(
                "skipping {:?}: not a safe path",
                path::display(&e.path)
            ));
            false
        }
    });
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);

    // The snapshot side, limited to the filter.
    let mut snap: BTreeMap<Vec<u8>, TreeEntry> = BTreeMap::new();
    walk::visit_where(repo, old, b"", &|p| filter.visits(p), &mut |p, e| {
        if filter.wants(p) {
            snap.insert(p.to_vec(), e.clone());
        }
        Ok(())
    })?;

    // Which files need a hash.
    let trusts = source.trusts_mtime();
    let mut known: HashMap<Vec<u8>, Sha256> = HashMap::new();
    let mut unsure: Vec<&SourceEntry> = Vec::new();
    for e in entries.iter().filter(|e| e.kind == SourceKind::File) {
        if let Some(TreeEntry {
            node: Node::File { size, sha256, .. },
            mtime_ns,
            ..
        }) = snap.get(&e.path)
            && trusts
            && *size == e.size
            && mtime_ns.is_some()
            && *mtime_ns == e.mtime_ns
        {
            known.insert(e.path.clone(), *sha256);
            report.files_unchanged_by_mtime += 1;
            continue;
        }
        // Only a file of the same path and size needs its content compared:
        // an added file, or one whose size changed, differs anyway.
        if matches!(snap.get(&e.path), Some(TreeEntry { node: Node::File { size, .. }, .. }) if *size == e.size)
        {
            unsure.push(e);
        }
    }
    if !unsure.is_empty() {
        let paths: Vec<&[u8]> = unsure.iter().map(|e| e.path.as_slice()).collect();
        let hashes = source.hashes(&paths).map_err(|e| Error::Source {
            path: source.location(),
            source: e,
        })?;
        match hashes {
            Some(h) => {
                report.files_hashed_by_source += h.len() as u64;
                for (e, h) in unsure.iter().zip(h) {
                    known.insert(e.path.clone(), h);
                }
            }
            None => {
                for e in &unsure {
                    let (h, n) = hash_file(source, &e.path).map_err(|err| Error::Source {
                        path: path::display(&e.path),
                        source: err,
                    })?;
                    report.files_read += 1;
                    report.bytes_read += n;
                    known.insert(e.path.clone(), h);
                }
            }
        }
    }

    let mut live: BTreeMap<Vec<u8>, TreeEntry> = BTreeMap::new();
    for e in entries {
        let name = e
            .path
            .rsplit(|&b| b == b'/')
            .next()
            .unwrap_or(&e.path)
            .to_vec();
        let node = match e.kind {
            SourceKind::File => Node::File {
                size: e.size,
                sha256: known.get(&e.path).copied().unwrap_or([0; 32]),
                chunks: Vec::new(),
            },
            SourceKind::Dir => Node::Dir {
                tree: ObjectId([0; 32]),
            },
            SourceKind::Symlink { target } => Node::Symlink { target },
        };
        live.insert(
            e.path,
            TreeEntry {
                name,
                mode: e.mode,
                mtime_ns: e.mtime_ns,
                node,
            },
        );
    }

    let mut paths: Vec<&Vec<u8>> = snap.keys().chain(live.keys()).collect();
    paths.sort_by_cached_key(|p| path_order_key(p));
    paths.dedup();
    for p in paths {
        let (o, n) = (snap.get(p), live.get(p));
        let change = match (o, n) {
            (Some(_), None) => ChangeKind::Removed,
            (None, Some(_)) => ChangeKind::Added,
            (Some(o), Some(n)) if !same_kind(&o.node, &n.node) => ChangeKind::TypeChanged,
            (Some(o), Some(n)) if !same_content(&o.node, &n.node) || mode_changed(o, n) => {
                ChangeKind::Modified
            }
            _ => continue,
        };
        report.changes.push(Change {
            path: p.clone(),
            change,
            old: o.cloned(),
            new: n.cloned(),
            new_sha256_known: !matches!(n.map(|n| &n.node), Some(Node::File { .. }))
                || known.contains_key(p),
        });
    }
    report.warnings = warnings;
    Ok(report)
}

/// SHA-256 and length of a file read from a source.
pub fn hash_file(source: &dyn Source, p: &[u8]) -> io::Result<(Sha256, u64)> {
    let mut r = source.open(p)?;
    let mut h = Sha256Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((h.finalize().into(), n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A directory tree for property tests.
    #[derive(Clone, Debug)]
    enum T {
        File(u8, u32),
        Link(u8),
        Dir(BTreeMap<String, T>, u32),
    }

    fn arb_tree() -> impl Strategy<Value = BTreeMap<String, T>> {
        // Few names, so two random trees share paths, subtrees and ids.
        let name = prop::sample::select(vec!["a", "b", "a.b", "a-b", "c"]).prop_map(String::from);
        let mode = prop::sample::select(vec![0o644u32, 0o755]);
        let leaf = prop_oneof![
            (0u8..3, mode.clone()).prop_map(|(c, m)| T::File(c, m)),
            (0u8..2).prop_map(T::Link),
        ];
        let tree = leaf.prop_recursive(4, 40, 4, move |inner| {
            (
                prop::collection::btree_map(name.clone(), inner, 0..4),
                mode.clone(),
            )
                .prop_map(|(m, mode)| T::Dir(m, mode))
        });
        prop::collection::btree_map(
            prop::sample::select(vec!["a", "b", "a.b", "c"]).prop_map(String::from),
            tree,
            0..4,
        )
    }

    fn store(repo: &Repo, dir: &BTreeMap<String, T>) -> ObjectId {
        let mut entries = Vec::new();
        for (name, t) in dir {
            let (mode, node) = match t {
                T::File(c, m) => {
                    let content = vec![*c; *c as usize];
                    (
                        *m,
                        Node::File {
                            size: content.len() as u64,
                            sha256: Sha256Hasher::digest(&content).into(),
                            chunks: Vec::new(),
                        },
                    )
                }
                T::Link(t) => (
                    0o777,
                    Node::Symlink {
                        target: vec![b'x'; *t as usize + 1],
                    },
                ),
                T::Dir(m, mode) => (
                    *mode,
                    Node::Dir {
                        tree: store(repo, m),
                    },
                ),
            };
            entries.push(TreeEntry {
                name: name.as_bytes().to_vec(),
                mode,
                mtime_ns: None,
                node,
            });
        }
        repo.write_tree(&Tree { entries }).unwrap().0
    }

    /// Path -> (kind, content, mode) of every entry.
    fn flat(dir: &BTreeMap<String, T>, prefix: &str, out: &mut BTreeMap<String, (u8, u8, u32)>) {
        for (name, t) in dir {
            let p = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            match t {
                T::File(c, m) => {
                    out.insert(p, (0, *c, *m));
                }
                T::Link(t) => {
                    out.insert(p, (2, *t, 0));
                }
                T::Dir(m, mode) => {
                    out.insert(p.clone(), (1, 0, *mode));
                    flat(m, &p, out);
                }
            }
        }
    }

    /// The changes by an independent comparison of the flattened trees.
    fn naive(a: &BTreeMap<String, T>, b: &BTreeMap<String, T>) -> Vec<(String, ChangeKind)> {
        let (mut fa, mut fb) = (BTreeMap::new(), BTreeMap::new());
        flat(a, "", &mut fa);
        flat(b, "", &mut fb);
        let mut paths: Vec<&String> = fa.keys().chain(fb.keys()).collect();
        paths.sort_by_key(|p| path_order_key(p.as_bytes()));
        paths.dedup();
        let mut out = Vec::new();
        for p in paths {
            let k = match (fa.get(p), fb.get(p)) {
                (Some(_), None) => ChangeKind::Removed,
                (None, Some(_)) => ChangeKind::Added,
                (Some(x), Some(y)) if x.0 != y.0 => ChangeKind::TypeChanged,
                (Some(x), Some(y)) if x != y => ChangeKind::Modified,
                _ => continue,
            };
            out.push((p.clone(), k));
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn walk_matches_an_independent_comparison(a in arb_tree(), b in arb_tree(), pick in 0usize..8) {
            let dir = tempfile::tempdir().unwrap();
            let repo = Repo::init(&dir.path().join("r")).unwrap();
            let (ta, tb) = (store(&repo, &a), store(&repo, &b));
            let want = naive(&a, &b);
            let got: Vec<(String, ChangeKind)> = diff_trees(&repo, Some(&ta), Some(&tb), &PathFilter::all())
                .unwrap()
                .into_iter()
                .map(|c| (String::from_utf8(c.path).unwrap(), c.change))
                .collect();
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(any_change(&repo, Some(&ta), Some(&tb), &PathFilter::all()).unwrap(), !want.is_empty());
            // Against an empty tree, everything is added.
            let added = diff_trees(&repo, None, Some(&tb), &PathFilter::all()).unwrap();
            prop_assert!(added.iter().all(|c| c.change == ChangeKind::Added));
            // A path filter keeps exactly the changes at or below the path.
            if let Some((p, _)) = want.get(pick % want.len().max(1)) {
                let f = PathFilter::new(&[p.as_bytes().to_vec()]).unwrap();
                let only: Vec<String> = diff_trees(&repo, Some(&ta), Some(&tb), &f)
                    .unwrap()
                    .into_iter()
                    .map(|c| String::from_utf8(c.path).unwrap())
                    .collect();
                let expect: Vec<String> = want
                    .iter()
                    .filter(|(q, _)| is_under(q.as_bytes(), p.as_bytes()))
                    .map(|(q, _)| q.clone())
                    .collect();
                prop_assert_eq!(only, expect);
            }
        }
    }

    #[test]
    fn equal_subtrees_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(&dir.path().join("r")).unwrap();
        let mut big = BTreeMap::new();
        for i in 0..50 {
            let mut sub = BTreeMap::new();
            sub.insert("f".to_string(), T::File(1, 0o644));
            big.insert(format!("d{i:02}"), T::Dir(sub, 0o755));
        }
        let a = store(&repo, &big);
        if let Some(T::Dir(m, _)) = big.get_mut("d17") {
            m.insert("f".to_string(), T::File(2, 0o644));
        }
        let b = store(&repo, &big);
        let before = repo.trees_read();
        let changes = diff_trees(&repo, Some(&a), Some(&b), &PathFilter::all()).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].path, b"d17/f");
        assert_eq!(
            repo.trees_read() - before,
            4,
            "two roots and the two d17 trees"
        );
    }

    #[test]
    fn filter_wants_and_visits() {
        let f = PathFilter::new(&[b"lib/a".to_vec(), b"/x/".to_vec()]).unwrap();
        assert!(f.wants(b"lib/a"));
        assert!(f.wants(b"lib/a/b"));
        assert!(!f.wants(b"lib/ab"));
        assert!(!f.wants(b"lib"));
        assert!(f.visits(b"lib"));
        assert!(f.wants(b"x"));
        assert!(!f.visits(b"y"));
        assert!(PathFilter::new(&[b"a/../b".to_vec()]).is_err());
        assert!(PathFilter::new(&[b"/".to_vec()]).unwrap().is_all());
    }

    #[test]
    fn path_order_puts_contents_after_their_directory() {
        let mut v: Vec<&[u8]> = vec![b"a.txt", b"a/b", b"a", b"a-b"];
        v.sort_by_cached_key(|p| path_order_key(p));
        assert_eq!(v, vec![&b"a"[..], b"a/b", b"a-b", b"a.txt"]);
    }
}
