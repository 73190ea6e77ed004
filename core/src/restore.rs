//! `restore`: a snapshot (or a path of it) into a folder or onto a board,
//! from the target as the user gave it.

use std::path::PathBuf;
use std::time::Instant;

use belay_store::path as bpath;
use belay_store::restore;
use belay_store::tree::TreeEntry;
use belay_store::{ObjectId, Repo, rev, walk};
use belay_transport::Location;
use belay_transport::dir::DirSink;
use serde::Serialize;

use crate::board::{self, BoardNames, BoardRestore, BoardRestoreOptions};
use crate::error::{Error, Result, ResultExt, bail};
use crate::progress::Progress;
use crate::who::Who;

/// Resolve `REV[:PATH]` to the snapshot id and the entry at PATH (the root
/// directory when there is no path).
pub fn resolve_spec(repo: &Repo, spec: &str) -> Result<(ObjectId, Vec<u8>, TreeEntry)> {
    let (r, p) = rev::split_path(spec);
    let id = rev::resolve(repo, r)?;
    let snap = repo.read_snapshot(&id)?;
    let path = p.map(bpath::parse_user_path).unwrap_or_default();
    let Some(entry) = walk::lookup(repo, &snap.tree, &path)? else {
        bail!(
            "{}: no such path in snapshot {}",
            bpath::display_short(&path),
            id.short()
        );
    };
    Ok((id, path, entry))
}

/// `--include` globs: a glob with a `/` matches the whole path relative to
/// the restore root; one without also matches any file name.
pub fn include_matcher(globs: &[String]) -> Result<Option<impl Fn(&[u8]) -> bool + use<>>> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut full = globset::GlobSetBuilder::new();
    let mut base = globset::GlobSetBuilder::new();
    for g in globs {
        let pattern = g.trim_start_matches('/');
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| Error::invalid(format!("invalid --include glob {g:?}: {e}")))?;
        if pattern.contains('/') {
            full.add(glob);
        } else {
            full.add(glob.clone());
            base.add(glob);
        }
    }
    let built = |b: globset::GlobSetBuilder| b.build().map_err(|e| Error::invalid(e.to_string()));
    let full = built(full)?;
    let base = built(base)?;
    Ok(Some(move |p: &[u8]| {
        let s = String::from_utf8_lossy(p);
        let name = s.rsplit('/').next().unwrap_or(&s);
        full.is_match(s.as_ref()) || base.is_match(name)
    }))
}

/// What a restore is asked to do (the flags of `belay restore`).
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// `REV[:PATH]`.
    pub spec: String,
    pub includes: Vec<String>,
    pub dry_run: bool,
    /// Folders: write into a folder that is not empty.
    pub force: bool,
    /// Boards: remove what the snapshot does not hold.
    pub delete: bool,
    /// Boards: no confirmation.
    pub yes: bool,
    /// Boards: save the board's state first.
    pub safety_snapshot: bool,
    pub names: BoardNames,
}

/// One entry a dry run into a folder would write.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedFile {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
}

/// A dry run into a folder.
#[derive(Clone, Debug, Serialize)]
pub struct FolderRestorePlan {
    #[serde(serialize_with = "crate::json::id")]
    pub snapshot: ObjectId,
    pub dry_run: bool,
    pub entries: Vec<PlannedFile>,
}

/// A restore into a folder.
#[derive(Clone, Debug, Serialize)]
pub struct FolderRestored {
    #[serde(serialize_with = "crate::json::id")]
    pub snapshot: ObjectId,
    pub target: PathBuf,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// What a restore did; `--json` prints it as it is.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum RestoreResult {
    FolderPlan(FolderRestorePlan),
    Folder(FolderRestored),
    Board(BoardRestore),
}

/// Restore `opts.spec` to `target`.
pub fn restore(
    repo: &Repo,
    target: &Location,
    opts: &RestoreOptions,
    p: &dyn Progress,
) -> Result<RestoreResult> {
    let (id, path, entry) = resolve_spec(repo, &opts.spec)?;
    let matcher = include_matcher(&opts.includes)?;
    let include = matcher.as_ref().map(|m| m as &dyn Fn(&[u8]) -> bool);
    let target = match target {
        Location::Dir(p) => p,
        Location::Serial { port, baud } => {
            let bopts = BoardRestoreOptions {
                port: port.clone(),
                baud: *baud,
                snapshot: id,
                path,
                entry,
                include,
                delete: opts.delete,
                dry_run: opts.dry_run,
                yes: opts.yes,
                safety_snapshot: opts.safety_snapshot,
                names: opts.names.clone(),
                who: Who::now(Vec::new()),
            };
            return Ok(RestoreResult::Board(board::restore_board(repo, &bopts, p)?));
        }
    };
    let started = Instant::now();
    let planned = restore::plan(repo, &entry, include)?;
    if opts.dry_run {
        return Ok(RestoreResult::FolderPlan(FolderRestorePlan {
            snapshot: id,
            dry_run: true,
            entries: planned
                .iter()
                .map(|e| PlannedFile {
                    path: bpath::display(&e.path),
                    kind: e.entry.node.kind_name(),
                    size: e.entry.node.size(),
                })
                .collect(),
        }));
    }
    if !opts.force {
        match std::fs::read_dir(target) {
            Ok(mut it) => {
                if it.next().is_some() {
                    bail!(
                        "{} is not empty; restore into an empty or new folder, or pass --force to overwrite files of the same name",
                        target.display()
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => bail!("{}: {e}", target.display()),
        }
    } else if target.exists() && !target.is_dir() {
        bail!("{} exists and is not a directory", target.display());
    }
    let sink =
        DirSink::new(target).with_context(|| format!("cannot create {}", target.display()))?;
    let bar = p.bar("restore", false);
    let result = restore::restore(repo, &planned, &sink, &*bar);
    bar.finish();
    let r = result?;
    Ok(RestoreResult::Folder(FolderRestored {
        snapshot: id,
        target: target.clone(),
        files: r.files,
        dirs: r.dirs,
        symlinks: r.symlinks,
        bytes: r.bytes,
        seconds: started.elapsed().as_secs_f64(),
    }))
}
