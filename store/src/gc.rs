//! Garbage collection: mark everything reachable from the roots (snapshot
//! markers, tags and heads; parent links keep nothing alive), then sweep in
//! two phases. An unreferenced object is first *condemned* (listed in
//! `gc/condemned/`); a later gc deletes it once the grace period has passed
//! by the share's own clock, no backup session is running, and it is still
//! unreferenced. docs/format.md §10 has the protocol and why it is safe.
//!
//! Memory: the mark set holds 16 bytes of each live id (a false "live" only
//! keeps garbage a little longer, never deletes anything); garbage ids are
//! held whole (32 bytes + size). The object directory is walked one
//! sub-directory at a time.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::atomic::TEMP_PREFIX;
use crate::error::{Error, IoContext, Result};
use crate::id::ObjectId;
use crate::repo::{RefKind, Repo};
use crate::session::{self, DeletingMark, GcLock};
use crate::storage::FileInfo;
use crate::tree::Node;

const LIST_MAGIC: &[u8] = b"belay-condemned 1\n";
/// Largest condemned list a gc reads (8 million ids).
const MAX_LIST: u64 = 256 << 20;
/// Abandoned `.tmp-` files older than this (by the share's clock) are removed.
const TEMP_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
/// How long past the grace period deletion waits for running backups.
pub const OVERDUE_AFTER: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug)]
pub struct GcOptions {
    pub dry_run: bool,
    pub grace: Duration,
    /// Delete unreferenced objects now, without the grace period, if no
    /// backup session is active.
    pub now: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            grace: DEFAULT_GRACE,
            now: false,
        }
    }
}

/// Progress callbacks for long walks (gc, check, stats).
pub trait Progress: Sync {
    fn phase(&self, _name: &str) {}
    fn objects(&self, _n: u64) {}
    fn warn(&self, _msg: &str) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

/// What a gc run did; serialised as `gc --json` prints it (durations in
/// whole seconds, as `*_seconds`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// The generation this gc set (unchanged with `dry_run`).
    pub generation: u64,
    pub roots: u64,
    /// Object files found, and their bytes.
    pub objects: u64,
    pub bytes: u64,
    pub live_objects: u64,
    pub live_bytes: u64,
    /// Deleted by this run (would be, with `dry_run`).
    pub deleted_objects: u64,
    pub deleted_bytes: u64,
    /// Newly condemned by this run.
    pub condemned_objects: u64,
    pub condemned_bytes: u64,
    /// Condemned and waiting (for the grace period or running backups),
    /// including the newly condemned.
    pub pending_objects: u64,
    pub pending_bytes: u64,
    /// When the oldest pending condemnation becomes deletable.
    #[serde(rename = "next_deletion_in_seconds", serialize_with = "seconds")]
    pub next_deletion_in: Option<Duration>,
    /// Backups whose sessions postponed deletion.
    pub postponed_by: Vec<String>,
    /// Objects overdue (condemned longer than grace + 1 h) were deleted
    /// although backups were running.
    pub deleted_while_backups_ran: bool,
    pub stale_sessions_removed: u64,
    pub trash_emptied: u64,
    /// Forgotten snapshots of the last forget left in the trash: it is
    /// younger than the grace period, so `undo-forget` still works.
    pub trash_kept: u64,
    /// When a gc may empty them.
    #[serde(rename = "trash_expires_in_seconds", serialize_with = "seconds")]
    pub trash_expires_in: Option<Duration>,
    pub temp_files_removed: u64,
    /// Format v2: what this run found and did to packs.
    #[serde(flatten)]
    pub packs: crate::repack::PackFigures,
    pub warnings: Vec<String>,
}

fn seconds<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&d.map(|d| d.as_secs()), s)
}

struct CondemnedList {
    key: String,
    mtime: SystemTime,
    ids: Vec<ObjectId>,
    expired: bool,
    /// Expired for longer than [`OVERDUE_AFTER`]: deleted even while
    /// backups run (they re-check before committing, format.md §10.3).
    overdue: bool,
    /// This run deletes what it holds.
    delete: bool,
}

fn trunc(id: &ObjectId) -> u128 {
    u128::from_le_bytes(id.0[..16].try_into().unwrap())
}

const CONDEMNED_DIR: &str = "gc/condemned";

fn load_lists(
    repo: &Repo,
    now: SystemTime,
    grace: Duration,
    dry_run: bool,
) -> Result<Vec<CondemnedList>> {
    let mut out = Vec::new();
    let storage = repo.storage();
    for name in repo.list_dir(CONDEMNED_DIR)? {
        if name.starts_with(TEMP_PREFIX) || !name.ends_with(".list") {
            continue;
        }
        let key = format!("{CONDEMNED_DIR}/{name}");
        let path = storage.locate(&key);
        // Not trusted: a FIFO or a huge file is refused, never read whole.
        let bytes = storage.read(&key, MAX_LIST).at(&path)?;
        let mtime = storage
            .stat(&key)
            .at(&path)?
            .and_then(|i| i.mtime)
            .ok_or_else(|| Error::io(&path, io::Error::other("no modification time")))?;
        if !bytes.starts_with(LIST_MAGIC) || !(bytes.len() - LIST_MAGIC.len()).is_multiple_of(32) {
            // A torn list (crash while writing): its objects are condemned
            // again by this run, with a fresh grace period.
            if !dry_run {
                let _ = storage.delete(&key);
            }
            continue;
        }
        let mut ids: Vec<ObjectId> = bytes[LIST_MAGIC.len()..]
            .chunks(32)
            .map(|c| ObjectId(c.try_into().unwrap()))
            .collect();
        ids.sort();
        let age = now.duration_since(mtime).unwrap_or(Duration::ZERO);
        out.push(CondemnedList {
            key,
            mtime,
            ids,
            expired: age >= grace,
            overdue: age >= grace + OVERDUE_AFTER,
            delete: false,
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

fn write_list(repo: &Repo, key: &str, ids: &[ObjectId], mtime: Option<SystemTime>) -> Result<()> {
    let mut bytes = Vec::with_capacity(LIST_MAGIC.len() + ids.len() * 32);
    bytes.extend_from_slice(LIST_MAGIC);
    for id in ids {
        bytes.extend_from_slice(&id.0);
    }
    let storage = repo.storage();
    let path = storage.locate(key);
    storage.put_replace(key, &bytes).at(&path)?;
    if let Some(t) = mtime {
        // Keep the condemnation time of a list that was only filtered.
        // Where the storage cannot set it (object storage), the list is
        // as new: its objects wait a whole grace period again (safe).
        storage.set_mtime(key, t).at(&path)?;
    }
    Ok(())
}

fn remove(repo: &Repo, key: &str) -> Result<bool> {
    repo.storage()
        .delete(key)
        .map_err(|e| Error::io(repo.storage().locate(key), e))
}

/// The roots: live snapshot markers, tags and heads. A ref that names no
/// snapshot id is reported through `warn` and left out: the snapshot it
/// meant cannot be known, and a head's snapshot keeps its marker anyway.
pub fn roots(repo: &Repo, warn: &mut dyn FnMut(String)) -> Result<Vec<ObjectId>> {
    let mut r = repo.list_snapshots()?;
    r.extend(repo.list_refs_reporting(RefKind::Tag, warn)?.into_values());
    r.extend(repo.list_refs_reporting(RefKind::Head, warn)?.into_values());
    r.sort();
    r.dedup();
    Ok(r)
}

/// Mark every object reachable from `roots` (truncated ids). A root whose
/// snapshot object is missing is skipped with a warning (nothing to keep);
/// any other unreadable object stops gc: deleting around damage could lose
/// data that `check` would show how to save.
pub(crate) fn mark(
    repo: &Repo,
    roots: &[ObjectId],
    progress: &dyn Progress,
    warnings: &mut Vec<String>,
) -> Result<HashSet<u128>> {
    let mut live: HashSet<u128> = HashSet::new();
    for root in roots {
        if !repo.has_object(root) {
            let w = format!(
                "snapshot {} is named by a marker or ref but missing; `belay check` reports it",
                root.short()
            );
            progress.warn(&w);
            warnings.push(w);
            continue;
        }
        if !live.insert(trunc(root)) {
            continue;
        }
        let snap = repo.read_snapshot(root).map_err(stop)?;
        let mut stack = vec![snap.tree];
        while let Some(t) = stack.pop() {
            if !live.insert(trunc(&t)) {
                continue;
            }
            progress.objects(1);
            for e in repo.read_tree(&t).map_err(stop)?.entries {
                match e.node {
                    Node::Dir { tree } => stack.push(tree),
                    Node::File { chunks, .. } => {
                        for c in &chunks {
                            live.insert(trunc(c));
                        }
                    }
                    Node::Symlink { .. } => {}
                }
            }
        }
    }
    Ok(live)
}

fn stop(e: Error) -> Error {
    Error::Verify(format!(
        "gc stopped, nothing was deleted: {e}; run `belay check` to see what is damaged"
    ))
}

/// Callbacks for the files under `objects/`: `(id, key, size)` for an
/// object file, `(key, info)` for a `.tmp-` file.
pub type ObjectVisitor<'a> = &'a mut dyn FnMut(ObjectId, &str, u64) -> Result<()>;
pub type TempVisitor<'a> = &'a mut dyn FnMut(&str, FileInfo) -> Result<()>;

/// Hand one listed file to the visitor it belongs to (other names are not
/// the repository's and are skipped).
fn visit_one(key: &str, info: FileInfo, f: ObjectVisitor, tmp: TempVisitor) -> Result<()> {
    let name = key.rsplit('/').next().unwrap_or_default();
    if name.starts_with(TEMP_PREFIX) {
        tmp(key, info)
    } else if let Some(id) = ObjectId::from_hex(name) {
        f(id, key, info.size)
    } else {
        Ok(())
    }
}

/// Visit every object file as the storage lists it (streaming: a format-1
/// repository may hold millions).
pub fn walk_objects(repo: &Repo, f: ObjectVisitor, tmp: TempVisitor) -> Result<()> {
    let storage = repo.storage();
    storage
        .list("objects", &mut |key, info| {
            visit_one(key, info, f, tmp).map_err(|e| io::Error::other(Box::new(e)))
        })
        .map_err(|e| unwrap_store_error(e, &storage.locate("objects")))
}

/// Every file under `objects/`, listed once: format 2 holds few (packs and
/// snapshots), and gc's pack plan and its sweep both need them.
pub fn list_objects(repo: &Repo) -> Result<Vec<(String, FileInfo)>> {
    let storage = repo.storage();
    let mut out = Vec::new();
    storage
        .list("objects", &mut |key, info| {
            out.push((key.to_string(), info));
            Ok(())
        })
        .at(storage.locate("objects"))?;
    Ok(out)
}

/// [`walk_objects`] over a listing made before.
pub fn visit_listed(
    listed: &[(String, FileInfo)],
    f: ObjectVisitor,
    tmp: TempVisitor,
) -> Result<()> {
    for (key, info) in listed {
        visit_one(key, *info, f, tmp)?;
    }
    Ok(())
}

/// An error raised by a callback inside a storage listing comes back as an
/// `io::Error` wrapping it: give it back as it was.
fn unwrap_store_error(e: io::Error, path: &Path) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        return *e.into_inner().unwrap().downcast::<Error>().unwrap();
    }
    Error::io(path, e)
}

pub fn gc(repo: &Repo, opts: &GcOptions, progress: &dyn Progress) -> Result<GcReport> {
    let mut report = GcReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let lock = if opts.dry_run {
        None
    } else {
        Some(GcLock::acquire(repo)?)
    };
    let now = if opts.dry_run && repo.local_root().is_some_and(|r| !r.join("gc").exists()) {
        SystemTime::now()
    } else {
        session::share_now(repo, "gc")?
    };
    let mut lists = load_lists(repo, now, opts.grace, opts.dry_run)?;
    let want_delete = opts.now || lists.iter().any(|l| l.expired);

    // The order matters (docs/format.md §10): announce the deletion, bump the
    // generation, then read the sessions, then the roots.
    let mut deleting = if want_delete && !opts.dry_run {
        Some(DeletingMark::create(repo)?)
    } else {
        None
    };
    report.generation = session::generation(repo)?;
    if !opts.dry_run {
        report.generation += 1;
        session::write_generation(repo, report.generation, &|| {
            if let Some(l) = &lock {
                l.shed();
            }
            if let Some(d) = &deleting {
                d.shed();
            }
        })?;
    }
    session::pause_point("gc-generation-bumped");
    let mut active = Vec::new();
    for s in session::list_sessions(repo, now)? {
        if s.stale {
            if !opts.dry_run && remove(repo, &s.key).unwrap_or(false) {
                report.stale_sessions_removed += 1;
            }
        } else {
            active.push(
                s.owner
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| s.path.display().to_string()),
            );
        }
    }
    // With no backup running, every expired list (or, with --now, all
    // garbage) goes; while backups run, only lists overdue by an hour past
    // the grace period, so a busy share cannot postpone deletion forever.
    let quiet = active.is_empty();
    let now_mode = opts.now && quiet;
    for l in lists.iter_mut() {
        l.delete = if quiet {
            l.expired || now_mode
        } else {
            l.overdue
        };
    }
    let can_delete = want_delete && (now_mode || lists.iter().any(|l| l.delete));
    if want_delete && !quiet {
        report.postponed_by = active;
        report.deleted_while_backups_ran = can_delete;
    }
    if !can_delete {
        deleting = None;
    }

    let mut trash_at_start = trash_entries(repo)?;
    // The last forget stays undoable for the grace period, by the share's
    // clock (its undo record's mtime); older trash goes, and all of it
    // with --now. Its snapshots' objects are condemned meanwhile, so they
    // are deleted no earlier than the trash is emptied.
    let mut trash_kept = Vec::new();
    if !opts.now
        && let Some(record) = crate::forget::last_forget(repo)?
    {
        let age = session::age(repo, crate::forget::UNDO_KEY, now).unwrap_or(Duration::ZERO);
        if age < opts.grace {
            report.trash_expires_in = Some(opts.grace - age);
            trash_at_start.retain(|key| {
                let name = key.rsplit('/').next().unwrap_or_default();
                let held =
                    name == crate::forget::UNDO_FILE || record.snapshots.iter().any(|s| *s == name);
                if held {
                    trash_kept.push(key.clone());
                }
                !held
            });
            report.trash_kept = count_markers(&trash_kept);
        }
    }
    progress.phase("marking");
    let roots = roots(repo, &mut |w| {
        progress.warn(&w);
        report.warnings.push(w);
    })?;
    report.roots = roots.len() as u64;
    let live = mark(repo, &roots, progress, &mut report.warnings)?;
    session::pause_point("gc-marked");
    // Format v2: repack, pack loose chunks and trees, consolidate the
    // index; files are then kept by the plan (packs, index objects and
    // loose snapshots), not by object id.
    // Format 2: one listing of `objects/` serves the pack plan and the sweep.
    let listed = if repo.format_version() >= 2 {
        Some(list_objects(repo)?)
    } else {
        None
    };
    let pack_plan = if let Some(listed) = &listed {
        let plan = crate::repack::plan(repo, listed, &live, &roots, opts.dry_run, progress)?;
        report.packs = plan.figures.clone();
        report.warnings.extend(plan.warnings.iter().cloned());
        Some(plan)
    } else {
        None
    };
    let keep = |id: &ObjectId| match &pack_plan {
        Some(plan) => plan.keep.contains(&trunc(id)),
        None => live.contains(&trunc(id)),
    };
    session::pause_point("gc-repacked");

    progress.phase("sweeping");
    let expired_ids = |id: &ObjectId, lists: &[CondemnedList]| {
        lists
            .iter()
            .any(|l| l.delete && l.ids.binary_search(id).is_ok())
    };
    let pending_in = |id: &ObjectId, lists: &[CondemnedList]| {
        lists
            .iter()
            .filter(|l| l.ids.binary_search(id).is_ok())
            .map(|l| l.mtime)
            .min()
    };
    let mut new_condemned: Vec<ObjectId> = Vec::new();
    let mut oldest_pending: Option<SystemTime> = None;
    let mut temp_removed = 0u64;
    let mut batch: Vec<(String, u64)> = Vec::new();
    let storage = repo.storage().clone();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(DELETE_THREADS)
        .build()
        .map_err(|e| Error::Unsafe(format!("cannot start threads: {e}")))?;
    let mut visit = |id: ObjectId, key: &str, size: u64| -> Result<()> {
        progress.objects(1);
        report.objects += 1;
        report.bytes += size;
        if keep(&id) {
            report.live_objects += 1;
            report.live_bytes += size;
            return Ok(());
        }
        if can_delete && (now_mode || expired_ids(&id, &lists)) {
            if opts.dry_run {
                report.deleted_objects += 1;
                report.deleted_bytes += size;
                return Ok(());
            }
            batch.push((key.to_string(), size));
            // The first deletion alone (a test pause point follows it),
            // then in parallel batches: on a network share an unlink
            // is a round trip.
            let limit = if report.deleted_objects == 0 { 1 } else { 512 };
            if batch.len() >= limit {
                let (n, b) = delete_batch(&pool, &*storage, &mut batch)?;
                report.deleted_objects += n;
                report.deleted_bytes += b;
                if report.deleted_objects == n && n > 0 {
                    session::pause_point("gc-deleting");
                }
            }
            return Ok(());
        }
        report.pending_objects += 1;
        report.pending_bytes += size;
        match pending_in(&id, &lists) {
            Some(t) => {
                oldest_pending = Some(oldest_pending.map_or(t, |o: SystemTime| o.min(t)));
            }
            None => {
                new_condemned.push(id);
                report.condemned_objects += 1;
                report.condemned_bytes += size;
                oldest_pending = Some(now);
            }
        }
        Ok(())
    };
    let mut temp = |key: &str, info: FileInfo| -> Result<()> {
        let age = info
            .mtime
            .map(|t| now.duration_since(t).unwrap_or(Duration::ZERO));
        if !opts.dry_run && age.is_some_and(|a| a > TEMP_MAX_AGE) {
            let _ = storage.delete(key);
            temp_removed += 1;
        }
        Ok(())
    };
    // Index objects first (only those this run read and so replaced by
    // its consolidated index, can be garbage; one written since is kept):
    // a stop between the two leaves packs no index lists, which the next
    // run condemns, rather than an index naming deleted packs.
    if let Some(plan) = &pack_plan {
        let mut index_files = Vec::new();
        storage
            .list(crate::packed::INDEX_DIR, &mut |key, info| {
                index_files.push((key.to_string(), info));
                Ok(())
            })
            .at(storage.locate(crate::packed::INDEX_DIR))?;
        for (key, info) in index_files {
            let name = key.rsplit('/').next().unwrap_or_default();
            if name.starts_with(TEMP_PREFIX) {
                temp(&key, info)?;
                continue;
            }
            let Some(id) = ObjectId::from_hex(name) else {
                continue;
            };
            if plan.indexes.contains(&id) {
                visit(id, &key, info.size)?;
            }
        }
    }
    match &listed {
        Some(listed) => visit_listed(listed, &mut visit, &mut temp)?,
        None => walk_objects(repo, &mut visit, &mut temp)?,
    }
    let (n, b) = delete_batch(&pool, &*storage, &mut batch)?;
    report.deleted_objects += n;
    report.deleted_bytes += b;
    let deleted_any = report.deleted_objects > 0 && !opts.dry_run;
    // Abandoned temporary files elsewhere (markers, refs, lists, config).
    if !opts.dry_run {
        for d in [
            "",
            "snapshots",
            "refs/heads",
            "refs/tags",
            "trash",
            "sessions",
            "locks",
            "gc",
            "gc/condemned",
        ] {
            for name in repo.list_dir(d)? {
                let key = if d.is_empty() {
                    name.clone()
                } else {
                    format!("{d}/{name}")
                };
                if name.starts_with(TEMP_PREFIX)
                    && session::age(repo, &key, now).is_some_and(|a| a > TEMP_MAX_AGE)
                    && remove(repo, &key).unwrap_or(false)
                {
                    temp_removed += 1;
                }
            }
        }
    }
    report.temp_files_removed = temp_removed;
    if deleted_any && storage.sync_all().is_err() {
        // Deletions that are lost in a crash only leave garbage behind.
    }
    report.next_deletion_in = oldest_pending.map(|t| {
        let age = now.duration_since(t).unwrap_or(Duration::ZERO);
        opts.grace.saturating_sub(age)
    });
    drop(deleting);

    if !opts.dry_run {
        // Lists: expired ones are done when this run could delete; the
        // others keep only what is still garbage (and their time).
        for l in &lists {
            if can_delete && (l.delete || now_mode) {
                remove(repo, &l.key)?;
                continue;
            }
            let still: Vec<ObjectId> = l.ids.iter().filter(|id| !keep(id)).copied().collect();
            if still.is_empty() {
                remove(repo, &l.key)?;
            } else if still.len() != l.ids.len() {
                write_list(repo, &l.key, &still, Some(l.mtime))?;
            }
        }
        lists.clear();
        if !new_condemned.is_empty() {
            new_condemned.sort();
            let key = format!("{CONDEMNED_DIR}/{:020}.list", report.generation);
            write_list(repo, &key, &new_condemned, None)?;
        }
        report.trash_emptied = empty_trash(repo, trash_at_start)?;
    } else {
        report.trash_emptied = count_markers(&trash_at_start);
    }
    Ok(report)
}

/// The trash's entries, the undo record first (it must go before the
/// markers it names, so an undo never revives a snapshot gc worked on).
/// Threads deleting objects at once (hides network round trips).
const DELETE_THREADS: usize = 16;

/// Delete a batch of object files in parallel; returns how many (and how
/// many bytes) this call removed (already gone ones are not counted).
fn delete_batch(
    pool: &rayon::ThreadPool,
    storage: &dyn crate::storage::Storage,
    batch: &mut Vec<(String, u64)>,
) -> Result<(u64, u64)> {
    use rayon::prelude::*;
    if batch.is_empty() {
        return Ok((0, 0));
    }
    let results: Vec<Result<Option<u64>>> = pool.install(|| {
        batch
            .par_iter()
            .map(|(key, size)| match storage.delete(key) {
                Ok(true) => Ok(Some(*size)),
                Ok(false) => Ok(None),
                Err(e) => Err(Error::io(storage.locate(key), e)),
            })
            .collect()
    });
    batch.clear();
    let (mut n, mut b) = (0, 0);
    for r in results {
        if let Some(size) = r? {
            n += 1;
            b += size;
        }
    }
    Ok((n, b))
}

/// The trash's keys (`trash/…`).
fn trash_entries(repo: &Repo) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for name in repo.list_dir(crate::forget::TRASH_DIR)? {
        let key = format!("{}/{name}", crate::forget::TRASH_DIR);
        if name == crate::forget::UNDO_FILE {
            out.insert(0, key);
        } else if ObjectId::from_hex(&name).is_some() {
            out.push(key);
        }
    }
    Ok(out)
}

fn count_markers(entries: &[String]) -> u64 {
    entries
        .iter()
        .filter(|k| k.as_str() != crate::forget::UNDO_KEY)
        .count() as u64
}

/// Remove the markers of forgotten snapshots and the undo record.
fn empty_trash(repo: &Repo, entries: Vec<String>) -> Result<u64> {
    let mut n = 0;
    for key in entries {
        if remove(repo, &key)? {
            n += (key != crate::forget::UNDO_KEY) as u64;
        }
    }
    Ok(n)
}
