//! The local cache's fast paths (see `docs/cache.md`): what makes an
//! unchanged re-backup and `log` cheap without touching the repository's
//! objects.
//!
//! - `sources`: per source, the snapshot its last backup made and the state
//!   of every file in it (path, size, mtime, SHA-256, chunk ids). A backup
//!   whose parent is that snapshot takes the parent's files from here
//!   instead of reading the parent's trees.
//! - `objects`: ids of objects known to be complete and durable in the
//!   repository (written or confirmed by a committed backup, or reached from
//!   a committed snapshot), so backup neither rewrites nor probes them.
//! - `catalogue`: the payload of every snapshot seen, by id (snapshots are
//!   immutable), so `log` over thousands of snapshots reads one table.
//!
//! Every entry describes the repository at one gc generation: a gc (the only
//! operation that deletes objects) bumps `gc/generation`, and opening the
//! cache with another generation empties every table
//! ([`Cache::sync_generation`](crate::cache::Cache::sync_generation)). The
//! file state of a source is only used while the source's head still points
//! at the snapshot it was recorded for, and that snapshot's object exists
//! (one `stat`).

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::error::Result;
use crate::id::{ObjectId, Sha256};
use crate::repo::Repo;
use crate::snapshot::Snapshot;
use crate::source::ChangeStamp;

/// Statement that empties every table (schema change, gc generation change).
pub(crate) const CLEAR_ALL: &str = "DELETE FROM files; DELETE FROM indexed; \
     DELETE FROM objects; DELETE FROM sources; DELETE FROM catalogue; DELETE FROM damaged;";

/// One file of a source as its last backup stored it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    #[serde(with = "serde_bytes")]
    pub path: Vec<u8>,
    pub size: u64,
    pub mtime_ns: Option<i64>,
    pub sha256: Sha256,
    pub chunks: Vec<ObjectId>,
    /// Device, inode and ctime when the backup saw it (folders).
    pub stamp: Option<ChangeStamp>,
}

/// A [`FileState`] as the first cache schema recorded it (no stamp).
#[derive(Serialize, Deserialize)]
struct FileStateV1 {
    #[serde(with = "serde_bytes")]
    path: Vec<u8>,
    size: u64,
    mtime_ns: Option<i64>,
    sha256: Sha256,
    chunks: Vec<ObjectId>,
}

/// The `sources.state` blob: zstd(postcard(StateRecord)).
#[derive(Serialize, Deserialize)]
enum StateRecord {
    V1(Vec<FileStateV1>),
    V2(Vec<FileState>),
}

fn encode_state(files: &[FileState]) -> Vec<u8> {
    let raw = postcard::to_stdvec(&StateRecord::V2(files.to_vec())).expect("state encodes");
    zstd::bulk::compress(&raw, 1).unwrap_or_default()
}

fn decode_state(blob: &[u8]) -> Option<Vec<FileState>> {
    let raw = zstd::stream::decode_all(blob).ok()?;
    match postcard::take_from_bytes::<StateRecord>(&raw) {
        Ok((StateRecord::V2(files), [])) => Some(files),
        Ok((StateRecord::V1(files), [])) => Some(
            files
                .into_iter()
                .map(|f| FileState {
                    path: f.path,
                    size: f.size,
                    mtime_ns: f.mtime_ns,
                    sha256: f.sha256,
                    chunks: f.chunks,
                    stamp: None,
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Name of the marker that makes the next [`Cache::open`] forget which
/// objects exist (written when a command finds an object missing or
/// damaged; see docs/cache.md). It lists the ids found bad, one 64-hex id
/// a line.
const DISTRUST: &str = "distrust";

/// A command found objects of `repo` missing or damaged (`ids`, possibly
/// none): the cache must not vouch for any object until it is refilled,
/// and the next backup rewrites those it has the bytes of. Only a marker
/// file is appended to (no SQLite in an error path); failures are ignored.
pub fn distrust(repo: &Repo, ids: &[ObjectId]) {
    use std::io::Write;
    if let Some(root) = crate::cache::cache_root() {
        let dir = root.join(&repo.config().id);
        if dir.is_dir() {
            let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(DISTRUST))
            {
                let _ = f.write_all(text.as_bytes());
            }
        }
    }
}

impl Cache {
    /// Forget known objects and source states if a command marked the
    /// cache distrusted (see [`distrust`]); remember the objects it named
    /// as damaged until a backup rewrites them.
    pub(crate) fn apply_distrust(&self, dir: &std::path::Path) -> Result<()> {
        let marker = dir.join(DISTRUST);
        let Ok(text) = std::fs::read_to_string(&marker) else {
            return Ok(());
        };
        {
            let mut conn = self.conn.lock().unwrap();
            let tx = conn.transaction().map_err(|e| self.err(e))?;
            tx.execute_batch("DELETE FROM objects; DELETE FROM sources;")
                .map_err(|e| self.err(e))?;
            for id in text.lines().filter_map(|l| ObjectId::from_hex(l.trim())) {
                tx.execute("INSERT OR IGNORE INTO damaged(id) VALUES(?1)", [&id.0[..]])
                    .map_err(|e| self.err(e))?;
            }
            tx.commit().map_err(|e| self.err(e))?;
        }
        self.objects_state
            .store(0, std::sync::atomic::Ordering::Relaxed);
        let _ = std::fs::remove_file(marker);
        Ok(())
    }

    /// Objects found damaged or missing and not rewritten since.
    pub fn damaged_objects(&self) -> std::collections::HashSet<ObjectId> {
        let conn = self.conn.lock().unwrap();
        let Ok(mut st) = conn.prepare("SELECT id FROM damaged") else {
            return Default::default();
        };
        st.query_map([], |r| r.get::<_, Vec<u8>>(0))
            .map(|rows| {
                rows.filter_map(|r| r.ok())
                    .filter_map(|b| <[u8; 32]>::try_from(b.as_slice()).ok().map(ObjectId))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Write the file contents recorded through
    /// [`KnownFiles::record`](crate::backup::KnownFiles::record) in one
    /// transaction.
    pub fn flush(&self) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending_files.lock().unwrap());
        if pending.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO files(sha256, size, chunks) VALUES(?1, ?2, ?3)",
                )
                .map_err(|e| self.err(e))?;
            for (sha, size, chunks) in &pending {
                let ids: Vec<u8> = chunks.iter().flat_map(|i| i.0).collect();
                st.execute(params![&sha[..], *size as i64, ids])
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// A file content recorded but not yet flushed.
    pub(crate) fn pending_lookup(&self, sha256: &Sha256, size: u64) -> Option<Vec<ObjectId>> {
        self.pending_files
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(s, z, _)| s == sha256 && *z == size)
            .map(|(_, _, c)| c.clone())
    }

    /// The files of `source` as of snapshot `snapshot`, if the cache holds
    /// that source's state for exactly that snapshot.
    pub fn source_state(&self, source: &str, snapshot: &ObjectId) -> Option<Vec<FileState>> {
        let conn = self.conn.lock().unwrap();
        let blob: Vec<u8> = conn
            .query_row(
                "SELECT state FROM sources WHERE source=?1 AND snapshot=?2",
                params![source, &snapshot.0[..]],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten()?;
        drop(conn);
        decode_state(&blob)
    }

    /// Is `id` known to be a complete, durable object of the repository?
    pub fn knows_object(&self, id: &ObjectId) -> bool {
        use std::sync::atomic::Ordering;
        let conn = self.conn.lock().unwrap();
        match self.objects_state.load(Ordering::Relaxed) {
            1 => return false,
            2 => {}
            _ => {
                let any = conn
                    .query_row("SELECT 1 FROM objects LIMIT 1", [], |_| Ok(()))
                    .optional()
                    .ok()
                    .flatten()
                    .is_some();
                self.objects_state
                    .store(if any { 2 } else { 1 }, Ordering::Relaxed);
                if !any {
                    return false;
                }
            }
        }
        let Ok(mut st) = conn.prepare_cached("SELECT 1 FROM objects WHERE id=?1") else {
            return false;
        };
        st.query_row([&id.0[..]], |_| Ok(()))
            .optional()
            .ok()
            .flatten()
            .is_some()
    }

    /// Number of object ids known.
    pub fn objects_known(&self) -> Result<u64> {
        let conn = self.conn.lock().unwrap();
        conn.query_row("SELECT count(*) FROM objects", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// A backup of `source` committed snapshot `id`: remember the source's
    /// files, the snapshot, and objects now known to exist. Call only after
    /// the snapshot is durable.
    pub fn record_commit(
        &self,
        source: &str,
        id: &ObjectId,
        snap: &Snapshot,
        files: &[FileState],
        objects: &[ObjectId],
    ) -> Result<()> {
        self.flush()?;
        self.objects_state
            .store(0, std::sync::atomic::Ordering::Relaxed);
        // The parent's state as recorded here (usually: this machine's
        // previous backup of the source). Only what changed is written.
        let parent = snap.parents.first();
        let old = parent.and_then(|p| self.source_state(source, p));
        let parent_indexed = parent.is_some_and(|p| self.is_indexed(p));
        let already: std::collections::HashSet<(Sha256, u64)> = match (&old, parent_indexed) {
            (Some(old), true) => old.iter().map(|f| (f.sha256, f.size)).collect(),
            _ => Default::default(),
        };
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        if old.as_deref() == Some(files) {
            tx.execute(
                "UPDATE sources SET snapshot=?2 WHERE source=?1",
                params![source, &id.0[..]],
            )
            .map_err(|e| self.err(e))?;
        } else {
            tx.execute(
                "INSERT OR REPLACE INTO sources(source, snapshot, state) VALUES(?1, ?2, ?3)",
                params![source, &id.0[..], encode_state(files)],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO catalogue(id, time_ns, snapshot) VALUES(?1, ?2, ?3)",
            params![&id.0[..], snap.time_ns, snap.encode()],
        )
        .map_err(|e| self.err(e))?;
        {
            let mut st = tx
                .prepare_cached("INSERT OR IGNORE INTO objects(id) VALUES(?1)")
                .map_err(|e| self.err(e))?;
            st.execute([&id.0[..]]).map_err(|e| self.err(e))?;
            for o in objects {
                st.execute([&o.0[..]]).map_err(|e| self.err(e))?;
            }
            // Written again by this backup: no longer damaged.
            let mut st = tx
                .prepare_cached("DELETE FROM damaged WHERE id=?1")
                .map_err(|e| self.err(e))?;
            for o in objects {
                st.execute([&o.0[..]]).map_err(|e| self.err(e))?;
            }
            // Contents by hash (what `index_snapshot` would read from the
            // trees), so the snapshot counts as indexed: those of an indexed
            // parent are there already.
            let mut st = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO files(sha256, size, chunks) VALUES(?1, ?2, ?3)",
                )
                .map_err(|e| self.err(e))?;
            for f in files
                .iter()
                .filter(|f| !already.contains(&(f.sha256, f.size)))
            {
                let ids: Vec<u8> = f.chunks.iter().flat_map(|i| i.0).collect();
                st.execute(params![&f.sha256[..], f.size as i64, ids])
                    .map_err(|e| self.err(e))?;
            }
            tx.execute(
                "INSERT OR IGNORE INTO indexed(snapshot) VALUES(?1)",
                [&id.0[..]],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn is_indexed(&self, id: &ObjectId) -> bool {
        let conn = self.conn.lock().unwrap();
        conn.query_row(
            "SELECT 1 FROM indexed WHERE snapshot=?1",
            [&id.0[..]],
            |_| Ok(()),
        )
        .optional()
        .ok()
        .flatten()
        .is_some()
    }

    /// The catalogued snapshot `id`, if any.
    pub fn catalogued(&self, id: &ObjectId) -> Option<Snapshot> {
        let conn = self.conn.lock().unwrap();
        let blob: Vec<u8> = conn
            .query_row(
                "SELECT snapshot FROM catalogue WHERE id=?1",
                [&id.0[..]],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten()?;
        let mut s = Snapshot::decode(&blob).ok()?;
        if let Some(storage) = &self.repo_storage {
            crate::rename::apply(storage.as_ref(), id, &mut s);
        }
        Some(s)
    }

    /// Add snapshots to the catalogue.
    pub fn catalogue_add(&self, snaps: &[(ObjectId, Snapshot)]) -> Result<()> {
        if snaps.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO catalogue(id, time_ns, snapshot) VALUES(?1, ?2, ?3)",
                )
                .map_err(|e| self.err(e))?;
            for (id, s) in snaps {
                st.execute(params![&id.0[..], s.time_ns, s.encode()])
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Every catalogued snapshot.
    pub fn catalogue_all(&self) -> Result<HashMap<ObjectId, Snapshot>> {
        let conn = self.conn.lock().unwrap();
        let mut st = conn
            .prepare("SELECT id, snapshot FROM catalogue")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let names = self
            .repo_storage
            .as_ref()
            .map(|s| crate::rename::names(s.as_ref()));
        let mut out = HashMap::new();
        for row in rows {
            let (id, blob) = row.map_err(|e| self.err(e))?;
            let (Ok(id), Ok(mut s)) =
                (<[u8; 32]>::try_from(id.as_slice()), Snapshot::decode(&blob))
            else {
                continue;
            };
            if let Some(names) = &names {
                crate::rename::apply_from(names, &ObjectId(id), &mut s);
            }
            out.insert(ObjectId(id), s);
        }
        Ok(out)
    }

    /// Open the cache of `repo` unless `BELAY_NO_CACHE` is set; `None` when
    /// it cannot be opened (a cache only saves time).
    pub fn open_default(repo: &Repo) -> Option<Cache> {
        if std::env::var_os("BELAY_NO_CACHE").is_some() {
            return None;
        }
        Cache::open(repo).ok()
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::KnownFiles;

    #[test]
    fn state_roundtrip_and_objects() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open_at(&dir.path().join("c/cache.sqlite")).unwrap();
        let files = vec![FileState {
            path: b"a/b.py".to_vec(),
            size: 3,
            mtime_ns: Some(5),
            sha256: [1; 32],
            chunks: vec![ObjectId([2; 32])],
            stamp: Some(ChangeStamp {
                dev: 1,
                ino: 2,
                ctime_ns: 3,
            }),
        }];
        let snap = crate::snapshot::Snapshot {
            tree: ObjectId([3; 32]),
            parents: vec![],
            time_ns: 9,
            source: "s".into(),
            location: "dir:/x".into(),
            host: "h".into(),
            user: "u".into(),
            message: String::new(),
            meta: vec![],
            device: vec![],
            chunker: crate::chunker::ChunkerParams::default(),
            summary: Default::default(),
        };
        let id = ObjectId([4; 32]);
        c.record_commit("s", &id, &snap, &files, &[ObjectId([2; 32])])
            .unwrap();
        assert_eq!(c.source_state("s", &id).unwrap(), files);
        assert!(c.source_state("s", &ObjectId([5; 32])).is_none());
        assert!(c.knows_object(&ObjectId([2; 32])));
        assert!(c.knows_object(&id));
        assert!(!c.knows_object(&ObjectId([6; 32])));
        assert_eq!(c.catalogued(&id).unwrap(), snap);
        // A gc generation change forgets everything.
        c.sync_generation(7).unwrap();
        assert!(c.source_state("s", &id).is_none());
        assert!(!c.knows_object(&ObjectId([2; 32])));
        assert!(c.catalogued(&id).is_none());
        // Batched file records are visible before and after the flush.
        c.record(&[8; 32], 10, &[ObjectId([9; 32])]);
        assert_eq!(c.lookup(&[8; 32], 10).unwrap(), vec![ObjectId([9; 32])]);
        c.flush().unwrap();
        assert_eq!(c.lookup(&[8; 32], 10).unwrap(), vec![ObjectId([9; 32])]);
    }
}
