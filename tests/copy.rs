//! `belay copy`: snapshots and their history from one repository into
//! another, through the real binary. Each test runs with the destination
//! in a folder; `s3_*` tests put it on the S3 test server.

use std::fs;

use belay_suite::env::TestRepo;
use belay_suite::fsutil::{assert_same_tree, noise};
use belay_suite::s3::S3Server;
use serde_json::Value;

fn ids(log: &[Value]) -> Vec<String> {
    log.iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// A folder with some files, backed up three times with changes between.
fn three_backups(t: &TestRepo) -> std::path::PathBuf {
    let src = t.dir("project");
    fs::create_dir_all(src.join("lib")).unwrap();
    fs::write(src.join("main.py"), b"print('hello')\n").unwrap();
    fs::write(src.join("lib/big.bin"), noise(600_000, 1)).unwrap();
    t.json(&["backup", src.to_str().unwrap(), "--name", "proj"]);
    fs::write(src.join("main.py"), b"print('hello, world')\n").unwrap();
    t.json(&["backup", src.to_str().unwrap(), "--name", "proj"]);
    t.stdout(&["tag", "v1", "proj"]);
    fs::write(src.join("lib/new.bin"), noise(200_000, 2)).unwrap();
    t.json(&["backup", src.to_str().unwrap(), "--name", "proj"]);
    src
}

/// Copy into `dest` (a folder or an s3: location) and back, checking what
/// a team moving its history cares about.
pub fn copy_round_trip(t: &TestRepo, dest: &str, env: &[(String, String)]) {
    let src = three_backups(t);
    let run = |repo: &std::ffi::OsStr, args: &[&str]| {
        let mut c = t.cmd_at(repo, &["--json"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "belay {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let with_env = |args: &[&str]| run(t.repo.as_os_str(), args);
    let first = with_env(&["copy", "--to", dest, "--init"]);
    assert_eq!(first["copied"].as_array().unwrap().len(), 3, "{first}");
    assert!(first["objects_copied"].as_u64().unwrap() > 3, "{first}");
    assert_eq!(first["tags"], serde_json::json!(["v1"]));

    // The destination, as its own repository: same snapshots, same ids,
    // same head and tag, and every snapshot restores byte-identical.
    let dst = |args: &[&str]| run(dest.as_ref(), args);
    let src_log = t.snapshots();
    let dst_log = dst(&["log"]);
    assert_eq!(ids(&src_log), ids(dst_log.as_array().unwrap()));
    assert_eq!(dst(&["tags"])[0]["name"], "v1");
    let out = t.dir("restored");
    dst(&["restore", "proj", "--to", out.to_str().unwrap()]);
    assert_same_tree(&src, &out);
    let check = dst(&["check", "--read-data"]);
    assert_eq!(
        check["problems"].as_array().map_or(0, |p| p.len()),
        0,
        "{check}"
    );

    // Again: nothing crosses.
    let again = with_env(&["copy", "--to", dest]);
    assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["already_present"], 3);
    assert_eq!(again["objects_copied"], 0);

    // A new backup: only its new objects cross.
    fs::write(src.join("lib/newer.bin"), noise(50_000, 3)).unwrap();
    t.json(&["backup", src.to_str().unwrap(), "--name", "proj"]);
    let third = with_env(&["copy", "--to", dest, "--source", "proj"]);
    assert_eq!(third["copied"].as_array().unwrap().len(), 1, "{third}");
    let objects = third["objects_copied"].as_u64().unwrap();
    assert!((2..=6).contains(&objects), "{third}");
    assert_eq!(third["heads"]["proj"], t.snapshots()[0]["id"]);

    // And back into a new folder repository: the same history again.
    let back = t.dir("back");
    dst(&["copy", "--init", "--to", back.to_str().unwrap()]);
    let back_log = run(back.as_os_str(), &["log"]);
    assert_eq!(ids(&t.snapshots()), ids(back_log.as_array().unwrap()));
}

#[test]
fn copy_moves_history_to_another_folder_and_back_sending_only_what_is_missing() {
    let t = TestRepo::new();
    let dest = t.dir("dest");
    copy_round_trip(&t, dest.to_str().unwrap(), &[]);
}

#[test]
fn copy_keeps_a_newer_head_in_the_destination_and_refuses_a_missing_source() {
    let t = TestRepo::new();
    let src = three_backups(&t);
    let dest = t.dir("dest");
    let d = dest.to_str().unwrap();
    // Only the first snapshot, by revision: it and no history before it.
    let r = t.json(&["copy", "--to", d, "--init", "proj~2"]);
    assert_eq!(r["copied"].as_array().unwrap().len(), 1, "{r}");
    // The destination moves on by itself.
    fs::write(src.join("only-there.txt"), b"x").unwrap();
    let at = |args: &[&str]| {
        let out = t
            .cmd_at(dest.as_os_str(), &["--json"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    at(&["backup", src.to_str().unwrap(), "--name", "proj"]);
    let head_there = at(&["log"])[0]["id"].clone();
    let r = t.json(&["copy", "--to", d]);
    assert_eq!(r["copied"].as_array().unwrap().len(), 2, "{r}");
    assert!(r["heads"].get("proj").is_none(), "{r}");
    assert_eq!(at(&["log"])[0]["id"], head_there);
    let err = t.fails_one_line(&["copy", "--to", d, "--source", "nope"]);
    assert!(err.contains("no source named \"nope\""), "{err}");
    let err = t.fails_one_line(&["copy", "--to", t.dir("absent").to_str().unwrap()]);
    assert!(
        err.contains("not a belay repository") || err.contains("init"),
        "{err}"
    );
}

#[test]
fn copy_moves_history_from_a_folder_to_a_bucket_and_back() {
    let s3 = S3Server::start();
    let t = TestRepo::new();
    let env: Vec<(String, String)> = s3.env().into_iter().map(|(k, v)| (k.into(), v)).collect();
    copy_round_trip(&t, &s3.location(), &env);
    // The bucket holds the repository's files under the prefix, as a
    // folder would: packs, index objects, snapshots, refs.
    let data = s3.data_dir().join("repo");
    assert!(data.join("config").is_file());
    assert!(data.join("refs/heads/proj").is_file());
    assert!(data.join("index").read_dir().unwrap().count() >= 1);
}
