//! The committed v1 and v2 repositories (tests/fixtures/golden-v1, -v2)
//! must be read byte-exactly by this and every later belay. They hold the
//! same snapshots, so they give the same outputs.

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

fn fixture_v2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-v2")
}

/// A private copy, so no command can change the committed bytes.
fn copy_of(fixture: &Path, t: &Path) -> PathBuf {
    let dst = t.join("repo");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixture.join("repo"))
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
    for fixture in [fixture(), fixture_v2()] {
        let t = tempfile::tempdir().unwrap();
        outputs_are_reproduced(&copy_of(&fixture, t.path()));
    }
}

fn outputs_are_reproduced(repo: &Path) {
    let repo = repo.to_path_buf();
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
    for fixture in [fixture(), fixture_v2()] {
        let t = tempfile::tempdir().unwrap();
        let repo = copy_of(&fixture, t.path());
        restores_exactly(&repo, t.path());
    }
}

fn restores_exactly(repo: &Path, t: &Path) {
    let repo = repo.to_path_buf();
    let dst = t.join("out");
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
                other => panic!("a v1 repository holds no {} objects", other.name()),
            }
        }
    }
    assert_eq!(
        seen,
        [0, 6, 5, 2],
        "chunks, trees, snapshots in the fixture"
    );
}

#[test]
fn golden_v2_packs_and_index_verify_byte_exactly() {
    use belay_store::pack::{IndexV1, IndexedEntry, parse_pack};
    let repo = fixture_v2().join("repo");
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("config")).unwrap()).unwrap();
    assert_eq!(config["version"], 2);
    let index_dir = repo.join("index");
    let names: Vec<PathBuf> = fs::read_dir(&index_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(names.len(), 1, "one index object");
    let file = fs::read(&names[0]).unwrap();
    let (header, raw) = decode_object(&file).unwrap();
    assert_eq!(header.kind, ObjectKind::Index);
    assert_eq!(
        ObjectId::compute(ObjectKind::Index, &raw).to_hex(),
        names[0].file_name().unwrap().to_str().unwrap()
    );
    let ix = IndexV1::decode(&raw).unwrap();
    assert_eq!(ix.encode(), raw, "canonical encoding");
    assert_eq!(ix.packs.len(), 1);
    let mut kinds = [0usize; 4];
    for p in &ix.packs {
        let h = p.pack.to_hex();
        let bytes = fs::read(repo.join("objects").join(&h[..2]).join(&h[2..4]).join(&h)).unwrap();
        assert_eq!(bytes.len() as u64, p.size);
        assert_eq!(ObjectId::compute(ObjectKind::Pack, &bytes), p.pack);
        let footer: Vec<IndexedEntry> = parse_pack(&bytes)
            .unwrap()
            .iter()
            .map(IndexedEntry::from_entry)
            .collect();
        assert_eq!(footer, p.entries, "the index repeats the footer");
        for e in &p.entries {
            let env = &bytes[e.offset as usize..(e.offset + e.length as u64) as usize];
            let (header, raw) = decode_object(env).unwrap();
            assert_eq!(ObjectId::compute(header.kind, &raw), e.id);
            assert_eq!(header.kind as u8, e.kind);
            kinds[e.kind as usize] += 1;
            if header.kind == ObjectKind::Tree {
                assert_eq!(Tree::decode(&raw).unwrap().encode(), raw);
            }
        }
    }
    assert_eq!(kinds, [0, 6, 5, 0], "chunks and trees in the pack");
    belay(&copy_of(&fixture_v2(), tempfile::tempdir().unwrap().path()))
        .args(["check", "--read-data"])
        .assert()
        .success();
}
