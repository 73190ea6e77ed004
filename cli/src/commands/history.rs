//! `belay log` and `belay show`.

use super::Ctx;
use crate::output::outln;
use std::io::Write;

use anstyle::AnsiColor;
use anyhow::Result;
use belay_core::history::{LogOptions, restore_role};
use belay_store::Repo;

use crate::args::LogArgs;
use crate::output::{self, print_json};

pub(crate) fn log(ctx: &Ctx, repo: &Repo, a: LogArgs) -> Result<()> {
    let opts = LogOptions {
        rev: a.rev.clone(),
        source: a.source.clone(),
        since: a.since.clone(),
        until: a.until.clone(),
        paths: a.paths.clone(),
        max_count: a.max_count,
    };
    let entries = belay_core::history::log(repo, &opts, ctx)?;
    if ctx.json {
        print_json(&entries)?;
        return Ok(());
    }
    let mut out = crate::pager::Out::new(ctx.color, ctx.pager);
    let id_style = AnsiColor::Yellow.on_default();
    let head_style = AnsiColor::Cyan.on_default().bold();
    let tag_style = AnsiColor::Yellow.on_default().bold();
    let gone_style = AnsiColor::Red.on_default();
    for e in &entries {
        let id = &e.id;
        let Some(s) = &e.snapshot else {
            writeln!(
                out,
                "{} {}",
                out.paint(id_style, &format!("snapshot {}", id.to_hex())),
                out.paint(gone_style, "(forgotten)")
            )?;
            continue;
        };
        let mut decor: Vec<String> = Vec::new();
        for h in &e.heads {
            decor.push(out.paint(head_style, &format!("HEAD -> {h}")));
        }
        for t in e.summary.iter().flat_map(|s| &s.tags) {
            decor.push(out.paint(tag_style, &format!("tag: {t}")));
        }
        // In the trash until gc (`belay undo-forget` brings it back).
        if e.forgotten {
            decor.push(out.paint(gone_style, "forgotten"));
        }
        if let Some(role) = restore_role(s) {
            decor.push(role.to_string());
        }
        let decor = if decor.is_empty() {
            String::new()
        } else {
            format!(
                " {}{}{}",
                out.paint(id_style, "("),
                decor.join(&out.paint(id_style, ", ")),
                out.paint(id_style, ")")
            )
        };
        if a.oneline {
            let msg = s.message.lines().next().unwrap_or("");
            writeln!(
                out,
                "{}{} {} {} {}",
                out.paint(id_style, &id.short()),
                decor,
                output::time_ns(s.time_ns),
                s.source,
                msg
            )?;
        } else {
            writeln!(
                out,
                "{}{}",
                out.paint(id_style, &format!("snapshot {}", id.to_hex())),
                decor
            )?;
            writeln!(out, "Source: {} ({})", s.source, s.location)?;
            writeln!(out, "Date:   {}", output::time_ns(s.time_ns))?;
            writeln!(out, "Host:   {}", s.host)?;
            writeln!(
                out,
                "Files:  {} ({}), {} added",
                s.summary.files,
                output::size(s.summary.bytes),
                output::size(s.summary.bytes_added)
            )?;
            if !s.message.is_empty() {
                writeln!(out)?;
                for line in s.message.lines() {
                    writeln!(out, "    {line}")?;
                }
            }
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}

pub(crate) fn show(ctx: &Ctx, repo: &Repo, r: &str) -> Result<()> {
    let shown = belay_core::history::show(repo, r, ctx)?;
    if ctx.json {
        print_json(&shown)?;
        return Ok(());
    }
    let (id, s, tags) = (&shown.summary.id, &shown.snapshot, &shown.summary.tags);
    outln!("snapshot {}", id.to_hex())?;
    if !tags.is_empty() {
        outln!("Tags:     {}", tags.join(", "))?;
    }
    for p in &s.parents {
        let state = if repo.is_live(p) { "" } else { " (forgotten)" };
        outln!("Parent:   {}{state}", p.to_hex())?;
    }
    outln!("Source:   {}", s.source)?;
    outln!("Location: {}", s.location)?;
    outln!("Date:     {}", output::time_ns(s.time_ns))?;
    if s.user.is_empty() {
        outln!("Host:     {}", s.host)?;
    } else {
        outln!("Host:     {} (user {})", s.host, s.user)?;
    }
    outln!("Tree:     {}", s.tree.to_hex())?;
    outln!(
        "Files:    {} files, {} dirs, {} symlinks, {}",
        s.summary.files,
        s.summary.dirs,
        s.summary.symlinks,
        output::size(s.summary.bytes)
    )?;
    outln!(
        "Backup:   read {} files ({}), added {} objects ({})",
        s.summary.files_read,
        output::size(s.summary.bytes_read),
        s.summary.objects_added,
        output::size(s.summary.bytes_added)
    )?;
    for (k, v) in &s.meta {
        outln!("Meta:     {k}={v}")?;
    }
    for (k, v) in &s.device {
        outln!("Device:   {k}: {v}")?;
    }
    if !s.message.is_empty() {
        outln!()?;
        for line in s.message.lines() {
            outln!("    {line}")?;
        }
    }
    Ok(())
}
