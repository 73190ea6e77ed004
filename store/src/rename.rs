//! Renamed sources (docs/format.md §14). A snapshot records its source's
//! name inside its immutable object, so a rename cannot change it; instead
//! `belay rename OLD NEW` writes one write-once record under `renames/`
//! listing the snapshots it renames, and moves the head. Every reader of a
//! snapshot ([`crate::Repo::read_snapshot`] and the local cache's
//! catalogue) applies the records, so `log`, `sources`, `forget --source`,
//! `find` and revisions see the new name.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::error::{Error, IoContext, Result};
use crate::id::ObjectId;
use crate::repo::{RefKind, Repo, validate_ref_name};
use crate::snapshot::Snapshot;
use crate::storage::Storage;

pub const DIR: &str = "renames";
pub const VERSION: u32 = 1;

/// One rename. Field names are part of the format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    /// 16 random hex digits.
    pub id: String,
    /// When it was made: RFC 3339 UTC and nanoseconds (host clock); records
    /// apply in this order (then by id).
    pub time: String,
    pub time_ns: i64,
    pub user: String,
    pub host: String,
    pub old: String,
    pub new: String,
    /// The snapshots (64-hex ids) that carry `new` from now on.
    pub snapshots: Vec<String>,
}

/// Snapshot id → the name it carries after every rename.
pub type Names = HashMap<ObjectId, String>;

/// Per repository folder: when the `renames/` directory was last looked
/// at, its mtime then, and what it said. The directory is looked at again
/// (one stat) at most once a second, so reading many snapshots costs no
/// extra I/O, and a rename by another process shows up within a second
/// (in a long-running `belay watch`).
struct Loaded {
    checked: Instant,
    /// The record names it was read from.
    stamp: Vec<String>,
    names: Arc<Names>,
    records: Arc<Vec<Record>>,
}
static LOADED: Mutex<Option<HashMap<PathBuf, Loaded>>> = Mutex::new(None);
const RECHECK: Duration = Duration::from_secs(1);

/// The record files' names (write-once, so the list says whether
/// anything changed).
fn record_names(storage: &dyn Storage) -> std::io::Result<Vec<String>> {
    let mut names = storage.list_dir(DIR)?;
    names.retain(|n| !n.starts_with(atomic::TEMP_PREFIX) && n.ends_with(".json"));
    Ok(names)
}

/// Largest record a reader accepts.
const MAX_RECORD: u64 = 64 << 20;

fn read_records(storage: &dyn Storage, names: &[String]) -> Result<Vec<Record>> {
    let mut out: Vec<Record> = Vec::new();
    for name in names {
        let key = format!("{DIR}/{name}");
        let bytes = match storage.read(&key, MAX_RECORD) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(storage.locate(&key), e)),
        };
        // A record this version cannot read is skipped, not fatal: the
        // snapshots keep the names they recorded.
        if let Ok(r) = serde_json::from_slice::<Record>(&bytes) {
            out.push(r);
        }
    }
    out.sort_by(|a, b| a.time_ns.cmp(&b.time_ns).then(a.id.cmp(&b.id)));
    Ok(out)
}

fn load(storage: &dyn Storage) -> (Arc<Names>, Arc<Vec<Record>>) {
    let root = storage.locate(DIR);
    let mut guard = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    if let Some(l) = map.get(&root)
        && l.checked.elapsed() < RECHECK
    {
        return (l.names.clone(), l.records.clone());
    }
    // Unreadable: no renames (the names the snapshots recorded).
    let stamp = record_names(storage).unwrap_or_default();
    if let Some(l) = map.get_mut(&root)
        && l.stamp == stamp
    {
        l.checked = Instant::now();
        return (l.names.clone(), l.records.clone());
    }
    let records = read_records(storage, &stamp).unwrap_or_default();
    let mut names = Names::new();
    for r in &records {
        for id in r.snapshots.iter().filter_map(|h| ObjectId::from_hex(h)) {
            names.insert(id, r.new.clone());
        }
    }
    let (names, records) = (Arc::new(names), Arc::new(records));
    map.insert(
        root,
        Loaded {
            checked: Instant::now(),
            stamp,
            names: names.clone(),
            records: records.clone(),
        },
    );
    (names, records)
}

/// Forget what was read (after writing a record).
fn reload(storage: &dyn Storage) {
    let mut guard = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(map) = guard.as_mut() {
        map.remove(&storage.locate(DIR));
    }
}

/// Snapshot id → its name after every rename of the repository at `root`.
pub fn names(storage: &dyn Storage) -> Arc<Names> {
    load(storage).0
}

/// Give snapshot `id` the name its renames gave it.
pub fn apply(storage: &dyn Storage, id: &ObjectId, snap: &mut Snapshot) {
    apply_from(&names(storage), id, snap);
}

/// As [`apply`], with the names read once for many snapshots.
pub fn apply_from(names: &Names, id: &ObjectId, snap: &mut Snapshot) {
    if let Some(n) = names.get(id) {
        snap.source.clone_from(n);
    }
}

/// The name the history `name` carries now, following renames (`None`
/// when it was never renamed).
pub fn renamed_to(repo: &Repo, name: &str) -> Option<String> {
    let records = load(repo.storage().as_ref()).1;
    let mut current = name.to_string();
    let mut moved = false;
    // Each record at most once, in order, so a chain a→b→a→b ends.
    for r in records.iter() {
        if r.old == current {
            current = r.new.clone();
            moved = true;
        }
    }
    moved.then_some(current)
}

/// What [`rename`] did.
#[derive(Clone, Debug)]
pub struct Renamed {
    pub snapshots: Vec<ObjectId>,
    /// The head NEW points at now.
    pub head: ObjectId,
    /// Whether NEW had a history of its own that the renamed one joined.
    pub merged: bool,
}

/// Rename the history `old` to `new`: write the record naming every
/// snapshot of `old` (then readers see `new`), point `refs/heads/new` at
/// the newer of the two heads (NEW has none unless `merge`), delete
/// `refs/heads/old`.
pub fn rename(
    repo: &Repo,
    old: &str,
    new: &str,
    merge: bool,
    user: &str,
    host: &str,
) -> Result<Renamed> {
    validate_ref_name(new)?;
    if old == new {
        return Err(Error::Rev(format!(
            "{old:?} is already the name of that history"
        )));
    }
    let Some(old_head) = repo.read_ref(RefKind::Head, old)? else {
        return Err(Error::Rev(format!(
            "no source named {old:?} (`belay sources` lists them)"
        )));
    };
    let new_head = repo.read_ref(RefKind::Head, new)?;
    if new_head.is_some() && !merge {
        return Err(Error::Rev(format!(
            "a source named {new:?} exists already: choose another name, or give --force to join {old:?}'s snapshots to its history"
        )));
    }
    let mut snaps: Vec<ObjectId> = crate::history::source_snapshots(repo, old)?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    // Forgotten ones still in the trash too, so that undo-forget brings
    // them back under the new name.
    for name in repo.list_dir("trash")? {
        if let Some(id) = ObjectId::from_hex(&name)
            && !snaps.contains(&id)
            && repo.has_object(&id)
            && repo.read_snapshot(&id).is_ok_and(|s| s.source == old)
        {
            snaps.push(id);
        }
    }
    let now = jiff::Timestamp::now();
    let record = Record {
        version: VERSION,
        id: crate::journal::random_id(),
        time: now.to_string(),
        time_ns: now.as_nanosecond() as i64,
        user: user.to_string(),
        host: host.to_string(),
        old: old.to_string(),
        new: new.to_string(),
        snapshots: snaps.iter().map(|id| id.to_hex()).collect(),
    };
    let t = jiff::Timestamp::from_nanosecond(record.time_ns as i128)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let key = format!(
        "{DIR}/{}-{}.json",
        t.strftime("%Y%m%dT%H%M%S%.9fZ"),
        record.id
    );
    let mut bytes = serde_json::to_vec(&record).expect("a rename record serialises");
    bytes.push(b'\n');
    let storage = repo.storage();
    storage
        .put_new(&key, &bytes, true)
        .at(storage.locate(&key))?;
    let _ = storage.sync_entry(&key);
    reload(storage.as_ref());
    // The newer head leads a joined history.
    let head = match new_head {
        Some(h) => {
            let time = |id: &ObjectId| repo.read_snapshot(id).map(|s| s.time_ns).ok();
            if time(&old_head) > time(&h) {
                old_head
            } else {
                h
            }
        }
        None => old_head,
    };
    repo.write_ref(RefKind::Head, new, &head)?;
    repo.delete_ref(RefKind::Head, old)?;
    Ok(Renamed {
        snapshots: snaps,
        head,
        merged: new_head.is_some(),
    })
}
