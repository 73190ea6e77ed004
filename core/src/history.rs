//! `log` and `show`: the snapshots of a revision's history, a source or
//! the whole repository (with date and path filters), and one snapshot in
//! full.

use std::collections::BTreeMap;

use belay_store::chunker::ChunkerParams;
use belay_store::diff::PathFilter;
use belay_store::repo::RefKind;
use belay_store::snapshot::{META_RESTORED_FROM, Snapshot};
use belay_store::{ObjectId, Repo, history, rev, timespec};
use serde::Serialize;

use crate::error::{Error, Result, bail};
use crate::progress::Progress;

/// Tag names by snapshot id, and source names whose head is that id.
#[derive(Clone, Debug, Default)]
pub struct Decorations {
    pub tags: BTreeMap<ObjectId, Vec<String>>,
    pub heads: BTreeMap<ObjectId, Vec<String>>,
}

/// The tags and heads of the repository (a damaged ref is a warning).
pub fn decorations(repo: &Repo, p: &dyn Progress) -> Result<Decorations> {
    let mut d = Decorations::default();
    let warn = &mut |w: String| p.warn(&w);
    for (name, id) in repo.list_refs_reporting(RefKind::Tag, warn)? {
        d.tags.entry(id).or_default().push(name);
    }
    for (name, id) in repo.list_refs_reporting(RefKind::Head, warn)? {
        d.heads.entry(id).or_default().push(name);
    }
    Ok(d)
}

/// What a snapshot is, when belay made it around a restore.
pub fn restore_role(s: &Snapshot) -> Option<&'static str> {
    if s.is_safety() {
        Some("safety snapshot")
    } else if s.meta_value(META_RESTORED_FROM).is_some() {
        Some("restored")
    } else {
        None
    }
}

/// A snapshot as `log --json` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotSummary {
    #[serde(serialize_with = "crate::json::id")]
    pub id: ObjectId,
    #[serde(serialize_with = "crate::json::ids")]
    pub parents: Vec<ObjectId>,
    /// RFC 3339.
    pub time: String,
    pub source: String,
    pub message: String,
    pub tags: Vec<String>,
    /// Taken before a restore, to undo it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub safety: bool,
    /// The board's state right after a restore of this snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
}

impl SnapshotSummary {
    pub fn new(id: ObjectId, s: &Snapshot, tags: Vec<String>) -> SnapshotSummary {
        SnapshotSummary {
            id,
            parents: s.parents.clone(),
            time: crate::json::rfc3339(s.time_ns),
            source: s.source.clone(),
            message: s.message.clone(),
            tags,
            safety: s.is_safety(),
            restored_from: s.meta_value(META_RESTORED_FROM).map(str::to_string),
        }
    }
}

/// One line of `log`; `--json` prints the list.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub id: ObjectId,
    /// None when the snapshot is gone (a forgotten parent gc collected).
    pub summary: Option<SnapshotSummary>,
    /// In the trash (`belay undo-forget` brings it back), or gone.
    pub forgotten: bool,
    /// The snapshot itself (none when it is gone).
    pub snapshot: Option<Snapshot>,
    /// Sources whose head it is.
    pub heads: Vec<String>,
}

impl Serialize for LogEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Listed<'a> {
            #[serde(flatten)]
            summary: &'a SnapshotSummary,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            forgotten: bool,
        }
        #[derive(Serialize)]
        struct Gone {
            #[serde(serialize_with = "crate::json::id")]
            id: ObjectId,
            forgotten: bool,
        }
        match &self.summary {
            Some(summary) => Listed {
                summary,
                forgotten: self.forgotten,
            }
            .serialize(s),
            None => Gone {
                id: self.id,
                forgotten: true,
            }
            .serialize(s),
        }
    }
}

/// What `log` lists.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// A revision (its history) or a range `A..B`.
    pub rev: Option<String>,
    /// One source's snapshots.
    pub source: Option<String>,
    /// Only snapshots taken in this span (`2024-05-01`, `3 days ago`).
    pub since: Option<String>,
    pub until: Option<String>,
    /// Only snapshots that changed one of these paths.
    pub paths: Vec<String>,
    pub max_count: Option<usize>,
}

/// The snapshots `log` shows: a revision and its ancestors, one source, or
/// every live snapshot; then the date and path filters; then `max_count`.
pub fn log(repo: &Repo, a: &LogOptions, p: &dyn Progress) -> Result<Vec<LogEntry>> {
    let items = select(repo, a, p)?;
    let deco = decorations(repo, p)?;
    Ok(items
        .into_iter()
        .map(|(id, s)| {
            let heads = deco.heads.get(&id).cloned().unwrap_or_default();
            match s {
                Some(s) => LogEntry {
                    id,
                    summary: Some(SnapshotSummary::new(
                        id,
                        &s,
                        deco.tags.get(&id).cloned().unwrap_or_default(),
                    )),
                    // Only snapshots still in the trash carry the mark.
                    forgotten: !repo.is_live(&id),
                    snapshot: Some(s),
                    heads,
                },
                None => LogEntry {
                    id,
                    summary: None,
                    forgotten: true,
                    snapshot: None,
                    heads,
                },
            }
        })
        .collect())
}

type LogItem = (ObjectId, Option<Snapshot>);

fn select(repo: &Repo, a: &LogOptions, p: &dyn Progress) -> Result<Vec<LogItem>> {
    let limit = a.max_count.unwrap_or(usize::MAX);
    let now = jiff::Timestamp::now();
    let tz = jiff::tz::TimeZone::system();
    let bound = |s: &Option<String>, b: timespec::Bound| -> Result<Option<i64>> {
        s.as_deref()
            .map(|s| timespec::parse(s, b, now, &tz).map_err(|e| Error::invalid(e.to_string())))
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
    let keep = |s: &Snapshot| -> Result<bool> {
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
                bail!("no source named {name:?} (`belay log --oneline` lists every snapshot)");
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
                p.warn(&format!("{e}; left out (`belay check` reports it)"))
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

/// A snapshot's summary figures.
#[derive(Clone, Debug, Serialize)]
pub struct SummaryJson {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub files_read: u64,
    pub bytes_read: u64,
    pub objects_added: u64,
    pub bytes_added: u64,
}

/// One snapshot in full; `show --json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct ShowResult {
    #[serde(flatten)]
    pub summary: SnapshotSummary,
    #[serde(serialize_with = "crate::json::id")]
    pub tree: ObjectId,
    pub location: String,
    pub host: String,
    pub user: String,
    pub meta: BTreeMap<String, String>,
    pub device: BTreeMap<String, String>,
    pub chunker: ChunkerParams,
    #[serde(rename = "summary")]
    pub figures: SummaryJson,
    /// The snapshot itself.
    #[serde(skip)]
    pub snapshot: Snapshot,
}

/// One snapshot, with its tags.
pub fn show(repo: &Repo, r: &str, p: &dyn Progress) -> Result<ShowResult> {
    let id = rev::resolve(repo, r)?;
    let s = repo.read_snapshot(&id)?;
    let deco = decorations(repo, p)?;
    let tags = deco.tags.get(&id).cloned().unwrap_or_default();
    let m = &s.summary;
    Ok(ShowResult {
        summary: SnapshotSummary::new(id, &s, tags),
        tree: s.tree,
        location: s.location.clone(),
        host: s.host.clone(),
        user: s.user.clone(),
        meta: s.meta.iter().cloned().collect(),
        device: s.device.iter().cloned().collect(),
        chunker: s.chunker,
        figures: SummaryJson {
            files: m.files,
            dirs: m.dirs,
            symlinks: m.symlinks,
            bytes: m.bytes,
            files_read: m.files_read,
            bytes_read: m.bytes_read,
            objects_added: m.objects_added,
            bytes_added: m.bytes_added,
        },
        snapshot: s,
    })
}
