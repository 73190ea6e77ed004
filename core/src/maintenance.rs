//! Keeping a repository healthy: `gc` (sweep what nothing reaches, repack,
//! compact the journal), `check` (every reachable object is there and
//! decodes; with read-data, re-hashed) and `migrate` (format 1 → 2).

use std::time::Instant;

use belay_store::ObjectId;
use belay_store::Repo;
use belay_store::check::{self, ReadData};
use belay_store::gc::{self, GcOptions};
use serde::Serialize;

use crate::error::Result;
use crate::progress::Progress;

/// What `gc` did (or would do, with `dry_run`); `--json` prints it: the
/// store's report, and the time it took.
#[derive(Clone, Debug, Serialize)]
pub struct GcResult {
    #[serde(flatten)]
    pub report: gc::GcReport,
    /// Journal files folded into one (entries older than a week).
    #[serde(skip)]
    pub journal_files_compacted: usize,
    pub seconds: f64,
}

impl std::ops::Deref for GcResult {
    type Target = gc::GcReport;
    fn deref(&self) -> &gc::GcReport {
        &self.report
    }
}

/// Sweep what no snapshot or ref reaches (after the grace period),
/// repack sparse packs, empty the trash of old forgets, and fold journal
/// entries older than a week into one file (docs/format.md §12).
pub fn gc(repo: &Repo, opts: &GcOptions, p: &dyn Progress) -> Result<GcResult> {
    let started = Instant::now();
    let counter = p.counter("gc");
    let r = gc::gc(repo, opts, &*counter);
    counter.finish();
    drop(counter);
    let r = r?;
    let compacted = if r.dry_run {
        0
    } else {
        let week_ago = crate::who::now_ns() - 7 * 24 * 3600 * 1_000_000_000;
        belay_store::journal::compact(repo, week_ago).unwrap_or_else(|e| {
            p.warn(&format!("could not compact the journal: {e}"));
            0
        })
    };
    Ok(GcResult {
        report: r,
        journal_files_compacted: compacted,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// One problem `check` found.
#[derive(Clone, Debug, Serialize)]
pub struct CheckProblem {
    pub kind: &'static str,
    #[serde(serialize_with = "crate::json::opt_id")]
    pub object: Option<ObjectId>,
    pub path: std::path::PathBuf,
    pub message: String,
    #[serde(serialize_with = "crate::json::ids")]
    pub snapshots: Vec<ObjectId>,
    pub files: Vec<String>,
    pub more_files: u64,
}

/// What `check` found; `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    pub ok: bool,
    pub snapshots: u64,
    pub trees: u64,
    pub chunks: u64,
    pub chunks_read: u64,
    pub bytes_read: u64,
    pub unreferenced: u64,
    pub indexes: u64,
    pub packs: u64,
    pub pack_warnings: Vec<String>,
    pub problems: Vec<CheckProblem>,
}

impl CheckResult {
    /// The integrity error a failed check ends with (none when it is ok).
    pub fn error(&self) -> Option<Error> {
        (!self.ok).then(|| {
            belay_store::Error::Verify(format!(
                "check found {} problem{}",
                self.problems.len(),
                if self.problems.len() == 1 { "" } else { "s" }
            ))
            .into()
        })
    }
}

use crate::error::Error;

/// Check that every object a snapshot or ref reaches is there and
/// decodes; with `read_data`, read and re-hash chunks too.
pub fn check(repo: &Repo, read_data: ReadData, p: &dyn Progress) -> Result<CheckResult> {
    let counter = p.counter("check");
    let r = check::check(repo, read_data, &*counter);
    counter.finish();
    drop(counter);
    let r = r?;
    Ok(CheckResult {
        ok: r.ok(),
        snapshots: r.snapshots,
        trees: r.trees,
        chunks: r.chunks,
        chunks_read: r.chunks_read,
        bytes_read: r.bytes_read,
        unreferenced: r.unreferenced,
        indexes: r.indexes,
        packs: r.packs,
        pack_warnings: r.pack_warnings,
        problems: r
            .problems
            .into_iter()
            .map(|p| CheckProblem {
                kind: p.kind,
                object: p.object,
                path: p.path,
                message: p.message,
                snapshots: p.snapshots,
                files: p.files,
                more_files: p.more_files,
            })
            .collect(),
    })
}

/// What `migrate` did; `--json` prints it (the store's report).
pub type MigrateResult = belay_store::migrate::MigrateReport;

/// Format 1 → 2 in place.
pub fn migrate(repo: &Repo, p: &dyn Progress) -> Result<MigrateResult> {
    let counter = p.counter("migrate");
    let r = belay_store::migrate::migrate(repo, &*counter);
    counter.finish();
    drop(counter);
    Ok(r?)
}

/// A lock or backup session file, as `unlock` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct LockInfo {
    pub path: std::path::PathBuf,
    /// Who holds it ("an unknown process" when it does not say).
    pub owner: String,
    /// Its process is gone.
    pub stale: bool,
}

/// What `unlock` did; `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct UnlockResult {
    pub removed: Vec<LockInfo>,
    /// Files of processes that still run, left in place.
    pub kept: Vec<LockInfo>,
}

/// Remove the gc lock, the deletion mark and backup session files whose
/// process is gone (restic's `unlock`); with `remove_all`, every one.
pub fn unlock(repo: &Repo, remove_all: bool) -> Result<UnlockResult> {
    let done = belay_store::session::unlock(repo, remove_all)?;
    let info = |v: Vec<belay_store::session::Active>| -> Vec<LockInfo> {
        v.into_iter()
            .map(|a| LockInfo {
                owner: a
                    .owner
                    .as_ref()
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "an unknown process".into()),
                path: a.path,
                stale: a.stale,
            })
            .collect()
    };
    Ok(UnlockResult {
        removed: info(done.removed),
        kept: info(done.kept),
    })
}

/// A file or directory no source could give back.
#[derive(Clone, Debug, Serialize)]
pub struct LostEntry {
    #[serde(serialize_with = "crate::json::id")]
    pub snapshot: ObjectId,
    pub source: String,
    /// Empty: the whole snapshot.
    pub path: String,
    #[serde(serialize_with = "crate::json::ids")]
    pub objects: Vec<ObjectId>,
}

/// What `repair` did; `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct RepairResult {
    /// Nothing is lost for good.
    pub ok: bool,
    /// Objects found missing or damaged.
    pub damaged: u64,
    /// Of those, stored again from a source.
    pub restored: u64,
    pub files_read: u64,
    pub lost: Vec<LostEntry>,
}

/// Store again what the repository lacks, from live folders and boards
/// (`sources`, as the user gave them: `dir:PATH`, a path, `serial:PORT`);
/// each board in its own session, all open while repair runs.
pub fn repair(
    repo: &Repo,
    sources: &[String],
    read_data: ReadData,
    p: &dyn Progress,
) -> Result<RepairResult> {
    use belay_store::source::Source;
    use belay_transport::Location;
    use belay_transport::dir::DirSource;

    let mut folders: Vec<DirSource> = Vec::new();
    let mut boards: Vec<(String, u32)> = Vec::new();
    for s in sources {
        match Location::parse(s).map_err(Error::Invalid)? {
            Location::Dir(path) => {
                let mut d = DirSource::new(&path, Vec::new(), true).map_err(|e| {
                    Error::from(e).context(format!("cannot read {}", path.display()))
                })?;
                d.skip_path(repo.root());
                folders.push(d);
            }
            Location::Serial { port, baud } => boards.push((port, baud)),
        }
    }
    fn with_boards(
        boards: &[(String, u32)],
        open: &[&dyn Source],
        p: &dyn Progress,
        f: &mut dyn FnMut(&[&dyn Source]) -> Result<belay_store::repair::RepairReport>,
    ) -> Result<belay_store::repair::RepairReport> {
        match boards.split_first() {
            None => f(open),
            Some(((port, baud), rest)) => crate::board::with_source(port, *baud, p, |b| {
                let mut all = open.to_vec();
                all.push(b);
                with_boards(rest, &all, p, f)
            }),
        }
    }
    let counter = p.counter("repair");
    let folders: Vec<&dyn Source> = folders.iter().map(|f| f as &dyn Source).collect();
    let report = with_boards(&boards, &folders, p, &mut |all| {
        Ok(belay_store::repair::repair(
            repo, all, read_data, &*counter,
        )?)
    });
    counter.finish();
    drop(counter);
    let r = report?;
    Ok(RepairResult {
        ok: r.lost.is_empty(),
        damaged: r.damaged,
        restored: r.restored,
        files_read: r.files_read,
        lost: r
            .lost
            .into_iter()
            .map(|l| LostEntry {
                snapshot: l.snapshot,
                source: l.source,
                path: belay_store::path::display(&l.path),
                objects: l.objects,
            })
            .collect(),
    })
}
