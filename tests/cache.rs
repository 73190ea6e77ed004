//! The local cache (docs/cache.md): `log` reads only the catalogue, a gc
//! invalidates what the cache knows, and deleting the cache changes nothing
//! but speed.

use std::fs;
use std::path::Path;
use std::process::Command;

use belay_store::object::ObjectKind;
use belay_store::snapshot::Snapshot;
use belay_store::{ObjectId, Repo};
use belay_suite::cli::{belay, belay_bin, belay_json};
use belay_suite::fsutil::assert_same_tree;

fn backup(repo: &Path, cache: &Path, src: &Path) -> serde_json::Value {
    let out = belay(repo)
        .env("BELAY_CACHE_DIR", cache)
        .args(["--json", "backup"])
        .arg(src)
        .args(["--name", "src", "--allow-empty"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A gc that deletes an object the cache knows bumps the generation, so the
/// next backup stores that content again instead of trusting the cache.
#[test]
fn gc_generation_invalidates_known_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, repo, cache) = (
        tmp.path().join("src"),
        tmp.path().join("repo"),
        tmp.path().join("cache"),
    );
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("keep.py"), b"print('keep')\n".repeat(40)).unwrap();
    fs::write(src.join("gone.py"), b"print('gone')\n".repeat(40)).unwrap();
    belay(&repo).arg("init").assert().success();
    backup(&repo, &cache, &src);
    let gone = fs::read(src.join("gone.py")).unwrap();
    let chunk = ObjectId::compute(ObjectKind::Chunk, &gone);
    fs::remove_file(src.join("gone.py")).unwrap();
    backup(&repo, &cache, &src);
    // Forget the first snapshot and collect: gone.py's chunk is deleted.
    belay(&repo)
        .env("BELAY_CACHE_DIR", &cache)
        .args(["-q", "forget", "--keep-last", "1"])
        .assert()
        .success();
    belay(&repo)
        .env("BELAY_CACHE_DIR", &cache)
        .args(["-q", "gc", "--now"])
        .assert()
        .success();
    let r = Repo::open(&repo).unwrap();
    assert!(!r.has_object(&chunk), "gc should have deleted the chunk");
    // The same content comes back: it must be stored again.
    fs::write(src.join("gone.py"), &gone).unwrap();
    let rep = backup(&repo, &cache, &src);
    assert!(rep["objects_added"].as_u64().unwrap() >= 2, "{rep}");
    assert!(
        r.has_object(&chunk),
        "the cache made backup skip a deleted object"
    );
    let out = tmp.path().join("out");
    belay(&repo)
        .args(["-q", "restore", "src", "--to"])
        .arg(&out)
        .assert()
        .success();
    assert_same_tree(&src, &out);
}

/// Deleting the cache costs only speed: the next backups give the same
/// snapshots' trees.
#[test]
fn deleting_the_cache_changes_nothing_but_speed() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, repo, cache) = (
        tmp.path().join("src"),
        tmp.path().join("repo"),
        tmp.path().join("cache"),
    );
    for i in 0..40 {
        let d = src.join(format!("d{}", i % 4));
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join(format!("f{i}.py")),
            format!("x = {i}\n").repeat(i + 1),
        )
        .unwrap();
    }
    belay(&repo).arg("init").assert().success();
    let a = backup(&repo, &cache, &src);
    let b = backup(&repo, &cache, &src);
    assert_eq!(b["files_read"], 0);
    fs::remove_dir_all(&cache).unwrap();
    let c = backup(&repo, &cache, &src);
    // Without the cache the parent's trees are read; nothing is re-read.
    assert_eq!(c["files_read"], 0);
    assert_eq!(c["objects_added"], 1, "only the snapshot is new: {c}");
    let d = backup(&repo, &cache, &src);
    assert_eq!(d["objects_added"], 1);
    let tree = |s: &serde_json::Value| {
        let v = belay_json(&repo, &["show", s["snapshot"].as_str().unwrap()]);
        v["tree"].clone()
    };
    assert_eq!(tree(&a), tree(&b));
    assert_eq!(tree(&a), tree(&c));
    assert_eq!(tree(&a), tree(&d));
}

/// `log` over 10,000 snapshots opens no object once the catalogue holds
/// them (counted with strace when it is installed).
#[test]
fn log_reads_only_the_catalogue() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo_dir, cache) = (tmp.path().join("repo"), tmp.path().join("cache"));
    let repo = Repo::init(&repo_dir).unwrap();
    let tree = repo
        .write_tree(&belay_store::tree::Tree { entries: vec![] })
        .unwrap()
        .0;
    let n = 10_000;
    let mut parent = None;
    for i in 0..n {
        let snap = Snapshot {
            tree,
            parents: parent.into_iter().collect(),
            time_ns: 1_700_000_000_000_000_000 + i as i64 * 1_000_000_000,
            source: "many".into(),
            location: "dir:/many".into(),
            host: "h".into(),
            user: "u".into(),
            message: format!("snapshot {i}"),
            meta: vec![],
            device: vec![],
            chunker: repo.chunker(),
            summary: Default::default(),
        };
        let (id, _) = repo
            .write_object(ObjectKind::Snapshot, &snap.encode())
            .unwrap();
        // Markers are empty files (docs/format.md §6); written directly to
        // keep the test fast.
        fs::write(repo_dir.join("snapshots").join(id.to_hex()), b"").unwrap();
        parent = Some(id);
    }
    repo.flush().unwrap();
    repo.write_ref(belay_store::repo::RefKind::Head, "many", &parent.unwrap())
        .unwrap();
    let log = |traced: Option<&Path>| -> Vec<u8> {
        let mut c = match traced {
            Some(t) => {
                let mut c = Command::new("strace");
                c.args(["-f", "-qq", "-e", "trace=open,openat", "-o"])
                    .arg(t)
                    .arg(belay_bin());
                c
            }
            None => Command::new(belay_bin()),
        };
        let out = c
            .arg("-r")
            .arg(&repo_dir)
            .args(["log", "--oneline"])
            .env("BELAY_CACHE_DIR", &cache)
            .env_remove("BELAY_NO_CACHE")
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let first = log(None);
    assert_eq!(first.iter().filter(|&&b| b == b'\n').count(), n);
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("SKIPPED the syscall count: strace is not installed (tests/setup.sh)");
        return;
    }
    let trace = tmp.path().join("trace.txt");
    let second = log(Some(&trace));
    assert_eq!(first, second);
    let objects = format!("{}/objects/", repo_dir.display());
    let opened = fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| l.contains(&objects) && !l.contains("= -1 "))
        .count();
    assert_eq!(opened, 0, "log opened {opened} objects");
}
