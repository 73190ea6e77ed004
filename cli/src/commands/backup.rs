//! `belay backup` for folders (boards: `crate::board`).

use super::{Ctx, hostname, now_ns, username};

use anyhow::{Context, Result, anyhow, bail};
use belay_store::Repo;
use belay_store::backup::{self, BackupOptions};
use belay_store::snapshot::META_EXCLUDE;
use belay_transport::Location;
use belay_transport::dir::DirSource;
use serde_json::json;

use crate::args::BackupArgs;
use crate::output::{self, print_json};
use crate::progress::Progress;

pub(crate) fn parse_meta(items: &[String]) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow!("--meta {kv:?}: expected KEY=VALUE"))?;
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
fn backup_meta(a: &BackupArgs) -> Result<Vec<(String, String)>> {
    let mut meta = parse_meta(&a.meta)?;
    if !a.excludes.is_empty() {
        if let Some(g) = a.excludes.iter().find(|g| g.contains('\n')) {
            bail!("--exclude {g:?}: a glob cannot contain a line break");
        }
        meta.push((META_EXCLUDE.to_string(), a.excludes.join("\n")));
    }
    Ok(meta)
}

/// Ctrl-C, SIGTERM and SIGHUP end a folder backup with one line and the
/// usual exit status (130 for Ctrl-C), removing its session file first (a
/// signal runs no destructor). Nothing is committed after that: an
/// interrupted backup is as safe as a crashed one. Called before any
/// thread starts (see [`crate::on_signals`]).
fn end_on_signals() {
    crate::on_signals(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP], |sig| {
        belay_store::session::remove_own_files();
        let name = match sig {
            libc::SIGINT => "Ctrl-C",
            libc::SIGTERM => "SIGTERM",
            _ => "SIGHUP",
        };
        eprintln!("error: backup interrupted by {name}: no snapshot was saved");
        std::process::exit(128 + sig);
    });
}

/// The history a folder goes into without `--name`: its last component,
/// unless a folder elsewhere already has a history under that name (two
/// `proj` folders, every CircuitPython drive's `CIRCUITPY`): continuing it
/// would compare the two and mix their snapshots, so the user chooses.
fn folder_name(
    repo: &Repo,
    cache: Option<&belay_store::cache::Cache>,
    source: &DirSource,
) -> Result<String> {
    use belay_store::source::Source;
    let mut name = belay_store::repo::default_source_name(source);
    let mut head = repo.read_ref(belay_store::repo::RefKind::Head, &name)?;
    // A history renamed with `belay rename` continues under its new name.
    if head.is_none()
        && let Some(renamed) = belay_store::rename::renamed_to(repo, &name)
        && let Some(h) = repo.read_ref(belay_store::repo::RefKind::Head, &renamed)?
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

pub(crate) fn backup(ctx: &Ctx, repo: &Repo, a: BackupArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let location = Location::parse(&a.source).map_err(|e| anyhow!("{e}"))?;
    let dir = match location {
        Location::Dir(p) => p,
        Location::Serial { port, baud } => {
            let who = crate::board::Who {
                meta: backup_meta(&a)?,
                host: hostname(),
                user: username(),
                time_ns: now_ns(),
            };
            return crate::board::backup(ctx, repo, &a, &port, baud, who);
        }
    };
    end_on_signals();
    let mut source = DirSource::new(&dir, a.excludes.clone(), a.skip_unreadable)
        .with_context(|| format!("cannot back up {}", dir.display()))?;
    source.skip_path(repo.root());
    // The local cache makes an unchanged re-backup read no parent trees;
    // without it (BELAY_NO_CACHE, or it cannot be opened) backup is slower.
    let cache = belay_store::cache::Cache::open_default(repo);
    let name = match &a.name {
        Some(n) => n.clone(),
        None => folder_name(repo, cache.as_ref(), &source)?,
    };
    let opts = BackupOptions {
        name: name.clone(),
        message: a.message.clone(),
        meta: backup_meta(&a)?,
        host: hostname(),
        user: username(),
        time_ns: now_ns(),
        skip_unreadable: a.skip_unreadable,
        skip_if_unchanged: !a.allow_empty,
    };
    let progress = Progress::new(ctx.quiet || ctx.json, "backup");
    let known = cache
        .as_ref()
        .map(|c| c as &dyn belay_store::backup::KnownFiles);
    let result = backup::backup_with(repo, &source, &opts, known, &progress);
    progress.finish();
    let report = result?;
    let s = &report.summary;
    let doc = json!({
        "unchanged": !report.committed,
        "snapshot": report.snapshot.to_hex(),
        "parent": report.parent.map(|p| p.to_hex()),
        "source": name,
        "files": s.files,
        "dirs": s.dirs,
        "symlinks": s.symlinks,
        "bytes": s.bytes,
        "files_read": s.files_read,
        "files_unchanged": report.files_unchanged,
        "objects_repaired": report.objects_repaired,
        "bytes_read": s.bytes_read,
        "bytes_added": s.bytes_added,
        "objects_added": s.objects_added,
        "warnings": report.warnings,
        "seconds": started.elapsed().as_secs_f64(),
    });
    crate::journal::note(&doc);
    if ctx.json {
        print_json(&doc)?;
    } else if !report.committed {
        ctx.info(format!(
            "no changes since snapshot {} of {name}: nothing saved (`--allow-empty` saves one anyway)",
            report.snapshot.short()
        ));
    } else {
        ctx.info(format!(
            "snapshot {} saved for {name}{}",
            report.snapshot.short(),
            report
                .parent
                .map(|p| format!(" (parent {})", p.short()))
                .unwrap_or_default()
        ));
        ctx.info(format!(
            "  {} files, {} dirs, {} in total; {} files read ({}), {} unchanged",
            s.files,
            s.dirs,
            output::size(s.bytes),
            s.files_read,
            output::size(s.bytes_read),
            report.files_unchanged
        ));
        ctx.info(format!(
            "  added {} in {} objects in {:.2}s",
            output::size(s.bytes_added),
            s.objects_added,
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}
