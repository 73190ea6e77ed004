//! Restoring a snapshot to a board: plan against what the board holds
//! (by its own hashes), keep what backups of it leave out, check its free
//! space, save a safety snapshot, write only what differs (each file
//! verified by the board's hash), then record the board's new state.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use belay_store::backup::{self, KnownFiles};
use belay_store::cache::Cache;
use belay_store::cache_state::FileState;
use belay_store::id::Sha256;
use belay_store::path as bpath;
use belay_store::repo::RefKind;
use belay_store::restore::{self, PathFilter, PlannedEntry, RestoreOptions as StoreRestoreOptions};
use belay_store::snapshot::{META_RESTORE_OF, META_RESTORED_FROM, META_SAFETY, Snapshot};
use belay_store::source::{ExistingEntry, Sink, SourceKind};
use belay_store::tree::{Node, TreeEntry};
use belay_store::walk;
use belay_store::{ObjectId, Repo};
use belay_transport::devices;
use belay_transport::ignore_rules::{IgnoreRules, is_ignore_file};
use belay_transport::serial::{BoardSink, BoardSource, PullOptions, port, session::TEMP_SUFFIX};
use serde::Serialize;

use super::{Board, BoardNames, board_name, open_cache};
use crate::error::{Error, Result, ResultExt, bail};
use crate::progress::Progress;
use crate::who::{Who, now_ns};

/// What the backup that records a board's state right after a restore may
/// take without pulling it: the files of the restored snapshot (every one
/// was verified by the board's hash as it was written), then the cache.
struct RestoredFiles<'a> {
    files: HashMap<(Sha256, u64), Vec<ObjectId>>,
    cache: Option<&'a Cache>,
}

impl KnownFiles for RestoredFiles<'_> {
    fn lookup(&self, sha256: &Sha256, size: u64) -> Option<Vec<ObjectId>> {
        self.files
            .get(&(*sha256, size))
            .cloned()
            .or_else(|| self.cache?.lookup(sha256, size))
    }
    fn record(&self, sha256: &Sha256, size: u64, chunks: &[ObjectId]) {
        if let Some(c) = self.cache {
            c.record(sha256, size, chunks)
        }
    }
    fn parent_state(&self, source: &str, parent: &ObjectId) -> Option<Vec<FileState>> {
        self.cache?.parent_state(source, parent)
    }
    fn has_object(&self, id: &ObjectId) -> bool {
        self.cache.is_some_and(|c| c.has_object(id))
    }
    fn generation(&self) -> Option<u64> {
        self.cache?.generation()
    }
    fn committed(
        &self,
        source: &str,
        id: &ObjectId,
        snap: &Snapshot,
        files: &[FileState],
        objects: &[ObjectId],
    ) {
        if let Some(c) = self.cache {
            c.committed(source, id, snap, files, objects)
        }
    }
}

/// Whether the board holds exactly what snapshot `head` holds (same paths,
/// kinds and SHA-256 by the board's own hashes): then `head` already is the
/// undo point and no safety snapshot is needed. False when the board
/// cannot hash.
fn board_holds(repo: &Repo, head: &ObjectId, existing: &[ExistingEntry]) -> Result<bool> {
    let snap = repo.read_snapshot(head)?;
    let mut want: HashMap<Vec<u8>, Option<Sha256>> = HashMap::new();
    for (p, e) in walk::flatten(repo, &snap.tree)? {
        let sha = match e.node {
            Node::Dir { .. } => None,
            Node::File { sha256, .. } => Some(sha256),
            Node::Symlink { .. } => return Ok(false),
        };
        want.insert(p, sha);
    }
    if want.len() != existing.len() {
        return Ok(false);
    }
    Ok(existing
        .iter()
        .all(|e| match (want.get(&e.entry.path), &e.entry.kind) {
            (Some(None), SourceKind::Dir) => true,
            (Some(Some(h)), SourceKind::File) => e.sha256.as_ref() == Some(h),
            _ => false,
        }))
}

/// What `--delete` must never remove from a board: what backups of the
/// board leave out (`board_rules`: its .belayignore files), and what the
/// restored snapshot's backup left out (its --exclude globs and the
/// .belayignore files it holds); with the directories that hold them.
fn never_removed(
    repo: &Repo,
    id: ObjectId,
    planned: &[PlannedEntry],
    board_rules: &IgnoreRules,
    existing: Option<&[ExistingEntry]>,
    p: &dyn Progress,
) -> Result<HashSet<Vec<u8>>> {
    let mut keep_rules = IgnoreRules::new(&repo.read_snapshot(&id)?.excludes())?;
    keep_rules.merge(board_rules);
    for e in planned {
        if let Node::File {
            size,
            sha256,
            chunks,
        } = &e.entry.node
            && is_ignore_file(&e.path)
        {
            let mut content = Vec::new();
            crate::browse::write_file(repo, (*size, sha256, chunks), &e.path, &mut content)?;
            for w in keep_rules.add_file(&e.path, &content) {
                p.warn(&w);
            }
        }
    }
    let mut kept: HashSet<Vec<u8>> = HashSet::new();
    for e in existing.unwrap_or(&[]) {
        let q = &e.entry.path;
        if keep_rules.is_ignored(q, e.entry.kind == SourceKind::Dir) {
            // And its directories, which cannot go while it stays.
            let mut q = q.as_slice();
            kept.insert(q.to_vec());
            while let Some(i) = q.iter().rposition(|&b| b == b'/') {
                q = &q[..i];
                kept.insert(q.to_vec());
            }
        }
    }
    Ok(kept)
}

/// Whether the board has room for `changes` (LittleFS needs the new copy
/// of a file before the old one goes; sizes round up to its blocks). A
/// board that cannot say (no `os.statvfs()`) is a warning.
fn check_space(
    board: &Board,
    existing: Option<&[ExistingEntry]>,
    changes: &restore::Changes,
    p: &dyn Progress,
) -> Result<()> {
    let label = board.label();
    let s = board.lock();
    if s.info.fs_free().is_none() {
        p.warn(&format!(
            "{label}: the board has no os.statvfs(), so its free space is unknown: not checked before writing {}",
            crate::size(changes.bytes_to_write())
        ));
    }
    if let (Some(free), Some(bs)) = (s.info.fs_free(), s.info.fs_block()) {
        let blocks = |n: u64| n.div_ceil(bs.max(1)) * bs;
        let sizes: HashMap<&[u8], u64> = existing
            .unwrap_or(&[])
            .iter()
            .map(|e| (e.entry.path.as_slice(), e.entry.size))
            .collect();
        let need: u64 = changes
            .writes
            .iter()
            .map(|e| blocks(e.entry.node.size()))
            .sum();
        let freed: u64 = changes
            .writes
            .iter()
            .filter_map(|e| sizes.get(e.path.as_slice()))
            .chain(
                changes
                    .removes
                    .iter()
                    .filter_map(|r| sizes.get(r.0.as_slice())),
            )
            .map(|&n| blocks(n))
            .sum();
        if need > free + freed {
            bail!(
                "{label}: not enough space: the restore needs about {} and the board has {} free (plus {} freed by replaced or removed files); free some space or restore less with --include",
                crate::size(need),
                crate::size(free),
                crate::size(freed)
            );
        }
    }
    Ok(())
}

/// A directory entry for an ancestor of the restored path.
fn dir_entry(path: &[u8]) -> PlannedEntry {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path).to_vec();
    PlannedEntry {
        path: path.to_vec(),
        entry: TreeEntry {
            name,
            mode: 0,
            mtime_ns: None,
            node: Node::Dir {
                tree: ObjectId([0; 32]),
            },
        },
    }
}

/// On a board, `REV:PATH` goes back to PATH (the board is the whole
/// filesystem): prefix the plan with PATH and create its parents.
fn rebase(planned: Vec<PlannedEntry>, path: &[u8], entry: &TreeEntry) -> Vec<PlannedEntry> {
    if path.is_empty() {
        return planned;
    }
    let mut out = Vec::new();
    let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    let dirs = if matches!(entry.node, Node::Dir { .. }) {
        parts.len()
    } else {
        parts.len() - 1
    };
    for i in 1..=dirs {
        out.push(dir_entry(&parts[..i].join(&b'/')));
    }
    for mut p in planned {
        p.path = if matches!(entry.node, Node::Dir { .. }) {
            bpath::join(path, &p.path)
        } else {
            path.to_vec()
        };
        out.push(p);
    }
    out
}

/// A restore to a board past its plan: what the steps around the writing
/// need.
struct Restoring<'a> {
    repo: &'a Repo,
    board: &'a Board,
    cache: Option<&'a Cache>,
    /// The board's source name.
    name: &'a str,
    /// The snapshot restored.
    id: ObjectId,
    who: &'a Who,
    pull: PullOptions,
    p: &'a dyn Progress,
}

impl Restoring<'_> {
    /// The safety snapshot: what the board holds now (`backed_up`, what
    /// its backups hold), before anything changes; or its head, when the
    /// board holds exactly that. Returns the snapshot and whether it was
    /// saved now.
    fn safety_snapshot(
        &self,
        backed_up: &[ExistingEntry],
        board_rules: &IgnoreRules,
        changes: &restore::Changes,
    ) -> Result<(ObjectId, bool)> {
        let (repo, name, id, p) = (self.repo, self.name, self.id, self.p);
        let label = self.board.label();
        let port = &self.board.port;
        if let Some(h) = repo.read_ref(RefKind::Head, name)?
            && board_holds(repo, &h, backed_up)?
            && !changes
                .writes
                .iter()
                .any(|w| board_rules.is_ignored(&w.path, false))
        {
            p.info(&format!(
                "{label} holds snapshot {} of {name}: nothing to save first (undo with: belay restore {} --to serial:{port} --delete)",
                h.short(),
                h.short()
            ));
            return Ok((h, false));
        }
        let sopts = self.who.snapshot(
            name,
            format!("safety snapshot before restore of {}", id.short()),
            vec![
                (META_SAFETY.to_string(), "restore".to_string()),
                (META_RESTORE_OF.to_string(), id.to_hex()),
            ],
        );
        let bar = p.bar("safety snapshot", false);
        // Everything the restore overwrites or removes is in it, even
        // where the board's .belayignore leaves it out of backups.
        let touched = changes
            .writes
            .iter()
            .map(|w| w.path.clone())
            .chain(changes.removes.iter().map(|r| r.0.clone()));
        let source = BoardSource::new(&self.board.session, self.pull.clone()).with_forced(touched);
        let r = backup::backup_with(
            repo,
            &source,
            &sopts,
            self.cache.map(|c| c as &dyn KnownFiles),
            &*bar,
        );
        bar.finish();
        let r = r.with_context(|| {
            format!("{label}: the safety snapshot failed, so the board was not changed (use --no-safety-snapshot to restore without one)")
        })?;
        if let Some(c) = self.cache {
            let _ = c.index_snapshot(repo, &r.snapshot);
        }
        p.info(&format!(
            "safety snapshot {} of {name} saved (undo with: belay restore {} --to serial:{port} --delete)",
            r.snapshot.short(),
            r.snapshot.short()
        ));
        Ok((r.snapshot, true))
    }

    /// Record the board's new state as the head of its history, so `diff
    /// serial:PORT` compares with what was restored and NAME~1 is the
    /// state before the restore. One walk; the hashes are the board's own
    /// from this session (unchanged files, and each written file's
    /// verification) and the content is the restored snapshot's (`planned`):
    /// nothing is pulled. A failure is a warning: the restore is done.
    fn record(&self, planned: &[PlannedEntry]) -> Option<ObjectId> {
        let (repo, p) = (self.repo, self.p);
        let restored: HashMap<(Sha256, u64), Vec<ObjectId>> = planned
            .iter()
            .filter_map(|e| match &e.entry.node {
                Node::File {
                    size,
                    sha256,
                    chunks,
                } => Some(((*sha256, *size), chunks.clone())),
                _ => None,
            })
            .collect();
        let known = RestoredFiles {
            files: restored,
            cache: self.cache,
        };
        let who = Who {
            time_ns: now_ns().max(self.who.time_ns + 1),
            ..self.who.clone()
        };
        let sopts = who.snapshot(
            self.name,
            format!("restored {}", self.id.short()),
            vec![(META_RESTORED_FROM.to_string(), self.id.to_hex())],
        );
        let bar = p.bar("recording", false);
        let after = backup::backup_with(
            repo,
            &BoardSource::new(&self.board.session, self.pull.clone()),
            &sopts,
            Some(&known),
            &*bar,
        );
        bar.finish();
        drop(bar);
        match after {
            Ok(r) => {
                if let Some(c) = self.cache {
                    let _ = c.index_snapshot(repo, &r.snapshot);
                }
                Some(r.snapshot)
            }
            Err(e) => {
                p.warn(&format!(
                    "{}: the restore succeeded but its result could not be recorded ({}); back the board up to record it",
                    self.board.label(),
                    crate::error_line(&e)
                ));
                None
            }
        }
    }
}

/// What a restore to a board is asked to do.
pub struct BoardRestoreOptions<'a> {
    pub port: String,
    pub baud: u32,
    /// The snapshot, and the entry at `path` in it (the root: empty path).
    pub snapshot: ObjectId,
    pub path: Vec<u8>,
    pub entry: TreeEntry,
    /// `--include`: only these paths (relative to `path`).
    pub include: Option<PathFilter<'a>>,
    /// Remove what the snapshot does not hold (within what it covers).
    pub delete: bool,
    /// Say what would change and change nothing.
    pub dry_run: bool,
    /// Go ahead without [`Progress::confirm`].
    pub yes: bool,
    pub safety_snapshot: bool,
    pub names: BoardNames,
    pub who: Who,
}

/// What a restore would change (and, after a dry run or when there is
/// nothing to do, all it did).
#[derive(Clone, Debug, Serialize)]
pub struct BoardChanges {
    pub write: Vec<String>,
    pub mkdir: Vec<String>,
    pub remove: Vec<String>,
    pub unchanged: usize,
    /// The bytes the writes carry.
    #[serde(skip)]
    pub bytes_to_write: u64,
}

impl BoardChanges {
    /// One line: how many files, directories and removals.
    pub fn summary(&self) -> String {
        format!(
            "{} files to write ({}), {} directories to create, {} entries to remove, {} files already identical",
            self.write.len(),
            crate::size(self.bytes_to_write),
            self.mkdir.len(),
            self.remove.len(),
            self.unchanged
        )
    }
}

/// A restore to a board that wrote nothing: a dry run, or the board
/// already held the snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct BoardRestorePlan {
    #[serde(serialize_with = "crate::json::id")]
    pub snapshot: ObjectId,
    pub target: String,
    pub board: String,
    pub dry_run: bool,
    pub changes: BoardChanges,
    pub wire_bytes: u64,
}

/// A restore to a board that was carried out.
#[derive(Clone, Debug, Serialize)]
pub struct BoardRestored {
    #[serde(serialize_with = "crate::json::id")]
    pub snapshot: ObjectId,
    pub target: String,
    pub board: String,
    /// The snapshot that holds the board's state before the restore.
    #[serde(serialize_with = "crate::json::opt_id")]
    pub safety_snapshot: Option<ObjectId>,
    /// Whether this restore saved it (else it was the board's head).
    pub safety_snapshot_new: bool,
    /// The snapshot that records the board's state after the restore.
    #[serde(serialize_with = "crate::json::opt_id")]
    pub head: Option<ObjectId>,
    pub source: String,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub unchanged: u64,
    pub removed: u64,
    pub bytes_transferred: u64,
    pub wire_bytes: u64,
    pub seconds: f64,
}

/// What a restore to a board did.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum BoardRestore {
    Planned(BoardRestorePlan),
    Restored(BoardRestored),
}

/// Restore a snapshot (or a path of it) to the board on `opts.port`: only
/// files that differ are sent, each verified by the board's hash; with
/// `delete`, what the snapshot does not hold goes (never what backups of
/// the board leave out). Before anything changes, the board's state is
/// saved as a safety snapshot (or is its head already), and after the
/// restore its new state becomes the head of its history.
pub fn restore_board(
    repo: &Repo,
    opts: &BoardRestoreOptions,
    p: &dyn Progress,
) -> Result<BoardRestore> {
    let started = Instant::now();
    let (id, path, who) = (opts.snapshot, opts.path.as_slice(), &opts.who);
    let planned = rebase(
        restore::plan(repo, &opts.entry, opts.include)?,
        path,
        &opts.entry,
    );
    if let Some(e) = planned
        .iter()
        .find(|e| matches!(e.entry.node, Node::Symlink { .. }))
    {
        bail!(
            "{} is a symbolic link and boards have none; leave it out with --include",
            bpath::display(&e.path)
        );
    }
    let board = Board::connect(&opts.port, opts.baud, p)?;
    let label = board.label().to_string();
    let target = board.location();
    let window = devices::write_window(&opts.port);
    let sink = BoardSink::new(&board.session, window);
    p.note(&format!("{label}: listing and hashing its files…"));
    let hashing = p.bar("restore", true);
    board.lock().set_hash_progress(hashing.hash_reporter());
    let existing = sink.existing();
    hashing.finish();
    drop(hashing);
    board.lock().set_hash_progress(None);
    let existing = existing?;
    let pull = board.pull(None, true);
    // What backups of this board leave out (its .belayignore files), and
    // what --delete must never remove: that, and what the restored
    // snapshot's backup left out (its --exclude globs and the
    // .belayignore files it holds).
    let board_rules = BoardSource::new(&board.session, pull.clone()).rules(&mut |w| p.warn(&w))?;
    let kept = never_removed(repo, id, &planned, &board_rules, existing.as_deref(), p)?;
    // --delete reaches only what the restore covers: PATH, and --include.
    let mut prefix = path.to_vec();
    prefix.push(b'/');
    // --include globs apply to paths relative to PATH, as in the plan.
    let scope = |q: &[u8]| {
        let rel = if path.is_empty() {
            Some(q)
        } else if q == path {
            q.rsplit(|&b| b == b'/').next()
        } else {
            q.strip_prefix(prefix.as_slice())
        };
        rel.is_some_and(|r| opts.include.is_none_or(|f| f(r))) && !kept.contains(q)
    };
    let ropts = StoreRestoreOptions {
        delete: opts.delete,
        scope: Some(&scope),
    };
    let mut changes = restore::changes(&planned, existing.as_deref(), &ropts)?;
    // Temporary files left by an interrupted restore go too (they are
    // belay's, and in the safety snapshot).
    for e in existing.as_deref().unwrap_or(&[]) {
        let q = &e.entry.path;
        if q.ends_with(TEMP_SUFFIX)
            && e.entry.kind == SourceKind::File
            && !planned.iter().any(|x| &x.path == q)
            && !changes.removes.iter().any(|r| &r.0 == q)
        {
            changes.removes.insert(0, (q.clone(), false));
        }
    }
    let list = BoardChanges {
        write: changes
            .writes
            .iter()
            .map(|e| bpath::display(&e.path))
            .collect(),
        mkdir: changes
            .mkdirs
            .iter()
            .map(|e| bpath::display(&e.path))
            .collect(),
        remove: changes
            .removes
            .iter()
            .map(|r| bpath::display(&r.0))
            .collect(),
        unchanged: changes.unchanged.len(),
        bytes_to_write: changes.bytes_to_write(),
    };
    if opts.dry_run || changes.is_empty() {
        let wire_bytes = board.wire_bytes();
        board.close(p);
        return Ok(BoardRestore::Planned(BoardRestorePlan {
            snapshot: id,
            target,
            board: label,
            dry_run: opts.dry_run,
            changes: list,
            wire_bytes,
        }));
    }
    check_space(&board, existing.as_deref(), &changes, p)?;
    if !opts.yes
        && !p.confirm(&format!(
            "restore {} to {label}: {}",
            id.short(),
            list.summary()
        ))
    {
        return Err(Error::Cancelled(
            "restore cancelled; the board was not changed".into(),
        ));
    }
    port::catch_interrupts();
    let cache = open_cache(repo, p);
    let name = board_name(repo, &board, None, &opts.names, p)?;
    let step = Restoring {
        repo,
        board: &board,
        cache: cache.as_ref(),
        name: &name,
        id,
        who,
        pull,
        p,
    };
    let (safety, safety_new) = if opts.safety_snapshot {
        let backed_up: Vec<ExistingEntry> = existing
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .filter(|e| !board_rules.is_ignored(&e.entry.path, e.entry.kind == SourceKind::Dir))
            .cloned()
            .collect();
        let (id, new) = step.safety_snapshot(&backed_up, &board_rules, &changes)?;
        (Some(id), new)
    } else {
        (None, false)
    };
    let bar = p.bar("restore", true);
    let before = board.payload_bytes();
    let result = restore::apply(repo, &changes, &sink, &*bar);
    bar.finish();
    drop(bar);
    let pushed = board.payload_bytes() - before;
    let report = result.with_context(|| {
        let hint = safety
            .map(|id| format!("; the board's earlier state is in snapshot {}", id.short()))
            .unwrap_or_default();
        format!("restore to {label} failed part way{hint}")
    })?;
    let after = step.record(&planned);
    let wire_bytes = board.wire_bytes();
    board.close(p);
    Ok(BoardRestore::Restored(BoardRestored {
        snapshot: id,
        target,
        board: label,
        safety_snapshot: safety,
        safety_snapshot_new: safety_new,
        head: after,
        source: name,
        files: report.files,
        dirs: report.dirs,
        bytes: report.bytes,
        unchanged: report.unchanged,
        removed: report.removed,
        bytes_transferred: pushed,
        wire_bytes,
        seconds: started.elapsed().as_secs_f64(),
    }))
}
