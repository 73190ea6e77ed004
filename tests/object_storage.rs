//! Repositories on S3-compatible object storage, through the real binary,
//! against a real S3 server started by the tests (`rclone serve s3` on
//! loopback; `tests/setup.sh` installs it). The folder, history, gc and
//! crash tests also run against it as a whole (`tests/support/matrix.rs`);
//! these are what only object storage has: a server that fails or dies mid-backup, and the
//! errors a user meets (wrong key, no bucket, no server).

use std::fs;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use belay_suite::env::TestRepo;
use belay_suite::fsutil::{assert_same_tree, noise};
use belay_suite::s3::{FaultProxy, S3Server};
use serde_json::Value;

/// `belay --json -r LOCATION ARGS` with the server's credentials.
fn on(t: &TestRepo, s3: &S3Server, location: &str, args: &[&str]) -> std::process::Output {
    let mut c = t.cmd_at(location.as_ref(), &["--json"]);
    for (k, v) in s3.env() {
        c.env(k, v);
    }
    c.args(args)
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap()
}

fn ok(out: std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One line on stderr, exit code 1, no panic; returns it.
fn one_line_error(out: std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn tree(dir: &Path, files: usize, seed: u64) {
    fs::create_dir_all(dir.join("lib")).unwrap();
    for i in 0..files {
        let len = 1_000 + (i * 7_919) % 300_000;
        fs::write(
            dir.join("lib").join(format!("f{i}.bin")),
            noise(len, seed + i as u64),
        )
        .unwrap();
    }
    fs::write(dir.join("main.py"), b"import lib\n").unwrap();
}

#[test]
fn backups_through_a_server_answering_503_succeed_and_stay_consistent() {
    let s3 = S3Server::start();
    // Every third request is refused with 503 SlowDown.
    let proxy = FaultProxy::start(s3.port(), 3);
    let location = format!("s3:http://127.0.0.1:{}/belay-test/flaky", proxy.port());
    let t = TestRepo::new();
    let src = t.dir("src");
    tree(&src, 20, 1);
    ok(on(&t, &s3, &location, &["init"]));
    ok(on(
        &t,
        &s3,
        &location,
        &["backup", src.to_str().unwrap(), "--name", "src"],
    ));
    fs::write(src.join("lib/f3.bin"), noise(90_000, 99)).unwrap();
    ok(on(
        &t,
        &s3,
        &location,
        &["backup", src.to_str().unwrap(), "--name", "src"],
    ));
    let check = ok(on(&t, &s3, &location, &["check", "--read-data"]));
    assert_eq!(
        check["problems"].as_array().map_or(0, |p| p.len()),
        0,
        "{check}"
    );
    let out = t.dir("out");
    ok(on(
        &t,
        &s3,
        &location,
        &["restore", "src", "--to", out.to_str().unwrap()],
    ));
    assert_same_tree(&src, &out);
    assert!(proxy.failed() > 0, "the proxy refused nothing");
}

#[test]
fn a_server_killed_mid_backup_leaves_a_consistent_repository() {
    let mut s3 = S3Server::start();
    let t = TestRepo::new();
    let src = t.dir("src");
    tree(&src, 30, 7);
    let location = s3.location();
    ok(on(&t, &s3, &location, &["init"]));
    ok(on(
        &t,
        &s3,
        &location,
        &["backup", src.to_str().unwrap(), "--name", "src"],
    ));
    let first = ok(on(&t, &s3, &location, &["log"]));
    // A second, bigger backup; the server dies once the backup has stored
    // its objects and before it commits (a pause point holds it there).
    tree(&src, 120, 1_000);
    let pause = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(belay_suite::cli::belay_bin());
    child
        .args([
            "-r",
            &location,
            "--json",
            "backup",
            src.to_str().unwrap(),
            "--name",
            "src",
        ])
        .env("BELAY_CACHE_DIR", &t.cache)
        .env("BELAY_CONFIG", t.config())
        .env("BELAY_TEST_PAUSE_AT", "backup-stored")
        .env("BELAY_TEST_PAUSE_DIR", pause.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in s3.env() {
        child.env(k, v);
    }
    let child = child.spawn().unwrap();
    let reached = pause.path().join("backup-stored.reached");
    for _ in 0..6000 {
        if reached.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(reached.exists(), "the backup never reached backup-stored");
    s3.kill();
    fs::write(pause.path().join("backup-stored.go"), b"").unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()).unwrap());
    let out = rx
        .recv_timeout(Duration::from_secs(240))
        .expect("a backup against a dead server must end (retries are bounded)");
    let err = one_line_error(out);
    assert!(
        err.contains("cannot reach") || err.contains("connect"),
        "{err}"
    );
    // Back up: the repository is as before the failed backup, checks clean,
    // and the backup, run again, completes.
    s3.restart();
    let location = s3.location();
    assert_eq!(ok(on(&t, &s3, &location, &["log"])), first);
    let check = ok(on(&t, &s3, &location, &["check", "--read-data"]));
    assert_eq!(
        check["problems"].as_array().map_or(0, |p| p.len()),
        0,
        "{check}"
    );
    ok(on(
        &t,
        &s3,
        &location,
        &["backup", src.to_str().unwrap(), "--name", "src"],
    ));
    let out = t.dir("out");
    ok(on(
        &t,
        &s3,
        &location,
        &["restore", "src", "--to", out.to_str().unwrap()],
    ));
    assert_same_tree(&src, &out);
}

#[test]
fn wrong_key_missing_bucket_and_no_server_are_one_clear_line_each() {
    let s3 = S3Server::start();
    let t = TestRepo::new();
    ok(on(&t, &s3, &s3.location(), &["init"]));

    let mut c = t.cmd_at(s3.location().as_ref(), &["log"]);
    for (k, v) in s3.env() {
        c.env(k, v);
    }
    c.env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let err = one_line_error(c.output().unwrap());
    assert!(err.contains("access denied"), "{err}");
    assert!(
        !err.contains("not-the-secret"),
        "a secret was printed: {err}"
    );

    let err = one_line_error(on(
        &t,
        &s3,
        &s3.location_with("no-such-bucket", "r"),
        &["log"],
    ));
    assert!(
        err.contains("no-such-bucket") && err.contains("does not exist"),
        "{err}"
    );

    let err = one_line_error(on(
        &t,
        &s3,
        &s3.location_with("belay-test", "empty"),
        &["log"],
    ));
    assert!(err.contains("not a belay repository"), "{err}");

    let dead = "s3:http://127.0.0.1:9/belay-test/repo";
    let err = one_line_error(on(&t, &s3, dead, &["log"]));
    assert!(err.contains("cannot reach"), "{err}");

    let err = one_line_error(on(&t, &s3, "s3:http://127.0.0.1:9", &["log"]));
    assert!(err.contains("bucket"), "{err}");
}
