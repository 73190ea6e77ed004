//! `belay repair`: store again what the repository lacks from live
//! sources; exit code 3 when something is lost for good.

use super::Ctx;

use std::process::ExitCode;

use anyhow::Result;
use belay_store::Repo;
use belay_store::check::ReadData;

use crate::output::print_json;

pub(crate) fn repair(
    ctx: &Ctx,
    repo: &Repo,
    sources: &[String],
    read_data: bool,
) -> Result<ExitCode> {
    let read_data = if read_data {
        ReadData::All
    } else {
        ReadData::None
    };
    let r = belay_core::maintenance::repair(repo, sources, read_data, ctx)?;
    if ctx.json {
        print_json(&r)?;
    } else {
        ctx.info(format!(
            "{} objects missing or damaged; {} stored again from the sources ({} files read)",
            r.damaged, r.restored, r.files_read
        ));
        for l in &r.lost {
            let what = if l.path.is_empty() {
                "the whole snapshot"
            } else {
                &l.path
            };
            ctx.info(format!(
                "lost: {}@{}:{what} ({} object{} no source has)",
                if l.source.is_empty() { "?" } else { &l.source },
                l.snapshot.short(),
                l.objects.len(),
                if l.objects.len() == 1 { "" } else { "s" }
            ));
        }
        if r.damaged == 0 {
            ctx.info("nothing to repair");
        } else if r.lost.is_empty() {
            ctx.info("everything was repaired");
        }
    }
    if !r.lost.is_empty() {
        eprintln!(
            "error: {} file{} or director{} lost for good (no source holds them)",
            r.lost.len(),
            if r.lost.len() == 1 { "" } else { "s" },
            if r.lost.len() == 1 { "y" } else { "ies" }
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
