//! The audit journal through the binary: every recorded operation leaves
//! one write-once entry (also when it fails), many writers at once lose
//! none, and `belay journal` filters them.

use std::fs;
use std::path::Path;

use belay_suite::cli::{belay, belay_json};

fn kinds(v: &serde_json::Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn operations_are_journalled_with_who_what_and_outcome() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    belay(&repo).arg("init").assert().success();
    let src = tmp.path().join("proj");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.py"), "1\n").unwrap();
    let b1 = belay_json(&repo, &["backup", src.to_str().unwrap(), "--name", "p"]);
    fs::write(src.join("a.py"), "2\n").unwrap();
    belay_json(&repo, &["backup", src.to_str().unwrap(), "--name", "p"]);
    belay_json(&repo, &["tag", "v1", "p~1"]);
    let out = tmp.path().join("out");
    belay(&repo)
        .args(["restore", "p~1", "--to"])
        .arg(&out)
        .assert()
        .success();
    // A failing restore is journalled too, with its error.
    belay(&repo)
        .args(["restore", "p~1", "--to"])
        .arg(&out)
        .assert()
        .failure();
    belay(&repo).args(["tag", "-d", "v1"]).assert().success();
    belay_json(&repo, &["forget", "--keep-last", "1"]);
    belay_json(&repo, &["undo-forget"]);
    belay_json(&repo, &["gc"]);
    // Reads and dry runs are not journalled.
    belay_json(&repo, &["log"]);
    belay_json(&repo, &["forget", "--keep-last", "1", "--dry-run"]);
    let all = belay_json(&repo, &["journal"]);
    assert_eq!(
        kinds(&all),
        [
            ("backup", "ok"),
            ("backup", "ok"),
            ("tag", "ok"),
            ("restore", "ok"),
            ("restore", "error"),
            ("tag", "ok"),
            ("forget", "ok"),
            ("undo-forget", "ok"),
            ("gc", "ok"),
        ]
        .map(|(k, o)| (k.to_string(), o.to_string()))
    );
    let first = &all[0];
    assert_eq!(first["source"], "p");
    assert_eq!(first["snapshots"][0], b1["snapshot"]);
    assert_eq!(first["details"]["files"], 1);
    assert!(!first["user"].as_str().unwrap().is_empty());
    assert!(!first["host"].as_str().unwrap().is_empty());
    assert!(all[4]["error"].as_str().unwrap().contains("not empty"));
    let forget = &all[6];
    assert_eq!(forget["details"]["removed"], 1);
    assert_eq!(forget["snapshots"].as_array().unwrap().len(), 1);
    // Filters.
    let restores = belay_json(&repo, &["journal", "--kind", "restore"]);
    assert_eq!(restores.as_array().unwrap().len(), 2);
    let by_source = belay_json(&repo, &["journal", "--source", "p", "-n", "1"]);
    assert_eq!(kinds(&by_source), [("tag".to_string(), "ok".to_string())]);
    let future = belay_json(&repo, &["journal", "--since", "2200-01-01"]);
    assert_eq!(future.as_array().unwrap().len(), 0);
    // One write-once file per entry.
    assert_eq!(journal_files(&repo), 9);
}

fn journal_files(repo: &Path) -> usize {
    fs::read_dir(repo.join("journal"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count()
}

#[test]
fn many_writers_at_once_lose_no_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    belay(&repo).arg("init").assert().success();
    let mut children = Vec::new();
    for i in 0..8 {
        let src = tmp.path().join(format!("src{i}"));
        fs::create_dir(&src).unwrap();
        fs::write(src.join("f"), format!("{i}\n")).unwrap();
        let mut c = std::process::Command::new(belay_suite::cli::belay_bin());
        c.arg("-r")
            .arg(&repo)
            .args(["-q", "backup"])
            .arg(&src)
            .env("BELAY_CACHE_DIR", tmp.path().join(format!("cache{i}")));
        children.push(c.spawn().unwrap());
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let all = belay_json(&repo, &["journal", "--kind", "backup"]);
    let mut sources: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"].as_str().unwrap().to_string())
        .collect();
    sources.sort();
    assert_eq!(
        sources,
        (0..8).map(|i| format!("src{i}")).collect::<Vec<_>>()
    );
}
