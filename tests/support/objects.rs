//! Where each object of a repository is, in either format: a loose file
//! (format 1, snapshots in format 2) or an envelope inside a pack (format
//! 2), so tests can count and damage objects without caring which.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use belay_store::ObjectId;

/// One object's bytes in the repository.
#[derive(Clone, Debug)]
pub struct Place {
    pub id: ObjectId,
    /// 1 chunk, 2 tree, 3 snapshot.
    pub kind: u8,
    /// The loose file or the pack holding it.
    pub file: PathBuf,
    pub offset: u64,
    pub len: u64,
    pub packed: bool,
}

impl Place {
    pub fn hex(&self) -> String {
        self.id.to_hex()
    }

    /// Flip a bit of the envelope's last byte (its payload).
    pub fn flip_last_byte(&self) {
        let mut b = fs::read(&self.file).unwrap();
        b[(self.offset + self.len - 1) as usize] ^= 0x40;
        fs::write(&self.file, &b).unwrap();
    }

    /// Cut the file in the middle of this object's envelope.
    pub fn truncate_half(&self) {
        let b = fs::read(&self.file).unwrap();
        fs::write(&self.file, &b[..(self.offset + self.len / 2) as usize]).unwrap();
    }
}

fn loose_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo.join("objects")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every object, loose or packed (one place per copy), sorted by file and
/// offset.
pub fn places(repo: &Path) -> Vec<Place> {
    let mut out = Vec::new();
    let mut packs = HashSet::new();
    let storage = belay_store::storage::LocalFs::new(repo);
    let indexes = belay_store::packed::read_indexes(&storage, &HashSet::new()).unwrap_or_default();
    let mut seen: BTreeMap<ObjectId, ()> = BTreeMap::new();
    for (_, ix) in indexes {
        for p in ix.packs {
            if !packs.insert(p.pack) {
                continue;
            }
            let file = belay_store::packed::object_file_path(repo, &p.pack);
            for e in p.entries {
                seen.insert(e.id, ());
                out.push(Place {
                    id: e.id,
                    kind: e.kind,
                    file: file.clone(),
                    offset: e.offset,
                    len: e.length as u64,
                    packed: true,
                });
            }
        }
    }
    for f in loose_files(repo) {
        let Some(id) = ObjectId::from_hex(&f.file_name().unwrap().to_string_lossy()) else {
            continue;
        };
        if packs.contains(&id) {
            continue;
        }
        let b = fs::read(&f).unwrap();
        if b.len() < 24 || &b[..4] != b"BELY" {
            continue; // a pack no index lists, or damage
        }
        out.push(Place {
            id,
            kind: b[5],
            file: f,
            offset: 0,
            len: b.len() as u64,
            packed: false,
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file).then(a.offset.cmp(&b.offset)));
    out
}

/// The place of object `id` (its first copy).
pub fn place_of(repo: &Path, id: &ObjectId) -> Place {
    places(repo)
        .into_iter()
        .find(|p| p.id == *id)
        .unwrap_or_else(|| panic!("object {id} is not in {}", repo.display()))
}

/// The first object of `kind` (1 chunk, 2 tree, 3 snapshot).
pub fn first_of_kind(repo: &Path, kind: u8) -> Place {
    places(repo)
        .into_iter()
        .find(|p| p.kind == kind)
        .unwrap_or_else(|| panic!("no object of kind {kind} in {}", repo.display()))
}

/// Distinct objects by kind byte (index 1 chunks, 2 trees, 3 snapshots).
pub fn count_by_kind(repo: &Path) -> [usize; 4] {
    let mut ids: [HashSet<ObjectId>; 4] = Default::default();
    for p in places(repo) {
        if (p.kind as usize) < 4 {
            ids[p.kind as usize].insert(p.id);
        }
    }
    [ids[0].len(), ids[1].len(), ids[2].len(), ids[3].len()]
}

/// Files under `objects/` and `index/` (what the repository costs in files).
pub fn repository_files(repo: &Path) -> usize {
    loose_files(repo).len()
        + fs::read_dir(repo.join("index"))
            .map(|d| d.count())
            .unwrap_or(0)
}

/// Lose every chunk: their loose files, or (format 2) every pack holding
/// one, trees and all, as a damaged or half-copied share would.
pub fn remove_chunks(repo: &Path) {
    let mut files: Vec<PathBuf> = places(repo)
        .into_iter()
        .filter(|p| p.kind == 1)
        .map(|p| p.file)
        .collect();
    files.sort();
    files.dedup();
    for f in files {
        fs::remove_file(f).unwrap();
    }
}

/// Flip a payload byte of every chunk (each copy).
pub fn damage_chunks(repo: &Path) {
    for p in places(repo).into_iter().filter(|p| p.kind == 1) {
        p.flip_last_byte();
    }
}
