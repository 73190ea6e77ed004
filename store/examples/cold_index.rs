//! Cold lookup at scale: a format-2 repository whose index objects list N
//! objects (default 1,000,000, in index objects of 10,000 each, as 100
//! backups would write), opened by a process that has never seen it. Prints
//! the time to load the index and find every object, and the memory the
//! lookup table takes (peak RSS growth, per object).
//!
//!     cargo run --release -p belay-store --example cold_index [N]
//!
//! The packs are not written (a lookup reads only the index objects).

use std::time::Instant;

use belay_store::ObjectId;
use belay_store::object::ObjectKind;
use belay_store::pack::{
    FOOTER_ENTRY_LEN, IndexedEntry, IndexedPack, PACK_HEADER_LEN, TRAILER_LEN,
};

fn rss_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let per_index = 10_000u64;
    let per_pack = 1_000u64;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    belay_store::Repo::init(&root).unwrap();
    let id_of = |i: u64| ObjectId::compute(ObjectKind::Chunk, &i.to_le_bytes());
    let t = Instant::now();
    let mut i = 0u64;
    let mut indexes = 0;
    while i < n {
        let mut packs = Vec::new();
        let end = (i + per_index).min(n);
        while i < end {
            let count = per_pack.min(end - i);
            let mut entries = Vec::with_capacity(count as usize);
            let mut offset = PACK_HEADER_LEN as u64;
            for k in 0..count {
                let length = 16_408u32;
                entries.push(IndexedEntry {
                    id: id_of(i + k),
                    kind: 1,
                    offset,
                    length,
                });
                offset += length as u64;
            }
            let size = offset + count * FOOTER_ENTRY_LEN as u64 + TRAILER_LEN as u64;
            packs.push(IndexedPack {
                pack: ObjectId::compute(ObjectKind::Pack, &i.to_le_bytes()),
                size,
                entries,
            });
            i += count;
        }
        belay_store::packed::write_index(
            &belay_store::storage::LocalFs::new(&root),
            Vec::new(),
            packs,
            3,
        )
        .unwrap();
        indexes += 1;
    }
    let index_bytes: u64 = std::fs::read_dir(root.join("index"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "wrote {n} objects in {indexes} index objects ({:.1} MiB) in {:.2} s",
        index_bytes as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );

    let before = rss_kib("VmRSS:");
    let t = Instant::now();
    let repo = belay_store::Repo::open(&root).unwrap();
    let packed = repo.packed().expect("format 2");
    // The first lookup loads the index objects.
    assert!(packed.stored_len(&id_of(0)).is_some());
    let load = t.elapsed();
    let loaded = rss_kib("VmRSS:");
    let peak = rss_kib("VmHWM:");
    let t = Instant::now();
    let mut found = 0u64;
    for k in 0..n {
        found += packed.stored_len(&id_of(k)).is_some() as u64;
    }
    assert_eq!(found, n);
    let lookups = t.elapsed();
    println!(
        "cold load of the index: {:.2} s; lookup table {:.1} bytes/object resident ({:.1} MiB), peak during the load {:.1} MiB",
        load.as_secs_f64(),
        (loaded.saturating_sub(before)) as f64 * 1024.0 / n as f64,
        (loaded.saturating_sub(before)) as f64 / 1024.0,
        (peak.saturating_sub(before)) as f64 / 1024.0
    );
    println!(
        "{n} lookups: {:.2} s ({:.0} ns each, ids hashed included)",
        lookups.as_secs_f64(),
        lookups.as_nanos() as f64 / n as f64
    );
}
