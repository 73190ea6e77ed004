//! `belay export` and `belay import`: parse, call `belay_core::archive`,
//! print.

use std::path::Path;

use super::Ctx;

use anyhow::{Result, anyhow};
use belay_core::archive::{ExportOptions, ExportTo, ImportOptions};
use belay_store::Repo;
use belay_store::archive::{Format, MANIFEST_NAME};

use crate::args::{ExportArgs, ImportArgs};
use crate::output::{self, print_json};

fn parse_format(s: &str) -> Result<Format> {
    Format::parse(s).ok_or_else(|| anyhow!("--format {s:?}: expected zip, tar or tar.zst"))
}

pub(crate) fn export(ctx: &Ctx, repo: &Repo, a: ExportArgs) -> Result<()> {
    let to_stdout = a.output == Path::new("-");
    let format = a.format.as_deref().map(parse_format).transpose()?;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let to = if to_stdout {
        ExportTo::Stream(&mut lock)
    } else {
        ExportTo::File {
            path: a.output.clone(),
            force: a.force,
        }
    };
    let opts = ExportOptions {
        spec: a.spec.clone(),
        to,
        format,
        manifest: !a.no_manifest,
    };
    let r = belay_core::archive::export(repo, opts, ctx)?;
    drop(lock);
    if ctx.json {
        print_json(&r)?;
    } else if !to_stdout {
        ctx.info(format!(
            "exported {} of {} to {} ({}): {} files, {} dirs, {} symlinks, {} of content, {} on disk{}",
            r.snapshot.short(),
            r.source,
            r.output.display(),
            r.format,
            r.files,
            r.dirs,
            r.symlinks,
            output::size(r.bytes),
            output::size(r.archive_bytes.unwrap_or(0)),
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
    let opts = ImportOptions {
        file: a.file.clone(),
        format: a.format.as_deref().map(parse_format).transpose()?,
        name: a.name.clone(),
        message: a.message.clone(),
        meta: a.meta.clone(),
    };
    let r = belay_core::archive::import(repo, &opts, ctx)?;
    let doc = serde_json::to_value(&r)?;
    crate::journal::note(&doc);
    if ctx.json {
        print_json(&doc)?;
    } else {
        ctx.info(format!(
            "snapshot {} saved for {} from {} ({}){}",
            r.snapshot.short(),
            r.source,
            r.file_name,
            r.format,
            r.parent
                .map(|p| format!(", parent {}", p.short()))
                .unwrap_or_default()
        ));
        ctx.info(format!(
            "  {} files, {} dirs, {} symlinks, {}; added {} in {} objects; {}",
            r.files,
            r.dirs,
            r.symlinks,
            output::size(r.bytes),
            output::size(r.bytes_added),
            r.objects_added,
            if r.manifest {
                format!(
                    "every file matched {MANIFEST_NAME} (of snapshot {})",
                    r.original_snapshot
                        .as_deref()
                        .map(|s| &s[..12])
                        .unwrap_or("")
                )
            } else {
                "no belay manifest: a plain archive".to_string()
            }
        ));
    }
    Ok(())
}
