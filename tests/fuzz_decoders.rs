//! Structure-aware fuzzing of every decoder on stable Rust (issue 14 item
//! 2; docs/fuzzing.md). `cargo fuzz` needs a nightly toolchain, which the
//! project does not use, so each target here is a proptest property:
//! generate a valid encoding, check that it round-trips, then mutate it
//! (bit flips, byte sets, truncation, insertion, removal, duplication,
//! splicing in a second valid encoding, length fields set huge) or replace
//! it with random bytes, and decode again. Every decode must return (no
//! panic, no hang: inputs are bounded and every wait on a scripted board
//! is bounded), give an error that is one line, and allocate at most a
//! bound proportional to its input (a counting allocator measures the
//! largest live heap of the decoding thread).
//!
//! The normal run does a fixed number of cases per target (a few seconds
//! each). The long run: `BELAY_FUZZ_CASES=N cargo test --release --test
//! fuzz_decoders -- --nocapture` runs N cases per target (a tenth to a
//! thousandth of N for the slower ones that go through files or a scripted
//! board's connect) and prints executions and time per target.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime};

use belay_store::chunker::ChunkerParams;
use belay_store::gc::{self, GcOptions, NoProgress};
use belay_store::id::ObjectId;
use belay_store::object::{self, Header, ObjectKind};
use belay_store::repo::{Config, RefKind, Repo};
use belay_store::snapshot::{Snapshot, Summary};
use belay_store::tree::{Node, Tree, TreeEntry};
use belay_store::{journal, session, tags};
use belay_transport::serial::port::Link;
use belay_transport::serial::protocol as p;
use belay_transport::serial::scripted::ScriptedPort;
use belay_transport::serial::session::{
    BoardEntry, BoardInfo, ConnectOptions, Piece, Session, WriteError,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, TestCaseError, TestRunner};

// ---- bounded memory: a counting allocator ------------------------------

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    let _ = LIVE.try_with(|l| {
        let now = l.get() + delta;
        l.set(now);
        let _ = PEAK.try_with(|p| {
            if now > p.get() {
                p.set(now)
            }
        });
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are thread-local cells without destructors.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        account(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Run `f` and return its result with the most heap it held at once on
/// this thread (Rust allocations; zstd's C allocations are not counted).
fn measured<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(base));
    let r = f();
    let peak = PEAK.with(|p| p.get());
    (r, (peak - base).max(0) as usize)
}

const MIB: usize = 1 << 20;

// ---- case counts and statistics ----------------------------------------

/// Cases for a target: `default` in the normal run; with
/// `BELAY_FUZZ_CASES=N` (the long run), N divided by `div` (the slower
/// targets, which go through files or a scripted board's timing, get a
/// share of N).
fn cases(default: u32, div: u32) -> u32 {
    match std::env::var("BELAY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        Some(n) => (n / div).max(1),
        None => default,
    }
}

fn run<S: Strategy>(
    name: &str,
    n: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(PtConfig {
        cases: n,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..PtConfig::default()
    });
    let start = Instant::now();
    let executed = std::sync::atomic::AtomicU64::new(0);
    let result = runner.run(&strategy, |v| {
        executed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        test(v)
    });
    eprintln!(
        "fuzz {name}: {} executions in {:.1} s, {}",
        executed.into_inner(),
        start.elapsed().as_secs_f64(),
        if result.is_ok() {
            "0 failures"
        } else {
            "FAILED"
        }
    );
    if let Err(e) = result {
        panic!("fuzz target {name}: {e}");
    }
}

/// An error message is one line of bounded length.
fn one_line(msg: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !msg.contains('\n') && msg.len() < 2000,
        "error is not one short line: {msg:?}"
    );
    Ok(())
}

// ---- mutations ---------------------------------------------------------

/// Length-like values that decoders must not believe.
const HUGE: &[&[u8]] = &[
    &[0xff, 0xff, 0xff, 0xff, 0x0f],       // varint u32::MAX
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], // varint 2^35
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // varint u64::MAX
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // u64 LE max
    &[0x01, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00], // u64 LE 64 MiB + 1
    &[0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00], // u64 LE 1 MiB
    &[0xff, 0xff, 0xff, 0xff],             // u32 LE max
    &[0x01, 0x00, 0x10, 0x00],             // u32 LE 1 MiB + 1
    &[0xff, 0xff],                         // u16 LE max
    &[0x80],                               // unfinished varint
];

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Duplicate(usize, usize, usize),
    /// Replace everything from a position on with the tail of the donor.
    Splice(usize, usize),
    /// Overwrite (or insert) a huge length.
    Huge(usize, usize, bool),
}

fn mutation() -> impl Strategy<Value = Mutation> + Clone {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        2 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => (any::<usize>(), 1usize..64, any::<usize>())
            .prop_map(|(i, n, j)| Mutation::Duplicate(i, n, j)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::Splice(i, j)),
        2 => (any::<usize>(), 0..HUGE.len(), any::<bool>())
            .prop_map(|(i, h, ins)| Mutation::Huge(i, h, ins)),
    ]
}

fn apply(data: &mut Vec<u8>, m: &Mutation, donor: &[u8]) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
    match m {
        Mutation::FlipBit(i, b) if !data.is_empty() => {
            let k = i % data.len();
            data[k] ^= 1 << b;
        }
        Mutation::SetByte(i, v) if !data.is_empty() => {
            let k = i % data.len();
            data[k] = *v;
        }
        Mutation::Truncate(i) => data.truncate(at(*i, data.len())),
        Mutation::Insert(i, v) => {
            let k = at(*i, data.len());
            data.splice(k..k, v.iter().copied());
        }
        Mutation::Remove(i, n) if !data.is_empty() => {
            let k = i % data.len();
            let end = (k + n).min(data.len());
            data.drain(k..end);
        }
        Mutation::Duplicate(i, n, j) if !data.is_empty() => {
            let k = i % data.len();
            let piece = data[k..(k + n).min(data.len())].to_vec();
            let to = at(*j, data.len());
            data.splice(to..to, piece);
        }
        Mutation::Splice(i, j) => {
            let k = at(*i, data.len());
            data.truncate(k);
            let d = at(*j, donor.len());
            data.extend_from_slice(&donor[d.min(donor.len())..]);
        }
        Mutation::Huge(i, h, insert) => {
            let v = HUGE[*h];
            let k = at(*i, data.len());
            if *insert || k + v.len() > data.len() {
                data.splice(k..k, v.iter().copied());
            } else {
                data[k..k + v.len()].copy_from_slice(v);
            }
        }
        _ => {}
    }
}

/// Largest input any target decodes (no hang: every decoder is linear or
/// bounded in it).
const MAX_INPUT: usize = 256 << 10;

/// What a target decodes: a mutated valid encoding or random bytes.
#[derive(Clone, Debug)]
enum Input<T> {
    /// A valid value; its encoding must round-trip.
    Valid(T),
    /// A valid value's encoding, mutated (a second valid value's encoding is
    /// the donor for splices).
    Mutated(T, T, Vec<Mutation>),
    Random(Vec<u8>),
}

fn input<T: Clone + std::fmt::Debug>(
    valid: impl Strategy<Value = T> + Clone,
) -> impl Strategy<Value = Input<T>> {
    prop_oneof![
        1 => valid.clone().prop_map(Input::Valid),
        8 => (valid.clone(), valid, prop::collection::vec(mutation(), 1..6))
            .prop_map(|(a, b, m)| Input::Mutated(a, b, m)),
        2 => prop::collection::vec(any::<u8>(), 0..600).prop_map(Input::Random),
    ]
}

/// The bytes of an input (`encode` turns a valid value into bytes), and
/// the valid value when the input is unmutated.
fn bytes_of<T: Clone>(inp: &Input<T>, encode: impl Fn(&T) -> Vec<u8>) -> (Vec<u8>, Option<T>) {
    match inp {
        Input::Valid(v) => (encode(v), Some(v.clone())),
        Input::Mutated(v, donor, ms) => {
            let mut b = encode(v);
            let d = encode(donor);
            for m in ms {
                apply(&mut b, m, &d);
            }
            b.truncate(MAX_INPUT);
            (b, None)
        }
        Input::Random(b) => (b.clone(), None),
    }
}

// ---- valid values --------------------------------------------------------

fn id() -> impl Strategy<Value = ObjectId> + Clone {
    any::<[u8; 32]>().prop_map(ObjectId)
}

fn name() -> impl Strategy<Value = Vec<u8>> + Clone {
    // Valid by construction (a filter would reject too often over a long
    // run): no NUL or '/', never "." or "..".
    prop_oneof![
        "[a-z0-9_.-]{1,12}".prop_map(String::into_bytes),
        prop::collection::vec(1u8..=255, 1..24),
    ]
    .prop_map(|mut n| {
        for b in n.iter_mut() {
            if *b == b'/' {
                *b = b'_';
            }
        }
        if n == b"." || n == b".." {
            n.push(b'x');
        }
        n
    })
}

fn node() -> impl Strategy<Value = Node> + Clone {
    prop_oneof![
        (
            any::<u64>(),
            any::<[u8; 32]>(),
            prop::collection::vec(id(), 0..5)
        )
            .prop_map(|(size, sha256, chunks)| Node::File {
                size,
                sha256,
                chunks
            }),
        id().prop_map(|tree| Node::Dir { tree }),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|target| Node::Symlink { target }),
    ]
}

fn tree() -> impl Strategy<Value = Tree> + Clone {
    prop::collection::vec((name(), any::<u32>(), any::<Option<i64>>(), node()), 0..12).prop_map(
        |v| {
            let mut entries: Vec<TreeEntry> = v
                .into_iter()
                .map(|(name, mode, mtime_ns, node)| TreeEntry {
                    name,
                    mode,
                    mtime_ns,
                    node,
                })
                .collect();
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            entries.dedup_by(|a, b| a.name == b.name);
            Tree { entries }
        },
    )
}

fn chunker() -> impl Strategy<Value = ChunkerParams> + Clone {
    (6u32..=20, 0u32..=2, 0u32..=2, any::<u32>()).prop_map(|(min_log, a, b, w)| {
        let min = 1u32 << min_log.max(8);
        ChunkerParams {
            algorithm: 1,
            whole_file_below: w % (1 << 20),
            min_size: min,
            avg_size: min << a,
            max_size: (min << a << b).max(1024),
        }
    })
}

fn kv() -> impl Strategy<Value = Vec<(String, String)>> + Clone {
    prop::collection::btree_map(".{0,12}", ".{0,20}", 0..5).prop_map(|m| m.into_iter().collect())
}

fn snapshot() -> impl Strategy<Value = Snapshot> + Clone {
    (
        (id(), prop::collection::vec(id(), 0..3), any::<i64>()),
        (".{0,16}", ".{0,30}", ".{0,10}", ".{0,10}", ".{0,40}"),
        (kv(), kv(), chunker(), any::<[u64; 8]>()),
    )
        .prop_map(
            |(
                (tree, parents, time_ns),
                (source, location, host, user, message),
                (meta, device, chunker, s),
            )| {
                Snapshot {
                    tree,
                    parents,
                    time_ns,
                    source,
                    location,
                    host,
                    user,
                    message,
                    meta,
                    device,
                    chunker,
                    summary: Summary {
                        files: s[0],
                        dirs: s[1],
                        symlinks: s[2],
                        bytes: s[3],
                        files_read: s[4],
                        bytes_read: s[5],
                        objects_added: s[6],
                        bytes_added: s[7],
                    },
                }
            },
        )
}

/// Rough heap size of a decoded tree (for the proportionality bound).
fn tree_heap(t: &Tree) -> usize {
    t.entries
        .iter()
        .map(|e| {
            std::mem::size_of::<TreeEntry>()
                + e.name.len()
                + match &e.node {
                    Node::File { chunks, .. } => chunks.len() * 32,
                    Node::Symlink { target } => target.len(),
                    Node::Dir { .. } => 0,
                }
        })
        .sum()
}

// ---- store: object envelope ----------------------------------------------

#[derive(Clone, Debug)]
struct Obj {
    kind: ObjectKind,
    raw: Vec<u8>,
    level: i32,
}

fn obj() -> impl Strategy<Value = Obj> + Clone {
    let kind = prop_oneof![
        Just(ObjectKind::Chunk),
        Just(ObjectKind::Tree),
        Just(ObjectKind::Snapshot)
    ];
    let raw = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        // Compressible: a short pattern repeated.
        (prop::collection::vec(any::<u8>(), 1..8), 0usize..4000).prop_map(|(p, n)| p
            .iter()
            .copied()
            .cycle()
            .take(n)
            .collect()),
    ];
    (kind, raw, prop_oneof![Just(0), Just(1), Just(3), Just(9)])
        .prop_map(|(kind, raw, level)| Obj { kind, raw, level })
}

fn enc_obj(o: &Obj) -> Vec<u8> {
    object::encode_object(o.kind, &o.raw, o.level)
}

fn check_object(inp: Input<Obj>) -> Result<(), TestCaseError> {
    let (bytes, valid) = bytes_of(&inp, enc_obj);
    let claim = Header::decode(&bytes)
        .map(|h| h.raw_len.max(h.stored_len) as usize)
        .unwrap_or(0);
    let (r, peak) = measured(|| object::decode_object(&bytes));
    prop_assert!(
        peak <= 4 * MIB + 2 * bytes.len() + 2 * (claim + 1),
        "{peak} bytes for {} input bytes claiming {claim}",
        bytes.len()
    );
    match (&r, valid) {
        (Ok((h, raw)), Some(v)) => {
            prop_assert_eq!(h.kind, v.kind);
            prop_assert_eq!(raw, &v.raw);
        }
        (Err(e), Some(_)) => prop_assert!(false, "a valid object failed: {e}"),
        (Ok((h, raw)), None) => {
            prop_assert_eq!(raw.len() as u64, h.raw_len);
            prop_assert_eq!(Header::decode(&bytes).ok(), Some(*h));
        }
        (Err(e), None) => one_line(e)?,
    }
    Ok(())
}

#[test]
fn fuzz_object_envelope() {
    run(
        "object envelope",
        cases(20_000, 1),
        input(obj()),
        check_object,
    );
}

/// A zstd frame that claims a huge window and content, in an object whose
/// header claims more than 1 MiB (the streaming path): memory stays bounded.
#[test]
fn object_with_a_hostile_zstd_frame_header() {
    // Magic, frame header: window descriptor only (no content size),
    // window log 31 (the most the format can say), then garbage.
    for wd in [0xf8u8, 0x98, 0x00, 0xff] {
        let mut payload = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, wd];
        payload.extend_from_slice(&[0u8; 10]);
        let header = Header {
            kind: ObjectKind::Chunk,
            compression: object::Compression::Zstd,
            raw_len: 60 << 20,
            stored_len: payload.len() as u64,
        };
        let mut file = header.encode().to_vec();
        file.extend_from_slice(&payload);
        let (r, peak) = measured(|| object::decode_object(&file));
        assert!(r.is_err());
        assert!(peak < 4 * MIB, "{peak}");
    }
}

// ---- store: trees and snapshots ----------------------------------------

fn check_tree(inp: Input<Tree>) -> Result<(), TestCaseError> {
    let (bytes, valid) = bytes_of(&inp, Tree::encode);
    let (r, peak) = measured(|| Tree::decode(&bytes));
    prop_assert!(
        peak <= 2 * MIB + 256 * bytes.len(),
        "{peak} bytes to decode {} bytes",
        bytes.len()
    );
    match (&r, valid) {
        (Ok(t), Some(v)) => prop_assert_eq!(t, &v),
        (Err(e), Some(_)) => prop_assert!(false, "a valid tree failed: {e}"),
        (Ok(t), None) => {
            prop_assert!(t.check().is_ok());
            prop_assert!(tree_heap(t) <= 128 * bytes.len() + 64);
            // What decodes is canonical: it encodes back to the same bytes
            // (so one tree has one id).
            prop_assert_eq!(t.encode(), bytes);
        }
        (Err(e), None) => one_line(e)?,
    }
    Ok(())
}

#[test]
fn fuzz_tree_payload() {
    run("tree payload", cases(20_000, 1), input(tree()), check_tree);
}

fn check_snapshot(inp: Input<Snapshot>) -> Result<(), TestCaseError> {
    let (bytes, valid) = bytes_of(&inp, Snapshot::encode);
    let (r, peak) = measured(|| Snapshot::decode(&bytes));
    prop_assert!(
        peak <= 2 * MIB + 256 * bytes.len(),
        "{peak} bytes to decode {} bytes",
        bytes.len()
    );
    match (&r, valid) {
        (Ok(s), Some(v)) => prop_assert_eq!(s, &v),
        (Err(e), Some(_)) => prop_assert!(false, "a valid snapshot failed: {e}"),
        (Ok(s), None) => {
            prop_assert_eq!(s.encode(), bytes);
            let _ = s.time();
        }
        (Err(e), None) => one_line(e)?,
    }
    Ok(())
}

#[test]
fn fuzz_snapshot_payload() {
    run(
        "snapshot payload",
        cases(20_000, 1),
        input(snapshot()),
        check_snapshot,
    );
}

// ---- store: objects read from a repository -----------------------------

/// A repository in a temporary directory, reused across cases.
fn scratch_repo() -> (tempfile::TempDir, Repo) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::init(&tmp.path().join("r")).unwrap();
    (tmp, repo)
}

#[derive(Clone, Debug)]
enum Payload {
    Tree(Tree),
    Snapshot(Box<Snapshot>),
    Chunk(Vec<u8>),
}

fn payload() -> impl Strategy<Value = Payload> + Clone {
    prop_oneof![
        tree().prop_map(Payload::Tree),
        snapshot().prop_map(|s| Payload::Snapshot(Box::new(s))),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Payload::Chunk),
    ]
}

fn payload_obj(p: &Payload) -> (ObjectKind, Vec<u8>) {
    match p {
        Payload::Tree(t) => (ObjectKind::Tree, t.encode()),
        Payload::Snapshot(s) => (ObjectKind::Snapshot, s.encode()),
        Payload::Chunk(c) => (ObjectKind::Chunk, c.clone()),
    }
}

#[test]
fn fuzz_objects_read_from_a_repository() {
    let (_tmp, repo) = scratch_repo();
    run(
        "objects in a repository",
        cases(3000, 10),
        input(payload()),
        |inp| {
            // The object file: the valid payload's envelope, mutated.
            let (kind, raw) = match &inp {
                Input::Valid(v) | Input::Mutated(v, _, _) => payload_obj(v),
                Input::Random(_) => (ObjectKind::Chunk, Vec::new()),
            };
            let id = ObjectId::compute(kind, &raw);
            let (file, valid) = bytes_of(&inp, |v| {
                let (k, r) = payload_obj(v);
                object::encode_object(k, &r, 3)
            });
            let path = repo.object_path(&id);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &file).unwrap();
            let results = [
                repo.read_tree(&id).map(|_| ()),
                repo.read_snapshot(&id).map(|_| ()),
                repo.read_object(&id, ObjectKind::Chunk).map(|_| ()),
            ];
            let _ = repo.has_object(&id);
            std::fs::remove_file(&path).unwrap();
            let want = match kind {
                ObjectKind::Tree => 0,
                ObjectKind::Snapshot => 1,
                ObjectKind::Chunk => 2,
                other => unreachable!("payloads are never {other:?}"),
            };
            for (i, r) in results.iter().enumerate() {
                match r {
                    Ok(()) => prop_assert!(i == want, "a {kind:?} object was read as another kind"),
                    Err(e) => {
                        prop_assert!(valid.is_none() || i != want, "a valid object failed: {e}");
                        one_line(&e.to_string())?;
                    }
                }
            }
            Ok(())
        },
    );
}

// ---- store: packs and index objects (format v2) -------------------------

/// A pack of chunks and trees (as a list of payloads).
fn pack_contents() -> impl Strategy<Value = Vec<Payload>> + Clone {
    prop::collection::vec(
        prop_oneof![
            tree().prop_map(Payload::Tree),
            prop::collection::vec(any::<u8>(), 0..200).prop_map(Payload::Chunk),
        ],
        0..6,
    )
}

fn build_pack(contents: &[Payload]) -> (ObjectId, Vec<u8>, Vec<belay_store::pack::PackEntry>) {
    let mut b = belay_store::pack::PackBuilder::new();
    for p in contents {
        let (kind, raw) = payload_obj(p);
        b.push(
            ObjectId::compute(kind, &raw),
            kind,
            &object::encode_object(kind, &raw, 3),
        );
    }
    b.finish()
}

#[test]
fn fuzz_pack_footer() {
    run(
        "pack footer",
        cases(20_000, 1),
        input(pack_contents()),
        |inp| {
            let (bytes, valid) = bytes_of(&inp, |c| build_pack(c).1);
            let (r, peak) = measured(|| belay_store::pack::parse_pack(&bytes));
            prop_assert!(
                peak <= 2 * MIB + 256 * bytes.len(),
                "{peak} bytes to parse {} bytes",
                bytes.len()
            );
            match (r, valid) {
                (Ok(entries), Some(v)) => prop_assert_eq!(entries, build_pack(&v).2),
                (Err(e), Some(_)) => prop_assert!(false, "a valid pack failed: {e}"),
                (Ok(entries), None) => {
                    // Whatever parses lies inside the file, back to back.
                    for e in &entries {
                        prop_assert!(e.offset + e.length as u64 <= bytes.len() as u64);
                    }
                }
                (Err(e), None) => one_line(&e)?,
            }
            Ok(())
        },
    );
}

fn index_of(contents: &[Payload]) -> belay_store::pack::IndexV1 {
    use belay_store::pack::{IndexV1, IndexedEntry, IndexedPack};
    let (id, bytes, entries) = build_pack(contents);
    IndexV1 {
        supersedes: vec![],
        packs: vec![IndexedPack {
            pack: id,
            size: bytes.len() as u64,
            entries: entries.iter().map(IndexedEntry::from_entry).collect(),
        }],
    }
}

#[test]
fn fuzz_index_payload() {
    run(
        "index payload",
        cases(20_000, 1),
        input(pack_contents()),
        |inp| {
            let (bytes, valid) = bytes_of(&inp, |c| index_of(c).encode());
            let (r, peak) = measured(|| belay_store::pack::IndexV1::decode(&bytes));
            prop_assert!(
                peak <= 2 * MIB + 256 * bytes.len(),
                "{peak} bytes to decode {} bytes",
                bytes.len()
            );
            match (r, valid) {
                (Ok(ix), Some(v)) => prop_assert_eq!(ix, index_of(&v)),
                (Err(e), Some(_)) => prop_assert!(false, "a valid index failed: {e}"),
                // One encoding per value: what decodes re-encodes to itself.
                (Ok(ix), None) => prop_assert_eq!(ix.encode(), bytes),
                (Err(e), None) => one_line(&e)?,
            }
            Ok(())
        },
    );
}

// ---- store: JSON files (config, journal, sessions, locks) --------------

/// Values a hostile JSON writer puts where a field belongs.
fn hostile_json() -> impl Strategy<Value = serde_json::Value> + Clone {
    use serde_json::json;
    prop_oneof![
        Just(json!(null)),
        Just(json!(-1)),
        Just(json!(18446744073709551615u64)),
        Just(json!(i64::MIN)),
        Just(json!(1.5e300)),
        Just(json!("")),
        Just(json!("x".repeat(70_000))),
        Just(json!([])),
        Just(json!({})),
        Just(json!(true)),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,20}".prop_map(|s| json!(s)),
    ]
}

#[derive(Clone, Debug)]
enum JsonEdit {
    /// Replace the n-th node (pre-order) with a hostile value.
    Replace(usize, serde_json::Value),
    /// Remove a key from the n-th object.
    RemoveKey(usize, usize),
    /// Wrap the document in this many arrays.
    Nest(usize),
}

fn json_edit() -> impl Strategy<Value = JsonEdit> + Clone {
    prop_oneof![
        4 => (any::<usize>(), hostile_json()).prop_map(|(i, v)| JsonEdit::Replace(i, v)),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(i, k)| JsonEdit::RemoveKey(i, k)),
        1 => prop_oneof![Just(1usize), Just(127), Just(200), Just(5000)].prop_map(JsonEdit::Nest),
    ]
}

/// The n-th node of `v` in pre-order (modulo the count).
fn nth_node(v: &mut serde_json::Value, n: usize) -> &mut serde_json::Value {
    fn count(v: &serde_json::Value) -> usize {
        1 + match v {
            serde_json::Value::Array(a) => a.iter().map(count).sum(),
            serde_json::Value::Object(o) => o.values().map(count).sum(),
            _ => 0,
        }
    }
    fn find(v: &mut serde_json::Value, mut n: usize) -> &mut serde_json::Value {
        if n == 0 {
            return v;
        }
        n -= 1;
        let children: Vec<&mut serde_json::Value> = match v {
            serde_json::Value::Array(a) => a.iter_mut().collect(),
            serde_json::Value::Object(o) => o.values_mut().collect(),
            _ => unreachable!("n is below the count"),
        };
        for c in children {
            let k = count(c);
            if n < k {
                return find(c, n);
            }
            n -= k;
        }
        unreachable!("n is below the count")
    }
    let n = n % count(v);
    find(v, n)
}

fn edit_json(v: &serde_json::Value, edits: &[JsonEdit]) -> Vec<u8> {
    let mut v = v.clone();
    let mut nest = 0;
    for e in edits {
        match e {
            JsonEdit::Replace(i, new) => *nth_node(&mut v, *i) = new.clone(),
            JsonEdit::RemoveKey(i, key) => {
                if let serde_json::Value::Object(o) = nth_node(&mut v, *i)
                    && !o.is_empty()
                {
                    let k = o.keys().nth(key % o.len()).unwrap().clone();
                    o.remove(&k);
                }
            }
            JsonEdit::Nest(n) => nest += n,
        }
    }
    let mut out = "[".repeat(nest).into_bytes();
    out.extend(serde_json::to_vec_pretty(&v).unwrap());
    out.extend("]".repeat(nest).into_bytes());
    out
}

/// A JSON document: valid, edited structurally and then mutated bytewise,
/// or random.
#[derive(Clone, Debug)]
struct JsonInput<T> {
    value: T,
    edits: Vec<JsonEdit>,
    bytes: Vec<Mutation>,
}

fn json_input<T: Clone + std::fmt::Debug>(
    valid: impl Strategy<Value = T> + Clone,
) -> impl Strategy<Value = Input<JsonInput<T>>> {
    let doc = (
        valid,
        prop::collection::vec(json_edit(), 0..3),
        prop::collection::vec(mutation(), 0..3),
    )
        .prop_map(|(value, edits, bytes)| JsonInput {
            value,
            edits,
            bytes,
        });
    prop_oneof![
        1 => doc.clone().prop_map(|mut d| {
            d.edits.clear();
            d.bytes.clear();
            Input::Valid(d)
        }),
        6 => doc.prop_map(|d| Input::Mutated(d.clone(), d, Vec::new())),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Input::Random),
    ]
}

fn json_bytes<T: serde::Serialize + Clone>(inp: &Input<JsonInput<T>>) -> (Vec<u8>, Option<T>) {
    match inp {
        Input::Valid(d) => (
            serde_json::to_vec_pretty(&d.value).unwrap(),
            Some(d.value.clone()),
        ),
        Input::Mutated(d, _, _) => {
            let v = serde_json::to_value(&d.value).unwrap();
            let mut b = edit_json(&v, &d.edits);
            let donor = b.clone();
            for m in &d.bytes {
                apply(&mut b, m, &donor);
            }
            b.truncate(MAX_INPUT);
            (b, None)
        }
        Input::Random(b) => (b.clone(), None),
    }
}

fn config() -> impl Strategy<Value = Config> + Clone {
    (any::<[u8; 32]>(), chunker(), -7i32..=22).prop_map(|(id, chunker, level)| Config {
        format: "belay".into(),
        version: 1,
        id: hex::encode(id),
        chunker,
        compression: belay_store::repo::Compression {
            algorithm: "zstd".into(),
            level,
        },
    })
}

#[test]
fn fuzz_config() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r");
    std::fs::create_dir_all(&root).unwrap();
    run("config", cases(3000, 10), json_input(config()), |inp| {
        let (bytes, valid) = json_bytes(&inp);
        std::fs::write(root.join("config"), &bytes).unwrap();
        let (r, peak) = measured(|| Repo::open(&root));
        prop_assert!(peak <= 2 * MIB + 64 * bytes.len(), "{peak}");
        match (r, valid) {
            (Ok(repo), Some(v)) => prop_assert_eq!(repo.config(), &v),
            (Err(e), Some(_)) => prop_assert!(false, "a valid config failed: {e}"),
            (Ok(repo), None) => prop_assert!(repo.config().chunker.validate().is_ok()),
            (Err(e), None) => one_line(&e.to_string())?,
        }
        Ok(())
    });
}

fn journal_entry() -> impl Strategy<Value = journal::Entry> + Clone {
    (
        "[0-9a-f]{16}",
        any::<i64>(),
        (
            ".{0,8}",
            ".{0,8}",
            "[a-z-]{1,10}",
            prop_oneof![Just("ok"), Just("error")],
        ),
        (
            proptest::option::of(".{0,30}"),
            proptest::option::of(".{0,10}"),
            prop::collection::vec("[0-9a-f]{64}", 0..3),
            prop::collection::btree_map("[a-z_]{1,8}", any::<u32>(), 0..4),
        ),
    )
        .prop_map(
            |(id, time_ns, (user, host, kind, outcome), (error, source, snapshots, details))| {
                journal::Entry {
                    version: journal::VERSION,
                    id,
                    time: String::new(),
                    time_ns,
                    user,
                    host,
                    kind,
                    outcome: outcome.into(),
                    error,
                    source,
                    snapshots,
                    details: details
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::json!(v)))
                        .collect(),
                }
            },
        )
}

#[test]
fn fuzz_journal_entries() {
    let (_tmp, repo) = scratch_repo();
    let dir = repo.root().join(journal::DIR);
    std::fs::create_dir_all(&dir).unwrap();
    run(
        "journal entries",
        cases(3000, 10),
        json_input(journal_entry()),
        |inp| {
            let (mut bytes, valid) = json_bytes(&inp);
            // A journal file holds one entry per line.
            if valid.is_some() {
                bytes = serde_json::to_vec(&valid.clone().unwrap()).unwrap();
                bytes.push(b'\n');
            }
            let path = dir.join("20260101T000000.000000000Z-0123456789abcdef.json");
            std::fs::write(&path, &bytes).unwrap();
            let mut warnings = Vec::new();
            let (r, peak) = measured(|| journal::list(&repo, &mut warnings));
            std::fs::remove_file(&path).unwrap();
            prop_assert!(peak <= 2 * MIB + 64 * bytes.len(), "{peak}");
            let entries = r.map_err(|e| TestCaseError::fail(format!("journal list: {e}")))?;
            if let Some(v) = valid {
                prop_assert_eq!(entries, vec![v]);
                prop_assert!(warnings.is_empty(), "{warnings:?}");
            }
            for w in &warnings {
                one_line(w)?;
            }
            Ok(())
        },
    );
}

#[derive(Clone, Debug, serde::Serialize)]
struct OwnerDoc {
    kind: String,
    host: String,
    pid: u32,
    started: String,
    source: String,
}

fn owner() -> impl Strategy<Value = OwnerDoc> + Clone {
    (
        prop_oneof![Just("backup"), Just("gc")],
        ".{0,12}",
        any::<u32>(),
        ".{0,25}",
        ".{0,12}",
    )
        .prop_map(|(kind, host, pid, started, source)| OwnerDoc {
            kind: kind.into(),
            host,
            pid,
            started,
            source,
        })
}

/// Session and lock files, the gc generation, condemned lists and the
/// forget record as gc, `unlock` and a backup's session read them.
#[test]
fn fuzz_sessions_locks_and_gc_lists() {
    let (_tmp, repo) = scratch_repo();
    let root = repo.root().to_path_buf();
    let names = prop_oneof![
        Just("host-123-abcd.json".to_string()),
        "[a-z]{0,6}-[0-9]{0,12}-[a-z]{0,4}\\.json",
        "[^/\\x00]{1,40}\\.json",
        "-{1,4}\\.json",
    ];
    let lists = (
        prop::collection::vec(id(), 0..6),
        prop::collection::vec(mutation(), 0..3),
    );
    run(
        "sessions, locks, gc lists",
        cases(1000, 50),
        (json_input(owner()), names, lists, input(any::<u64>())),
        |(own, name, (ids, list_mut), generation)| {
            // Start clean: a case that failed may have left its files.
            for d in ["sessions", "locks", "gc/condemned", "trash"] {
                for e in std::fs::read_dir(root.join(d)).unwrap() {
                    let _ = std::fs::remove_file(e.unwrap().path());
                }
            }
            let (owner_bytes, valid_owner) = json_bytes(&own);
            let session = root.join("sessions").join(&name);
            let lock = root.join("locks").join("gc.json");
            let list = root.join("gc").join("condemned").join("x.list");
            let gen_path = root.join("gc").join("generation");
            let undo = root.join("trash").join("undo.json");
            std::fs::write(&session, &owner_bytes).unwrap();
            std::fs::write(&lock, &owner_bytes).unwrap();
            let mut lb = b"belay-condemned 1\n".to_vec();
            for i in &ids {
                lb.extend_from_slice(&i.0);
            }
            let donor = lb.clone();
            for m in &list_mut {
                apply(&mut lb, m, &donor);
            }
            std::fs::write(&list, &lb).unwrap();
            let (gen_bytes, gen_valid) = bytes_of(&generation, |n| format!("{n}\n").into_bytes());
            std::fs::write(&gen_path, &gen_bytes).unwrap();
            std::fs::write(&undo, &owner_bytes).unwrap();

            let now = SystemTime::now();
            let listed = session::list_sessions(&repo, now);
            let r = listed.map_err(|e| TestCaseError::fail(format!("list_sessions: {e}")))?;
            prop_assert!(r.len() <= 1);
            if let (Some(v), [a]) = (&valid_owner, &r[..]) {
                let o = a.owner.as_ref().expect("a valid owner is read");
                prop_assert_eq!((&o.kind, &o.host, o.pid), (&v.kind, &v.host, v.pid));
            }
            match (session::generation(&repo), gen_valid) {
                (Ok(g), Some(v)) => prop_assert_eq!(g, v),
                (Err(e), Some(_)) => prop_assert!(false, "a valid generation failed: {e}"),
                (Ok(_), None) => {}
                (Err(e), None) => one_line(&e.to_string())?,
            }
            let opts = GcOptions {
                dry_run: true,
                grace: Duration::from_secs(3600),
                now: false,
            };
            match gc::gc(&repo, &opts, &NoProgress) {
                Ok(report) => {
                    if list_mut.is_empty() {
                        prop_assert!(report.pending_objects <= ids.len() as u64);
                    }
                }
                Err(e) => one_line(&e.to_string())?,
            }
            if let Err(e) = session::unlock(&repo, false) {
                one_line(&e.to_string())?;
            }
            for p in [&session, &lock, &list, &gen_path, &undo] {
                let _ = std::fs::remove_file(p);
            }
            std::fs::write(&gen_path, b"0\n").unwrap();
            Ok(())
        },
    );
}

// ---- store: refs and tags ----------------------------------------------

#[derive(Clone, Debug)]
struct RefDoc {
    id: ObjectId,
    message: String,
}

fn ref_doc() -> impl Strategy<Value = RefDoc> + Clone {
    (
        id(),
        prop_oneof![Just(String::new()), ".{0,40}", "(.{0,10}\n){0,4}"],
    )
        .prop_map(|(id, message)| RefDoc { id, message })
}

#[test]
fn fuzz_refs_and_tags() {
    let (_tmp, repo) = scratch_repo();
    let head = repo.root().join("refs/heads/src");
    let tag = repo.root().join("refs/tags/t");
    run("refs and tags", cases(3000, 10), input(ref_doc()), |inp| {
        let (bytes, valid) = bytes_of(&inp, |d| tags::encode(&d.id, &d.message).into_bytes());
        // The pure decoder.
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let decoded = tags::decode(text);
            if let Some(v) = &valid {
                prop_assert_eq!(decoded, Some((v.id, v.message.trim_end().to_string())));
            }
        }
        // As the store reads them from files.
        std::fs::write(&head, &bytes).unwrap();
        std::fs::write(&tag, &bytes).unwrap();
        let h = repo.read_ref(RefKind::Head, "src");
        let t = tags::read(&repo, "t");
        let mut bad = Vec::new();
        let listed = repo.list_refs_reporting(RefKind::Tag, &mut |m| bad.push(m));
        match &valid {
            Some(v) => {
                prop_assert_eq!(h.ok().flatten(), Some(v.id));
                let t = t.ok().flatten().expect("a valid tag reads");
                prop_assert_eq!(t.snapshot, v.id);
                prop_assert_eq!(listed.ok().and_then(|l| l.get("t").copied()), Some(v.id));
            }
            None => {
                for e in [h.err(), t.err(), listed.err()].into_iter().flatten() {
                    one_line(&e.to_string())?;
                }
                for m in &bad {
                    one_line(m)?;
                }
            }
        }
        Ok(())
    });
}

// ---- transport: the agent protocol's byte formats ----------------------

#[test]
fn fuzz_protocol_escaping_and_base64() {
    run(
        "protocol escaping, base64, headers",
        cases(20_000, 1),
        (
            prop::collection::vec(any::<u8>(), 0..600),
            prop::collection::vec(mutation(), 0..4),
            any::<bool>(),
            any::<u8>(),
        ),
        |(data, muts, text, cmd)| {
            // Host -> board commands round-trip as the agent parses them.
            let c = p::command(cmd, &data, text);
            prop_assert_eq!(c[0], cmd);
            let len = usize::from_str_radix(std::str::from_utf8(&c[1..9]).unwrap(), 16).unwrap();
            prop_assert_eq!(len, c.len() - 9);
            prop_assert_eq!(len, p::wire_len(&data, text));
            let body = &c[9..];
            let back = if text {
                p::base64_decode(body)
            } else {
                prop_assert!(!body.iter().any(|b| (1..=5).contains(b)));
                p::unescape(body)
            };
            prop_assert_eq!(back.as_deref(), Some(&data[..]));
            let k = p::fit_escaped(&data, data.len() / 2 + 1);
            prop_assert!(p::escaped_len(&data[..k]) <= data.len() / 2 + 1);
            // Mutated wire bytes never panic a decoder.
            let mut m = body.to_vec();
            for x in &muts {
                apply(&mut m, x, &data);
            }
            if let Some(u) = p::unescape(&m) {
                prop_assert!(u.len() <= m.len());
            }
            if let Some(u) = p::base64_decode(&m) {
                prop_assert!(u.len() <= m.len());
            }
            if let Some((_, len)) = p::parse_header(&m) {
                prop_assert!(len <= p::MAX_FRAME);
            }
            let _ = belay_transport::serial::port::reset_marker(&m);
            prop_assert!(belay_transport::serial::port::printable(&m, 80).len() < 400);
            Ok(())
        },
    );
}

// ---- transport: frames from the board's agent --------------------------

fn frame(kind: u8, payload: &[u8], text: bool) -> Vec<u8> {
    let mut f = vec![p::MAGIC, kind];
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(payload);
    if text {
        let mut line = p::base64_encode(&f).into_bytes();
        line.extend_from_slice(b"\r\n");
        line
    } else {
        f
    }
}

fn entries_payload(entries: &[BoardEntry]) -> Vec<u8> {
    let mut d = Vec::new();
    for e in entries {
        d.push(e.kind);
        d.extend_from_slice(&(e.size as u32).to_le_bytes());
        d.extend_from_slice(&e.mtime.to_le_bytes());
        d.extend_from_slice(&(e.path.len() as u16).to_le_bytes());
        d.extend_from_slice(&e.path);
    }
    d
}

/// What a board says in one exchange, and what the host must make of it.
#[derive(Clone, Debug)]
enum Exchange {
    /// `walk`: entries in frames of at most `per` entries, warnings between.
    Walk {
        entries: Vec<BoardEntry>,
        per: usize,
        warn: Option<String>,
    },
    /// `hashes`: one S frame per file.
    Hashes(Vec<([u8; 32], u32)>),
    /// A file read: data frames (some deflated) and the trailer.
    Read {
        pieces: Vec<(Vec<u8>, bool)>,
        hash: bool,
    },
    /// A file write: credits (K), the verification trailer, the rename's K.
    Write(Vec<u8>),
}

#[derive(Clone, Debug)]
struct Script {
    exchange: Exchange,
    text: bool,
    max_read: usize,
}

fn board_entry() -> impl Strategy<Value = BoardEntry> + Clone {
    (
        prop::collection::vec(any::<u8>(), 1..30),
        1u8..=3,
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(mut path, kind, size, mtime)| {
            path.insert(0, b'/');
            BoardEntry {
                path,
                kind,
                size: size as u64,
                mtime,
            }
        })
}

fn script() -> impl Strategy<Value = Script> + Clone {
    let exchange = prop_oneof![
        (
            prop::collection::vec(board_entry(), 0..20),
            1usize..8,
            proptest::option::of(".{0,20}")
        )
            .prop_map(|(entries, per, warn)| Exchange::Walk { entries, per, warn }),
        prop::collection::vec((any::<[u8; 32]>(), any::<u32>()), 1..6).prop_map(Exchange::Hashes),
        (
            prop::collection::vec(
                (prop::collection::vec(any::<u8>(), 0..300), any::<bool>()),
                0..5
            ),
            any::<bool>()
        )
            .prop_map(|(pieces, hash)| Exchange::Read { pieces, hash }),
        // Content without the bytes the protocol escapes, so the number of
        // frames (and credits) is known.
        prop::collection::vec(any::<u8>(), 0..3000).prop_map(|v| Exchange::Write(
            v.into_iter()
                .map(|b| if (1..=5).contains(&b) || b == 0x1b {
                    b | 0x40
                } else {
                    b
                })
                .collect()
        )),
    ];
    (
        exchange,
        any::<bool>(),
        prop_oneof![Just(1usize), Just(7), Just(4096)],
    )
        .prop_map(|(exchange, text, max_read)| Script {
            exchange,
            text,
            max_read,
        })
}

fn hash_files(n: usize) -> Vec<(Vec<u8>, u64)> {
    (0..n)
        .map(|i| (format!("/f{i}").into_bytes(), 10))
        .collect()
}

fn board_bytes(s: &Script) -> Vec<u8> {
    let t = s.text;
    let mut out = Vec::new();
    match &s.exchange {
        Exchange::Walk { entries, per, warn } => {
            for (i, group) in entries.chunks(*per).enumerate() {
                out.extend(frame(p::FR_ENTRIES, &entries_payload(group), t));
                if i == 0
                    && let Some(w) = warn
                {
                    out.extend(frame(p::FR_WARNING, w.as_bytes(), t));
                }
            }
            out.extend(frame(p::FR_OK, b"i", t));
        }
        Exchange::Hashes(h) => {
            for (hash, n) in h {
                let mut d = hash.to_vec();
                d.extend_from_slice(&n.to_le_bytes());
                out.extend(frame(p::FR_PROGRESS, &n.to_le_bytes(), t));
                out.extend(frame(p::FR_HASH, &d, t));
            }
        }
        Exchange::Read { pieces, hash } => {
            let mut all = Vec::new();
            for (data, deflate) in pieces {
                all.extend_from_slice(data);
                if *deflate {
                    let z = miniz_oxide_compress(data);
                    out.extend(frame(p::FR_DEFLATED, &z, t));
                } else {
                    out.extend(frame(p::FR_DATA, data, t));
                }
            }
            let mut tr = Vec::new();
            if *hash {
                tr.extend_from_slice(&sha256(&all));
            }
            tr.extend_from_slice(&(all.len() as u32).to_le_bytes());
            out.extend(frame(p::FR_TRAILER, &tr, t));
        }
        Exchange::Write(content) => {
            // One open K, a K per data frame (at most 64 of them here),
            // then the trailer and the rename's K.
            out.extend(frame(p::FR_OK, b"", t));
            let frames = write_frames(content.len(), t);
            for _ in 0..frames {
                out.extend(frame(p::FR_OK, b"", t));
            }
            let mut tr = sha256(content).to_vec();
            tr.extend_from_slice(&(content.len() as u32).to_le_bytes());
            out.extend(frame(p::FR_TRAILER, &tr, t));
            out.extend(frame(p::FR_OK, b"", t));
        }
    }
    out
}

/// Data frames `write_file` sends for `len` bytes with a 512-byte block
/// (text mode carries three quarters of it), content without escapes.
fn write_frames(len: usize, text: bool) -> usize {
    let raw_max = if text { 512 / 4 * 3 } else { 512 };
    len.div_ceil(raw_max)
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

fn miniz_oxide_compress(data: &[u8]) -> Vec<u8> {
    // The board's deflate: raw deflate data. The host decodes it with
    // miniz_oxide; zstd's crate pulls in no deflate, so compress with a
    // stored block (valid raw deflate, what a board may send).
    let mut out = Vec::new();
    let mut chunks = data.chunks(65535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        out.push(if chunks.peek().is_none() { 1 } else { 0 });
        let n = c.len() as u16;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(c);
    }
    out
}

fn session_over(bytes: Vec<u8>, text: bool, max_read: usize) -> Session {
    let port = ScriptedPort::replay(bytes).max_read(max_read);
    let info = BoardInfo {
        fields: [
            ("bs", "512"),
            ("hash", "1"),
            ("buf", if text { "0" } else { "1" }),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    };
    Session::over(Link::over(Box::new(port), "scripted"), text, info)
}

/// Play one exchange; Ok(true) when the host got exactly what the board
/// meant to say.
fn play(s: &Script, bytes: Vec<u8>) -> Result<bool, String> {
    let mut session = session_over(bytes, s.text, s.max_read);
    match &s.exchange {
        Exchange::Walk { entries, .. } => {
            let got = session.walk().map_err(|e| e.to_string())?;
            Ok(&got == entries)
        }
        Exchange::Hashes(h) => {
            let got = session
                .hashes(&hash_files(h.len()))
                .map_err(|e| e.to_string())?;
            let mut same = got.len() == h.len();
            for (g, (hash, n)) in got.iter().zip(h) {
                match g {
                    Ok((gh, gn)) => same &= gh == hash && *gn == *n as u64,
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(same)
        }
        Exchange::Read { pieces, hash } => {
            let want: Vec<u8> = pieces.iter().flat_map(|(d, _)| d.clone()).collect();
            let mut got = Vec::new();
            // A board never sends more frames than bytes plus one trailer.
            for _ in 0..=MAX_INPUT {
                match session.read_frame(b"/f").map_err(|e| e.to_string())? {
                    Piece::Data(d) => {
                        if got.len() + d.len() > 64 * MAX_INPUT {
                            return Err("a read grew without end".into());
                        }
                        got.extend(d)
                    }
                    Piece::End { sha256: h, size } => {
                        return Ok(got == want
                            && size == want.len() as u64
                            && h.is_some() == *hash
                            && h.is_none_or(|h| h == sha256(&want)));
                    }
                }
            }
            Err("no trailer".into())
        }
        Exchange::Write(content) => {
            let mut r: &[u8] = content;
            let n = session.write_file(b"/f", &mut r, 1).map_err(|e| match e {
                WriteError::Board(e) => e.to_string(),
                WriteError::Content(e) => e.to_string(),
            })?;
            Ok(n == content.len() as u64)
        }
    }
}

fn check_board(inp: Input<Script>) -> Result<(), TestCaseError> {
    let (bytes, valid) = bytes_of(&inp, board_bytes);
    let len = bytes.len();
    let s = match &inp {
        Input::Valid(s) | Input::Mutated(s, _, _) => s.clone(),
        Input::Random(_) => Script {
            exchange: Exchange::Walk {
                entries: Vec::new(),
                per: 1,
                warn: None,
            },
            text: len % 2 == 0,
            max_read: 64,
        },
    };
    let (r, peak) = measured(|| play(&s, bytes));
    prop_assert!(peak <= 4 * MIB + 256 * len, "{peak} bytes for {len}");
    match (r, valid) {
        (Ok(same), Some(_)) => prop_assert!(same, "a valid exchange was misread"),
        (Err(e), Some(_)) => prop_assert!(false, "a valid exchange failed: {e}"),
        (Ok(_), None) => {}
        (Err(e), None) => one_line(&e)?,
    }
    Ok(())
}

#[test]
fn fuzz_board_frames() {
    run(
        "board agent frames",
        cases(10_000, 1),
        input(script()),
        check_board,
    );
}

// ---- transport: the raw REPL (connecting to a board) -------------------

/// The raw REPL dance of a board with raw-paste, answered per write; each
/// reply can be mutated. Returns what each kind of write gets.
#[derive(Clone, Debug)]
struct Repl {
    /// After Ctrl-C: the friendly prompt.
    interrupt: Vec<u8>,
    /// After Ctrl-A: the raw REPL banner and prompt.
    banner: Vec<u8>,
    /// After Ctrl-E A Ctrl-A: raw-paste accepted, and the window.
    paste: Vec<u8>,
    /// After the code's final Ctrl-D: the end of the upload, then the
    /// agent's hello frame.
    hello: Vec<u8>,
    text: bool,
    uid: String,
}

fn repl() -> impl Strategy<Value = Repl> + Clone {
    (
        any::<bool>(),
        "[0-9a-f]{4,16}",
        prop_oneof![Just(64u16), Just(128), Just(256)],
    )
        .prop_map(|(text, uid, window)| {
            let mut paste = b"R\x01".to_vec();
            paste.extend_from_slice(&window.to_le_bytes());
            let info = format!(
                "uid={uid}\nbs=512\nhash=1\nbuf={}\n",
                if text { 0 } else { 1 }
            );
            // The end of the upload, then the hello frame (a base64 line
            // starting with 'p' in text mode).
            let mut hello = vec![0x04];
            hello.extend(frame(p::FR_HELLO, info.as_bytes(), text));
            Repl {
                interrupt: b"\r\n>>> ".to_vec(),
                banner: b"raw REPL; CTRL-B to exit\r\n>".to_vec(),
                paste,
                hello,
                text,
                uid,
            }
        })
}

fn repl_parts(r: &Repl) -> Vec<Vec<u8>> {
    vec![
        r.interrupt.clone(),
        r.banner.clone(),
        r.paste.clone(),
        r.hello.clone(),
    ]
}

fn connect(parts: Vec<Vec<u8>>) -> Result<Session, String> {
    let window = parts
        .get(2)
        .filter(|p| p.len() >= 4)
        .map(|p| u16::from_le_bytes([p[2], p[3]]).max(1) as usize)
        .unwrap_or(64);
    let mut sent_since_credit = 0usize;
    let mut pasting = false;
    let mut done = false;
    let respond = Box::new(move |w: &[u8]| -> (Vec<u8>, bool) {
        if done {
            return (Vec::new(), false);
        }
        let part = |i: usize| parts.get(i).cloned().unwrap_or_default();
        if w == b"\r\x03" || w == b"\x03" {
            return (part(0), true);
        }
        if w == b"\r\x01" {
            return (part(1), true);
        }
        if w == b"\x05A\x01" {
            pasting = true;
            return (part(2), true);
        }
        if w == b"\x04" && pasting {
            done = true;
            return (part(3), true);
        }
        if pasting {
            sent_since_credit += w.len();
            let mut credits = Vec::new();
            while sent_since_credit >= window {
                sent_since_credit -= window;
                credits.push(0x01);
            }
            return (credits, true);
        }
        (Vec::new(), true)
    });
    let port = ScriptedPort::new(Vec::new(), respond)
        .quiet_limit(Duration::from_millis(120))
        .max_read(300);
    Session::connect_over(
        Link::over(Box::new(port), "scripted"),
        &ConnectOptions { raw_paste: true },
    )
    .map_err(|e| e.to_string())
}

#[test]
fn fuzz_raw_repl_connect() {
    let start = Instant::now();
    run(
        "raw REPL connect",
        cases(25, 1000),
        prop_oneof![
            1 => repl().prop_map(|r| (r, Vec::new(), 0usize)),
            6 => (repl(), prop::collection::vec(mutation(), 1..4), 0usize..4)
                .prop_map(|(r, m, k)| (r, m, k)),
        ],
        |(r, muts, which)| {
            let mut parts = repl_parts(&r);
            let donor = parts[which].clone();
            for m in &muts {
                apply(&mut parts[which], m, &donor);
            }
            let (res, peak) = measured(|| connect(parts));
            prop_assert!(peak <= 8 * MIB, "{peak}");
            match res {
                Ok(s) => {
                    if muts.is_empty() {
                        prop_assert_eq!(s.info.unique_id(), Some(r.uid.as_str()));
                        prop_assert_eq!(s.text_mode(), r.text);
                    }
                }
                Err(e) => {
                    prop_assert!(!muts.is_empty(), "a valid board failed to connect: {e}");
                    one_line(&e)?;
                }
            }
            Ok(())
        },
    );
    eprintln!("raw REPL connect: {:.1} s", start.elapsed().as_secs_f64());
}

// ---- regressions found by the long run ---------------------------------

/// A board's error frame (and warning frame) full of NULs and escape
/// sequences: the message is one short line without control characters
/// (it quoted a megabyte of the board's bytes).
#[test]
fn a_board_error_full_of_garbage_gives_one_short_line() {
    let mut junk = vec![0u8, 0, 0, 0];
    junk.extend(b"\x1b[2J\x1b]0;pwned\x07\n".repeat(20_000));
    let mut bytes = frame(p::FR_WARNING, &junk[4..], false);
    bytes.extend(frame(p::FR_ERROR, &junk, false));
    let mut s = session_over(bytes, false, 4096);
    let e = match s.read_frame(b"/f") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("an error frame was read as data"),
    };
    assert!(e.len() < 400 && !e.chars().any(char::is_control), "{e:?}");
    assert!(e.contains("the agent failed"), "{e}");
    let w = &s.warnings[0];
    assert!(w.len() < 400 && !w.chars().any(char::is_control), "{w:?}");
}

/// A config naming a 60 KiB compression algorithm: one short line.
#[test]
fn a_config_with_a_huge_field_gives_one_short_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r");
    let repo = Repo::init(&root).unwrap();
    let mut v = serde_json::to_value(repo.config()).unwrap();
    v["compression"]["algorithm"] = serde_json::json!("x".repeat(60_000));
    std::fs::write(root.join("config"), serde_json::to_vec(&v).unwrap()).unwrap();
    let e = Repo::open(&root).err().expect("refused").to_string();
    assert!(e.len() < 400 && e.contains("unknown compression"), "{e}");
    v["compression"]["level"] = serde_json::json!("y".repeat(60_000));
    std::fs::write(root.join("config"), serde_json::to_vec(&v).unwrap()).unwrap();
    let e = Repo::open(&root).err().expect("refused").to_string();
    assert!(e.len() < 400, "{e}");
}

/// What a board says about itself (its hello frame) goes into snapshots
/// and onto the terminal (`belay show`): no escape sequences, no 100 KB
/// values.
#[test]
fn a_hostile_hello_frame_gives_clean_board_facts() {
    let mut hello = b"uid=\x1b]0;pwned\x07abc\nversion=v1\x1b[2J\r\nsysver=".to_vec();
    hello.extend(vec![b'v'; 100_000]);
    hello.extend(b"\nbs=512\n");
    let mut s = session_over(frame(p::FR_HELLO, &hello, false), false, 4096);
    s.refresh_info().expect("a hello frame is read");
    for (k, v) in &s.info.fields {
        assert!(
            !k.chars().chain(v.chars()).any(char::is_control) && v.chars().count() <= 201,
            "{k:?} = {v:?}"
        );
    }
    assert_eq!(s.info.get("version"), "v1 [2J");
    assert_eq!(s.info.block(), 512);
}

/// The counting allocator sees allocations (the memory bounds above can
/// fail).
#[test]
fn the_allocation_counter_sees_a_large_allocation() {
    let (v, peak) = measured(|| vec![1u8; 10 * MIB]);
    assert!(peak >= 10 * MIB, "{peak}");
    drop(v);
}
