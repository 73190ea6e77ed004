//! `check`: prove the repository's integrity.
//!
//! - every snapshot marker, head and tag names a decodable snapshot;
//! - every tree reachable from them decodes (trees and snapshots are always
//!   read whole and re-hashed);
//! - every chunk they reference exists with a plausible size: its header
//!   decodes, says it is a chunk, the file is exactly header + stored length,
//!   and a file's chunks' raw lengths add up to the file's size — without
//!   reading payloads;
//! - with read-data (all, or a deterministic subset), chunks are read whole,
//!   decompressed and re-hashed.
//!
//! Each problem names the object's path and the snapshots and file paths
//! it affects.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use crate::atomic::TEMP_PREFIX;
use crate::error::{Error, Result};
use crate::gc::{self, Progress};
use crate::id::ObjectId;
use crate::object::ObjectKind;
use crate::path;
use crate::repo::Repo;
use crate::tree::{MAX_DEPTH, Node};
use crate::walk;

/// Which chunks to read whole.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReadData {
    None,
    All,
    /// Part `n` (1-based) of `m`: chunks whose id's first four bytes, as a
    /// big-endian number, are `n - 1` modulo `m`. Parts 1..=m cover all.
    Subset {
        n: u32,
        m: u32,
    },
    /// About `percent` of the chunks: the part `day % m` of `m =
    /// round(100 / percent)` parts, where `day` is `day_number` (the CLI
    /// passes days since 1970 UTC), so `m` consecutive daily runs cover all.
    Percent {
        percent: f64,
        day_number: u64,
    },
}

impl ReadData {
    /// Parse `N/M` or `P%`.
    pub fn parse_subset(s: &str, day_number: u64) -> std::result::Result<ReadData, String> {
        let bad = || format!("cannot read {s:?} as a subset: use N/M (e.g. 1/5) or P% (e.g. 10%)");
        if let Some(p) = s.strip_suffix('%') {
            let percent: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(percent > 0.0 && percent <= 100.0) {
                return Err(format!(
                    "{s:?}: the percentage must be above 0 and at most 100"
                ));
            }
            return Ok(ReadData::Percent {
                percent,
                day_number,
            });
        }
        let (n, m) = s.split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let m: u32 = m.trim().parse().map_err(|_| bad())?;
        if m == 0 || n == 0 || n > m {
            return Err(format!("{s:?}: N/M needs 1 <= N <= M"));
        }
        Ok(ReadData::Subset { n, m })
    }

    pub fn includes(&self, id: &ObjectId) -> bool {
        let x = u32::from_be_bytes(id.0[..4].try_into().unwrap());
        match *self {
            ReadData::None => false,
            ReadData::All => true,
            ReadData::Subset { n, m } => x % m == n - 1,
            ReadData::Percent {
                percent,
                day_number,
            } => {
                let m = (100.0 / percent).round().max(1.0) as u64;
                (x as u64) % m == day_number % m
            }
        }
    }
}

/// One thing wrong, with what it affects.
#[derive(Clone, Debug)]
pub struct Problem {
    /// `missing`, `truncated`, `corrupt`, `wrong-kind`, `size-mismatch`,
    /// `too-deep`, `hash-mismatch` (read-data: a file's chunks do not hold
    /// its SHA-256), `bad-marker`, `bad-ref`, `dangling-ref`.
    pub kind: &'static str,
    pub object: Option<ObjectId>,
    /// The object's path, or the marker's / ref's.
    pub path: PathBuf,
    pub message: String,
    /// Snapshots that cannot be restored whole because of it.
    pub snapshots: Vec<ObjectId>,
    /// Affected paths as `SOURCE@SNAPSHOT-SHORT:PATH` (at most
    /// [`MAX_PATHS`]; `more_files` counts the rest).
    pub files: Vec<String>,
    pub more_files: u64,
}

pub const MAX_PATHS: usize = 20;

#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    pub snapshots: u64,
    pub trees: u64,
    pub chunks: u64,
    /// Chunks read whole and re-hashed, and their stored bytes.
    pub chunks_read: u64,
    pub bytes_read: u64,
    /// Object files no root reaches (`gc` removes them; not a problem).
    pub unreferenced: u64,
    /// Format v2: index objects and packs checked.
    pub indexes: u64,
    pub packs: u64,
    /// Format v2: packs that are missing or damaged. Not problems by
    /// themselves: every live object they held was read (from another
    /// copy where one exists), and one that could not be is a problem of
    /// its own; gc removes such packs once nothing needs them.
    pub pack_warnings: Vec<String>,
    pub problems: Vec<Problem>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Clone)]
enum ChunkState {
    Ok(u64),
    Bad(usize),
}

struct Checker<'a> {
    repo: &'a Repo,
    read_data: ReadData,
    progress: &'a dyn Progress,
    report: CheckReport,
    /// Problems by object id (index into report.problems).
    by_object: HashMap<ObjectId, usize>,
    chunks: HashMap<ObjectId, ChunkState>,
    /// Trees checked, with how many levels of directories each holds.
    trees: HashMap<ObjectId, usize>,
    /// Files whose chunks' sizes do not add up: (tree, name) -> problem.
    size_mismatch: HashMap<(ObjectId, Vec<u8>), usize>,
}

impl Checker<'_> {
    fn problem(
        &mut self,
        kind: &'static str,
        object: Option<ObjectId>,
        path: PathBuf,
        message: String,
    ) -> usize {
        self.report.problems.push(Problem {
            kind,
            object,
            path,
            message,
            snapshots: Vec::new(),
            files: Vec::new(),
            more_files: 0,
        });
        let i = self.report.problems.len() - 1;
        if let Some(id) = object {
            self.by_object.insert(id, i);
        }
        i
    }

    fn object_problem(&mut self, id: ObjectId, e: &Error) -> usize {
        if let Some(&i) = self.by_object.get(&id) {
            return i;
        }
        let path = self.repo.object_path(&id);
        let (kind, msg) = match e {
            Error::MissingObject { .. } => ("missing", format!("object {id} is missing")),
            Error::CorruptObject { reason, .. } if reason.starts_with("truncated") => {
                ("truncated", format!("object {id} is {reason}"))
            }
            Error::CorruptObject { reason, .. } => {
                ("corrupt", format!("object {id} is corrupt: {reason}"))
            }
            Error::WrongKind {
                found, expected, ..
            } => (
                "wrong-kind",
                format!("object {id} is a {found}, expected a {expected}"),
            ),
            other => ("corrupt", format!("object {id}: {other}")),
        };
        self.problem(kind, Some(id), path, msg)
    }

    /// Check one chunk: header and size, or (read-data) everything.
    fn chunk(&mut self, id: ObjectId) -> ChunkState {
        if let Some(s) = self.chunks.get(&id) {
            return s.clone();
        }
        self.progress.objects(1);
        self.report.chunks += 1;
        let state = match self.check_chunk(&id) {
            Ok(raw) => ChunkState::Ok(raw),
            Err(e) => ChunkState::Bad(self.object_problem(id, &e)),
        };
        self.chunks.insert(id, state.clone());
        state
    }

    fn check_chunk(&mut self, id: &ObjectId) -> Result<u64> {
        if self.read_data.includes(id) {
            let raw = self.repo.read_object(id, ObjectKind::Chunk)?;
            self.report.chunks_read += 1;
            self.report.bytes_read += self.repo.stored_len(id).unwrap_or(0);
            return Ok(raw.len() as u64);
        }
        if let Some(p) = self.repo.packed()
            && let Some((header, _)) = p.probe(id)?
        {
            if header.kind != ObjectKind::Chunk {
                return Err(Error::WrongKind {
                    id: id.to_hex(),
                    found: header.kind.name(),
                    expected: "chunk",
                });
            }
            return Ok(header.raw_len);
        }
        // The loose file: header and length (one stat and one small read).
        let Some((header, _)) = self.repo.loose_header(id)? else {
            return Err(Error::MissingObject {
                id: id.to_hex(),
                path: self.repo.loose_path(id),
            });
        };
        if header.kind != ObjectKind::Chunk {
            return Err(Error::WrongKind {
                id: id.to_hex(),
                found: header.kind.name(),
                expected: "chunk",
            });
        }
        Ok(header.raw_len)
    }

    /// A chunk's bytes, checked (read-data): `None` when it has a problem.
    /// A chunk checked before is read again (for another file's hash).
    fn chunk_bytes(&mut self, id: ObjectId) -> Option<Vec<u8>> {
        match self.chunks.get(&id) {
            Some(ChunkState::Bad(_)) => None,
            Some(ChunkState::Ok(_)) => self.repo.read_object(&id, ObjectKind::Chunk).ok(),
            None => {
                self.progress.objects(1);
                self.report.chunks += 1;
                match self.repo.read_object(&id, ObjectKind::Chunk) {
                    Ok(raw) => {
                        self.report.chunks_read += 1;
                        self.report.bytes_read += self.repo.stored_len(&id).unwrap_or(0);
                        self.chunks.insert(id, ChunkState::Ok(raw.len() as u64));
                        Some(raw)
                    }
                    Err(e) => {
                        let i = self.object_problem(id, &e);
                        self.chunks.insert(id, ChunkState::Bad(i));
                        None
                    }
                }
            }
        }
    }

    /// Format v2: every index object decodes (a problem if not); every
    /// pack a current index lists is present with the listed size and
    /// (read-data) hashes to its name and holds the footer the index
    /// repeats (warnings if not). Returns the listed packs.
    fn packs(&mut self) -> Result<HashSet<ObjectId>> {
        let storage = self.repo.storage().clone();
        let mut indexes = Vec::new();
        for (id, _) in crate::packed::list_indexes(&*storage)? {
            self.report.indexes += 1;
            let path = storage.locate(&crate::storage::index_key(&id));
            match crate::packed::read_index_file(&*storage, &id) {
                Ok(ix) => indexes.push((id, ix)),
                Err(Error::MissingObject { .. }) => {} // deleted by a gc meanwhile
                Err(e) => {
                    self.problem("bad-index", Some(id), path, format!("index {e}"));
                }
            }
        }
        // Packs only superseded index objects list are garbage on their way
        // out (a gc deletes them, maybe stopped halfway): not checked.
        let superseded: HashSet<ObjectId> = indexes
            .iter()
            .flat_map(|(_, ix)| ix.supersedes.iter().copied())
            .collect();
        let mut listed: BTreeMap<ObjectId, crate::pack::IndexedPack> = BTreeMap::new();
        let mut current: BTreeMap<ObjectId, crate::pack::IndexedPack> = BTreeMap::new();
        for (id, ix) in indexes {
            for p in ix.packs {
                if !superseded.contains(&id) {
                    current.entry(p.pack).or_insert_with(|| p.clone());
                }
                listed.entry(p.pack).or_insert(p);
            }
        }
        for (id, p) in &current {
            self.progress.objects(1);
            self.report.packs += 1;
            let path = storage.locate(&crate::storage::object_key(id));
            let size = match storage.stat(&crate::storage::object_key(id)) {
                Ok(Some(m)) => m.size,
                _ => {
                    self.report.pack_warnings.push(format!(
                        "pack {id} is missing ({} objects; {})",
                        p.entries.len(),
                        path.display()
                    ));
                    continue;
                }
            };
            if size != p.size {
                self.report.pack_warnings.push(format!(
                    "pack {id} has {size} bytes, its index says {} ({})",
                    p.size,
                    path.display()
                ));
                continue;
            }
            if !matches!(self.read_data, ReadData::All) {
                continue;
            }
            let problem = match crate::repack::read_pack_file(&*storage, id) {
                Ok((bytes, entries)) => {
                    if ObjectId::compute(ObjectKind::Pack, &bytes) != *id {
                        Some("its content does not match its name".to_string())
                    } else if entries
                        .iter()
                        .map(crate::pack::IndexedEntry::from_entry)
                        .ne(p.entries.iter().copied())
                    {
                        Some("its footer differs from its index".to_string())
                    } else {
                        None
                    }
                }
                Err(e) => Some(e.to_string()),
            };
            if let Some(reason) = problem {
                self.report.pack_warnings.push(format!(
                    "pack {id} is damaged: {reason} ({})",
                    path.display()
                ));
            }
        }
        Ok(listed.into_keys().collect())
    }

    /// Check a tree and everything below it, once per tree id; returns how
    /// many levels of directories it holds (0: no subdirectory).
    fn tree(&mut self, root: ObjectId) -> usize {
        let mut heights = std::mem::take(&mut self.trees);
        let height = walk::fold_trees(self.repo, root, &mut heights, &mut |t, tree, below| {
            self.progress.objects(1);
            self.report.trees += 1;
            let tree = match tree {
                Ok(tree) => tree,
                Err(e) => {
                    self.object_problem(*t, e);
                    return 0;
                }
            };
            for e in &tree.entries {
                let Node::File {
                    size,
                    chunks,
                    sha256,
                } = &e.node
                else {
                    continue;
                };
                let mut total = 0u64;
                let mut all_ok = true;
                // With every chunk read, the file's content is known: it
                // must hash to the tree's SHA-256 (a tree naming the wrong
                // chunks is caught here).
                let mut content_sha = (!chunks.is_empty()
                    && chunks.iter().all(|c| self.read_data.includes(c)))
                .then(<sha2::Sha256 as sha2::Digest>::new);
                for c in chunks {
                    match &mut content_sha {
                        Some(sha) => match self.chunk_bytes(*c) {
                            Some(raw) => {
                                total += raw.len() as u64;
                                sha2::Digest::update(sha, &raw);
                            }
                            None => all_ok = false,
                        },
                        None => match self.chunk(*c) {
                            ChunkState::Ok(n) => total += n,
                            ChunkState::Bad(_) => all_ok = false,
                        },
                    }
                }
                let found: Option<[u8; 32]> = content_sha.map(|h| sha2::Digest::finalize(h).into());
                if all_ok && total == *size && found.is_some_and(|f| f != *sha256) {
                    let i = self.problem(
                        "hash-mismatch",
                        None,
                        self.repo.object_path(t),
                        format!(
                            "file {:?} in tree {t}: its chunks' content has SHA-256 {}, the tree says {}",
                            path::display(&e.name),
                            hex::encode(found.unwrap_or_default()),
                            hex::encode(sha256)
                        ),
                    );
                    self.size_mismatch.insert((*t, e.name.clone()), i);
                } else if all_ok && total != *size {
                    let i = self.problem(
                        "size-mismatch",
                        None,
                        self.repo.object_path(t),
                        format!(
                            "file {:?} in tree {t}: its chunks hold {total} bytes, the tree says {size}",
                            path::display(&e.name)
                        ),
                    );
                    self.size_mismatch.insert((*t, e.name.clone()), i);
                }
            }
            below.iter().map(|h| h + 1).max().unwrap_or(0)
        });
        self.trees = heights;
        height
    }

    /// Does the tree (or anything below it) have a problem? Memoized.
    fn tainted(&mut self, t: ObjectId, memo: &mut HashMap<ObjectId, bool>) -> bool {
        walk::fold_trees(self.repo, t, memo, &mut |id, tree, below| {
            if self.by_object.contains_key(id) || below.iter().any(|b| *b) {
                return true;
            }
            let Ok(tree) = tree else { return true };
            tree.entries.iter().any(|e| match &e.node {
                Node::File { chunks, .. } => {
                    self.size_mismatch.contains_key(&(*id, e.name.clone()))
                        || chunks
                            .iter()
                            .any(|c| matches!(self.chunks.get(c), Some(ChunkState::Bad(_))))
                }
                _ => false,
            })
        })
    }

    fn blame(&mut self, i: usize, snap: ObjectId, label: &str, p: &[u8]) {
        let pr = &mut self.report.problems[i];
        if pr.snapshots.last() != Some(&snap) && !pr.snapshots.contains(&snap) {
            pr.snapshots.push(snap);
        }
        if pr.files.len() < MAX_PATHS {
            pr.files.push(format!("{label}:{}", path::display(p)));
        } else {
            pr.more_files += 1;
        }
    }

    /// Attribute problems to snapshots and paths, descending only into trees
    /// that hold a problem.
    fn attribute(&mut self, snaps: &[(ObjectId, String, ObjectId)]) {
        let mut memo = HashMap::new();
        for (sid, source, root) in snaps {
            if !self.tainted(*root, &mut memo) {
                continue;
            }
            let label = format!("{source}@{}", sid.short());
            if let Some(&i) = self.by_object.get(root) {
                self.blame(i, *sid, &label, b"/");
                continue;
            }
            let mut stack: Vec<(ObjectId, Vec<u8>)> = vec![(*root, Vec::new())];
            while let Some((t, prefix)) = stack.pop() {
                let Ok(tree) = self.repo.read_tree(&t) else {
                    continue;
                };
                for e in &tree.entries {
                    let p = path::join(&prefix, &e.name);
                    match &e.node {
                        Node::Dir { tree } => {
                            if let Some(&i) = self.by_object.get(tree) {
                                self.blame(i, *sid, &label, &p);
                            } else if self.tainted(*tree, &mut memo) {
                                stack.push((*tree, p));
                            }
                        }
                        Node::File { chunks, .. } => {
                            if let Some(&i) = self.size_mismatch.get(&(t, e.name.clone())) {
                                self.blame(i, *sid, &label, &p);
                            }
                            let mut seen = HashSet::new();
                            for c in chunks {
                                if let Some(ChunkState::Bad(i)) = self.chunks.get(c).cloned()
                                    && seen.insert(i)
                                {
                                    self.blame(i, *sid, &label, &p);
                                }
                            }
                        }
                        Node::Symlink { .. } => {}
                    }
                }
            }
        }
    }
}

pub fn check(repo: &Repo, read_data: ReadData, progress: &dyn Progress) -> Result<CheckReport> {
    let mut c = Checker {
        repo,
        read_data,
        progress,
        report: CheckReport::default(),
        by_object: HashMap::new(),
        chunks: HashMap::new(),
        trees: HashMap::new(),
        size_mismatch: HashMap::new(),
    };
    progress.phase("snapshots and refs");
    // Roots: markers, heads, tags — each must name a decodable snapshot.
    let mut roots: BTreeMap<ObjectId, Vec<String>> = BTreeMap::new();
    let storage = repo.storage();
    for name in repo.list_dir("snapshots")? {
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let key = format!("snapshots/{name}");
        let p = storage.locate(&key);
        match ObjectId::from_hex(&name).filter(|id| id.to_hex() == name) {
            Some(id) => {
                if storage.stat(&key).ok().flatten().map_or(0, |i| i.size) != 0 {
                    c.problem(
                        "bad-marker",
                        None,
                        p.clone(),
                        format!("snapshot marker {} is not empty", p.display()),
                    );
                }
                roots
                    .entry(id)
                    .or_default()
                    .push(format!("marker {}", p.display()));
            }
            None => {
                c.problem(
                    "bad-marker",
                    None,
                    p.clone(),
                    format!(
                        "{} is not a snapshot marker (its name is not a 64-digit lowercase id)",
                        p.display()
                    ),
                );
            }
        }
    }
    for kind in ["heads", "tags"] {
        let dir = format!("refs/{kind}");
        for name in repo.list_dir(&dir)? {
            // Not a ref (format.md §1), as for every other reader.
            if name.starts_with(TEMP_PREFIX) || crate::repo::validate_ref_name(&name).is_err() {
                continue;
            }
            let key = format!("{dir}/{name}");
            let p = storage.locate(&key);
            let text = repo.read_small_text(&key).unwrap_or_default();
            match text
                .lines()
                .next()
                .and_then(|l| ObjectId::from_hex(l.trim()))
            {
                Some(id) => roots
                    .entry(id)
                    .or_default()
                    .push(format!("ref {}", p.display())),
                None => {
                    c.problem(
                        "bad-ref",
                        None,
                        p.clone(),
                        format!("ref {} does not hold a 64-digit snapshot id", p.display()),
                    );
                }
            }
        }
    }
    let mut snaps: Vec<(ObjectId, String, ObjectId)> = Vec::new();
    for (id, named_by) in &roots {
        match repo.read_snapshot(id) {
            Ok(s) => {
                c.report.snapshots += 1;
                snaps.push((*id, s.source, s.tree));
            }
            Err(e) => {
                let i = c.object_problem(*id, &e);
                let dangling = matches!(e, Error::MissingObject { .. });
                let p = &mut c.report.problems[i];
                if dangling {
                    p.kind = "dangling-ref";
                }
                p.message = format!("{} (named by {})", p.message, named_by.join(", "));
                p.snapshots.push(*id);
            }
        }
    }
    progress.phase("trees and chunks");
    for (sid, _, tree) in snaps.clone() {
        let levels = c.tree(tree);
        if levels > MAX_DEPTH && !c.by_object.contains_key(&tree) {
            c.problem(
                "too-deep",
                Some(tree),
                repo.object_path(&tree),
                format!(
                    "snapshot {}: its directories nest {levels} levels deep, more than the {MAX_DEPTH} belay reads (docs/format.md); ls -r, restore, diff and find refuse it",
                    sid.short()
                ),
            );
        }
    }
    if !c.report.problems.is_empty() {
        progress.phase("finding affected files");
        c.attribute(&snaps);
        // The local cache may vouch for a damaged object: make the next
        // backup write it again instead of trusting the cache.
        let bad: Vec<ObjectId> = c.report.problems.iter().filter_map(|p| p.object).collect();
        crate::cache_state::distrust(repo, &bad);
    }
    let packs = if repo.format_version() >= 2 {
        progress.phase("packs and index");
        c.packs()?
    } else {
        HashSet::new()
    };
    // Objects nothing reaches (informational).
    let mut unreferenced = 0u64;
    gc::walk_objects(
        repo,
        &mut |id, _, _| {
            if !roots.contains_key(&id)
                && !c.trees.contains_key(&id)
                && !c.chunks.contains_key(&id)
                && !packs.contains(&id)
            {
                unreferenced += 1;
            }
            Ok(())
        },
        &mut |_, _| Ok(()),
    )?;
    c.report.unreferenced = unreferenced;
    Ok(c.report)
}
