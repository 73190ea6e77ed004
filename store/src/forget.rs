//! `forget`: apply a retention policy per source, move the markers of the
//! snapshots it removes to `trash/` (with an undo record), move heads that
//! pointed at removed snapshots; and `undo-forget`. Objects are untouched:
//! `gc` reclaims them later (and empties the trash).
//!
//! Heads: a source's head must name a live snapshot, because the next
//! backup of that source reuses its parent's objects without reading them.
//! When a forget removes the snapshot a head points at, the head moves to
//! the newest snapshot of that source the policy keeps; when it keeps none,
//! the head is removed (the next backup starts a new history, still
//! deduplicated against everything stored). The undo record puts heads back.

use std::collections::BTreeMap;
use std::io;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::id::ObjectId;
use crate::repo::{RefKind, Repo};
use crate::retention::{self, Candidate, Decision, Policy};

/// The undo record of the last forget: `trash/undo.json`.
pub const UNDO_FILE: &str = "undo.json";
pub const TRASH_DIR: &str = "trash";
pub const UNDO_KEY: &str = "trash/undo.json";

#[derive(Clone, Debug)]
pub struct SourcePlan {
    pub source: String,
    /// The policy applied, described (`Policy::describe`).
    pub policy: String,
    /// Newest first.
    pub decisions: Vec<Decision<ObjectId>>,
    /// Where the head points now, and where it will point (None: removed).
    pub head_before: Option<ObjectId>,
    pub head_after: Option<ObjectId>,
}

#[derive(Clone, Debug)]
pub struct ForgetPlan {
    pub sources: Vec<SourcePlan>,
}

impl ForgetPlan {
    pub fn removed(&self) -> impl Iterator<Item = &Decision<ObjectId>> {
        self.sources
            .iter()
            .flat_map(|s| s.decisions.iter())
            .filter(|d| !d.keep)
    }
    pub fn kept_count(&self) -> usize {
        self.sources
            .iter()
            .flat_map(|s| s.decisions.iter())
            .filter(|d| d.keep)
            .count()
    }
}

/// What the policy would do to every live snapshot (of `only_source`, if given).
pub fn plan(
    repo: &Repo,
    policy: &Policy,
    only_source: Option<&str>,
    tz: &TimeZone,
) -> Result<ForgetPlan> {
    policy.validate().map_err(Error::Rev)?;
    plan_per_source(repo, &|_| Some(policy.clone()), only_source, tz)
}

/// [`plan`] with a policy per source (from the user's config); a source
/// for which `policy_for` gives none keeps every snapshot.
pub fn plan_per_source(
    repo: &Repo,
    policy_for: &dyn Fn(&str) -> Option<Policy>,
    only_source: Option<&str>,
    tz: &TimeZone,
) -> Result<ForgetPlan> {
    let mut tags: BTreeMap<ObjectId, Vec<String>> = BTreeMap::new();
    for (name, id) in repo.list_refs(RefKind::Tag)? {
        tags.entry(id).or_default().push(name);
    }
    let heads = repo.list_refs(RefKind::Head)?;
    let mut groups: BTreeMap<String, Vec<Candidate<ObjectId>>> = BTreeMap::new();
    for id in repo.list_snapshots()? {
        let snap = repo.read_snapshot(&id)?;
        if only_source.is_some_and(|s| s != snap.source) {
            continue;
        }
        groups
            .entry(snap.source.clone())
            .or_default()
            .push(Candidate {
                id,
                time_ns: snap.time_ns,
                tags: tags.get(&id).cloned().unwrap_or_default(),
            });
    }
    if let Some(s) = only_source
        && !groups.contains_key(s)
    {
        return Err(Error::Rev(format!(
            "no live snapshot of source {s:?} (`belay log` lists sources)"
        )));
    }
    let mut sources = Vec::new();
    for (source, cands) in groups {
        let Some(policy) = policy_for(&source).filter(|p| p.validate().is_ok()) else {
            continue;
        };
        let decisions = retention::apply(&policy, &cands, tz);
        let head_before = heads.get(&source).copied();
        let head_after = next_head(head_before, &decisions);
        sources.push(SourcePlan {
            source,
            policy: policy.describe(),
            decisions,
            head_before,
            head_after,
        });
    }
    Ok(ForgetPlan { sources })
}

/// A plan that removes exactly the snapshots `ids` (`belay forget ID...`):
/// each source they belong to is listed with every live snapshot, the
/// named ones removed, the others kept ("not named"). A tagged snapshot is
/// refused (delete the tag first), as is one already forgotten.
pub fn plan_ids(repo: &Repo, ids: &[ObjectId]) -> Result<ForgetPlan> {
    let mut tags: BTreeMap<ObjectId, Vec<String>> = BTreeMap::new();
    for (name, id) in repo.list_refs(RefKind::Tag)? {
        tags.entry(id).or_default().push(name);
    }
    let mut sources: BTreeMap<String, ()> = BTreeMap::new();
    for id in ids {
        if !repo.is_live(id) {
            return Err(Error::Rev(format!(
                "snapshot {} is not live (already forgotten?)",
                id.short()
            )));
        }
        if let Some(t) = tags.get(id) {
            return Err(Error::Rev(format!(
                "snapshot {} is tagged {}: delete the tag first (`belay tag -d {}`)",
                id.short(),
                t.join(", "),
                t[0]
            )));
        }
        sources.insert(repo.read_snapshot(id)?.source, ());
    }
    let heads = repo.list_refs(RefKind::Head)?;
    let mut groups: BTreeMap<String, Vec<(ObjectId, i64)>> = BTreeMap::new();
    for id in repo.list_snapshots()? {
        let snap = repo.read_snapshot(&id)?;
        if sources.contains_key(&snap.source) {
            groups
                .entry(snap.source.clone())
                .or_default()
                .push((id, snap.time_ns));
        }
    }
    let mut out = Vec::new();
    for (source, mut list) in groups {
        list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let decisions: Vec<Decision<ObjectId>> = list
            .iter()
            .map(|&(id, time_ns)| {
                let keep = !ids.contains(&id);
                Decision {
                    id,
                    time_ns,
                    keep,
                    reasons: if keep {
                        vec!["not named".into()]
                    } else {
                        vec![]
                    },
                }
            })
            .collect();
        let head_before = heads.get(&source).copied();
        let head_after = next_head(head_before, &decisions);
        out.push(SourcePlan {
            source,
            policy: "named snapshots".into(),
            decisions,
            head_before,
            head_after,
        });
    }
    Ok(ForgetPlan { sources: out })
}

/// Where a head points after a plan: unchanged, or (when its snapshot is
/// removed) the newest kept one, or nowhere.
fn next_head(head: Option<ObjectId>, decisions: &[Decision<ObjectId>]) -> Option<ObjectId> {
    match head {
        Some(h) if decisions.iter().any(|d| d.id == h && !d.keep) => {
            decisions.iter().find(|d| d.keep).map(|d| d.id)
        }
        other => other,
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeadMove {
    pub source: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// `trash/undo.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UndoRecord {
    pub version: u32,
    /// RFC 3339, host clock.
    pub time: String,
    pub snapshots: Vec<String>,
    pub heads: Vec<HeadMove>,
}

fn trash_key(id: &ObjectId) -> String {
    format!("{TRASH_DIR}/{}", id.to_hex())
}

/// Carry out a plan: write the undo record, move markers to `trash/`, move
/// heads. A crash part-way leaves a state `undo-forget` can revert.
pub fn execute(repo: &Repo, plan: &ForgetPlan) -> Result<UndoRecord> {
    let removed: Vec<ObjectId> = plan.removed().map(|d| d.id).collect();
    let heads: Vec<HeadMove> = plan
        .sources
        .iter()
        .filter(|s| s.head_before != s.head_after)
        .map(|s| HeadMove {
            source: s.source.clone(),
            before: s.head_before.map(|i| i.to_hex()),
            after: s.head_after.map(|i| i.to_hex()),
        })
        .collect();
    let record = UndoRecord {
        version: 1,
        time: jiff::Timestamp::now().to_string(),
        snapshots: removed.iter().map(|i| i.to_hex()).collect(),
        heads,
    };
    if removed.is_empty() && record.heads.is_empty() {
        return Ok(record);
    }
    let storage = repo.storage();
    let mut text = serde_json::to_string_pretty(&record).expect("undo record serializes");
    text.push('\n');
    storage
        .put_replace(UNDO_KEY, text.as_bytes())
        .at(storage.locate(UNDO_KEY))?;
    // Heads first: a head never names a snapshot without a marker.
    for h in &record.heads {
        match h.after.as_deref().and_then(ObjectId::from_hex) {
            Some(id) => repo.write_ref(RefKind::Head, &h.source, &id)?,
            None => {
                repo.delete_ref(RefKind::Head, &h.source)?;
            }
        }
    }
    // A move is durable when `rename` returns. On object storage it is a
    // copy then a delete: a crash between leaves the marker in both
    // places, and the snapshot stays live (forget again).
    for id in &removed {
        let from = Repo::marker_key(id);
        // false: already gone (a concurrent forget), nothing to do.
        storage
            .rename(&from, &trash_key(id))
            .at(storage.locate(&from))?;
    }
    Ok(record)
}

/// The undo record of the last forget, if the trash still holds it.
pub fn last_forget(repo: &Repo) -> Result<Option<UndoRecord>> {
    let path = repo.storage().locate(UNDO_KEY);
    // Not trusted: a FIFO or a huge file is refused, never read whole.
    match repo.storage().read(UNDO_KEY, 64 << 20) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::BadRef {
                path,
                reason: crate::error::shorten(format!("unreadable undo record: {e}"), 200),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[derive(Clone, Debug, Default)]
pub struct UndoReport {
    pub restored: Vec<ObjectId>,
    /// Snapshots of the record that could not be brought back (their
    /// objects are gone).
    pub lost: Vec<ObjectId>,
    pub heads: Vec<HeadMove>,
}

/// Bring back what the last forget removed: markers return from `trash/`
/// and heads that forget moved (and nothing moved since) go back.
pub fn undo(repo: &Repo) -> Result<UndoReport> {
    // Never while a gc runs: a marker brought back after gc marked the live
    // objects could name a snapshot whose objects that gc deletes.
    let _lock = crate::session::GcLock::acquire(repo)?;
    let Some(record) = last_forget(repo)? else {
        return Err(Error::Rev(
            "nothing to undo: no forget since the last gc (gc empties the trash)".into(),
        ));
    };
    let storage = repo.storage();
    let mut report = UndoReport::default();
    for hex in &record.snapshots {
        let Some(id) = ObjectId::from_hex(hex) else {
            continue;
        };
        let from = trash_key(&id);
        if !repo.has_object(&id) {
            report.lost.push(id);
            continue;
        }
        if storage
            .rename(&from, &Repo::marker_key(&id))
            .at(storage.locate(&from))?
            // Not in the trash: live again already, or emptied by a gc
            // (whose deletions it may have suffered: never revive it).
            || repo.is_live(&id)
        {
            report.restored.push(id);
        } else {
            report.lost.push(id);
        }
    }
    for h in &record.heads {
        let current = repo.read_ref(RefKind::Head, &h.source)?.map(|i| i.to_hex());
        if current != h.after {
            continue; // a backup moved it since: leave it
        }
        match h.before.as_deref().and_then(ObjectId::from_hex) {
            Some(id) if repo.has_object(&id) => repo.write_ref(RefKind::Head, &h.source, &id)?,
            _ => continue,
        }
        report.heads.push(h.clone());
    }
    storage.delete(UNDO_KEY).at(storage.locate(UNDO_KEY))?;
    Ok(report)
}
