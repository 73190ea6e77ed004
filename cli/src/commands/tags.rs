//! `belay tag` and `belay tags`: names for snapshots (refs/tags/NAME).

use super::Ctx;
use std::io::Write;

use anyhow::{Result, anyhow, bail};
use belay_store::repo::RefKind;
use belay_store::{Repo, rev, tags};
use serde_json::{Value, json};

use crate::args::TagArgs;
use crate::output::{self, print_json};

/// JSON of a tag: name, snapshot, source, time, message.
fn tag_json(repo: &Repo, t: &tags::Tag) -> Value {
    let snap = repo
        .has_object(&t.snapshot)
        .then(|| repo.read_snapshot(&t.snapshot).ok())
        .flatten();
    json!({
        "name": t.name,
        "snapshot": t.snapshot.to_hex(),
        "source": snap.as_ref().map(|s| s.source.clone()),
        "time": snap.as_ref().map(|s| output::rfc3339(s.time_ns)),
        "message": t.message,
        "forgotten": snap.is_none(),
    })
}

pub(crate) fn tag(ctx: &Ctx, repo: &Repo, a: TagArgs) -> Result<()> {
    let Some(name) = a.name else {
        return list(ctx, repo);
    };
    if a.delete {
        let t = tags::delete(repo, &name)?
            .ok_or_else(|| anyhow!("no tag named {name:?} (`belay tags` lists them)"))?;
        crate::journal::note(
            &json!({"tag": name, "action": "delete", "snapshot": t.snapshot.to_hex()}),
        );
        if ctx.json {
            print_json(&json!({"tag": name, "deleted": true, "snapshot": t.snapshot.to_hex()}))?;
        } else {
            ctx.info(format!("deleted tag {name} (was {})", t.snapshot.short()));
        }
        return Ok(());
    }
    belay_store::repo::validate_ref_name(&name)?;
    if repo.read_ref(RefKind::Head, &name)?.is_some() {
        bail!(
            "a source is named {name:?}: a tag of the same name would hide its latest snapshot in revisions; choose another name"
        );
    }
    let id = match &a.rev {
        Some(r) => rev::resolve(repo, r)?,
        None => rev::only_head(repo, &format!("belay tag {name}"))?,
    };
    let snap = repo.read_snapshot(&id)?;
    let message = a.message.clone().unwrap_or_default();
    let previous = tags::write(repo, &name, &id, &message, a.force)?;
    crate::journal::note(&json!({
        "tag": name,
        "action": if previous.is_some() { "move" } else { "create" },
        "snapshot": id.to_hex(),
        "previous": previous.map(|p| p.to_hex()),
        "source": snap.source,
    }));
    if ctx.json {
        let mut v = tag_json(
            repo,
            &tags::Tag {
                name: name.clone(),
                snapshot: id,
                message: message.trim_end().to_string(),
            },
        );
        let o = v.as_object_mut().unwrap();
        o.remove("forgotten");
        o.insert("tag".into(), json!(name));
        o.remove("name");
        o.insert("previous".into(), json!(previous.map(|p| p.to_hex())));
        print_json(&v)?;
    } else {
        let what = format!(
            "{} ({}, {})",
            id.short(),
            snap.source,
            output::time_ns(snap.time_ns)
        );
        match previous {
            Some(p) if p == id => ctx.info(format!("tag {name} already on {what}")),
            Some(p) => ctx.info(format!("moved tag {name} from {} to {what}", p.short())),
            None => ctx.info(format!("tagged {what} as {name}")),
        }
    }
    Ok(())
}

pub(crate) fn list(ctx: &Ctx, repo: &Repo) -> Result<()> {
    let all = tags::list(repo)?;
    if ctx.json {
        let arr: Vec<Value> = all.iter().map(|t| tag_json(repo, t)).collect();
        print_json(&Value::Array(arr))?;
        return Ok(());
    }
    let width = all
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for t in &all {
        let snap = repo
            .has_object(&t.snapshot)
            .then(|| repo.read_snapshot(&t.snapshot).ok())
            .flatten();
        let (source, when) = match &snap {
            Some(s) => (s.source.clone(), output::time_ns(s.time_ns)),
            None => ("?".to_string(), "(forgotten)".to_string()),
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
