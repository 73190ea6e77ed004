//! End-to-end tests of `belay backup serial:…` and `belay restore … --to
//! serial:…` through the real binary against the test board (the real
//! MicroPython interpreter on a pseudo-terminal).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use belay_suite::board::{BoardOptions, RawPaste, TestBoard};
use belay_suite::env::TestRepo;
use belay_suite::fsutil::noise;
use serde_json::Value;

type Env = TestRepo;

fn serial(b: &TestBoard) -> String {
    format!("serial:{}", b.path.display())
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            fs::copy(e.path(), &t).unwrap();
        }
    }
}

fn example_image() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/board-image")
}

/// The example image plus the awkward cases: every byte value, names with
/// spaces and non-ASCII characters, empty files and directories, and
/// optionally a 300 KB file.
fn build_image(dir: &Path, big: bool) {
    copy_dir(&example_image(), dir);
    let all: Vec<u8> = (0..=255u8).cycle().take(256 * 9).collect();
    fs::write(dir.join("all bytes.bin"), &all).unwrap();
    fs::create_dir_all(dir.join("données/日本")).unwrap();
    fs::write(dir.join("données/café menu.txt"), "crème brûlée\n").unwrap();
    fs::write(dir.join("données/日本/空.txt"), b"").unwrap();
    fs::create_dir_all(dir.join("empty dir")).unwrap();
    fs::write(
        dir.join("ctrl.bin"),
        b"\x01\x02\x03\x04\x05\x1b[\x1bA\r\n\x00",
    )
    .unwrap();
    if big {
        fs::write(dir.join("data/big.bin"), noise(300 * 1024, 7)).unwrap();
    }
}

/// Path → (is_dir, content) of a folder, for comparisons of content only
/// (boards keep no permissions or settable times).
fn content(root: &Path) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    fn go(root: &Path, d: &Path, out: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        for e in fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            if e.file_type().unwrap().is_dir() {
                out.insert(rel, None);
                go(root, &e.path(), out);
            } else {
                out.insert(rel, Some(fs::read(e.path()).unwrap()));
            }
        }
    }
    go(root, root, &mut out);
    out
}

fn assert_same_content(a: &Path, b: &Path) {
    let ca = content(a);
    let cb = content(b);
    let ka: Vec<String> = ca
        .keys()
        .map(|k| String::from_utf8_lossy(k).into())
        .collect();
    let kb: Vec<String> = cb
        .keys()
        .map(|k| String::from_utf8_lossy(k).into())
        .collect();
    assert_eq!(
        ka,
        kb,
        "{} and {} hold different paths",
        a.display(),
        b.display()
    );
    for (k, v) in &ca {
        assert!(
            cb[k] == *v,
            "{} differs between {} and {}",
            String::from_utf8_lossy(k),
            a.display(),
            b.display()
        );
    }
}

fn total_bytes(dir: &Path) -> u64 {
    content(dir)
        .values()
        .map(|v| v.as_ref().map_or(0, |d| d.len() as u64))
        .sum()
}

fn num(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"))
}

#[test]
fn backup_restore_roundtrip_then_incremental() {
    let env = TestRepo::new();
    let img = env.dir("img");
    build_image(&img, true);
    let opts = BoardOptions {
        unique_id: Some("e6614103e7452d2f".into()),
        ..BoardOptions::unthrottled()
    };
    let board = TestBoard::start(&img, &opts);
    let port = serial(&board);

    let first = env.json(&["backup", &port]);
    assert_eq!(
        first["source"], "e6614103e7452d2f",
        "named after the unique id"
    );
    assert_eq!(num(&first, "bytes_transferred"), total_bytes(&img));
    assert!(num(&first, "wire_bytes") > 0);
    let out = env.dir("out");
    env.cmd(&["restore", "e6614103e7452d2f", "--to"])
        .arg(&out)
        .assert()
        .success();
    assert_same_content(&img, &out);

    let show = env.json(&["show", "e6614103e7452d2f"]);
    assert_eq!(show["device"]["unique_id"], "e6614103e7452d2f");
    assert!(
        show["device"]["firmware"]
            .as_str()
            .unwrap()
            .contains("v1.27")
    );
    assert!(show["device"]["fs_size"].as_str().is_some());
    assert_eq!(show["device"]["port"], board.path.display().to_string());

    // Unchanged: nothing crosses the line but hashes.
    let again = env.json(&["backup", &port]);
    assert_eq!(num(&again, "bytes_transferred"), 0);
    assert_eq!(num(&again, "files_read"), 0);
    assert_eq!(again["parent"], first["snapshot"]);
    // ... and adds no snapshot (as git refuses an empty commit), unless asked.
    assert_eq!(again["unchanged"], true, "{again}");
    assert_eq!(again["snapshot"], first["snapshot"]);
    assert_eq!(
        env.snapshots().len(),
        1,
        "an unchanged board adds no snapshot"
    );
    let out = env.cmd(&["backup", &port]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no changes since snapshot"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let forced = env.json(&["backup", &port, "--allow-empty"]);
    assert_eq!(forced["unchanged"], false);
    assert_eq!(forced["parent"], first["snapshot"]);
    assert_eq!(env.snapshots().len(), 2);
    // Renamed, the board's history continues under the new name: found by
    // its unique id, unchanged, so nothing is added.
    env.json(&["rename", "e6614103e7452d2f", "greenhouse-1"]);
    let renamed = env.json(&["backup", &port]);
    assert_eq!(renamed["source"], "greenhouse-1", "{renamed}");
    assert_eq!(renamed["unchanged"], true, "{renamed}");
    assert_eq!(renamed["snapshot"], forced["snapshot"]);
    assert!(
        env.snapshots()
            .iter()
            .all(|s| s["source"] == "greenhouse-1"),
        "{:#?}",
        env.snapshots()
    );
    drop(board);

    // One file changed (and one renamed): only the changed file is pulled.
    let img2 = env.dir("img2");
    copy_dir(&img, &img2);
    fs::write(img2.join("config.json"), "{\"changed\": true}\n").unwrap();
    fs::rename(img2.join("data/big.bin"), img2.join("data/big-renamed.bin")).unwrap();
    let board = TestBoard::start(&img2, &opts);
    let third = env.json(&["backup", &serial(&board), "-m", "one change"]);
    assert_eq!(num(&third, "files_read"), 1);
    assert_eq!(
        num(&third, "bytes_transferred"),
        fs::metadata(img2.join("config.json")).unwrap().len()
    );
    // The board left in its friendly REPL: a second session works at once.
    let fourth = env.json(&["backup", &serial(&board)]);
    assert_eq!(num(&fourth, "bytes_transferred"), 0);
    drop(board);

    // Another board with the same files: nothing is pulled (the cache knows
    // every sha256), and it gets its own history.
    let other = TestBoard::start(
        &img2,
        &BoardOptions {
            unique_id: Some("0102030405060708".into()),
            ..BoardOptions::unthrottled()
        },
    );
    let globals = || {
        let out = std::process::Command::new(belay_suite::board::mpremote())
            .args(["connect", other.path.to_str().unwrap(), "resume", "exec"])
            .arg("print('globals:', sorted(globals()))")
            .output()
            .expect("run mpremote");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains("globals:"),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let before = globals();
    let o = env.json(&["backup", &serial(&other)]);
    assert_eq!(o["source"], "0102030405060708");
    assert_eq!(num(&o, "bytes_transferred"), 0);
    assert!(o["parent"].is_null());

    // --name is remembered: the next backup without it continues there.
    let named = env.json(&["backup", &serial(&other), "--name", "greenhouse-3"]);
    assert_eq!(named["source"], "greenhouse-3");
    assert_eq!(
        named["parent"], o["snapshot"],
        "history continues under the new name"
    );
    let next = env.json(&["backup", &serial(&other)]);
    assert_eq!(next["source"], "greenhouse-3");
    // --exclude works on board paths.
    let x = env.json(&[
        "backup",
        &serial(&other),
        "--name",
        "no-blobs",
        "--exclude",
        "*.bin",
    ]);
    let listing = env.json(&["ls", "-R", x["snapshot"].as_str().unwrap()]);
    let paths: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"config.json"), "{paths:?}");
    assert!(!paths.iter().any(|p| p.ends_with(".bin")), "{paths:?}");
    // The board is left as found: in its friendly REPL, with its globals
    // as they were (mpremote, an independent client, checks).
    assert_eq!(globals(), before);
    // Pulls write nothing on the board.
    let dump = other.stop_and_dump();
    assert_same_content(&img2, &dump);
}

#[test]
fn restore_to_a_changed_board_with_and_without_delete() {
    let env = TestRepo::new();
    let img = env.dir("img");
    build_image(&img, false);
    let opts = BoardOptions {
        unique_id: Some("aa00aa00aa00aa00".into()),
        ..BoardOptions::unthrottled()
    };
    let board = TestBoard::start(&img, &opts);
    let snap = env.json(&["backup", &serial(&board)]);
    let snap_id = snap["snapshot"].as_str().unwrap().to_string();
    drop(board);

    // The board changes: a file edited, one added, one removed, a new dir.
    let changed = env.dir("changed");
    copy_dir(&img, &changed);
    fs::write(changed.join("main.py"), "print('new firmware')\n").unwrap();
    fs::write(changed.join("extra.txt"), "not in the snapshot\n").unwrap();
    fs::remove_file(changed.join("lib/sensors/soil.py")).unwrap();
    fs::create_dir_all(changed.join("new dir/sub")).unwrap();
    fs::write(changed.join("new dir/sub/f.bin"), [0u8, 1, 2, 3]).unwrap();
    // Left by an interrupted restore: cleaned up by the next one.
    fs::write(changed.join("lib/net/wifi.py.belay~"), "partial").unwrap();

    // Without --delete: the snapshot's files come back, extras stay.
    let board = TestBoard::start(&changed, &opts);
    let dry = env.json(&["restore", &snap_id, "--to", &serial(&board), "--dry-run"]);
    assert_eq!(dry["changes"]["write"].as_array().unwrap().len(), 2);
    let r = env.json(&["restore", &snap_id, "--to", &serial(&board), "--yes"]);
    assert_eq!(
        num(&r, "files"),
        2,
        "only main.py and soil.py are sent: {r}"
    );
    assert!(num(&r, "unchanged") > 5);
    let safety = r["safety_snapshot"].as_str().unwrap().to_string();
    let dump = board.stop_and_dump();
    let mut expected = content(&img);
    for (k, v) in content(&changed) {
        expected.entry(k).or_insert(v);
    }
    expected.remove(&b"lib/net/wifi.py.belay~"[..]);
    assert_eq!(
        content(&dump).keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (k, v) in &expected {
        assert!(content(&dump)[k] == *v, "{}", String::from_utf8_lossy(k));
    }

    // The safety snapshot holds the pre-restore state and says what it is.
    let s = env.json(&["show", &safety]);
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("safety snapshot before restore")
    );
    assert_eq!(s["meta"]["belay.restore_of"], snap_id.as_str());
    let pre = env.dir("pre");
    env.cmd(&["restore", &safety, "--to"])
        .arg(&pre)
        .assert()
        .success();
    assert_same_content(&changed, &pre);

    // With --delete: the board ends up exactly as the snapshot.
    let board = TestBoard::start(&changed, &opts);
    let r = env.json(&[
        "restore",
        &snap_id,
        "--to",
        &serial(&board),
        "--yes",
        "--delete",
    ]);
    assert!(num(&r, "removed") >= 5, "{r}");
    let dump = board.stop_and_dump();
    assert_same_content(&img, &dump);

    // A board that already matches: nothing to do, no safety snapshot.
    let board = TestBoard::start(&img, &opts);
    let before = env.snapshots().len();
    let r = env.json(&[
        "restore",
        &snap_id,
        "--to",
        &serial(&board),
        "--yes",
        "--delete",
    ]);
    assert_eq!(r["changes"]["write"].as_array().unwrap().len(), 0);
    assert_eq!(env.snapshots().len(), before);
    drop(board);

    // REV:PATH goes back to PATH on the board, and --delete stays inside
    // it; --include narrows both.
    fs::write(changed.join("lib/extra.py"), "y = 2\n").unwrap();
    let board = TestBoard::start(&changed, &opts);
    let lib = format!("{snap_id}:lib");
    let r = env.json(&[
        "restore",
        &lib,
        "--to",
        &serial(&board),
        "--yes",
        "--delete",
        "--include",
        "*.py",
    ]);
    assert_eq!(num(&r, "files"), 1, "lib/sensors/soil.py: {r}");
    assert_eq!(
        num(&r, "removed"),
        2,
        "lib/extra.py and the stale temp file: {r}"
    );
    let dump = board.stop_and_dump();
    assert!(dump.join("lib/sensors/soil.py").exists());
    assert!(!dump.join("lib/extra.py").exists());
    assert!(!dump.join("lib/net/wifi.py.belay~").exists());
    assert!(dump.join("extra.txt").exists(), "outside lib: untouched");
    assert_eq!(
        fs::read(dump.join("main.py")).unwrap(),
        b"print('new firmware')\n"
    );
}

/// Back a folder up, push it to a board holding something else (the write
/// path), pull the board into a fresh repository (the read path), and check
/// both directions byte for byte.
fn push_and_pull(opts: BoardOptions, big: bool) {
    push_and_pull_image(opts, |img| build_image(img, big));
}

/// [`push_and_pull`] with an image of one's own.
fn push_and_pull_image(opts: BoardOptions, build: impl FnOnce(&Path)) {
    let env = TestRepo::new();
    let img = env.dir("img");
    build(&img);
    let other = env.dir("other");
    fs::create_dir_all(other.join("lib")).unwrap();
    fs::write(other.join("main.py"), "print('old')\n").unwrap();
    fs::write(other.join("lib/stale.py"), "x = 1\n").unwrap();
    let folder = env.json(&["backup", img.to_str().unwrap(), "--name", "folder"]);
    let board = TestBoard::start(&other, &opts);
    env.json(&[
        "restore",
        "folder",
        "--to",
        &serial(&board),
        "--yes",
        "--delete",
    ]);
    let pull = TestRepo::new();
    let b = pull.json(&["backup", &serial(&board)]);
    assert_eq!(num(&b, "files"), num(&folder, "files"));
    let dump = board.stop_and_dump();
    assert_same_content(&img, &dump);
    let out = pull.dir("out");
    let src = b["source"].as_str().unwrap().to_string();
    pull.cmd(&["restore", &src, "--to"])
        .arg(&out)
        .assert()
        .success();
    assert_same_content(&img, &out);
}

#[test]
fn classic_raw_repl_when_raw_paste_is_refused() {
    push_and_pull(
        BoardOptions {
            raw_paste: RawPaste::Refuse,
            ..BoardOptions::unthrottled()
        },
        false,
    );
}

#[test]
fn firmware_older_than_raw_paste() {
    push_and_pull(
        BoardOptions {
            raw_paste: RawPaste::Absent,
            ..BoardOptions::unthrottled()
        },
        false,
    );
}

#[test]
fn board_without_stdio_buffer_uses_base64() {
    push_and_pull(
        BoardOptions {
            stdio_buffer: false,
            ..BoardOptions::unthrottled()
        },
        false,
    );
}

#[test]
fn board_without_hashlib() {
    push_and_pull(
        BoardOptions {
            hashlib: false,
            deflate: false,
            ..BoardOptions::unthrottled()
        },
        false,
    );
}

#[test]
fn small_heap_like_an_esp8266() {
    push_and_pull(
        BoardOptions {
            heap: Some(40_000),
            ..BoardOptions::unthrottled()
        },
        true,
    );
}

#[test]
fn uart_board_with_a_256_byte_input_buffer() {
    // At the real line speed, on a board that drops what arrives while its
    // 256-byte input buffer is full and stalls 30 ms per 4 KB flash write:
    // a second write frame sent before the first one's credit came back
    // arrives during that stall and loses bytes. Pushes must therefore go
    // one frame at a time; the files over one frame (incompressible, so
    // several frames each) prove it.
    push_and_pull_image(
        BoardOptions {
            rx_buffer: Some(256),
            flash_write_ms: Some(30),
            ..BoardOptions::default()
        },
        |img| {
            build_image(img, false);
            fs::write(img.join("data/log.bin"), noise(40 * 1024, 11)).unwrap();
            fs::write(img.join("lib/blob.bin"), noise(9 * 1024, 12)).unwrap();
        },
    );
}

fn fault_then_rerun(fault: BoardOptions, expect: &str) {
    let env = TestRepo::new();
    let img = env.dir("img");
    build_image(&img, true);
    let uid = "fa17fa17fa17fa17".to_string();
    let board = TestBoard::start(
        &img,
        &BoardOptions {
            unique_id: Some(uid.clone()),
            ..fault
        },
    );
    let err = env.fails(&["backup", &serial(&board)]);
    assert!(err.contains(expect), "expected {expect:?} in: {err}");
    assert!(err.contains(&uid), "the error names the board: {err}");
    assert!(err.contains("no snapshot"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(env.snapshots().is_empty(), "no partial snapshot");
    drop(board);
    // Rerun on a healthy board: completes, and what the first run pulled
    // is not pulled again.
    let board = TestBoard::start(
        &img,
        &BoardOptions {
            unique_id: Some(uid),
            ..BoardOptions::unthrottled()
        },
    );
    let r = env.json(&["backup", &serial(&board)]);
    assert!(
        num(&r, "bytes_transferred") < total_bytes(&img),
        "the rerun reuses what the failed run stored: {r}"
    );
    let out = env.dir("out");
    let src = r["source"].as_str().unwrap().to_string();
    env.cmd(&["restore", &src, "--to"])
        .arg(&out)
        .assert()
        .success();
    assert_same_content(&img, &out);
}

#[test]
fn board_reset_mid_pull() {
    fault_then_rerun(
        BoardOptions {
            reset_after_bytes: Some(200_000),
            ..BoardOptions::unthrottled()
        },
        "reset",
    );
}

#[test]
fn board_unplugged_mid_pull() {
    fault_then_rerun(
        BoardOptions {
            unplug_after_bytes: Some(200_000),
            ..BoardOptions::unthrottled()
        },
        "disconnected",
    );
}

#[test]
fn garbage_mid_pull() {
    fault_then_rerun(
        BoardOptions {
            garble_after_bytes: Some(200_000),
            ..BoardOptions::unthrottled()
        },
        "garbled",
    );
}

#[test]
fn missing_port_and_not_a_board() {
    let env = TestRepo::new();
    let err = env.fails(&["backup", "serial:/dev/does-not-exist"]);
    assert!(err.contains("no such serial port"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // A terminal that answers, but not as MicroPython.
    let script = r#"
import os, pty, select, sys, time
m, s = pty.openpty()
import tty; tty.setraw(s)
print(os.ttyname(s), flush=True)
end = time.time() + 30
while time.time() < end:
    r, _, _ = select.select([m], [], [], 0.1)
    if r:
        try:
            os.read(m, 1024)
        except OSError:
            break
        os.write(m, b"login: ")
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let err = env.fails(&["backup", &format!("serial:{}", line.trim())]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(err.contains("no MicroPython raw REPL answered"), "{err}");
    assert!(env.snapshots().is_empty());

    // A port another program holds (as serialport and mpremote do: flock).
    let board = TestBoard::start(&example_image(), &BoardOptions::unthrottled());
    let holder = r#"
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(30)
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", holder])
        .arg(&board.path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let err = env.fails(&["backup", &serial(&board)]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(err.contains("busy"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Once it is free again, the board answers.
    env.json(&["backup", &serial(&board)]);
}

#[test]
fn full_board_filesystem_during_restore() {
    let env = TestRepo::new();
    let img = env.dir("img");
    build_image(&img, true);
    env.json(&["backup", img.to_str().unwrap(), "--name", "big"]);
    let small = env.dir("small");
    fs::create_dir_all(&small).unwrap();
    fs::write(small.join("main.py"), "print(1)\n").unwrap();
    let board = TestBoard::start(
        &small,
        &BoardOptions {
            flash_size: Some(128 * 1024),
            ..BoardOptions::unthrottled()
        },
    );
    let err = env.fails(&["restore", "big", "--to", &serial(&board), "--yes"]);
    assert!(err.contains("not enough space"), "{err}");
    let dump = board.stop_and_dump();
    assert_same_content(&small, &dump);
}

#[test]
fn board_running_a_program_that_prints_endlessly() {
    let env = TestRepo::new();
    // Interruptible: Ctrl-C stops it and the backup goes ahead.
    let chatty = env.dir("chatty");
    fs::create_dir_all(&chatty).unwrap();
    fs::write(
        chatty.join("main.py"),
        "n = 0\nwhile True:\n    n += 1\n    print('reading sensors', n)\n",
    )
    .unwrap();
    let board = TestBoard::start(&chatty, &BoardOptions::unthrottled());
    let r = env.json(&["backup", &serial(&board)]);
    assert_eq!(num(&r, "files"), 1);
    drop(board);

    // Swallows every KeyboardInterrupt: belay gives up within its deadline
    // with a clear error instead of hanging.
    let stubborn = env.dir("stubborn");
    fs::create_dir_all(&stubborn).unwrap();
    fs::write(
        stubborn.join("main.py"),
        "while True:\n    try:\n        print('busy')\n    except KeyboardInterrupt:\n        pass\n",
    )
    .unwrap();
    let board = TestBoard::start(&stubborn, &BoardOptions::default());
    let started = std::time::Instant::now();
    let err = env.fails(&["backup", &serial(&board)]);
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
    assert!(err.contains("no MicroPython raw REPL answered"), "{err}");
    assert_eq!(env.snapshots().len(), 1, "only the first board's snapshot");
}

/// The board's own code (a logger in a timer callback, the other core)
/// changes data/big.bin while the agent pulls it, 100 KB into the session's
/// output (the middle of that 300 KB file). By design the transport does
/// not retry: the agent compares the file's size and mtime before and after
/// its read, and the host the received bytes' hash with the one the board
/// reported before the pull; either way the backup fails with one line
/// naming the file, writes no snapshot, and a rerun stores the file as it
/// now is.
fn file_changed_mid_pull(overwrite: bool, hashed: bool) {
    let env = TestRepo::new();
    let img = env.dir("img");
    build_image(&img, true);
    let uid = "c4a9c4a9c4a9c4a9".to_string();
    if hashed {
        // A repository that holds a file: the board hashes its files
        // before the pull.
        let one = env.dir("one");
        fs::create_dir_all(&one).unwrap();
        fs::copy(img.join("main.py"), one.join("main.py")).unwrap();
        env.json(&["backup", one.to_str().unwrap(), "--name", "folder"]);
    }
    let before = env.snapshots().len();
    let board = TestBoard::start(
        &img,
        &BoardOptions {
            unique_id: Some(uid.clone()),
            mutate_after_bytes: Some(100_000),
            mutate_file: Some("data/big.bin".into()),
            mutate_overwrite: overwrite,
            ..BoardOptions::unthrottled()
        },
    );
    let err = env.fails(&["backup", &serial(&board)]);
    assert!(
        err.contains("data/big.bin: changed while it was read; run the backup again"),
        "{err}"
    );
    assert!(err.contains(&uid), "the error names the board: {err}");
    assert!(err.contains("no snapshot"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_eq!(env.snapshots().len(), before, "no partial snapshot");

    // The change happened once; a rerun on the same board completes and
    // holds the file as the board now has it.
    let r = env.json(&["backup", &serial(&board)]);
    assert_eq!(r["source"], uid.as_str());
    assert!(
        num(&r, "bytes_transferred") < total_bytes(&img),
        "the rerun reuses what the failed run stored: {r}"
    );
    let dump = board.stop_and_dump();
    assert_ne!(
        fs::read(dump.join("data/big.bin")).unwrap(),
        fs::read(img.join("data/big.bin")).unwrap(),
        "the board changed the file"
    );
    let out = env.dir("out");
    env.cmd(&["restore", &uid, "--to"])
        .arg(&out)
        .assert()
        .success();
    assert_same_content(&dump, &out);
}

#[test]
fn file_grows_while_it_is_read() {
    // Caught by the agent: the size changed.
    file_changed_mid_pull(false, false);
}

#[test]
fn file_grows_while_it_is_read_after_hashing() {
    file_changed_mid_pull(false, true);
}

#[test]
fn file_rewritten_in_place_while_it_is_read_after_hashing() {
    // The size stays, and the mtime (whole seconds) may too: then the host
    // catches it, the received bytes' hash differing from the board's hash
    // taken before the pull.
    file_changed_mid_pull(true, true);
}

// Without the board's hashes (a board's first backup into a repository
// without files), a same-size rewrite within the mtime's second escapes the
// agent's size/mtime check; the agent's second hash pass after the read
// catches it (without it this failed in about half the runs: the snapshot
// held the old head and the new tail, a version the board never had).
#[test]
fn file_rewritten_in_place_while_it_is_read() {
    file_changed_mid_pull(true, false);
}

// ---- every port: firmware without a module still backs up (issue 17) ----

/// Run with --json, assert success; stdout parsed, and stderr.
fn json_and_stderr(env: &Env, args: &[&str]) -> (Value, String) {
    let out = env.cmd(&["--json"]).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "belay {args:?} failed:\n{err}");
    (
        serde_json::from_slice(&out.stdout).expect("JSON on stdout"),
        err,
    )
}

/// On a board whose firmware lacks `without`: a backup (warning of
/// `warning`, if any), an unchanged re-backup, a restore of another state
/// with --delete and a restore back, each byte-exact (the dump and the
/// snapshots restored to folders). `check` gets the first backup's JSON and
/// its `show`.
fn port_without(without: &[&str], warning: Option<&str>, check: impl Fn(&Env, &Value, &Value)) {
    let env = TestRepo::new();
    let img = env.dir("img");
    build_image(&img, false);
    let other = env.dir("other");
    copy_dir(&img, &other);
    fs::write(other.join("main.py"), "print('another state')\n").unwrap();
    fs::write(other.join("lib/added.bin"), noise(5000, 3)).unwrap();
    fs::remove_file(other.join("config.json")).unwrap();
    env.json(&["backup", other.to_str().unwrap(), "--name", "other"]);
    let board = TestBoard::start(
        &img,
        &BoardOptions {
            without: without.iter().map(|s| s.to_string()).collect(),
            ..BoardOptions::unthrottled()
        },
    );
    let port = serial(&board);
    let hashes = !without.contains(&"hashlib");
    let (first, mut said) = json_and_stderr(&env, &["backup", &port]);
    let src = first["source"].as_str().unwrap().to_string();
    let show = env.json(&["show", &src]);
    check(&env, &first, &show);

    let (again, _) = json_and_stderr(&env, &["backup", &port]);
    assert_eq!(again["parent"], first["snapshot"]);
    if hashes {
        assert_eq!(num(&again, "bytes_transferred"), 0, "unchanged: {again}");
    }

    let (_, err) = json_and_stderr(
        &env,
        &["restore", "other", "--to", &port, "--yes", "--delete"],
    );
    said += &err;
    // The backup, or the restore where it matters (free space), says what
    // the board lacks and what that costs.
    if let Some(w) = warning {
        assert!(
            said.contains("warning:") && said.contains(w),
            "a board without {without:?}: a warning naming {w:?}: {said}"
        );
    }
    let (pulled, _) = json_and_stderr(&env, &["backup", &port, "--name", "after"]);
    let out = env.dir("after");
    env.cmd(&["restore", pulled["snapshot"].as_str().unwrap(), "--to"])
        .arg(&out)
        .assert()
        .success();
    assert_same_content(&other, &out);

    let first_id = first["snapshot"].as_str().unwrap();
    json_and_stderr(
        &env,
        &["restore", first_id, "--to", &port, "--yes", "--delete"],
    );
    let dump = board.stop_and_dump();
    assert_same_content(&img, &dump);
    let back = env.dir("back");
    env.cmd(&["restore", first_id, "--to"])
        .arg(&back)
        .assert()
        .success();
    assert_same_content(&img, &back);
}

fn no_check(_: &Env, _: &Value, _: &Value) {}

#[test]
fn port_without_uname() {
    port_without(&["uname"], Some("os.uname()"), |_, _, show| {
        let fw = show["device"]["firmware"].as_str().unwrap();
        assert!(
            fw.starts_with("MicroPython v1.27"),
            "from sys.version: {fw}"
        );
        assert!(
            show["device"]["missing"]
                .as_str()
                .unwrap()
                .contains("uname")
        );
    });
}

#[test]
fn port_without_time() {
    port_without(
        &["time"],
        Some("file times are not recorded"),
        |env, first, _| {
            let listing = env.json(&["ls", "-R", first["snapshot"].as_str().unwrap()]);
            let entries = listing.as_array().unwrap();
            assert!(entries.len() > 5);
            assert!(
                entries.iter().all(|e| e["mtime"].is_null()),
                "no board clock, no times: {listing}"
            );
        },
    );
}

#[test]
fn port_without_statvfs() {
    port_without(&["statvfs"], Some("os.statvfs()"), |_, _, show| {
        assert!(show["device"]["fs_size"].is_null(), "{show}");
    });
}

#[test]
fn port_without_machine() {
    port_without(
        &["machine"],
        Some("machine.unique_id()"),
        |_, first, show| {
            assert!(
                first["source"].as_str().unwrap().starts_with("board-"),
                "named after its port: {first}"
            );
            assert!(show["device"]["unique_id"].is_null());
        },
    );
}

#[test]
fn port_without_unique_id() {
    port_without(&["unique_id"], Some("machine.unique_id()"), no_check);
}

#[test]
fn port_with_three_field_ilistdir() {
    port_without(&["ilistdir-size"], None, no_check);
}

#[test]
fn port_without_ilistdir() {
    port_without(&["ilistdir"], None, no_check);
}

#[test]
fn port_without_binascii() {
    port_without(&["binascii"], None, no_check);
}

#[test]
fn minimal_port_without_any_of_them() {
    port_without(
        &[
            "uname",
            "time",
            "statvfs",
            "machine",
            "ilistdir-size",
            "hashlib",
            "deflate",
        ],
        Some("hashlib"),
        no_check,
    );
}

// ---- restores and what they leave behind (issue 15, items 3-5) ----

/// Run code on a board with mpremote (an independent client), as a
/// program on the board or a user at its REPL would change its files.
fn on_board(board: &TestBoard, code: &str) {
    let out = std::process::Command::new(belay_suite::board::mpremote())
        .args([
            "connect",
            board.path.to_str().unwrap(),
            "resume",
            "exec",
            code,
        ])
        .output()
        .expect("run mpremote");
    assert!(
        out.status.success(),
        "mpremote exec failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn log_of(env: &Env, rev: &str) -> Vec<Value> {
    env.json(&["log", rev]).as_array().unwrap().clone()
}

#[test]
fn after_a_restore_the_head_is_the_restored_state() {
    let env = TestRepo::new();
    let img = env.dir("img");
    build_image(&img, false);
    let other = env.dir("other");
    copy_dir(&img, &other);
    fs::write(other.join("main.py"), "print('other')\n").unwrap();
    fs::remove_file(other.join("config.json")).unwrap();
    let folder = env.json(&["backup", other.to_str().unwrap(), "--name", "other"]);
    let uid = "4e4d4e4d4e4d4e4d";
    let board = TestBoard::start(
        &img,
        &BoardOptions {
            unique_id: Some(uid.into()),
            ..BoardOptions::unthrottled()
        },
    );
    let port = serial(&board);
    let first = env.json(&["backup", &port]);
    let a = first["snapshot"].as_str().unwrap().to_string();

    // The board holds exactly its head: that is the undo point, no
    // second copy of it is made.
    let r = env.json(&["restore", "other", "--to", &port, "--yes", "--delete"]);
    assert_eq!(r["safety_snapshot"], a.as_str(), "{r}");
    assert_eq!(r["safety_snapshot_new"], false);
    let head = r["head"].as_str().unwrap().to_string();
    // Right after the restore the board shows no changes against its head.
    let d = env.json(&["diff", &port]);
    assert_eq!(d, serde_json::json!([]), "no changes after a restore: {d}");
    let log = log_of(&env, uid);
    assert_eq!(log[0]["id"], head.as_str());
    assert_eq!(log[0]["restored_from"], folder["snapshot"]);
    assert_eq!(
        log[1]["id"],
        a.as_str(),
        "NAME~1 is the state before the restore"
    );
    let show = env.json(&["show", &format!("{uid}~1")]);
    assert_eq!(show["id"], a.as_str());
    // Nothing was pulled to record the restored state.
    let again = env.json(&["backup", &port]);
    assert_eq!(again["parent"], head.as_str());
    assert_eq!(num(&again, "bytes_transferred"), 0);

    // The board changes; a restore saves that first (a safety snapshot,
    // marked as one in log), and NAME~1 is again the state before.
    on_board(
        &board,
        "f = open('notes.txt', 'w'); f.write('written on the board'); f.close()",
    );
    let r = env.json(&["restore", &a, "--to", &port, "--yes", "--delete"]);
    assert_eq!(r["safety_snapshot_new"], true, "{r}");
    let safety = r["safety_snapshot"].as_str().unwrap().to_string();
    let head = r["head"].as_str().unwrap().to_string();
    let d = env.json(&["diff", &port]);
    assert_eq!(d, serde_json::json!([]), "no changes after a restore: {d}");
    let log = log_of(&env, uid);
    assert_eq!(log[0]["id"], head.as_str());
    assert!(log[0]["safety"].is_null(), "only safety snapshots say so");
    assert_eq!(log[1]["id"], safety.as_str());
    assert_eq!(log[1]["safety"], true);
    let oneline = env.cmd(&["log", uid, "--oneline"]).output().unwrap();
    let text = String::from_utf8_lossy(&oneline.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("restored"), "{text}");
    assert!(lines[1].contains("safety snapshot"), "{text}");
    let pre = env.dir("pre");
    env.cmd(&["restore", &format!("{uid}~1"), "--to"])
        .arg(&pre)
        .assert()
        .success();
    assert_eq!(
        fs::read(pre.join("notes.txt")).unwrap(),
        b"written on the board"
    );
    let dump = board.stop_and_dump();
    assert_same_content(&img, &dump);
}

#[test]
fn restore_delete_keeps_what_the_backup_excluded() {
    let env = TestRepo::new();
    let img = env.dir("img");
    build_image(&img, false);
    fs::write(img.join("data/log.csv"), "t,v\n1,2\n").unwrap();
    fs::write(img.join("data/blob.bin"), noise(3000, 5)).unwrap();
    let board = TestBoard::start(&img, &BoardOptions::unthrottled());
    let port = serial(&board);
    let x = env.json(&[
        "backup",
        &port,
        "--exclude",
        "data/log.csv",
        "--exclude",
        "*.bin",
    ]);
    let xid = x["snapshot"].as_str().unwrap();
    let show = env.json(&["show", xid]);
    assert_eq!(show["meta"]["belay.exclude"], "data/log.csv\n*.bin");
    let dry = env.json(&["restore", xid, "--to", &port, "--delete", "--dry-run"]);
    let removes = dry["changes"]["remove"].as_array().unwrap();
    assert!(
        removes.is_empty(),
        "excluded at backup, never deleted: {dry}"
    );
    env.json(&["restore", xid, "--to", &port, "--delete", "--yes"]);
    let dump = board.stop_and_dump();
    assert_same_content(&img, &dump);
}

#[test]
fn a_belayignore_on_the_board_is_honoured() {
    let env = TestRepo::new();
    let img = env.dir("img");
    build_image(&img, false);
    fs::write(
        img.join(".belayignore"),
        "# the board's own\nsecret.txt\ncache/\n",
    )
    .unwrap();
    fs::write(img.join("secret.txt"), "wifi password\n").unwrap();
    fs::create_dir_all(img.join("cache")).unwrap();
    fs::write(img.join("cache/c.bin"), noise(2000, 9)).unwrap();
    fs::write(img.join("lib/.belayignore"), "*.tmp\n").unwrap();
    fs::write(img.join("lib/scratch.tmp"), "x\n").unwrap();
    let board = TestBoard::start(&img, &BoardOptions::unthrottled());
    let port = serial(&board);
    let b = env.json(&["backup", &port]);
    let listing = env.json(&["ls", "-R", b["snapshot"].as_str().unwrap()]);
    let paths: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&".belayignore"), "{paths:?}");
    assert!(paths.contains(&"lib/.belayignore"), "{paths:?}");
    for left_out in ["secret.txt", "cache", "cache/c.bin", "lib/scratch.tmp"] {
        assert!(
            !paths.contains(&left_out),
            "{left_out} is ignored: {paths:?}"
        );
    }
    // A restore with --delete of a state without those files leaves them.
    let other = env.dir("other");
    fs::create_dir_all(other.join("lib")).unwrap();
    fs::write(other.join("main.py"), "print('other')\n").unwrap();
    env.json(&["backup", other.to_str().unwrap(), "--name", "other"]);
    env.json(&["restore", "other", "--to", &port, "--delete", "--yes"]);
    let dump = board.stop_and_dump();
    assert_eq!(
        fs::read(dump.join("secret.txt")).unwrap(),
        b"wifi password\n"
    );
    assert!(dump.join("cache/c.bin").exists());
    assert!(dump.join("lib/scratch.tmp").exists());
    assert!(!dump.join("boot.py").exists(), "not ignored: removed");
    assert!(
        !dump.join(".belayignore").exists(),
        "not in the snapshot: removed"
    );
}

/// Progress lines (`-vv` off a terminal) from a command's stderr.
fn progress_lines(err: &str, what: &str) -> usize {
    err.lines()
        .filter(|l| l.starts_with(&format!("progress: {what}:")))
        .count()
}

#[test]
fn board_progress_moves_within_a_file_and_while_hashing() {
    let env = TestRepo::new();
    let img = env.dir("img");
    fs::create_dir_all(&img).unwrap();
    fs::write(img.join("main.py"), "print(1)\n").unwrap();
    fs::write(img.join("big.bin"), noise(300 * 1024, 4)).unwrap();
    let board = TestBoard::start(&img, &BoardOptions::unthrottled());
    let port = serial(&board);
    // One 300 KB file: the bar moves by the bytes pulled, tenth by tenth.
    let out = env.cmd(&["-vv", "backup", &port]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(progress_lines(&err, "backup") >= 9, "{err}");
    // Unchanged: the board hashes, and says how far it is within the file.
    let out = env.cmd(&["-vv", "backup", &port]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(progress_lines(&err, "hashing on the board") >= 4, "{err}");
    let j = env.json(&["backup", &port]);
    assert_eq!(num(&j, "files_hashed"), 2, "{j}");
    assert_eq!(num(&j, "bytes_hashed"), 300 * 1024 + 9);
    // Pushing it back: the bar moves within the file too.
    let folder = env.dir("folder");
    fs::create_dir_all(&folder).unwrap();
    fs::write(folder.join("big.bin"), noise(300 * 1024, 5)).unwrap();
    env.json(&["backup", folder.to_str().unwrap(), "--name", "folder"]);
    let out = env
        .cmd(&[
            "-vv",
            "restore",
            "folder",
            "--to",
            &port,
            "--yes",
            "--no-safety-snapshot",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(progress_lines(&err, "restore") >= 9, "{err}");
}
