//! The config file through the binary: default repository, default
//! excludes, per-source retention for `forget` without flags, precedence of
//! flags and BELAY_* variables, and one clear line for a bad file.

use std::fs;
use std::path::Path;

use belay_suite::cli::belay_bin;

/// `belay ARGS` with only the given config (no -r, no BELAY_REPO).
fn belay_with(config: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(belay_bin());
    c.env_remove("BELAY_REPO")
        .env("BELAY_CONFIG", config)
        .env("BELAY_CACHE_DIR", belay_suite::cli::test_cache_dir());
    c
}

fn json(c: &mut assert_cmd::Command) -> serde_json::Value {
    let out = c.arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn repository_excludes_and_retention_come_from_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let cfg = tmp.path().join("config.toml");
    fs::write(
        &cfg,
        format!(
            "repository = {:?}\n\n[backup]\nexclude = [\"*.pyc\"]\n\n[retention.\"*\"]\nkeep-last = 2\n\n[retention.keep-all]\nkeep-last = \"unlimited\"\n",
            repo.display().to_string()
        ),
    )
    .unwrap();
    belay_with(&cfg).arg("init").assert().success();
    assert!(repo.join("config").exists());
    let src = tmp.path().join("proj");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("main.py"), "print(1)\n").unwrap();
    fs::write(src.join("main.pyc"), "junk").unwrap();
    for i in 0..4 {
        fs::write(src.join("data.txt"), format!("{i}\n")).unwrap();
        for name in ["proj", "keep-all"] {
            json(belay_with(&cfg).args(["backup", src.to_str().unwrap(), "--name", name]));
        }
    }
    let ls = json(belay_with(&cfg).args(["ls", "proj"]));
    let names: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["data.txt", "main.py"],
        "*.pyc excluded by the config"
    );

    // forget without flags: the config's policies; --dry-run changes nothing.
    let dry = json(belay_with(&cfg).args(["forget", "--dry-run"]));
    assert_eq!(dry["removed"], 2, "{dry:#}");
    assert_eq!(
        json(belay_with(&cfg).args(["log"]))
            .as_array()
            .unwrap()
            .len(),
        8
    );
    let done = json(belay_with(&cfg).arg("forget"));
    assert_eq!(done["removed"], 2);
    assert_eq!(
        json(belay_with(&cfg).args(["log"]))
            .as_array()
            .unwrap()
            .len(),
        6
    );
    let sources = done["sources"].as_array().unwrap();
    let removed_of = |name: &str| {
        sources.iter().find(|s| s["source"] == name).unwrap()["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["action"] == "remove")
            .count()
    };
    assert_eq!(removed_of("proj"), 2);
    assert_eq!(removed_of("keep-all"), 0, "keep-all keeps everything");
    // Flags win over the config: proj keeps 1 of 2, keep-all 1 of 4.
    let flags = json(belay_with(&cfg).args(["forget", "--keep-last", "1", "--dry-run"]));
    assert_eq!(flags["removed"], 4, "{flags}");

    // -r and BELAY_REPO win over the config's repository.
    let other = tmp.path().join("other");
    belay_with(&cfg)
        .arg("-r")
        .arg(&other)
        .arg("init")
        .assert()
        .success();
    let log = json(belay_with(&cfg).env("BELAY_REPO", &other).arg("log"));
    assert_eq!(log.as_array().unwrap().len(), 0);
}

#[test]
fn a_bad_config_is_one_line_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.toml");
    fs::write(
        &cfg,
        "repository = \"/tmp/r\"\n[boards]\npico = { prot = \"/dev/ttyACM0\" }\n",
    )
    .unwrap();
    let out = belay_with(&cfg).arg("log").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&format!("{}, line 3", cfg.display())), "{err}");
    assert!(err.contains("prot"), "{err}");
    // An explicit config that does not exist is an error too.
    let out = belay_with(&tmp.path().join("missing.toml"))
        .arg("log")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}
