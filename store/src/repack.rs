//! gc's work on packs (format v2, docs/format.md §13.5): which packs hold
//! live objects, repacking the sparse and the small ones, packing loose
//! chunks and trees (from format v1), and consolidating the index objects
//! into one. [`crate::gc`] then sweeps files by the [`PackPlan::keep`] set
//! through the same two-phase condemnation as loose objects.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::{Error, IoContext, Result};
use crate::gc::Progress;
use crate::id::ObjectId;
use crate::object::{self, HEADER_LEN, ObjectKind};
use crate::pack::{IndexedPack, PACK_TARGET, PackBuilder};
use crate::packed::{read_indexes, write_index, write_pack};
use crate::repo::Repo;
use crate::storage::{Storage, object_key};

/// A pack whose live objects take less than this share of it is repacked.
pub const REPACK_BELOW_LIVE_PERCENT: u64 = 80;
/// Packs smaller than this are merged when there are two or more.
pub const SMALL_PACK: u64 = 4 << 20;

/// What gc keeps and what it did to packs.
#[derive(Default)]
pub struct PackPlan {
    /// Files (packs, loose objects, index objects) to keep, by truncated id.
    pub keep: HashSet<u128>,
    /// Index objects read (only these may be condemned by this run).
    pub indexes: HashSet<ObjectId>,
    pub figures: PackFigures,
    /// The consolidated index written by this run.
    pub index_written: Option<ObjectId>,
    pub warnings: Vec<String>,
}

/// What one gc run found and did to packs (part of gc's report).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PackFigures {
    /// Pack files listed and present, and those still live.
    pub packs: u64,
    pub packs_live: u64,
    /// Packs rewritten because they were sparse or small (or that would
    /// be, dry run), the packs that replaced them, and what moved.
    pub packs_repacked: u64,
    pub packs_written: u64,
    pub objects_repacked: u64,
    pub bytes_repacked: u64,
    /// Loose chunks and trees moved into packs (after a migration).
    pub loose_packed: u64,
    /// Index objects replaced by this run's consolidated one.
    pub indexes_superseded: u64,
}

fn trunc(id: &ObjectId) -> u128 {
    u128::from_le_bytes(id.0[..16].try_into().unwrap())
}

struct PackState {
    info: IndexedPack,
    raw_live: u64,
    /// Entries (positions in `info.entries`) whose live id this pack holds
    /// the canonical copy of.
    canonical: Vec<usize>,
    canonical_bytes: u64,
}

/// Plan (and unless `dry_run`, do) the pack work of one gc run. `objects`
/// is the run's one listing of `objects/` ([`crate::gc::list_objects`]),
/// `live` holds the truncated ids of every reachable object, `roots` the
/// snapshot ids (loose in every format).
pub fn plan(
    repo: &Repo,
    objects: &[(String, crate::storage::FileInfo)],
    live: &HashSet<u128>,
    roots: &[ObjectId],
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<PackPlan> {
    match plan_with(repo, objects, live, roots, dry_run, progress) {
        // A full disk is exactly where gc must work: without room for new
        // packs or an index, it keeps every live pack and index as they
        // are (what a dry run plans) and deletes garbage only; the packs it
        // wrote before the disk filled are garbage for this very run.
        Err(Error::Io { source, .. })
            if !dry_run
                && matches!(
                    source.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                ) =>
        {
            let mut plan = plan_with(repo, objects, live, roots, true, progress)?;
            plan.figures = PackFigures {
                packs: plan.figures.packs,
                packs_live: plan.figures.packs_live,
                ..PackFigures::default()
            };
            let w = format!(
                "no space left to repack or to write the index ({source}): only garbage is deleted; run gc again to repack"
            );
            progress.warn(&w);
            plan.warnings.push(w);
            Ok(plan)
        }
        r => r,
    }
}

fn plan_with(
    repo: &Repo,
    objects: &[(String, crate::storage::FileInfo)],
    live: &HashSet<u128>,
    roots: &[ObjectId],
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<PackPlan> {
    let storage: &dyn Storage = &**repo.storage();
    let root = storage;
    let mut plan = PackPlan::default();
    let indexes = read_indexes(storage, &HashSet::new())?;
    plan.indexes = indexes.iter().map(|(id, _)| *id).collect();
    // The current view: index objects no other one supersedes, and the
    // packs they list. Superseded ones are garbage (their packs that are
    // still in use are listed by the current ones, or are added below).
    let superseded: HashSet<ObjectId> = indexes
        .iter()
        .flat_map(|(_, ix)| ix.supersedes.iter().copied())
        .collect();
    let current: Vec<ObjectId> = indexes
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !superseded.contains(id))
        .collect();
    let mut current_packs: HashSet<ObjectId> = HashSet::new();
    let mut by_id: BTreeMap<ObjectId, IndexedPack> = BTreeMap::new();
    for (id, ix) in indexes {
        let is_current = !superseded.contains(&id);
        for p in ix.packs {
            if is_current {
                current_packs.insert(p.pack);
            }
            by_id.entry(p.pack).or_insert(p);
        }
    }
    // Packs whose file is present (in gc's one listing of `objects/`: no
    // request per pack); a missing one is for `check` to report.
    let listed: HashSet<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    let mut packs: Vec<PackState> = Vec::new();
    let mut missing: Vec<IndexedPack> = Vec::new();
    for (id, info) in by_id {
        if listed.contains(object_key(&id).as_str()) {
            packs.push(PackState {
                info,
                raw_live: 0,
                canonical: Vec::new(),
                canonical_bytes: 0,
            });
        } else {
            missing.push(info);
        }
    }
    plan.figures.packs = packs.len() as u64;
    let known_packs: HashSet<ObjectId> = packs.iter().map(|p| p.info.pack).collect();
    for p in packs.iter_mut() {
        p.raw_live = p
            .info
            .entries
            .iter()
            .filter(|e| live.contains(&trunc(&e.id)))
            .count() as u64;
    }
    // One canonical copy per live object: a good one, in a pack of the
    // current view if one holds it, then in the pack holding the most
    // live objects (ties: the lower pack id, as packs are sorted).
    let rank = |p: &PackState| (current_packs.contains(&p.info.pack), p.raw_live);
    let mut copies: HashMap<u128, Vec<(usize, usize)>> = HashMap::new();
    for (pi, p) in packs.iter().enumerate() {
        for (ei, e) in p.info.entries.iter().enumerate() {
            let t = trunc(&e.id);
            if live.contains(&t) {
                copies.entry(t).or_default().push((pi, ei));
            }
        }
    }
    let mut best: HashMap<u128, (usize, usize)> = HashMap::with_capacity(copies.len());
    for (t, mut c) in copies {
        if c.len() > 1 {
            // Several copies (a repair wrote a fresh one, or two backups
            // stored it at once): only a copy that verifies may be the one
            // kept, or gc would drop the good copy of a damaged object.
            let good: Vec<(usize, usize)> = c
                .iter()
                .copied()
                .filter(|&(pi, ei)| {
                    read_envelope(root, &packs[pi].info.pack, &packs[pi].info.entries[ei]).is_ok()
                })
                .collect();
            if !good.is_empty() {
                c = good;
            }
        }
        let pick = c
            .into_iter()
            .max_by(|a, b| {
                rank(&packs[a.0])
                    .cmp(&rank(&packs[b.0]))
                    .then(b.0.cmp(&a.0))
            })
            .expect("at least one copy");
        best.insert(t, pick);
    }
    for &(pi, ei) in best.values() {
        let len = packs[pi].info.entries[ei].length as u64;
        packs[pi].canonical.push(ei);
        packs[pi].canonical_bytes += len;
    }
    // Loose objects: snapshots stay loose; a live chunk or tree goes into
    // a pack unless one holds it already.
    let root_set: HashSet<u128> = roots.iter().map(trunc).collect();
    let mut loose_live: Vec<(ObjectId, u64)> = Vec::new();
    let mut loose_keep: Vec<ObjectId> = Vec::new();
    crate::gc::visit_listed(
        objects,
        &mut |id, _, size| {
            if known_packs.contains(&id) {
                return Ok(());
            }
            let t = trunc(&id);
            if root_set.contains(&t) {
                loose_keep.push(id);
            } else if live.contains(&t) && !best.contains_key(&t) {
                loose_live.push((id, size));
            }
            Ok(())
        },
        &mut |_, _| Ok(()),
    )?;

    let small: Vec<usize> = (0..packs.len())
        .filter(|&i| packs[i].canonical_bytes > 0 && packs[i].info.size < SMALL_PACK)
        .collect();
    let merge_small = small.len() >= 2;
    let repack: Vec<usize> = (0..packs.len())
        .filter(|&i| {
            let p = &packs[i];
            p.canonical_bytes > 0
                && (p.canonical_bytes * 100 < p.info.size * REPACK_BELOW_LIVE_PERCENT
                    || (merge_small && p.info.size < SMALL_PACK))
        })
        .collect();
    plan.figures.packs_repacked = repack.len() as u64;

    let mut written: Vec<IndexedPack> = Vec::new();
    let mut new_files: Vec<String> = Vec::new();
    let mut repacked: HashSet<usize> = HashSet::new();
    let mut loose_packed: HashSet<ObjectId> = HashSet::new();
    if !dry_run && (!repack.is_empty() || !loose_live.is_empty()) {
        progress.phase("repacking");
        let mut builder = PackBuilder::new();
        let mut flush = |builder: &mut PackBuilder, force: bool| -> Result<()> {
            if builder.is_empty() || (!force && builder.len() < PACK_TARGET) {
                return Ok(());
            }
            let (ip, path) = write_pack(root, std::mem::take(builder))?;
            written.push(ip);
            new_files.push(path);
            Ok(())
        };
        for &pi in &repack {
            let p = &packs[pi];
            // Every live envelope is verified before any is copied: a
            // damaged pack is left for `check` and `repair`.
            match read_verified(root, &packs, pi) {
                Ok(envelopes) => {
                    for (e, bytes) in envelopes {
                        plan.figures.objects_repacked += 1;
                        plan.figures.bytes_repacked += bytes.len() as u64;
                        builder.push(e.0, e.1, &bytes);
                        flush(&mut builder, false)?;
                    }
                    repacked.insert(pi);
                }
                Err(e) => {
                    let w = format!("pack {} not repacked: {e}", p.info.pack.short());
                    progress.warn(&w);
                    plan.warnings.push(w);
                }
            }
        }
        for (id, _) in &loose_live {
            let max = (HEADER_LEN + crate::codec::MAX_PAYLOAD) as u64;
            let Ok(bytes) = storage.read(&object_key(id), max) else {
                continue;
            };
            let Ok((header, raw)) = object::decode_object(&bytes) else {
                continue; // damaged: `check` names it
            };
            if !matches!(header.kind, ObjectKind::Chunk | ObjectKind::Tree)
                || ObjectId::compute(header.kind, &raw) != *id
            {
                continue;
            }
            builder.push(*id, header.kind, &bytes);
            loose_packed.insert(*id);
            flush(&mut builder, false)?;
        }
        flush(&mut builder, true)?;
        plan.figures.packs_written = written.len() as u64;
        plan.figures.loose_packed = loose_packed.len() as u64;
    } else if dry_run {
        plan.figures.loose_packed = loose_live.len() as u64;
    }

    // What survives: live packs not repacked, and the new packs.
    let mut surviving: Vec<IndexedPack> = packs
        .iter()
        .enumerate()
        .filter(|(i, p)| p.canonical_bytes > 0 && !repacked.contains(i))
        .map(|(_, p)| p.info.clone())
        .collect();
    surviving.extend(written.iter().cloned());
    plan.figures.packs_live = surviving.len() as u64;
    for p in &surviving {
        plan.keep.insert(trunc(&p.pack));
    }
    for id in &loose_keep {
        plan.keep.insert(trunc(id));
    }
    for (id, _) in &loose_live {
        if !loose_packed.contains(id) {
            plan.keep.insert(trunc(id));
        }
    }
    // A listed pack whose file is missing stays listed while it may hold
    // the only copy of a live object: `check` reports it, and a share
    // that hid it for a moment must not make those objects unfindable.
    missing.retain(|p| {
        p.entries.iter().any(|e| {
            let t = trunc(&e.id);
            live.contains(&t) && !best.contains_key(&t) && !loose_packed.contains(&e.id)
        })
    });
    surviving.extend(missing);
    // A new index when what survives is not exactly what the current view
    // lists, or when that view is spread over several index objects.
    let surviving_set: HashSet<ObjectId> = surviving.iter().map(|p| p.pack).collect();
    let consolidate = surviving_set != current_packs || current.len() > 1;
    if consolidate && !dry_run {
        let mut supersedes: Vec<ObjectId> = plan.indexes.iter().copied().collect();
        supersedes.sort();
        let (id, path) = write_index(root, supersedes, surviving, repo.config().compression.level)?;
        new_files.push(path);
        // Durable before anything it replaces may be condemned or deleted.
        storage.sync(&new_files).at(repo.root())?;
        plan.figures.indexes_superseded = plan.indexes.len() as u64;
        plan.keep.insert(trunc(&id));
        plan.index_written = Some(id);
        if let Some(p) = repo.packed() {
            p.reset();
        }
    } else {
        for id in &current {
            plan.keep.insert(trunc(id));
        }
    }
    Ok(plan)
}

/// The canonical envelopes of pack `pi`, each decoded and checked against
/// its id and kind. An envelope that fails is taken from another pack that
/// holds a good copy (a backup wrote one after `check` found the damage);
/// with none, the pack cannot be repacked.
#[allow(clippy::type_complexity)]
fn read_verified(
    root: &dyn Storage,
    packs: &[PackState],
    pi: usize,
) -> std::result::Result<Vec<((ObjectId, ObjectKind), Vec<u8>)>, String> {
    let p = &packs[pi];
    let mut idx = p.canonical.clone();
    idx.sort_unstable();
    let mut out = Vec::with_capacity(idx.len());
    for ei in idx {
        let e = &p.info.entries[ei];
        let good = read_envelope(root, &p.info.pack, e).or_else(|first| {
            packs
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != pi)
                .flat_map(|(_, q)| q.info.entries.iter().map(move |x| (q, x)))
                .filter(|(_, x)| x.id == e.id)
                .find_map(|(q, x)| read_envelope(root, &q.info.pack, x).ok())
                .ok_or(first)
        })?;
        out.push(good);
    }
    Ok(out)
}

#[allow(clippy::type_complexity)]
fn read_envelope(
    storage: &dyn Storage,
    pack: &ObjectId,
    e: &crate::pack::IndexedEntry,
) -> std::result::Result<((ObjectId, ObjectKind), Vec<u8>), String> {
    let buf = storage
        .read_range(&object_key(pack), e.offset, e.length as u64)
        .map_err(|err| format!("reading {} at {}: {err}", e.id.short(), e.offset))?;
    let (header, raw) = object::decode_object(&buf).map_err(|r| format!("{}: {r}", e.id))?;
    if ObjectId::compute(header.kind, &raw) != e.id || header.kind as u8 != e.kind {
        return Err(format!("object {} does not match its id", e.id));
    }
    Ok(((e.id, header.kind), buf))
}

/// Read pack `id` whole and list its entries from its own footer (for
/// `check`).
pub fn read_pack_file(
    storage: &dyn Storage,
    id: &ObjectId,
) -> Result<(Vec<u8>, Vec<crate::pack::PackEntry>)> {
    let key = object_key(id);
    let path = storage.locate(&key);
    let bytes = storage
        .read(&key, crate::pack::MAX_PACK)
        .map_err(|e| Error::io(&path, e))?;
    let entries = crate::pack::parse_pack(&bytes).map_err(|reason| Error::CorruptObject {
        id: id.to_hex(),
        path,
        reason,
    })?;
    Ok((bytes, entries))
}
