//! The committed v1 repository (tests/fixtures/golden-v1) must be read
//! byte-exactly by this and every later belay.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use belay_store::ObjectId;
use belay_store::object::{ObjectKind, decode_object};
use belay_store::snapshot::Snapshot;
use belay_store::tree::Tree;
use belay_suite::cli::{belay, belay_json};
use sha2::{Digest, Sha256};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-v1")
}

/// A private copy, so no command can change the committed bytes.
fn repo_copy(t: &Path) -> PathBuf {
    let dst = t.join("repo");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixture().join("repo"))
        .arg(&dst)
        .status()
        .unwrap();
    assert!(status.success());
    dst
}

fn expected(name: &str) -> serde_json::Value {
    serde_json::from_slice(&fs::read(fixture().join(name)).unwrap()).unwrap()
}

#[test]
fn golden_outputs_are_reproduced_exactly() {
    let t = tempfile::tempdir().unwrap();
    let repo = repo_copy(t.path());
    assert_eq!(belay_json(&repo, &["log", "golden"]), expected("log.json"));
    assert_eq!(
        belay_json(&repo, &["ls", "-R", "golden~1"]),
        expected("ls-first.json")
    );
    assert_eq!(
        belay_json(&repo, &["ls", "-R", "golden"]),
        expected("ls-second.json")
    );
    assert_eq!(
        belay_json(&repo, &["show", "golden~1"]),
        expected("show-first.json")
    );
    belay(&repo)
        .args(["cat", "golden~1:lib/util.py"])
        .assert()
        .success()
        .stdout("def answer():\n    return 42\n");
}

#[test]
fn golden_snapshot_restores_exactly_what_was_listed() {
    let t = tempfile::tempdir().unwrap();
    let repo = repo_copy(t.path());
    let dst = t.path().join("out");
    belay(&repo)
        .args(["restore", "golden~1", "--to"])
        .arg(&dst)
        .assert()
        .success();
    for e in expected("ls-first.json").as_array().unwrap() {
        let rel = belay_store::path::parse_user_path(e["path"].as_str().unwrap());
        let p = dst.join(std::ffi::OsStr::from_bytes(&rel));
        let m = fs::symlink_metadata(&p).unwrap_or_else(|_| panic!("{} missing", p.display()));
        match e["type"].as_str().unwrap() {
            "file" => {
                let data = fs::read(&p).unwrap();
                assert_eq!(data.len() as u64, e["size"].as_u64().unwrap());
                let sha = Sha256::digest(&data);
                assert_eq!(
                    hex::encode(sha),
                    e["sha256"].as_str().unwrap(),
                    "{}",
                    p.display()
                );
                assert_eq!(
                    m.permissions().mode() & 0o7777,
                    e["mode"].as_u64().unwrap() as u32
                );
                let mtime = jiff::Timestamp::new(m.mtime(), m.mtime_nsec() as i32).unwrap();
                assert_eq!(mtime.to_string(), e["mtime"].as_str().unwrap());
            }
            "dir" => assert!(m.is_dir()),
            "symlink" => assert_eq!(
                fs::read_link(&p).unwrap().as_os_str().as_bytes(),
                e["target"].as_str().unwrap().as_bytes()
            ),
            other => panic!("unexpected type {other}"),
        }
    }
}

#[test]
fn every_golden_object_verifies_and_re_encodes_canonically() {
    let mut stack = vec![fixture().join("repo/objects")];
    let mut seen = [0usize; 4];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let file = fs::read(&p).unwrap();
            let (header, raw) = decode_object(&file).unwrap();
            let id = ObjectId::compute(header.kind, &raw);
            assert_eq!(id.to_hex(), p.file_name().unwrap().to_str().unwrap());
            seen[header.kind as usize] += 1;
            match header.kind {
                ObjectKind::Tree => assert_eq!(Tree::decode(&raw).unwrap().encode(), raw),
                ObjectKind::Snapshot => {
                    assert_eq!(Snapshot::decode(&raw).unwrap().encode(), raw)
                }
                ObjectKind::Chunk => {}
            }
        }
    }
    assert_eq!(
        seen,
        [0, 6, 5, 2],
        "chunks, trees, snapshots in the fixture"
    );
}
