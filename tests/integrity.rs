//! A backup never commits a snapshot that references an object the
//! repository lacks (issue 16): not after the repository was copied or
//! rolled back behind the local cache's back, not after an object was
//! deleted or damaged by hand; backing up again repairs what the source
//! still has.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use belay_suite::cli::belay;
use belay_suite::fsutil::{assert_same_tree, noise};
use serde_json::Value;

/// A scratch area with its own cache directory.
struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    cache: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        Env {
            cache: root.join("cache"),
            root,
            _tmp: tmp,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p)
    }

    fn cmd(&self, repo: &Path, args: &[&str]) -> assert_cmd::Command {
        let mut c = belay(repo);
        c.env("BELAY_CACHE_DIR", &self.cache)
            .env_remove("BELAY_NO_CACHE")
            .args(args);
        c
    }

    fn json(&self, repo: &Path, args: &[&str]) -> Value {
        let out = self.cmd(repo, &["--json"]).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "belay {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON on stdout")
    }

    fn init(&self, name: &str) -> PathBuf {
        let repo = self.path(name);
        self.cmd(&repo, &["init"]).assert().success();
        repo
    }

    /// A format-1 repository: one file per object, so one chunk can be
    /// lost on its own (in format 2 a pack holds trees too).
    fn init_v1(&self, name: &str) -> PathBuf {
        let repo = self.path(name);
        self.cmd(&repo, &["init", "--format", "1"])
            .assert()
            .success();
        repo
    }

    fn backup(&self, repo: &Path, src: &Path, name: &str) -> Value {
        self.json(repo, &["backup", src.to_str().unwrap(), "--name", name])
    }

    /// `check --read-data` passes, and the latest snapshot of `name`
    /// restores to exactly `src`.
    fn assert_intact(&self, repo: &Path, name: &str, src: &Path) {
        let out = self.cmd(repo, &["check", "--read-data"]).output().unwrap();
        assert!(
            out.status.success(),
            "check of {} failed:\n{}{}",
            repo.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let dst = self.path(&format!("restored-{}", rand_suffix()));
        self.cmd(repo, &["restore", name, "--to", dst.to_str().unwrap()])
            .assert()
            .success();
        assert_same_tree(src, &dst);
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

fn tree(src: &Path) {
    fs::create_dir_all(src.join("lib")).unwrap();
    fs::write(src.join("main.py"), "print('hi')\n".repeat(40)).unwrap();
    fs::write(src.join("lib/big.bin"), noise(200_000, 1)).unwrap();
    fs::write(src.join("lib/small.txt"), "small\n").unwrap();
}

fn cp_a(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn a_copied_repository_gets_every_object_its_snapshot_needs() {
    let env = Env::new();
    let src = env.path("src");
    tree(&src);
    let a = env.init("a");
    env.backup(&a, &src, "proj");
    let b = env.path("b");
    cp_a(&a, &b);
    // New content goes into A first: the cache (keyed by the repository
    // id, which B shares) now vouches for chunks B never received.
    fs::write(src.join("new.bin"), noise(100_000, 2)).unwrap();
    fs::write(src.join("main.py"), "print('changed')\n".repeat(40)).unwrap();
    env.backup(&a, &src, "proj");
    env.backup(&b, &src, "proj");
    env.assert_intact(&b, "proj", &src);
    env.assert_intact(&a, "proj", &src);
}

#[test]
fn a_rolled_back_repository_gets_every_object_its_snapshot_needs() {
    let env = Env::new();
    let src = env.path("src");
    tree(&src);
    let a = env.init("a");
    env.backup(&a, &src, "proj");
    let saved = env.path("a.saved");
    cp_a(&a, &saved);
    fs::write(src.join("new.bin"), noise(100_000, 3)).unwrap();
    env.backup(&a, &src, "proj");
    // Put the old copy back in place (a restore from yesterday's backup
    // of the disk: same directory, older contents), then back up the same
    // content again.
    for e in fs::read_dir(&a).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            fs::remove_dir_all(&p).unwrap();
        } else {
            fs::remove_file(&p).unwrap();
        }
    }
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", saved.display()))
        .arg(&a)
        .status()
        .unwrap();
    assert!(st.success());
    env.backup(&a, &src, "proj");
    env.assert_intact(&a, "proj", &src);
}

#[test]
fn a_deleted_chunk_is_stored_again_by_the_next_backup() {
    // Format 2 loses a pack (chunks and trees): the old snapshot is whole
    // again when the source still has the same tree; format 1 loses only
    // chunks, so a touched source repairs it too.
    for (format, no_cache, touch) in [
        ("1", false, false),
        ("1", false, true),
        ("1", true, false),
        ("1", true, true),
        ("2", false, false),
        ("2", true, false),
    ] {
        let env = Env::new();
        let src = env.path("src");
        tree(&src);
        let repo = if format == "1" {
            env.init_v1("repo")
        } else {
            env.init("repo")
        };
        env.backup(&repo, &src, "proj");
        belay_suite::objects::remove_chunks(&repo);
        if touch {
            for f in ["main.py", "lib/big.bin", "lib/small.txt"] {
                let p = src.join(f);
                let data = fs::read(&p).unwrap();
                fs::write(&p, data).unwrap();
            }
        }
        let mut c = env.cmd(&repo, &["backup", src.to_str().unwrap(), "--name", "proj"]);
        if no_cache {
            c.env("BELAY_NO_CACHE", "1");
        }
        c.assert().success();
        env.assert_intact(&repo, "proj", &src);
    }
}

#[test]
fn a_damaged_chunk_found_by_check_is_replaced_by_the_next_backup() {
    let env = Env::new();
    let src = env.path("src");
    tree(&src);
    let repo = env.init("repo");
    env.backup(&repo, &src, "proj");
    belay_suite::objects::damage_chunks(&repo);
    env.cmd(&repo, &["check", "--read-data"]).assert().code(3);
    env.backup(&repo, &src, "proj");
    env.assert_intact(&repo, "proj", &src);
}

/// Rewrite `path` with `data` (same size) and give it back its old mtime,
/// as `cp -p` or `rsync -t` of a same-size file do.
fn rewrite_keeping_mtime(path: &Path, data: &[u8]) {
    let old = fs::metadata(path).unwrap().modified().unwrap();
    assert_eq!(fs::metadata(path).unwrap().len(), data.len() as u64);
    fs::write(path, data).unwrap();
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

#[test]
fn a_same_size_rewrite_that_keeps_the_mtime_is_backed_up() {
    let env = Env::new();
    let src = env.path("src");
    tree(&src);
    let repo = env.init("repo");
    env.backup(&repo, &src, "proj");
    env.backup(&repo, &src, "proj");
    rewrite_keeping_mtime(&src.join("lib/small.txt"), b"SMALL\n");
    let big = src.join("lib/big.bin");
    rewrite_keeping_mtime(&big, &noise(200_000, 9));
    let out = env.backup(&repo, &src, "proj");
    assert_eq!(out["files_read"], 2, "{out}");
    env.assert_intact(&repo, "proj", &src);
}

#[test]
fn two_folders_under_one_name_are_compared_by_content() {
    let env = Env::new();
    let one = env.path("one/proj");
    tree(&one);
    let two = env.path("two/proj");
    fs::create_dir_all(env.path("two")).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(&one)
        .arg(&two)
        .status()
        .unwrap();
    assert!(st.success());
    rewrite_keeping_mtime(&two.join("main.py"), "print('HI')\n".repeat(40).as_bytes());
    let repo = env.init("repo");
    env.backup(&repo, &one, "proj");
    // The user chose to continue one folder's history with the other.
    env.backup(&repo, &two, "proj");
    env.assert_intact(&repo, "proj", &two);
}

#[test]
fn a_second_folder_with_the_same_name_does_not_continue_the_first_ones_history() {
    let env = Env::new();
    let one = env.path("one/proj");
    tree(&one);
    let two = env.path("two/proj");
    tree(&two);
    fs::write(two.join("main.py"), "print('other')\n").unwrap();
    let repo = env.init("repo");
    let first = env.json(&repo, &["backup", one.to_str().unwrap()]);
    assert_eq!(first["source"], "proj");
    let out = env
        .cmd(&repo, &["backup", two.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--name two-proj") && err.contains(&*one.to_string_lossy()),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    // Nothing was committed; the first folder keeps its history.
    let log = env.json(&repo, &["log"]);
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    let again = env.json(&repo, &["backup", one.to_str().unwrap()]);
    assert_eq!(again["source"], "proj");
    assert_eq!(again["parent"], first["snapshot"]);
    // --name chooses.
    let second = env.json(
        &repo,
        &["backup", two.to_str().unwrap(), "--name", "two-proj"],
    );
    assert_eq!(second["source"], "two-proj");
    assert!(second["parent"].is_null());
    env.assert_intact(&repo, "two-proj", &two);
    env.assert_intact(&repo, "proj", &one);
}

fn log_ids(env: &Env, repo: &Path) -> usize {
    env.json(repo, &["log"]).as_array().unwrap().len()
}

#[test]
fn one_bad_ref_or_missing_snapshot_does_not_stop_log_stats_or_gc() {
    let env = Env::new();
    let src = env.path("src");
    tree(&src);
    let repo = env.init("repo");
    env.backup(&repo, &src, "good");
    let other = env.backup(&repo, &src, "other");
    env.cmd(&repo, &["tag", "t", "good"]).assert().success();
    // A garbage head, a garbage tag, and a marker whose snapshot object is
    // gone.
    fs::write(repo.join("refs/heads/broken"), "not an id\n").unwrap();
    fs::write(repo.join("refs/tags/junk"), "").unwrap();
    let sid = other["snapshot"].as_str().unwrap();
    fs::remove_file(
        repo.join("objects")
            .join(&sid[0..2])
            .join(&sid[2..4])
            .join(sid),
    )
    .unwrap();
    for args in [
        vec!["log"],
        vec!["log", "--oneline"],
        vec!["stats"],
        vec!["gc", "--now"],
    ] {
        let out = env
            .cmd(&repo, &[])
            .env("BELAY_NO_CACHE", "1")
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "belay {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("warning"),
            "belay {args:?} said nothing: {err}"
        );
    }
    assert!(log_ids(&env, &repo) >= 1);
    // What is left is still whole, and check names the damage.
    env.cmd(
        &repo,
        &["restore", "good", "--to", env.path("out").to_str().unwrap()],
    )
    .assert()
    .success();
    env.cmd(&repo, &["check"]).assert().code(3);
}

#[test]
fn check_read_data_fails_a_file_whose_chunks_do_not_hold_its_hash() {
    use belay_store::object::ObjectKind;
    use belay_store::tree::{Node, Tree, TreeEntry};
    let env = Env::new();
    let repo_path = env.init("repo");
    let repo = belay_store::Repo::open(&repo_path).unwrap();
    let (chunk, _) = repo
        .write_object(ObjectKind::Chunk, b"real bytes\n")
        .unwrap();
    let tree = Tree {
        entries: vec![TreeEntry {
            name: b"f.txt".to_vec(),
            mode: 0o644,
            mtime_ns: Some(1),
            node: Node::File {
                size: 11,
                sha256: [7u8; 32],
                chunks: vec![chunk],
            },
        }],
    };
    belay_suite::handmade::commit_tree(&repo, "lies", &tree);
    repo.flush().unwrap();
    env.cmd(&repo_path, &["check"]).assert().success();
    let out = env
        .cmd(&repo_path, &["check", "--read-data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hash-mismatch") && text.contains("f.txt"),
        "{text}"
    );
}

/// Spawn a backup of `src` into `repo` that stops at `point` (test hook in
/// store/src/session.rs); returns the child once it is there.
fn paused_backup(env: &Env, repo: &Path, src: &Path, point: &str) -> std::process::Child {
    let pause = env.path(&format!("pause-{}", rand_suffix()));
    fs::create_dir_all(&pause).unwrap();
    let child = Command::new(belay_suite::cli::belay_bin())
        .arg("-r")
        .arg(repo)
        .args(["backup", src.to_str().unwrap(), "--name", "p"])
        .env("BELAY_CACHE_DIR", &env.cache)
        .env("BELAY_TEST_PAUSE_AT", point)
        .env("BELAY_TEST_PAUSE_DIR", &pause)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while !pause.join(format!("{point}.reached")).exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

fn sessions(repo: &Path) -> usize {
    fs::read_dir(repo.join("sessions"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_signal_ends_a_backup_with_a_message_and_removes_its_session() {
    let env = Env::new();
    let src = env.path("src");
    tree(&src);
    let repo = env.init("repo");
    for (sig, code) in [
        (libc::SIGINT, 130),
        (libc::SIGTERM, 143),
        (libc::SIGHUP, 129),
    ] {
        let child = paused_backup(&env, &repo, &src, "backup-started");
        assert_eq!(sessions(&repo), 1);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "signal {sig}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("interrupted"), "{err}");
        assert_eq!(sessions(&repo), 0, "the session file is left");
        assert!(!repo.join("refs/heads/p").exists());
    }
}

#[test]
fn unlock_removes_what_no_live_belay_holds() {
    let env = Env::new();
    let src = env.path("src");
    tree(&src);
    let repo = env.init("repo");
    // A gc lock naming a process of this host that runs (a reused pid):
    // gc refuses and says how to unlock; `unlock` keeps it, `--remove-all`
    // removes it, and gc runs.
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let lock = serde_json::json!({
        "kind": "gc", "host": belay_store::session::hostname(),
        "pid": sleeper.id(), "started": "2026-01-01T00:00:00Z", "source": ""
    });
    // (On object storage `init` makes no directories.)
    fs::create_dir_all(repo.join("locks")).unwrap();
    fs::write(repo.join("locks/gc.json"), lock.to_string()).unwrap();
    let out = env.cmd(&repo, &["gc", "--now"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("belay unlock"));
    let out = env.json(&repo, &["unlock"]);
    assert_eq!(out["kept"].as_array().unwrap().len(), 1, "{out}");
    assert!(repo.join("locks/gc.json").exists());
    let out = env.json(&repo, &["unlock", "--remove-all"]);
    assert_eq!(out["removed"].as_array().unwrap().len(), 1, "{out}");
    env.cmd(&repo, &["gc", "--now"]).assert().success();
    // A dead gc's lock: unlock removes it.
    let dead = serde_json::json!({
        "kind": "gc", "host": belay_store::session::hostname(),
        "pid": i32::MAX as u32 - 7, "started": "2026-01-01T00:00:00Z", "source": ""
    });
    fs::create_dir_all(repo.join("locks")).unwrap();
    fs::write(repo.join("locks/gc.json"), dead.to_string()).unwrap();
    let out = env.json(&repo, &["unlock"]);
    assert_eq!(out["removed"].as_array().unwrap().len(), 1, "{out}");
    assert!(!repo.join("locks/gc.json").exists());
    // A running backup's session is kept unless --remove-all.
    let child = paused_backup(&env, &repo, &src, "backup-started");
    let out = env.json(&repo, &["unlock"]);
    assert_eq!(out["kept"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(sessions(&repo), 1);
    let out = env.json(&repo, &["unlock", "--remove-all"]);
    assert_eq!(out["removed"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(sessions(&repo), 0);
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    child.wait_with_output().unwrap();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

#[test]
fn gc_runs_on_a_disk_the_first_backup_filled() {
    let big = noise(3 << 20, 11);
    for size_k in [420, 500, 600, 700] {
        let env = Env::new();
        let mnt = env.path("small");
        let Some(_disk) = belay_suite::fsutil::small_tmpfs(&mnt, size_k) else {
            return;
        };
        let repo = mnt.join("repo");
        env.cmd(&repo, &["init"]).assert().success();
        let src = env.path("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("big.bin"), &big).unwrap();
        let out = env
            .cmd(&repo, &["backup", src.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "tmpfs {size_k}k");
        let out = env.cmd(&repo, &["gc", "--now"]).output().unwrap();
        assert!(
            out.status.success(),
            "gc on a full tmpfs of {size_k}k failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::remove_file(src.join("big.bin")).unwrap();
        fs::write(src.join("small.txt"), "fits\n").unwrap();
        env.cmd(&repo, &["backup", src.to_str().unwrap()])
            .assert()
            .success();
    }
}

#[test]
fn repair_stores_again_what_a_folder_still_has_and_names_what_is_lost() {
    let env = Env::new();
    let src = env.path("src");
    tree(&src);
    fs::write(src.join("gone.bin"), noise(30_000, 4)).unwrap();
    let repo = env.init_v1("repo");
    let first = env.backup(&repo, &src, "proj");
    fs::remove_file(src.join("gone.bin")).unwrap();
    env.backup(&repo, &src, "proj");
    belay_suite::objects::remove_chunks(&repo);
    // Nothing to repair from: everything is reported lost.
    let out = env.cmd(&repo, &["--json", "repair"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!v["lost"].as_array().unwrap().is_empty(), "{v}");
    // From the folder: everything it still has comes back; gone.bin of the
    // first snapshot is lost, named with its snapshot.
    let out = env
        .cmd(&repo, &["--json", "repair", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lost = v["lost"].as_array().unwrap();
    assert_eq!(lost.len(), 1, "{v}");
    assert_eq!(lost[0]["path"], "gone.bin");
    assert_eq!(lost[0]["snapshot"], first["snapshot"]);
    assert!(v["restored"].as_u64().unwrap() >= 3, "{v}");
    env.cmd(
        &repo,
        &["restore", "proj", "--to", env.path("out").to_str().unwrap()],
    )
    .assert()
    .success();
    assert_same_tree(&src, &env.path("out"));
}

fn board_image(dir: &Path) {
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::write(dir.join("main.py"), "import lib.util\nprint('ok')\n").unwrap();
    fs::write(dir.join("lib/util.py"), "X = 1\n".repeat(500)).unwrap();
    fs::write(dir.join("lib/data.bin"), noise(40_000, 12)).unwrap();
}

#[test]
fn a_board_backup_stores_again_a_chunk_the_repository_lost() {
    use belay_suite::board::{BoardOptions, TestBoard};
    let env = Env::new();
    let img = env.path("img");
    board_image(&img);
    let board = TestBoard::start(&img, &BoardOptions::unthrottled());
    let port = format!("serial:{}", board.path().display());
    let repo = env.init_v1("repo");
    env.json(&repo, &["backup", &port]);
    for (i, extra) in [vec![], vec!["--no-hash"]].iter().enumerate() {
        belay_suite::objects::remove_chunks(&repo);
        let mut c = env.cmd(&repo, &["--json", "backup", &port]);
        c.args(extra);
        if i == 1 {
            c.env("BELAY_NO_CACHE", "1");
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        env.cmd(&repo, &["check", "--read-data"]).assert().success();
    }
    // repair from the board, after losing them once more.
    belay_suite::objects::remove_chunks(&repo);
    let v = env.json(&repo, &["repair", &port]);
    assert!(v["lost"].as_array().unwrap().is_empty(), "{v}");
    env.cmd(&repo, &["check", "--read-data"]).assert().success();
    let dst = env.path("out");
    env.cmd(
        &repo,
        &[
            "restore",
            &board_source_name(&env, &repo),
            "--to",
            dst.to_str().unwrap(),
        ],
    )
    .assert()
    .success();
    assert_same_content(&img, &dst);
}

fn board_source_name(env: &Env, repo: &Path) -> String {
    env.json(repo, &["log"])[0]["source"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Same paths and bytes (boards keep no modes or settable times).
fn assert_same_content(a: &Path, b: &Path) {
    let da = belay_suite::fsutil::describe(a);
    let db = belay_suite::fsutil::describe(b);
    let keys = |d: &std::collections::BTreeMap<Vec<u8>, belay_suite::fsutil::Snap>| {
        d.keys().cloned().collect::<Vec<_>>()
    };
    assert_eq!(keys(&da), keys(&db));
    for (k, v) in &da {
        if let (
            belay_suite::fsutil::Snap::File {
                content_hash: x, ..
            },
            belay_suite::fsutil::Snap::File {
                content_hash: y, ..
            },
        ) = (v, &db[k])
        {
            assert_eq!(x, y, "{}", String::from_utf8_lossy(k));
        }
    }
}
