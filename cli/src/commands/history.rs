//! `belay log` and `belay show`.

use super::Ctx;
use crate::output::outln;
use std::collections::BTreeMap;
use std::io::Write;

use anstyle::AnsiColor;
use anyhow::Result;
use belay_store::diff::PathFilter;
use belay_store::repo::RefKind;
use belay_store::{ObjectId, Repo, history, rev, timespec};
use serde_json::json;

use crate::args::LogArgs;
use crate::output::{self, print_json};

/// Tag names by snapshot id, and source names whose head is that id.
pub(crate) struct Decorations {
    tags: BTreeMap<ObjectId, Vec<String>>,
    heads: BTreeMap<ObjectId, Vec<String>>,
}

pub(crate) fn decorations(repo: &Repo) -> Result<Decorations> {
    let mut tags: BTreeMap<ObjectId, Vec<String>> = BTreeMap::new();
    let warn = &mut |w: String| eprintln!("warning: {w}");
    for (name, id) in repo.list_refs_reporting(RefKind::Tag, warn)? {
        tags.entry(id).or_default().push(name);
    }
    let mut heads: BTreeMap<ObjectId, Vec<String>> = BTreeMap::new();
    for (name, id) in repo.list_refs_reporting(RefKind::Head, warn)? {
        heads.entry(id).or_default().push(name);
    }
    Ok(Decorations { tags, heads })
}

pub(crate) fn log(ctx: &Ctx, repo: &Repo, a: LogArgs) -> Result<()> {
    let items = select(repo, &a)?;
    let deco = decorations(repo)?;
    let no_tags = Vec::new();
    if ctx.json {
        let arr: Vec<_> = items
            .iter()
            .map(|(id, s)| match s {
                Some(s) => {
                    let mut v = output::snapshot_json(id, s, deco.tags.get(id).unwrap_or(&no_tags));
                    // Only snapshots still in the trash carry the mark.
                    if !repo.is_live(id) {
                        v["forgotten"] = json!(true);
                    }
                    v
                }
                None => json!({"id": id.to_hex(), "forgotten": true}),
            })
            .collect();
        print_json(&serde_json::Value::Array(arr))?;
        return Ok(());
    }
    let mut out = crate::pager::Out::new(ctx.color, ctx.pager);
    let id_style = AnsiColor::Yellow.on_default();
    let head_style = AnsiColor::Cyan.on_default().bold();
    let tag_style = AnsiColor::Yellow.on_default().bold();
    let gone_style = AnsiColor::Red.on_default();
    for (id, snap) in &items {
        let Some(s) = snap else {
            writeln!(
                out,
                "{} {}",
                out.paint(id_style, &format!("snapshot {}", id.to_hex())),
                out.paint(gone_style, "(forgotten)")
            )?;
            continue;
        };
        let mut decor: Vec<String> = Vec::new();
        for h in deco.heads.get(id).unwrap_or(&no_tags) {
            decor.push(out.paint(head_style, &format!("HEAD -> {h}")));
        }
        for t in deco.tags.get(id).unwrap_or(&no_tags) {
            decor.push(out.paint(tag_style, &format!("tag: {t}")));
        }
        // In the trash until gc (`belay undo-forget` brings it back).
        if !repo.is_live(id) {
            decor.push(out.paint(gone_style, "forgotten"));
        }
        if let Some(role) = output::restore_role(s) {
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

type LogItem = (ObjectId, Option<belay_store::snapshot::Snapshot>);

/// The snapshots `log` shows: a revision and its ancestors, one source, or
/// every live snapshot; then the date and path filters; then `-n`.
fn select(repo: &Repo, a: &LogArgs) -> Result<Vec<LogItem>> {
    let limit = a.max_count.unwrap_or(usize::MAX);
    let now = jiff::Timestamp::now();
    let tz = jiff::tz::TimeZone::system();
    let bound = |s: &Option<String>, b: timespec::Bound| -> Result<Option<i64>> {
        s.as_deref()
            .map(|s| timespec::parse(s, b, now, &tz).map_err(|e| anyhow::anyhow!("{e}")))
            .transpose()
    };
    let since = bound(&a.since, timespec::Bound::Start)?;
    let until = bound(&a.until, timespec::Bound::End)?;
    let paths: Vec<Vec<u8>> = a
        .paths
        .iter()
        .map(|p| belay_store::path::parse_user_path(p))
        .collect();
    let filter = PathFilter::new(&paths)?;
    let filtered = since.is_some() || until.is_some() || !filter.is_all();
    let keep = |s: &belay_store::snapshot::Snapshot| -> Result<bool> {
        if since.is_some_and(|t| s.time_ns < t) || until.is_some_and(|t| s.time_ns > t) {
            return Ok(false);
        }
        if !filter.is_all() {
            return Ok(history::changed_in(repo, s, &filter)?);
        }
        Ok(true)
    };
    let mut items: Vec<LogItem> = Vec::new();
    match (&a.rev, &a.source) {
        (Some(r), _) if rev::split_range(r)?.is_some() => {
            let (from, to) = rev::split_range(r)?.expect("checked");
            let cat = belay_store::catalog::Catalog::open(repo);
            for id in rev::resolve_range(repo, from, to)? {
                if items.len() >= limit {
                    break;
                }
                let snap = cat.read(&id)?;
                if keep(&snap)? {
                    items.push((id, Some(snap)));
                }
            }
        }
        (Some(r), _) => {
            let cat = belay_store::catalog::Catalog::open(repo);
            let mut next = Some(rev::resolve(repo, r)?);
            while let Some(id) = next {
                if items.len() >= limit {
                    break;
                }
                if !repo.is_live(&id) {
                    // A forgotten parent (no marker, perhaps already
                    // collected) ends the visible history.
                    if !filtered {
                        items.push((id, None));
                    }
                    break;
                }
                let snap = cat.read(&id)?;
                next = snap.parents.first().copied();
                if keep(&snap)? {
                    items.push((id, Some(snap)));
                }
            }
        }
        (None, Some(name)) => {
            let all = history::source_snapshots(repo, name)?;
            if all.is_empty() {
                anyhow::bail!(
                    "no source named {name:?} (`belay log --oneline` lists every snapshot)"
                );
            }
            for (id, s) in all {
                if items.len() >= limit {
                    break;
                }
                if keep(&s)? {
                    items.push((id, Some(s)));
                }
            }
        }
        (None, None) => {
            // Newest first, from the local cache's catalogue (docs/cache.md).
            let all = belay_store::catalog::Catalog::open(repo).live_reporting(&mut |e| {
                eprintln!("warning: {e}; left out (`belay check` reports it)")
            })?;
            for (id, s) in all {
                if items.len() >= limit {
                    break;
                }
                if keep(&s)? {
                    items.push((id, Some(s)));
                }
            }
        }
    }
    Ok(items)
}

pub(crate) fn show(ctx: &Ctx, repo: &Repo, r: &str) -> Result<()> {
    let id = rev::resolve(repo, r)?;
    let s = repo.read_snapshot(&id)?;
    let deco = decorations(repo)?;
    let tags = deco.tags.get(&id).cloned().unwrap_or_default();
    if ctx.json {
        let mut v = output::snapshot_json(&id, &s, &tags);
        let o = v.as_object_mut().unwrap();
        o.insert("tree".into(), json!(s.tree.to_hex()));
        o.insert("location".into(), json!(s.location));
        o.insert("host".into(), json!(s.host));
        o.insert("user".into(), json!(s.user));
        o.insert(
            "meta".into(),
            json!(s.meta.iter().cloned().collect::<BTreeMap<_, _>>()),
        );
        o.insert(
            "device".into(),
            json!(s.device.iter().cloned().collect::<BTreeMap<_, _>>()),
        );
        o.insert("chunker".into(), json!(s.chunker));
        o.insert(
            "summary".into(),
            json!({
                "files": s.summary.files, "dirs": s.summary.dirs, "symlinks": s.summary.symlinks,
                "bytes": s.summary.bytes, "files_read": s.summary.files_read,
                "bytes_read": s.summary.bytes_read, "objects_added": s.summary.objects_added,
                "bytes_added": s.summary.bytes_added,
            }),
        );
        print_json(&v)?;
        return Ok(());
    }
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
