//! Many writers on one repository at once (issue 14 item 5): backups of
//! different sources in loops, `forget`, and `gc --grace 0` / `gc --now` in
//! a loop, all through the real binary. Afterwards `check --read-data` is
//! clean and every snapshot still live restores exactly what was backed up.
//! Counts, not time, bound every loop.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use belay_store::Repo;
use belay_store::id::ObjectId;
use belay_store::repo::RefKind;
use belay_suite::cli::belay;
use belay_suite::fsutil::{Snap, describe, noise};

const WRITERS: usize = 4;
const ROUNDS: usize = 25;
const GC_ROUNDS: usize = 40;

fn init(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    belay(&repo).arg("init").assert().success();
    repo
}

fn run(repo: &Path, args: &[&str]) -> Output {
    belay(repo).args(args).output().expect("run belay")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A failure must be one clear line, never a panic.
fn assert_clear_failure(what: &str, o: &Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("panicked") && o.status.code().is_some(),
        "{what}: {}",
        text(o)
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l.len() < 400),
        "{what} should fail with a clear line: {}",
        text(o)
    );
}

/// Back up `src` as `name`; the snapshot id, or the failed output.
fn backup(repo: &Path, src: &Path, name: &str) -> Result<String, Output> {
    let o = run(
        repo,
        &[
            "--json",
            "backup",
            src.to_str().unwrap(),
            "--name",
            name,
            "--allow-empty",
        ],
    );
    if !o.status.success() {
        return Err(o);
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("backup --json");
    Ok(v["snapshot"].as_str().expect("snapshot id").to_string())
}

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

/// Content of file `n` of writer `w` in version `v`: small text, or (one in
/// four) a file of several chunks. Versions repeat, so a later round brings
/// back content whose objects an earlier forget and gc deleted.
fn content(w: usize, n: usize, v: usize) -> Vec<u8> {
    let seed = (w as u64) << 32 | (n as u64) << 16 | v as u64;
    if n % 4 == 3 {
        noise(20_000 + 7_000 * (v % 3), seed)
    } else {
        format!("writer {w} file {n} version {v}\n")
            .repeat(1 + v % 5)
            .into_bytes()
    }
}

/// Round `r` of writer `w`: add, modify and delete files (a few shared
/// with every writer, so writers store the same objects at the same time).
fn mutate(src: &Path, w: usize, r: usize) {
    let x = r * 7 + w;
    write(
        &src.join(format!("f{}.txt", x % 6)),
        &content(w, x % 6, r % 4),
    );
    write(
        &src.join(format!("lib/m{}.py", (x / 2) % 5)),
        &content(w, 10 + (x / 2) % 5, r % 3),
    );
    let gone = src.join(format!("f{}.txt", (x + 3) % 6));
    let _ = fs::remove_file(gone);
    if r.is_multiple_of(3) {
        let _ = fs::remove_dir_all(src.join("lib"));
    }
    // The same bytes in every writer's folder, changing every other round.
    write(&src.join("shared.bin"), &noise(18_000, (r / 2) as u64));
}

/// The one failure a concurrent gc may cause (docs/format.md §10, a
/// backup's step 3): a gc that was deleting when the backup started removed
/// an object the backup's local cache still listed. Nothing is committed
/// and the head does not move; the rerun stores the object anew.
const GC_RACE: &str = "a gc that ran during this backup removed";

/// Back up like a user would: on [`GC_RACE`] (and only then), check that
/// nothing moved and run the backup again.
fn backup_retrying(repo: &Path, src: &Path, name: &str, retries: &AtomicUsize) -> String {
    for _ in 0..10 {
        let head = Repo::open(repo)
            .unwrap()
            .read_ref(RefKind::Head, name)
            .unwrap();
        match backup(repo, src, name) {
            Ok(id) => return id,
            Err(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(
                    err.contains(GC_RACE) && err.contains("nothing was committed"),
                    "backup of {name}: {}",
                    text(&o)
                );
                assert_clear_failure("a backup racing a gc", &o);
                let after = Repo::open(repo)
                    .unwrap()
                    .read_ref(RefKind::Head, name)
                    .unwrap();
                assert_eq!(head, after, "a failed backup moved the head of {name}");
                retries.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    panic!("backup of {name} failed 10 times in a row");
}

struct Record {
    writer: usize,
    id: String,
    tree: BTreeMap<Vec<u8>, Snap>,
}

fn live(repo: &Path, id: &str) -> bool {
    Repo::open(repo)
        .unwrap()
        .is_live(&ObjectId::from_hex(id).unwrap())
}

/// `check --read-data` is clean, and every recorded snapshot still live
/// restores exactly the folder it was taken of.
fn verify(repo: &Path, tmp: &Path, records: &[Record]) -> usize {
    let c = run(repo, &["check", "--read-data"]);
    assert!(c.status.success(), "check --read-data: {}", text(&c));
    let mut restored = 0;
    for (i, r) in records.iter().enumerate() {
        if !live(repo, &r.id) {
            continue;
        }
        let to = tmp.join(format!("restore-{i}"));
        let o = run(repo, &["restore", &r.id, "--to", to.to_str().unwrap()]);
        assert!(o.status.success(), "restore {}: {}", r.id, text(&o));
        let got = describe(&to);
        assert!(
            got == r.tree,
            "snapshot {} of writer {} restores something else than was backed up:\nwant {:?}\ngot {:?}",
            r.id,
            r.writer,
            r.tree
                .keys()
                .map(|k| String::from_utf8_lossy(k))
                .collect::<Vec<_>>(),
            got.keys()
                .map(|k| String::from_utf8_lossy(k))
                .collect::<Vec<_>>()
        );
        fs::remove_dir_all(&to).unwrap();
        restored += 1;
    }
    restored
}

#[test]
fn four_writers_forget_and_gc_in_loops_lose_nothing_live() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path());
    let records = Arc::new(Mutex::new(Vec::new()));
    let retries = Arc::new(AtomicUsize::new(0));
    let writers_done = Arc::new(AtomicBool::new(false));

    let mut threads = Vec::new();
    for w in 0..WRITERS {
        let repo = repo.clone();
        let src = tmp.path().join(format!("src{w}"));
        let records = records.clone();
        let retries = retries.clone();
        threads.push(std::thread::spawn(move || {
            let name = format!("w{w}");
            for r in 0..ROUNDS {
                mutate(&src, w, r);
                let tree = describe(&src);
                let id = backup_retrying(&repo, &src, &name, &retries);
                // Now and then restore it at once, while gc and the other
                // writers run.
                if r % 4 == 1 {
                    let to = src.with_extension(format!("restore{r}"));
                    let o = run(&repo, &["restore", &id, "--to", to.to_str().unwrap()]);
                    assert!(o.status.success(), "writer {w}: restore: {}", text(&o));
                    assert!(
                        describe(&to) == tree,
                        "writer {w} round {r}: restore differs"
                    );
                    fs::remove_dir_all(&to).unwrap();
                }
                records.lock().unwrap().push(Record {
                    writer: w,
                    id,
                    tree,
                });
                // Forget all but the four newest snapshots of this source
                // now and then, so gc has garbage that later rounds bring
                // back (versions repeat).
                if r % 3 == 2 {
                    let o = run(&repo, &["forget", "--keep-last", "4", "--source", &name]);
                    assert!(o.status.success(), "writer {w}: forget: {}", text(&o));
                }
            }
        }));
    }
    let gc = {
        let repo = repo.clone();
        let done = writers_done.clone();
        std::thread::spawn(move || {
            let mut runs = 0;
            // At least GC_ROUNDS gcs, and on until the writers finish.
            while runs < GC_ROUNDS || !done.load(Ordering::SeqCst) {
                let args: &[&str] = if runs % 4 == 3 {
                    &["gc", "--now"]
                } else {
                    &["gc", "--grace", "0"]
                };
                let o = run(&repo, args);
                assert!(o.status.success(), "{args:?} (run {runs}): {}", text(&o));
                runs += 1;
            }
            runs
        })
    };
    for t in threads {
        t.join().expect("a writer failed");
    }
    writers_done.store(true, Ordering::SeqCst);
    let gc_runs = gc.join().expect("gc failed");

    // One last gc deletes whatever the loop condemned last; nothing live
    // may go.
    let o = run(&repo, &["gc", "--now"]);
    assert!(o.status.success(), "{}", text(&o));
    let records = std::mem::take(&mut *records.lock().unwrap());
    assert_eq!(records.len(), WRITERS * ROUNDS);
    let restored = verify(&repo, tmp.path(), &records);
    eprintln!(
        "{} backups ({} reruns after a gc removed an object they reused), {gc_runs} gc runs, {restored} live snapshots restored byte-identical",
        records.len(),
        retries.load(Ordering::SeqCst)
    );
    // Each source's head is its last snapshot, which forget always keeps.
    let r = Repo::open(&repo).unwrap();
    for w in 0..WRITERS {
        let last = records.iter().rev().find(|x| x.writer == w).unwrap();
        let head = r.read_ref(RefKind::Head, &format!("w{w}")).unwrap();
        assert_eq!(head.map(|h| h.to_hex()), Some(last.id.clone()));
        assert!(live(&repo, &last.id));
    }
    assert!(restored >= 2 * WRITERS);
    // Every process cleaned up after itself: no session or gc lock left.
    for d in ["sessions", "locks"] {
        let left: Vec<_> = fs::read_dir(repo.join(d))
            .map(|it| it.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{d}/ still holds {left:?}");
    }
}

#[test]
fn two_writers_of_the_same_source_at_once_never_break_a_snapshot_or_the_head() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path());
    let mut records = Vec::new();
    let mut failures = 0;
    for r in 0..10 {
        // Two folders, both backed up as source "board" at the same moment.
        let srcs: Vec<PathBuf> = (0..2)
            .map(|k| {
                let src = tmp.path().join(format!("same{k}"));
                mutate(&src, k, r);
                src
            })
            .collect();
        let trees: Vec<_> = srcs.iter().map(|s| describe(s)).collect();
        let handles: Vec<_> = srcs
            .iter()
            .map(|src| {
                let (repo, src) = (repo.clone(), src.clone());
                std::thread::spawn(move || backup(&repo, &src, "board"))
            })
            .collect();
        let mut ids = Vec::new();
        for (k, (h, tree)) in handles.into_iter().zip(trees).enumerate() {
            match h.join().unwrap() {
                Ok(id) => {
                    ids.push(id.clone());
                    records.push(Record {
                        writer: k,
                        id,
                        tree,
                    });
                }
                Err(o) => {
                    assert_clear_failure("a concurrent backup of the same source", &o);
                    failures += 1;
                }
            }
        }
        assert!(!ids.is_empty(), "round {r}: both backups failed");
        // The head names one of this round's snapshots, whole and live.
        let repo_h = Repo::open(&repo).unwrap();
        let head = repo_h
            .read_ref(RefKind::Head, "board")
            .unwrap()
            .expect("a head");
        assert!(ids.contains(&head.to_hex()), "round {r}: head {head:?}");
        let snap = repo_h
            .read_snapshot(&head)
            .expect("the head's snapshot reads");
        for p in &snap.parents {
            assert!(repo_h.has_object(p), "round {r}: a parent is missing");
        }
        // Every snapshot of the round is live and its parent is a snapshot
        // of this source.
        for id in &ids {
            let s = repo_h
                .read_snapshot(&ObjectId::from_hex(id).unwrap())
                .unwrap();
            assert_eq!(s.source, "board");
            assert!(live(&repo, id));
        }
        if r % 3 == 1 {
            let o = run(&repo, &["gc", "--grace", "0"]);
            assert!(o.status.success(), "{}", text(&o));
        }
    }
    let restored = verify(&repo, tmp.path(), &records);
    eprintln!(
        "{} concurrent backups of one source: {} succeeded, {failures} failed cleanly, {restored} restored",
        records.len() + failures,
        records.len()
    );
    assert_eq!(restored, records.len());
    // Each log entry's parents are snapshots of the source (history may
    // branch when two backups start from the same head, never dangle).
    let o = run(&repo, &["--json", "log", "board"]);
    assert!(o.status.success(), "{}", text(&o));
}
