//! Small command-line habits: `diff --exit-code`, shell completions and man
//! pages generated from the clap definitions.

use std::fs;

use belay_suite::cli::{belay, belay_json};

#[test]
fn diff_exit_code_is_one_only_when_something_differs() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    belay(&repo).arg("init").assert().success();
    let src = tmp.path().join("proj");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("main.py"), "print(1)\n").unwrap();
    belay_json(&repo, &["backup", src.to_str().unwrap(), "--name", "p"]);
    belay_json(
        &repo,
        &[
            "backup",
            src.to_str().unwrap(),
            "--name",
            "p",
            "--allow-empty",
        ],
    );
    belay(&repo)
        .args(["diff", "p~1", "p", "--exit-code"])
        .assert()
        .code(0);
    // Without --exit-code a difference is still success.
    fs::write(src.join("main.py"), "print(2)\n").unwrap();
    belay(&repo).args(["diff", "p"]).arg(&src).assert().code(0);
    belay(&repo)
        .args(["diff", "p"])
        .arg(&src)
        .arg("--exit-code")
        .assert()
        .code(1);
    belay_json(&repo, &["backup", src.to_str().unwrap(), "--name", "p"]);
    belay(&repo)
        .args(["diff", "p~1", "p", "--exit-code", "--name-only"])
        .assert()
        .code(1)
        .stdout("main.py\n");
    belay(&repo)
        .args(["diff", "p~2", "p~1", "--exit-code", "--json"])
        .assert()
        .code(0);
}

#[test]
fn completions_and_man_pages_cover_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("unused");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = belay(&repo).args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("export") && text.contains("restore"),
            "{shell}: {text}"
        );
    }
    let out = belay(&repo).arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.contains(".TH belay 1") && page.contains("backup"),
        "{page}"
    );
    let dir = tmp.path().join("man1");
    belay(&repo)
        .args(["man", "--dir"])
        .arg(&dir)
        .assert()
        .success();
    let backup = fs::read_to_string(dir.join("belay-backup.1")).unwrap();
    assert!(
        backup.contains("exclude") && backup.contains("belay\\-backup"),
        "{backup}"
    );
    assert!(dir.join("belay.1").exists() && dir.join("belay-import.1").exists());
    belay(&repo).args(["completions", "tcsh"]).assert().code(2);
}
