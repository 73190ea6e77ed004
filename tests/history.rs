//! End-to-end tests of history: diff (snapshots, folders, boards), tags,
//! `log` filters, `find` and revision syntax, through the real binary.
//! Where a test needs snapshots at chosen dates or with chosen ids, it
//! writes them with the store library, as a backup would.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use belay_store::diff::{self, PathFilter};
use belay_store::repo::RefKind;
use belay_store::snapshot::Snapshot;
use belay_store::{ObjectId, Repo};
use belay_suite::board::{BoardOptions, TestBoard};
use belay_suite::env::TestRepo;
use belay_suite::fsutil::{Snap, describe, noise, set_mtime};
use serde_json::Value;

/// A test repository with the clock zone and colours fixed (outputs are
/// compared as text).
type Env = TestRepo;

fn new_env() -> Env {
    TestRepo::with_env(&[("TZ", Some("UTC")), ("NO_COLOR", Some("1"))])
}

/// What this file's tests do often on top of [`TestRepo`].
trait HistoryEnv {
    /// Back up `src` as source `name`; the new snapshot's id.
    fn backup(&self, src: &Path, name: &str) -> String;
    fn open(&self) -> Repo;
}

impl HistoryEnv for TestRepo {
    fn backup(&self, src: &Path, name: &str) -> String {
        let v = self.json(&["backup", src.to_str().unwrap(), "--name", name]);
        v["snapshot"].as_str().unwrap().to_string()
    }

    fn open(&self) -> Repo {
        Repo::open(&self.repo).unwrap()
    }
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

// ---- diff correctness ---------------------------------------------------

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

fn symlink(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, p).unwrap();
}

/// The old side: a tree with something of every kind, and a deep,
/// otherwise unchanged subtree.
fn old_tree(root: &Path) {
    write(root, "main.py", b"import lib\nprint('v1')\n");
    write(root, "same.txt", b"unchanged\n");
    write(root, "same-size.txt", b"aaaa\n");
    write(root, "empty.txt", b"");
    write(root, "to-grow.bin", &noise(40_000, 1));
    write(root, "file-becomes-dir", b"was a file\n");
    write(root, "dir-becomes-file/inner.txt", b"inside\n");
    write(root, "dir-becomes-file/sub/deeper.txt", b"deeper\n");
    write(root, "file-becomes-link", b"x\n");
    symlink(root, "link-becomes-file", "main.py");
    symlink(root, "link-becomes-dir", "main.py");
    write(root, "dir-becomes-link/a.txt", b"a\n");
    symlink(root, "retarget", "main.py");
    write(root, "gone/one.txt", b"1\n");
    write(root, "gone/two/three.txt", b"3\n");
    write(root, "mode.sh", b"#!/bin/sh\n");
    fs::set_permissions(root.join("mode.sh"), fs::Permissions::from_mode(0o644)).unwrap();
    for i in 0..30 {
        write(
            root,
            &format!("lib/pkg{i}/mod.py"),
            format!("# {i}\n").as_bytes(),
        );
    }
    write(root, "lib/deep/a/b/c/d/leaf.txt", b"old leaf\n");
    write(root, "lib/deep/a/b/c/d/sibling.txt", b"sibling\n");
    write(root, "lib/deep/a/b/other.txt", b"other\n");
}

/// The new side: every kind of change against [`old_tree`].
fn new_tree(root: &Path) {
    old_tree(root);
    let rm = |rel: &str| {
        let p = root.join(rel);
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            fs::remove_dir_all(p).unwrap()
        } else {
            fs::remove_file(p).unwrap()
        }
    };
    write(root, "main.py", b"import lib\nprint('v2')\nprint('more')\n");
    write(root, "same-size.txt", b"bbbb\n");
    write(root, "empty.txt", b"now something\n");
    let mut grown = noise(40_000, 1);
    grown.extend(noise(5_000, 2));
    write(root, "to-grow.bin", &grown);
    rm("file-becomes-dir");
    write(root, "file-becomes-dir/new.txt", b"new\n");
    rm("dir-becomes-file");
    write(root, "dir-becomes-file", b"now a file\n");
    rm("file-becomes-link");
    symlink(root, "file-becomes-link", "same.txt");
    rm("link-becomes-file");
    write(root, "link-becomes-file", b"real\n");
    rm("link-becomes-dir");
    write(root, "link-becomes-dir/x.txt", b"x\n");
    rm("dir-becomes-link");
    symlink(root, "dir-becomes-link", "lib");
    rm("retarget");
    symlink(root, "retarget", "same.txt");
    rm("gone");
    write(root, "brand/new/tree/file.txt", b"added deep\n");
    fs::set_permissions(root.join("mode.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    write(root, "lib/deep/a/b/c/d/leaf.txt", b"new leaf, longer\n");
}

/// An independent comparison of two folders: (path, change, old size, new size).
fn compare_folders(a: &Path, b: &Path) -> Vec<(String, String, Option<u64>, Option<u64>)> {
    let (da, db) = (describe(a), describe(b));
    let keys: BTreeSet<&Vec<u8>> = da.keys().chain(db.keys()).collect();
    let size = |s: &Snap| match s {
        Snap::File { len, .. } => Some(*len),
        Snap::Symlink { target } => Some(target.len() as u64),
        Snap::Dir { .. } => None,
    };
    let mut out = Vec::new();
    for k in keys {
        let p = String::from_utf8(k.clone()).unwrap();
        let (o, n) = (da.get(k), db.get(k));
        let change = match (o, n) {
            (Some(_), None) => "removed",
            (None, Some(_)) => "added",
            (Some(x), Some(y)) => match (x, y) {
                (
                    Snap::File {
                        content_hash: h1,
                        len: l1,
                        mode: m1,
                        ..
                    },
                    Snap::File {
                        content_hash: h2,
                        len: l2,
                        mode: m2,
                        ..
                    },
                ) => {
                    if h1 == h2 && l1 == l2 && m1 == m2 {
                        continue;
                    }
                    "modified"
                }
                (Snap::Dir { mode: m1 }, Snap::Dir { mode: m2 }) => {
                    if m1 == m2 {
                        continue;
                    }
                    "modified"
                }
                (Snap::Symlink { target: t1 }, Snap::Symlink { target: t2 }) => {
                    if t1 == t2 {
                        continue;
                    }
                    "modified"
                }
                _ => "type_changed",
            },
            (None, None) => unreachable!(),
        };
        out.push((p, change.to_string(), o.and_then(size), n.and_then(size)));
    }
    // Path order, component by component.
    out.sort_by_key(|r| diff::path_order_key(r.0.as_bytes()));
    out
}

fn diff_rows(v: &Value) -> Vec<(String, String, Option<u64>, Option<u64>)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["change"].as_str().unwrap().to_string(),
                c["old_size"].as_u64(),
                c["new_size"].as_u64(),
            )
        })
        .collect()
}

#[test]
fn diff_reports_every_change_kind_like_a_comparison_of_the_restored_folders() {
    let env = new_env();
    let (a, b) = (env.dir("a"), env.dir("b"));
    old_tree(&a);
    new_tree(&b);
    let s1 = env.backup(&a, "proj");
    let s2 = env.backup(&b, "proj");
    let (ra, rb) = (env.dir("ra"), env.dir("rb"));
    env.cmd(&["restore", &s1, "--to", ra.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["restore", &s2, "--to", rb.to_str().unwrap()])
        .assert()
        .success();
    let expected = compare_folders(&ra, &rb);
    let kinds: BTreeSet<&str> = expected.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["added", "removed", "modified", "type_changed"]),
        "the constructed pair covers every kind"
    );
    assert!(expected.iter().any(|r| r.0 == "lib/deep/a/b/c/d/leaf.txt"));
    assert_eq!(
        expected.iter().filter(|r| r.1 == "type_changed").count(),
        6,
        "file<->dir, file<->symlink, dir<->symlink: {expected:?}"
    );

    // Two snapshots, and one snapshot against its parent.
    let got = diff_rows(&env.json(&["diff", &s1, &s2]));
    assert_eq!(got, expected);
    assert_eq!(diff_rows(&env.json(&["diff", "proj"])), expected);
    // Reversed, every addition is a removal.
    let back = diff_rows(&env.json(&["diff", &s2, &s1]));
    assert_eq!(back.len(), expected.len());
    for (x, y) in back.iter().zip(&expected) {
        let flipped = match y.1.as_str() {
            "added" => "removed",
            "removed" => "added",
            k => k,
        };
        assert_eq!((&x.0, x.1.as_str(), x.2, x.3), (&y.0, flipped, y.3, y.2));
    }
    // The snapshot against the folder as it is now: the same changes, and
    // nothing is written.
    let before = ids(&env.json(&["log"]));
    let live = diff_rows(&env.json(&["diff", &s1, &format!("dir:{}", b.display())]));
    assert_eq!(live, expected);
    assert_eq!(ids(&env.json(&["log"])), before, "no snapshot written");
    assert!(
        env.json(&["diff", "proj", &format!("dir:{}", b.display())])
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Unchanged files are recognised by size and time, not read; a
    // same-size edit is read and found.
    let out = env
        .cmd(&["-v", "diff", "proj", &format!("dir:{}", b.display())])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0 read here"), "{err}");
    write(&b, "same.txt", b"UNCHANGED\n");
    let out = env
        .cmd(&[
            "-v",
            "--json",
            "diff",
            "proj",
            &format!("dir:{}", b.display()),
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        diff_rows(&v),
        vec![("same.txt".into(), "modified".into(), Some(10), Some(10))]
    );
    assert!(v[0]["new_sha256"].is_string());
    write(&b, "same.txt", b"unchanged\n");

    // Path limits.
    let only = diff_rows(&env.json(&["diff", &s1, &s2, "--", "lib", "gone/two"]));
    let want: Vec<_> = expected
        .iter()
        .filter(|r| r.0.starts_with("lib/") || r.0.starts_with("gone/two"))
        .cloned()
        .collect();
    assert_eq!(only, want);
    assert_eq!(only.iter().filter(|r| r.0.starts_with("lib/")).count(), 1);

    // REV:PATH on both sides: two directories, paths relative to them.
    let sub = diff_rows(&env.json(&["diff", &format!("{s1}:lib"), &format!("{s2}:lib")]));
    assert_eq!(
        sub,
        vec![(
            "deep/a/b/c/d/leaf.txt".to_string(),
            "modified".to_string(),
            Some(9),
            Some(17)
        )]
    );
    let one = diff_rows(&env.json(&["diff", &format!("{s1}:main.py"), "proj"]));
    assert_eq!(
        one,
        vec![(
            "main.py".to_string(),
            "modified".to_string(),
            Some(23),
            Some(37)
        )]
    );
    assert!(
        env.json(&["diff", "proj:same.txt", &format!("{s1}:same.txt")])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        env.fails_one_line(&["diff", "proj:main.py", "proj:lib"])
            .contains("two directories or two files")
    );

    // Human forms.
    let names = env.stdout(&["diff", &s1, &s2, "--name-only"]);
    assert!(names.lines().any(|l| l == "lib/deep/a/b/c/d/leaf.txt"));
    assert!(names.lines().any(|l| l == "brand/new/tree/"));
    let status = env.stdout(&["diff", &s1, &s2]);
    assert!(status.contains("M  main.py  (23 B → 37 B)"), "{status}");
    assert!(
        status.contains("T  file-becomes-dir/  (file → dir)"),
        "{status}"
    );
    assert!(
        status.contains("M  mode.sh  (mode 0644 → 0755)"),
        "{status}"
    );
    let patch = env.stdout(&["diff", &s1, &s2, "-p", "--", "main.py", "to-grow.bin"]);
    assert!(patch.contains("--- a/main.py\n+++ b/main.py\n"), "{patch}");
    assert!(
        patch.contains("-print('v1')\n+print('v2')\n+print('more')\n"),
        "{patch}"
    );
    assert!(
        patch.contains("Binary files a/to-grow.bin and b/to-grow.bin differ"),
        "{patch}"
    );
    let stat = env.stdout(&["diff", &s1, &s2, "--stat", "--", "main.py", "empty.txt"]);
    assert!(stat.contains(" main.py   | 3 ++-"), "{stat}");
    assert!(
        stat.contains("2 files changed, 3 insertions(+), 1 deletion(-)"),
        "{stat}"
    );
    let j = env.json(&["diff", &s1, &s2, "-p", "--", "main.py"]);
    assert!(j[0]["patch"].as_str().unwrap().contains("+print('more')"));
}

#[test]
fn diff_errors_are_one_clear_line() {
    let env = new_env();
    let a = env.dir("a");
    write(&a, "x", b"1");
    env.backup(&a, "proj");
    assert!(
        env.fails_one_line(&["diff", "nope"])
            .contains("unknown revision")
    );
    assert!(
        env.fails_one_line(&["diff", "proj", "proj", "--", "../etc"])
            .contains("unsafe")
    );
    assert!(
        env.fails_one_line(&["diff", "proj", "dir:/nonexistent/x"])
            .contains("/nonexistent/x")
    );
    // The first snapshot against its (missing) parent: everything added.
    let v = env.json(&["diff", "proj"]);
    assert_eq!(v[0]["change"], "added");
}

// ---- diff cost ----------------------------------------------------------

#[test]
fn diff_of_one_changed_file_in_5000_reads_only_the_trees_on_its_path() {
    let env = new_env();
    let src = env.dir("big");
    let mut n = 0;
    for d in 0..20 {
        for s in 0..10 {
            for f in 0..25 {
                if n == 4_999 {
                    break;
                }
                write(
                    &src,
                    &format!("d{d:02}/s{s}/f{f:02}.py"),
                    format!("# {d} {s} {f}\n").as_bytes(),
                );
                n += 1;
            }
        }
    }
    let deep = "d07/s3/deep/er/still/target.txt";
    write(&src, deep, b"before\n");
    let s1 = env.backup(&src, "big");
    write(&src, deep, b"after, longer\n");
    let s2 = env.backup(&src, "big");

    let repo = env.open();
    let tree = |id: &str| {
        repo.read_snapshot(&id.parse::<ObjectId>().unwrap())
            .unwrap()
            .tree
    };
    let (t1, t2) = (tree(&s1), tree(&s2));
    let before = repo.trees_read();
    let changes = diff::diff_trees(&repo, Some(&t1), Some(&t2), &PathFilter::all()).unwrap();
    let reads = repo.trees_read() - before;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path, deep.as_bytes());
    // Directories on the path, the root included: 6; both sides read each.
    let depth = deep.split('/').count() as u64;
    assert!(
        reads <= 2 * depth + 2,
        "{reads} trees read for depth {depth}"
    );
    assert!(reads >= 2 * depth, "reads are counted: {reads}");

    // The same through the binary (-v reports the count).
    let out = env
        .cmd(&["-v", "diff", &s1, &s2, "--name-only"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{deep}\n"));
    let err = String::from_utf8_lossy(&out.stderr);
    let counted: u64 = err
        .split_whitespace()
        .skip_while(|w| *w != "compared")
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no count in {err}"));
    assert!(counted <= 2 * depth + 2, "{err}");
}

// ---- log -- PATH ----------------------------------------------------------

#[test]
fn log_with_a_path_lists_exactly_the_snapshots_that_changed_it() {
    let env = new_env();
    let src = env.dir("proj");
    let target = "lib/cfg/config.json";
    write(&src, "main.py", b"print(0)\n");
    write(&src, "lib/other.py", b"x = 0\n");
    let changes_at: BTreeSet<usize> = [0, 3, 4, 9, 15, 19].into();
    let created_at = 0;
    let mut ids_by_step = Vec::new();
    for i in 0..20usize {
        let t = 1_700_000_000_000_000_000i64 + i as i64 * 1_000_000_000;
        if changes_at.contains(&i) {
            write(&src, target, format!("{{\"v\": {i}}}\n").as_bytes());
            set_mtime(&src.join(target), t);
        }
        // Something else changes in every snapshot.
        write(&src, "main.py", format!("print({i})\n").as_bytes());
        set_mtime(&src.join("main.py"), t);
        if i % 2 == 1 {
            write(&src, "lib/other.py", format!("x = {i}\n").as_bytes());
            set_mtime(&src.join("lib/other.py"), t);
        }
        if i == 7 {
            // Touched but unchanged: not a change.
            set_mtime(&src.join(target), t);
        }
        ids_by_step.push(env.backup(&src, "proj"));
    }
    assert!(changes_at.contains(&created_at));
    let want: Vec<String> = (0..20)
        .rev()
        .filter(|i| changes_at.contains(i))
        .map(|i| ids_by_step[i].clone())
        .collect();
    assert_eq!(ids(&env.json(&["log", "--", target])), want);
    assert_eq!(ids(&env.json(&["log", "proj", "--", target])), want);
    assert_eq!(
        ids(&env.json(&["log", "--source", "proj", "--", target])),
        want
    );
    assert_eq!(
        ids(&env.json(&["log", "--", "lib/cfg"])),
        want,
        "a directory"
    );
    assert_eq!(
        ids(&env.json(&["log", "-n", "2", "--", target])),
        want[..2].to_vec()
    );
    // Every snapshot changed main.py; none changed a file that never existed.
    assert_eq!(ids(&env.json(&["log", "--", "main.py"])).len(), 20);
    assert!(ids(&env.json(&["log", "--", "nope.txt"])).is_empty());
    let one = env.stdout(&["log", "--oneline", "--", target]);
    assert_eq!(one.lines().count(), want.len());
}

// ---- tags -----------------------------------------------------------------

#[test]
fn tag_lifecycle() {
    let env = new_env();
    let src = env.dir("pico");
    write(&src, "main.py", b"v1\n");
    let s1 = env.backup(&src, "pico");
    write(&src, "main.py", b"v2\n");
    let s2 = env.backup(&src, "pico");

    // Default: the latest snapshot of the only source.
    let t = env.json(&["tag", "shipped"]);
    assert_eq!(t["snapshot"], s2.as_str());
    assert_eq!(t["tag"], "shipped");
    assert_eq!(t["previous"], Value::Null);
    let tag_file = env.repo.join("refs/tags/shipped");
    assert_eq!(fs::read_to_string(&tag_file).unwrap(), format!("{s2}\n"));
    // It shows in log and resolves as a revision.
    let log = env.stdout(&["log", "--oneline"]);
    assert!(
        log.lines()
            .next()
            .unwrap()
            .contains("(HEAD -> pico, tag: shipped)"),
        "{log}"
    );
    assert_eq!(
        env.json(&["log", "-n", "1", "shipped"])[0]["tags"][0],
        "shipped"
    );
    assert!(
        env.json(&["diff", "shipped", "pico"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    // An existing tag is not moved without --force.
    let err = env.fails_one_line(&["tag", "shipped", "pico~1"]);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&tag_file).unwrap(), format!("{s2}\n"));
    let moved = env.json(&[
        "tag",
        "shipped",
        "pico~1",
        "--force",
        "-m",
        "field build\n\nsent to 40 boards",
    ]);
    assert_eq!(moved["previous"], s2.as_str());
    assert_eq!(moved["snapshot"], s1.as_str());
    assert_eq!(
        fs::read_to_string(&tag_file).unwrap(),
        format!("{s1}\n\nfield build\n\nsent to 40 boards\n")
    );
    // The store's ref reader (gc roots) still reads the id.
    let refs = env.open().list_refs(RefKind::Tag).unwrap();
    assert_eq!(refs["shipped"].to_hex(), s1);

    let tags = env.json(&["tags"]);
    assert_eq!(tags.as_array().unwrap().len(), 1);
    assert_eq!(tags[0]["name"], "shipped");
    assert_eq!(tags[0]["snapshot"], s1.as_str());
    assert_eq!(tags[0]["source"], "pico");
    assert_eq!(tags[0]["message"], "field build\n\nsent to 40 boards");
    assert!(tags[0]["time"].as_str().unwrap().ends_with('Z'));
    let human = env.stdout(&["tags"]);
    assert!(human.starts_with("shipped  "), "{human}");
    assert!(
        human.contains(&s1[..12]) && human.contains("field build"),
        "{human}"
    );
    assert_eq!(env.stdout(&["tag"]), human, "tag without arguments lists");

    // Bad names and clashes are refused.
    assert!(env.fails_one_line(&["tag", "a:b"]).contains("invalid name"));
    assert!(
        env.fails_one_line(&["tag", "pico"])
            .contains("a source is named")
    );
    assert!(
        env.fails_one_line(&["tag", "x", "nope"])
            .contains("unknown revision")
    );

    // Several sources: the default needs a revision.
    let other = env.dir("other");
    write(&other, "a", b"a");
    env.backup(&other, "other");
    let err = env.fails_one_line(&["tag", "v2"]);
    assert!(err.contains("other, pico"), "{err}");

    // Delete.
    let d = env.json(&["tag", "-d", "shipped"]);
    assert_eq!(d["deleted"], true);
    assert!(!tag_file.exists());
    assert!(env.json(&["tags"]).as_array().unwrap().is_empty());
    assert!(
        env.fails_one_line(&["tag", "-d", "shipped"])
            .contains("no tag named")
    );
    assert!(!env.stdout(&["log", "--oneline"]).contains("tag:"));
}

// ---- revisions --------------------------------------------------------------

/// Write a snapshot of `tree` for `source` at `time` with the store, as a
/// backup would (object, marker, head).
fn put_snapshot(
    repo: &Repo,
    base: &Snapshot,
    source: &str,
    time: &str,
    parent: Option<ObjectId>,
    message: &str,
) -> ObjectId {
    let ts: jiff::Timestamp = time.parse().unwrap();
    let mut s = base.clone();
    s.source = source.into();
    s.time_ns = ts.as_nanosecond() as i64;
    s.parents = parent.into_iter().collect();
    s.message = message.into();
    let (id, _) = repo.commit_snapshot(&s).unwrap();
    repo.write_ref(RefKind::Head, source, &id).unwrap();
    id
}

#[test]
fn revisions_by_date_parent_tag_and_ambiguous_prefix() {
    let env = new_env();
    let src = env.dir("seed");
    write(&src, "main.py", b"x\n");
    let seed = env.backup(&src, "seed");
    let repo = env.open();
    let base = repo.read_snapshot(&seed.parse().unwrap()).unwrap();
    let jan10 = put_snapshot(&repo, &base, "pico", "2026-01-10T12:00:00Z", None, "a");
    let jan20 = put_snapshot(
        &repo,
        &base,
        "pico",
        "2026-01-20T23:59:00Z",
        Some(jan10),
        "b",
    );
    let feb01 = put_snapshot(
        &repo,
        &base,
        "pico",
        "2026-02-01T08:00:00Z",
        Some(jan20),
        "c",
    );
    let first = |rev: &str| {
        env.json(&["log", "-n", "1", rev])[0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };

    assert_eq!(first("pico@{2026-01-15}"), jan10.to_hex());
    assert_eq!(
        first("pico@{2026-01-20}"),
        jan20.to_hex(),
        "the whole day counts"
    );
    assert_eq!(first("pico@{2026-01-31}"), jan20.to_hex());
    assert_eq!(first("pico@{2026-03-01}"), feb01.to_hex());
    assert_eq!(first("pico@{2026-02-01}~2"), jan10.to_hex());
    assert_eq!(first("pico^"), jan20.to_hex());
    assert_eq!(first("pico~2"), jan10.to_hex());
    assert_eq!(first(&feb01.to_hex()[..8]), feb01.to_hex());
    let err = env.fails_one_line(&["show", "pico@{2026-01-09}"]);
    assert!(err.contains("no snapshot on or before 2026-01-09"), "{err}");
    assert!(
        env.fails_one_line(&["show", "pico@{someday}"])
            .contains("cannot read")
    );
    assert!(
        env.fails_one_line(&["show", "nobody@{2026-01-15}"])
            .contains("no source named")
    );
    assert!(
        env.fails_one_line(&["show", "pico~3"])
            .contains("goes back past")
    );

    // Date filters on log.
    let range = ids(&env.json(&[
        "log",
        "--source",
        "pico",
        "--since",
        "2026-01-11",
        "--until",
        "2026-01-31",
    ]));
    assert_eq!(range, vec![jan20.to_hex()]);
    let until = ids(&env.json(&["log", "pico", "--until", "2026-01-20"]));
    assert_eq!(until, vec![jan20.to_hex(), jan10.to_hex()]);
    assert!(
        env.fails_one_line(&["log", "--since", "soon"])
            .contains("cannot read")
    );

    // A tag wins over a source of the same name (written directly: the CLI
    // refuses to create such a tag).
    belay_store::tags::write(&repo, "seed", &jan10, "", false).unwrap();
    assert_eq!(first("seed"), jan10.to_hex());

    // Two snapshots whose ids share four hex digits.
    let candidate = |i: usize| {
        let mut s = base.clone();
        s.source = "many".into();
        s.message = format!("candidate {i}");
        s
    };
    let id_of =
        |s: &Snapshot| ObjectId::compute(belay_store::object::ObjectKind::Snapshot, &s.encode());
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut pair = None;
    for i in 0..100_000 {
        let prefix = id_of(&candidate(i)).to_hex()[..4].to_string();
        if let Some(&j) = seen.get(&prefix) {
            pair = Some((prefix, j, i));
            break;
        }
        seen.insert(prefix, i);
    }
    let (prefix, i, j) = pair.expect("a shared prefix among 100000 ids");
    let (a, _) = repo.commit_snapshot(&candidate(i)).unwrap();
    let (b, _) = repo.commit_snapshot(&candidate(j)).unwrap();
    let err = env.fails_one_line(&["show", &prefix]);
    assert!(err.contains("ambiguous"), "{err}");
    assert!(
        err.contains(&a.short()) && err.contains(&b.short()),
        "lists both: {err}"
    );
    assert!(err.contains("many"), "with their source: {err}");
    // More digits settle it.
    let longer = &b.to_hex()[..12];
    assert_eq!(env.json(&["show", longer])["id"], b.to_hex());
}

// ---- find -------------------------------------------------------------------

#[test]
fn find_across_two_sources() {
    let env = new_env();
    let (a, b) = (env.dir("pico-a"), env.dir("pico-b"));
    let old_cfg = b"{\"wifi\": \"old\"}\n";
    let new_cfg = b"{\"wifi\": \"new\", \"x\": 1}\n";
    for d in [&a, &b] {
        write(d, "config.json", old_cfg);
        write(d, "lib/config.json", b"{}\n");
        write(d, "main.py", b"print(1)\n");
    }
    let a1 = env.backup(&a, "pico-a");
    let b1 = env.backup(&b, "pico-b");
    write(&a, "config.json", new_cfg);
    let a2 = env.backup(&a, "pico-a");
    let old_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(old_cfg));

    // Latest snapshot of each source.
    let rows = env.json(&["find", "config.json"]);
    assert!(rows[0]["location"].as_str().unwrap().starts_with("dir:"));
    let got: BTreeSet<(String, String, String, u64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["source"].as_str().unwrap().into(),
                r["snapshot"].as_str().unwrap().into(),
                r["path"].as_str().unwrap().into(),
                r["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String, u64)> = [
        ("pico-a", &a2, "config.json", new_cfg.len()),
        ("pico-a", &a2, "lib/config.json", 3),
        ("pico-b", &b1, "config.json", old_cfg.len()),
        ("pico-b", &b1, "lib/config.json", 3),
    ]
    .into_iter()
    .map(|(s, i, p, n)| (s.to_string(), i.to_string(), p.to_string(), n as u64))
    .collect();
    assert_eq!(got, want);

    // Which boards still have the old config: by content.
    let old = env.json(&["find", "--hash", &old_sha]);
    let who: Vec<&str> = old
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source"].as_str().unwrap())
        .collect();
    assert_eq!(who, vec!["pico-b"]);
    assert_eq!(old[0]["sha256"], old_sha.as_str());
    // In every snapshot, pico-a's first one had it too.
    let all = env.json(&["find", "--all", "--hash", &old_sha[..10]]);
    let snaps: BTreeSet<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(snaps, BTreeSet::from([a1.as_str(), b1.as_str()]));
    // A path glob, one source, every snapshot.
    let one = env.json(&["find", "/config.json", "--source", "pico-a", "--all"]);
    assert_eq!(one.as_array().unwrap().len(), 2);
    assert!(
        one.as_array()
            .unwrap()
            .iter()
            .all(|r| r["path"] == "config.json")
    );
    let py = env.json(&["find", "**/*.py"]);
    assert_eq!(py.as_array().unwrap().len(), 2);
    // Glob and hash together.
    let both = env.json(&["find", "lib/*", "--hash", &old_sha]);
    assert!(both.as_array().unwrap().is_empty());
    // Human output names the source, snapshot, size and hash.
    let human = env.stdout(&["find", "config.json", "--source", "pico-b"]);
    assert!(
        human.contains("pico-b") && human.contains(&b1[..12]) && human.contains(&old_sha[..12]),
        "{human}"
    );
    assert!(
        env.fails_one_line(&["find", "x", "--source", "nobody"])
            .contains("no source named")
    );
    assert!(
        env.fails_one_line(&["find", "--hash", "xyz"])
            .contains("hex")
    );
    assert!(
        env.fails_one_line(&["find", "a[b"])
            .contains("invalid glob")
    );
}

fn paths_of(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data))
}

#[test]
fn find_in_a_live_folder_and_on_a_live_board() {
    let env = new_env();
    let proj = env.dir("proj");
    write(&proj, "main.py", b"print(1)\n");
    write(&proj, "lib/config.json", b"{}\n");
    env.backup(&proj, "proj");
    // What the folder holds now, not what its snapshot holds.
    write(&proj, "lib/new.py", b"x = 2\n");
    fs::remove_file(proj.join("main.py")).unwrap();
    let dir = format!("dir:{}", proj.display());
    let rows = env.json(&["find", "*.py", "--source", &dir]);
    assert_eq!(paths_of(&rows), ["lib/new.py"], "{rows:#}");
    assert_eq!(rows[0]["live"], true);
    assert_eq!(rows[0]["sha256"], sha256_hex(b"x = 2\n"));
    assert!(rows[0]["snapshot"].is_null());
    // A plain path to a folder works as in diff; --hash searches contents.
    let by_hash = env.json(&[
        "find",
        "--hash",
        &sha256_hex(b"{}\n")[..8],
        "--source",
        proj.to_str().unwrap(),
    ]);
    assert_eq!(paths_of(&by_hash), ["lib/config.json"]);
    // The snapshot search is unchanged: main.py is still in proj's snapshot.
    assert_eq!(
        paths_of(&env.json(&["find", "*.py", "--source", "proj"])),
        ["main.py"]
    );
    assert!(
        env.fails_one_line(&["find", "*.py", "--source", &dir, "--all"])
            .contains("--all")
    );

    // On a board: it hashes the matching files itself; nothing is saved.
    let img = env.dir("img");
    write(&img, "main.py", b"print('board')\n");
    write(&img, "lib/util.py", b"def f():\n    return 1\n");
    write(&img, "data/log.csv", b"t,v\n1,2\n");
    let board = TestBoard::start(&img, &BoardOptions::unthrottled());
    let port = format!("serial:{}", board.path.display());
    let before = ids(&env.json(&["log"]));
    let rows = env.json(&["find", "*.py", "--source", &port]);
    assert_eq!(paths_of(&rows), ["lib/util.py", "main.py"], "{rows:#}");
    assert_eq!(rows[1]["sha256"], sha256_hex(b"print('board')\n"));
    assert_eq!(rows[1]["size"], 15);
    let by_hash = env.json(&[
        "find",
        "--hash",
        &sha256_hex(b"t,v\n1,2\n")[..6],
        "--source",
        &port,
    ]);
    assert_eq!(paths_of(&by_hash), ["data/log.csv"]);
    let human = env.stdout(&["find", "util.py", "--source", &port]);
    assert!(
        human.contains("lib/util.py") && human.contains("live"),
        "{human}"
    );
    assert_eq!(ids(&env.json(&["log"])), before, "no snapshot written");
}

#[test]
fn rename_moves_a_history_every_command_sees_the_new_name() {
    let env = new_env();
    let proj = env.dir("proj");
    write(&proj, "main.py", b"print(1)\n");
    // Without --name: the history is named after the folder.
    let first = env.json(&["backup", proj.to_str().unwrap()])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    write(&proj, "main.py", b"print(2)\n");
    let second = env.json(&["backup", proj.to_str().unwrap()])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let other = env.dir("other");
    write(&other, "x.txt", b"x\n");
    env.backup(&other, "other");
    env.cmd(&["tag", "v1", &first]).assert().success();

    let r = env.json(&["rename", "proj", "proj-2024"]);
    assert_eq!(r["snapshots"], 2, "{r}");
    assert_eq!(r["head"], second.as_str());

    // log, log --source, show, sources, diff NEW, NEW~1, tags, find.
    let log = env.json(&["log", "--source", "proj-2024"]);
    assert_eq!(ids(&log), [second.clone(), first.clone()]);
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .all(|s| s["source"] == "proj-2024")
    );
    let all = env.json(&["log"]);
    assert!(
        !all.as_array()
            .unwrap()
            .iter()
            .any(|s| s["source"] == "proj"),
        "{all:#}"
    );
    assert_eq!(env.json(&["show", "proj-2024~1"])["id"], first.as_str());
    assert_eq!(env.json(&["show", &first])["source"], "proj-2024");
    let sources = env.json(&["sources"]);
    let names: Vec<&str> = sources
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["other", "proj-2024"]);
    let d = env.json(&["diff", "proj-2024"]);
    assert_eq!(d[0]["path"], "main.py");
    assert_eq!(env.json(&["find", "main.py"])[0]["source"], "proj-2024");
    assert!(env.fails_one_line(&["log", "proj"]).contains("proj"));
    // forget --source NEW thins the renamed history.
    let plan = env.json(&[
        "forget",
        "--keep-last",
        "1",
        "--source",
        "proj-2024",
        "--dry-run",
    ]);
    assert_eq!(plan["sources"][0]["source"], "proj-2024");
    assert_eq!(
        plan["removed"], 0,
        "the tagged first snapshot is kept: {plan}"
    );
    assert_eq!(plan["kept"], 2);

    // The folder's next backup continues the renamed history (no new
    // history under the old name), and an unchanged one adds nothing.
    let again = env.json(&["backup", proj.to_str().unwrap()]);
    assert_eq!(again["source"], "proj-2024");
    assert_eq!(again["unchanged"], true, "{again}");
    write(&proj, "main.py", b"print(3)\n");
    let third = env.json(&["backup", proj.to_str().unwrap()]);
    assert_eq!(third["source"], "proj-2024");
    assert_eq!(third["parent"], second.as_str());

    // Onto an existing source: refused unless --force, which joins them.
    let err = env.fails_one_line(&["rename", "other", "proj-2024"]);
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    assert!(
        env.fails_one_line(&["rename", "nobody", "x"])
            .contains("no source named")
    );
    assert!(
        env.fails_one_line(&["rename", "other", "a/b"])
            .contains("invalid name")
    );
    let joined = env.json(&["rename", "other", "proj-2024", "--force"]);
    assert_eq!(joined["merged"], true);
    assert_eq!(
        env.json(&["log", "--source", "proj-2024"])
            .as_array()
            .unwrap()
            .len(),
        4
    );
    // Recorded in the journal.
    let j = env.json(&["journal", "--kind", "rename"]);
    let ok = j
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "ok")
        .count();
    assert_eq!(ok, 2, "{j:#}");
    // A forgotten snapshot renamed in the trash comes back under the new name.
    let third_id = third["snapshot"].as_str().unwrap().to_string();
    env.json(&["forget", &third_id]);
    env.json(&["rename", "proj-2024", "final"]);
    env.json(&["undo-forget"]);
    let back = env.json(&["show", &third_id]);
    assert_eq!(back["source"], "final", "{back}");
    // check and gc take the renames folder in their stride.
    env.cmd(&["check"]).assert().success();
    env.cmd(&["gc"]).assert().success();
    // Without the local cache (every snapshot read from the repository) too.
    let out = env
        .cmd(&["--json", "log"])
        .env("BELAY_NO_CACHE", "1")
        .output()
        .unwrap();
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .all(|s| s["source"] == "final"),
        "{log:#}"
    );
}

// ---- boards -----------------------------------------------------------------

#[test]
fn diff_against_the_test_board_compares_by_the_boards_hashes() {
    let env = new_env();
    let img = env.dir("img");
    write(&img, "main.py", b"import config\nprint('hello')\n");
    write(&img, "config.json", b"{\"v\": 1}\n");
    write(&img, "lib/util.py", b"def f():\n    return 1\n");
    write(&img, "lib/big.bin", &noise(20_000, 5));
    write(&img, "old.txt", b"old\n");
    let opts = BoardOptions {
        unique_id: Some("dd11aa22bb33cc44".into()),
        ..BoardOptions::unthrottled()
    };
    let board = TestBoard::start(&img, &opts);
    let port = format!("serial:{}", board.path.display());
    let snap = env.json(&["backup", &port])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    // Unchanged board: nothing to report.
    assert!(
        env.json(&["diff", &snap, &port])
            .as_array()
            .unwrap()
            .is_empty()
    );
    drop(board);

    // The same board, changed.
    let img2 = env.dir("img2");
    write(&img2, "main.py", b"import config\nprint('hello, world')\n");
    write(&img2, "config.json", b"{\"v\": 2}\n"); // same size, new content
    write(&img2, "lib/util.py", b"def f():\n    return 1\n");
    write(&img2, "lib/big.bin", &noise(20_000, 5));
    write(&img2, "new/added.py", b"x = 1\n");
    let board = TestBoard::start(&img2, &opts);
    let port = format!("serial:{}", board.path.display());
    let before = ids(&env.json(&["log"]));
    let v = env.json(&["diff", &snap, &port]);
    let rows: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().into(),
                c["change"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("config.json", "modified"),
        ("main.py", "modified"),
        ("new", "added"),
        ("new/added.py", "added"),
        ("old.txt", "removed"),
    ]
    .iter()
    .map(|(p, c)| (p.to_string(), c.to_string()))
    .collect();
    assert_eq!(rows, want);
    let cfg = &v.as_array().unwrap()[0];
    assert_eq!(cfg["old_size"], cfg["new_size"]);
    assert_ne!(cfg["old_sha256"], cfg["new_sha256"]);

    // Compared by the board's hashes: nothing pulled without -p.
    let out = env.cmd(&["-v", "diff", &snap, &port]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0 read here"), "{err}");
    // With -p the changed text is pulled and shown; the source name alone
    // finds the board's latest snapshot.
    let patch = env.stdout(&["diff", &port, "-p", "--", "main.py"]);
    assert!(
        patch.contains("-print('hello')\n+print('hello, world')\n"),
        "{patch}"
    );
    assert_eq!(ids(&env.json(&["log"])), before, "no snapshot written");
    drop(board);

    // A board without hashlib: same-size files are pulled and hashed here,
    // with the same result.
    let board = TestBoard::start(
        &img2,
        &BoardOptions {
            hashlib: false,
            ..opts.clone()
        },
    );
    let port = format!("serial:{}", board.path.display());
    let out = env
        .cmd(&["-v", "--json", "diff", &snap, &port])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let again: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().into(),
                c["change"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(again, want);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no hashlib"));
    drop(board);
}

#[test]
fn a_tagged_snapshot_survives_forget_and_gc() {
    let env = new_env();
    let src = env.dir("pico");
    write(&src, "main.py", b"shipped build\n");
    write(&src, "firmware.bin", &noise(50_000, 9));
    let shipped = env.backup(&src, "pico");
    env.json(&["tag", "shipped", "-m", "sent to the field"]);
    write(&src, "main.py", b"work in progress\n");
    fs::remove_file(src.join("firmware.bin")).unwrap();
    env.backup(&src, "pico");
    let untagged_old = {
        write(&src, "main.py", b"another\n");
        env.backup(&src, "pico")
    };
    write(&src, "main.py", b"latest\n");
    env.backup(&src, "pico");

    env.cmd(&["forget", "--keep-last", "1"]).assert().success();
    env.cmd(&["gc", "--now"]).assert().success();
    // The tag keeps its snapshot and everything it reaches.
    let live = ids(&env.json(&["log"]));
    assert!(live.contains(&shipped), "{live:?}");
    assert!(!live.contains(&untagged_old));
    let out = env.cmd(&["cat", "shipped:main.py"]).output().unwrap();
    assert_eq!(out.stdout, b"shipped build\n");
    let d = env.json(&["diff", "shipped", "pico"]);
    let paths: Vec<&str> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["firmware.bin", "main.py"]);
    let restored = env.dir("restored");
    env.cmd(&["restore", "shipped", "--to", restored.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(
        fs::read(restored.join("firmware.bin")).unwrap(),
        noise(50_000, 9)
    );
}
