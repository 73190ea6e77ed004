//! `belay repair` (restic's `repair` role): find what the repository lacks
//! (missing, torn or damaged objects, by `check`), store again every chunk
//! a live source still has, and say, per snapshot and path, what is lost
//! for good.
//!
//! A chunk is named by its content, so any file of any source that cuts
//! into a chunk with a wanted id gives back exactly that chunk, whatever
//! its name or snapshot. Only files whose size is the size of a damaged
//! file are read; a source that hashes its files itself (a board) reads
//! only those whose SHA-256 is a damaged file's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use crate::backup::{NoProgress, cut_file};
use crate::check::{self, CheckReport, ReadData};
use crate::error::{Error, Result};
use crate::gc::Progress;
use crate::id::{ObjectId, Sha256};
use crate::object::ObjectKind;
use crate::path;
use crate::repo::{RefKind, Repo};
use crate::source::{Source, SourceKind};
use crate::tree::Node;

/// Something a snapshot holds that no source could give back.
#[derive(Clone, Debug)]
pub struct Lost {
    pub snapshot: ObjectId,
    pub source: String,
    /// The file, or the directory whose tree is lost (empty: the whole
    /// snapshot).
    pub path: Vec<u8>,
    /// The objects it lacks.
    pub objects: Vec<ObjectId>,
}

#[derive(Clone, Debug, Default)]
pub struct RepairReport {
    /// The check that found what to repair.
    pub check: CheckReport,
    /// Objects found missing or damaged.
    pub damaged: u64,
    /// Of those, chunks stored again from a source.
    pub restored: u64,
    /// Files read from the sources.
    pub files_read: u64,
    pub lost: Vec<Lost>,
}

/// A file some snapshot holds with a damaged chunk.
struct Wanted {
    snapshot: ObjectId,
    source: String,
    path: Vec<u8>,
    size: u64,
    sha256: Sha256,
    bad: Vec<ObjectId>,
}

/// Check the repository, then store again what `sources` still have.
pub fn repair(
    repo: &Repo,
    sources: &[&dyn Source],
    read_data: ReadData,
    progress: &dyn Progress,
) -> Result<RepairReport> {
    let report = check::check(repo, read_data, progress)?;
    let bad: HashSet<ObjectId> = report.problems.iter().filter_map(|p| p.object).collect();
    let mut out = RepairReport {
        damaged: bad.len() as u64,
        ..Default::default()
    };
    if bad.is_empty() {
        out.check = report;
        return Ok(out);
    }
    progress.phase("finding damaged files");
    let (wanted, mut lost) = damaged_files(repo, &bad)?;
    let chunks_wanted: HashSet<ObjectId> = wanted.iter().flat_map(|w| w.bad.clone()).collect();
    let sizes: HashSet<u64> = wanted.iter().map(|w| w.size).collect();
    let contents: HashSet<(Sha256, u64)> = wanted.iter().map(|w| (w.sha256, w.size)).collect();
    let restored: Mutex<HashSet<ObjectId>> = Mutex::new(HashSet::new());
    let chunker = repo.chunker();
    for source in sources {
        if restored.lock().unwrap().len() == chunks_wanted.len() {
            break;
        }
        progress.phase(&format!("reading {}", source.location()));
        let src_err = |e: std::io::Error| Error::Source {
            path: source.location(),
            source: e,
        };
        let entries = source.walk(&mut |w| progress.warn(&w)).map_err(src_err)?;
        let mut candidates: Vec<_> = entries
            .into_iter()
            .filter(|e| e.kind == SourceKind::File && sizes.contains(&e.size))
            .collect();
        let paths: Vec<&[u8]> = candidates.iter().map(|e| e.path.as_slice()).collect();
        if let Some(hashes) = source.hashes(&paths).map_err(src_err)? {
            let keep: Vec<bool> = candidates
                .iter()
                .zip(&hashes)
                .map(|(e, h)| contents.contains(&(*h, e.size)))
                .collect();
            let mut k = keep.iter();
            candidates.retain(|_| *k.next().unwrap_or(&false));
        }
        for e in &candidates {
            let file_err = |err: std::io::Error| Error::Source {
                path: format!("{}: {}", source.location(), path::display(&e.path)),
                source: err,
            };
            let reader = match source.open(&e.path) {
                Ok(r) => r,
                Err(err) => {
                    progress.warn(&file_err(err).to_string());
                    continue;
                }
            };
            out.files_read += 1;
            let r = cut_file(
                reader,
                e.size,
                chunker,
                &NoProgress,
                &file_err,
                &mut |data| {
                    let id = ObjectId::compute(ObjectKind::Chunk, data);
                    if chunks_wanted.contains(&id) && restored.lock().unwrap().insert(id) {
                        repo.replace_object(id, ObjectKind::Chunk, data)?;
                        progress.objects(1);
                    }
                    Ok(())
                },
            );
            if let Err(err) = r {
                match err {
                    Error::Source { .. } => progress.warn(&err.to_string()),
                    other => return Err(other),
                }
            }
        }
    }
    let restored = restored.into_inner().unwrap();
    out.restored = restored.len() as u64;
    for w in wanted {
        let still: Vec<ObjectId> = w
            .bad
            .iter()
            .filter(|c| !restored.contains(c))
            .copied()
            .collect();
        if !still.is_empty() {
            lost.push(Lost {
                snapshot: w.snapshot,
                source: w.source,
                path: w.path,
                objects: still,
            });
        }
    }
    lost.sort_by(|a, b| (&a.source, a.snapshot, &a.path).cmp(&(&b.source, b.snapshot, &b.path)));
    out.check = report;
    out.lost = lost;
    Ok(out)
}

/// Every file of a live snapshot (marker, head or tag) that has a chunk in
/// `bad`; and what is lost already: directories whose tree is in `bad` or
/// unreadable, snapshots that cannot be read.
fn damaged_files(repo: &Repo, bad: &HashSet<ObjectId>) -> Result<(Vec<Wanted>, Vec<Lost>)> {
    let mut roots: BTreeMap<ObjectId, ()> = BTreeMap::new();
    for id in repo.list_snapshots()? {
        roots.insert(id, ());
    }
    for kind in [RefKind::Head, RefKind::Tag] {
        for id in repo.list_refs_reporting(kind, &mut |_| {})?.into_values() {
            roots.insert(id, ());
        }
    }
    let mut wanted = Vec::new();
    let mut lost = Vec::new();
    // Per tree: its damaged files (relative path, size, sha, bad chunks)
    // and lost directories, so a tree shared by many snapshots is read once.
    type TreeDamage = (
        Vec<(Vec<u8>, u64, Sha256, Vec<ObjectId>)>,
        Vec<(Vec<u8>, ObjectId)>,
    );
    let mut memo: HashMap<ObjectId, TreeDamage> = HashMap::new();
    for sid in roots.keys() {
        let snap = match repo.read_snapshot(sid) {
            Ok(s) => s,
            Err(_) => {
                lost.push(Lost {
                    snapshot: *sid,
                    source: String::new(),
                    path: Vec::new(),
                    objects: vec![*sid],
                });
                continue;
            }
        };
        let damage = match memo.get(&snap.tree) {
            Some(d) => d.clone(),
            None => {
                let d = tree_damage(repo, &snap.tree, bad);
                memo.insert(snap.tree, d.clone());
                d
            }
        };
        for (p, size, sha256, chunks) in damage.0 {
            wanted.push(Wanted {
                snapshot: *sid,
                source: snap.source.clone(),
                path: p,
                size,
                sha256,
                bad: chunks,
            });
        }
        for (p, tree) in damage.1 {
            lost.push(Lost {
                snapshot: *sid,
                source: snap.source.clone(),
                path: p,
                objects: vec![tree],
            });
        }
    }
    Ok((wanted, lost))
}

#[allow(clippy::type_complexity)]
fn tree_damage(
    repo: &Repo,
    root: &ObjectId,
    bad: &HashSet<ObjectId>,
) -> (
    Vec<(Vec<u8>, u64, Sha256, Vec<ObjectId>)>,
    Vec<(Vec<u8>, ObjectId)>,
) {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut stack = vec![(*root, Vec::new())];
    while let Some((t, prefix)) = stack.pop() {
        let tree = if bad.contains(&t) {
            None
        } else {
            repo.read_tree(&t).ok()
        };
        let tree = match tree {
            Some(tree) => tree,
            None => {
                dirs.push((prefix, t));
                continue;
            }
        };
        for e in tree.entries {
            let p = path::join(&prefix, &e.name);
            match e.node {
                Node::Dir { tree } => stack.push((tree, p)),
                Node::File {
                    size,
                    sha256,
                    chunks,
                } => {
                    let b: Vec<ObjectId> =
                        chunks.iter().filter(|c| bad.contains(c)).copied().collect();
                    if !b.is_empty() {
                        files.push((p, size, sha256, b));
                    }
                }
                Node::Symlink { .. } => {}
            }
        }
    }
    (files, dirs)
}
