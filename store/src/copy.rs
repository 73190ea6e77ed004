//! `belay copy`: snapshots, with their history, from one repository into
//! another (a folder to object storage and back), the way a team moves
//! its fleet's history. Objects keep their ids (an id names content, not
//! a place), so only objects the destination lacks cross, and a snapshot
//! copied twice is the same snapshot.
//!
//! The destination commits as a backup does (docs/format.md §10): a
//! session announces the copy to gc, every object of a snapshot is durable
//! before the snapshot object, the marker follows, and a head moves last
//! (only forward in time). Rename records travel too, so the copied
//! snapshots carry the same names on both sides.

use std::collections::{BTreeMap, HashSet};

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::gc::Progress;
use crate::id::ObjectId;
use crate::object::ObjectKind;
use crate::repo::{RefKind, Repo};
use crate::session::Session;
use crate::tree::Node;

/// What a copy did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CopyReport {
    /// Snapshots written to the destination, oldest first.
    pub copied: Vec<String>,
    /// Snapshots the destination had already (live).
    pub already_present: u64,
    /// Objects (chunks, trees, snapshots) that crossed, and their bytes
    /// before compression.
    pub objects_copied: u64,
    pub bytes_copied: u64,
    /// Objects the destination had already.
    pub objects_present: u64,
    /// Heads set or moved forward in the destination: source → snapshot.
    pub heads: BTreeMap<String, String>,
    /// Tags created in the destination.
    pub tags: Vec<String>,
    pub warnings: Vec<String>,
}

/// The live snapshots `roots` and their live ancestors, oldest first.
pub fn with_history(src: &Repo, roots: &[ObjectId]) -> Result<Vec<ObjectId>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut stack: Vec<ObjectId> = roots.to_vec();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        // A forgotten ancestor (no marker) ends that line of history: its
        // objects may already be gone.
        if !src.is_live(&id) {
            continue;
        }
        let snap = src.read_snapshot(&id)?;
        stack.extend(snap.parents.iter().copied());
        out.push((snap.time_ns, id));
    }
    out.sort();
    Ok(out.into_iter().map(|(_, id)| id).collect())
}

/// Copy `snapshots` (ids of live snapshots of `src`; see [`with_history`])
/// into `dst`.
pub fn copy(
    src: &Repo,
    dst: &Repo,
    snapshots: &[ObjectId],
    progress: &dyn Progress,
) -> Result<CopyReport> {
    if src.config().id == dst.config().id && src.root() == dst.root() {
        return Err(Error::Rev(
            "the source and destination are the same repository".into(),
        ));
    }
    let mut report = CopyReport::default();
    copy_renames(src, dst)?;
    let session = Session::begin(dst, "copy")?;
    let mut newest: BTreeMap<String, (i64, ObjectId)> = BTreeMap::new();
    for id in snapshots {
        let snap = src.read_snapshot(id)?;
        let slot = newest
            .entry(snap.source.clone())
            .or_insert((snap.time_ns, *id));
        if snap.time_ns >= slot.0 {
            *slot = (snap.time_ns, *id);
        }
        if dst.is_live(id) {
            report.already_present += 1;
            continue;
        }
        progress.phase(&format!("snapshot {}", id.short()));
        copy_tree(src, dst, &snap.tree, progress, &mut report)?;
        session.before_commit(dst, &snap.tree, None)?;
        // The snapshot object as it was written (its recorded name; the
        // rename records say the current one).
        let raw = src.read_object(id, ObjectKind::Snapshot)?;
        dst.flush()?;
        let (written, out) = dst.write_object(ObjectKind::Snapshot, &raw)?;
        debug_assert_eq!(written, *id);
        count(&mut report, out.created, raw.len());
        dst.flush()?;
        dst.add_marker(id)?;
        session.after_commit(dst, &snap.tree, id)?;
        report.copied.push(id.to_hex());
    }
    // Heads last, and only forward: a destination with newer backups of a
    // source keeps its head.
    for (source, (time_ns, id)) in newest {
        let current = dst.read_ref(RefKind::Head, &source)?;
        let newer_there = match current {
            Some(h) if h == id => continue,
            Some(h) => dst.read_snapshot(&h).is_ok_and(|s| s.time_ns > time_ns),
            None => false,
        };
        if newer_there {
            report.warnings.push(format!(
                "{source}: the destination has newer snapshots; its head stays"
            ));
            continue;
        }
        dst.write_ref(RefKind::Head, &source, &id)?;
        report.heads.insert(source, id.to_hex());
    }
    let copied: HashSet<&ObjectId> = snapshots.iter().collect();
    for tag in crate::tags::list(src)? {
        if !copied.contains(&tag.snapshot) {
            continue;
        }
        match crate::tags::read(dst, &tag.name)? {
            Some(t) if t.snapshot == tag.snapshot => {}
            Some(t) => report.warnings.push(format!(
                "tag {:?} names snapshot {} in the destination; left as it is",
                tag.name,
                t.snapshot.short()
            )),
            None => {
                crate::tags::write(dst, &tag.name, &tag.snapshot, &tag.message, false)?;
                report.tags.push(tag.name);
            }
        }
    }
    Ok(report)
}

fn count(report: &mut CopyReport, created: bool, raw_len: usize) {
    if created {
        report.objects_copied += 1;
        report.bytes_copied += raw_len as u64;
    } else {
        report.objects_present += 1;
    }
}

/// Copy the tree `root` and everything below it that `dst` lacks. A tree
/// the destination has is complete there (trees are written after what
/// they name), so its part of the walk is skipped.
fn copy_tree(
    src: &Repo,
    dst: &Repo,
    root: &ObjectId,
    progress: &dyn Progress,
    report: &mut CopyReport,
) -> Result<()> {
    // Trees children first: a tree is written after everything below it.
    let mut order = Vec::new();
    let mut chunks = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![*root];
    while let Some(t) = stack.pop() {
        if !seen.insert(t) {
            continue;
        }
        if dst.has_object(&t) {
            report.objects_present += 1;
            continue;
        }
        let raw = src.read_object(&t, ObjectKind::Tree)?;
        let tree = crate::tree::Tree::decode(&raw).map_err(|reason| Error::CorruptObject {
            id: t.to_hex(),
            path: src.object_path(&t),
            reason,
        })?;
        for e in &tree.entries {
            match &e.node {
                Node::Dir { tree } => stack.push(*tree),
                Node::File { chunks: c, .. } => {
                    for id in c {
                        if seen.insert(*id) {
                            chunks.push(*id);
                        }
                    }
                }
                Node::Symlink { .. } => {}
            }
        }
        order.push((t, raw));
    }
    // Chunks in parallel: on object storage each read and write is a
    // round trip.
    let results: Vec<Result<Option<usize>>> = chunks
        .par_iter()
        .map(|id| {
            if dst.has_object(id) {
                return Ok(None);
            }
            let raw = src.read_object(id, ObjectKind::Chunk)?;
            let (_, out) = dst.write_object(ObjectKind::Chunk, &raw)?;
            progress.objects(1);
            Ok(out.created.then_some(raw.len()))
        })
        .collect();
    for r in results {
        match r? {
            Some(n) => count(report, true, n),
            None => report.objects_present += 1,
        }
    }
    for (_, raw) in order.into_iter().rev() {
        let (_, out) = dst.write_object(ObjectKind::Tree, &raw)?;
        count(report, out.created, raw.len());
    }
    Ok(())
}

/// Copy the rename records `dst` lacks (write-once files, by name).
fn copy_renames(src: &Repo, dst: &Repo) -> Result<()> {
    let have: HashSet<String> = dst.list_dir(crate::rename::DIR)?.into_iter().collect();
    for name in src.list_dir(crate::rename::DIR)? {
        if have.contains(&name)
            || name.starts_with(crate::atomic::TEMP_PREFIX)
            || !name.ends_with(".json")
        {
            continue;
        }
        let key = format!("{}/{name}", crate::rename::DIR);
        let bytes = src
            .storage()
            .read(&key, 64 << 20)
            .at(src.storage().locate(&key))?;
        dst.storage()
            .put_new(&key, &bytes, true)
            .at(dst.storage().locate(&key))?;
        dst.storage()
            .sync_entry(&key)
            .at(dst.storage().locate(&key))?;
    }
    Ok(())
}
