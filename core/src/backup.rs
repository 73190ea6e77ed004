//! `backup`: a folder or a board into the repository, from the location
//! as the user gave it, with one typed result for both.

use std::path::Path;
use std::time::Instant;

use belay_store::ObjectId;
use belay_store::Repo;
use belay_store::backup::{self, BackupOptions as StoreBackupOptions, BackupReport, KnownFiles};
use belay_store::cache::Cache;
use belay_store::repo::RefKind;
use belay_store::snapshot::META_EXCLUDE;
use belay_store::source::Source;
use belay_transport::Location;
use belay_transport::dir::DirSource;
use serde::Serialize;

use crate::board::{self, BoardBackupOptions, BoardLine, BoardNames};
use crate::error::{Result, ResultExt, bail};
use crate::progress::Progress;
use crate::who::Who;

/// What a backup is asked to do (the flags of `belay backup`).
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    /// The source name; by default from the folder's name or the board's
    /// identity.
    pub name: Option<String>,
    pub message: String,
    /// `--meta KEY=VALUE`, as given (see [`parse_meta`]).
    pub meta: Vec<String>,
    pub excludes: Vec<String>,
    /// Folders: leave out files that cannot be read, with a warning.
    pub skip_unreadable: bool,
    /// Save a snapshot even when nothing changed.
    pub allow_empty: bool,
    /// Boards: compress on the board (`None`: where it can).
    pub deflate: Option<bool>,
    /// Boards: hash on the board, so files the repository holds are not
    /// pulled.
    pub hash: bool,
    /// Boards: names given to boards by unique id.
    pub names: BoardNames,
}

/// What one backup did; `--json` prints it as it is.
#[derive(Clone, Debug, Serialize)]
pub struct BackupResult {
    /// Nothing changed, and no snapshot was saved (`snapshot` is the
    /// parent).
    pub unchanged: bool,
    #[serde(serialize_with = "crate::json::id")]
    pub snapshot: ObjectId,
    #[serde(serialize_with = "crate::json::opt_id")]
    pub parent: Option<ObjectId>,
    /// The source name the snapshot was saved under.
    pub source: String,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub files_read: u64,
    pub files_unchanged: u64,
    pub objects_repaired: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub objects_added: u64,
    pub warnings: Vec<String>,
    pub seconds: f64,
    #[serde(flatten)]
    pub from: BackupFrom,
}

/// What is particular to where the files came from.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum BackupFrom {
    Folder { symlinks: u64 },
    Board(BoardLine),
}

impl BackupResult {
    pub(crate) fn new(r: BackupReport, source: String, seconds: f64, from: BackupFrom) -> Self {
        let s = &r.summary;
        BackupResult {
            unchanged: !r.committed,
            snapshot: r.snapshot,
            parent: r.parent,
            source,
            files: s.files,
            dirs: s.dirs,
            bytes: s.bytes,
            files_read: s.files_read,
            files_unchanged: r.files_unchanged,
            objects_repaired: r.objects_repaired,
            bytes_read: s.bytes_read,
            bytes_added: s.bytes_added,
            objects_added: s.objects_added,
            warnings: r.warnings,
            seconds,
            from,
        }
    }

    /// Whether a snapshot was saved.
    pub fn committed(&self) -> bool {
        !self.unchanged
    }
}

/// `--meta KEY=VALUE` items as pairs; keys starting with `belay.` are
/// belay's own.
pub fn parse_meta(items: &[String]) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|kv| {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("--meta {kv:?}: expected KEY=VALUE");
            };
            if k.is_empty() {
                bail!("--meta {kv:?}: the key is empty");
            }
            if k.starts_with("belay.") {
                bail!(
                    "--meta {kv:?}: keys starting with belay. are belay's own; choose another key"
                );
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// `--meta` and what belay records about the backup itself: its
/// `--exclude` globs (so a restore with --delete never removes what the
/// backup left out).
fn backup_meta(opts: &BackupOptions) -> Result<Vec<(String, String)>> {
    let mut meta = parse_meta(&opts.meta)?;
    if !opts.excludes.is_empty() {
        if let Some(g) = opts.excludes.iter().find(|g| g.contains('\n')) {
            bail!("--exclude {g:?}: a glob cannot contain a line break");
        }
        meta.push((META_EXCLUDE.to_string(), opts.excludes.join("\n")));
    }
    Ok(meta)
}

/// Back up `location` (a folder or a board) into `repo`.
pub fn backup(
    repo: &Repo,
    location: &Location,
    opts: &BackupOptions,
    p: &dyn Progress,
) -> Result<BackupResult> {
    match location {
        Location::Dir(dir) => backup_folder(repo, dir, opts, p),
        Location::Serial { port, baud } => {
            let who = Who::now(backup_meta(opts)?);
            let bopts = BoardBackupOptions {
                port: port.clone(),
                baud: *baud,
                name: opts.name.clone(),
                names: opts.names.clone(),
                message: opts.message.clone(),
                excludes: opts.excludes.clone(),
                allow_empty: opts.allow_empty,
                deflate: opts.deflate,
                hash: opts.hash,
                who,
            };
            board::backup_board(repo, &bopts, p)
        }
    }
}

/// The history a folder goes into without `--name`: its last component,
/// unless a folder elsewhere already has a history under that name (two
/// `proj` folders, every CircuitPython drive's `CIRCUITPY`): continuing it
/// would compare the two and mix their snapshots, so the user chooses.
pub fn folder_name(repo: &Repo, cache: Option<&Cache>, source: &DirSource) -> Result<String> {
    let mut name = belay_store::repo::default_source_name(source);
    let mut head = repo.read_ref(RefKind::Head, &name)?;
    // A history renamed with `belay rename` continues under its new name.
    if head.is_none()
        && let Some(renamed) = belay_store::rename::renamed_to(repo, &name)
        && let Some(h) = repo.read_ref(RefKind::Head, &renamed)?
    {
        let here = source.location();
        let at = |id| {
            cache
                .and_then(|c| c.catalogued(id))
                .or_else(|| repo.read_snapshot(id).ok())
        };
        if at(&h).is_some_and(|s| s.location == here) {
            name = renamed;
            head = Some(h);
        }
    }
    let Some(head) = head else {
        return Ok(name);
    };
    let snap = match cache.and_then(|c| c.catalogued(&head)) {
        Some(s) => s,
        // An unreadable head is the backup's to report (it reads the
        // folder whole then).
        None => match repo.read_snapshot(&head) {
            Ok(s) => s,
            Err(_) => return Ok(name),
        },
    };
    let here = source.location();
    if snap.location == here {
        return Ok(name);
    }
    let parent = source
        .root()
        .parent()
        .and_then(|p| p.file_name())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "other".into());
    let other = belay_store::repo::sanitize_ref_name(&format!("{parent}-{name}"));
    bail!(
        "the history {name:?} belongs to {} (this is {here}): give --name {other} (or any new name) to start a history for this folder, or --name {name} to continue that one",
        snap.location
    )
}

/// Back up the folder `dir`.
pub fn backup_folder(
    repo: &Repo,
    dir: &Path,
    opts: &BackupOptions,
    p: &dyn Progress,
) -> Result<BackupResult> {
    let started = Instant::now();
    let mut source = DirSource::new(dir, opts.excludes.clone(), opts.skip_unreadable)
        .with_context(|| format!("cannot back up {}", dir.display()))?;
    source.skip_path(repo.root());
    // The local cache makes an unchanged re-backup read no parent trees;
    // without it (BELAY_NO_CACHE, or it cannot be opened) backup is slower.
    let cache = Cache::open_default(repo);
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => folder_name(repo, cache.as_ref(), &source)?,
    };
    let sopts = StoreBackupOptions {
        skip_unreadable: opts.skip_unreadable,
        skip_if_unchanged: !opts.allow_empty,
        ..Who::now(backup_meta(opts)?).snapshot(&name, opts.message.clone(), Vec::new())
    };
    let bar = p.bar("backup", false);
    let known = cache.as_ref().map(|c| c as &dyn KnownFiles);
    let result = backup::backup_with(repo, &source, &sopts, known, &*bar);
    bar.finish();
    let report = result?;
    let symlinks = report.summary.symlinks;
    Ok(BackupResult::new(
        report,
        name,
        started.elapsed().as_secs_f64(),
        BackupFrom::Folder { symlinks },
    ))
}
