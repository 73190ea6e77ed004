//! The local cache: an SQLite database under the user's cache directory,
//! keyed by repository id, never inside the repository (SQLite must not live
//! on a network share). It maps a file content's SHA-256 and size to the
//! chunk ids that hold it, so a board's file whose hash the repository
//! already knows is never pulled again — whichever board, folder or name it
//! was stored under.
//!
//! The cache is never the source of truth: it can be deleted at any time
//! and is refilled from the repository's heads. Its answers are checked
//! (every chunk must still exist) before anything is reused.
//!
//! Location: `$BELAY_CACHE_DIR/<repo id>/cache.sqlite`, else
//! `$XDG_CACHE_HOME/belay/<repo id>/cache.sqlite`, else
//! `~/.cache/belay/<repo id>/cache.sqlite`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::backup::KnownFiles;
use crate::error::{Error, Result};
use crate::id::{ObjectId, Sha256};
use crate::repo::{RefKind, Repo};
use crate::tree::Node;

const SCHEMA_VERSION: &str = "1";

pub struct Cache {
    pub(crate) conn: Mutex<Connection>,
    path: PathBuf,
    /// File contents recorded but not yet written (see [`Cache::flush`]).
    pub(crate) pending_files: Mutex<Vec<(Sha256, u64, Vec<ObjectId>)>>,
    /// Whether the `objects` table has any row: 0 unknown, 1 empty, 2 not
    /// empty (an empty table answers every lookup without a query).
    pub(crate) objects_state: std::sync::atomic::AtomicU8,
    /// The repository whose renames (rename.rs) catalogued snapshots get.
    pub(crate) repo_storage: Option<std::sync::Arc<dyn crate::storage::Storage>>,
}

/// The cache directory root (without the repository id), from the
/// environment.
pub fn cache_root() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("BELAY_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("belay"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("belay"))
}

impl Cache {
    /// Open (or create) the cache of `repo`.
    pub fn open(repo: &Repo) -> Result<Cache> {
        let root = cache_root().ok_or_else(|| Error::Cache {
            path: PathBuf::from("~/.cache/belay"),
            reason: "no cache directory: set BELAY_CACHE_DIR, XDG_CACHE_HOME or HOME".into(),
        })?;
        let dir = root.join(&repo.config().id);
        if let (Ok(d), Ok(r)) = (absolute(&dir), absolute(repo.root()))
            && d.starts_with(&r)
        {
            return Err(Error::Cache {
                path: dir,
                reason: "the cache must not be inside the repository (it may be on a share); choose another BELAY_CACHE_DIR".into(),
            });
        }
        let mut cache = Cache::open_at(&dir.join("cache.sqlite"))?;
        cache.repo_storage = Some(repo.storage().clone());
        cache.sync_generation(crate::session::generation(repo)?)?;
        cache.sync_copy(repo)?;
        cache.apply_distrust(&dir)?;
        Ok(cache)
    }

    /// Forget which objects exist when the repository at hand is not the
    /// directory the cache was filled from: a copy (`cp -a A B`) keeps the
    /// repository id, so both share one cache, but not the other's objects.
    /// A copy is told by its location and its root directory's inode;
    /// anything else (a rollback in place) is caught by the backup's
    /// existence checks before commit.
    fn sync_copy(&self, repo: &Repo) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let root = std::fs::canonicalize(repo.root()).unwrap_or_else(|_| repo.root().into());
        let ino = std::fs::metadata(&root).map(|m| m.ino()).unwrap_or(0);
        let copy = format!("{}\n{ino}", root.display());
        let conn = self.conn.lock().unwrap();
        let cached: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='copy'", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        if cached.as_deref() == Some(copy.as_str()) {
            return Ok(());
        }
        if cached.is_some() {
            conn.execute_batch("DELETE FROM objects; DELETE FROM sources; DELETE FROM damaged;")
                .map_err(|e| self.err(e))?;
            self.objects_state
                .store(0, std::sync::atomic::Ordering::Relaxed);
        }
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES('copy', ?1)",
            [copy],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Forget everything cached when a gc ran since it was filled: any gc
    /// bumps the repository's generation (`gc/generation`), and objects the
    /// cache knows may be gone.
    pub fn sync_generation(&self, generation: u64) -> Result<()> {
        let conn = self.conn.lock().unwrap();
        let cached: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='generation'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?;
        if cached.as_deref() == Some(generation.to_string().as_str()) {
            return Ok(());
        }
        conn.execute_batch(crate::cache_state::CLEAR_ALL)
            .map_err(|e| self.err(e))?;
        self.objects_state
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.pending_files.lock().unwrap().clear();
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES('generation', ?1)",
            [generation.to_string()],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn open_at(path: &Path) -> Result<Cache> {
        let err = |e: &dyn std::fmt::Display| Error::Cache {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err(&e))?;
        }
        let conn = Connection::open(path).map_err(|e| err(&e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| err(&e))?;
        let _: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| err(&e))?;
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS files(
                 sha256 BLOB NOT NULL, size INTEGER NOT NULL, chunks BLOB NOT NULL,
                 PRIMARY KEY(sha256, size)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS indexed(snapshot BLOB PRIMARY KEY) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS objects(id BLOB PRIMARY KEY) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS sources(
                 source TEXT PRIMARY KEY, snapshot BLOB NOT NULL, state BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS damaged(id BLOB PRIMARY KEY) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS catalogue(
                 id BLOB PRIMARY KEY, time_ns INTEGER NOT NULL, snapshot BLOB NOT NULL) WITHOUT ROWID;",
        )
        .map_err(|e| err(&e))?;
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='schema'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| err(&e))?;
        match version.as_deref() {
            Some(SCHEMA_VERSION) => {}
            None => {
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES('schema', ?1)",
                    [SCHEMA_VERSION],
                )
                .map_err(|e| err(&e))?;
            }
            Some(_) => {
                // Written by another belay version: a cache can always be rebuilt.
                conn.execute_batch(crate::cache_state::CLEAR_ALL)
                    .map_err(|e| err(&e))?;
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES('schema', ?1)",
                    [SCHEMA_VERSION],
                )
                .map_err(|e| err(&e))?;
            }
        }
        Ok(Cache {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            pending_files: Mutex::new(Vec::new()),
            objects_state: std::sync::atomic::AtomicU8::new(0),
            repo_storage: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> Error {
        Error::Cache {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// Record every file of snapshot `id` (once per snapshot).
    pub fn index_snapshot(&self, repo: &Repo, id: &ObjectId) -> Result<bool> {
        {
            let conn = self.conn.lock().unwrap();
            let done: Option<i64> = conn
                .query_row(
                    "SELECT 1 FROM indexed WHERE snapshot=?1",
                    [&id.0[..]],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            if done.is_some() {
                return Ok(false);
            }
        }
        let snap = repo.read_snapshot(id)?;
        let mut files: Vec<(Sha256, u64, Vec<ObjectId>)> = Vec::new();
        let mut seen_trees: HashSet<ObjectId> = HashSet::new();
        let mut stack = vec![snap.tree];
        while let Some(t) = stack.pop() {
            if !seen_trees.insert(t) {
                continue;
            }
            for e in repo.read_tree(&t)?.entries {
                match e.node {
                    Node::File {
                        size,
                        sha256,
                        chunks,
                    } => files.push((sha256, size, chunks)),
                    Node::Dir { tree } => stack.push(tree),
                    Node::Symlink { .. } => {}
                }
            }
        }
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        for (sha, size, chunks) in &files {
            tx.execute(
                "INSERT OR REPLACE INTO files(sha256, size, chunks) VALUES(?1, ?2, ?3)",
                params![&sha[..], *size as i64, join_ids(chunks)],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.execute(
            "INSERT OR IGNORE INTO indexed(snapshot) VALUES(?1)",
            [&id.0[..]],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(true)
    }

    /// Index the latest snapshot of every source (what a fresh or deleted
    /// cache needs to know the repository's contents); returns how many
    /// snapshots were new to the cache.
    pub fn index_heads(&self, repo: &Repo) -> Result<usize> {
        let mut n = 0;
        for id in repo.list_refs(RefKind::Head)?.values() {
            if repo.has_object(id) && self.index_snapshot(repo, id)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Number of file contents known.
    pub fn len(&self) -> Result<u64> {
        self.flush()?;
        let conn = self.conn.lock().unwrap();
        conn.query_row("SELECT count(*) FROM files", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

fn absolute(p: &Path) -> std::io::Result<PathBuf> {
    // The directory may not exist yet: canonicalize its closest existing ancestor.
    let mut existing = p.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(n), Some(parent)) => {
                rest.push(n.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = std::fs::canonicalize(&existing).or_else(|_| std::path::absolute(&existing))?;
    for n in rest.iter().rev() {
        out.push(n);
    }
    Ok(out)
}

fn join_ids(ids: &[ObjectId]) -> Vec<u8> {
    ids.iter().flat_map(|i| i.0).collect()
}

impl KnownFiles for Cache {
    fn snapshot(&self, id: &ObjectId) -> Option<crate::snapshot::Snapshot> {
        self.catalogued(id)
    }

    fn generation(&self) -> Option<u64> {
        let conn = self.conn.lock().unwrap();
        conn.query_row("SELECT value FROM meta WHERE key='generation'", [], |r| {
            r.get::<_, String>(0)
        })
        .ok()
        .and_then(|v| v.parse().ok())
    }

    fn parent_state(
        &self,
        source: &str,
        parent: &ObjectId,
    ) -> Option<Vec<crate::cache_state::FileState>> {
        self.source_state(source, parent)
    }

    fn has_object(&self, id: &ObjectId) -> bool {
        self.knows_object(id)
    }

    fn damaged(&self) -> HashSet<ObjectId> {
        self.damaged_objects()
    }

    fn committed(
        &self,
        source: &str,
        id: &ObjectId,
        snap: &crate::snapshot::Snapshot,
        files: &[crate::cache_state::FileState],
        objects: &[ObjectId],
    ) {
        // A cache that cannot be written only costs speed later.
        let _ = self.record_commit(source, id, snap, files, objects);
    }

    fn lookup(&self, sha256: &Sha256, size: u64) -> Option<Vec<ObjectId>> {
        if let Some(chunks) = self.pending_lookup(sha256, size) {
            return Some(chunks);
        }
        let conn = self.conn.lock().unwrap();
        let blob: Vec<u8> = conn
            .query_row(
                "SELECT chunks FROM files WHERE sha256=?1 AND size=?2",
                params![&sha256[..], size as i64],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten()?;
        if !blob.len().is_multiple_of(32) {
            return None;
        }
        Some(
            blob.chunks(32)
                .map(|c| ObjectId(c.try_into().expect("32-byte chunk")))
                .collect(),
        )
    }

    fn record(&self, sha256: &Sha256, size: u64, chunks: &[ObjectId]) {
        // Batched: one transaction per few hundred files (an SQLite commit
        // per file would cost more than storing a small file).
        let full = {
            let mut p = self.pending_files.lock().unwrap();
            p.push((*sha256, size, chunks.to_vec()));
            p.len() >= 256
        };
        if full {
            // A cache that cannot be written only costs speed later.
            let _ = self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_finds() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open_at(&dir.path().join("c/cache.sqlite")).unwrap();
        let sha = [7u8; 32];
        assert!(c.lookup(&sha, 3).is_none());
        c.record(&sha, 3, &[ObjectId([1; 32]), ObjectId([2; 32])]);
        assert_eq!(
            c.lookup(&sha, 3).unwrap(),
            vec![ObjectId([1; 32]), ObjectId([2; 32])]
        );
        assert!(c.lookup(&sha, 4).is_none());
        assert_eq!(c.len().unwrap(), 1);
        drop(c);
        // Reopening keeps the contents.
        let c = Cache::open_at(&dir.path().join("c/cache.sqlite")).unwrap();
        assert_eq!(c.len().unwrap(), 1);
    }
}
