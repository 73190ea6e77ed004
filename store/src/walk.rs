//! Walking trees: look up a path, list a directory recursively.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::path;
use crate::repo::Repo;
use crate::tree::{MAX_DEPTH, Node, Tree, TreeEntry};

/// Find the entry at `path` (components already split) below the tree
/// `root`. An empty path is the root directory itself.
pub fn lookup(repo: &Repo, root: &ObjectId, path: &[u8]) -> Result<Option<TreeEntry>> {
    let parts = path::components(path).map_err(Error::Rev)?;
    let mut node = Node::Dir { tree: *root };
    let mut entry = TreeEntry {
        name: Vec::new(),
        mode: 0,
        mtime_ns: None,
        node: node.clone(),
    };
    for part in parts {
        let Node::Dir { tree } = &node else {
            return Ok(None);
        };
        let t = repo.read_tree(tree)?;
        match t.get(part) {
            Some(e) => {
                node = e.node.clone();
                entry = e.clone();
            }
            None => return Ok(None),
        }
    }
    Ok(Some(entry))
}

/// The error for a directory at `p` whose tree would sit deeper than
/// [`MAX_DEPTH`]; the path is shortened to its first bytes.
pub fn too_deep(p: &[u8]) -> Error {
    Error::TooDeep {
        path: path::display_short(p),
    }
}

/// Visit every entry below `tree` in path order (a directory before its
/// contents). The callback gets the entry's full path relative to `tree`.
/// Iterative: memory grows with the depth (at most [`MAX_DEPTH`], then
/// [`Error::TooDeep`]), never the stack.
pub fn visit(
    repo: &Repo,
    tree: &ObjectId,
    prefix: &[u8],
    f: &mut dyn FnMut(&[u8], &TreeEntry) -> Result<()>,
) -> Result<()> {
    visit_where(repo, tree, prefix, &|_| true, f)
}

/// As [`visit`], leaving out every entry whose path `keep` refuses (and,
/// for a directory, everything below it, unread).
pub fn visit_where(
    repo: &Repo,
    tree: &ObjectId,
    prefix: &[u8],
    keep: &dyn Fn(&[u8]) -> bool,
    f: &mut dyn FnMut(&[u8], &TreeEntry) -> Result<()>,
) -> Result<()> {
    let t: Tree = repo.read_tree(tree)?;
    // One level per open directory: its remaining entries and its path.
    let mut stack = vec![(t.entries.into_iter(), prefix.to_vec())];
    while let Some((entries, dir)) = stack.last_mut() {
        let Some(e) = entries.next() else {
            stack.pop();
            continue;
        };
        let p = path::join(dir, &e.name);
        if !keep(&p) {
            continue;
        }
        f(&p, &e)?;
        if let Node::Dir { tree } = &e.node {
            if stack.len() > MAX_DEPTH {
                return Err(too_deep(&p));
            }
            let t = repo.read_tree(tree)?;
            stack.push((t.entries.into_iter(), p));
        }
    }
    Ok(())
}

/// Every entry below `tree`, in path order.
pub fn flatten(repo: &Repo, tree: &ObjectId) -> Result<Vec<(Vec<u8>, TreeEntry)>> {
    let mut out = Vec::new();
    visit(repo, tree, b"", &mut |p, e| {
        out.push((p.to_vec(), e.clone()));
        Ok(())
    })?;
    Ok(out)
}

/// A tree as [`fold_trees`] hands it over: read, or why it could not be.
pub type TreeRead<'a> = std::result::Result<&'a Tree, &'a Error>;

/// Compute a value for every tree reachable from `root`, children before
/// parents and each tree id once (`memo` holds the results, and may already
/// hold some). `f` gets the tree (or why it could not be read) and the
/// values of its subdirectories' trees. Iterative: the stack holds one
/// frame per level of the deepest path, on the heap.
pub fn fold_trees<T: Clone>(
    repo: &Repo,
    root: ObjectId,
    memo: &mut HashMap<ObjectId, T>,
    f: &mut dyn FnMut(&ObjectId, TreeRead<'_>, &[T]) -> T,
) -> T {
    struct Frame<T> {
        id: ObjectId,
        tree: Result<Tree>,
        subdirs: Vec<ObjectId>,
        below: Vec<T>,
    }
    let open = |id: ObjectId| {
        let tree = repo.read_tree(&id);
        let mut subdirs: Vec<ObjectId> = match &tree {
            Ok(t) => t
                .entries
                .iter()
                .filter_map(|e| match e.node {
                    Node::Dir { tree } => Some(tree),
                    _ => None,
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        subdirs.reverse();
        Frame {
            id,
            tree,
            subdirs,
            below: Vec::new(),
        }
    };
    if let Some(v) = memo.get(&root) {
        return v.clone();
    }
    let mut stack = vec![open(root)];
    loop {
        let top = stack.last_mut().expect("the root frame is popped last");
        if let Some(child) = top.subdirs.pop() {
            match memo.get(&child) {
                Some(v) => top.below.push(v.clone()),
                None => stack.push(open(child)),
            }
            continue;
        }
        let done = stack.pop().expect("non-empty");
        let v = f(&done.id, done.tree.as_ref(), &done.below);
        memo.insert(done.id, v.clone());
        match stack.last_mut() {
            Some(parent) => parent.below.push(v),
            None => return v,
        }
    }
}
