//! `belay export` and `belay import`: one snapshot as one .zip / .tar /
//! .tar.zst file and back (the work is in `belay_store::archive`).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Ctx, hostname, now_ns, resolve_spec, username};

use anyhow::{Context, Result, anyhow, bail};
use belay_store::Repo;
use belay_store::archive::export::{self, ExportOptions, Output, Selection};
use belay_store::archive::import::ArchiveSource;
use belay_store::archive::{Format, MANIFEST_NAME};
use belay_store::backup::{self, BackupOptions};
use belay_store::path as bpath;
use serde_json::json;

use crate::args::{ExportArgs, ImportArgs};
use crate::output::{self, print_json};
use crate::progress::Progress;
use belay_core::backup::parse_meta;

fn parse_format(s: &str) -> Result<Format> {
    Format::parse(s).ok_or_else(|| anyhow!("--format {s:?}: expected zip, tar or tar.zst"))
}

pub(crate) fn export(ctx: &Ctx, repo: &Repo, a: ExportArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let to_stdout = a.output == Path::new("-");
    let format = match (&a.format, to_stdout) {
        (Some(f), _) => parse_format(f)?,
        (None, true) => Format::Tar,
        (None, false) => Format::from_name(&a.output).ok_or_else(|| {
            anyhow!(
                "{}: cannot tell the format from the name; end it in .zip, .tar or .tar.zst, or give --format",
                a.output.display()
            )
        })?,
    };
    let (id, path, entry) = resolve_spec(repo, &a.spec)?;
    let snap = repo.read_snapshot(&id)?;
    let what = Selection {
        id: &id,
        snapshot: &snap,
        path: &path,
        entry: &entry,
    };
    let opts = ExportOptions {
        format,
        manifest: !a.no_manifest,
        exported: jiff::Timestamp::now().to_string(),
    };
    let progress = Progress::new(ctx.quiet || ctx.json, "export");
    let report = if to_stdout {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        let r = export::export(repo, &what, &opts, Output::Stream(&mut lock), &progress);
        progress.finish();
        let r = r?;
        lock.flush()?;
        r
    } else {
        if a.output.exists() && !a.force {
            bail!(
                "{} exists; choose another name or pass --force to replace it",
                a.output.display()
            );
        }
        // Written under a temporary name beside the target and renamed at
        // the end: a failed export leaves nothing behind.
        let dir = match a.output.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".belay-export-")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot write into {}", dir.display()))?;
        let r = export::export(
            repo,
            &what,
            &opts,
            Output::File(tmp.as_file_mut()),
            &progress,
        );
        progress.finish();
        let r = r?;
        tmp.as_file().sync_all()?;
        if a.force {
            tmp.persist(&a.output)?;
        } else {
            tmp.persist_noclobber(&a.output).map_err(|e| {
                anyhow!("{}: {}; nothing was replaced", a.output.display(), e.error)
            })?;
        }
        r
    };
    let size = if to_stdout {
        None
    } else {
        std::fs::metadata(&a.output).ok().map(|m| m.len())
    };
    if ctx.json {
        print_json(&json!({
            "snapshot": id.to_hex(),
            "source": snap.source,
            "path": bpath::display(&path),
            "output": a.output,
            "format": format.name(),
            "manifest": !a.no_manifest,
            "files": report.files,
            "dirs": report.dirs,
            "symlinks": report.symlinks,
            "bytes": report.bytes,
            "archive_bytes": size,
            "seconds": started.elapsed().as_secs_f64(),
        }))?;
    } else if !to_stdout {
        ctx.info(format!(
            "exported {} of {} to {} ({}): {} files, {} dirs, {} symlinks, {} of content, {} on disk{}",
            id.short(),
            snap.source,
            a.output.display(),
            format.name(),
            report.files,
            report.dirs,
            report.symlinks,
            output::size(report.bytes),
            output::size(size.unwrap_or(0)),
            if a.no_manifest {
                String::new()
            } else {
                format!(", with {MANIFEST_NAME}")
            }
        ));
    }
    Ok(())
}

pub(crate) fn import(ctx: &Ctx, repo: &Repo, a: ImportArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let format = a.format.as_deref().map(parse_format).transpose()?;
    let source = ArchiveSource::open(&a.file, format)?;
    let manifest = source.manifest();
    let name = match (&a.name, manifest) {
        (Some(n), _) => n.clone(),
        (None, Some(m)) if !m.source.is_empty() => m.source.clone(),
        (None, _) => belay_store::repo::default_source_name(&source),
    };
    let file_name = if a.file == Path::new("-") {
        "-".to_string()
    } else {
        a.file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut meta = parse_meta(&a.meta)?;
    let mut message = a.message.clone();
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
    let opts = BackupOptions {
        name: name.clone(),
        message: message.unwrap_or_else(|| format!("imported from {file_name}")),
        meta,
        host: hostname(),
        user: username(),
        time_ns: now_ns(),
        skip_unreadable: false,
        skip_if_unchanged: false,
    };
    let progress = Progress::new(ctx.quiet || ctx.json, "import");
    let cache = belay_store::cache::Cache::open_default(repo);
    let known = cache
        .as_ref()
        .map(|c| c as &dyn belay_store::backup::KnownFiles);
    let result = backup::backup_with(repo, &source, &opts, known, &progress);
    progress.finish();
    let report = result.context("nothing was imported")?;
    let s = &report.summary;
    let verified = source.manifest().is_some();
    let doc = json!({
        "snapshot": report.snapshot.to_hex(),
        "parent": report.parent.map(|p| p.to_hex()),
        "source": name,
        "file": a.file,
        "format": source.format().name(),
        "manifest": verified,
        "original_snapshot": source.manifest().map(|m| m.snapshot.clone()),
        "files": s.files,
        "dirs": s.dirs,
        "symlinks": s.symlinks,
        "bytes": s.bytes,
        "bytes_added": s.bytes_added,
        "objects_added": s.objects_added,
        "seconds": started.elapsed().as_secs_f64(),
    });
    crate::journal::note(&doc);
    if ctx.json {
        print_json(&doc)?;
    } else {
        ctx.info(format!(
            "snapshot {} saved for {name} from {file_name} ({}){}",
            report.snapshot.short(),
            source.format().name(),
            report
                .parent
                .map(|p| format!(", parent {}", p.short()))
                .unwrap_or_default()
        ));
        ctx.info(format!(
            "  {} files, {} dirs, {} symlinks, {}; added {} in {} objects; {}",
            s.files,
            s.dirs,
            s.symlinks,
            output::size(s.bytes),
            output::size(s.bytes_added),
            s.objects_added,
            if verified {
                format!(
                    "every file matched {MANIFEST_NAME} (of snapshot {})",
                    source.manifest().map(|m| &m.snapshot[..12]).unwrap_or("")
                )
            } else {
                "no belay manifest: a plain archive".to_string()
            }
        ));
    }
    if let Some(c) = &cache
        && let Err(e) = c.index_snapshot(repo, &report.snapshot)
    {
        ctx.warn(format!("{e}"));
    }
    Ok(())
}
