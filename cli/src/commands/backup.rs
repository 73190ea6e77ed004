//! `belay backup`: parse, call `belay_core::backup`, print.

use super::Ctx;

use anyhow::{Result, anyhow};
use belay_core::backup::{BackupFrom, BackupOptions, BackupResult};
use belay_store::Repo;
use belay_transport::Location;

use crate::args::BackupArgs;
use crate::output::{self, print_json};

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

/// The library's options from `belay backup`'s flags.
pub(crate) fn options(a: &BackupArgs) -> BackupOptions {
    BackupOptions {
        name: a.name.clone(),
        message: a.message.clone(),
        meta: a.meta.clone(),
        excludes: a.excludes.clone(),
        skip_unreadable: a.skip_unreadable,
        allow_empty: a.allow_empty,
        deflate: if a.no_deflate {
            Some(false)
        } else if a.deflate {
            Some(true)
        } else {
            None
        },
        hash: !a.no_hash,
        names: crate::config::get().board_names(),
    }
}

pub(crate) fn backup(ctx: &Ctx, repo: &Repo, a: BackupArgs) -> Result<()> {
    let location = Location::parse(&a.source).map_err(|e| anyhow!("{e}"))?;
    if let Location::Dir(_) = location {
        end_on_signals();
    }
    let r = belay_core::backup(repo, &location, &options(&a), ctx)?;
    let doc = serde_json::to_value(&r)?;
    crate::journal::note(&doc);
    if ctx.json {
        print_json(&doc)?;
    } else {
        print(ctx, &r);
    }
    Ok(())
}

fn print(ctx: &Ctx, r: &BackupResult) {
    let name = &r.source;
    let board = match &r.from {
        BackupFrom::Board(b) => Some(b),
        BackupFrom::Folder { .. } => None,
    };
    let label = board.map(|b| format!(" ({})", b.board)).unwrap_or_default();
    if !r.committed() {
        ctx.info(format!(
            "no changes since snapshot {} of {name}{label}: nothing saved (`--allow-empty` saves one anyway)",
            r.snapshot.short()
        ));
        return;
    }
    let parent = |open: &str, close: &str| {
        r.parent
            .map(|p| format!("{open}parent {}{close}", p.short()))
            .unwrap_or_default()
    };
    match board {
        Some(b) => {
            ctx.info(format!(
                "snapshot {} saved for {name}{label}{}",
                r.snapshot.short(),
                parent(", ", "")
            ));
            ctx.info(format!(
                "  {} files, {} dirs, {} in total; {} files pulled ({}), {} unchanged",
                r.files,
                r.dirs,
                output::size(r.bytes),
                r.files_read,
                output::size(b.bytes_transferred),
                r.files_unchanged
            ));
            ctx.info(format!(
                "  {} on the line, added {} in {} objects, {:.2}s",
                output::size(b.wire_bytes),
                output::size(r.bytes_added),
                r.objects_added,
                r.seconds
            ));
        }
        None => {
            ctx.info(format!(
                "snapshot {} saved for {name}{}",
                r.snapshot.short(),
                parent(" (", ")")
            ));
            ctx.info(format!(
                "  {} files, {} dirs, {} in total; {} files read ({}), {} unchanged",
                r.files,
                r.dirs,
                output::size(r.bytes),
                r.files_read,
                output::size(r.bytes_read),
                r.files_unchanged
            ));
            ctx.info(format!(
                "  added {} in {} objects in {:.2}s",
                output::size(r.bytes_added),
                r.objects_added,
                r.seconds
            ));
        }
    }
}
