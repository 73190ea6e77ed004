//! `belay backup serial:…`, `belay restore … --to serial:…` and
//! `belay devices`: the board wiring. Connects one session per command,
//! names the board, takes the safety snapshot before a restore, and prints
//! human or JSON output.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use belay_store::backup::{self, BackupOptions, BackupReport, KnownFiles};
use belay_store::cache::Cache;
use belay_store::path as bpath;
use belay_store::repo::RefKind;
use belay_store::restore::{self, PathFilter, PlannedEntry, RestoreOptions};
use belay_store::source::{Sink, SourceKind};
use belay_store::tree::{Node, TreeEntry};
use belay_store::{ObjectId, Repo};
use belay_transport::devices;
use belay_transport::serial::{
    BoardSink, BoardSource, ConnectOptions, PullOptions, Session, board as sboard, port,
    session::TEMP_SUFFIX,
};
use serde_json::json;

use crate::args::{BackupArgs, RestoreArgs};
use crate::commands::Ctx;
use crate::output::{self, print_json};
use crate::progress::Progress;

/// Who and when, recorded in snapshots.
pub struct Who {
    pub meta: Vec<(String, String)>,
    pub host: String,
    pub user: String,
    pub time_ns: i64,
}

fn connect(out: &Ctx, port: &str, baud: u32) -> Result<Session> {
    out.note(format!("connecting to the board on {port}…"));
    let s = Session::connect(port, baud, &ConnectOptions::default())?;
    if out.verbose > 0 {
        eprintln!(
            "{}: {} ({}), agent in {} mode, uploaded with {}",
            s.label(),
            s.info.firmware(),
            s.info.get("machine"),
            if s.text_mode() { "base64" } else { "binary" },
            if s.used_raw_paste {
                "raw-paste"
            } else {
                "the classic raw REPL"
            }
        );
    }
    Ok(s)
}

/// The local cache, or none (with a warning) if it cannot be opened: it
/// only saves transfers.
fn open_cache(out: &Ctx, repo: &Repo) -> Option<Cache> {
    if std::env::var_os("BELAY_NO_CACHE").is_some() {
        return None;
    }
    match Cache::open(repo) {
        Ok(c) => {
            if let Err(e) = c.index_heads(repo) {
                out.warn(format!("could not fill the local cache: {e}"));
            }
            Some(c)
        }
        Err(e) => {
            out.warn(format!("{e}; continuing without it"));
            None
        }
    }
}

/// The newest snapshot of the board with this unique id, among the heads:
/// (source name, snapshot id).
fn latest_for_uid(repo: &Repo, uid: &str) -> Result<Option<(String, ObjectId)>> {
    let mut best: Option<(i64, String, ObjectId)> = None;
    for (name, id) in repo.list_refs(RefKind::Head)? {
        let Ok(s) = repo.read_snapshot(&id) else {
            continue;
        };
        if s.device.iter().any(|(k, v)| k == "unique_id" && v == uid)
            && best.as_ref().is_none_or(|b| s.time_ns > b.0)
        {
            best = Some((s.time_ns, name, id));
        }
    }
    Ok(best.map(|b| (b.1, b.2)))
}

/// The source name for a board. Without `--name`: the name of the board's
/// newest snapshot (so a name given once sticks), else its unique id. With
/// `--name N` for a new N: the board's history continues under N (its ref
/// starts at the board's newest snapshot).
fn board_name(out: &Ctx, repo: &Repo, s: &Session, explicit: Option<&str>) -> Result<String> {
    let uid = s.info.unique_id().map(str::to_string);
    if let Some(n) = explicit {
        belay_store::repo::validate_ref_name(n)?;
        if let Some(uid) = &uid
            && repo.read_ref(RefKind::Head, n)?.is_none()
            && let Some((old, head)) = latest_for_uid(repo, uid)?
        {
            repo.write_ref(RefKind::Head, n, &head)?;
            out.note(format!(
                "{}: its history continues as {n} (it was {old})",
                s.label()
            ));
        }
        return Ok(n.to_string());
    }
    if let Some(n) = uid
        .as_deref()
        .and_then(|u| crate::config::get().name_for_unique_id(u))
    {
        return Ok(n.to_string());
    }
    match &uid {
        Some(uid) => Ok(latest_for_uid(repo, uid)?
            .map(|(n, _)| n)
            .unwrap_or_else(|| uid.clone())),
        None => {
            let n = sboard::default_name(s);
            out.warn(format!(
                "{}: the board has no machine.unique_id(); naming it {n} after its port (use --name to choose)",
                s.label()
            ));
            Ok(n)
        }
    }
}

fn pull_options(s: &Session, deflate: Option<bool>, hash: bool) -> PullOptions {
    PullOptions {
        deflate: deflate.unwrap_or(true) && s.info.can_deflate(),
        hash,
    }
}

fn run_backup(
    repo: &Repo,
    session: &Mutex<Session>,
    pull: PullOptions,
    excludes: &[String],
    opts: &BackupOptions,
    cache: Option<&Cache>,
    progress: &Progress,
) -> Result<BackupReport> {
    let source = BoardSource::new(session, pull).with_excludes(excludes)?;
    let known = cache.map(|c| c as &dyn KnownFiles);
    Ok(backup::backup_with(repo, &source, opts, known, progress)?)
}

#[allow(clippy::too_many_arguments)]
pub fn backup(
    out: &Ctx,
    repo: &Repo,
    a: &BackupArgs,
    port: &str,
    baud: u32,
    who: Who,
) -> Result<()> {
    let started = Instant::now();
    let cache = open_cache(out, repo);
    // Ctrl-C ends the session cleanly (no snapshot, board left in its REPL).
    port::install_interrupt_handler();
    let session = connect(out, port, baud)?;
    let hash = !a.no_hash;
    if hash && !session.info.has_hashlib() {
        out.warn(format!(
            "{}: the board has no hashlib, so it cannot hash its files: every file is pulled (and checked by size only)",
            session.label()
        ));
    }
    let name = board_name(out, repo, &session, a.name.as_deref())?;
    // Hashing on the board pays only when the repository may already hold
    // some of the files: not for a board's first backup into a repository
    // that holds no files at all (the pull checks every file by the
    // board's hash anyway).
    let knows_nothing = repo.read_ref(RefKind::Head, &name)?.is_none()
        && cache
            .as_ref()
            .is_some_and(|c| c.is_empty().unwrap_or(false));
    let pull = pull_options(&session, deflate_choice(a), hash && !knows_nothing);
    let deflate_used = pull.deflate;
    let label = session.label().to_string();
    let session = Mutex::new(session);
    let opts = BackupOptions {
        name: name.clone(),
        message: a.message.clone(),
        meta: who.meta,
        host: who.host,
        user: who.user,
        time_ns: who.time_ns,
        skip_unreadable: false,
    };
    out.note(format!(
        "{label}: listing{} its files…",
        if pull.hash { " and hashing" } else { "" }
    ));
    let progress = Progress::new(out.quiet || out.json, "backup");
    let result = run_backup(
        repo,
        &session,
        pull,
        &a.excludes,
        &opts,
        cache.as_ref(),
        &progress,
    );
    progress.finish();
    let session = session.into_inner().unwrap_or_else(|e| e.into_inner());
    let transferred = session.payload_bytes;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            drop(session);
            return Err(e.context("no snapshot was written"));
        }
    };
    // Leave the board in its friendly REPL; a failure here does not undo
    // the snapshot.
    let mut session = session;
    let wire_total = session.wire_bytes();
    for w in std::mem::take(&mut session.warnings) {
        out.warn(w);
    }
    if let Err(e) = session.close() {
        out.warn(format!("{e}"));
    }
    if out.verbose > 0 {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
    }
    let s = &report.summary;
    if out.json {
        print_json(&json!({
            "snapshot": report.snapshot.to_hex(),
            "parent": report.parent.map(|p| p.to_hex()),
            "source": name,
            "board": label,
            "files": s.files,
            "dirs": s.dirs,
            "bytes": s.bytes,
            "files_read": s.files_read,
            "files_unchanged": report.files_unchanged,
            "files_known": report.files_known,
            "bytes_read": s.bytes_read,
            "bytes_added": s.bytes_added,
            "objects_added": s.objects_added,
            "bytes_transferred": transferred,
            "wire_bytes": wire_total,
            "deflate": deflate_used,
            "warnings": report.warnings,
            "seconds": started.elapsed().as_secs_f64(),
        }));
    } else {
        out.info(format!(
            "snapshot {} saved for {name} ({label}){}",
            report.snapshot.short(),
            report
                .parent
                .map(|p| format!(", parent {}", p.short()))
                .unwrap_or_default()
        ));
        out.info(format!(
            "  {} files, {} dirs, {} in total; {} files pulled ({}), {} unchanged",
            s.files,
            s.dirs,
            output::size(s.bytes),
            s.files_read,
            output::size(transferred),
            report.files_unchanged
        ));
        out.info(format!(
            "  {} on the line, added {} in {} objects, {:.2}s",
            output::size(wire_total),
            output::size(s.bytes_added),
            s.objects_added,
            started.elapsed().as_secs_f64()
        ));
    }
    if let Some(c) = &cache
        && let Err(e) = c.index_snapshot(repo, &report.snapshot)
    {
        out.warn(format!("{e}"));
    }
    Ok(())
}

fn deflate_choice(a: &BackupArgs) -> Option<bool> {
    if a.no_deflate {
        Some(false)
    } else if a.deflate {
        Some(true)
    } else {
        None
    }
}

/// A directory entry for an ancestor of the restored path.
fn dir_entry(path: &[u8]) -> PlannedEntry {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path).to_vec();
    PlannedEntry {
        path: path.to_vec(),
        entry: TreeEntry {
            name,
            mode: 0,
            mtime_ns: None,
            node: Node::Dir {
                tree: ObjectId([0; 32]),
            },
        },
    }
}

/// On a board, `REV:PATH` goes back to PATH (the board is the whole
/// filesystem): prefix the plan with PATH and create its parents.
fn rebase(planned: Vec<PlannedEntry>, path: &[u8], entry: &TreeEntry) -> Vec<PlannedEntry> {
    if path.is_empty() {
        return planned;
    }
    let mut out = Vec::new();
    let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    let dirs = if matches!(entry.node, Node::Dir { .. }) {
        parts.len()
    } else {
        parts.len() - 1
    };
    for i in 1..=dirs {
        out.push(dir_entry(&parts[..i].join(&b'/')));
    }
    for mut p in planned {
        p.path = if matches!(entry.node, Node::Dir { .. }) {
            bpath::join(path, &p.path)
        } else {
            path.to_vec()
        };
        out.push(p);
    }
    out
}

fn confirm(question: &str) -> Result<bool> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

#[allow(clippy::too_many_arguments)]
pub fn restore(
    out: &Ctx,
    repo: &Repo,
    a: &RestoreArgs,
    port: &str,
    baud: u32,
    id: ObjectId,
    path: &[u8],
    entry: &TreeEntry,
    include: Option<PathFilter>,
    who: Who,
) -> Result<()> {
    let started = Instant::now();
    let planned = rebase(restore::plan(repo, entry, include)?, path, entry);
    if let Some(p) = planned
        .iter()
        .find(|p| matches!(p.entry.node, Node::Symlink { .. }))
    {
        bail!(
            "{} is a symbolic link and boards have none; leave it out with --include",
            bpath::display(&p.path)
        );
    }
    let session = connect(out, port, baud)?;
    let label = session.label().to_string();
    let window = devices::write_window(port);
    let session = Mutex::new(session);
    let sink = BoardSink::new(&session, window);
    out.note(format!("{label}: listing and hashing its files…"));
    let existing = sink.existing()?;
    // --delete reaches only what the restore covers: PATH, and --include.
    let mut prefix = path.to_vec();
    prefix.push(b'/');
    // --include globs apply to paths relative to PATH, as in the plan.
    let scope = |p: &[u8]| {
        let rel = if path.is_empty() {
            Some(p)
        } else if p == path {
            p.rsplit(|&b| b == b'/').next()
        } else {
            p.strip_prefix(prefix.as_slice())
        };
        rel.is_some_and(|r| include.is_none_or(|f| f(r)))
    };
    let ropts = RestoreOptions {
        delete: a.delete,
        scope: Some(&scope),
    };
    let mut changes = restore::changes(&planned, existing.as_deref(), &ropts)?;
    // Temporary files left by an interrupted restore go too (they are
    // belay's, and in the safety snapshot).
    for e in existing.as_deref().unwrap_or(&[]) {
        let p = &e.entry.path;
        if p.ends_with(TEMP_SUFFIX)
            && e.entry.kind == SourceKind::File
            && !planned.iter().any(|x| &x.path == p)
            && !changes.removes.iter().any(|r| &r.0 == p)
        {
            changes.removes.insert(0, (p.clone(), false));
        }
    }
    let summary = format!(
        "{} files to write ({}), {} directories to create, {} entries to remove, {} files already identical",
        changes.writes.len(),
        output::size(changes.bytes_to_write()),
        changes.mkdirs.len(),
        changes.removes.len(),
        changes.unchanged.len()
    );
    let list_json = || {
        json!({
            "write": changes.writes.iter().map(|p| bpath::display(&p.path)).collect::<Vec<_>>(),
            "mkdir": changes.mkdirs.iter().map(|p| bpath::display(&p.path)).collect::<Vec<_>>(),
            "remove": changes.removes.iter().map(|p| bpath::display(&p.0)).collect::<Vec<_>>(),
            "unchanged": changes.unchanged.len(),
        })
    };
    if a.dry_run || changes.is_empty() {
        let s = session.into_inner().unwrap_or_else(|e| e.into_inner());
        let wire = s.wire_bytes();
        if let Err(e) = s.close() {
            out.warn(format!("{e}"));
        }
        if out.json {
            print_json(&json!({
                "snapshot": id.to_hex(), "target": format!("serial:{port}"), "board": label,
                "dry_run": a.dry_run, "changes": list_json(), "wire_bytes": wire,
            }));
        } else if a.dry_run {
            for p in &changes.removes {
                println!("would remove {}", bpath::display(&p.0));
            }
            for p in &changes.mkdirs {
                println!("would create {}/", bpath::display(&p.path));
            }
            for p in &changes.writes {
                println!("would write {}", bpath::display(&p.path));
            }
            out.info(format!("{summary} (dry run, nothing changed)"));
        } else {
            out.info(format!(
                "{label} already matches snapshot {} ({} files identical); nothing to do",
                id.short(),
                changes.unchanged.len()
            ));
        }
        return Ok(());
    }
    // Enough room? (LittleFS needs the new copy before the old one goes.)
    {
        let s = session.lock().unwrap();
        if let (Some(free), Some(bs)) = (s.info.fs_free(), s.info.fs_block()) {
            let blocks = |n: u64| n.div_ceil(bs.max(1)) * bs;
            let sizes: std::collections::HashMap<&[u8], u64> = existing
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .map(|e| (e.entry.path.as_slice(), e.entry.size))
                .collect();
            let need: u64 = changes
                .writes
                .iter()
                .map(|p| blocks(p.entry.node.size()))
                .sum();
            let freed: u64 = changes
                .writes
                .iter()
                .filter_map(|p| sizes.get(p.path.as_slice()))
                .chain(
                    changes
                        .removes
                        .iter()
                        .filter_map(|r| sizes.get(r.0.as_slice())),
                )
                .map(|&n| blocks(n))
                .sum();
            if need > free + freed {
                bail!(
                    "{label}: not enough space: the restore needs about {} and the board has {} free (plus {} freed by replaced or removed files); free some space or restore less with --include",
                    output::size(need),
                    output::size(free),
                    output::size(freed)
                );
            }
        }
    }
    if !a.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() && !out.json {
        eprintln!("restore {} to {label}: {summary}", id.short());
        if !confirm("continue?")? {
            bail!("restore cancelled; the board was not changed");
        }
    }
    port::install_interrupt_handler();
    // The safety snapshot: what the board holds now, before anything changes.
    let mut safety = None;
    if !a.no_safety_snapshot {
        let cache = open_cache(out, repo);
        let name = board_name(out, repo, &session.lock().unwrap(), None)?;
        let mut meta = vec![
            ("belay.safety".to_string(), "restore".to_string()),
            ("belay.restore_of".to_string(), id.to_hex()),
        ];
        meta.extend(who.meta.iter().cloned());
        let opts = BackupOptions {
            name: name.clone(),
            message: format!("safety snapshot before restore of {}", id.short()),
            meta,
            host: who.host.clone(),
            user: who.user.clone(),
            time_ns: who.time_ns,
            skip_unreadable: false,
        };
        let progress = Progress::new(out.quiet || out.json, "safety snapshot");
        let deflate = session.lock().unwrap().info.can_deflate();
        let r = run_backup(
            repo,
            &session,
            PullOptions {
                deflate,
                hash: true,
            },
            &[],
            &opts,
            cache.as_ref(),
            &progress,
        );
        progress.finish();
        let r = r.with_context(|| {
            format!("{label}: the safety snapshot failed, so the board was not changed (use --no-safety-snapshot to restore without one)")
        })?;
        if let Some(c) = &cache {
            let _ = c.index_snapshot(repo, &r.snapshot);
        }
        out.info(format!(
            "safety snapshot {} of {name} saved (undo with: belay restore {} --to serial:{port} --delete)",
            r.snapshot.short(),
            r.snapshot.short()
        ));
        safety = Some(r.snapshot);
    }
    let progress = Progress::new(out.quiet || out.json, "restore");
    let result = restore::apply(repo, &changes, &sink, &progress);
    progress.finish();
    let s = session.into_inner().unwrap_or_else(|e| e.into_inner());
    let pushed = s.payload_bytes;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            drop(s);
            let hint = safety
                .map(|id| {
                    format!(
                        "; the board's earlier state is in safety snapshot {}",
                        id.short()
                    )
                })
                .unwrap_or_default();
            return Err(anyhow!(e).context(format!("restore to {label} failed part way{hint}")));
        }
    };
    let wire = s.wire_bytes();
    if let Err(e) = s.close() {
        out.warn(format!("{e}"));
    }
    if out.json {
        print_json(&json!({
            "snapshot": id.to_hex(),
            "target": format!("serial:{port}"),
            "board": label,
            "safety_snapshot": safety.map(|s| s.to_hex()),
            "files": report.files,
            "dirs": report.dirs,
            "bytes": report.bytes,
            "unchanged": report.unchanged,
            "removed": report.removed,
            "bytes_transferred": pushed,
            "wire_bytes": wire,
            "seconds": started.elapsed().as_secs_f64(),
        }));
    } else {
        out.info(format!(
            "restored {} to {label}: wrote {} files ({}), created {} directories, removed {} entries, {} files were already identical, {:.2}s",
            id.short(),
            report.files,
            output::size(report.bytes),
            report.dirs,
            report.removed,
            report.unchanged,
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

pub fn devices(out: &Ctx) -> Result<()> {
    let devs = devices::list().context("cannot list serial ports")?;
    if out.json {
        let arr: Vec<_> = devs
            .iter()
            .map(|d| {
                json!({
                    "port": d.port,
                    "type": d.kind,
                    "vid": d.vid.map(|v| format!("{v:04x}")),
                    "pid": d.pid.map(|v| format!("{v:04x}")),
                    "serial_number": d.serial_number,
                    "manufacturer": d.manufacturer,
                    "product": d.product,
                    "board": d.board,
                    "micropython": d.micropython_likely,
                    "uart_bridge": d.uart_bridge,
                })
            })
            .collect();
        print_json(&serde_json::Value::Array(arr));
        return Ok(());
    }
    if devs.is_empty() {
        out.info("no serial ports found");
        return Ok(());
    }
    for d in &devs {
        let ids = match (d.vid, d.pid) {
            (Some(v), Some(p)) => format!("{v:04x}:{p:04x}"),
            _ => "-".into(),
        };
        let who = [d.manufacturer.as_deref(), d.product.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let mark = if d.micropython_likely { "*" } else { " " };
        println!(
            "{mark} {:<16} {:<10} {:<9} {}{}",
            d.port,
            d.kind,
            ids,
            who,
            d.board
                .as_ref()
                .map(|b| format!("  [{b}]"))
                .unwrap_or_default()
        );
    }
    out.info("* likely a MicroPython board; back one up with: belay backup serial:PORT");
    Ok(())
}
