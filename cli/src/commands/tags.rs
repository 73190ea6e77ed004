//! `belay tag` and `belay tags`: parse, call `belay_core::tags`, print.

use super::Ctx;
use std::io::Write;

use anyhow::Result;
use belay_store::Repo;
use serde_json::json;

use crate::args::TagArgs;
use crate::output::{self, print_json};

pub(crate) fn tag(ctx: &Ctx, repo: &Repo, a: TagArgs) -> Result<()> {
    let Some(name) = a.name else {
        return list(ctx, repo);
    };
    if a.delete {
        let t = belay_core::tags::delete(repo, &name)?;
        crate::journal::note(
            &json!({"tag": name, "action": "delete", "snapshot": t.snapshot.to_hex()}),
        );
        if ctx.json {
            print_json(&t)?;
        } else {
            ctx.info(format!("deleted tag {name} (was {})", t.snapshot.short()));
        }
        return Ok(());
    }
    let message = a.message.clone().unwrap_or_default();
    let t = belay_core::tags::tag(repo, &name, a.rev.as_deref(), &message, a.force)?;
    let id = t.snapshot;
    crate::journal::note(&json!({
        "tag": name,
        "action": if t.previous.is_some() { "move" } else { "create" },
        "snapshot": id.to_hex(),
        "previous": t.previous.map(|p| p.to_hex()),
        "source": t.source,
    }));
    if ctx.json {
        print_json(&t)?;
    } else {
        let what = format!(
            "{} ({}, {})",
            id.short(),
            t.source.as_deref().unwrap_or_default(),
            output::time_ns(t.time_ns.unwrap_or_default())
        );
        match t.previous {
            Some(p) if p == id => ctx.info(format!("tag {name} already on {what}")),
            Some(p) => ctx.info(format!("moved tag {name} from {} to {what}", p.short())),
            None => ctx.info(format!("tagged {what} as {name}")),
        }
    }
    Ok(())
}

pub(crate) fn list(ctx: &Ctx, repo: &Repo) -> Result<()> {
    let all = belay_core::tags::list(repo)?;
    if ctx.json {
        print_json(&all)?;
        return Ok(());
    }
    let width = all
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for t in &all {
        let (source, when) = match (&t.source, t.time_ns) {
            (Some(s), Some(ns)) => (s.clone(), output::time_ns(ns)),
            _ => ("?".to_string(), "(forgotten)".to_string()),
        };
        let msg = t.message.lines().next().unwrap_or("");
        writeln!(
            out,
            "{:width$}  {}  {}  {}{}",
            t.name,
            t.snapshot.short(),
            source,
            when,
            if msg.is_empty() {
                String::new()
            } else {
                format!("  {msg}")
            }
        )?;
    }
    Ok(())
}
