//! Restore: walk a snapshot (or a part of it) and write it into a [`Sink`],
//! verifying every byte against the stored ids as it is written.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use sha2::{Digest, Sha256 as Sha256Hasher};

use crate::error::{Error, Result};
use crate::id::{ObjectId, Sha256};
use crate::object::ObjectKind;
use crate::path;
use crate::repo::Repo;
use crate::source::{EntryMeta, Sink};
use crate::tree::{Node, TreeEntry};
use crate::walk;

/// One entry to restore, with its path relative to the target.
#[derive(Clone, Debug)]
pub struct PlannedEntry {
    pub path: Vec<u8>,
    pub entry: TreeEntry,
}

/// What to restore: every entry below `entry` (a directory: its contents;
/// a file or symlink: itself, named `entry.name`), narrowed by `include`.
pub fn plan(
    repo: &Repo,
    entry: &TreeEntry,
    include: Option<PathFilter>,
) -> Result<Vec<PlannedEntry>> {
    let mut all = Vec::new();
    match &entry.node {
        Node::Dir { tree } => {
            walk::visit(repo, tree, b"", &mut |p, e| {
                all.push(PlannedEntry {
                    path: p.to_vec(),
                    entry: e.clone(),
                });
                Ok(())
            })?;
        }
        _ => all.push(PlannedEntry {
            path: entry.name.clone(),
            entry: entry.clone(),
        }),
    }
    for p in &all {
        path::components(&p.path)
            .map_err(|e| Error::Unsafe(format!("refusing to restore: {e}")))?;
    }
    let Some(include) = include else {
        return Ok(all);
    };
    // An entry is selected when it or one of its directories matches; a
    // directory is kept when it is selected or leads to something selected.
    let selected = |p: &[u8]| include(p) || ancestors(p).iter().any(|a| include(a));
    let mut keep: Vec<bool> = all.iter().map(|p| selected(&p.path)).collect();
    let leads_to: std::collections::HashSet<Vec<u8>> = all
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .flat_map(|(p, _)| ancestors(&p.path))
        .collect();
    for (i, p) in all.iter().enumerate() {
        if leads_to.contains(&p.path) {
            keep[i] = true;
        }
    }
    Ok(all
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(p, _)| p)
        .collect())
}

fn ancestors(p: &[u8]) -> Vec<Vec<u8>> {
    p.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(|(i, _)| p[..i].to_vec())
        .collect()
}

pub trait RestoreProgress: Sync {
    fn start(&self, _files: u64, _bytes: u64) {}
    fn bytes(&self, _n: u64) {}
    fn file_done(&self) {}
}

pub struct NoProgress;
impl RestoreProgress for NoProgress {}

#[derive(Clone, Debug, Default)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Files already identical at the target, not written (incremental restore).
    pub unchanged: u64,
    /// Entries removed from the target (restore with deletion).
    pub removed: u64,
}

/// Write the planned entries into `sink`: directories first, then files
/// (verified), then symlinks (last, so no file is written through one),
/// then directory metadata from the deepest up.
pub fn restore(
    repo: &Repo,
    planned: &[PlannedEntry],
    sink: &dyn Sink,
    progress: &dyn RestoreProgress,
) -> Result<RestoreReport> {
    // A hostile snapshot's 1000-byte name stays one readable line.
    let sink_err = |p: &[u8], e: io::Error| Error::Sink {
        path: crate::error::shorten(path::display(p), 300),
        source: e,
    };
    let mut report = RestoreReport::default();
    for p in planned {
        if let Node::Dir { .. } = p.entry.node {
            sink.mkdir(&p.path).map_err(|e| sink_err(&p.path, e))?;
            report.dirs += 1;
        }
    }
    let mut files: Vec<&PlannedEntry> = planned
        .iter()
        .filter(|p| matches!(p.entry.node, Node::File { .. }))
        .collect();
    // Format 2: files in the order their first chunks lie in the packs, so
    // the reads go through each pack front to back (on a share or a disk
    // that is not in the page cache, that is the difference between
    // streaming and seeking).
    if let Some(packed) = repo.packed() {
        files.sort_by_cached_key(|p| match &p.entry.node {
            Node::File { chunks, .. } => chunks.first().and_then(|c| packed.read_order(c)),
            _ => None,
        });
    }
    let total: u64 = files.iter().map(|p| p.entry.node.size()).sum();
    progress.start(files.len() as u64, total);
    let written = AtomicU64::new(0);
    let write_one = |p: &&PlannedEntry| -> Result<()> {
        let Node::File {
            size,
            sha256,
            chunks,
        } = &p.entry.node
        else {
            unreachable!()
        };
        let mut reader = ContentReader::new(repo, chunks, *size, *sha256, &p.path);
        let meta = EntryMeta {
            mode: p.entry.mode,
            mtime_ns: p.entry.mtime_ns,
        };
        // Progress as the sink takes the bytes (a board takes seconds per
        // file), not once per file.
        let r = sink.write_file(
            &p.path,
            *size,
            &mut Reported {
                inner: &mut reader,
                progress,
            },
            &meta,
        );
        if let Some(err) = reader.error.take() {
            return Err(err);
        }
        r.map_err(|e| sink_err(&p.path, e))?;
        written.fetch_add(*size, Ordering::Relaxed);
        progress.file_done();
        Ok(())
    };
    if sink.parallel_writes() {
        files.par_iter().try_for_each(write_one)?;
    } else {
        files.iter().try_for_each(write_one)?;
    }
    report.files = files.len() as u64;
    report.bytes = written.load(Ordering::Relaxed);
    for p in planned {
        if let Node::Symlink { target } = &p.entry.node {
            let meta = EntryMeta {
                mode: p.entry.mode,
                mtime_ns: p.entry.mtime_ns,
            };
            sink.symlink(&p.path, target, &meta)
                .map_err(|e| sink_err(&p.path, e))?;
            report.symlinks += 1;
        }
    }
    for p in planned.iter().rev() {
        if let Node::Dir { .. } = p.entry.node {
            let meta = EntryMeta {
                mode: p.entry.mode,
                mtime_ns: p.entry.mtime_ns,
            };
            sink.finish_dir(&p.path, &meta)
                .map_err(|e| sink_err(&p.path, e))?;
        }
    }
    Ok(report)
}

/// Reports the bytes read through it as restore progress.
struct Reported<'a, R> {
    inner: &'a mut R,
    progress: &'a dyn RestoreProgress,
}

impl<R: Read> Read for Reported<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.bytes(n as u64);
        Ok(n)
    }
}

/// Streams a file's content from its chunks. Each chunk is verified by its
/// id when read; the whole file is checked against its size and SHA-256 at
/// the end. A failure is reported as an `io::Error` to the sink (so it
/// discards the file) and kept in `error` for a precise message.
pub struct ContentReader<'a> {
    repo: &'a Repo,
    chunks: &'a [ObjectId],
    next: usize,
    buf: Vec<u8>,
    pos: usize,
    size: u64,
    seen: u64,
    sha: Sha256Hasher,
    expected: Sha256,
    path: &'a [u8],
    pub error: Option<Error>,
}

impl<'a> ContentReader<'a> {
    pub fn new(
        repo: &'a Repo,
        chunks: &'a [ObjectId],
        size: u64,
        expected: Sha256,
        path: &'a [u8],
    ) -> Self {
        ContentReader {
            repo,
            chunks,
            next: 0,
            buf: Vec::new(),
            pos: 0,
            size,
            seen: 0,
            sha: Sha256Hasher::new(),
            expected,
            path,
            error: None,
        }
    }

    fn fail(&mut self, e: Error) -> io::Error {
        let io = io::Error::new(io::ErrorKind::InvalidData, e.to_string());
        self.error = Some(e);
        io
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.next == self.chunks.len() {
                let digest: Sha256 = self.sha.clone().finalize().into();
                if self.seen != self.size || digest != self.expected {
                    let e = Error::Verify(format!(
                        "{}: restored content does not match the snapshot (size {} of {}, or hash mismatch)",
                        path::display(self.path),
                        self.seen,
                        self.size
                    ));
                    return Err(self.fail(e));
                }
                return Ok(0);
            }
            let id = self.chunks[self.next];
            self.next += 1;
            match self.repo.read_object(&id, ObjectKind::Chunk) {
                Ok(data) => {
                    self.sha.update(&data);
                    self.seen += data.len() as u64;
                    self.buf = data;
                    self.pos = 0;
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A predicate on paths (relative to the restore target).
pub type PathFilter<'a> = &'a dyn Fn(&[u8]) -> bool;

/// How an incremental restore treats what the target already holds.
#[derive(Clone, Copy, Default)]
pub struct RestoreOptions<'a> {
    /// Remove target entries the snapshot does not have (within `scope`).
    pub delete: bool,
    /// Which target paths the restore covers (for deletion); all if `None`.
    pub scope: Option<PathFilter<'a>>,
}

/// What an incremental restore will do, worked out from the plan and the
/// target's [`Sink::existing`] entries before anything is changed.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// Directories to create (parents first).
    pub mkdirs: Vec<PlannedEntry>,
    /// Files and symlinks to write.
    pub writes: Vec<PlannedEntry>,
    /// Files already identical at the target.
    pub unchanged: Vec<PlannedEntry>,
    /// Target entries to remove, deepest first: (path, is a directory).
    pub removes: Vec<(Vec<u8>, bool)>,
}

impl Changes {
    /// True when the target already matches.
    pub fn is_empty(&self) -> bool {
        self.mkdirs.is_empty() && self.writes.is_empty() && self.removes.is_empty()
    }
    /// Bytes of file content to write.
    pub fn bytes_to_write(&self) -> u64 {
        self.writes.iter().map(|p| p.entry.node.size()).sum()
    }
}

fn depth_of(p: &[u8]) -> usize {
    p.iter().filter(|&&b| b == b'/').count()
}

/// Compare the plan with what the target holds. `existing == None` (a
/// target that cannot tell) means every entry is written.
pub fn changes(
    planned: &[PlannedEntry],
    existing: Option<&[crate::source::ExistingEntry]>,
    opts: &RestoreOptions,
) -> Result<Changes> {
    use crate::source::SourceKind;
    use std::collections::{HashMap, HashSet};
    let mut ch = Changes::default();
    let ex: HashMap<&[u8], &crate::source::ExistingEntry> = existing
        .unwrap_or(&[])
        .iter()
        .map(|e| (e.entry.path.as_slice(), e))
        .collect();
    let mut removed: HashSet<Vec<u8>> = HashSet::new();
    let conflict = |p: &[u8], what: &str| {
        Error::Unsafe(format!(
            "{} is {what} on the target; restore with --delete to replace it (it is kept in the safety snapshot)",
            path::display(p)
        ))
    };
    // Remove `p` and, for a directory, everything below it.
    let remove_tree = |p: &[u8], ch: &mut Changes, removed: &mut HashSet<Vec<u8>>| {
        let mut prefix = p.to_vec();
        prefix.push(b'/');
        for e in existing.unwrap_or(&[]) {
            if (e.entry.path == p || e.entry.path.starts_with(&prefix))
                && removed.insert(e.entry.path.clone())
            {
                ch.removes
                    .push((e.entry.path.clone(), e.entry.kind == SourceKind::Dir));
            }
        }
    };
    for p in planned {
        let here = ex
            .get(p.path.as_slice())
            .filter(|_| !removed.contains(&p.path));
        match &p.entry.node {
            Node::Dir { .. } => match here.map(|e| &e.entry.kind) {
                Some(SourceKind::Dir) => {}
                Some(_) => {
                    if !opts.delete {
                        return Err(conflict(&p.path, "a file"));
                    }
                    remove_tree(&p.path, &mut ch, &mut removed);
                    ch.mkdirs.push(p.clone());
                }
                None => ch.mkdirs.push(p.clone()),
            },
            Node::File { size, sha256, .. } => match here {
                Some(e)
                    if e.entry.kind == SourceKind::File
                        && e.entry.size == *size
                        && e.sha256.as_ref() == Some(sha256) =>
                {
                    ch.unchanged.push(p.clone())
                }
                Some(e) if e.entry.kind == SourceKind::Dir => {
                    if !opts.delete {
                        return Err(conflict(&p.path, "a directory"));
                    }
                    remove_tree(&p.path, &mut ch, &mut removed);
                    ch.writes.push(p.clone());
                }
                _ => ch.writes.push(p.clone()),
            },
            Node::Symlink { .. } => ch.writes.push(p.clone()),
        }
    }
    if opts.delete {
        let wanted: HashSet<&[u8]> = planned.iter().map(|p| p.path.as_slice()).collect();
        for e in existing.unwrap_or(&[]) {
            let p = e.entry.path.as_slice();
            if wanted.contains(p) || removed.contains(p) {
                continue;
            }
            if opts.scope.is_some_and(|s| !s(p)) {
                continue;
            }
            removed.insert(p.to_vec());
            ch.removes
                .push((p.to_vec(), e.entry.kind == SourceKind::Dir));
        }
    }
    // Children before their directories; parents before children.
    ch.removes
        .sort_by(|a, b| depth_of(&b.0).cmp(&depth_of(&a.0)).then(b.0.cmp(&a.0)));
    ch.mkdirs.sort_by(|a, b| {
        depth_of(&a.path)
            .cmp(&depth_of(&b.path))
            .then(a.path.cmp(&b.path))
    });
    Ok(ch)
}

/// Carry out [`Changes`]: removals first (they free space; everything
/// removed is in the safety snapshot the caller took), then directories,
/// then files (each verified as it is written), then symlinks.
pub fn apply(
    repo: &Repo,
    ch: &Changes,
    sink: &dyn Sink,
    progress: &dyn RestoreProgress,
) -> Result<RestoreReport> {
    // A hostile snapshot's 1000-byte name stays one readable line.
    let sink_err = |p: &[u8], e: io::Error| Error::Sink {
        path: crate::error::shorten(path::display(p), 300),
        source: e,
    };
    let mut report = RestoreReport {
        unchanged: ch.unchanged.len() as u64,
        ..Default::default()
    };
    for (p, dir) in &ch.removes {
        sink.remove(p, *dir).map_err(|e| sink_err(p, e))?;
        report.removed += 1;
    }
    let mut planned: Vec<PlannedEntry> = ch.mkdirs.clone();
    planned.extend(ch.writes.iter().cloned());
    let r = restore(repo, &planned, sink, progress)?;
    report.files = r.files;
    report.dirs = r.dirs;
    report.symlinks = r.symlinks;
    report.bytes = r.bytes;
    Ok(report)
}
