//! Backup: walk a source, reuse what the parent snapshot already holds,
//! chunk + hash + compress the rest in parallel, build trees bottom-up,
//! commit the snapshot, then move the source's ref.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use sha2::{Digest, Sha256 as Sha256Hasher};

use crate::cache_state::FileState;
use crate::chunker::ChunkerParams;
use crate::error::{Error, Result};
use crate::id::{ObjectId, Sha256};
use crate::object::ObjectKind;
use crate::path;
use crate::repo::{RefKind, Repo};
use crate::snapshot::{Snapshot, Summary};
use crate::source::{ChangeStamp, Source, SourceEntry, SourceKind};
use crate::tree::{Node, Tree, TreeEntry};

/// Files up to this size are read into memory whole; larger ones stream.
const READ_WHOLE_BELOW: u64 = 8 << 20;

#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    /// Source name (the branch). Its ref gives the parent.
    pub name: String,
    pub message: String,
    /// `--meta K=V`, any order; stored sorted.
    pub meta: Vec<(String, String)>,
    pub host: String,
    pub user: String,
    /// Host clock, nanoseconds since the epoch.
    pub time_ns: i64,
    /// Leave out files that cannot be read (with a warning) instead of failing.
    pub skip_unreadable: bool,
    /// Commit no snapshot when the tree (and the firmware) equal the
    /// parent's, as git refuses an empty commit; [`BackupReport::committed`]
    /// is then false and `snapshot` is the parent.
    pub skip_if_unchanged: bool,
}

/// Callbacks for progress and warnings; all optional.
pub trait BackupProgress: Sync {
    /// The walk is done: this many files and bytes must be read.
    fn start(&self, _files: u64, _bytes: u64) {}
    /// Bytes of file content read.
    fn bytes(&self, _n: u64) {}
    /// One file finished.
    fn file_done(&self) {}
    fn warn(&self, _msg: &str) {}
}

pub struct NoProgress;
impl BackupProgress for NoProgress {}

/// File contents the repository is known to hold, by SHA-256 and size:
/// the local cache (`crate::cache`). Consulted for files the parent does
/// not have, so content seen on another board, in another folder or under
/// another name is not read again; the engine checks that the chunks still
/// exist before reusing them.
pub trait KnownFiles: Sync {
    fn lookup(&self, sha256: &Sha256, size: u64) -> Option<Vec<ObjectId>>;
    /// A file was stored (called as each file is stored, so a rerun after
    /// a failed backup finds what the first run already pulled).
    fn record(&self, sha256: &Sha256, size: u64, chunks: &[ObjectId]);

    /// The files of `source` in its snapshot `parent`, as the backup that
    /// made it recorded them; `None` (the default) makes the engine read
    /// the parent's trees.
    fn parent_state(&self, _source: &str, _parent: &ObjectId) -> Option<Vec<FileState>> {
        None
    }

    /// The snapshot `id` as the local catalogue holds it (so an unchanged
    /// re-backup compares with its parent without opening an object);
    /// `None` (the default) makes the engine read it.
    fn snapshot(&self, _id: &ObjectId) -> Option<Snapshot> {
        None
    }

    /// Is `id` known to be a complete, durable object of the repository?
    /// `true` lets the engine skip writing (and probing) it.
    fn has_object(&self, _id: &ObjectId) -> bool {
        false
    }

    /// Objects a command found damaged (or missing) since: written again,
    /// replacing what is there, whenever this backup has their bytes.
    fn damaged(&self) -> HashSet<ObjectId> {
        HashSet::new()
    }

    /// The repository's gc generation this knowledge is valid for (see
    /// `crate::session`): when a gc ran since, the engine re-checks before
    /// committing that every object it relied on still exists.
    fn generation(&self) -> Option<u64> {
        None
    }

    /// The backup of `source` committed snapshot `id` (durably): its files,
    /// and the objects it wrote or found present.
    fn committed(
        &self,
        _source: &str,
        _id: &ObjectId,
        _snap: &Snapshot,
        _files: &[FileState],
        _objects: &[ObjectId],
    ) {
    }
}

#[derive(Clone, Debug)]
pub struct BackupReport {
    pub snapshot: ObjectId,
    pub parent: Option<ObjectId>,
    pub summary: Summary,
    /// Files whose content was taken from the parent (or, for sources that
    /// hash, from anywhere in the repository) without reading it.
    pub files_unchanged: u64,
    /// Of those, files found through [`KnownFiles`] (not in the parent).
    pub files_known: u64,
    /// Objects the repository lacked or held damaged although the parent
    /// or the cache vouched for them, stored again by this backup.
    pub objects_repaired: u64,
    pub warnings: Vec<String>,
    /// False when nothing changed and [`BackupOptions::skip_if_unchanged`]
    /// kept the parent as the latest snapshot.
    pub committed: bool,
}

/// A file this backup read and stored, by path (`None`: skipped).
type StoredFile = (Vec<u8>, Node);

/// What is known about a file already in the repository.
#[derive(Clone)]
struct KnownFile {
    size: u64,
    mtime_ns: Option<i64>,
    sha256: Sha256,
    chunks: Vec<ObjectId>,
    stamp: Option<ChangeStamp>,
}

impl KnownFile {
    /// Is `e` this file, unchanged? Size and mtime must match, and device,
    /// inode and ctime where both sides know them (a same-size rewrite
    /// that keeps the mtime, `cp -p` or `rsync -t`, changes the ctime).
    fn same_as(&self, e: &SourceEntry) -> bool {
        self.size == e.size
            && self.mtime_ns.is_some()
            && self.mtime_ns == e.mtime_ns
            && match (self.stamp, e.stamp) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

struct Counters {
    bytes_read: AtomicU64,
    files_read: AtomicU64,
    objects_added: AtomicU64,
    bytes_added: AtomicU64,
}

pub fn backup(
    repo: &Repo,
    source: &dyn Source,
    opts: &BackupOptions,
    progress: &dyn BackupProgress,
) -> Result<BackupReport> {
    backup_with(repo, source, opts, None, progress)
}

/// [`backup`] with a lookup of contents already in the repository.
pub fn backup_with(
    repo: &Repo,
    source: &dyn Source,
    opts: &BackupOptions,
    known_files: Option<&dyn KnownFiles>,
    progress: &dyn BackupProgress,
) -> Result<BackupReport> {
    crate::repo::validate_ref_name(&opts.name)?;
    let mut warnings = Vec::new();
    let mut entries = source
        .walk(&mut |w| {
            progress.warn(&w);
            warnings.push(w);
        })
        .map_err(|e| Error::Source {
            path: source.location(),
            source: e,
        })?;
    // Only canonical paths (`lib//x` or `lib/` from a hostile board made
    // a tree entry with an empty name: a snapshot no reader accepts).
    entries.retain(|e| {
        if path::is_canonical(&e.path) {
            return true;
        }
        let w = format!("skipping {:?}: not a safe path", path::display(&e.path));
        progress.warn(&w);
        warnings.push(w);
        false
    });
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);
    // Never write a tree that readers refuse (format.md: trees).
    if let Some(e) = entries.iter().find(|e| {
        let dirs = depth(&e.path) - usize::from(e.kind != SourceKind::Dir);
        dirs > crate::tree::MAX_DEPTH
    }) {
        return Err(crate::walk::too_deep(&e.path));
    }

    // Announce this backup before reading the parent or probing any object
    // (gc safety, docs/format.md §10).
    let session = crate::session::Session::begin(repo, &opts.name)?;
    crate::session::pause_point("backup-started");
    // What the parent snapshot holds, by path and by content.
    let parent = repo.read_ref(RefKind::Head, &opts.name)?;
    let mut known_objects: HashSet<ObjectId> = HashSet::new();
    let mut parent_files: HashMap<Vec<u8>, KnownFile> = HashMap::new();
    // Whether an unchanged size and mtime may stand for unchanged content.
    let mut trust_mtime = source.trusts_mtime();
    // The parent's files from the local cache: no tree is read.
    let cached_parent = parent
        .filter(|pid| object_file_present(repo, pid))
        .and_then(|pid| known_files.and_then(|kf| kf.parent_state(&opts.name, &pid)));
    if let Some(files) = cached_parent {
        for f in files {
            known_objects.extend(f.chunks.iter().copied());
            parent_files.insert(
                f.path,
                KnownFile {
                    size: f.size,
                    mtime_ns: f.mtime_ns,
                    sha256: f.sha256,
                    chunks: f.chunks,
                    stamp: f.stamp,
                },
            );
        }
    } else if let Some(pid) = parent {
        let mut warn = |w: String| {
            progress.warn(&w);
            warnings.push(w);
        };
        match repo.read_snapshot(&pid) {
            Ok(psnap) => {
                // The parent's trees record no inode or ctime: a parent made
                // from another location (`--name` continuing another
                // folder's history) is compared by content only.
                if psnap.location != source.location() {
                    trust_mtime = false;
                }
                read_parent_files(
                    repo,
                    &psnap.tree,
                    &mut known_objects,
                    &mut parent_files,
                    &mut warn,
                )?;
            }
            Err(e @ (Error::MissingObject { .. } | Error::CorruptObject { .. })) => warn(format!(
                "the parent snapshot cannot be read ({e}): every file is read again"
            )),
            Err(e) => return Err(e),
        }
    }
    let by_sha: HashMap<Sha256, &KnownFile> =
        parent_files.values().map(|k| (k.sha256, k)).collect();

    // Decide per file: reuse by (size, mtime), reuse by content hash, or read.
    let mut nodes: HashMap<Vec<u8>, Node> = HashMap::new();
    let mut to_read: Vec<&SourceEntry> = Vec::new();
    let mut files_unchanged = 0u64;
    let mut files_known = 0u64;
    let mut unsure: Vec<&SourceEntry> = Vec::new();
    for e in entries.iter().filter(|e| e.kind == SourceKind::File) {
        match parent_files.get(&e.path) {
            Some(k) if trust_mtime && k.same_as(e) => {
                files_unchanged += 1;
                nodes.insert(e.path.clone(), file_node(k));
            }
            _ => unsure.push(e),
        }
    }
    if !unsure.is_empty() {
        let paths: Vec<&[u8]> = unsure.iter().map(|e| e.path.as_slice()).collect();
        let hashes = source.hashes(&paths).map_err(|e| Error::Source {
            path: source.location(),
            source: e,
        })?;
        match hashes {
            Some(hashes) => {
                for (e, h) in unsure.iter().zip(hashes) {
                    match by_sha.get(&h) {
                        Some(k) if k.size == e.size => {
                            files_unchanged += 1;
                            nodes.insert(e.path.clone(), file_node(k));
                        }
                        _ => match known_files.and_then(|kf| kf.lookup(&h, e.size)).filter(
                            |chunks| {
                                chunks
                                    .iter()
                                    .all(|id| known_objects.contains(id) || repo.has_object(id))
                            },
                        ) {
                            Some(chunks) => {
                                files_unchanged += 1;
                                files_known += 1;
                                known_objects.extend(chunks.iter().copied());
                                nodes.insert(
                                    e.path.clone(),
                                    Node::File {
                                        size: e.size,
                                        sha256: h,
                                        chunks,
                                    },
                                );
                            }
                            None => to_read.push(e),
                        },
                    }
                }
            }
            None => to_read = unsure,
        }
    }

    let total_bytes: u64 = to_read.iter().map(|e| e.size).sum();
    progress.start(to_read.len() as u64, total_bytes);
    let counters = Counters {
        bytes_read: AtomicU64::new(0),
        files_read: AtomicU64::new(0),
        objects_added: AtomicU64::new(0),
        bytes_added: AtomicU64::new(0),
    };
    let known = Known {
        vouched: known_objects,
        written: Mutex::new(HashSet::new()),
        cache: known_files,
        damaged: known_files.map(|k| k.damaged()).unwrap_or_default(),
        force: Mutex::new(HashSet::new()),
        vouched_trees: Mutex::new(Vec::new()),
    };
    let chunker = repo.chunker();
    let store_one = |e: &&SourceEntry| -> Result<Option<(Vec<u8>, Node)>> {
        let r = store_file(repo, source, e, chunker, &known, &counters, progress);
        progress.file_done();
        if let (
            Some(kf),
            Ok(Node::File {
                size,
                sha256,
                chunks,
            }),
        ) = (known_files, &r)
        {
            kf.record(sha256, *size, chunks);
        }
        match r {
            Ok(node) => Ok(Some((e.path.clone(), node))),
            Err(Error::Source { path, source: err })
                if opts.skip_unreadable && is_unreadable(&err) =>
            {
                progress.warn(&format!("skipping unreadable {path}: {err}"));
                Ok(None)
            }
            Err(err) => Err(err),
        }
    };
    let store_all = |files: &[&SourceEntry]| -> Result<Vec<Option<StoredFile>>> {
        if source.parallel_reads() {
            files.par_iter().map(store_one).collect()
        } else {
            files.iter().map(store_one).collect()
        }
    };
    let results = store_all(&to_read)?;
    let mut skipped: HashSet<Vec<u8>> = to_read.iter().map(|e| e.path.clone()).collect();
    for (p, node) in results.into_iter().flatten() {
        skipped.remove(&p);
        nodes.insert(p, node);
    }
    // Never commit a snapshot that references an object the repository
    // lacks: every chunk this backup relies on without having written or
    // probed it (the parent's, the cache's) is checked to exist, one
    // `stat` each in parallel. A repository copied or rolled back behind
    // the cache's back, or damaged by hand, is caught here; the files that
    // need a missing or damaged chunk are read again, which stores it.
    let mut objects_repaired = 0u64;
    for _pass in 0..3 {
        let lacking = known.lacking_chunks(repo, nodes.values());
        if lacking.is_empty() {
            break;
        }
        let again: Vec<&SourceEntry> = entries
            .iter()
            .filter(|e| {
                nodes.get(&e.path).is_some_and(|n| match n {
                    Node::File { chunks, .. } => chunks.iter().any(|c| lacking.contains(c)),
                    _ => false,
                })
            })
            .collect();
        let w = format!(
            "{} object(s) this backup would reuse are missing or damaged in the repository: reading {} file(s) again to store them",
            lacking.len(),
            again.len()
        );
        progress.warn(&w);
        warnings.push(w);
        objects_repaired += lacking.len() as u64;
        known.force.lock().unwrap().extend(lacking.iter().copied());
        for e in &again {
            nodes.remove(&e.path);
            files_unchanged = files_unchanged.saturating_sub(1);
        }
        for (p, node) in store_all(&again)?.into_iter().flatten() {
            nodes.insert(p, node);
        }
        for e in &again {
            if !nodes.contains_key(&e.path) {
                skipped.insert(e.path.clone());
            }
        }
    }
    crate::session::pause_point("backup-stored");
    for p in &skipped {
        warnings.push(format!("skipped unreadable {}", path::display(p)));
    }

    // Trees bottom-up. Every directory (including implied ones) gets a tree.
    let mut summary = Summary::default();
    let mut dirs: BTreeMap<Vec<u8>, Vec<TreeEntry>> = BTreeMap::new();
    dirs.insert(Vec::new(), Vec::new());
    let meta_of: HashMap<&[u8], &SourceEntry> =
        entries.iter().map(|e| (e.path.as_slice(), e)).collect();
    // The files of this snapshot, for the local cache.
    let mut state: Vec<FileState> = Vec::new();
    for e in &entries {
        // Make sure every ancestor directory exists.
        let mut p = e.path.as_slice();
        while let Some(i) = p.iter().rposition(|&b| b == b'/') {
            p = &p[..i];
            dirs.entry(p.to_vec()).or_default();
        }
        match &e.kind {
            SourceKind::Dir => {
                dirs.entry(e.path.clone()).or_default();
            }
            SourceKind::File => {
                if let Some(node) = nodes.remove(&e.path) {
                    summary.files += 1;
                    summary.bytes += node.size();
                    if let (
                        Some(_),
                        Node::File {
                            size,
                            sha256,
                            chunks,
                        },
                    ) = (known_files, &node)
                    {
                        state.push(FileState {
                            path: e.path.clone(),
                            size: *size,
                            mtime_ns: e.mtime_ns,
                            sha256: *sha256,
                            chunks: chunks.clone(),
                            stamp: e.stamp,
                        });
                    }
                    push_entry(&mut dirs, &e.path, e, node);
                }
            }
            SourceKind::Symlink { target } => {
                summary.symlinks += 1;
                push_entry(
                    &mut dirs,
                    &e.path,
                    e,
                    Node::Symlink {
                        target: target.clone(),
                    },
                );
            }
        }
    }
    // Deepest directories first, so a child's tree id is known before its parent's.
    let mut order: Vec<Vec<u8>> = dirs.keys().cloned().collect();
    order.sort_by_key(|p| std::cmp::Reverse(depth(p)));
    let mut root_id = None;
    for d in order {
        let mut entries_here = dirs.remove(&d).unwrap_or_default();
        entries_here.sort_by(|a, b| a.name.cmp(&b.name));
        let tree = Tree {
            entries: entries_here,
        };
        let raw = tree.encode();
        let id = ObjectId::compute(ObjectKind::Tree, &raw);
        known.store(repo, id, ObjectKind::Tree, &raw, &counters)?;
        if d.is_empty() {
            root_id = Some(id);
        } else {
            summary.dirs += 1;
            let (parent_dir, name) = split_last(&d);
            let meta = meta_of.get(d.as_slice());
            dirs.entry(parent_dir.to_vec())
                .or_default()
                .push(TreeEntry {
                    name: name.to_vec(),
                    mode: meta.map_or(0, |m| m.mode),
                    mtime_ns: meta.and_then(|m| m.mtime_ns),
                    node: Node::Dir { tree: id },
                });
        }
    }
    objects_repaired += known.store_lacking_trees(repo, &counters)?;

    summary.files_read = counters.files_read.load(Ordering::Relaxed);
    summary.bytes_read = counters.bytes_read.load(Ordering::Relaxed);
    let mut meta = opts.meta.clone();
    meta.sort();
    meta.dedup_by(|a, b| a.0 == b.0);
    let mut device = source.device_info();
    device.sort();
    device.dedup_by(|a, b| a.0 == b.0);
    let mut snap = Snapshot {
        tree: root_id.expect("root tree is always built"),
        parents: parent.into_iter().collect(),
        time_ns: opts.time_ns,
        source: opts.name.clone(),
        location: source.location(),
        host: opts.host.clone(),
        user: opts.user.clone(),
        message: opts.message.clone(),
        meta,
        device,
        chunker,
        summary: Summary::default(),
    };
    // The snapshot's own size is part of what this backup adds; its size
    // hardly depends on the numbers, so count it with a first encoding.
    let snapshot_bytes = snap.encode().len() as u64 + crate::object::HEADER_LEN as u64;
    summary.objects_added = counters.objects_added.load(Ordering::Relaxed) + 1;
    summary.bytes_added = counters.bytes_added.load(Ordering::Relaxed) + snapshot_bytes;
    snap.summary = summary.clone();
    crate::session::pause_point("backup-before-commit");
    session.before_commit(repo, &snap.tree, known_files.and_then(|k| k.generation()))?;
    crate::session::pause_point("backup-committing");
    if opts.skip_if_unchanged
        && let Some(p) = parent
        && repo.is_live(&p)
    {
        let before = match known_files.and_then(|k| k.snapshot(&p)) {
            Some(s) => s,
            None => repo.read_snapshot(&p)?,
        };
        // A history continued under a new name gets its first snapshot.
        if before.source == snap.source
            && before.tree == snap.tree
            && before.device_value("firmware") == snap.device_value("firmware")
        {
            drop(session);
            // Not written: the snapshot is not part of what was added.
            summary.objects_added -= 1;
            summary.bytes_added -= snapshot_bytes;
            return Ok(BackupReport {
                snapshot: p,
                parent,
                summary,
                files_unchanged,
                files_known,
                objects_repaired,
                warnings,
                committed: false,
            });
        }
    }
    let (id, _) = repo.commit_snapshot(&snap)?;
    session.after_commit(repo, &snap.tree, &id)?;
    repo.write_ref(RefKind::Head, &opts.name, &id)?;
    if let Some(kf) = known_files {
        let confirmed: Vec<ObjectId> = std::mem::take(&mut *known.written.lock().unwrap())
            .into_iter()
            .collect();
        kf.committed(&opts.name, &id, &snap, &state, &confirmed);
    }
    drop(session);
    Ok(BackupReport {
        snapshot: id,
        parent,
        summary,
        files_unchanged,
        files_known,
        objects_repaired,
        warnings,
        committed: true,
    })
}

/// The files and objects of the parent snapshot's tree `root`. A tree
/// that is missing or damaged is reported and skipped: the files below it
/// are read again (which repairs what the source still has).
fn read_parent_files(
    repo: &Repo,
    root: &ObjectId,
    known_objects: &mut HashSet<ObjectId>,
    parent_files: &mut HashMap<Vec<u8>, KnownFile>,
    warn: &mut dyn FnMut(String),
) -> Result<()> {
    let mut stack: Vec<(ObjectId, Vec<u8>)> = vec![(*root, Vec::new())];
    while let Some((id, prefix)) = stack.pop() {
        let tree = match repo.read_tree(&id) {
            Ok(t) => t,
            Err(e @ (Error::MissingObject { .. } | Error::CorruptObject { .. })) => {
                let at = if prefix.is_empty() {
                    "/".to_string()
                } else {
                    path::display(&prefix)
                };
                warn(format!(
                    "the parent snapshot's tree of {at} cannot be read ({e}): its files are read again"
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        known_objects.insert(id);
        for e in tree.entries {
            let p = path::join(&prefix, &e.name);
            match e.node {
                Node::File {
                    size,
                    sha256,
                    chunks,
                } => {
                    known_objects.extend(chunks.iter().copied());
                    parent_files.insert(
                        p,
                        KnownFile {
                            size,
                            mtime_ns: e.mtime_ns,
                            sha256,
                            chunks,
                            stamp: None,
                        },
                    );
                }
                Node::Dir { tree } => stack.push((tree, p)),
                Node::Symlink { .. } => {}
            }
        }
    }
    Ok(())
}

fn file_node(k: &KnownFile) -> Node {
    Node::File {
        size: k.size,
        sha256: k.sha256,
        chunks: k.chunks.clone(),
    }
}

fn depth(p: &[u8]) -> usize {
    if p.is_empty() {
        0
    } else {
        1 + p.iter().filter(|&&b| b == b'/').count()
    }
}

fn split_last(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (&[], p),
    }
}

fn push_entry(dirs: &mut BTreeMap<Vec<u8>, Vec<TreeEntry>>, p: &[u8], e: &SourceEntry, node: Node) {
    let (dir, name) = split_last(p);
    dirs.entry(dir.to_vec()).or_default().push(TreeEntry {
        name: name.to_vec(),
        mode: e.mode,
        mtime_ns: e.mtime_ns,
        node,
    });
}

fn is_unreadable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound
    )
}

fn count(c: &Counters, out: crate::repo::WriteOutcome) {
    if out.created {
        c.objects_added.fetch_add(1, Ordering::Relaxed);
        c.bytes_added.fetch_add(out.bytes_added, Ordering::Relaxed);
    }
}

/// What this backup knows to be in the repository: the parent's objects,
/// what it stored so far, and the local cache's known objects.
struct Known<'a> {
    /// Objects of the parent snapshot and contents the cache named:
    /// not written, but checked to exist before commit.
    vouched: HashSet<ObjectId>,
    /// Objects this backup wrote or found complete (reported to the cache).
    written: Mutex<HashSet<ObjectId>>,
    cache: Option<&'a dyn KnownFiles>,
    /// Objects found damaged by an earlier command: always rewritten.
    damaged: HashSet<ObjectId>,
    /// Objects found missing by this backup: written whatever vouches.
    force: Mutex<HashSet<ObjectId>>,
    /// Trees not written because something vouched for them, with their
    /// bytes, checked to exist before commit.
    vouched_trees: Mutex<Vec<(ObjectId, Vec<u8>)>>,
}

impl Known<'_> {
    /// Store an object unless this backup, the parent or the cache already
    /// has it.
    fn store(
        &self,
        repo: &Repo,
        id: ObjectId,
        kind: ObjectKind,
        raw: &[u8],
        c: &Counters,
    ) -> Result<()> {
        if self.written.lock().unwrap().contains(&id) {
            return Ok(());
        }
        let damaged = self.damaged.contains(&id);
        let vouched = !damaged
            && !self.force.lock().unwrap().contains(&id)
            && (self.vouched.contains(&id) || self.cache.is_some_and(|k| k.has_object(&id)));
        if vouched {
            if kind == ObjectKind::Tree {
                self.vouched_trees.lock().unwrap().push((id, raw.to_vec()));
            }
            return Ok(());
        }
        if !self.written.lock().unwrap().insert(id) {
            return Ok(());
        }
        let out = if damaged {
            repo.replace_object(id, kind, raw)?
        } else {
            repo.write_object_with_id(id, kind, raw)?
        };
        count(c, out);
        Ok(())
    }

    /// Chunks referenced by `nodes` that this backup did not write or
    /// probe and that the repository does not hold whole (no complete-
    /// looking file, or found damaged before).
    fn lacking_chunks<'n>(
        &self,
        repo: &Repo,
        nodes: impl Iterator<Item = &'n Node>,
    ) -> HashSet<ObjectId> {
        let written = self.written.lock().unwrap();
        let mut relied: HashSet<ObjectId> = HashSet::new();
        for n in nodes {
            if let Node::File { chunks, .. } = n {
                relied.extend(chunks.iter().filter(|c| !written.contains(c)).copied());
            }
        }
        drop(written);
        let relied: Vec<ObjectId> = relied.into_iter().collect();
        relied
            .par_iter()
            .filter(|id| self.damaged.contains(id) || !object_file_present(repo, id))
            .copied()
            .collect()
    }

    /// Write the vouched-for trees the repository lacks; returns how many.
    fn store_lacking_trees(&self, repo: &Repo, c: &Counters) -> Result<u64> {
        let trees = std::mem::take(&mut *self.vouched_trees.lock().unwrap());
        let lacking: Vec<&(ObjectId, Vec<u8>)> = trees
            .par_iter()
            .filter(|(id, _)| !object_file_present(repo, id))
            .collect();
        for (id, raw) in &lacking {
            count(c, repo.write_object_with_id(*id, ObjectKind::Tree, raw)?);
            self.written.lock().unwrap().insert(*id);
        }
        Ok(lacking.len() as u64)
    }
}

/// Does `id` exist (a loose file with at least a header, or a present
/// pack listing it)? A `stat`, no open: enough to trust the cache's record
/// of a snapshot we made.
fn object_file_present(repo: &Repo, id: &ObjectId) -> bool {
    repo.object_present(id)
}

/// Store one chunk unless this backup or the parent already has it.
fn store_chunk(repo: &Repo, data: &[u8], known: &Known, c: &Counters) -> Result<ObjectId> {
    let id = ObjectId::compute(ObjectKind::Chunk, data);
    known.store(repo, id, ObjectKind::Chunk, data, c)?;
    Ok(id)
}

/// Read one file from the source and store its chunks.
fn store_file(
    repo: &Repo,
    source: &dyn Source,
    e: &SourceEntry,
    chunker: ChunkerParams,
    known: &Known,
    c: &Counters,
    progress: &dyn BackupProgress,
) -> Result<Node> {
    let src_err = |err: io::Error| Error::Source {
        path: path::display(&e.path),
        source: err,
    };
    let reader = source.open(&e.path).map_err(src_err)?;
    let mut chunks = Vec::new();
    let (size, sha256) = cut_file(reader, e.size, chunker, progress, &src_err, &mut |data| {
        chunks.push(store_chunk(repo, data, known, c)?);
        Ok(())
    })?;
    c.files_read.fetch_add(1, Ordering::Relaxed);
    c.bytes_read.fetch_add(size, Ordering::Relaxed);
    Ok(Node::File {
        size,
        sha256,
        chunks,
    })
}

/// Cut a file's content into chunks as every backup does (read whole
/// below [`READ_WHOLE_BELOW`], streamed above), handing each chunk to
/// `on_chunk`; returns the size and SHA-256 of what was read. `size_hint`
/// is the size the walk saw.
pub(crate) fn cut_file(
    reader: Box<dyn Read + Send + '_>,
    size_hint: u64,
    chunker: ChunkerParams,
    progress: &dyn BackupProgress,
    src_err: &dyn Fn(io::Error) -> Error,
    on_chunk: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<(u64, Sha256)> {
    let mut sha = Sha256Hasher::new();
    // Progress is reported as the bytes arrive, not once per file: a
    // board takes half a minute over a 300 KB file.
    let mut counted = CountingReader {
        inner: reader,
        sha: &mut sha,
        n: 0,
        progress,
    };
    let size = if size_hint < READ_WHOLE_BELOW {
        let mut data = Vec::with_capacity(size_hint as usize);
        counted.read_to_end(&mut data).map_err(src_err)?;
        for (off, len) in chunker.cut(&data) {
            on_chunk(&data[off..off + len])?;
        }
        data.len() as u64
    } else {
        let cdc = fastcdc::v2020::StreamCDC::new(
            &mut counted,
            chunker.min_size as usize,
            chunker.avg_size as usize,
            chunker.max_size as usize,
        );
        for chunk in cdc {
            let chunk = chunk.map_err(|err| match err {
                fastcdc::v2020::Error::IoError(io) => src_err(io),
                other => src_err(io::Error::other(other.to_string())),
            })?;
            on_chunk(&chunk.data)?;
        }
        counted.n
    };
    Ok((size, sha.finalize().into()))
}

struct CountingReader<'a, R> {
    inner: R,
    sha: &'a mut Sha256Hasher,
    n: u64,
    progress: &'a dyn BackupProgress,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.n += n as u64;
        self.progress.bytes(n as u64);
        Ok(n)
    }
}
