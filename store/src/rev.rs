//! Revision syntax, as git users expect it:
//!
//! ```text
//! <id>           a full 64-digit snapshot id
//! <prefix>       4 or more leading hex digits of one (must be unique)
//! <tag>          a tag name
//! <source>       a source name: its latest snapshot
//! <rev>~N        N parents back (first parent);  <rev>~ is <rev>~1
//! <rev>^         the first parent
//! <name>@{date}  the latest snapshot of source <name> on or before the end
//!                of that day (host clock; any form of `timespec`)
//! <rev>:<path>   a path inside the snapshot (for ls, cat, restore)
//! HEAD, latest   the latest snapshot of the only source (refused, with the
//!                sources listed, when there are several)
//! A..B           (log, diff) git's range: B and its ancestors that are not
//!                A or its ancestors; `A..` ends at the latest snapshot of
//!                A's source
//! ```
//!
//! Tags win over source names, both over `HEAD`/`latest`, and all over id
//! prefixes.

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::{RefKind, Repo};

/// Split `REV[:PATH]`. Names cannot contain `:`, so the first one separates.
pub fn split_path(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((rev, path)) => (rev, Some(path)),
        None => (spec, None),
    }
}

/// The names that stand for the latest snapshot of the only source.
pub const LATEST_NAMES: [&str; 2] = ["HEAD", "latest"];

/// The latest snapshot of the repository's only source; `what` is how the
/// caller asked (for the message when there are several sources).
pub fn only_head(repo: &Repo, what: &str) -> Result<ObjectId> {
    let heads = repo.list_refs(RefKind::Head)?;
    let mut it = heads.iter();
    match (it.next(), it.next()) {
        (None, _) => Err(Error::Rev(format!(
            "{what}: the repository has no snapshots yet; run `belay backup` first"
        ))),
        (Some((_, id)), None) => Ok(*id),
        (Some((first, _)), Some(_)) => {
            let names: Vec<&str> = heads.keys().map(String::as_str).collect();
            Err(Error::Rev(format!(
                "{what}: the repository has several sources ({}); name one, e.g. `{first}` (its latest snapshot)",
                names.join(", ")
            )))
        }
    }
}

/// Split git's `A..B` range syntax; `None` when `spec` is not a range.
/// `A...B` (a symmetric difference in git) is refused: snapshots have one
/// line of parents.
pub fn split_range(spec: &str) -> Result<Option<(&str, &str)>> {
    if spec.contains("...") {
        return Err(Error::Rev(format!(
            "{spec:?}: A...B is not supported (a snapshot has a single parent); write A..B for the snapshots after A up to B, or give two revisions to diff"
        )));
    }
    Ok(spec.split_once(".."))
}

/// The snapshots of `A..B`, newest first: B and its live ancestors, up to
/// (not including) A or any ancestor of A. An empty B is the latest
/// snapshot of A's source; an empty A is no lower bound.
pub fn resolve_range(repo: &Repo, from: &str, to: &str) -> Result<Vec<ObjectId>> {
    let stop: std::collections::BTreeSet<ObjectId> = if from.is_empty() {
        Default::default()
    } else {
        ancestors(repo, resolve(repo, from)?)?.into_iter().collect()
    };
    let to_id = if to.is_empty() {
        if from.is_empty() {
            return Err(Error::Rev(
                "\"..\": give at least one side of the range, e.g. NAME~3..NAME".into(),
            ));
        }
        let a = resolve(repo, from)?;
        let source = repo.read_snapshot(&a)?.source;
        repo.read_ref(RefKind::Head, &source)?.ok_or_else(|| {
            Error::Rev(format!(
                "{from}..: source {source:?} has no latest snapshot (it was forgotten)"
            ))
        })?
    } else {
        resolve(repo, to)?
    };
    Ok(ancestors(repo, to_id)?
        .into_iter()
        .take_while(|id| !stop.contains(id))
        .collect())
}

/// `id` and its live ancestors along the first parent, newest first.
fn ancestors(repo: &Repo, id: ObjectId) -> Result<Vec<ObjectId>> {
    let mut out = vec![id];
    let mut next = repo.read_snapshot(&id)?.parents.first().copied();
    while let Some(p) = next {
        if !repo.is_live(&p) {
            break;
        }
        out.push(p);
        next = repo.read_snapshot(&p)?.parents.first().copied();
    }
    Ok(out)
}

pub fn resolve(repo: &Repo, rev: &str) -> Result<ObjectId> {
    if rev.contains("..") {
        return Err(Error::Rev(format!(
            "{rev:?}: a range A..B is accepted by `belay log` and `belay diff` only; here give one snapshot"
        )));
    }
    let (base, ops) = match rev.find(['~', '^']) {
        Some(i) => (&rev[..i], &rev[i..]),
        None => (rev, ""),
    };
    if base.is_empty() {
        return Err(Error::Rev(format!(
            "invalid revision {rev:?}: expected a snapshot id, tag or source name"
        )));
    }
    let mut id = resolve_base(repo, base)?;
    let mut rest = ops;
    while !rest.is_empty() {
        let (op, tail) = rest.split_at(1);
        let digits: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
        rest = &tail[digits.len()..];
        let n: usize = if digits.is_empty() {
            1
        } else {
            digits
                .parse()
                .map_err(|_| Error::Rev(format!("invalid count in {rev:?}")))?
        };
        let steps = match op {
            "~" => n,
            // `^N` would pick the Nth parent; snapshots have one parent.
            _ if n == 1 => 1,
            _ => {
                return Err(Error::Rev(format!(
                    "{rev:?}: snapshots have a single parent; use ~N to go back N snapshots"
                )));
            }
        };
        for _ in 0..steps {
            let snap = repo.read_snapshot(&id)?;
            let Some(parent) = snap.parents.first() else {
                return Err(Error::Rev(format!(
                    "{rev:?} goes back past the first snapshot of {:?}",
                    snap.source
                )));
            };
            if !repo.is_live(parent) {
                return Err(Error::Rev(format!(
                    "{rev:?} reaches snapshot {} which was forgotten",
                    parent.short()
                )));
            }
            id = *parent;
        }
    }
    Ok(id)
}

fn resolve_base(repo: &Repo, base: &str) -> Result<ObjectId> {
    if let Some(open) = base.find("@{") {
        let (name, spec) = (&base[..open], &base[open + 2..]);
        let Some(spec) = spec.strip_suffix('}') else {
            return Err(Error::Rev(format!(
                "invalid revision {base:?}: expected NAME@{{YYYY-MM-DD}}"
            )));
        };
        if name.is_empty() {
            return Err(Error::Rev(format!(
                "invalid revision {base:?}: give a source name before @{{…}}"
            )));
        }
        let limit = crate::timespec::parse(
            spec,
            crate::timespec::Bound::End,
            jiff::Timestamp::now(),
            &jiff::tz::TimeZone::system(),
        )
        .map_err(Error::Rev)?;
        return crate::history::at_or_before(repo, name, limit, spec);
    }
    if let Some(id) = ObjectId::from_hex(base) {
        if repo.has_object(&id) {
            return Ok(id);
        }
        return Err(Error::Rev(format!("no snapshot {base} in this repository")));
    }
    if crate::repo::validate_ref_name(base).is_ok() {
        if let Some(id) = repo.read_ref(RefKind::Tag, base)? {
            return Ok(id);
        }
        if let Some(id) = repo.read_ref(RefKind::Head, base)? {
            return Ok(id);
        }
    }
    if LATEST_NAMES.contains(&base) {
        return only_head(repo, base);
    }
    let is_hex = base.len() >= 4 && base.len() < 64 && base.chars().all(|c| c.is_ascii_hexdigit());
    if is_hex {
        let prefix = base.to_ascii_lowercase();
        let matches: Vec<ObjectId> = repo
            .list_snapshots()?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&prefix))
            .collect();
        match matches.len() {
            1 => return Ok(matches[0]),
            0 => {}
            _ => {
                let list: Vec<String> = matches
                    .iter()
                    .map(|m| match repo.read_snapshot(m) {
                        Ok(s) => format!("{} ({}, {})", m.short(), s.source, s.time()),
                        Err(_) => m.short(),
                    })
                    .collect();
                return Err(Error::Rev(format!(
                    "snapshot id prefix {base:?} is ambiguous: it matches {}; give more digits",
                    list.join(", ")
                )));
            }
        }
    }
    Err(Error::Rev(format!(
        "unknown revision {base:?}: not a snapshot id, tag or source name (`belay log` lists snapshots)"
    )))
}
