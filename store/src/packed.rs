//! The packed object store of a format-v2 repository: where each object
//! lies (loaded from the index objects), reading envelopes by range, and
//! appending new objects to packs. [`crate::repo::Repo`] is its only user;
//! the format is in [`crate::pack`] and docs/format.md §13.
//!
//! Lookup memory: one 48-byte [`Loc`] per (object, pack) pair, sorted by
//! id, plus one pack-table row per pack.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::atomic::Published;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::{self, ObjectKind};
use crate::pack::{IndexV1, IndexedEntry, IndexedPack, PACK_TARGET, PackBuilder};
use crate::storage::{Storage, index_key, is_temp, object_key};

pub const INDEX_DIR: &str = "index";
/// Largest index object a reader accepts (envelope cap).
const MAX_INDEX_FILE: u64 = (object::HEADER_LEN + crate::codec::MAX_PAYLOAD) as u64;

/// One object's place in one pack.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Loc {
    pub id: ObjectId,
    /// Row in the pack table.
    pub pack: u32,
    pub offset: u32,
    pub length: u32,
    pub kind: u8,
}

#[derive(Default)]
struct Table {
    /// Index objects read (and those superseded by one read).
    files: HashSet<ObjectId>,
    packs: Vec<ObjectId>,
    pack_rows: HashMap<ObjectId, u32>,
    /// Sorted by id; an id may appear once per pack holding it.
    sorted: Vec<Loc>,
    /// Added since the last sort (this handle's packs, refreshes).
    recent: HashMap<ObjectId, Vec<Loc>>,
    loaded: bool,
}

impl Table {
    fn pack_row(&mut self, pack: ObjectId) -> u32 {
        if let Some(&r) = self.pack_rows.get(&pack) {
            return r;
        }
        let r = self.packs.len() as u32;
        self.packs.push(pack);
        self.pack_rows.insert(pack, r);
        r
    }

    fn add_pack(&mut self, p: &IndexedPack, recent: bool) {
        let row = self.pack_row(p.pack);
        for e in &p.entries {
            let Ok(offset) = u32::try_from(e.offset) else {
                continue; // packs are far smaller; a hostile index is ignored
            };
            let loc = Loc {
                id: e.id,
                pack: row,
                offset,
                length: e.length,
                kind: e.kind,
            };
            if recent {
                self.recent.entry(e.id).or_default().push(loc);
            } else {
                self.sorted.push(loc);
            }
        }
    }

    fn lookup(&self, id: &ObjectId) -> Vec<Loc> {
        let start = self.sorted.partition_point(|l| l.id < *id);
        let mut out: Vec<Loc> = self.sorted[start..]
            .iter()
            .take_while(|l| l.id == *id)
            .copied()
            .collect();
        if let Some(r) = self.recent.get(id) {
            out.extend(r.iter().copied());
        }
        out
    }
}

/// What this handle is writing.
#[derive(Default)]
struct Writing {
    builder: Option<PackBuilder>,
    /// Ids in `builder`, with their envelope's place in it.
    building: HashMap<ObjectId, (usize, usize)>,
    /// Every id this handle appended (built or written).
    appended: HashSet<ObjectId>,
    /// Packs written and not yet listed by an index object of this handle.
    unindexed: Vec<IndexedPack>,
    /// Files to make durable at the next flush.
    unsynced: Vec<String>,
}

pub struct Packed {
    storage: Arc<dyn Storage>,
    table: RwLock<Table>,
    writing: Mutex<Writing>,
    /// Packs whose size was checked against [`crate::pack::MAX_PACK`].
    checked: Mutex<HashSet<u32>>,
    /// Packs found present, with their size: a presence test costs one
    /// `stat` per pack, not per object (a request each on object storage).
    /// Cleared by [`Packed::forget_presence`] when a gc may have run.
    present: Mutex<HashMap<u32, u64>>,
}

/// The path of an object file (loose object or pack) named `id`.
pub fn object_file_path(root: &Path, id: &ObjectId) -> PathBuf {
    let h = id.to_hex();
    root.join("objects").join(&h[0..2]).join(&h[2..4]).join(&h)
}

/// Every index object in `index/`: its id and decoded payload. Files that
/// are not ids or are `.tmp-` are skipped; an unreadable one is an error
/// naming it.
pub fn read_indexes(
    storage: &dyn Storage,
    skip: &HashSet<ObjectId>,
) -> Result<Vec<(ObjectId, IndexV1)>> {
    let mut out = Vec::new();
    for_each_index(storage, skip, true, &mut |id, ix| {
        out.push((id, ix));
        Ok(())
    })?;
    Ok(out)
}

/// The index objects' ids (one listing of `index/`).
pub fn list_indexes(storage: &dyn Storage) -> Result<Vec<(ObjectId, u64)>> {
    let mut out = Vec::new();
    storage
        .list(INDEX_DIR, &mut |key, info| {
            let name = key.rsplit('/').next().unwrap_or_default();
            if let Some(id) = ObjectId::from_hex(name).filter(|_| !is_temp(key)) {
                out.push((id, info.size));
            }
            Ok(())
        })
        .map_err(|e| Error::io(storage.locate(INDEX_DIR), e))?;
    out.sort();
    Ok(out)
}

/// As [`read_indexes`], handing each index object to `f` as it is read.
/// Without `strict`, a damaged index object is skipped (the objects only
/// it lists then read as missing, and `check` names it); gc reads strictly,
/// since packs it cannot see would look like garbage.
pub fn for_each_index(
    storage: &dyn Storage,
    skip: &HashSet<ObjectId>,
    strict: bool,
    f: &mut dyn FnMut(ObjectId, IndexV1) -> Result<()>,
) -> Result<()> {
    for (id, _) in list_indexes(storage)? {
        if skip.contains(&id) {
            continue;
        }
        match read_index_file(storage, &id) {
            Ok(ix) => f(id, ix)?,
            // Deleted by a gc between the listing and the read: it was
            // superseded by a consolidated index that the listing holds.
            Err(Error::MissingObject { .. }) => continue,
            Err(Error::CorruptObject { .. }) if !strict => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read and verify one index object.
pub fn read_index_file(storage: &dyn Storage, id: &ObjectId) -> Result<IndexV1> {
    let key = index_key(id);
    let path = storage.locate(&key);
    let bytes = match storage.read(&key, MAX_INDEX_FILE) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::MissingObject {
                id: id.to_hex(),
                path,
            });
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let corrupt = |reason: String| Error::CorruptObject {
        id: id.to_hex(),
        path: path.clone(),
        reason,
    };
    let (header, raw) = object::decode_object(&bytes).map_err(corrupt)?;
    if header.kind != ObjectKind::Index || ObjectId::compute(ObjectKind::Index, &raw) != *id {
        return Err(corrupt("content does not match its id".into()));
    }
    IndexV1::decode(&raw).map_err(corrupt)
}

/// Write an index object listing `packs` (sorted here); returns its id and
/// key. Not durable until the caller syncs.
pub fn write_index(
    storage: &dyn Storage,
    supersedes: Vec<ObjectId>,
    mut packs: Vec<IndexedPack>,
    level: i32,
) -> Result<(ObjectId, String)> {
    packs.sort_by_key(|p| p.pack);
    packs.dedup_by(|a, b| a.pack == b.pack);
    let ix = IndexV1 { supersedes, packs };
    let raw = ix.encode();
    let id = ObjectId::compute(ObjectKind::Index, &raw);
    let key = index_key(&id);
    let bytes = object::encode_object(ObjectKind::Index, &raw, level);
    storage
        .put_new(&key, &bytes, false)
        .map_err(|e| Error::io(storage.locate(&key), e))?;
    Ok((id, key))
}

/// Write a finished pack under `objects/`; returns what an index lists of
/// it, and its key.
pub fn write_pack(storage: &dyn Storage, builder: PackBuilder) -> Result<(IndexedPack, String)> {
    let (id, bytes, entries) = builder.finish();
    let key = object_key(&id);
    let io_err = |e| Error::io(storage.locate(&key), e);
    match storage.put_new(&key, &bytes, false).map_err(io_err)? {
        Published::Created => {}
        // Same name, same bytes: another writer's copy, unless it is torn
        // or damaged (gc may rebuild exactly the pack a damaged one was):
        // then ours replaces it.
        Published::AlreadyExisted => {
            let same = storage
                .read(&key, crate::pack::MAX_PACK)
                .is_ok_and(|existing| existing == bytes);
            if !same {
                storage.put_replace(&key, &bytes).map_err(io_err)?;
            }
        }
    }
    Ok((
        IndexedPack {
            pack: id,
            size: bytes.len() as u64,
            entries: entries.iter().map(IndexedEntry::from_entry).collect(),
        },
        key,
    ))
}

impl Packed {
    pub fn new(storage: Arc<dyn Storage>) -> Packed {
        Packed {
            storage,
            table: RwLock::new(Table::default()),
            writing: Mutex::new(Writing::default()),
            checked: Mutex::new(HashSet::new()),
            present: Mutex::new(HashMap::new()),
        }
    }

    /// Stop trusting what [`Packed::contains`] found present (a gc ran:
    /// it may have deleted packs since).
    pub fn forget_presence(&self) {
        self.present.lock().unwrap().clear();
    }

    pub fn pack_path(&self, pack: &ObjectId) -> PathBuf {
        self.storage.locate(&object_key(pack))
    }

    /// Load the index objects on first use.
    fn ensure_loaded(&self) -> Result<()> {
        if self.table.read().unwrap().loaded {
            return Ok(());
        }
        self.refresh()
    }

    /// Read the index objects this handle has not read yet (one listing
    /// of `index/`).
    pub fn refresh(&self) -> Result<()> {
        let skip = self.table.read().unwrap().files.clone();
        // Superseded index objects are read too: the packs only they list
        // are condemned, not yet deleted, and may hold what an undone
        // forget or a concurrent backup needs (docs/format.md §13.4).
        // One index object decoded at a time, straight into the table.
        let mut added = false;
        for_each_index(&*self.storage, &skip, false, &mut |id, ix| {
            let mut t = self.table.write().unwrap();
            t.files.insert(id);
            for p in &ix.packs {
                t.add_pack(p, false);
                added = true;
            }
            Ok(())
        })?;
        let mut t = self.table.write().unwrap();
        if added || !t.loaded {
            t.sorted.sort_unstable_by_key(|l| l.id);
            t.sorted.shrink_to_fit();
            t.loaded = true;
        }
        Ok(())
    }

    /// Where `id` lies: every known place, this handle's unsorted ones last.
    fn locations(&self, id: &ObjectId) -> Result<Vec<Loc>> {
        self.ensure_loaded()?;
        Ok(self.table.read().unwrap().lookup(id))
    }

    fn pack_of(&self, row: u32) -> ObjectId {
        self.table.read().unwrap().packs[row as usize]
    }

    /// Read `len` bytes at `offset` of pack `row`; a pack is checked once
    /// per handle to be no larger than [`crate::pack::MAX_PACK`].
    fn pack_range(&self, row: u32, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let key = object_key(&self.pack_of(row));
        if !self.checked.lock().unwrap().contains(&row) {
            let size = self
                .storage
                .stat(&key)?
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?
                .size;
            if size > crate::pack::MAX_PACK {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "pack of {size} bytes, larger than the {} a pack may be",
                        crate::pack::MAX_PACK
                    ),
                ));
            }
            self.checked.lock().unwrap().insert(row);
        }
        self.storage.read_range(&key, offset, len)
    }

    /// Does `id` exist in a pack file that is present (or in what this
    /// handle is writing)? One `stat` per candidate pack. With `fresh`, a
    /// miss reads the index objects written since (a gc may have moved
    /// the object); without, a miss is final (dedup of new objects).
    pub fn contains(&self, id: &ObjectId, fresh: bool) -> Result<bool> {
        if self.writing.lock().unwrap().appended.contains(id) {
            return Ok(true);
        }
        for attempt in 0..2 {
            for loc in self.locations(id)? {
                // Present and long enough to hold it (not cut short).
                let end = loc.offset as u64 + loc.length as u64;
                if self
                    .present
                    .lock()
                    .unwrap()
                    .get(&loc.pack)
                    .is_some_and(|&size| size >= end)
                {
                    return Ok(true);
                }
                let key = object_key(&self.pack_of(loc.pack));
                if let Ok(Some(m)) = self.storage.stat(&key)
                    && m.size >= end
                {
                    self.present.lock().unwrap().insert(loc.pack, m.size);
                    return Ok(true);
                }
            }
            if attempt == 0 && fresh {
                self.refresh()?;
            } else {
                break;
            }
        }
        Ok(false)
    }

    /// Is anything appended and not yet written with its index?
    pub fn has_pending(&self) -> bool {
        let w = self.writing.lock().unwrap();
        w.builder.as_ref().is_some_and(|b| !b.is_empty()) || !w.unindexed.is_empty()
    }

    /// Decode `id` with `decode` from the first pack copy for which it
    /// succeeds. `Ok(None)`: no pack lists it. When every copy fails, the
    /// first copy's error.
    pub fn read_with<T>(
        &self,
        id: &ObjectId,
        decode: &mut dyn FnMut(&[u8], &Path) -> Result<T>,
    ) -> Result<Option<T>> {
        let building = {
            let w = self.writing.lock().unwrap();
            match (&w.builder, w.building.get(id)) {
                (Some(b), Some(&(off, len))) => Some(b.bytes()[off..off + len].to_vec()),
                _ => None,
            }
        };
        if let Some(bytes) = building {
            return decode(&bytes, Path::new("(pack being written)")).map(Some);
        }
        let mut first_err: Option<Error> = None;
        for attempt in 0..2 {
            let locs = self.locations(id)?;
            for loc in &locs {
                let path = self.pack_path(&self.pack_of(loc.pack));
                match self.read_at(loc, &path).and_then(|b| decode(&b, &path)) {
                    Ok(v) => return Ok(Some(v)),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            if attempt == 0 {
                self.refresh()?;
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    fn read_at(&self, loc: &Loc, path: &Path) -> Result<Vec<u8>> {
        match self.pack_range(loc.pack, loc.offset as u64, loc.length as u64) {
            Ok(buf) => Ok(buf),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::MissingObject {
                id: loc.id.to_hex(),
                path: path.to_path_buf(),
            }),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(Error::CorruptObject {
                id: loc.id.to_hex(),
                path: path.to_path_buf(),
                reason: format!(
                    "truncated: the pack ends before {} bytes at offset {}",
                    loc.length, loc.offset
                ),
            }),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// The envelope header of `id`'s first listed copy, checked against
    /// the length the index gives it (no payload read). `Ok(None)`: no
    /// pack lists it.
    pub fn probe(&self, id: &ObjectId) -> Result<Option<(object::Header, PathBuf)>> {
        let mut first_err = None;
        for loc in self.locations(id)? {
            match self.probe_at(id, &loc) {
                Ok(found) => return Ok(Some(found)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    fn probe_at(&self, id: &ObjectId, loc: &Loc) -> Result<(object::Header, PathBuf)> {
        let path = self.pack_path(&self.pack_of(loc.pack));
        let short = Loc {
            length: (object::HEADER_LEN as u32).min(loc.length),
            ..*loc
        };
        let h = self.read_at(&short, &path)?;
        let corrupt = |reason: String| Error::CorruptObject {
            id: id.to_hex(),
            path: path.clone(),
            reason,
        };
        let header = object::Header::decode(&h).map_err(corrupt)?;
        if object::HEADER_LEN as u64 + header.stored_len != loc.length as u64 {
            return Err(corrupt(format!(
                "envelope at offset {} says {} payload bytes, the index {}",
                loc.offset,
                header.stored_len,
                loc.length as u64 - object::HEADER_LEN as u64
            )));
        }
        Ok((header, path))
    }

    /// Where `id`'s first listed copy lies, as (pack row, offset): an
    /// order for reading many objects pack by pack, front to back.
    pub fn read_order(&self, id: &ObjectId) -> Option<(u32, u32)> {
        let locs = self.locations(id).ok()?;
        locs.first().map(|l| (l.pack, l.offset))
    }

    /// The pack file `id` lies in (the first listed), for messages.
    pub fn path_of(&self, id: &ObjectId) -> Option<PathBuf> {
        let locs = self.locations(id).ok()?;
        locs.first().map(|l| self.pack_path(&self.pack_of(l.pack)))
    }

    /// Envelope length of `id` (its first listed copy).
    pub fn stored_len(&self, id: &ObjectId) -> Option<u64> {
        let locs = self.locations(id).ok()?;
        locs.first().map(|l| l.length as u64)
    }

    /// Append an envelope unless this handle already did (or `force`);
    /// returns whether it was appended. A full pack is written out here.
    pub fn append(
        &self,
        id: ObjectId,
        kind: ObjectKind,
        envelope: &[u8],
        force: bool,
    ) -> Result<bool> {
        let full = {
            let mut w = self.writing.lock().unwrap();
            if !w.appended.insert(id) && !force {
                return Ok(false);
            }
            let b = w.builder.get_or_insert_with(PackBuilder::new);
            let off = b.len();
            b.push(id, kind, envelope);
            let full = b.len() >= PACK_TARGET;
            w.building.insert(id, (off, envelope.len()));
            if full {
                w.building.clear();
                w.builder.take()
            } else {
                None
            }
        };
        if let Some(b) = full {
            self.write_out(b)?;
        }
        Ok(true)
    }

    fn write_out(&self, builder: PackBuilder) -> Result<()> {
        let (ip, path) = write_pack(&*self.storage, builder)?;
        self.table.write().unwrap().add_pack(&ip, true);
        let mut w = self.writing.lock().unwrap();
        w.unindexed.push(ip);
        w.unsynced.push(path);
        Ok(())
    }

    /// Write the open pack and one index object for every pack written
    /// since the last flush. Returns the files to make durable (none when
    /// nothing was written).
    pub fn flush(&self, level: i32) -> Result<Vec<String>> {
        let open = {
            let mut w = self.writing.lock().unwrap();
            w.building.clear();
            w.builder.take()
        };
        if let Some(b) = open.filter(|b| !b.is_empty()) {
            self.write_out(b)?;
        }
        let (packs, mut files) = {
            let mut w = self.writing.lock().unwrap();
            // Written and listed: from now on the table (and a stat of the
            // pack) says whether they exist, as for any other handle's.
            w.appended.clear();
            (
                std::mem::take(&mut w.unindexed),
                std::mem::take(&mut w.unsynced),
            )
        };
        if !packs.is_empty() {
            let (id, path) = write_index(&*self.storage, Vec::new(), packs, level)?;
            self.table.write().unwrap().files.insert(id);
            files.push(path);
        }
        Ok(files)
    }

    /// Forget what was loaded (after gc rewrote the index).
    pub fn reset(&self) {
        *self.table.write().unwrap() = Table::default();
        self.checked.lock().unwrap().clear();
    }
}

#[cfg(test)]
mod tests {
    use crate::object::ObjectKind;
    use crate::repo::Repo;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whatever is written through a v2 handle reads back byte-exactly
        /// through a fresh handle (which knows it only from the index
        /// objects), and every pack and index file is named by its hash.
        #[test]
        fn objects_written_to_packs_read_back_through_a_new_handle(
            blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 1..40),
            splits in 1usize..4,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("r");
            let repo = Repo::init(&root).unwrap();
            let mut ids = Vec::new();
            for (i, b) in blobs.iter().enumerate() {
                let (id, _) = repo.write_object(ObjectKind::Chunk, b).unwrap();
                ids.push(id);
                // Several flushes: several packs and index objects.
                if i % splits == 0 {
                    repo.flush().unwrap();
                }
            }
            // Readable before and after the last flush.
            prop_assert_eq!(repo.read_object(&ids[0], ObjectKind::Chunk).unwrap(), blobs[0].clone());
            repo.flush().unwrap();
            drop(repo);
            let again = Repo::open(&root).unwrap();
            for (id, b) in ids.iter().zip(&blobs) {
                prop_assert!(again.has_object(id));
                prop_assert_eq!(&again.read_object(id, ObjectKind::Chunk).unwrap(), b);
            }
            let storage = crate::storage::LocalFs::new(&root);
            for (_, ix) in super::read_indexes(&storage, &Default::default()).unwrap() {
                for p in ix.packs {
                    let bytes = std::fs::read(super::object_file_path(&root, &p.pack)).unwrap();
                    prop_assert_eq!(crate::id::ObjectId::compute(ObjectKind::Pack, &bytes), p.pack);
                }
            }
        }
    }
}
