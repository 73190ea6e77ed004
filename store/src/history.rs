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
/// head along first parents (stopping at a forgotten one) and every live
/// snapshot recorded under that name.
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
    let all = source_snapshots(repo, name)?;
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
/// read and matched once.
pub struct Finder<'a> {
    repo: &'a Repo,
    matcher: &'a dyn Fn(&[u8], &TreeEntry) -> bool,
    memo: HashMap<(ObjectId, Vec<u8>), Rc<Vec<Found>>>,
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
    pub fn find(&mut self, tree: &ObjectId) -> Result<Rc<Vec<Found>>> {
        self.find_in(tree, b"")
    }

    fn find_in(&mut self, tree: &ObjectId, prefix: &[u8]) -> Result<Rc<Vec<Found>>> {
        let key = (*tree, prefix.to_vec());
        if let Some(hit) = self.memo.get(&key) {
            return Ok(hit.clone());
        }
        let t = self.repo.read_tree(tree)?;
        let mut out = Vec::new();
        for e in t.entries {
            let p = path::join(prefix, &e.name);
            if (self.matcher)(&p, &e) {
                out.push(Found {
                    path: p.clone(),
                    entry: e.clone(),
                });
            }
            if let Node::Dir { tree } = &e.node {
                let below = self.find_in(tree, &p)?;
                out.extend(below.iter().cloned());
            }
        }
        let out = Rc::new(out);
        self.memo.insert(key, out.clone());
        Ok(out)
    }
}

/// The newest snapshot of every source (by head), keyed by source name.
pub fn heads(repo: &Repo) -> Result<BTreeMap<String, ObjectId>> {
    repo.list_refs(RefKind::Head)
}
