//! One function per command. Each resolves its arguments, calls the store
//! and prints; no repository logic lives here.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use belay_store::backup::{self, BackupOptions};
use belay_store::path as bpath;
use belay_store::repo::RefKind;
use belay_store::restore::{self, ContentReader};
use belay_store::tree::{Node, TreeEntry};
use belay_store::{ObjectId, Repo, rev, walk};
use belay_transport::Location;
use belay_transport::dir::{DirSink, DirSource};
use serde_json::json;

use crate::args::{BackupArgs, Cli, Command, LogArgs, RestoreArgs};
use crate::output::{self, print_json};
use crate::progress::Progress;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let ctx = Ctx {
        json: cli.json,
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let repo_path = || -> Result<PathBuf> {
        cli.repo
            .clone()
            .ok_or_else(|| anyhow!("no repository given: use -r PATH or set BELAY_REPO"))
    };
    match cli.command {
        Command::Init => init(&ctx, &repo_path()?),
        Command::Backup(a) => backup(&ctx, &open(&repo_path()?)?, a),
        Command::Log(a) => log(&ctx, &open(&repo_path()?)?, a),
        Command::Show { rev } => show(&ctx, &open(&repo_path()?)?, &rev),
        Command::Ls { spec, recursive } => ls(&ctx, &open(&repo_path()?)?, &spec, recursive),
        Command::Cat { spec } => cat(&open(&repo_path()?)?, &spec),
        Command::Restore(a) => restore(&ctx, &open(&repo_path()?)?, a),
        Command::Devices => crate::board::devices(&ctx.out()),
    }?;
    Ok(ExitCode::SUCCESS)
}

struct Ctx {
    json: bool,
    quiet: bool,
    verbose: u8,
}

impl Ctx {
    fn out(&self) -> crate::board::Out {
        crate::board::Out {
            json: self.json,
            quiet: self.quiet,
            verbose: self.verbose,
        }
    }

    fn info(&self, msg: impl AsRef<str>) {
        if !self.quiet && !self.json {
            println!("{}", msg.as_ref());
        }
    }
}

fn open(path: &Path) -> Result<Repo> {
    Ok(Repo::open(path)?)
}

fn init(ctx: &Ctx, path: &Path) -> Result<()> {
    let repo = Repo::init(path)?;
    if ctx.json {
        print_json(
            &json!({"repository": path, "id": repo.config().id, "version": repo.config().version}),
        );
    } else {
        ctx.info(format!(
            "created belay repository {} at {}",
            &repo.config().id[..12],
            path.display()
        ));
    }
    Ok(())
}

fn now_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

fn username() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default()
}

fn parse_meta(items: &[String]) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow!("--meta {kv:?}: expected KEY=VALUE"))?;
            if k.is_empty() {
                bail!("--meta {kv:?}: the key is empty");
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

fn backup(ctx: &Ctx, repo: &Repo, a: BackupArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let location = Location::parse(&a.source).map_err(|e| anyhow!("{e}"))?;
    let dir = match location {
        Location::Dir(p) => p,
        Location::Serial { port, baud } => {
            let who = crate::board::Who {
                meta: parse_meta(&a.meta)?,
                host: hostname(),
                user: username(),
                time_ns: now_ns(),
            };
            return crate::board::backup(&ctx.out(), repo, &a, &port, baud, who);
        }
    };
    let mut source = DirSource::new(&dir, a.excludes.clone(), a.skip_unreadable)
        .with_context(|| format!("cannot back up {}", dir.display()))?;
    source.skip_path(repo.root());
    let name = match &a.name {
        Some(n) => n.clone(),
        None => belay_store::source::Source::default_name(&source),
    };
    let opts = BackupOptions {
        name: name.clone(),
        message: a.message.clone(),
        meta: parse_meta(&a.meta)?,
        host: hostname(),
        user: username(),
        time_ns: now_ns(),
        skip_unreadable: a.skip_unreadable,
    };
    let progress = Progress::new(ctx.quiet || ctx.json, "backup");
    let result = backup::backup(repo, &source, &opts, &progress);
    progress.finish();
    let report = result?;
    let s = &report.summary;
    if ctx.json {
        print_json(&json!({
            "snapshot": report.snapshot.to_hex(),
            "parent": report.parent.map(|p| p.to_hex()),
            "source": name,
            "files": s.files,
            "dirs": s.dirs,
            "symlinks": s.symlinks,
            "bytes": s.bytes,
            "files_read": s.files_read,
            "files_unchanged": report.files_unchanged,
            "bytes_read": s.bytes_read,
            "bytes_added": s.bytes_added,
            "objects_added": s.objects_added,
            "warnings": report.warnings,
            "seconds": started.elapsed().as_secs_f64(),
        }));
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

/// Tag names by snapshot id, and source names whose head is that id.
struct Decorations {
    tags: BTreeMap<ObjectId, Vec<String>>,
    heads: BTreeMap<ObjectId, Vec<String>>,
}

fn decorations(repo: &Repo) -> Result<Decorations> {
    let mut tags: BTreeMap<ObjectId, Vec<String>> = BTreeMap::new();
    for (name, id) in repo.list_refs(RefKind::Tag)? {
        tags.entry(id).or_default().push(name);
    }
    let mut heads: BTreeMap<ObjectId, Vec<String>> = BTreeMap::new();
    for (name, id) in repo.list_refs(RefKind::Head)? {
        heads.entry(id).or_default().push(name);
    }
    Ok(Decorations { tags, heads })
}

fn log(ctx: &Ctx, repo: &Repo, a: LogArgs) -> Result<()> {
    let limit = a.max_count.unwrap_or(usize::MAX);
    let mut items = Vec::new();
    match &a.rev {
        Some(r) => {
            let mut next = Some(rev::resolve(repo, r)?);
            while let Some(id) = next {
                if items.len() >= limit {
                    break;
                }
                if !repo.has_object(&id) {
                    // A forgotten parent ends the visible history.
                    items.push((id, None));
                    break;
                }
                let snap = repo.read_snapshot(&id)?;
                next = snap.parents.first().copied();
                items.push((id, Some(snap)));
            }
        }
        None => {
            let mut all = Vec::new();
            for id in repo.list_snapshots()? {
                all.push((id, repo.read_snapshot(&id)?));
            }
            all.sort_by(|a, b| b.1.time_ns.cmp(&a.1.time_ns).then(a.0.cmp(&b.0)));
            items = all
                .into_iter()
                .take(limit)
                .map(|(i, s)| (i, Some(s)))
                .collect();
        }
    }
    let deco = decorations(repo)?;
    let no_tags = Vec::new();
    if ctx.json {
        let arr: Vec<_> = items
            .iter()
            .map(|(id, s)| match s {
                Some(s) => output::snapshot_json(id, s, deco.tags.get(id).unwrap_or(&no_tags)),
                None => json!({"id": id.to_hex(), "forgotten": true}),
            })
            .collect();
        print_json(&serde_json::Value::Array(arr));
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for (id, snap) in &items {
        let Some(s) = snap else {
            writeln!(out, "snapshot {} (forgotten)", id.to_hex())?;
            continue;
        };
        let mut decor: Vec<String> = Vec::new();
        for h in deco.heads.get(id).unwrap_or(&no_tags) {
            decor.push(format!("HEAD -> {h}"));
        }
        for t in deco.tags.get(id).unwrap_or(&no_tags) {
            decor.push(format!("tag: {t}"));
        }
        let decor = if decor.is_empty() {
            String::new()
        } else {
            format!(" ({})", decor.join(", "))
        };
        if a.oneline {
            let msg = s.message.lines().next().unwrap_or("");
            writeln!(
                out,
                "{}{} {} {} {}",
                id.short(),
                decor,
                output::time_ns(s.time_ns),
                s.source,
                msg
            )?;
        } else {
            writeln!(out, "snapshot {}{}", id.to_hex(), decor)?;
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
    Ok(())
}

fn show(ctx: &Ctx, repo: &Repo, r: &str) -> Result<()> {
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
        print_json(&v);
        return Ok(());
    }
    println!("snapshot {}", id.to_hex());
    if !tags.is_empty() {
        println!("Tags:     {}", tags.join(", "));
    }
    for p in &s.parents {
        let state = if repo.has_object(p) {
            ""
        } else {
            " (forgotten)"
        };
        println!("Parent:   {}{state}", p.to_hex());
    }
    println!("Source:   {}", s.source);
    println!("Location: {}", s.location);
    println!("Date:     {}", output::time_ns(s.time_ns));
    if s.user.is_empty() {
        println!("Host:     {}", s.host);
    } else {
        println!("Host:     {} (user {})", s.host, s.user);
    }
    println!("Tree:     {}", s.tree.to_hex());
    println!(
        "Files:    {} files, {} dirs, {} symlinks, {}",
        s.summary.files,
        s.summary.dirs,
        s.summary.symlinks,
        output::size(s.summary.bytes)
    );
    println!(
        "Backup:   read {} files ({}), added {} objects ({})",
        s.summary.files_read,
        output::size(s.summary.bytes_read),
        s.summary.objects_added,
        output::size(s.summary.bytes_added)
    );
    for (k, v) in &s.meta {
        println!("Meta:     {k}={v}");
    }
    for (k, v) in &s.device {
        println!("Device:   {k}: {v}");
    }
    if !s.message.is_empty() {
        println!();
        for line in s.message.lines() {
            println!("    {line}");
        }
    }
    Ok(())
}

/// Resolve `REV[:PATH]` to the snapshot id and the entry at PATH (the root
/// directory when there is no path).
fn resolve_spec(repo: &Repo, spec: &str) -> Result<(ObjectId, Vec<u8>, TreeEntry)> {
    let (r, p) = rev::split_path(spec);
    let id = rev::resolve(repo, r)?;
    let snap = repo.read_snapshot(&id)?;
    let path = p.map(bpath::parse_user_path).unwrap_or_default();
    let entry = walk::lookup(repo, &snap.tree, &path)?.ok_or_else(|| {
        anyhow!(
            "{}: no such path in snapshot {}",
            bpath::display(&path),
            id.short()
        )
    })?;
    Ok((id, path, entry))
}

fn ls(ctx: &Ctx, repo: &Repo, spec: &str, recursive: bool) -> Result<()> {
    let (_, base, entry) = resolve_spec(repo, spec)?;
    let mut rows: Vec<(Vec<u8>, TreeEntry)> = Vec::new();
    match &entry.node {
        Node::Dir { tree } => {
            if recursive {
                rows = walk::flatten(repo, tree)?;
            } else {
                rows = repo
                    .read_tree(tree)?
                    .entries
                    .into_iter()
                    .map(|e| (e.name.clone(), e))
                    .collect();
            }
        }
        _ => rows.push((entry.name.clone(), entry.clone())),
    }
    if ctx.json {
        let arr: Vec<_> = rows
            .iter()
            .map(|(p, e)| {
                let full = if matches!(entry.node, Node::Dir { .. }) {
                    bpath::join(&base, p)
                } else {
                    base.clone()
                };
                let mut v = json!({
                    "path": bpath::display(&full),
                    "type": e.node.kind_name(),
                    "mode": e.mode,
                    "size": e.node.size(),
                    "mtime": e.mtime_ns.map(output::rfc3339),
                });
                match &e.node {
                    Node::File { sha256, .. } => {
                        v["sha256"] = json!(hex::encode(sha256));
                    }
                    Node::Symlink { target } => {
                        v["target"] = json!(bpath::display(target));
                    }
                    Node::Dir { .. } => {}
                }
                v
            })
            .collect();
        print_json(&serde_json::Value::Array(arr));
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for (p, e) in &rows {
        let mut name = bpath::display(p);
        match &e.node {
            Node::Dir { .. } => name.push('/'),
            Node::Symlink { target } => {
                name.push_str(" -> ");
                name.push_str(&bpath::display(target));
            }
            Node::File { .. } => {}
        }
        let when = e
            .mtime_ns
            .map(output::time_ns)
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{} {:>10} {} {}",
            output::mode_string(e),
            e.node.size(),
            when,
            name
        )?;
    }
    Ok(())
}

fn cat(repo: &Repo, spec: &str) -> Result<()> {
    let (_, path, entry) = resolve_spec(repo, spec)?;
    let Node::File {
        size,
        sha256,
        chunks,
    } = &entry.node
    else {
        bail!(
            "{} is a {}, not a file (use `belay ls`)",
            bpath::display(&path),
            entry.node.kind_name()
        );
    };
    let mut reader = ContentReader::new(repo, chunks, *size, *sha256, &path);
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) => match reader.error.take() {
                Some(err) => return Err(err.into()),
                None => return Err(e.into()),
            },
        };
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
    }
    out.flush()?;
    Ok(())
}

/// `--include` globs: a glob with a `/` matches the whole path relative to
/// the restore root; one without also matches any file name.
fn include_matcher(globs: &[String]) -> Result<Option<impl Fn(&[u8]) -> bool>> {
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

fn restore(ctx: &Ctx, repo: &Repo, a: RestoreArgs) -> Result<()> {
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
                &ctx.out(),
                repo,
                &a,
                &port,
                baud,
                id,
                &path,
                &entry,
                include,
                who,
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
            print_json(&json!({"snapshot": id.to_hex(), "dry_run": true, "entries": arr}));
        } else {
            for p in &planned {
                println!("would restore {}", bpath::display(&p.path));
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
    if ctx.json {
        print_json(&json!({
            "snapshot": id.to_hex(),
            "target": target,
            "files": r.files, "dirs": r.dirs, "symlinks": r.symlinks, "bytes": r.bytes,
            "seconds": started.elapsed().as_secs_f64(),
        }));
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
