//! `belay repair`: store again what the repository lacks from live
//! sources; exit code 3 when something is lost for good.

use super::Ctx;

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use belay_store::Repo;
use belay_store::check::ReadData;
use belay_store::path;
use belay_store::repair::{self, RepairReport};
use belay_store::source::Source;
use belay_transport::Location;
use belay_transport::dir::DirSource;
use serde_json::json;

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
    let mut folders: Vec<DirSource> = Vec::new();
    let mut boards: Vec<(String, u32)> = Vec::new();
    for s in sources {
        match Location::parse(s).map_err(|e| anyhow!("{e}"))? {
            Location::Dir(p) => {
                let mut d = DirSource::new(&p, Vec::new(), true)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                d.skip_path(repo.root());
                folders.push(d);
            }
            Location::Serial { port, baud } => boards.push((port, baud)),
        }
    }
    let spinner = crate::progress::ObjectCounter::new(ctx, "repair");
    // Each board in its own session, nested so that every source is open
    // while repair runs.
    fn with_boards(
        ctx: &Ctx,
        boards: &[(String, u32)],
        open: &[&dyn Source],
        f: &mut dyn FnMut(&[&dyn Source]) -> Result<RepairReport>,
    ) -> Result<RepairReport> {
        match boards.split_first() {
            None => f(open),
            Some(((port, baud), rest)) => belay_core::board::with_source(port, *baud, ctx, |b| {
                let mut all = open.to_vec();
                all.push(b);
                with_boards(ctx, rest, &all, f)
            }),
        }
    }
    let folders: Vec<&dyn Source> = folders.iter().map(|f| f as &dyn Source).collect();
    let report = with_boards(ctx, &boards, &folders, &mut |all| {
        Ok(repair::repair(repo, all, read_data, &spinner)?)
    });
    spinner.finish();
    let r = report?;
    let lost_json: Vec<serde_json::Value> = r
        .lost
        .iter()
        .map(|l| {
            json!({
                "snapshot": l.snapshot.to_hex(),
                "source": l.source,
                "path": path::display(&l.path),
                "objects": l.objects.iter().map(|o| o.to_hex()).collect::<Vec<_>>(),
            })
        })
        .collect();
    if ctx.json {
        print_json(&json!({
            "ok": r.lost.is_empty(),
            "damaged": r.damaged,
            "restored": r.restored,
            "files_read": r.files_read,
            "lost": lost_json,
        }))?;
    } else {
        ctx.info(format!(
            "{} objects missing or damaged; {} stored again from the sources ({} files read)",
            r.damaged, r.restored, r.files_read
        ));
        for l in &r.lost {
            let what = if l.path.is_empty() {
                "the whole snapshot".to_string()
            } else {
                path::display(&l.path)
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
