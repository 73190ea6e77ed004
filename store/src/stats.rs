//! `stats`: what the repository holds and what it costs.
//!
//! - raw bytes: the sum of every live snapshot's file sizes (what restoring
//!   each of them would write);
//! - unique bytes: the raw size of the distinct chunks they reference;
//! - stored bytes: the size of the object files they reach (headers and
//!   compression included), and allocated bytes (the disk blocks those
//!   files occupy);
//! - dedup ratio = raw / unique; compression ratio = unique / stored chunks;
//! - growth: per snapshot in time order, the objects and bytes it added
//!   that no earlier live snapshot reaches.

use std::collections::{BTreeSet, HashSet};

use crate::error::Result;
use crate::gc::{self, Progress};
use crate::id::ObjectId;
use crate::object::{HEADER_LEN, Header};
use crate::repo::Repo;
use crate::tree::Node;

#[derive(Clone, Debug)]
pub struct Growth {
    pub id: ObjectId,
    pub source: String,
    pub time_ns: i64,
    pub files: u64,
    pub bytes: u64,
    pub new_objects: u64,
    pub new_bytes: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub snapshots: u64,
    pub sources: u64,
    /// Sum over the snapshots.
    pub files: u64,
    pub raw_bytes: u64,
    /// Distinct objects reached, by kind.
    pub chunks: u64,
    pub trees: u64,
    pub unique_bytes: u64,
    pub stored_bytes: u64,
    pub stored_chunk_bytes: u64,
    pub allocated_bytes: u64,
    /// Everything in `objects/`, reachable or not.
    pub repo_objects: u64,
    pub repo_bytes: u64,
    pub growth: Vec<Growth>,
    /// For one snapshot: stored bytes no other live snapshot reaches
    /// (what forgetting it and running gc would free).
    pub exclusive_bytes: Option<u64>,
}

impl Stats {
    pub fn dedup_ratio(&self) -> f64 {
        if self.unique_bytes == 0 {
            1.0
        } else {
            self.raw_bytes as f64 / self.unique_bytes as f64
        }
    }
    pub fn compression_ratio(&self) -> f64 {
        if self.stored_chunk_bytes == 0 {
            1.0
        } else {
            self.unique_bytes as f64 / self.stored_chunk_bytes as f64
        }
    }
}

struct ObjInfo {
    stored: u64,
    allocated: u64,
    raw: u64,
}

fn info(repo: &Repo, id: &ObjectId) -> ObjInfo {
    // A packed object takes its envelope's bytes of a pack (no block
    // rounding of its own).
    if let Some(p) = repo.packed()
        && let Ok(Some((h, _))) = p.probe(id)
    {
        let stored = HEADER_LEN as u64 + h.stored_len;
        return ObjInfo {
            stored,
            allocated: stored,
            raw: h.raw_len,
        };
    }
    let key = crate::storage::object_key(id);
    let storage = repo.storage();
    let Ok(Some(meta)) = storage.stat(&key) else {
        return ObjInfo {
            stored: 0,
            allocated: 0,
            raw: 0,
        };
    };
    let raw = storage
        .read_range(&key, 0, HEADER_LEN as u64)
        .ok()
        .and_then(|h| Header::decode(&h).ok())
        .map_or(0, |h| h.raw_len);
    ObjInfo {
        stored: meta.size,
        allocated: meta.allocated,
        raw,
    }
}

/// Objects reachable from a snapshot that are not in `seen`; adds them.
fn walk_new(
    repo: &Repo,
    snap: &ObjectId,
    seen: &mut HashSet<ObjectId>,
    visit: &mut dyn FnMut(ObjectId, bool),
) -> Result<()> {
    if !seen.insert(*snap) {
        return Ok(());
    }
    visit(*snap, false);
    let s = repo.read_snapshot(snap)?;
    let mut stack = vec![s.tree];
    while let Some(t) = stack.pop() {
        if !seen.insert(t) {
            continue;
        }
        visit(t, false);
        for e in repo.read_tree(&t)?.entries {
            match e.node {
                Node::Dir { tree } => stack.push(tree),
                Node::File { chunks, .. } => {
                    for c in chunks {
                        if seen.insert(c) {
                            visit(c, true);
                        }
                    }
                }
                Node::Symlink { .. } => {}
            }
        }
    }
    Ok(())
}

/// Statistics of every live snapshot, or of `only` (one snapshot).
pub fn stats(repo: &Repo, only: Option<ObjectId>, progress: &dyn Progress) -> Result<Stats> {
    let mut st = Stats::default();
    let mut snaps = Vec::new();
    let ids = match only {
        Some(id) => vec![id],
        None => repo.list_snapshots()?,
    };
    for id in ids {
        match repo.read_snapshot(&id) {
            Ok(s) => snaps.push((s.time_ns, id, s)),
            // One bad snapshot does not hide the others' figures.
            Err(e) if only.is_none() && e.is_integrity() => {
                progress.warn(&format!("{e}; left out (`belay check` reports it)"))
            }
            Err(e) => return Err(e),
        }
    }
    snaps.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut sources = BTreeSet::new();
    let mut seen: HashSet<ObjectId> = HashSet::new();
    progress.phase("walking snapshots");
    for (_, id, s) in &snaps {
        st.snapshots += 1;
        sources.insert(s.source.clone());
        st.files += s.summary.files;
        st.raw_bytes += s.summary.bytes;
        let mut g = Growth {
            id: *id,
            source: s.source.clone(),
            time_ns: s.time_ns,
            files: s.summary.files,
            bytes: s.summary.bytes,
            new_objects: 0,
            new_bytes: 0,
        };
        let walked = walk_new(repo, id, &mut seen, &mut |oid, is_chunk| {
            progress.objects(1);
            let i = info(repo, &oid);
            g.new_objects += 1;
            g.new_bytes += i.stored;
            st.stored_bytes += i.stored;
            st.allocated_bytes += i.allocated;
            if is_chunk {
                st.chunks += 1;
                st.unique_bytes += i.raw;
                st.stored_chunk_bytes += i.stored;
            } else if oid != *id {
                st.trees += 1;
            }
        });
        match walked {
            Err(e) if only.is_none() && e.is_integrity() => progress.warn(&format!(
                "snapshot {}: {e}; its figures are partial (`belay check` reports it)",
                id.short()
            )),
            r => r?,
        }
        st.growth.push(g);
    }
    st.sources = sources.len() as u64;
    if let Some(id) = only {
        // What only this snapshot holds.
        let mut others: HashSet<ObjectId> = HashSet::new();
        for other in repo.list_snapshots()? {
            if other != id {
                // A damaged other snapshot only makes this one look bigger.
                let _ = walk_new(repo, &other, &mut others, &mut |_, _| {});
            }
        }
        let mut mine = HashSet::new();
        let mut exclusive = 0;
        walk_new(repo, &id, &mut mine, &mut |oid, _| {
            if !others.contains(&oid) {
                exclusive += info(repo, &oid).stored;
            }
        })?;
        st.exclusive_bytes = Some(exclusive);
    }
    gc::walk_objects(
        repo,
        &mut |_, path, size| {
            st.repo_objects += 1;
            st.repo_bytes += size;
            let _ = path;
            Ok(())
        },
        &mut |_, _| Ok(()),
    )?;
    Ok(st)
}
