//! Walking trees: look up a path, list a directory recursively.

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::path;
use crate::repo::Repo;
use crate::tree::{Node, Tree, TreeEntry};

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

/// Visit every entry below `tree` in path order (a directory before its
/// contents). The callback gets the entry's full path relative to `tree`.
pub fn visit(
    repo: &Repo,
    tree: &ObjectId,
    prefix: &[u8],
    f: &mut dyn FnMut(&[u8], &TreeEntry) -> Result<()>,
) -> Result<()> {
    let t: Tree = repo.read_tree(tree)?;
    for e in &t.entries {
        let p = path::join(prefix, &e.name);
        f(&p, e)?;
        if let Node::Dir { tree } = &e.node {
            visit(repo, tree, &p, f)?;
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
