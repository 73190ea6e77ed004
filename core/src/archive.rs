//! `export` and `import`: one snapshot (or a path of it) as one .zip /
//! .tar / .tar.zst file and back (the format work is in
//! `belay_store::archive`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use belay_store::archive::Format;
use belay_store::archive::export::{self, ExportOptions as StoreExportOptions, Output, Selection};
use belay_store::archive::import::ArchiveSource;
use belay_store::backup::{self, KnownFiles};
use belay_store::cache::Cache;
use belay_store::path as bpath;
use belay_store::{ObjectId, Repo};
use serde::Serialize;

use crate::backup::parse_meta;
use crate::error::{Error, Result, ResultExt, bail};
use crate::progress::Progress;
use crate::restore::resolve_spec;
use crate::who::Who;

/// Where an export goes.
pub enum ExportTo<'a> {
    /// A file, written under a temporary name beside it and renamed at the
    /// end (a failed export leaves nothing behind); `force` replaces one
    /// that exists.
    File { path: PathBuf, force: bool },
    /// A stream (stdout): `tar` unless a format is given.
    Stream(&'a mut dyn Write),
}

/// What `export` is asked to do.
pub struct ExportOptions<'a> {
    /// `REV[:PATH]`.
    pub spec: String,
    pub to: ExportTo<'a>,
    /// `None`: from the file's name (a stream: tar).
    pub format: Option<Format>,
    /// Write `belay-manifest.json` into the archive.
    pub manifest: bool,
}

/// What `export` wrote; `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct ExportResult {
    #[serde(serialize_with = "crate::json::id")]
    pub snapshot: ObjectId,
    pub source: String,
    pub path: String,
    /// The file written (`-`: the stream).
    pub output: PathBuf,
    pub format: &'static str,
    pub manifest: bool,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// The archive's size on disk (none for a stream).
    pub archive_bytes: Option<u64>,
    pub seconds: f64,
}

/// Export `opts.spec` as one archive.
pub fn export(repo: &Repo, opts: ExportOptions, p: &dyn Progress) -> Result<ExportResult> {
    let started = Instant::now();
    let format = match (&opts.format, &opts.to) {
        (Some(f), _) => *f,
        (None, ExportTo::Stream(_)) => Format::Tar,
        (None, ExportTo::File { path, .. }) => match Format::from_name(path) {
            Some(f) => f,
            None => bail!(
                "{}: cannot tell the format from the name; end it in .zip, .tar or .tar.zst, or give --format",
                path.display()
            ),
        },
    };
    let (id, path, entry) = resolve_spec(repo, &opts.spec)?;
    let snap = repo.read_snapshot(&id)?;
    let what = Selection {
        id: &id,
        snapshot: &snap,
        path: &path,
        entry: &entry,
    };
    let sopts = StoreExportOptions {
        format,
        manifest: opts.manifest,
        exported: jiff::Timestamp::now().to_string(),
    };
    let bar = p.bar("export", false);
    let (report, output, archive_bytes) = match opts.to {
        ExportTo::Stream(out) => {
            let r = export::export(repo, &what, &sopts, Output::Stream(&mut *out), &*bar);
            bar.finish();
            let r = r?;
            out.flush()?;
            (r, PathBuf::from("-"), None)
        }
        ExportTo::File {
            path: output,
            force,
        } => {
            if output.exists() && !force {
                bail!(
                    "{} exists; choose another name or pass --force to replace it",
                    output.display()
                );
            }
            let dir = match output.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let mut tmp = tempfile::Builder::new()
                .prefix(".belay-export-")
                .tempfile_in(&dir)
                .with_context(|| format!("cannot write into {}", dir.display()))?;
            let r = export::export(repo, &what, &sopts, Output::File(tmp.as_file_mut()), &*bar);
            bar.finish();
            let r = r?;
            tmp.as_file().sync_all()?;
            if force {
                tmp.persist(&output).map_err(|e| Error::Io(e.error))?;
            } else if let Err(e) = tmp.persist_noclobber(&output) {
                bail!("{}: {}; nothing was replaced", output.display(), e.error);
            }
            let size = std::fs::metadata(&output).ok().map(|m| m.len());
            (r, output, size)
        }
    };
    Ok(ExportResult {
        snapshot: id,
        source: snap.source.clone(),
        path: bpath::display(&path),
        output,
        format: format.name(),
        manifest: opts.manifest,
        files: report.files,
        dirs: report.dirs,
        symlinks: report.symlinks,
        bytes: report.bytes,
        archive_bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What `import` is asked to do.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The archive (`-`: stdin).
    pub file: PathBuf,
    /// `None`: from the archive's name or what it says about itself.
    pub format: Option<Format>,
    /// The source name; by default the manifest's, else the file's name.
    pub name: Option<String>,
    pub message: Option<String>,
    /// `--meta KEY=VALUE`, as given.
    pub meta: Vec<String>,
}

/// What `import` saved; `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct ImportResult {
    #[serde(serialize_with = "crate::json::id")]
    pub snapshot: ObjectId,
    #[serde(serialize_with = "crate::json::opt_id")]
    pub parent: Option<ObjectId>,
    pub source: String,
    pub file: PathBuf,
    #[serde(skip)]
    pub file_name: String,
    pub format: &'static str,
    /// Whether the archive held a belay manifest (every file was checked
    /// against it).
    pub manifest: bool,
    /// The snapshot it was exported from (with a manifest).
    pub original_snapshot: Option<String>,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub bytes_added: u64,
    pub objects_added: u64,
    pub seconds: f64,
}

/// Import one archive as a snapshot.
pub fn import(repo: &Repo, opts: &ImportOptions, p: &dyn Progress) -> Result<ImportResult> {
    let started = Instant::now();
    let source = ArchiveSource::open(&opts.file, opts.format)?;
    let manifest = source.manifest();
    let name = match (&opts.name, manifest) {
        (Some(n), _) => n.clone(),
        (None, Some(m)) if !m.source.is_empty() => m.source.clone(),
        (None, _) => belay_store::repo::default_source_name(&source),
    };
    let file_name = if opts.file == Path::new("-") {
        "-".to_string()
    } else {
        opts.file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut meta = parse_meta(&opts.meta)?;
    let mut message = opts.message.clone();
    if let Some(m) = manifest {
        // The original snapshot's metadata, and where this one came from.
        for (k, v) in &m.meta {
            if !meta.iter().any(|(mk, _)| mk == k) {
                meta.push((k.clone(), v.clone()));
            }
        }
        meta.push(("import.snapshot".into(), m.snapshot.clone()));
        meta.push(("import.source".into(), m.source.clone()));
        meta.push(("import.time".into(), m.time.clone()));
        if !m.host.is_empty() {
            meta.push(("import.host".into(), m.host.clone()));
        }
        if message.is_none() && !m.message.is_empty() {
            message = Some(m.message.clone());
        }
    }
    meta.push(("import.file".into(), file_name.clone()));
    let message = message.unwrap_or_else(|| format!("imported from {file_name}"));
    let sopts = Who::now(meta).snapshot(&name, message, Vec::new());
    let bar = p.bar("import", false);
    let cache = Cache::open_default(repo);
    let known = cache.as_ref().map(|c| c as &dyn KnownFiles);
    let result = backup::backup_with(repo, &source, &sopts, known, &*bar);
    bar.finish();
    drop(bar);
    let report = result.with_context(|| "nothing was imported".into())?;
    if let Some(c) = &cache
        && let Err(e) = c.index_snapshot(repo, &report.snapshot)
    {
        p.warn(&format!("{e}"));
    }
    let s = &report.summary;
    Ok(ImportResult {
        snapshot: report.snapshot,
        parent: report.parent,
        source: name,
        file: opts.file.clone(),
        file_name,
        format: source.format().name(),
        manifest: source.manifest().is_some(),
        original_snapshot: source.manifest().map(|m| m.snapshot.clone()),
        files: s.files,
        dirs: s.dirs,
        symlinks: s.symlinks,
        bytes: s.bytes,
        bytes_added: s.bytes_added,
        objects_added: s.objects_added,
        seconds: started.elapsed().as_secs_f64(),
    })
}
