//! Walking history: the snapshots of a source, the snapshot of a source at
//! a date, whether a path changed in a snapshot, and finding paths or
//! contents across snapshots.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use crate::catalog::Catalog;
use crate::diff::{self, PathFilter};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::path;
use crate::repo::{RefKind, Repo};
use crate::snapshot::Snapshot;
use crate::tree::{Node, TreeEntry};

/// The snapshots of source `name`, newest first: those reachable from its
/// head along first parents (forgotten ones too, until gc collects them:
/// check `Repo::is_live`) and every live snapshot recorded under that name.
pub fn source_snapshots(repo: &Repo, name: &str) -> Result<Vec<(ObjectId, Snapshot)>> {
    // Snapshot payloads come from the local cache's catalogue when it has
    // them, so this lists no objects and reads few.
    let cat = Catalog::open(repo);
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut out = Vec::new();
    let mut next = repo.read_ref(RefKind::Head, name)?;
    while let Some(id) = next {
        if !seen.insert(id) {
            break;
        }
        let Some(s) = cat.snapshot(&id)? else {
            break;
        };
        next = s.parents.first().copied();
        out.push((id, s));
    }
    for (id, s) in cat.live()? {
        if s.source == name && seen.insert(id) {
            out.push((id, s));
        }
    }
    out.sort_by(|a, b| b.1.time_ns.cmp(&a.1.time_ns).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// The latest snapshot of source `name` taken at or before `limit_ns`
/// (host clock). `what` describes the limit for the error message.
pub fn at_or_before(repo: &Repo, name: &str, limit_ns: i64, what: &str) -> Result<ObjectId> {
    let mut all = source_snapshots(repo, name)?;
    all.retain(|(id, _)| repo.is_live(id));
    if all.is_empty() {
        return Err(Error::Rev(format!(
            "no source named {name:?} (`belay log --oneline` lists sources)"
        )));
    }
    if let Some((id, _)) = all.iter().find(|(_, s)| s.time_ns <= limit_ns) {
        return Ok(*id);
    }
    let first = all.last().unwrap();
    Err(Error::Rev(format!(
        "{name} has no snapshot on or before {what}: its first is {} from {}",
        first.0.short(),
        first.1.time()
    )))
}

/// Did anything under `filter` change in this snapshot, compared with its
/// first parent? A snapshot without a parent (or whose parent was
/// forgotten and collected) counts as a change when it holds such a path.
/// Stops at the first change and skips unchanged subtrees by id.
pub fn changed_in(repo: &Repo, snap: &Snapshot, filter: &PathFilter) -> Result<bool> {
    let parent_tree = match snap.parents.first() {
        Some(p) if repo.has_object(p) => Some(repo.read_snapshot(p)?.tree),
        _ => None,
    };
    diff::any_change(repo, parent_tree.as_ref(), Some(&snap.tree), filter)
}

/// One entry found by [`Finder`].
#[derive(Clone, Debug)]
pub struct Found {
    pub path: Vec<u8>,
    pub entry: TreeEntry,
}

/// Finds entries matching a predicate in snapshot trees. Results are
/// remembered per (tree, path), so a subtree shared by many snapshots is
/// read and matched once. A directory's results refer to its
/// subdirectories' results rather than copying them, so memory grows with
/// the matches and trees, not with matches times depth.
pub struct Finder<'a> {
    repo: &'a Repo,
    matcher: &'a dyn Fn(&[u8], &TreeEntry) -> bool,
    memo: HashMap<(ObjectId, Vec<u8>), Rc<Vec<Piece>>>,
}

/// Part of a directory's results: a match, or a subdirectory's results.
enum Piece {
    Hit(Found),
    Below(Rc<Vec<Piece>>),
}

/// A directory being searched: its memo key, remaining entries, results.
struct Frame {
    key: (ObjectId, Vec<u8>),
    entries: std::vec::IntoIter<TreeEntry>,
    out: Vec<Piece>,
}

impl<'a> Finder<'a> {
    pub fn new(repo: &'a Repo, matcher: &'a dyn Fn(&[u8], &TreeEntry) -> bool) -> Self {
        Finder {
            repo,
            matcher,
            memo: HashMap::new(),
        }
    }

    /// Every matching entry below the root tree `tree`, in path order.
    pub fn find(&mut self, tree: &ObjectId) -> Result<Vec<Found>> {
        let pieces = self.pieces(*tree)?;
        let mut out = Vec::new();
        let mut stack = vec![(pieces, 0usize)];
        while let Some((list, i)) = stack.last_mut() {
            let Some(piece) = list.get(*i) else {
                stack.pop();
                continue;
            };
            *i += 1;
            match piece {
                Piece::Hit(f) => out.push(f.clone()),
                Piece::Below(below) => {
                    let below = below.clone();
                    stack.push((below, 0));
                }
            }
        }
        Ok(out)
    }

    /// The results below `root`, searched depth first with an explicit
    /// stack (at most [`crate::tree::MAX_DEPTH`] levels).
    fn pieces(&mut self, root: ObjectId) -> Result<Rc<Vec<Piece>>> {
        let key = (root, Vec::new());
        if let Some(hit) = self.memo.get(&key) {
            return Ok(hit.clone());
        }
        let mut stack = vec![self.frame(key)?];
        loop {
            let top = stack.last_mut().expect("the root frame is popped last");
            let Some(e) = top.entries.next() else {
                let done = stack.pop().expect("non-empty");
                let pieces = Rc::new(done.out);
                self.memo.insert(done.key, pieces.clone());
                match stack.last_mut() {
                    Some(parent) => parent.out.push(Piece::Below(pieces)),
                    None => return Ok(pieces),
                }
                continue;
            };
            let p = path::join(&top.key.1, &e.name);
            let subtree = match &e.node {
                Node::Dir { tree } => Some(*tree),
                _ => None,
            };
            if (self.matcher)(&p, &e) {
                top.out.push(Piece::Hit(Found {
                    path: p.clone(),
                    entry: e,
                }));
            }
            if let Some(tree) = subtree {
                let key = (tree, p);
                if let Some(hit) = self.memo.get(&key) {
                    top.out.push(Piece::Below(hit.clone()));
                } else if stack.len() > crate::tree::MAX_DEPTH {
                    return Err(crate::walk::too_deep(&key.1));
                } else {
                    let frame = self.frame(key)?;
                    stack.push(frame);
                }
            }
        }
    }

    fn frame(&self, key: (ObjectId, Vec<u8>)) -> Result<Frame> {
        let t = self.repo.read_tree(&key.0)?;
        Ok(Frame {
            key,
            entries: t.entries.into_iter(),
            out: Vec::new(),
        })
    }
}

/// The newest snapshot of every source (by head), keyed by source name.
pub fn heads(repo: &Repo) -> Result<BTreeMap<String, ObjectId>> {
    repo.list_refs(RefKind::Head)
}
