//! The backup/restore hot path next to the physical limits measured in the
//! same run: `cargo bench --bench hot_path` (criterion; about a minute).
//!
//! Limits: read from the page cache, blake3 alone, SHA-256 alone, zstd
//! level 3 alone (compress and decompress). Hot path: chunk + blake3 ids +
//! SHA-256 + zstd envelope per MB (what `backup` does per byte read, minus
//! the object files), tree encode/decode, and writing one new object file
//! (temp file, no-clobber rename, leaf directory created as needed).
//!
//! Inputs are deterministic: "text" is Python-like source made from a small
//! vocabulary (zstd-3 ratio about 3), "random" is xorshift noise
//! (incompressible), each 8 MiB.

use std::hint::black_box;
use std::io::{Read, Write};

use belay_store::chunker::ChunkerParams;
use belay_store::object::{self, ObjectKind};
use belay_store::tree::{Node, Tree, TreeEntry};
use belay_store::{ObjectId, Repo};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sha2::Digest;

const MB: usize = 8 << 20;

fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn random(n: usize, seed: u64) -> Vec<u8> {
    let mut r = xorshift(seed);
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        v.extend_from_slice(&r().to_le_bytes());
    }
    v.truncate(n);
    v
}

fn text(n: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "self", "value", "data", "time", "sensor", "read", "write", "buf", "machine", "pin", "led",
        "state", "config", "count", "index", "result", "error", "retry", "timeout", "wifi", "json",
        "temp", "level", "alarm", "queue", "task", "sleep", "display", "draw", "text", "font",
        "width", "height", "color", "event", "handler", "callback", "start",
    ];
    let mut r = xorshift(seed);
    let mut v = Vec::with_capacity(n + 100);
    while v.len() < n {
        let depth = (r() % 4) as usize;
        v.extend(std::iter::repeat_n(b' ', depth * 4));
        match r() % 5 {
            0 => v.extend_from_slice(b"def "),
            1 => v.extend_from_slice(b"if "),
            2 => v.extend_from_slice(b"return "),
            _ => {}
        }
        for k in 0..(2 + r() % 5) {
            if k > 0 {
                v.extend_from_slice(if r().is_multiple_of(3) { b"." } else { b"_" });
            }
            v.extend_from_slice(WORDS[(r() % WORDS.len() as u64) as usize].as_bytes());
        }
        v.extend_from_slice(format!("({})\n", r() % 10_000).as_bytes());
    }
    v.truncate(n);
    v
}

/// What backup does per byte of a file read: cut, id every chunk, SHA-256
/// of the file, envelope (zstd-3) of every chunk. Returns bytes stored.
fn hot_path(data: &[u8], params: &ChunkerParams) -> usize {
    let mut stored = 0;
    let sha: [u8; 32] = sha2::Sha256::digest(data).into();
    black_box(sha);
    for (off, len) in params.cut(data) {
        let c = &data[off..off + len];
        let id = ObjectId::compute(ObjectKind::Chunk, c);
        black_box(id);
        stored += object::encode_object(ObjectKind::Chunk, c, 3).len();
    }
    stored
}

fn limits(c: &mut Criterion) {
    let inputs = [("text", text(MB, 1)), ("random", random(MB, 2))];
    let mut g = c.benchmark_group("limits");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(MB as u64));
    // Page cache: a 8 MiB file read back with a 1 MiB buffer.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&inputs[1].1)
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    g.bench_function("read page cache", |b| {
        b.iter(|| {
            let mut f = std::fs::File::open(&path).unwrap();
            let mut n = 0;
            loop {
                let k = f.read(&mut buf).unwrap();
                if k == 0 {
                    break;
                }
                n += k;
            }
            black_box(n)
        })
    });
    for (name, data) in &inputs {
        g.bench_function(format!("blake3 {name}"), |b| {
            b.iter(|| black_box(blake3::hash(data)))
        });
        g.bench_function(format!("sha256 {name}"), |b| {
            b.iter(|| black_box(sha2::Sha256::digest(data)))
        });
        let mut z = zstd::bulk::Compressor::new(3).unwrap();
        g.bench_function(format!("zstd-3 16KiB blocks {name}"), |b| {
            b.iter(|| {
                let mut n = 0;
                for block in data.chunks(16 << 10) {
                    n += z.compress(block).unwrap().len();
                }
                black_box(n)
            })
        });
        let blocks: Vec<Vec<u8>> = data
            .chunks(16 << 10)
            .map(|b| zstd::bulk::compress(b, 3).unwrap())
            .collect();
        let mut d = zstd::bulk::Decompressor::new().unwrap();
        g.bench_function(format!("zstd decompress 16KiB blocks {name}"), |b| {
            b.iter(|| {
                let mut n = 0;
                for block in &blocks {
                    n += d.decompress(block, 16 << 10).unwrap().len();
                }
                black_box(n)
            })
        });
    }
    g.finish();
}

fn hot(c: &mut Criterion) {
    let params = ChunkerParams::default();
    let inputs = [("text", text(MB, 1)), ("random", random(MB, 2))];
    let mut g = c.benchmark_group("hot path");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(MB as u64));
    for (name, data) in &inputs {
        g.bench_function(format!("chunk only {name}"), |b| {
            b.iter(|| black_box(params.cut(data).len()))
        });
        g.bench_function(format!("chunk+hash+compress {name}"), |b| {
            b.iter(|| black_box(hot_path(data, &params)))
        });
        // The same bytes as 2 KiB files (each one chunk): small-file overhead.
        g.bench_function(format!("chunk+hash+compress 2KiB files {name}"), |b| {
            b.iter(|| {
                let mut n = 0;
                for f in data.chunks(2048) {
                    n += hot_path(f, &params);
                }
                black_box(n)
            })
        });
        let objs: Vec<Vec<u8>> = data
            .chunks(16 << 10)
            .map(|b| object::encode_object(ObjectKind::Chunk, b, 3))
            .collect();
        g.bench_function(format!("decode+verify objects {name}"), |b| {
            b.iter(|| {
                let mut n = 0;
                for o in &objs {
                    let (h, raw) = object::decode_object(o).unwrap();
                    black_box(ObjectId::compute(h.kind, &raw));
                    n += raw.len();
                }
                black_box(n)
            })
        });
    }
    g.finish();
}

fn trees(c: &mut Criterion) {
    let mut entries: Vec<TreeEntry> = (0..200u32)
        .map(|i| TreeEntry {
            name: format!("module_{i:04}.py").into_bytes(),
            mode: 0o644,
            mtime_ns: Some(1_700_000_000_000_000_000 + i as i64),
            node: Node::File {
                size: 1000 + i as u64,
                sha256: [i as u8; 32],
                chunks: vec![ObjectId([i as u8; 32]); 1 + (i % 3) as usize],
            },
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let tree = Tree { entries };
    let raw = tree.encode();
    let mut g = c.benchmark_group("trees (200 entries)");
    g.throughput(Throughput::Elements(200));
    g.bench_function("encode", |b| b.iter(|| black_box(tree.encode())));
    g.bench_function("decode", |b| {
        b.iter(|| black_box(Tree::decode(&raw).unwrap()))
    });
    g.finish();
}

fn object_write(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::init(&dir.path().join("repo")).unwrap();
    let base = text(16 << 10, 9);
    let mut counter = 0u64;
    let mut g = c.benchmark_group("object write");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    g.bench_function("new 16 KiB text chunk", |b| {
        b.iter_batched(
            || {
                counter += 1;
                let mut d = base.clone();
                d[..8].copy_from_slice(&counter.to_le_bytes());
                (ObjectId::compute(ObjectKind::Chunk, &d), d)
            },
            |(id, d)| {
                black_box(
                    repo.write_object_with_id(id, ObjectKind::Chunk, &d)
                        .unwrap(),
                )
            },
            BatchSize::SmallInput,
        )
    });
    let id = ObjectId::compute(ObjectKind::Chunk, &base);
    repo.write_object_with_id(id, ObjectKind::Chunk, &base)
        .unwrap();
    g.bench_function("existing chunk (probe only)", |b| {
        b.iter(|| {
            black_box(
                repo.write_object_with_id(id, ObjectKind::Chunk, &base)
                    .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, limits, hot, trees, object_write);
criterion_main!(benches);
