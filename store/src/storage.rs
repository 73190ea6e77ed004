//! Where the repository's object files live: one narrow trait for
//! everything under `objects/` (loose objects and packs) and `index/`
//! (index objects), with the local filesystem (a disk or a mounted share)
//! as its first implementation. An object store (S3 and friends) only has
//! to implement this trait: every call maps to one request — a GET (or a
//! ranged GET), a conditional PUT (`If-None-Match: *`), a HEAD, a DELETE or
//! a LIST — and `mtime` is the storage's own clock (what gc's grace period
//! is measured by, docs/format.md §10.3).
//!
//! Keys are `/`-separated paths relative to the repository root, e.g.
//! `objects/ab/cd/<64 hex>`, `index/<64 hex>`, `refs/heads/<name>`,
//! `sessions/<name>.json`. Every file of a repository — objects and the
//! small metadata files (config, refs, markers, sessions, locks, gc lists,
//! journal, renames) — is read and written through this trait, so a
//! repository works the same on a folder and on object storage.
//!
//! What object storage lacks, and how callers cope (docs/format.md §15):
//! no rename (a copy then a delete: a crash between leaves both keys,
//! which every caller reads as "the move did not happen"), no directory
//! fsync (a successful PUT is durable), no settable mtime (heartbeats
//! re-PUT the file; a filtered gc list keeps its old bytes instead).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::atomic::{self, Published, TEMP_PREFIX};

/// What the storage says about one file.
#[derive(Clone, Copy, Debug)]
pub struct FileInfo {
    pub size: u64,
    /// Bytes it occupies (block rounding included), where known.
    pub allocated: u64,
    /// Last modification, by the storage's own clock.
    pub mtime: Option<SystemTime>,
}

pub trait Storage: Send + Sync {
    /// The whole file; `NotFound` when absent, `InvalidData` when it has
    /// more than `max` bytes (refused before reading) or is not a regular
    /// file.
    fn read(&self, key: &str, max: u64) -> io::Result<Vec<u8>>;
    /// `len` bytes at `offset`; `UnexpectedEof` when the file is shorter.
    fn read_range(&self, key: &str, offset: u64, len: u64) -> io::Result<Vec<u8>>;
    /// `None` when absent.
    fn stat(&self, key: &str) -> io::Result<Option<FileInfo>>;
    /// Write-once: create `key` unless it exists (then nothing is written
    /// and `AlreadyExisted` is returned). Readers never see a partial file.
    /// Without `durable`, [`Storage::sync`] makes it durable later.
    fn put_new(&self, key: &str, bytes: &[u8], durable: bool) -> io::Result<Published>;
    /// Replace `key` atomically and durably (a damaged copy of the same
    /// bytes).
    fn put_replace(&self, key: &str, bytes: &[u8]) -> io::Result<()>;
    /// Every file whose key starts with `prefix/` (recursively), with its
    /// key; temporary files (`.tmp-*`) too, so that gc can remove old ones.
    fn list(
        &self,
        prefix: &str,
        f: &mut dyn FnMut(&str, FileInfo) -> io::Result<()>,
    ) -> io::Result<()>;
    /// Remove `key`; false when it was already gone.
    fn delete(&self, key: &str) -> io::Result<bool>;
    /// Make the files written with `durable: false` durable (`keys`: those
    /// files, for storages that sync one by one).
    fn sync(&self, keys: &[String]) -> io::Result<()>;
    /// Where `key` is, for messages (a path, or a URL).
    fn locate(&self, key: &str) -> PathBuf;

    /// Names of the files directly in `dir` (no `/` in them), sorted;
    /// temporary files included. A missing directory is empty.
    fn list_dir(&self, dir: &str) -> io::Result<Vec<String>> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let mut out = Vec::new();
        self.list(dir, &mut |key, _| {
            if let Some(name) = key.strip_prefix(&prefix)
                && !name.contains('/')
            {
                out.push(name.to_string());
            }
            Ok(())
        })?;
        out.sort();
        Ok(out)
    }
    /// Move `from` to `to`, replacing `to`, durably; false when `from` is
    /// absent. Atomic on a filesystem; on object storage a copy then a
    /// delete, so a crash between leaves both.
    fn rename(&self, from: &str, to: &str) -> io::Result<bool>;
    /// Make the creation or removal of `key` durable (its directory entry:
    /// `put_new` and `delete` leave that to this call).
    fn sync_entry(&self, key: &str) -> io::Result<()>;
    /// Move `key`'s mtime to the storage's "now" (a heartbeat).
    fn touch(&self, key: &str) -> io::Result<()>;
    /// The storage's clock: the mtime of a file written now under `dir`.
    fn now(&self, dir: &str) -> io::Result<SystemTime>;
    /// Set `key`'s mtime; false where the storage cannot.
    fn set_mtime(&self, key: &str, mtime: SystemTime) -> io::Result<bool>;
    /// Create the directories of a new repository (a filesystem keeps
    /// them so that gc runs on a full disk; object storage has none).
    fn create_dirs(&self, dirs: &[&str]) -> io::Result<()>;
    /// Make every write and delete so far durable (after gc's deletions).
    fn sync_all(&self) -> io::Result<()>;
    /// The folder, when the repository is one on this machine's
    /// filesystem (full-disk fallbacks, the cache beside it).
    fn local_root(&self) -> Option<&Path> {
        None
    }
}

/// A repository in a local or mounted folder.
pub struct LocalFs {
    root: PathBuf,
    /// Open files for ranged reads (packs), bounded.
    open: Mutex<HashMap<String, Arc<File>>>,
}

const OPEN_FILES: usize = 64;

impl LocalFs {
    pub fn new(root: &Path) -> LocalFs {
        LocalFs {
            root: root.to_path_buf(),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn open_cached(&self, key: &str) -> io::Result<Arc<File>> {
        if let Some(f) = self.open.lock().unwrap().get(key) {
            return Ok(f.clone());
        }
        let f = Arc::new(crate::repo::open_regular(&self.path(key))?);
        let mut open = self.open.lock().unwrap();
        if open.len() >= OPEN_FILES {
            open.clear();
        }
        open.insert(key.to_string(), f.clone());
        Ok(f)
    }

    fn forget_open(&self, key: &str) {
        self.open.lock().unwrap().remove(key);
    }
}

fn info(m: &fs::Metadata) -> FileInfo {
    use std::os::unix::fs::MetadataExt;
    FileInfo {
        size: m.len(),
        allocated: m.blocks() * 512,
        mtime: m.modified().ok(),
    }
}

impl Storage for LocalFs {
    fn read(&self, key: &str, max: u64) -> io::Result<Vec<u8>> {
        crate::repo::read_regular(&self.path(key), max)
    }

    fn read_range(&self, key: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let f = self.open_cached(key)?;
        let mut buf = vec![0u8; len as usize];
        match f.read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(buf),
            Err(e) => {
                // A file replaced since it was opened (a repaired pack) is
                // read afresh next time.
                self.forget_open(key);
                Err(e)
            }
        }
    }

    fn stat(&self, key: &str) -> io::Result<Option<FileInfo>> {
        match fs::metadata(self.path(key)) {
            Ok(m) if m.is_file() => Ok(Some(info(&m))),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a regular file",
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put_new(&self, key: &str, bytes: &[u8], durable: bool) -> io::Result<Published> {
        // `publish_new` creates a missing directory (objects/ab/cd).
        atomic::publish_new(&self.path(key), bytes, durable)
    }

    fn put_replace(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.forget_open(key);
        atomic::publish_replace(&self.path(key), bytes)
    }

    fn list(
        &self,
        prefix: &str,
        f: &mut dyn FnMut(&str, FileInfo) -> io::Result<()>,
    ) -> io::Result<()> {
        // Depth-first, sorted, one directory at a time (a network share
        // lists slowly; memory stays one directory's worth).
        let mut stack = vec![prefix.trim_end_matches('/').to_string()];
        while let Some(dir) = stack.pop() {
            let mut names: Vec<(String, fs::FileType)> = match fs::read_dir(self.path(&dir)) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let t = e.file_type().ok()?;
                        Some((e.file_name().to_string_lossy().into_owned(), t))
                    })
                    .collect(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            names.sort_by(|a, b| b.0.cmp(&a.0));
            for (name, t) in names {
                let key = format!("{dir}/{name}");
                if t.is_dir() {
                    stack.push(key);
                } else if t.is_file() {
                    match fs::metadata(self.path(&key)) {
                        Ok(m) => f(&key, info(&m))?,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    fn delete(&self, key: &str) -> io::Result<bool> {
        self.forget_open(key);
        match fs::remove_file(self.path(key)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn sync(&self, keys: &[String]) -> io::Result<()> {
        if keys.is_empty() || atomic::sync_filesystem(&self.root)? {
            return Ok(());
        }
        let mut dirs = std::collections::BTreeSet::new();
        for k in keys {
            let p = self.path(k);
            File::open(&p).and_then(|f| f.sync_all())?;
            if let Some(d) = p.parent() {
                dirs.insert(d.to_path_buf());
            }
        }
        for d in dirs {
            atomic::fsync_dir(&d)?;
        }
        Ok(())
    }

    fn locate(&self, key: &str) -> PathBuf {
        self.path(key)
    }

    fn list_dir(&self, dir: &str) -> io::Result<Vec<String>> {
        // One readdir, no stat per entry.
        let mut out = Vec::new();
        match fs::read_dir(self.path(dir)) {
            Ok(rd) => {
                for e in rd {
                    let e = e?;
                    if e.file_type().is_ok_and(|t| !t.is_dir()) {
                        out.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        out.sort();
        Ok(out)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<bool> {
        let (f, t) = (self.path(from), self.path(to));
        if let Some(d) = t.parent() {
            fs::create_dir_all(d)?;
        }
        match fs::rename(&f, &t) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        self.forget_open(from);
        self.forget_open(to);
        atomic::fsync_dir(t.parent().expect("key has a parent"))?;
        atomic::fsync_dir(f.parent().expect("key has a parent"))?;
        Ok(true)
    }

    fn sync_entry(&self, key: &str) -> io::Result<()> {
        atomic::fsync_dir(self.path(key).parent().expect("key has a parent"))
    }

    fn touch(&self, key: &str) -> io::Result<()> {
        // `UTIME_NOW`: an NFS server sets its own clock, not this host's
        // (which may be wrong): staleness is judged by the share's clock.
        use std::os::fd::AsRawFd;
        let f = File::options().write(true).open(self.path(key))?;
        let now = libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        };
        let times = [now, now];
        // SAFETY: the descriptor is open for the call; `times` is two valid
        // timespecs.
        if unsafe { libc::futimens(f.as_raw_fd(), times.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn now(&self, dir: &str) -> io::Result<SystemTime> {
        let d = self.path(dir);
        fs::create_dir_all(&d)?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{TEMP_PREFIX}clock-"))
            .tempfile_in(&d)?;
        tmp.as_file().metadata()?.modified()
    }

    fn set_mtime(&self, key: &str, mtime: SystemTime) -> io::Result<bool> {
        File::options()
            .write(true)
            .open(self.path(key))?
            .set_modified(mtime)?;
        Ok(true)
    }

    fn create_dirs(&self, dirs: &[&str]) -> io::Result<()> {
        for d in dirs {
            fs::create_dir_all(self.path(d))?;
        }
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        atomic::sync_filesystem(&self.root).map(|_| ())
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }
}

/// The key of an object file (loose object or pack) named `id`.
pub fn object_key(id: &crate::id::ObjectId) -> String {
    let h = id.to_hex();
    format!("objects/{}/{}/{}", &h[0..2], &h[2..4], h)
}

/// The key of an index object.
pub fn index_key(id: &crate::id::ObjectId) -> String {
    format!("{}/{}", crate::packed::INDEX_DIR, id.to_hex())
}

/// Is `key`'s last component a temporary file?
pub fn is_temp(key: &str) -> bool {
    key.rsplit('/')
        .next()
        .is_some_and(|n| n.starts_with(TEMP_PREFIX))
}
