//! `belay diff`: what changed between two snapshots (a walk of both trees
//! that skips equal subtrees by id), or between a snapshot and a folder or
//! board as it is now (nothing is written; a board hashes its own files, so
//! only files shown with `-p` cross the wire).

use super::Ctx;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use belay_store::diff::{self, Change, ChangeKind, LiveDiff, PathFilter};
use belay_store::path as bpath;
use belay_store::repo::RefKind;
use belay_store::restore::ContentReader;
use belay_store::source::Source;
use belay_store::tree::{Node, TreeEntry};
use belay_store::{ObjectId, Repo, rev, walk};
use belay_transport::Location;
use belay_transport::dir::DirSource;
use belay_transport::serial::{BoardSource, ConnectOptions, PullOptions, Session};
use serde_json::{Value, json};
use similar::{ChangeTag, TextDiff};

use crate::args::DiffArgs;
use crate::output::{self, print_json};

/// Files larger than this are not diffed line by line.
const MAX_TEXT: u64 = 8 << 20;

/// Where the new side's file contents come from.
enum NewSide<'a> {
    Repo,
    Live(&'a dyn Source),
}

/// A folder or board named on the command line, if `arg` is one.
pub(crate) fn live_location(repo: &Repo, arg: &str) -> Option<Location> {
    if arg.starts_with("dir:") || arg.starts_with("serial:") {
        return Location::parse(arg).ok();
    }
    // A plain path to an existing folder, when it is not a revision.
    if rev::resolve(repo, arg).is_err() && Path::new(arg).is_dir() {
        return Some(Location::Dir(arg.into()));
    }
    None
}

/// Set by [`render`] when it shows at least one change (for `--exit-code`).
static CHANGES_SHOWN: AtomicBool = AtomicBool::new(false);

/// `belay diff`; with `--exit-code`, exit status 1 when there are
/// differences, as git's.
pub(crate) fn diff(ctx: &Ctx, repo: &Repo, a: DiffArgs) -> Result<ExitCode> {
    let exit_code = a.exit_code;
    diff_sides(ctx, repo, a)?;
    Ok(if exit_code && CHANGES_SHOWN.load(Ordering::Relaxed) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn diff_sides(ctx: &Ctx, repo: &Repo, mut a: DiffArgs) -> Result<()> {
    // git's `diff A..B` is `diff A B`.
    if a.to.is_none()
        && !a.from.contains(':')
        && let Some((from, to)) = rev::split_range(&a.from)?
    {
        if from.is_empty() || to.is_empty() {
            bail!(
                "{:?}: give both sides, e.g. `belay diff NAME~1..NAME` (or `belay diff NAME~1 NAME`)",
                a.from
            );
        }
        let (from, to) = (from.to_string(), to.to_string());
        a.from = from;
        a.to = Some(to);
    }
    let paths: Vec<Vec<u8>> = a.paths.iter().map(|p| bpath::parse_user_path(p)).collect();
    let filter = PathFilter::new(&paths)?;

    // `belay diff dir:PATH` / `serial:PORT` alone: against that source's
    // latest snapshot.
    if a.to.is_none() && (a.from.starts_with("dir:") || a.from.starts_with("serial:")) {
        let loc = Location::parse(&a.from).map_err(|e| anyhow!("{e}"))?;
        return live(ctx, repo, &a, None, loc, &filter);
    }
    if a.from.starts_with("dir:") || a.from.starts_with("serial:") {
        bail!(
            "a folder or board goes second: `belay diff REV {}` (or alone, against its latest snapshot)",
            a.from
        );
    }
    if rev::split_path(&a.from).1.is_some() {
        return diff_paths(ctx, repo, &a, &filter);
    }
    let from_id = rev::resolve(repo, &a.from)?;
    let from = repo.read_snapshot(&from_id)?;
    let Some(to) = &a.to else {
        // One revision: against its parent.
        let old_tree = match from.parents.first() {
            None => None,
            Some(p) if repo.has_object(p) => Some(repo.read_snapshot(p)?.tree),
            Some(p) => bail!(
                "the parent of {} ({}) was forgotten; give two revisions to compare",
                from_id.short(),
                p.short()
            ),
        };
        let changes = diff::diff_trees(repo, old_tree.as_ref(), Some(&from.tree), &filter)?;
        if ctx.verbose > 0 {
            eprintln!("compared {} tree objects", repo.trees_read());
        }
        return render(ctx, repo, &a, &changes, NewSide::Repo);
    };
    if let Some(loc) = live_location(repo, to) {
        return live(ctx, repo, &a, Some(from_id), loc, &filter);
    }
    if rev::split_path(to).1.is_some() {
        return diff_paths(ctx, repo, &a, &filter);
    }
    let to_id = rev::resolve(repo, to)?;
    let to_snap = repo.read_snapshot(&to_id)?;
    let changes = diff::diff_trees(repo, Some(&from.tree), Some(&to_snap.tree), &filter)?;
    if ctx.verbose > 0 {
        eprintln!("compared {} tree objects", repo.trees_read());
    }
    if !ctx.json
        && !ctx.quiet
        && let (Some(o), Some(n)) = (
            from.device_value("firmware"),
            to_snap.device_value("firmware"),
        )
        && o != n
    {
        eprintln!("firmware changed: {o} -> {n}");
    }
    render(ctx, repo, &a, &changes, NewSide::Repo)
}

/// `belay diff A:PATH B:PATH`: two directories (their contents, with
/// paths relative to them) or two files of any snapshots. A side without
/// `:PATH` stands for the same path as the other side.
fn diff_paths(ctx: &Ctx, repo: &Repo, a: &DiffArgs, filter: &PathFilter) -> Result<()> {
    let Some(to) = &a.to else {
        bail!(
            "`belay diff REV:PATH` needs a second side, e.g. `belay diff {} OTHER:PATH`",
            a.from
        );
    };
    let (fr, fp) = rev::split_path(&a.from);
    let (tr, tp) = rev::split_path(to);
    let fp = fp.or(tp).map(bpath::parse_user_path).unwrap_or_default();
    let tp = tp.map(bpath::parse_user_path).unwrap_or_else(|| fp.clone());
    let side = |r: &str, p: &[u8]| -> Result<TreeEntry> {
        let id = rev::resolve(repo, r)?;
        let snap = repo.read_snapshot(&id)?;
        walk::lookup(repo, &snap.tree, p)?.ok_or_else(|| {
            anyhow!(
                "{}: no such path in snapshot {}",
                bpath::display(p),
                id.short()
            )
        })
    };
    let (old, new) = (side(fr, &fp)?, side(tr, &tp)?);
    let changes = match (&old.node, &new.node) {
        (Node::Dir { tree: t1 }, Node::Dir { tree: t2 }) => {
            diff::diff_trees(repo, Some(t1), Some(t2), filter)?
        }
        (Node::Dir { .. }, _) | (_, Node::Dir { .. }) => bail!(
            "{} is a {} and {} a {}: compare two directories or two files",
            bpath::display(&fp),
            old.node.kind_name(),
            bpath::display(&tp),
            new.node.kind_name()
        ),
        _ => {
            let mut c = Change {
                path: tp.clone(),
                change: ChangeKind::Modified,
                old: Some(old.clone()),
                new: Some(new.clone()),
                new_sha256_known: true,
            };
            if std::mem::discriminant(&old.node) != std::mem::discriminant(&new.node) {
                c.change = ChangeKind::TypeChanged;
            }
            let same = c.change == ChangeKind::Modified
                && !c.content_changed()
                && (old.mode == new.mode || old.mode == 0 || new.mode == 0);
            if same { Vec::new() } else { vec![c] }
        }
    };
    render(ctx, repo, a, &changes, NewSide::Repo)
}

/// The newest head whose snapshot came from the board with this unique id.
fn latest_for_board(repo: &Repo, uid: &str) -> Result<Option<ObjectId>> {
    let mut best: Option<(i64, ObjectId)> = None;
    for (_, id) in repo.list_refs(RefKind::Head)? {
        let Ok(s) = repo.read_snapshot(&id) else {
            continue;
        };
        if s.device_value("unique_id") == Some(uid) && best.is_none_or(|b| s.time_ns > b.0) {
            best = Some((s.time_ns, id));
        }
    }
    Ok(best.map(|b| b.1))
}

/// A spinner on stderr while a live source is walked and hashed (only on a
/// terminal, never with -q or --json).
fn spinner(ctx: &Ctx, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::hidden();
    if !ctx.quiet && !ctx.json && std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .expect("valid template"),
        );
        bar.set_message(format!("comparing with {what}…"));
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
    }
    bar
}

fn report_live(ctx: &Ctx, what: &str, d: &LiveDiff) {
    if ctx.quiet || ctx.json {
        return;
    }
    for w in &d.warnings {
        eprintln!("warning: {w}");
    }
    if ctx.verbose > 0 {
        eprintln!(
            "{what}: {} files unchanged by size and time, {} hashed by the source, {} read here ({})",
            d.files_unchanged_by_mtime,
            d.files_hashed_by_source,
            d.files_read,
            output::size(d.bytes_read)
        );
    }
}

fn live(
    ctx: &Ctx,
    repo: &Repo,
    a: &DiffArgs,
    from: Option<ObjectId>,
    loc: Location,
    filter: &PathFilter,
) -> Result<()> {
    match loc {
        Location::Dir(dir) => {
            let mut source = DirSource::new(&dir, a.excludes.clone(), false)
                .with_context(|| format!("cannot read {}", dir.display()))?;
            source.skip_path(repo.root());
            let from = match from {
                Some(f) => f,
                None => {
                    let name = belay_store::repo::default_source_name(&source);
                    repo.read_ref(RefKind::Head, &name)?.ok_or_else(|| {
                        anyhow!(
                            "no snapshot of a source named {name:?}; give the snapshot to compare with: `belay diff REV {}`",
                            a.from
                        )
                    })?
                }
            };
            let snap = repo.read_snapshot(&from)?;
            let bar = spinner(ctx, &source.location());
            let d = diff::diff_source(repo, &snap.tree, &source, filter);
            bar.finish_and_clear();
            let d = d?;
            report_live(ctx, &source.location(), &d);
            render(ctx, repo, a, &d.changes, NewSide::Live(&source))
        }
        Location::Serial { port, baud } => {
            if !ctx.json && !ctx.quiet && std::io::stderr().is_terminal() {
                eprintln!("connecting to the board on {port}…");
            }
            let session = Session::connect(&port, baud, &ConnectOptions::default())?;
            let label = session.label().to_string();
            let from = match from {
                Some(f) => f,
                None => {
                    let uid = session.info.unique_id().map(str::to_string);
                    match uid
                        .as_deref()
                        .map(|u| latest_for_board(repo, u))
                        .transpose()?
                    {
                        Some(Some(id)) => id,
                        _ => bail!(
                            "{label}: no snapshot of this board found; give the snapshot to compare with: `belay diff REV {}`",
                            a.from
                        ),
                    }
                }
            };
            let snap = repo.read_snapshot(&from)?;
            if !session.info.has_hashlib() && !ctx.quiet {
                eprintln!(
                    "warning: {label}: the board has no hashlib, so every file of the same size is pulled to compare it"
                );
            }
            let pull = PullOptions {
                deflate: session.info.can_deflate(),
                hash: true,
            };
            let session = Mutex::new(session);
            let result = (|| -> Result<()> {
                let source = BoardSource::new(&session, pull).with_excludes(&a.excludes)?;
                let bar = spinner(ctx, &label);
                let d = diff::diff_source(repo, &snap.tree, &source, filter);
                bar.finish_and_clear();
                let d = d?;
                report_live(ctx, &label, &d);
                render(ctx, repo, a, &d.changes, NewSide::Live(&source))
            })();
            let mut session = session.into_inner().unwrap_or_else(|e| e.into_inner());
            if result.is_ok() {
                for w in std::mem::take(&mut session.warnings) {
                    if !ctx.quiet {
                        eprintln!("warning: {w}");
                    }
                }
                if let Err(e) = session.close()
                    && !ctx.quiet
                {
                    eprintln!("warning: {e}");
                }
            }
            result.with_context(|| format!("diff against {label} failed"))
        }
    }
}

// ---- contents ----------------------------------------------------------

/// The bytes of an entry for a text diff: a file's content or a link's
/// target; nothing for directories or absent entries.
fn content(repo: &Repo, e: Option<&TreeEntry>, path: &[u8], side: &NewSide) -> Result<Vec<u8>> {
    let Some(e) = e else { return Ok(Vec::new()) };
    match &e.node {
        Node::Dir { .. } => Ok(Vec::new()),
        Node::Symlink { target } => Ok(target.clone()),
        Node::File {
            size,
            sha256,
            chunks,
        } => {
            let mut buf = Vec::with_capacity(*size as usize);
            match side {
                NewSide::Live(src) => {
                    src.open(path)
                        .and_then(|mut r| r.read_to_end(&mut buf))
                        .with_context(|| format!("reading {}", bpath::display(path)))?;
                }
                NewSide::Repo => {
                    let mut r = ContentReader::new(repo, chunks, *size, *sha256, path);
                    if let Err(e) = r.read_to_end(&mut buf) {
                        return Err(match r.error.take() {
                            Some(err) => err.into(),
                            None => e.into(),
                        });
                    }
                }
            }
            Ok(buf)
        }
    }
}

fn is_text(b: &[u8]) -> bool {
    !b[..b.len().min(8000)].contains(&0) && std::str::from_utf8(b).is_ok()
}

fn too_big(e: Option<&TreeEntry>) -> bool {
    matches!(e.map(|e| &e.node), Some(Node::File { size, .. }) if *size > MAX_TEXT)
}

/// git's `a/PATH` / `b/PATH` names for the two sides of a patch,
/// `/dev/null` for a side without content.
fn side_names(p: &str, o: Option<&TreeEntry>, n: Option<&TreeEntry>) -> (String, String) {
    let name = |side: &str, e| {
        if has_content(e) {
            format!("{side}/{p}")
        } else {
            "/dev/null".to_string()
        }
    };
    (name("a", o), name("b", n))
}

fn has_content(e: Option<&TreeEntry>) -> bool {
    matches!(
        e.map(|e| &e.node),
        Some(Node::File { .. } | Node::Symlink { .. })
    )
}

/// What a text comparison of one change found.
#[derive(Default)]
struct Lines {
    binary: bool,
    insertions: usize,
    deletions: usize,
    /// Unified diff hunks (with -p).
    patch: String,
}

fn compare(
    repo: &Repo,
    c: &Change,
    side: &NewSide,
    context: usize,
    want_patch: bool,
) -> Result<Option<Lines>> {
    let (o, n) = (c.old.as_ref(), c.new.as_ref());
    if !has_content(o) && !has_content(n) {
        return Ok(None);
    }
    if !c.content_changed() && c.change == ChangeKind::Modified {
        return Ok(Some(Lines::default()));
    }
    if too_big(o) || too_big(n) {
        return Ok(Some(Lines {
            binary: true,
            ..Lines::default()
        }));
    }
    let old = if has_content(o) {
        content(repo, o, &c.path, &NewSide::Repo)?
    } else {
        Vec::new()
    };
    // Old binary content makes the pair binary whatever the new side is:
    // do not pull the new side (from a board, that saves the transfer).
    if !is_text(&old) {
        return Ok(Some(Lines {
            binary: true,
            ..Lines::default()
        }));
    }
    let new = if has_content(n) {
        content(repo, n, &c.path, side)?
    } else {
        Vec::new()
    };
    if !is_text(&old) || !is_text(&new) {
        return Ok(Some(Lines {
            binary: true,
            ..Lines::default()
        }));
    }
    let (old, new) = (
        std::str::from_utf8(&old).unwrap(),
        std::str::from_utf8(&new).unwrap(),
    );
    let td = TextDiff::from_lines(old, new);
    let mut l = Lines::default();
    for ch in td.iter_all_changes() {
        match ch.tag() {
            ChangeTag::Insert => l.insertions += 1,
            ChangeTag::Delete => l.deletions += 1,
            ChangeTag::Equal => {}
        }
    }
    if want_patch {
        let p = bpath::display(&c.path);
        let (a_name, b_name) = side_names(&p, o, n);
        l.patch = td
            .unified_diff()
            .context_radius(context)
            .header(&a_name, &b_name)
            .to_string();
    }
    Ok(Some(l))
}

// ---- output --------------------------------------------------------------

fn git_mode(e: &TreeEntry) -> String {
    match &e.node {
        Node::Symlink { .. } => "120000".into(),
        Node::Dir { .. } => "040000".into(),
        Node::File { .. } => {
            if e.mode & 0o111 != 0 {
                "100755".into()
            } else {
                "100644".into()
            }
        }
    }
}

fn kind_word(e: &TreeEntry) -> &'static str {
    match e.node {
        Node::File { .. } => "file",
        Node::Dir { .. } => "dir",
        Node::Symlink { .. } => "symlink",
    }
}

fn display_path(c: &Change) -> String {
    let mut p = bpath::display(&c.path);
    let is_dir =
        |e: &Option<TreeEntry>| matches!(e.as_ref().map(|e| &e.node), Some(Node::Dir { .. }));
    if (c.change != ChangeKind::TypeChanged && (is_dir(&c.new) || is_dir(&c.old)))
        || (c.change == ChangeKind::TypeChanged && is_dir(&c.new))
    {
        p.push('/');
    }
    p
}

fn size_of(e: &Option<TreeEntry>) -> Option<u64> {
    match e.as_ref().map(|e| &e.node) {
        Some(Node::Dir { .. }) | None => None,
        Some(n) => Some(n.size()),
    }
}

fn change_json(c: &Change) -> Value {
    let side = |e: &Option<TreeEntry>| {
        let sha = match e.as_ref().map(|e| &e.node) {
            Some(Node::File { sha256, .. }) => Some(hex::encode(sha256)),
            _ => None,
        };
        let target = match e.as_ref().map(|e| &e.node) {
            Some(Node::Symlink { target }) => Some(bpath::display(target)),
            _ => None,
        };
        (
            e.as_ref().map(kind_word),
            size_of(e),
            sha,
            e.as_ref().map(|e| e.mode),
            target,
        )
    };
    let (ot, os, oh, om, ol) = side(&c.old);
    let (nt, ns, nh, nm, nl) = side(&c.new);
    let nh = nh.filter(|_| c.new_sha256_known);
    let mut v = json!({
        "path": bpath::display(&c.path),
        "change": c.change.name(),
        "old_size": os,
        "new_size": ns,
        "old_type": ot,
        "new_type": nt,
        "old_sha256": oh,
        "new_sha256": nh,
        "old_mode": om,
        "new_mode": nm,
    });
    if ol.is_some() || nl.is_some() {
        v["old_target"] = json!(ol);
        v["new_target"] = json!(nl);
    }
    v
}

struct Colors {
    on: bool,
}

impl Colors {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn patch(&self, text: &str) -> String {
        if !self.on {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len() + 64);
        for line in text.split_inclusive('\n') {
            let (body, nl) = match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            };
            let code = if body.starts_with("+++") || body.starts_with("---") {
                "1"
            } else if body.starts_with('+') {
                "32"
            } else if body.starts_with('-') {
                "31"
            } else if body.starts_with("@@") {
                "36"
            } else {
                ""
            };
            if code.is_empty() {
                out.push_str(line);
            } else {
                out.push_str(&self.paint(code, body));
                out.push_str(nl);
            }
        }
        out
    }
}

fn render(ctx: &Ctx, repo: &Repo, a: &DiffArgs, changes: &[Change], side: NewSide) -> Result<()> {
    if !changes.is_empty() {
        CHANGES_SHOWN.store(true, Ordering::Relaxed);
    }
    let need_lines = a.patch || a.stat;
    let mut lines: Vec<Option<Lines>> = Vec::with_capacity(changes.len());
    if need_lines {
        for c in changes {
            lines.push(compare(repo, c, &side, a.context, a.patch)?);
        }
    }
    if ctx.json {
        let arr: Vec<Value> = changes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut v = change_json(c);
                if let Some(Some(l)) = lines.get(i) {
                    v["binary"] = json!(l.binary);
                    if a.stat {
                        v["insertions"] = json!(l.insertions);
                        v["deletions"] = json!(l.deletions);
                    }
                    if a.patch && !l.binary {
                        v["patch"] = json!(l.patch);
                    }
                }
                v
            })
            .collect();
        print_json(&Value::Array(arr))?;
        return Ok(());
    }
    let colors = Colors {
        on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let mut out = std::io::stdout().lock();
    if a.name_only {
        for c in changes {
            writeln!(out, "{}", display_path(c))?;
        }
        return Ok(());
    }
    if a.stat {
        write_stat(&mut out, changes, &lines)?;
        if a.patch {
            writeln!(out)?;
        }
    }
    if a.patch {
        for (c, l) in changes.iter().zip(&lines) {
            let Some(l) = l else { continue };
            write_patch(&mut out, &colors, c, l)?;
        }
        return Ok(());
    }
    if a.stat {
        return Ok(());
    }
    for c in changes {
        let detail = match c.change {
            ChangeKind::Added | ChangeKind::Removed => {
                let e = c.new.as_ref().or(c.old.as_ref());
                match e.map(|e| &e.node) {
                    Some(Node::File { size, .. }) => format!("  ({})", output::size(*size)),
                    Some(Node::Symlink { target }) => format!("  -> {}", bpath::display(target)),
                    _ => String::new(),
                }
            }
            ChangeKind::Modified => {
                let (o, n) = (c.old.as_ref().unwrap(), c.new.as_ref().unwrap());
                let mut parts = Vec::new();
                match (&o.node, &n.node) {
                    (Node::File { size: s1, .. }, Node::File { size: s2, .. })
                        if c.content_changed() =>
                    {
                        parts.push(format!("{} → {}", output::size(*s1), output::size(*s2)));
                    }
                    (Node::Symlink { target: t1 }, Node::Symlink { target: t2 }) => {
                        parts.push(format!(
                            "link {} → {}",
                            bpath::display(t1),
                            bpath::display(t2)
                        ));
                    }
                    _ => {}
                }
                if o.mode != n.mode && o.mode != 0 && n.mode != 0 {
                    parts.push(format!("mode {:04o} → {:04o}", o.mode, n.mode));
                }
                format!("  ({})", parts.join(", "))
            }
            ChangeKind::TypeChanged => format!(
                "  ({} → {})",
                kind_word(c.old.as_ref().unwrap()),
                kind_word(c.new.as_ref().unwrap())
            ),
        };
        let letter = c.change.letter().to_string();
        let code = match c.change {
            ChangeKind::Added => "32",
            ChangeKind::Removed => "31",
            ChangeKind::Modified => "33",
            ChangeKind::TypeChanged => "35",
        };
        writeln!(
            out,
            "{}  {}{}",
            colors.paint(code, &letter),
            display_path(c),
            detail
        )?;
    }
    if !ctx.quiet && changes.is_empty() {
        eprintln!("no changes");
    }
    if !ctx.quiet && !changes.is_empty() {
        let count = |k: ChangeKind| changes.iter().filter(|c| c.change == k).count();
        eprintln!(
            "{} added, {} removed, {} modified, {} type changed",
            count(ChangeKind::Added),
            count(ChangeKind::Removed),
            count(ChangeKind::Modified),
            count(ChangeKind::TypeChanged)
        );
    }
    Ok(())
}

fn write_stat(out: &mut impl Write, changes: &[Change], lines: &[Option<Lines>]) -> Result<()> {
    let rows: Vec<(String, &Lines, &Change)> = changes
        .iter()
        .zip(lines)
        .filter_map(|(c, l)| l.as_ref().map(|l| (bpath::display(&c.path), l, c)))
        .collect();
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let most = rows
        .iter()
        .map(|r| r.1.insertions + r.1.deletions)
        .max()
        .unwrap_or(0);
    let nwidth = most.to_string().len();
    let (mut ins, mut del) = (0usize, 0usize);
    for (p, l, c) in &rows {
        if l.binary {
            let o = size_of(&c.old).unwrap_or(0);
            let n = size_of(&c.new).unwrap_or(0);
            writeln!(out, " {p:width$} | Bin {o} -> {n} bytes")?;
            continue;
        }
        ins += l.insertions;
        del += l.deletions;
        let total = l.insertions + l.deletions;
        let (pi, pd) = if most > 50 {
            let scale = |n: usize| if n == 0 { 0 } else { (n * 50 / most).max(1) };
            (scale(l.insertions), scale(l.deletions))
        } else {
            (l.insertions, l.deletions)
        };
        writeln!(
            out,
            " {p:width$} | {total:>nwidth$} {}{}",
            "+".repeat(pi),
            "-".repeat(pd)
        )?;
    }
    let n = rows.len();
    writeln!(
        out,
        " {n} file{} changed, {ins} insertion{}(+), {del} deletion{}(-)",
        if n == 1 { "" } else { "s" },
        if ins == 1 { "" } else { "s" },
        if del == 1 { "" } else { "s" }
    )?;
    Ok(())
}

fn write_patch(out: &mut impl Write, colors: &Colors, c: &Change, l: &Lines) -> Result<()> {
    let p = bpath::display(&c.path);
    let header = format!("diff --git a/{p} b/{p}");
    writeln!(out, "{}", colors.paint("1", &header))?;
    let (o, n) = (c.old.as_ref(), c.new.as_ref());
    fn with_content(e: Option<&TreeEntry>) -> Option<&TreeEntry> {
        e.filter(|e| has_content(Some(e)))
    }
    match (with_content(o), with_content(n)) {
        (None, Some(n)) => writeln!(out, "new file mode {}", git_mode(n))?,
        (Some(o), None) => writeln!(out, "deleted file mode {}", git_mode(o))?,
        (Some(o), Some(n)) if git_mode(o) != git_mode(n) => {
            writeln!(out, "old mode {}", git_mode(o))?;
            writeln!(out, "new mode {}", git_mode(n))?;
        }
        _ => {}
    }
    if c.change == ChangeKind::TypeChanged {
        writeln!(
            out,
            "# type changed: {} -> {}",
            kind_word(o.unwrap()),
            kind_word(n.unwrap())
        )?;
    }
    if l.binary {
        let (a_name, b_name) = side_names(&p, o, n);
        writeln!(out, "Binary files {a_name} and {b_name} differ")?;
    } else {
        write!(out, "{}", colors.patch(&l.patch))?;
    }
    Ok(())
}
