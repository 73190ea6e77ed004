//! `belay diff`: parse, call `belay_core::diff`, print the changes (a
//! list, `--stat`, `--patch`, or JSON); `--exit-code` as git's.

use super::Ctx;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Result;
use belay_core::diff::{
    DiffEntry, DiffOptions, DiffResult, Lines, has_content, kind_word, side_names, size_of,
};
use belay_store::Repo;
use belay_store::diff::{Change, ChangeKind};
use belay_store::path as bpath;
use belay_store::tree::{Node, TreeEntry};

use crate::args::DiffArgs;
use crate::output::{self, print_json};

/// `belay diff`; with `--exit-code`, exit status 1 when there are
/// differences, as git's.
pub(crate) fn diff(ctx: &Ctx, repo: &Repo, a: DiffArgs) -> Result<ExitCode> {
    let opts = DiffOptions {
        from: a.from.clone(),
        to: a.to.clone(),
        paths: a.paths.clone(),
        excludes: a.excludes.clone(),
        stat: a.stat,
        patch: a.patch,
        context: a.context,
    };
    let r = belay_core::diff(repo, &opts, ctx)?;
    report(ctx, &r);
    render(ctx, &a, &r)?;
    Ok(if a.exit_code && !r.changes.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What the comparison cost and found besides the changes (stderr).
fn report(ctx: &Ctx, r: &DiffResult) {
    if let Some(n) = r.trees_read
        && ctx.verbose > 0
    {
        eprintln!("compared {n} tree objects");
    }
    if let Some((o, n)) = &r.firmware
        && !ctx.json
        && !ctx.quiet
    {
        eprintln!("firmware changed: {o} -> {n}");
    }
    let Some(d) = &r.live else { return };
    if ctx.quiet || ctx.json {
        return;
    }
    for w in &d.warnings {
        eprintln!("warning: {w}");
    }
    if ctx.verbose > 0 {
        eprintln!(
            "{}: {} files unchanged by size and time, {} hashed by the source, {} read here ({})",
            d.what,
            d.files_unchanged_by_mtime,
            d.files_hashed_by_source,
            d.files_read,
            output::size(d.bytes_read)
        );
    }
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

fn render(ctx: &Ctx, a: &DiffArgs, r: &DiffResult) -> Result<()> {
    if ctx.json {
        print_json(r)?;
        return Ok(());
    }
    let entries: &[DiffEntry] = &r.changes;
    let changes: Vec<&Change> = entries.iter().map(|e| &e.change).collect();
    let lines: Vec<Option<&Lines>> = entries.iter().map(|e| e.lines.as_ref()).collect();
    let colors = Colors {
        on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let mut out = std::io::stdout().lock();
    if a.name_only {
        for c in &changes {
            writeln!(out, "{}", display_path(c))?;
        }
        return Ok(());
    }
    if a.stat {
        write_stat(&mut out, &changes, &lines)?;
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
    for c in &changes {
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

fn write_stat(out: &mut impl Write, changes: &[&Change], lines: &[Option<&Lines>]) -> Result<()> {
    let rows: Vec<(String, &Lines, &Change)> = changes
        .iter()
        .zip(lines)
        .filter_map(|(c, l)| l.map(|l| (bpath::display(&c.path), l, *c)))
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
