//! `belay backup serial:…`, `belay restore … --to serial:…` and
//! `belay devices`: the board wiring. Connects one session per command,
//! names the board, takes the safety snapshot before a restore, and prints
//! human or JSON output.

use crate::output::outln;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use std::collections::{HashMap, HashSet};
use std::io::Read;

use belay_store::backup::{self, BackupOptions, BackupReport, KnownFiles};
use belay_store::cache::Cache;
use belay_store::cache_state::FileState;
use belay_store::id::Sha256;
use belay_store::path as bpath;
use belay_store::repo::RefKind;
use belay_store::restore::{self, PathFilter, PlannedEntry, RestoreOptions};
use belay_store::snapshot::{META_RESTORE_OF, META_RESTORED_FROM, META_SAFETY, Snapshot};
use belay_store::source::{ExistingEntry, Sink, SourceKind};
use belay_store::tree::{Node, TreeEntry};
use belay_store::walk;
use belay_store::{ObjectId, Repo};
use belay_transport::devices;
use belay_transport::ignore_rules::{IgnoreRules, is_ignore_file};
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
    for w in s.info.capability_warnings() {
        out.warn(format!("{}: {w}", s.label()));
    }
    if out.verbose > 0 {
        let missing = s.info.missing();
        if !missing.is_empty() {
            eprintln!("{}: the firmware lacks {}", s.label(), missing.join(", "));
        }
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
            let n = belay_store::repo::sanitize_ref_name(&sboard::default_name(s));
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

/// Run `f` with the board on `port` as a source (hashing on the board
/// where it can), then leave the board in its friendly REPL.
pub fn with_source<R>(
    out: &Ctx,
    port: &str,
    baud: u32,
    f: impl FnOnce(&dyn belay_store::source::Source) -> Result<R>,
) -> Result<R> {
    port::catch_interrupts();
    let session = connect(out, port, baud)?;
    let pull = pull_options(&session, None, true);
    let session = Mutex::new(session);
    let r = f(&BoardSource::new(&session, pull));
    let session = session.into_inner().unwrap_or_else(|e| e.into_inner());
    if r.is_ok()
        && let Err(e) = session.close()
    {
        out.warn(format!("{e}"));
    }
    r
}

fn run_backup(
    repo: &Repo,
    source: &BoardSource,
    opts: &BackupOptions,
    known: Option<&dyn KnownFiles>,
    progress: &Progress,
) -> Result<BackupReport> {
    Ok(backup::backup_with(repo, source, opts, known, progress)?)
}

/// What the backup that records a board's state right after a restore may
/// take without pulling it: the files of the restored snapshot (every one
/// was verified by the board's hash as it was written), then the cache.
struct RestoredFiles<'a> {
    files: HashMap<(Sha256, u64), Vec<ObjectId>>,
    cache: Option<&'a Cache>,
}

impl KnownFiles for RestoredFiles<'_> {
    fn lookup(&self, sha256: &Sha256, size: u64) -> Option<Vec<ObjectId>> {
        self.files
            .get(&(*sha256, size))
            .cloned()
            .or_else(|| self.cache?.lookup(sha256, size))
    }
    fn record(&self, sha256: &Sha256, size: u64, chunks: &[ObjectId]) {
        if let Some(c) = self.cache {
            c.record(sha256, size, chunks)
        }
    }
    fn parent_state(&self, source: &str, parent: &ObjectId) -> Option<Vec<FileState>> {
        self.cache?.parent_state(source, parent)
    }
    fn has_object(&self, id: &ObjectId) -> bool {
        self.cache.is_some_and(|c| c.has_object(id))
    }
    fn generation(&self) -> Option<u64> {
        self.cache?.generation()
    }
    fn committed(
        &self,
        source: &str,
        id: &ObjectId,
        snap: &Snapshot,
        files: &[FileState],
        objects: &[ObjectId],
    ) {
        if let Some(c) = self.cache {
            c.committed(source, id, snap, files, objects)
        }
    }
}

/// Whether the board holds exactly what snapshot `head` holds (same paths,
/// kinds and SHA-256 by the board's own hashes): then `head` already is the
/// undo point and no safety snapshot is needed. False when the board
/// cannot hash.
fn board_holds(repo: &Repo, head: &ObjectId, existing: &[ExistingEntry]) -> Result<bool> {
    let snap = repo.read_snapshot(head)?;
    let mut want: HashMap<Vec<u8>, Option<Sha256>> = HashMap::new();
    for (p, e) in walk::flatten(repo, &snap.tree)? {
        let sha = match e.node {
            Node::Dir { .. } => None,
            Node::File { sha256, .. } => Some(sha256),
            Node::Symlink { .. } => return Ok(false),
        };
        want.insert(p, sha);
    }
    if want.len() != existing.len() {
        return Ok(false);
    }
    Ok(existing
        .iter()
        .all(|e| match (want.get(&e.entry.path), &e.entry.kind) {
            (Some(None), SourceKind::Dir) => true,
            (Some(Some(h)), SourceKind::File) => e.sha256.as_ref() == Some(h),
            _ => false,
        }))
}

/// What one board backup did: the store's report and what the line
/// carried. `backup serial:…` prints it; `belay watch` turns it into an
/// event.
pub struct BoardBackup {
    pub report: BackupReport,
    /// The source name the snapshot was saved under.
    pub name: String,
    /// How the board is named in messages (port, unique id).
    pub label: String,
    transferred: u64,
    wire_total: u64,
    files_hashed: u64,
    bytes_hashed: u64,
    deflate: bool,
    pub seconds: f64,
}

impl BoardBackup {
    /// The `--json` document of `belay backup serial:…` (also what the
    /// journal records and `belay watch --json` prints).
    pub fn doc(&self) -> serde_json::Value {
        let (report, s) = (&self.report, &self.report.summary);
        json!({
            "unchanged": !report.committed,
            "snapshot": report.snapshot.to_hex(),
            "parent": report.parent.map(|p| p.to_hex()),
            "source": self.name,
            "board": self.label,
            "files": s.files,
            "dirs": s.dirs,
            "bytes": s.bytes,
            "files_read": s.files_read,
            "files_unchanged": report.files_unchanged,
            "objects_repaired": report.objects_repaired,
            "files_known": report.files_known,
            "bytes_read": s.bytes_read,
            "bytes_added": s.bytes_added,
            "objects_added": s.objects_added,
            "bytes_transferred": self.transferred,
            "files_hashed": self.files_hashed,
            "bytes_hashed": self.bytes_hashed,
            "wire_bytes": self.wire_total,
            "deflate": self.deflate,
            "warnings": report.warnings,
            "seconds": self.seconds,
        })
    }
}

/// `belay backup serial:PORT`: back the board up and print what happened.
pub fn backup(
    out: &Ctx,
    repo: &Repo,
    a: &BackupArgs,
    port: &str,
    baud: u32,
    who: Who,
) -> Result<()> {
    let b = backup_board(out, repo, a, port, baud, who)?;
    let doc = b.doc();
    crate::journal::note(&doc);
    let (report, s, name, label) = (&b.report, &b.report.summary, &b.name, &b.label);
    if out.json {
        print_json(&doc)?;
    } else if !report.committed {
        out.info(format!(
            "no changes since snapshot {} of {name} ({label}): nothing saved (`--allow-empty` saves one anyway)",
            report.snapshot.short()
        ));
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
            output::size(b.transferred),
            report.files_unchanged
        ));
        out.info(format!(
            "  {} on the line, added {} in {} objects, {:.2}s",
            output::size(b.wire_total),
            output::size(s.bytes_added),
            s.objects_added,
            b.seconds
        ));
    }
    Ok(())
}

/// Back up the board on `port` (one session) and return what happened,
/// printing nothing but warnings. An unchanged board adds no snapshot
/// unless `a.allow_empty`. Also used by `belay watch`, once per plug-in.
pub fn backup_board(
    out: &Ctx,
    repo: &Repo,
    a: &BackupArgs,
    port: &str,
    baud: u32,
    who: Who,
) -> Result<BoardBackup> {
    let started = Instant::now();
    let cache = open_cache(out, repo);
    // Ctrl-C ends the session cleanly (no snapshot, board left in its REPL).
    port::catch_interrupts();
    let session = connect(out, port, baud)?;
    let hash = !a.no_hash;
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
        skip_if_unchanged: !a.allow_empty,
    };
    out.note(format!(
        "{label}: listing{} its files…",
        if pull.hash { " and hashing" } else { "" }
    ));
    let progress = Progress::new(out.quiet || out.json, "backup").logged(out.verbose);
    session
        .lock()
        .unwrap()
        .set_hash_progress(Some(progress.hash_reporter()));
    let result = BoardSource::new(&session, pull)
        .with_excludes(&a.excludes)
        .map_err(anyhow::Error::from)
        .and_then(|source| {
            run_backup(
                repo,
                &source,
                &opts,
                cache.as_ref().map(|c| c as &dyn KnownFiles),
                &progress,
            )
        });
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
    let (files_hashed, bytes_hashed) = (session.hashed_files, session.hashed_bytes);
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
    if report.committed
        && let Some(c) = &cache
        && let Err(e) = c.index_snapshot(repo, &report.snapshot)
    {
        out.warn(format!("{e}"));
    }
    Ok(BoardBackup {
        report,
        name,
        label,
        transferred,
        wire_total,
        files_hashed,
        bytes_hashed,
        deflate: deflate_used,
        seconds: started.elapsed().as_secs_f64(),
    })
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
    let hashing = Progress::new(out.quiet || out.json, "restore").logged(out.verbose);
    session
        .lock()
        .unwrap()
        .set_hash_progress(Some(hashing.hash_reporter()));
    let existing = sink.existing();
    hashing.finish();
    session.lock().unwrap().set_hash_progress(None);
    let existing = existing?;
    let deflate = session.lock().unwrap().info.can_deflate();
    let pull = PullOptions {
        deflate,
        hash: true,
    };
    // What backups of this board leave out (its .belayignore files), and
    // what --delete must never remove: that, and what the restored
    // snapshot's backup left out (its --exclude globs and the
    // .belayignore files it holds).
    let board_rules = BoardSource::new(&session, pull.clone()).rules(&mut |w| out.warn(w))?;
    let mut keep_rules = IgnoreRules::new(&repo.read_snapshot(&id)?.excludes())?;
    keep_rules.merge(&board_rules);
    for p in &planned {
        if let Node::File {
            size,
            sha256,
            chunks,
        } = &p.entry.node
            && is_ignore_file(&p.path)
        {
            let mut content = Vec::new();
            restore::ContentReader::new(repo, chunks, *size, *sha256, &p.path)
                .read_to_end(&mut content)?;
            for w in keep_rules.add_file(&p.path, &content) {
                out.warn(w);
            }
        }
    }
    let mut kept: HashSet<Vec<u8>> = HashSet::new();
    for e in existing.as_deref().unwrap_or(&[]) {
        let p = &e.entry.path;
        if keep_rules.is_ignored(p, e.entry.kind == SourceKind::Dir) {
            // And its directories, which cannot go while it stays.
            let mut q = p.as_slice();
            kept.insert(q.to_vec());
            while let Some(i) = q.iter().rposition(|&b| b == b'/') {
                q = &q[..i];
                kept.insert(q.to_vec());
            }
        }
    }
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
        rel.is_some_and(|r| include.is_none_or(|f| f(r))) && !kept.contains(p)
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
        let doc = json!({
            "snapshot": id.to_hex(), "target": format!("serial:{port}"), "board": label,
            "dry_run": a.dry_run, "changes": list_json(), "wire_bytes": wire,
        });
        crate::journal::note(&doc);
        if out.json {
            print_json(&doc)?;
        } else if a.dry_run {
            for p in &changes.removes {
                outln!("would remove {}", bpath::display(&p.0))?;
            }
            for p in &changes.mkdirs {
                outln!("would create {}/", bpath::display(&p.path))?;
            }
            for p in &changes.writes {
                outln!("would write {}", bpath::display(&p.path))?;
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
        if s.info.fs_free().is_none() {
            out.warn(format!(
                "{label}: the board has no os.statvfs(), so its free space is unknown: not checked before writing {}",
                output::size(changes.bytes_to_write())
            ));
        }
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
    port::catch_interrupts();
    let cache = open_cache(out, repo);
    let name = board_name(out, repo, &session.lock().unwrap(), None)?;
    // The safety snapshot: what the board holds now, before anything
    // changes; or its head, when the board holds exactly that.
    let mut safety = None;
    let mut safety_new = false;
    let head = repo.read_ref(RefKind::Head, &name)?;
    if !a.no_safety_snapshot {
        let backed_up: Vec<ExistingEntry> = existing
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .filter(|e| !board_rules.is_ignored(&e.entry.path, e.entry.kind == SourceKind::Dir))
            .cloned()
            .collect();
        if let Some(h) = head
            && board_holds(repo, &h, &backed_up)?
            && !changes
                .writes
                .iter()
                .any(|w| board_rules.is_ignored(&w.path, false))
        {
            out.info(format!(
                "{label} holds snapshot {} of {name}: nothing to save first (undo with: belay restore {} --to serial:{port} --delete)",
                h.short(),
                h.short()
            ));
            safety = Some(h);
        } else {
            let mut meta = vec![
                (META_SAFETY.to_string(), "restore".to_string()),
                (META_RESTORE_OF.to_string(), id.to_hex()),
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
                skip_if_unchanged: false,
            };
            let progress = Progress::new(out.quiet || out.json, "safety snapshot");
            // Everything the restore overwrites or removes is in it, even
            // where the board's .belayignore leaves it out of backups.
            let touched = changes
                .writes
                .iter()
                .map(|w| w.path.clone())
                .chain(changes.removes.iter().map(|r| r.0.clone()));
            let source = BoardSource::new(&session, pull.clone()).with_forced(touched);
            let r = backup::backup_with(
                repo,
                &source,
                &opts,
                cache.as_ref().map(|c| c as &dyn KnownFiles),
                &progress,
            )
            .map_err(anyhow::Error::from);
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
            safety_new = true;
        }
    }
    let progress = Progress::new(out.quiet || out.json, "restore").logged(out.verbose);
    let before = session.lock().unwrap().payload_bytes;
    let result = restore::apply(repo, &changes, &sink, &progress);
    progress.finish();
    let pushed = session.lock().unwrap().payload_bytes - before;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            drop(session);
            let hint = safety
                .map(|id| format!("; the board's earlier state is in snapshot {}", id.short()))
                .unwrap_or_default();
            return Err(anyhow!(e).context(format!("restore to {label} failed part way{hint}")));
        }
    };
    // The board's new state becomes the head of its history, so `diff
    // serial:PORT` compares with what was restored and NAME~1 is the state
    // before the restore. One walk; the hashes are the board's own from
    // this session (unchanged files, and each written file's verification)
    // and the content is the restored snapshot's: nothing is pulled.
    let restored: HashMap<(Sha256, u64), Vec<ObjectId>> = planned
        .iter()
        .filter_map(|p| match &p.entry.node {
            Node::File {
                size,
                sha256,
                chunks,
            } => Some(((*sha256, *size), chunks.clone())),
            _ => None,
        })
        .collect();
    let known = RestoredFiles {
        files: restored,
        cache: cache.as_ref(),
    };
    let mut meta = vec![(META_RESTORED_FROM.to_string(), id.to_hex())];
    meta.extend(who.meta.iter().cloned());
    let opts = BackupOptions {
        name: name.clone(),
        message: format!("restored {}", id.short()),
        meta,
        host: who.host.clone(),
        user: who.user.clone(),
        time_ns: crate::commands::now_ns().max(who.time_ns + 1),
        skip_unreadable: false,
        skip_if_unchanged: false,
    };
    let progress = Progress::new(out.quiet || out.json, "recording");
    let after = run_backup(
        repo,
        &BoardSource::new(&session, pull),
        &opts,
        Some(&known),
        &progress,
    );
    progress.finish();
    let after = match after {
        Ok(r) => {
            if let Some(c) = &cache {
                let _ = c.index_snapshot(repo, &r.snapshot);
            }
            Some(r.snapshot)
        }
        Err(e) => {
            out.warn(format!(
                "{label}: the restore succeeded but its result could not be recorded ({e:#}); back the board up to record it"
            ));
            None
        }
    };
    let s = session.into_inner().unwrap_or_else(|e| e.into_inner());
    let wire = s.wire_bytes();
    if let Err(e) = s.close() {
        out.warn(format!("{e}"));
    }
    let doc = json!({
        "snapshot": id.to_hex(),
        "target": format!("serial:{port}"),
        "board": label,
        "safety_snapshot": safety.map(|s| s.to_hex()),
        "safety_snapshot_new": safety_new,
        "head": after.map(|s| s.to_hex()),
        "source": name,
        "files": report.files,
        "dirs": report.dirs,
        "bytes": report.bytes,
        "unchanged": report.unchanged,
        "removed": report.removed,
        "bytes_transferred": pushed,
        "wire_bytes": wire,
        "seconds": started.elapsed().as_secs_f64(),
    });
    crate::journal::note(&doc);
    if out.json {
        print_json(&doc)?;
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
        if let Some(h) = after {
            out.info(format!(
                "the board's new state is snapshot {} of {name} (its parent, {name}~1, is the state before)",
                h.short()
            ));
        }
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
        print_json(&serde_json::Value::Array(arr))?;
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
        outln!(
            "{mark} {:<16} {:<10} {:<9} {}{}",
            d.port,
            d.kind,
            ids,
            who,
            d.board
                .as_ref()
                .map(|b| format!("  [{b}]"))
                .unwrap_or_default()
        )?;
    }
    out.info("* likely a MicroPython board; back one up with: belay backup serial:PORT");
    Ok(())
}
