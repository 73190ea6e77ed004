//! Recording operations in the repository's audit journal
//! (`belay_store::journal`), from one place: [`kind_of`] says which commands
//! are recorded, commands add what they did with [`note`], and
//! `commands::run` writes one entry per run with the outcome, success or
//! error alike.

use std::path::Path;
use std::sync::Mutex;

use belay_store::journal::{self, Entry};
use serde_json::{Map, Value};

use crate::args::Command;

static NOTES: Mutex<Option<Map<String, Value>>> = Mutex::new(None);

/// The journal kind of a command that changes the repository or a board;
/// `None` for reads and dry runs.
pub fn kind_of(c: &Command) -> Option<&'static str> {
    Some(match c {
        Command::Backup(_) => "backup",
        Command::Restore(a) if !a.dry_run => "restore",
        Command::Forget(a) if a.undo => "undo-forget",
        Command::Forget(a) if !a.dry_run => "forget",
        Command::UndoForget => "undo-forget",
        Command::Gc(a) if !a.dry_run => "gc",
        Command::Migrate => "migrate",
        Command::Tag(a) if a.name.is_some() => "tag",
        Command::Import(_) => "import",
        Command::Rename { .. } => "rename",
        Command::Copy(_) => "copy",
        _ => return None,
    })
}

/// Add what the command did (its `--json` document, or part of it).
pub fn note(v: &Value) {
    let mut notes = NOTES.lock().unwrap_or_else(|e| e.into_inner());
    let map = notes.get_or_insert_with(Map::new);
    if let Value::Object(o) = v {
        for (k, v) in o {
            map.insert(k.clone(), v.clone());
        }
    }
}

/// Write the entry for this run. A failure to write it is a warning: the
/// operation itself is done.
pub fn finish(repo_path: &Path, kind: &str, error: Option<&str>, quiet: bool) {
    let details = NOTES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    write(repo_path, kind, details, error, quiet);
}

/// Write one entry of `kind` with `details` (a command's `--json`
/// document): for commands that do several operations in one run, as
/// `belay watch` backs up many boards.
pub fn write(
    repo_path: &Path,
    kind: &str,
    mut details: Map<String, Value>,
    error: Option<&str>,
    quiet: bool,
) {
    let Ok(repo) = crate::commands::open(repo_path) else {
        return; // no repository, nothing to journal
    };
    let source = details
        .remove("source")
        .and_then(|v| v.as_str().map(str::to_string));
    let mut snapshots = Vec::new();
    for key in ["snapshot", "safety_snapshot", "head"] {
        if let Some(Value::String(s)) = details.get(key)
            && !snapshots.contains(s)
        {
            snapshots.push(s.clone());
        }
    }
    for key in ["removed_ids", "restored"] {
        if let Some(Value::Array(a)) = details.get(key) {
            snapshots.extend(a.iter().filter_map(|v| v.as_str().map(str::to_string)));
        }
    }
    details.remove("seconds");
    let now = jiff::Timestamp::now();
    let entry = Entry {
        version: journal::VERSION,
        id: journal::random_id(),
        time: now.to_string(),
        time_ns: now.as_nanosecond() as i64,
        user: user_name(),
        host: crate::commands::hostname(),
        kind: kind.to_string(),
        outcome: if error.is_some() { "error" } else { "ok" }.to_string(),
        error: error.map(str::to_string),
        source,
        snapshots,
        details,
    };
    if let Err(e) = journal::record(&repo, &entry)
        && !quiet
    {
        eprintln!("warning: could not write the journal entry: {e}");
    }
}

/// `$USER`, else the name of this process's uid from /etc/passwd, else
/// `uid N`: an entry always says who.
fn user_name() -> String {
    let u = crate::commands::username();
    if !u.is_empty() {
        return u;
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        });
    let Some(uid) = uid else {
        return "unknown".into();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}
