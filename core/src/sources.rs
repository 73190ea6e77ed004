//! `sources`: every board and folder that has snapshots; removing one (its
//! snapshots go to the trash, as forget's do); renaming one (its history
//! continues under the new name, format.md §14).

use std::collections::BTreeMap;

use belay_store::forget;
use belay_store::repo::RefKind;
use belay_store::snapshot::Snapshot;
use belay_store::{ObjectId, Repo};
use serde::Serialize;

use crate::board::UNIQUE_ID;
use crate::error::{Result, bail};

/// One source; `sources --json` prints the list.
#[derive(Clone, Debug, Serialize)]
pub struct SourceInfo {
    pub name: String,
    /// "board" or "folder".
    pub kind: &'static str,
    /// A board's unique id (`machine.unique_id()`), else the folder's path.
    pub id: String,
    /// Where the latest snapshot was taken (`serial:PORT`, `dir:PATH`).
    pub location: String,
    pub firmware: Option<String>,
    pub snapshots: usize,
    pub latest: String,
    pub last_backup: String,
    /// Size of the files in the latest snapshot.
    pub bytes: u64,
}

fn info(name: &str, snaps: &[(ObjectId, Snapshot)]) -> SourceInfo {
    // Newest first.
    let (id, s) = &snaps[0];
    let board = s.location.starts_with("serial:") || s.device_value(UNIQUE_ID).is_some();
    SourceInfo {
        name: name.to_string(),
        kind: if board { "board" } else { "folder" },
        id: s
            .device_value(UNIQUE_ID)
            .map(str::to_string)
            .unwrap_or_else(|| {
                s.location
                    .strip_prefix("dir:")
                    .unwrap_or(&s.location)
                    .to_string()
            }),
        location: s.location.clone(),
        firmware: s.device_value("firmware").map(str::to_string),
        snapshots: snaps.len(),
        latest: id.to_hex(),
        last_backup: crate::json::rfc3339(s.time_ns),
        bytes: s.summary.bytes,
    }
}

/// Live snapshots by source name, newest first in each.
fn by_source(repo: &Repo) -> Result<BTreeMap<String, Vec<(ObjectId, Snapshot)>>> {
    let mut groups: BTreeMap<String, Vec<(ObjectId, Snapshot)>> = BTreeMap::new();
    for (id, s) in belay_store::catalog::Catalog::open(repo).live()? {
        groups.entry(s.source.clone()).or_default().push((id, s));
    }
    for list in groups.values_mut() {
        list.sort_by(|a, b| b.1.time_ns.cmp(&a.1.time_ns).then(a.0.cmp(&b.0)));
    }
    Ok(groups)
}

/// Every source with live snapshots, by name.
pub fn list(repo: &Repo) -> Result<Vec<SourceInfo>> {
    Ok(by_source(repo)?
        .iter()
        .map(|(name, snaps)| info(name, snaps))
        .collect())
}

/// A source removed (or that would be); `sources rm --json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct RemovedSource {
    pub source: String,
    pub dry_run: bool,
    #[serde(serialize_with = "crate::json::ids")]
    pub snapshots: Vec<ObjectId>,
    pub head_removed: bool,
}

/// Move every snapshot of source `name` to the trash (and its head away).
pub fn remove(repo: &Repo, name: &str, dry_run: bool) -> Result<RemovedSource> {
    let groups = by_source(repo)?;
    let Some(snaps) = groups.get(name) else {
        if repo.read_ref(RefKind::Head, name)?.is_some() {
            bail!("source {name:?} has a head but no live snapshot; `belay check` says more");
        }
        let names: Vec<&str> = groups.keys().map(String::as_str).collect();
        bail!(
            "no source named {name:?} (sources: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    };
    let ids: Vec<ObjectId> = snaps.iter().map(|(id, _)| *id).collect();
    let plan = forget::plan_ids(repo, &ids)?;
    if !dry_run {
        forget::execute(repo, &plan)?;
    }
    Ok(RemovedSource {
        source: name.to_string(),
        dry_run,
        snapshots: ids,
        head_removed: plan
            .sources
            .iter()
            .any(|s| s.head_before.is_some() && s.head_after.is_none()),
    })
}

/// A source renamed; `rename --json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Renamed {
    pub old: String,
    pub new: String,
    /// The name the history continues under (`new`).
    pub source: String,
    pub snapshots: usize,
    #[serde(serialize_with = "crate::json::id")]
    pub head: ObjectId,
    /// `new` had a history, which this one joined.
    pub merged: bool,
}

/// The history `old` continues as `new` (recorded as done by this user
/// on this host).
pub fn rename(repo: &Repo, old: &str, new: &str, force: bool) -> Result<Renamed> {
    let r = belay_store::rename::rename(
        repo,
        old,
        new,
        force,
        &crate::who::username(),
        &crate::who::hostname(),
    )?;
    Ok(Renamed {
        old: old.to_string(),
        new: new.to_string(),
        source: new.to_string(),
        snapshots: r.snapshots.len(),
        head: r.head,
        merged: r.merged,
    })
}
