//! `belay watch` through the real binary: test boards "plugged in" as
//! symlinks to their pseudo-terminals in a folder watched with a glob (as
//! udev's /dev/serial/by-id links), one JSON line per event.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use belay_suite::board::{BoardOptions, TestBoard};
use belay_suite::cli::belay_bin;
use belay_suite::env::TestRepo;
use belay_suite::fsutil::noise;
use serde_json::Value;

/// One board test at a time: an unplugged test board frees its PTY number,
/// and a board another test starts meanwhile may get it, so a link of this
/// test would "plug in" that test's board.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial_test() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A test repository and a folder of links standing for
/// `/dev/serial/by-id/`.
struct Env {
    t: TestRepo,
    links: PathBuf,
}

impl std::ops::Deref for Env {
    type Target = TestRepo;
    fn deref(&self) -> &TestRepo {
        &self.t
    }
}

impl Env {
    fn new() -> Env {
        let t = TestRepo::new();
        let links = t.dir("by-id");
        fs::create_dir_all(&links).unwrap();
        Env { t, links }
    }

    /// "Plug in" a board: a link named usb-MicroPython_NAME to its PTY.
    fn plug(&self, name: &str, board: &TestBoard) -> PathBuf {
        let link = self.link(name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&board.path, &link).unwrap();
        link
    }

    fn link(&self, name: &str) -> PathBuf {
        self.links.join(format!("usb-MicroPython_{name}"))
    }

    fn glob(&self) -> String {
        format!("{}/usb-MicroPython*", self.links.display())
    }

    /// `belay watch --json` with `args`, its events read line by line.
    /// `--timeout` bounds it, so a test that waits for an event that never
    /// comes ends when watch does (the channel closes).
    fn watch(&self, config: &str, args: &[&str]) -> Watch {
        let config_path = self.root.join("watch.toml");
        fs::write(&config_path, config).unwrap();
        let mut child = Command::new(belay_bin())
            .arg("-r")
            .arg(&self.repo)
            .env("BELAY_CACHE_DIR", &self.cache)
            .env_remove("BELAY_REPO")
            .arg("--config")
            .arg(&config_path)
            .args(["--json", "watch", "--settle", "0", "--interval", "100ms"])
            .args(["--timeout", "10m"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not one JSON object per line: {line:?}: {e}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Watch {
            child,
            events: rx,
            seen: Vec::new(),
        }
    }
}

struct Watch {
    child: Child,
    events: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Watch {
    /// The next event of kind `event` (and for `port`, if given); every
    /// event read on the way is kept in `seen`.
    fn wait_for(&mut self, event: &str, port: Option<&Path>) -> Value {
        loop {
            let Ok(v) = self.events.recv() else {
                let out = stderr_of(&mut self.child);
                panic!(
                    "watch ended before a {event:?} event; events: {:#?}\nstderr: {out}",
                    self.seen
                );
            };
            self.seen.push(v.clone());
            if v["event"] == event
                && port.is_none_or(|p| v["port"].as_str() == Some(p.to_str().unwrap()))
            {
                return v;
            }
        }
    }

    /// Like [`Watch::wait_for`], unless such an event was read already
    /// (an unplug's "gone" and the backup's "failed" come in either order).
    fn seen_or_wait_for(&mut self, event: &str, port: &Path) -> Value {
        let mine = |v: &Value| v["event"] == event && v["port"].as_str() == port.to_str();
        match self.seen.iter().find(|v| mine(v)) {
            Some(v) => v.clone(),
            None => self.wait_for(event, Some(port)),
        }
    }

    /// Wait for watch to exit; its exit status and stderr.
    fn finish(mut self) -> (Vec<Value>, std::process::ExitStatus, String) {
        self.seen.extend(self.events.iter());
        let err = stderr_of(&mut self.child);
        let status = self.child.wait().unwrap();
        (self.seen, status, err)
    }
}

/// The stderr of a watch that has ended.
fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let _ = child.wait();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    err
}

fn image(dir: &Path, seed: u64, big: bool) {
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::write(dir.join("main.py"), format!("print('board {seed}')\n")).unwrap();
    fs::write(dir.join("lib/util.py"), "def f():\n    return 1\n").unwrap();
    fs::write(dir.join("lib/data.bin"), noise(20_000, seed)).unwrap();
    if big {
        // Pulled in name order: the a*.bin files before the unplug at
        // 200,000 bytes, big.bin across it.
        for i in 0..5 {
            fs::write(dir.join(format!("a{i}.bin")), noise(30_000, seed + i)).unwrap();
        }
        fs::write(dir.join("big.bin"), noise(300 * 1024, seed + 100)).unwrap();
    }
}

fn walk_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk_size(&e.path())
            } else {
                e.metadata().unwrap().len()
            }
        })
        .sum()
}

fn board(img: &Path, uid: &str, opts: BoardOptions) -> TestBoard {
    TestBoard::start(
        img,
        &BoardOptions {
            unique_id: Some(uid.into()),
            ..opts
        },
    )
}

fn events_of<'a>(seen: &'a [Value], kind: &str) -> Vec<&'a Value> {
    seen.iter().filter(|v| v["event"] == kind).collect()
}

#[test]
fn watch_backs_up_each_board_once_per_plug_in_several_at_once() {
    let _one = serial_test();
    let env = Env::new();
    let (img_a, img_b) = (env.root.join("a"), env.root.join("b"));
    image(&img_a, 1, false);
    image(&img_b, 2, false);
    let (uid_a, uid_b) = ("aaaa0000aaaa0000", "bbbb0000bbbb0000");
    let a = board(&img_a, uid_a, BoardOptions::unthrottled());
    let b = board(&img_b, uid_b, BoardOptions::unthrottled());
    let link_a = env.plug("a", &a);
    let link_b = env.plug("b", &b);
    // Something else in the folder is not a board of the glob, and a
    // second link to b is the same board (backed up once).
    fs::write(env.links.join("usb-Other"), "").unwrap();
    env.plug("b2", &b);

    let mut w = env.watch("", &["--port", &env.glob(), "--max-backups", "3"]);
    let first = w.wait_for("backup", None);
    let second = w.wait_for("backup", None);
    // Both boards were being backed up at the same time: both backups
    // started before either finished.
    let order: Vec<&str> = w
        .seen
        .iter()
        .map(|v| v["event"].as_str().unwrap())
        .filter(|e| e.starts_with("backup"))
        .collect();
    assert_eq!(
        order,
        ["backup-started", "backup-started", "backup", "backup"],
        "{:#?}",
        w.seen
    );
    let mut sources = [
        first["source"].as_str().unwrap(),
        second["source"].as_str().unwrap(),
    ];
    sources.sort();
    assert_eq!(sources, [uid_a, uid_b], "named by machine.unique_id");
    assert_eq!(first["unchanged"], false);
    assert_eq!(events_of(&w.seen, "appeared").len(), 2, "{:#?}", w.seen);

    // Unplug a: it is gone; plug it in again: one more backup, which finds
    // nothing changed and saves nothing. b, plugged in all along, is not
    // backed up again.
    fs::remove_file(&link_a).unwrap();
    w.wait_for("gone", Some(&link_a));
    env.plug("a", &a);
    w.wait_for("appeared", Some(&link_a));
    let third = w.wait_for("backup", Some(&link_a));
    assert_eq!(third["source"], uid_a);
    assert_eq!(third["unchanged"], true, "{third}");
    assert_eq!(third["bytes_transferred"], 0);
    let (seen, status, err) = w.finish();
    assert!(status.success(), "{err}");
    let stopped = events_of(&seen, "stopped");
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0]["reason"], "max-backups");
    assert_eq!(stopped[0]["backups"], 3);
    assert_eq!(events_of(&seen, "backup-started").len(), 3, "{seen:#?}");
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 2, "one snapshot per board: {snaps:#?}");
    // Each backup is in the journal.
    let journal = env.json(&["journal", "--kind", "backup"]);
    assert_eq!(journal.as_array().unwrap().len(), 3, "{journal:#}");

    // --forget applies the config's retention policy after each backup.
    let config = "[retention.\"*\"]\nkeep-last = 1\n";
    let mut w = env.watch(
        config,
        &[
            "--port",
            link_b.to_str().unwrap(),
            "--forget",
            "--allow-empty",
            "--exit-when-idle",
        ],
    );
    let saved = w.wait_for("backup", Some(&link_b));
    assert_eq!(saved["unchanged"], false, "--allow-empty saves one");
    let forgot = w.wait_for("forget", Some(&link_b));
    assert_eq!(forgot["source"], uid_b);
    assert_eq!(forgot["removed"], 1, "{forgot}");
    let (seen, status, err) = w.finish();
    assert!(status.success(), "{err}");
    assert_eq!(events_of(&seen, "stopped")[0]["reason"], "idle");
    let live = |source: &str| -> Vec<Value> {
        let log = env.json(&["log", "--source", source]);
        log.as_array()
            .unwrap()
            .iter()
            .filter(|s| s["forgotten"] != true)
            .cloned()
            .collect()
    };
    let b_log = live(uid_b);
    assert_eq!(b_log.len(), 1, "{b_log:#?}");
    assert_eq!(b_log[0]["id"], saved["snapshot"]);
    assert_eq!(live(uid_a).len(), 1);
}

#[test]
fn watch_survives_an_unplug_mid_backup_and_the_next_plug_in_completes() {
    let _one = serial_test();
    let env = Env::new();
    let img = env.root.join("img");
    image(&img, 3, true);
    let uid = "cccc0000cccc0000";
    let files = [
        "main.py",
        "lib/util.py",
        "lib/data.bin",
        "a0.bin",
        "a4.bin",
        "big.bin",
    ];
    let total: u64 = walk_size(&img);
    let faulty = board(
        &img,
        uid,
        BoardOptions {
            unplug_after_bytes: Some(200_000),
            ..BoardOptions::unthrottled()
        },
    );
    let link = env.plug("c", &faulty);
    let mut w = env.watch("", &["--port", &env.glob(), "--max-backups", "1"]);
    let failed = w.wait_for("failed", Some(&link));
    let msg = failed["error"].as_str().unwrap();
    assert!(msg.contains("no snapshot"), "{msg}");
    assert!(env.snapshots().is_empty(), "no partial snapshot");
    w.seen_or_wait_for("gone", &link);
    // As udev removes a by-id link on unplug (the dangling one would come
    // back to life when the next board gets the same PTY number, before
    // that board is ready).
    fs::remove_file(&link).unwrap();
    drop(faulty);

    // Plugged in again (healthy this time): watch is still running and
    // backs it up, without pulling again what the cut backup stored.
    let healthy = board(&img, uid, BoardOptions::unthrottled());
    env.plug("c", &healthy);
    let done = w.wait_for("backup", Some(&link));
    assert_eq!(done["source"], uid);
    let pulled = done["bytes_transferred"].as_u64().unwrap();
    assert!(
        pulled < total,
        "the second plug-in reuses what the first stored: pulled {pulled} of {total}"
    );
    let (seen, status, err) = w.finish();
    assert!(
        status.success(),
        "a failure followed by a success on the same port ends well: {err}"
    );
    assert_eq!(events_of(&seen, "failed").len(), 1, "{seen:#?}");
    let out = env.root.join("out");
    env.cmd(&["restore", uid, "--to"])
        .arg(&out)
        .assert()
        .success();
    for p in files {
        assert_eq!(
            fs::read(out.join(p)).unwrap(),
            fs::read(img.join(p)).unwrap()
        );
    }
    // The failure is in the journal too.
    let j = env.json(&["journal", "--kind", "backup"]);
    let outcomes: Vec<&str> = j
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.contains(&"error") && outcomes.contains(&"ok"),
        "{j:#}"
    );
}

#[test]
fn watch_without_boards_and_bad_input() {
    let env = Env::new();
    // Nothing plugged in: --exit-when-idle ends at once.
    let w = env.watch("", &["--port", &env.glob(), "--exit-when-idle"]);
    let (seen, status, err) = w.finish();
    assert!(status.success(), "{err}");
    assert_eq!(events_of(&seen, "stopped")[0]["reason"], "idle");
    assert_eq!(events_of(&seen, "stopped")[0]["backups"], 0);

    // The config file's [watch] section says what to watch when no flag does.
    let config = format!("[watch]\nport = [{:?}]\n", env.glob());
    let (seen, status, err) = env.watch(&config, &["--exit-when-idle"]).finish();
    assert!(status.success(), "{err}");
    assert_eq!(
        events_of(&seen, "watching")[0]["watching"],
        env.glob().as_str()
    );

    // SIGTERM (a service being stopped) ends watch with 0; Ctrl-C with 130.
    for (sig, code, reason) in [
        (libc::SIGTERM, 0, "interrupted"),
        (libc::SIGINT, 130, "interrupted"),
    ] {
        let mut w = env.watch("", &["--port", &env.glob()]);
        w.wait_for("watching", None);
        // SAFETY: a signal to the child this test started.
        unsafe { libc::kill(w.child.id() as i32, sig) };
        let (seen, status, err) = w.finish();
        assert_eq!(status.code(), Some(code), "signal {sig}: {err}");
        assert_eq!(
            events_of(&seen, "stopped")[0]["reason"],
            reason,
            "{seen:#?}"
        );
    }

    for (args, want) in [
        (&["watch", "--usb", "pico"][..], "--usb"),
        (&["watch", "--forget"][..], "retention"),
        (&["watch", "--max-backups", "0"][..], "--max-backups"),
        (&["watch", "--timeout", "soon"][..], "--timeout"),
    ] {
        let out = env.cmd(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    let help = env.cmd(&["watch", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples:"));
}
