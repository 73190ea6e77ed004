//! End-to-end tests of folder backup and restore through the real binary.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use belay_suite as support;
use belay_suite::cli::{belay, belay_json};
use belay_suite::fsutil::{assert_same_tree, noise, set_mtime};
use predicates::prelude::*;
use proptest::prelude::*;

fn init(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    belay(&repo).arg("init").assert().success();
    repo
}

fn backup(repo: &Path, src: &Path, name: &str) -> serde_json::Value {
    belay_json(repo, &["backup", src.to_str().unwrap(), "--name", name])
}

fn restore_to(repo: &Path, rev: &str, to: &Path) {
    belay(repo)
        .args(["restore", rev, "--to"])
        .arg(to)
        .assert()
        .success();
}

fn all_object_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo.join("objects")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A tree with every kind of entry a user has.
fn rich_tree(root: &Path) {
    fs::create_dir_all(root.join("lib/deep/er/still/deeper")).unwrap();
    fs::create_dir_all(root.join("empty dir")).unwrap();
    fs::write(root.join("main.py"), "import lib\nprint('hi')\n").unwrap();
    fs::write(root.join("empty.txt"), "").unwrap();
    fs::write(root.join("ünïcode naïve ☃.py"), "x = 1\n").unwrap();
    fs::write(
        root.join("lib/deep/er/still/deeper/leaf.bin"),
        noise(70_000, 3),
    )
    .unwrap();
    fs::write(
        root.join("lib/all-bytes.bin"),
        (0..=255u8).collect::<Vec<_>>(),
    )
    .unwrap();
    fs::write(root.join("run.sh"), "#!/bin/sh\necho run\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("main.py", root.join("link-to-main")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
    set_mtime(&root.join("main.py"), 1_600_000_000_123_456_789);
}

#[test]
fn rich_tree_round_trips_byte_identical_with_mtimes_and_modes() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let src = t.path().join("src");
    rich_tree(&src);
    let out = backup(&repo, &src, "rich");
    assert_eq!(out["files"], 6);
    assert_eq!(out["symlinks"], 2);
    let dst = t.path().join("dst");
    restore_to(&repo, "rich", &dst);
    assert_same_tree(&src, &dst);
}

#[test]
fn a_20_mb_file_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let mut big = noise(20 << 20, 99);
    // Half compressible, so both object encodings are exercised.
    for b in &mut big[..10 << 20] {
        *b &= 0x0f;
    }
    fs::write(src.join("big.bin"), &big).unwrap();
    backup(&repo, &src, "big");
    let dst = t.path().join("dst");
    restore_to(&repo, "big", &dst);
    assert_same_tree(&src, &dst);
}

#[derive(Debug, Clone)]
enum Item {
    File(Vec<u8>),
    Dir(Vec<(String, Item)>),
}

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}",
        "[a-z]{1,4} [A-Z]{1,4}",
        "[äöü☃日本é]{1,3}[a-z]{0,3}",
        "\\.[a-z]{1,5}",
    ]
}

fn arb_item() -> impl Strategy<Value = Item> {
    let leaf = prop_oneof![
        Just(Item::File(Vec::new())),
        "[ -~\n]{0,300}".prop_map(|s| Item::File(s.into_bytes())),
        prop::collection::vec(any::<u8>(), 0..3000).prop_map(Item::File),
        (1usize..200_000, any::<u64>()).prop_map(|(n, s)| Item::File(noise(n, s | 1))),
    ];
    leaf.prop_recursive(6, 40, 6, |inner| {
        prop::collection::vec((arb_name(), inner), 0..6).prop_map(Item::Dir)
    })
}

fn materialize(path: &Path, item: &Item, mtime: &mut i64) {
    match item {
        Item::File(data) => {
            fs::write(path, data).unwrap();
            *mtime += 1_000_000_007;
            set_mtime(path, *mtime);
        }
        Item::Dir(children) => {
            fs::create_dir_all(path).unwrap();
            let mut seen = std::collections::HashSet::new();
            for (name, child) in children {
                if seen.insert(name.clone()) {
                    materialize(&path.join(name), child, mtime);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]
    #[test]
    fn random_trees_round_trip(children in prop::collection::vec((arb_name(), arb_item()), 0..8)) {
        let t = tempfile::tempdir().unwrap();
        let repo = init(t.path());
        let src = t.path().join("src");
        let mut mtime = 1_500_000_000_000_000_000;
        materialize(&src, &Item::Dir(children), &mut mtime);
        backup(&repo, &src, "prop");
        let dst = t.path().join("dst");
        restore_to(&repo, "prop", &dst);
        assert_same_tree(&src, &dst);
    }
}

#[test]
fn same_tree_again_or_under_another_name_adds_only_the_snapshot() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let src = t.path().join("src");
    rich_tree(&src);
    let first = backup(&repo, &src, "a");
    assert!(first["bytes_added"].as_u64().unwrap() > 70_000);
    // Under another name: only the new snapshot is added.
    let other = backup(&repo, &src, "b");
    assert!(other["bytes_added"].as_u64().unwrap() < 1024, "{other}");
    assert_eq!(other["objects_added"], 1, "{other}");
    // An unchanged re-backup of the same source reads no file and, as git
    // without --allow-empty, adds no snapshot: it names the latest one.
    let again = backup(&repo, &src, "a");
    assert_eq!(again["bytes_read"], 0);
    assert_eq!(again["files_read"], 0);
    assert_eq!(again["unchanged"], true, "{again}");
    assert_eq!(again["snapshot"], first["snapshot"]);
    assert_eq!(again["objects_added"], 0, "{again}");
    let forced = belay_json(
        &repo,
        &[
            "backup",
            src.to_str().unwrap(),
            "--name",
            "a",
            "--allow-empty",
        ],
    );
    assert_eq!(forced["unchanged"], false);
    assert_eq!(forced["parent"], first["snapshot"]);
    assert_eq!(forced["objects_added"], 1, "{forced}");
}

#[test]
fn ten_bytes_changed_in_a_16_mb_file_add_at_most_3_chunks() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let mut data = noise(16 << 20, 7);
    fs::write(src.join("f.bin"), &data).unwrap();
    backup(&repo, &src, "edit");
    let before = support::objects::count_by_kind(&repo);
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + 10] {
        *b = !*b;
    }
    fs::write(src.join("f.bin"), &data).unwrap();
    let out = backup(&repo, &src, "edit");
    let after = support::objects::count_by_kind(&repo);
    let new_chunks = after[1] - before[1];
    assert!(
        (1..=3).contains(&new_chunks),
        "{new_chunks} new chunks: {out}"
    );
    let dst = t.path().join("dst");
    restore_to(&repo, "edit", &dst);
    assert_eq!(fs::read(dst.join("f.bin")).unwrap(), data);
}

#[test]
fn a_flipped_byte_is_found_and_the_object_named() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), "hello world\n".repeat(100)).unwrap();
    backup(&repo, &src, "c");
    let chunk = support::objects::first_of_kind(&repo, 1);
    chunk.flip_last_byte();
    let name = chunk.hex();
    belay(&repo)
        .args(["cat", "c:a.txt"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(&name));
    belay(&repo)
        .args(["restore", "c", "--to"])
        .arg(t.path().join("dst"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains(&name));
    // Nothing half-written is left under the final name.
    assert!(!t.path().join("dst/a.txt").exists());
}

#[test]
fn a_truncated_object_is_found_and_named() {
    // Format 1: a torn loose file; format 2: a pack cut in the middle of
    // its last envelope.
    for format in ["1", "2"] {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        belay(&repo)
            .args(["init", "--format", format])
            .assert()
            .success();
        let src = t.path().join("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("a.bin"), noise(5000, 5)).unwrap();
        backup(&repo, &src, "c");
        let chunk = support::objects::first_of_kind(&repo, 1);
        // The last envelope of the file, so the cut damages only it.
        let victim = support::objects::places(&repo)
            .into_iter()
            .rfind(|p| p.file == chunk.file)
            .unwrap();
        victim.truncate_half();
        let name = victim.hex();
        belay(&repo)
            .args(["cat", "c:a.bin"])
            .assert()
            .code(3)
            .stderr(predicate::str::contains(&name).and(predicate::str::contains("truncated")));
        // A new backup of the same content repairs the torn object.
        let again = backup(&repo, &src, "other");
        if format == "1" {
            assert_eq!(again["objects_added"], 2, "{again}"); // the chunk + snapshot
        } else {
            assert!(again["objects_added"].as_u64().unwrap() >= 2, "{again}");
        }
        belay(&repo).args(["cat", "c:a.bin"]).assert().success();
    }
}

#[test]
fn half_written_temp_files_are_ignored() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), "content\n").unwrap();
    backup(&repo, &src, "s");
    let obj_dir = all_object_files(&repo)[0].parent().unwrap().to_path_buf();
    fs::write(obj_dir.join(".tmp-abandoned"), b"BELY\x01\x01").unwrap();
    fs::write(repo.join("snapshots/.tmp-xyz"), b"").unwrap();
    fs::write(repo.join("refs/heads/.tmp-q"), b"garbage").unwrap();
    belay(&repo).args(["log"]).assert().success();
    let dst = t.path().join("dst");
    restore_to(&repo, "s", &dst);
    assert_eq!(fs::read(dst.join("a.txt")).unwrap(), b"content\n");
    fs::write(src.join("b.txt"), "more\n").unwrap();
    backup(&repo, &src, "s");
}

#[test]
fn excludes_and_belayignore_are_honoured() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let src = t.path().join("src");
    fs::create_dir_all(src.join("build")).unwrap();
    fs::create_dir_all(src.join("lib")).unwrap();
    fs::write(src.join("main.py"), "x").unwrap();
    fs::write(src.join("lib/a.pyc"), "x").unwrap();
    fs::write(src.join("lib/a.py"), "x").unwrap();
    fs::write(src.join("build/out.bin"), "x").unwrap();
    fs::write(src.join("secret.key"), "x").unwrap();
    fs::write(src.join(".belayignore"), "*.key\n").unwrap();
    belay(&repo)
        .args([
            "backup",
            src.to_str().unwrap(),
            "--exclude",
            "*.pyc",
            "--exclude",
            "/build",
        ])
        .assert()
        .success();
    let out = belay(&repo).args(["ls", "src", "-R"]).output().unwrap();
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(listing.contains("lib/a.py\n"), "{listing}");
    assert!(listing.contains("main.py"), "{listing}");
    for gone in ["a.pyc", "build", "secret.key"] {
        assert!(!listing.contains(gone), "{gone} in {listing}");
    }
}

#[test]
fn special_files_are_skipped_with_a_warning() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), "x").unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(src.join("pipe"))
        .status()
        .unwrap();
    assert!(status.success());
    belay(&repo)
        .args(["backup", src.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("special file").and(predicate::str::contains("pipe")));
    belay(&repo)
        .args(["ls", "src"])
        .assert()
        .stdout(predicate::str::contains("a.txt").and(predicate::str::contains("pipe").not()));
}

/// Run belay as an unprivileged user, so that permission bits apply even
/// when the tests run as root.
fn belay_as_nobody(repo: &Path) -> std::process::Command {
    let mut c = if unsafe_is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(belay_suite::cli::belay_bin());
        c
    } else {
        std::process::Command::new(belay_suite::cli::belay_bin())
    };
    c.arg("-r").arg(repo).env_remove("BELAY_REPO");
    c
}

fn unsafe_is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn unreadable_files_fail_the_backup_unless_skipped() {
    let t = tempfile::tempdir().unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let repo = t.path().join("repo");
    let status = belay_as_nobody(&repo).arg("init").status().unwrap();
    assert!(status.success());
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(src.join("ok.txt"), "fine").unwrap();
    fs::write(src.join("locked.txt"), "secret").unwrap();
    fs::set_permissions(src.join("ok.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(src.join("locked.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    let out = belay_as_nobody(&repo)
        .args(["backup", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked.txt"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        fs::read_dir(repo.join("snapshots"))
            .unwrap()
            .next()
            .is_none()
    );
    let out = belay_as_nobody(&repo)
        .args(["backup", src.to_str().unwrap(), "--skip-unreadable"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked.txt"));
}

#[test]
fn restore_refuses_a_non_empty_target_unless_forced_and_never_deletes() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), "new").unwrap();
    backup(&repo, &src, "s");
    let dst = t.path().join("dst");
    fs::create_dir_all(&dst).unwrap();
    fs::write(dst.join("a.txt"), "old").unwrap();
    fs::write(dst.join("mine.txt"), "keep me").unwrap();
    belay(&repo)
        .args(["restore", "s", "--to"])
        .arg(&dst)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not empty").and(predicate::str::contains("--force")));
    assert_eq!(fs::read(dst.join("a.txt")).unwrap(), b"old");
    belay(&repo)
        .args(["restore", "s", "--force", "--to"])
        .arg(&dst)
        .assert()
        .success();
    assert_eq!(fs::read(dst.join("a.txt")).unwrap(), b"new");
    assert_eq!(fs::read(dst.join("mine.txt")).unwrap(), b"keep me");
}

#[test]
fn restore_never_writes_through_a_symlink_in_the_target() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let src = t.path().join("src");
    fs::create_dir_all(src.join("lib")).unwrap();
    fs::write(src.join("lib/x.py"), "x").unwrap();
    backup(&repo, &src, "s");
    let outside = t.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let dst = t.path().join("dst");
    fs::create_dir_all(&dst).unwrap();
    std::os::unix::fs::symlink(&outside, dst.join("lib")).unwrap();
    belay(&repo)
        .args(["restore", "s", "--force", "--to"])
        .arg(&dst)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("lib"));
    assert!(
        fs::read_dir(&outside).unwrap().next().is_none(),
        "wrote outside the target"
    );
}

#[test]
fn include_globs_and_sub_paths_select_what_is_restored() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let src = t.path().join("src");
    rich_tree(&src);
    let dst = t.path().join("dst");
    backup(&repo, &src, "s");
    belay(&repo)
        .args(["restore", "s:lib", "--include", "*.bin", "--to"])
        .arg(&dst)
        .assert()
        .success();
    assert!(dst.join("all-bytes.bin").is_file());
    assert!(dst.join("deep/er/still/deeper/leaf.bin").is_file());
    let single = t.path().join("single");
    belay(&repo)
        .args(["restore", "s:main.py", "--to"])
        .arg(&single)
        .assert()
        .success();
    assert_eq!(
        fs::read(single.join("main.py")).unwrap(),
        fs::read(src.join("main.py")).unwrap()
    );
    let dry = t.path().join("dry");
    belay(&repo)
        .args(["restore", "s", "--dry-run", "--to"])
        .arg(&dry)
        .assert()
        .success()
        .stdout(predicate::str::contains("main.py"));
    assert!(!dry.exists());
}

#[test]
fn history_log_show_ls_cat_and_revisions() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let src = t.path().join("board");
    fs::create_dir_all(&src).unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        fs::write(src.join("main.py"), format!("print({i})\n")).unwrap();
        let out = belay_json(
            &repo,
            &[
                "backup",
                src.to_str().unwrap(),
                "-m",
                &format!("v{i}"),
                "--meta",
                "site=lab",
            ],
        );
        ids.push(out["snapshot"].as_str().unwrap().to_string());
    }
    let log = belay_json(&repo, &["log", "board"]);
    let got: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![&ids[2], &ids[1], &ids[0]]);
    assert_eq!(log[0]["parents"][0], ids[1].as_str());
    assert_eq!(log[0]["source"], "board");
    assert_eq!(log[0]["message"], "v2");
    assert!(log[0]["tags"].as_array().unwrap().is_empty());
    assert_eq!(
        belay_json(&repo, &["log", "board", "-n", "2"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    belay(&repo)
        .args(["log", "--oneline"])
        .assert()
        .success()
        .stdout(predicate::str::contains("HEAD -> board").and(predicate::str::contains("v0")));
    for (rev, want) in [("board", 2), ("board~1", 1), ("board^", 1), ("board~2", 0)] {
        belay(&repo)
            .args(["cat", &format!("{rev}:main.py")])
            .assert()
            .success()
            .stdout(format!("print({want})\n"));
    }
    belay(&repo)
        .args(["cat", &format!("{}:main.py", &ids[0][..8])])
        .assert()
        .stdout("print(0)\n");
    belay(&repo)
        .args(["cat", &format!("{}:main.py", ids[1])])
        .assert()
        .stdout("print(1)\n");
    belay(&repo)
        .args(["show", "board~3"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("past the first snapshot"));
    let show = belay_json(&repo, &["show", "board~1"]);
    assert_eq!(show["meta"]["site"], "lab");
    assert_eq!(show["summary"]["files"], 1);
    belay(&repo)
        .args(["ls", "board"])
        .assert()
        .stdout(predicate::str::contains("main.py"));
    belay(&repo)
        .args(["cat", "board:nope.py"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no such path"));
}

#[test]
fn ambiguous_and_unknown_revisions_are_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let repo = init(t.path());
    let src = t.path().join("s");
    fs::create_dir_all(&src).unwrap();
    let out = backup(&repo, &src, "s");
    let id = out["snapshot"].as_str().unwrap().to_string();
    // A second live snapshot whose id shares the first 6 digits.
    let seventh = if &id[6..7] == "0" { "1" } else { "0" };
    let twin = format!("{}{seventh}{}", &id[..6], "0".repeat(57));
    assert_ne!(twin, id);
    fs::write(repo.join("snapshots").join(&twin), b"").unwrap();
    belay(&repo)
        .args(["show", &id[..6]])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("ambiguous").and(predicate::str::contains(&id[..12])));
    belay(&repo).args(["show", &id[..7]]).assert().success();
    belay(&repo)
        .args(["show", "nosuchthing"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown revision"));
}

#[test]
fn bad_repositories_and_sources_get_one_clear_line() {
    let t = tempfile::tempdir().unwrap();
    let check = |cmd: &mut assert_cmd::Command, needle: &str| {
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"));
    };
    check(
        belay(&t.path().join("none")).arg("log"),
        "not a belay repository",
    );
    let repo = init(t.path());
    check(belay(&repo).arg("init"), "already holds a belay repository");
    check(
        belay(&repo).args(["backup", "/definitely/not/here"]),
        "/definitely/not/here",
    );
    let cfg = fs::read_to_string(repo.join("config")).unwrap();
    fs::write(
        repo.join("config"),
        cfg.replace("\"version\": 2", "\"version\": 9"),
    )
    .unwrap();
    check(belay(&repo).arg("log"), "format version 9");
    fs::write(repo.join("config"), "{not json").unwrap();
    check(belay(&repo).arg("log"), "invalid repository config");
    let mut no_repo = assert_cmd::Command::new(belay_suite::cli::belay_bin());
    no_repo.env_remove("BELAY_REPO").arg("log");
    check(&mut no_repo, "BELAY_REPO");
}

#[test]
fn a_repository_inside_the_source_is_not_backed_up() {
    if belay_suite::matrix::local_only("only a folder can be inside the source") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("proj");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.py"), "x").unwrap();
    let repo = src.join(".belay");
    belay(&repo).arg("init").assert().success();
    let out = backup(&repo, &src, "proj");
    assert_eq!(out["files"], 1, "{out}");
}

#[test]
fn a_full_disk_fails_cleanly_and_leaves_no_partial_snapshot() {
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("small");
    let Some(_disk) = belay_suite::fsutil::small_tmpfs(&mnt, 600) else {
        return;
    };
    let repo = mnt.join("repo");
    belay(&repo).arg("init").assert().success();
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("small.txt"), "fits\n").unwrap();
    fs::write(src.join("big.bin"), noise(2 << 20, 11)).unwrap();
    let out = belay(&repo)
        .args(["backup", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        fs::read_dir(repo.join("snapshots"))
            .unwrap()
            .next()
            .is_none()
    );
    assert!(
        fs::read_dir(repo.join("refs/heads"))
            .unwrap()
            .next()
            .is_none()
    );
    // Every object under a final name is complete.
    for p in all_object_files(&repo) {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        let bytes = fs::read(&p).unwrap();
        if bytes.starts_with(belay_store::pack::PACK_MAGIC) {
            belay_store::pack::parse_pack(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            belay_store::object::decode_object(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    // After freeing space, the same backup completes. The failed backup's
    // chunks (and its journal entry) still fill the repository's disk:
    // gc --now frees the chunks no snapshot references.
    fs::remove_file(src.join("big.bin")).unwrap();
    belay(&repo).args(["gc", "--now"]).assert().success();
    belay(&repo)
        .args(["backup", src.to_str().unwrap()])
        .assert()
        .success();
}

#[test]
fn a_tree_with_a_dotdot_entry_is_refused_and_nothing_escapes() {
    use belay_store::object::ObjectKind;
    use belay_store::tree::{Node, Tree, TreeEntry};
    let t = tempfile::tempdir().unwrap();
    let repo_path = init(t.path());
    let repo = belay_store::Repo::open(&repo_path).unwrap();
    let (chunk, _) = repo.write_object(ObjectKind::Chunk, b"pwned\n").unwrap();
    let evil = Tree {
        entries: vec![TreeEntry {
            name: b"..".to_vec(),
            mode: 0o644,
            mtime_ns: None,
            node: Node::File {
                size: 6,
                sha256: [0; 32],
                chunks: vec![chunk],
            },
        }],
    };
    // The writer itself never produces such a tree.
    belay_suite::handmade::commit_tree(&repo, "evil", &evil);
    let dst = t.path().join("a/b");
    belay(&repo_path)
        .args(["restore", "evil", "--to"])
        .arg(&dst)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("invalid entry name"));
    assert!(!t.path().join("a").join("..").join("pwned").exists());
    assert!(!t.path().join("a/b/..").is_file());
}
