//! The repository directory: config, objects, snapshot markers, refs.
//! See `docs/format.md` for the layout; this module is its only writer.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::atomic::{Published, TEMP_PREFIX};
use crate::chunker::ChunkerParams;
use crate::error::{Error, IoContext, Result};
use crate::id::ObjectId;
use crate::object::{self, HEADER_LEN, Header, ObjectKind};
use crate::snapshot::Snapshot;
use crate::storage::{LocalFs, Storage, object_key};
use crate::tree::Tree;

/// The repository format version `init` writes (2: packs, §13).
pub const FORMAT_VERSION: u64 = 2;
/// The oldest format version this code reads and writes (1: loose objects).
pub const OLDEST_FORMAT_VERSION: u64 = 1;
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    pub algorithm: String,
    pub level: i32,
}

/// The `config` file (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub format: String,
    pub version: u64,
    pub id: String,
    pub chunker: ChunkerParams,
    pub compression: Compression,
}

/// Which kind of ref.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    /// `refs/heads/<source>`: the latest snapshot of a source.
    Head,
    /// `refs/tags/<name>`: a named snapshot.
    Tag,
}

impl RefKind {
    pub(crate) fn dir(self) -> &'static str {
        match self {
            RefKind::Head => "refs/heads",
            RefKind::Tag => "refs/tags",
        }
    }
}

/// What writing one object did.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOutcome {
    /// Bytes of the object file when this call created it; 0 when it existed.
    pub bytes_added: u64,
    pub created: bool,
}

/// A handle dropped with objects appended but not written (a backup that
/// failed) writes them with their index, so a rerun reuses them instead of
/// reading them from the source again; they stay unreferenced until then.
impl Drop for Repo {
    fn drop(&mut self) {
        if self.packed.as_ref().is_some_and(|p| p.has_pending()) {
            let _ = self.flush();
        }
    }
}

pub struct Repo {
    root: PathBuf,
    config: Config,
    /// Where objects, packs and index objects live (docs: storage.rs).
    storage: Arc<dyn Storage>,
    /// Object files created but not yet made durable (see [`Repo::flush`]).
    unsynced: Mutex<Vec<String>>,
    trees_read: AtomicU64,
    /// Format v2: chunks and trees live in packs (docs/format.md §13).
    packed: Option<crate::packed::Packed>,
}

impl Repo {
    /// Create a new repository at `root` (which must not exist or be empty).
    pub fn init(root: &Path) -> Result<Repo> {
        Repo::init_with(root, ChunkerParams::default(), DEFAULT_ZSTD_LEVEL)
    }

    pub fn init_with(root: &Path, chunker: ChunkerParams, level: i32) -> Result<Repo> {
        Repo::init_format(root, chunker, level, FORMAT_VERSION)
    }

    /// Create a repository of format `version` (1 or 2).
    pub fn init_format(
        root: &Path,
        chunker: ChunkerParams,
        level: i32,
        version: u64,
    ) -> Result<Repo> {
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(Error::UnsupportedVersion {
                path: root.join("config"),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        chunker.validate().map_err(|reason| Error::BadConfig {
            path: root.join("config"),
            reason,
        })?;
        if root.join("config").exists() {
            return Err(Error::AlreadyARepository(root.to_path_buf()));
        }
        match fs::read_dir(root) {
            Ok(mut it) => {
                if it.next().is_some() {
                    return Err(Error::InitTargetNotEmpty(root.to_path_buf()));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(root).at(root)?;
            }
            Err(e) => return Err(Error::io(root, e)),
        }
        Repo::init_storage(
            Arc::new(LocalFs::new(root)),
            root.to_path_buf(),
            chunker,
            level,
            version,
        )
    }

    /// Create a repository of format `version` in `storage`, shown to the
    /// user as `location`. A storage that holds any file is refused.
    pub fn init_storage(
        storage: Arc<dyn Storage>,
        location: PathBuf,
        chunker: ChunkerParams,
        level: i32,
        version: u64,
    ) -> Result<Repo> {
        let at = |key: &str| storage.locate(key);
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(Error::UnsupportedVersion {
                path: at("config"),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        chunker.validate().map_err(|reason| Error::BadConfig {
            path: at("config"),
            reason,
        })?;
        if storage.stat("config").at(at("config"))?.is_some() {
            return Err(Error::AlreadyARepository(location));
        }
        if storage.local_root().is_none() {
            let mut any = false;
            storage
                .list("", &mut |_, _| {
                    any = true;
                    Err(io::Error::other("stop"))
                })
                .or_else(|e| if any { Ok(()) } else { Err(e) })
                .at(&location)?;
            if any {
                return Err(Error::InitTargetNotEmpty(location));
            }
        }
        let mut dirs = vec![
            "objects",
            "snapshots",
            "refs/heads",
            "refs/tags",
            "trash",
            "locks",
            "sessions",
            "gc/condemned",
        ];
        if version >= 2 {
            dirs.push(crate::packed::INDEX_DIR);
        }
        storage.create_dirs(&dirs).at(&location)?;
        // A gc must run on a disk the first backup filled: with this file
        // and its directory in place it overwrites the generation in place
        // and needs no new block (docs/format.md §10.3).
        storage
            .put_replace("gc/generation", b"0\n")
            .at(at("gc/generation"))?;
        let mut idb = [0u8; 32];
        File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut idb))
            .unwrap_or_else(|_| {
                let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
                idb = *blake3::hash(seed.as_bytes()).as_bytes();
            });
        let config = Config {
            format: "belay".into(),
            version,
            id: hex::encode(idb),
            chunker,
            compression: Compression {
                algorithm: "zstd".into(),
                level,
            },
        };
        let mut text = serde_json::to_string_pretty(&config).expect("config serializes");
        text.push('\n');
        // The config is written last: until it exists, this is not a repository.
        storage
            .put_replace("config", text.as_bytes())
            .at(at("config"))?;
        Repo::open_storage(storage, location)
    }

    pub fn open(root: &Path) -> Result<Repo> {
        Repo::open_storage(Arc::new(LocalFs::new(root)), root.to_path_buf())
    }

    /// Open the repository in `storage`, shown to the user as `location`.
    pub fn open_storage(storage: Arc<dyn Storage>, location: PathBuf) -> Result<Repo> {
        let path = storage.locate("config");
        let text = match storage.read("config", MAX_SMALL_FILE) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotARepository(location));
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let value: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| Error::BadConfig {
                path: path.clone(),
                reason: crate::error::shorten(e.to_string(), 200),
            })?;
        if value.get("format").and_then(|f| f.as_str()) != Some("belay") {
            return Err(Error::BadConfig {
                path,
                reason: "\"format\" is not \"belay\"".into(),
            });
        }
        let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(Error::UnsupportedVersion {
                path,
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let config: Config = serde_json::from_value(value).map_err(|e| Error::BadConfig {
            path: path.clone(),
            reason: crate::error::shorten(e.to_string(), 200),
        })?;
        config
            .chunker
            .validate()
            .map_err(|reason| Error::BadConfig {
                path: path.clone(),
                reason,
            })?;
        if config.compression.algorithm != "zstd" {
            return Err(Error::BadConfig {
                path,
                reason: crate::error::shorten(
                    format!("unknown compression {:?}", config.compression.algorithm),
                    200,
                ),
            });
        }
        Ok(Repo {
            root: location,
            unsynced: Mutex::new(Vec::new()),
            trees_read: AtomicU64::new(0),
            packed: (config.version >= 2).then(|| crate::packed::Packed::new(storage.clone())),
            storage,
            config,
        })
    }

    /// Rewrite `config` with another format version (migrate). The id,
    /// chunker and compression stay; the file is replaced atomically.
    pub fn set_format_version(&self, version: u64) -> Result<()> {
        let mut config = self.config.clone();
        config.version = version;
        let mut text = serde_json::to_string_pretty(&config).expect("config serializes");
        text.push('\n');
        self.storage
            .put_replace("config", text.as_bytes())
            .at(self.storage.locate("config"))?;
        self.storage
            .create_dirs(&[crate::packed::INDEX_DIR])
            .at(&self.root)
    }

    /// Where the repository is, as the user named it (a folder, or a URL).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder, when the repository is one on this machine.
    pub fn local_root(&self) -> Option<&Path> {
        self.storage.local_root()
    }

    /// Names of the files directly in `dir` (a key), sorted.
    pub fn list_dir(&self, dir: &str) -> Result<Vec<String>> {
        self.storage
            .list_dir(dir)
            .map_err(|e| Error::io(self.storage.locate(dir), e))
    }

    /// Does the file `key` exist? (An unreadable one counts as existing.)
    pub fn exists(&self, key: &str) -> bool {
        !matches!(self.storage.stat(key), Ok(None))
    }

    /// A small text file (config, ref, generation): at most
    /// [`MAX_SMALL_FILE`] bytes of UTF-8.
    pub fn read_small_text(&self, key: &str) -> io::Result<String> {
        String::from_utf8(self.storage.read(key, MAX_SMALL_FILE)?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
    }
    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn chunker(&self) -> ChunkerParams {
        self.config.chunker
    }

    /// How many tree objects this handle has read (for cost tests).
    pub fn trees_read(&self) -> u64 {
        self.trees_read.load(Ordering::Relaxed)
    }

    // ---- objects -------------------------------------------------------

    /// Where `id` is: the pack holding it (format v2), else its loose path.
    /// For messages and for tests that damage objects.
    pub fn object_path(&self, id: &ObjectId) -> PathBuf {
        if let Some(p) = self.packed.as_ref().and_then(|p| p.path_of(id)) {
            return p;
        }
        self.loose_path(id)
    }

    /// The path of a loose object (or pack) file named `id`.
    pub fn loose_path(&self, id: &ObjectId) -> PathBuf {
        self.storage.locate(&object_key(id))
    }

    /// Where the object files live.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The format version of this repository.
    pub fn format_version(&self) -> u64 {
        self.config.version
    }

    /// The packed store (format v2 only).
    pub fn packed(&self) -> Option<&crate::packed::Packed> {
        self.packed.as_ref()
    }

    /// Does `kind` go into packs in this repository?
    fn packs(&self, kind: ObjectKind) -> Option<&crate::packed::Packed> {
        match kind {
            ObjectKind::Chunk | ObjectKind::Tree => self.packed.as_ref(),
            _ => None,
        }
    }

    /// Does a complete object exist for `id`? A loose file that is empty or
    /// shorter than its header says counts as missing (a torn write); a
    /// packed object exists when a pack file listing it is present.
    pub fn has_object(&self, id: &ObjectId) -> bool {
        // Packs first: their lookup is in memory, where a loose object
        // costs a request on object storage.
        self.packed
            .as_ref()
            .is_some_and(|p| p.contains(id, true).unwrap_or(false))
            || self.loose_is_complete(id)
    }

    /// One cheap presence test (a `stat`, no open) of `id`: a loose file
    /// with at least a header, or a present pack listing it.
    pub fn object_present(&self, id: &ObjectId) -> bool {
        if let Some(p) = &self.packed
            && p.contains(id, false).unwrap_or(false)
        {
            return true;
        }
        if self
            .storage
            .stat(&object_key(id))
            .is_ok_and(|m| m.is_some_and(|m| m.size >= HEADER_LEN as u64))
        {
            return true;
        }
        self.packed
            .as_ref()
            .is_some_and(|p| p.contains(id, true).unwrap_or(false))
    }

    /// Bytes `id` takes in the repository (its envelope), if known.
    pub fn stored_len(&self, id: &ObjectId) -> Option<u64> {
        if let Some(n) = self.packed.as_ref().and_then(|p| p.stored_len(id)) {
            return Some(n);
        }
        self.storage
            .stat(&object_key(id))
            .ok()
            .flatten()
            .map(|m| m.size)
    }

    /// The header of loose object `id`, checked against the file's length:
    /// `Ok(None)` when there is no such file or it is empty (torn).
    pub fn loose_header(&self, id: &ObjectId) -> Result<Option<(Header, u64)>> {
        let key = object_key(id);
        let path = || self.storage.locate(&key);
        let Some(meta) = self.storage.stat(&key).map_err(|e| Error::io(path(), e))? else {
            return Ok(None);
        };
        if meta.size == 0 {
            return Ok(None);
        }
        let corrupt = |reason: String| Error::CorruptObject {
            id: id.to_hex(),
            path: path(),
            reason,
        };
        if meta.size < HEADER_LEN as u64 {
            return Err(corrupt(format!(
                "truncated: {} bytes, shorter than the header",
                meta.size
            )));
        }
        let h = self
            .storage
            .read_range(&key, 0, HEADER_LEN as u64)
            .map_err(|e| Error::io(path(), e))?;
        let header = Header::decode(&h).map_err(corrupt)?;
        let want = HEADER_LEN as u64 + header.stored_len;
        if meta.size < want {
            return Err(corrupt(format!(
                "truncated: {} payload bytes of {}",
                meta.size - HEADER_LEN as u64,
                header.stored_len
            )));
        }
        if meta.size > want {
            return Err(corrupt(format!(
                "{} bytes after the payload",
                meta.size - want
            )));
        }
        Ok(Some((header, meta.size)))
    }

    /// Is there a complete loose file for `id` (header and length agree)?
    fn loose_is_complete(&self, id: &ObjectId) -> bool {
        matches!(self.loose_header(id), Ok(Some(_)))
    }

    /// Store `raw` as an object of `kind`; returns its id and whether this
    /// call created it. The object is not yet durable: call [`Repo::flush`]
    /// before anything that must survive a crash refers to it.
    pub fn write_object(&self, kind: ObjectKind, raw: &[u8]) -> Result<(ObjectId, WriteOutcome)> {
        let id = ObjectId::compute(kind, raw);
        let out = self.write_object_with_id(id, kind, raw)?;
        Ok((id, out))
    }

    /// As [`Repo::write_object`] with the id already computed by the caller.
    pub fn write_object_with_id(
        &self,
        id: ObjectId,
        kind: ObjectKind,
        raw: &[u8],
    ) -> Result<WriteOutcome> {
        if let Some(p) = self.packs(kind) {
            if p.contains(&id, false)? {
                return Ok(WriteOutcome::default());
            }
            return self.append_packed(p, id, kind, raw, false);
        }
        let key = object_key(&id);
        let path = || self.storage.locate(&key);
        // Probe first (a concurrent writer is handled by the no-clobber
        // publish below either way).
        if self.loose_is_complete(&id) {
            return Ok(WriteOutcome::default());
        }
        let bytes = object::encode_object(kind, raw, self.config.compression.level);
        match self
            .storage
            .put_new(&key, &bytes, false)
            .map_err(|e| Error::io(path(), e))?
        {
            Published::Created => {
                self.unsynced.lock().unwrap().push(key.clone());
                Ok(WriteOutcome {
                    bytes_added: bytes.len() as u64,
                    created: true,
                })
            }
            Published::AlreadyExisted => {
                if self.loose_is_complete(&id) {
                    return Ok(WriteOutcome::default());
                }
                // A torn object from a crashed writer: replace it.
                self.storage
                    .put_replace(&key, &bytes)
                    .map_err(|e| Error::io(path(), e))?;
                Ok(WriteOutcome {
                    bytes_added: bytes.len() as u64,
                    created: true,
                })
            }
        }
    }

    /// Store `raw` under `id` even if a file is there: for an object found
    /// damaged (its bytes do not hash to its id). Same id, same bytes, so
    /// replacing is safe against any concurrent reader or writer.
    pub fn replace_object(
        &self,
        id: ObjectId,
        kind: ObjectKind,
        raw: &[u8],
    ) -> Result<WriteOutcome> {
        if let Some(p) = self.packs(kind) {
            // A fresh copy in a new pack; readers skip the damaged one.
            return self.append_packed(p, id, kind, raw, true);
        }
        let key = object_key(&id);
        let bytes = object::encode_object(kind, raw, self.config.compression.level);
        // Durable on return (fsynced with its directory).
        self.storage
            .put_replace(&key, &bytes)
            .map_err(|e| Error::io(self.storage.locate(&key), e))?;
        Ok(WriteOutcome {
            bytes_added: bytes.len() as u64,
            created: true,
        })
    }

    fn append_packed(
        &self,
        p: &crate::packed::Packed,
        id: ObjectId,
        kind: ObjectKind,
        raw: &[u8],
        force: bool,
    ) -> Result<WriteOutcome> {
        let bytes = object::encode_object(kind, raw, self.config.compression.level);
        let created = p.append(id, kind, &bytes, force)?;
        Ok(WriteOutcome {
            bytes_added: if created { bytes.len() as u64 } else { 0 },
            created,
        })
    }

    /// Make every object written through this handle durable: one `syncfs`
    /// where the OS has it, else an fsync per file and directory.
    pub fn flush(&self) -> Result<()> {
        let mut pending = std::mem::take(&mut *self.unsynced.lock().unwrap());
        if let Some(p) = &self.packed {
            // Packs, then the index object that lists them (format.md §13).
            pending.extend(p.flush(self.config.compression.level)?);
        }
        self.storage.sync(&pending).at(&self.root)
    }

    /// Read, decompress and verify an object. Any mismatch between the bytes
    /// and the id names the object's path. A missing or damaged object
    /// makes the local cache distrust what it knows (docs/cache.md), so the
    /// next backup stores that content again.
    pub fn read_object(&self, id: &ObjectId, expected: ObjectKind) -> Result<Vec<u8>> {
        let r = self.read_object_unchecked_cache(id, expected);
        if let Err(Error::MissingObject { .. } | Error::CorruptObject { .. }) = &r {
            crate::cache_state::distrust(self, &[*id]);
        }
        r
    }

    fn read_object_unchecked_cache(&self, id: &ObjectId, expected: ObjectKind) -> Result<Vec<u8>> {
        let mut packed_err = None;
        if let Some(p) = self.packs(expected) {
            let found = p.read_with(id, &mut |bytes, path| {
                verify_envelope(bytes, id, expected, path)
            });
            match found {
                Ok(Some(raw)) => return Ok(raw),
                Ok(None) => {}
                // A loose copy (from format v1 or a migration) may still be good.
                Err(e) => packed_err = Some(e),
            }
        }
        match self.read_loose(id, expected) {
            Err(Error::MissingObject { .. }) if packed_err.is_some() => Err(packed_err.unwrap()),
            r => r,
        }
    }

    fn read_loose(&self, id: &ObjectId, expected: ObjectKind) -> Result<Vec<u8>> {
        let key = object_key(id);
        let path = self.storage.locate(&key);
        let max = (HEADER_LEN + crate::codec::MAX_PAYLOAD) as u64;
        let file = match self.storage.read(&key, max) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::MissingObject {
                    id: id.to_hex(),
                    path,
                });
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        if file.is_empty() {
            return Err(Error::MissingObject {
                id: id.to_hex(),
                path,
            });
        }
        verify_envelope(&file, id, expected, &path)
    }

    pub fn read_tree(&self, id: &ObjectId) -> Result<Tree> {
        self.trees_read.fetch_add(1, Ordering::Relaxed);
        let raw = self.read_object(id, ObjectKind::Tree)?;
        Tree::decode(&raw).map_err(|reason| Error::CorruptObject {
            id: id.to_hex(),
            path: self.object_path(id),
            reason,
        })
    }

    pub fn read_snapshot(&self, id: &ObjectId) -> Result<Snapshot> {
        let raw = self.read_object(id, ObjectKind::Snapshot)?;
        let mut snap = Snapshot::decode(&raw).map_err(|reason| Error::CorruptObject {
            id: id.to_hex(),
            path: self.object_path(id),
            reason,
        })?;
        // A renamed history's snapshots carry its new name (format.md §13).
        crate::rename::apply(self.storage.as_ref(), id, &mut snap);
        Ok(snap)
    }

    pub fn write_tree(&self, tree: &Tree) -> Result<(ObjectId, WriteOutcome)> {
        self.write_object(ObjectKind::Tree, &tree.encode())
    }

    // ---- snapshots -----------------------------------------------------

    /// Commit a snapshot: make every pending object durable, write the
    /// snapshot object, then its marker. Moving a ref is the caller's last step.
    pub fn commit_snapshot(&self, snap: &Snapshot) -> Result<(ObjectId, WriteOutcome)> {
        self.flush()?;
        let raw = snap.encode();
        let (id, out) = self.write_object(ObjectKind::Snapshot, &raw)?;
        self.flush()?;
        self.add_marker(&id)?;
        Ok((id, out))
    }

    pub(crate) fn marker_key(id: &ObjectId) -> String {
        format!("snapshots/{}", id.to_hex())
    }

    /// Is `id` a live snapshot (it has a marker)? A forgotten snapshot's
    /// object may exist until gc deletes it, but it has no marker.
    pub fn is_live(&self, id: &ObjectId) -> bool {
        self.exists(&Repo::marker_key(id))
    }

    pub fn add_marker(&self, id: &ObjectId) -> Result<()> {
        let key = Repo::marker_key(id);
        let at = || self.storage.locate(&key);
        self.storage.put_new(&key, b"", true).at(at())?;
        self.storage.sync_entry(&key).at(at())
    }

    /// Withdraw a marker (a commit that turned out unsafe).
    pub(crate) fn remove_marker(&self, id: &ObjectId) -> Result<()> {
        let key = Repo::marker_key(id);
        let at = || self.storage.locate(&key);
        self.storage.delete(&key).at(at())?;
        self.storage.sync_entry(&key).at(at())
    }

    /// Ids of every live snapshot (the gc roots), sorted. Names that are not
    /// ids (temp files, stray files) are ignored.
    pub fn list_snapshots(&self) -> Result<Vec<ObjectId>> {
        let mut out: Vec<ObjectId> = self
            .list_dir("snapshots")?
            .iter()
            .filter_map(|name| ObjectId::from_hex(name))
            .collect();
        out.sort();
        Ok(out)
    }

    // ---- refs ----------------------------------------------------------

    pub(crate) fn ref_key(kind: RefKind, name: &str) -> String {
        format!("{}/{name}", kind.dir())
    }

    pub fn read_ref(&self, kind: RefKind, name: &str) -> Result<Option<ObjectId>> {
        validate_ref_name(name)?;
        let key = Repo::ref_key(kind, name);
        let path = self.storage.locate(&key);
        match self.read_small_text(&key) {
            Ok(text) => parse_ref(&text).map(Some).ok_or_else(|| Error::BadRef {
                path,
                reason: "does not hold a 64-digit snapshot id".into(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    pub fn write_ref(&self, kind: RefKind, name: &str, id: &ObjectId) -> Result<()> {
        validate_ref_name(name)?;
        let key = Repo::ref_key(kind, name);
        self.storage
            .put_replace(&key, format!("{id}\n").as_bytes())
            .at(self.storage.locate(&key))
    }

    /// Remove a ref; returns whether it existed.
    pub fn delete_ref(&self, kind: RefKind, name: &str) -> Result<bool> {
        validate_ref_name(name)?;
        let key = Repo::ref_key(kind, name);
        let path = self.storage.locate(&key);
        let existed = self.storage.delete(&key).at(&path)?;
        if existed {
            self.storage.sync_entry(&key).at(&path)?;
        }
        Ok(existed)
    }

    /// Every readable ref of a kind, by name; each one that cannot be read
    /// (not an id, unreadable) is handed to `bad` as a message and left
    /// out, so one bad ref does not stop commands over the whole
    /// repository (`check` reports it as a problem).
    pub fn list_refs_reporting(
        &self,
        kind: RefKind,
        bad: &mut dyn FnMut(String),
    ) -> Result<BTreeMap<String, ObjectId>> {
        let mut out = BTreeMap::new();
        for name in self.list_dir(kind.dir())? {
            if name.starts_with(TEMP_PREFIX) || validate_ref_name(&name).is_err() {
                continue;
            }
            match self.read_ref(kind, &name) {
                Ok(Some(id)) => {
                    out.insert(name, id);
                }
                Ok(None) => {}
                Err(e) => bad(format!("{e}; left out (`belay check` reports it)")),
            }
        }
        Ok(out)
    }

    /// Every ref of a kind, by name. A ref file that does not hold an id is
    /// an error naming it.
    pub fn list_refs(&self, kind: RefKind) -> Result<BTreeMap<String, ObjectId>> {
        let mut out = BTreeMap::new();
        for name in self.list_dir(kind.dir())? {
            // Not a ref (format.md §1): ignored, like a directory in refs/.
            if name.starts_with(TEMP_PREFIX) || validate_ref_name(&name).is_err() {
                continue;
            }
            if let Some(id) = self.read_ref(kind, &name)? {
                out.insert(name, id);
            }
        }
        Ok(out)
    }
}

/// Decode an envelope and check that it holds `id` of kind `expected`.
fn verify_envelope(
    bytes: &[u8],
    id: &ObjectId,
    expected: ObjectKind,
    path: &Path,
) -> Result<Vec<u8>> {
    let corrupt = |reason: String| Error::CorruptObject {
        id: id.to_hex(),
        path: path.to_path_buf(),
        reason,
    };
    let (header, raw) = object::decode_object(bytes).map_err(corrupt)?;
    if ObjectId::compute(header.kind, &raw) != *id {
        return Err(corrupt("content does not match its id".into()));
    }
    if header.kind != expected {
        return Err(Error::WrongKind {
            id: id.to_hex(),
            found: header.kind.name(),
            expected: expected.name(),
        });
    }
    Ok(raw)
}

/// Open a repository file for reading without trusting what it is (the
/// drive may be written by anyone): a FIFO does not block the open, and
/// anything but a regular file (a device, a directory) is refused.
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    Ok(f)
}

/// Read a repository file of at most `max` bytes ([`open_regular`]); a
/// larger one is an error, never read whole.
pub fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let f = open_regular(path)?;
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes, not a belay file"),
        )
    };
    // A file that says it is larger is refused before any byte is read (a
    // sparse 4 GiB file would otherwise cost `max` bytes of memory).
    if f.metadata()?.len() > max {
        return Err(too_large());
    }
    let mut out = Vec::new();
    f.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(too_large());
    }
    Ok(out)
}

/// Largest `config`, ref or tag file a reader accepts.
pub const MAX_SMALL_FILE: u64 = 64 << 10;

/// [`read_regular`] of a small text file (config, ref, tag).
pub fn read_small_text(path: &Path) -> io::Result<String> {
    String::from_utf8(read_regular(path, MAX_SMALL_FILE)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

fn parse_ref(text: &str) -> Option<ObjectId> {
    ObjectId::from_hex(text.lines().next()?.trim())
}

/// Source and tag names become file names under `refs/`, so they are
/// limited: 1–200 bytes of UTF-8, no `/`, `\`, `:`, `~`, `^`, `@{`, control
/// characters or NUL, not starting with `.` or `-`.
pub fn validate_ref_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() || name.len() > 200 {
        return bad("must be 1 to 200 bytes long");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("must not start with '.' or '-'");
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '/' | '\\' | ':' | '~' | '^' | '*' | '?' | '['))
        || name.contains("@{")
    {
        return bad(
            "must not contain '/', '\\', ':', '~', '^', '*', '?', '[', '@{' or control characters",
        );
    }
    Ok(())
}

/// Turn an arbitrary string (a folder's name) into a valid ref name.
/// The source name for a backup of `source` when the user gives none: its
/// own suggestion made a valid name.
pub fn default_source_name(source: &dyn crate::source::Source) -> String {
    sanitize_ref_name(&source.default_name())
}

pub fn sanitize_ref_name(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':' | '~' | '^' | '*' | '?' | '[') {
                '_'
            } else {
                c
            }
        })
        .collect();
    s = s.replace("@{", "_{");
    while s.starts_with('.') || s.starts_with('-') {
        s.replace_range(0..1, "_");
    }
    if s.is_empty() {
        s = "root".into();
    }
    while s.len() > 200 {
        s.pop();
    }
    s
}
