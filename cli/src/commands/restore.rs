//! `belay restore` into folders (boards: `crate::board`).

use super::{Ctx, hostname, now_ns, resolve_spec, username};
use crate::output::outln;

use anyhow::{Context, Result, anyhow, bail};
use belay_store::Repo;
use belay_store::path as bpath;
use belay_store::restore::{self};
use belay_transport::Location;
use belay_transport::dir::DirSink;
use serde_json::json;

use crate::args::RestoreArgs;
use crate::output::{self, print_json};
use crate::progress::Progress;

/// `--include` globs: a glob with a `/` matches the whole path relative to
/// the restore root; one without also matches any file name.
pub(crate) fn include_matcher(globs: &[String]) -> Result<Option<impl Fn(&[u8]) -> bool>> {
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
            .with_context(|| format!("invalid --include glob {g:?}"))?;
        if pattern.contains('/') {
            full.add(glob);
        } else {
            full.add(glob.clone());
            base.add(glob);
        }
    }
    let full = full.build()?;
    let base = base.build()?;
    Ok(Some(move |p: &[u8]| {
        let s = String::from_utf8_lossy(p);
        let name = s.rsplit('/').next().unwrap_or(&s);
        full.is_match(s.as_ref()) || base.is_match(name)
    }))
}

pub(crate) fn restore(ctx: &Ctx, repo: &Repo, a: RestoreArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let target = match Location::parse(&a.to).map_err(|e| anyhow!("{e}"))? {
        Location::Dir(p) => p,
        Location::Serial { port, baud } => {
            let (id, path, entry) = resolve_spec(repo, &a.spec)?;
            let matcher = include_matcher(&a.includes)?;
            let who = crate::board::Who {
                meta: Vec::new(),
                host: hostname(),
                user: username(),
                time_ns: now_ns(),
            };
            let include = matcher.as_ref().map(|m| m as &dyn Fn(&[u8]) -> bool);
            return crate::board::restore(
                ctx, repo, &a, &port, baud, id, &path, &entry, include, who,
            );
        }
    };
    let (id, _path, entry) = resolve_spec(repo, &a.spec)?;
    let matcher = include_matcher(&a.includes)?;
    let planned = restore::plan(
        repo,
        &entry,
        matcher.as_ref().map(|m| m as &dyn Fn(&[u8]) -> bool),
    )?;
    if a.dry_run {
        if ctx.json {
            let arr: Vec<_> = planned
                .iter()
                .map(|p| json!({"path": bpath::display(&p.path), "type": p.entry.node.kind_name(), "size": p.entry.node.size()}))
                .collect();
            print_json(&json!({"snapshot": id.to_hex(), "dry_run": true, "entries": arr}))?;
        } else {
            for p in &planned {
                outln!("would restore {}", bpath::display(&p.path))?;
            }
            ctx.info(format!(
                "{} entries (dry run, nothing written)",
                planned.len()
            ));
        }
        return Ok(());
    }
    if !a.force {
        match std::fs::read_dir(&target) {
            Ok(mut it) => {
                if it.next().is_some() {
                    bail!(
                        "{} is not empty; restore into an empty or new folder, or pass --force to overwrite files of the same name",
                        target.display()
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow!("{}: {e}", target.display())),
        }
    } else if target.exists() && !target.is_dir() {
        bail!("{} exists and is not a directory", target.display());
    }
    let sink =
        DirSink::new(&target).with_context(|| format!("cannot create {}", target.display()))?;
    let progress = Progress::new(ctx.quiet || ctx.json, "restore");
    let result = restore::restore(repo, &planned, &sink, &progress);
    progress.finish();
    let r = result?;
    let doc = json!({
        "snapshot": id.to_hex(),
        "target": target,
        "files": r.files, "dirs": r.dirs, "symlinks": r.symlinks, "bytes": r.bytes,
        "seconds": started.elapsed().as_secs_f64(),
    });
    crate::journal::note(&doc);
    if ctx.json {
        print_json(&doc)?;
    } else {
        ctx.info(format!(
            "restored {} files, {} dirs, {} symlinks ({}) from {} to {} in {:.2}s",
            r.files,
            r.dirs,
            r.symlinks,
            output::size(r.bytes),
            id.short(),
            target.display(),
            started.elapsed().as_secs_f64()
        ));
    }
    if ctx.verbose > 0 {
        eprintln!("verified {} bytes against the snapshot", r.bytes);
    }
    Ok(())
}
