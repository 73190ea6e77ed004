//! Faulty boards (issue 14 item 4): the test board unplugged or reset at
//! several points of a backup and of a restore, through the real binary.
//! A backup that fails says so in one line and commits nothing, and the
//! rerun reuses what the failed runs stored; a restore that fails leaves
//! every board file either as it was or as the snapshot has it (never
//! torn), keeps its safety snapshot, and the next restore finishes the job.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Output;

use belay_store::Repo;
use belay_store::id::ObjectId;
use belay_store::repo::RefKind;
use belay_suite::board::{BoardOptions, TestBoard};
use belay_suite::cli::belay;
use belay_suite::env::TestRepo;
use belay_suite::fsutil::noise;

const UID: &str = "b0a4db0a4db0a4d0";

/// One test board at a time: the tests of this file start and stop many,
/// and a board unplugged mid-session frees its PTY for the next one.
static ONE_BOARD_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What this file's tests do on top of [`TestRepo`].
trait BoardEnv {
    fn run(&self, args: &[&str]) -> Output;
    fn snapshot_ids(&self) -> Vec<ObjectId>;
    fn head(&self) -> Option<ObjectId>;
}

impl BoardEnv for TestRepo {
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn snapshot_ids(&self) -> Vec<ObjectId> {
        Repo::open(&self.repo).unwrap().list_snapshots().unwrap()
    }

    fn head(&self) -> Option<ObjectId> {
        let name = format!("board-{UID}");
        let r = Repo::open(&self.repo).unwrap();
        // The board's source name is its unique id, in whichever form the
        // CLI gives it: take the only head there is.
        r.read_ref(RefKind::Head, &name)
            .ok()
            .flatten()
            .or_else(|| r.list_refs(RefKind::Head).unwrap().into_values().next())
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}, stderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn serial(b: &TestBoard) -> String {
    format!("serial:{}", b.path.display())
}

/// One clear line, exit 1, naming the board.
fn assert_clear_failure(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{}", text(o));
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() == 1 && lines[0].len() < 400,
        "one short line expected: {err}"
    );
    err
}

fn board(fs_dir: &Path, fault: impl FnOnce(&mut BoardOptions)) -> TestBoard {
    let mut o = BoardOptions {
        unique_id: Some(UID.into()),
        ..BoardOptions::unthrottled()
    };
    fault(&mut o);
    o.verbose = std::env::var_os("BELAY_TEST_BOARD_VERBOSE").is_some();
    TestBoard::start(fs_dir, &o)
}

/// Path → content (None for a directory).
fn content(root: &Path) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
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
                dirs.push(e.path());
            } else {
                out.insert(rel, Some(fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// A board image: small sources and two files of several chunks.
fn image(dir: &Path) {
    write(dir, "main.py", b"import lib.a\nlib.a.run()\n");
    write(dir, "boot.py", b"# boot\n");
    write(dir, "lib/a.py", &b"def run():\n    print('a')\n".repeat(30));
    write(dir, "lib/b.py", &b"X = 1\n".repeat(200));
    write(dir, "data/big.bin", &noise(160 * 1024, 1));
    write(dir, "data/mid.bin", &noise(40 * 1024, 2));
    write(dir, "data/log.txt", &b"2026-01-01 boot ok\n".repeat(100));
}

#[test]
fn a_backup_unplugged_or_reset_at_many_points_commits_nothing_and_the_rerun_reuses_chunks() {
    let _one = ONE_BOARD_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let env = TestRepo::new();
    let img = env.root.join("img");
    image(&img);
    let total: u64 = content(&img)
        .values()
        .map(|v| v.as_ref().map_or(0, |d| d.len() as u64))
        .sum();
    let mut failed = 0;
    // Board output offsets: during the connect, the listing and hashes,
    // and inside the pulls of the large files.
    for off in [600u64, 3_000, 30_000, 90_000, 180_000] {
        for reset in [false, true] {
            let b = board(&img, |o| {
                if reset {
                    o.reset_after_bytes = Some(off);
                } else {
                    o.unplug_after_bytes = Some(off);
                }
            });
            let before = (env.snapshot_ids(), env.head());
            let o = env.run(&["backup", &serial(&b)]);
            eprintln!(
                "backup, {} after {off} bytes: {}",
                if reset { "reset" } else { "unplug" },
                text(&o).trim()
            );
            if o.status.success() {
                // The fault came after the agent's last byte.
                continue;
            }
            failed += 1;
            let err = assert_clear_failure(&o);
            assert!(
                err.contains("no snapshot") || err.contains("MicroPython") || err.contains("board"),
                "the error says what happened: {err}"
            );
            assert_eq!(
                (env.snapshot_ids(), env.head()),
                before,
                "a failed backup (fault after {off} bytes) committed something"
            );
        }
    }
    assert!(
        failed >= 8,
        "most faults must land inside the backup: {failed}"
    );
    // A healthy board: the backup completes and pulls less than everything
    // (the failed runs stored whole files already).
    let b = board(&img, |_| {});
    let r = env.json(&["backup", &serial(&b)]);
    drop(b);
    let sent = r["bytes_transferred"].as_u64().unwrap();
    assert!(
        sent < total,
        "the rerun pulled {sent} of {total} bytes: {r}"
    );
    let out = env.root.join("out");
    let id = r["snapshot"].as_str().unwrap();
    assert!(
        env.run(&["restore", id, "--to", out.to_str().unwrap()])
            .status
            .success()
    );
    assert_eq!(content(&out), content(&img));
    let check = env.run(&["check", "--read-data"]);
    assert!(check.status.success(), "{}", text(&check));
}

#[test]
fn a_restore_to_a_board_unplugged_or_reset_midway_leaves_old_or_new_files_never_torn() {
    let _one = ONE_BOARD_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let env = TestRepo::new();
    let old = env.root.join("old");
    image(&old);
    // The snapshot to restore: files changed, added and one removed.
    let new = env.root.join("new");
    image(&new);
    write(&new, "main.py", b"import lib.c\nlib.c.go()\n");
    write(
        &new,
        "lib/a.py",
        &b"def run():\n    print('A2')\n".repeat(40),
    );
    write(&new, "lib/c.py", &b"def go():\n    pass\n".repeat(50));
    write(&new, "data/mid.bin", &noise(48 * 1024, 3));
    write(&new, "data/big.bin", &noise(150 * 1024, 4));
    fs::remove_file(new.join("data/log.txt")).unwrap();
    let b = board(&new, |_| {});
    let target = env.json(&["backup", &serial(&b)])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    drop(b);
    let b = board(&old, |_| {});
    env.json(&["backup", &serial(&b)]);
    drop(b);
    let (old_c, new_c) = (content(&old), content(&new));

    let mut failed = 0;
    for off in [250u64, 500, 800, 1_100, 1_400, 1_800] {
        for reset in [false, true] {
            let how = if reset { "reset" } else { "unplug" };
            let b = board(&old, |o| {
                if reset {
                    o.reset_after_bytes = Some(off);
                } else {
                    o.unplug_after_bytes = Some(off);
                }
            });
            let before = env.snapshot_ids();
            let o = env.run(&["restore", &target, "--to", &serial(&b), "--yes"]);
            eprintln!("restore, {how} after {off} bytes: {}", text(&o).trim());
            let dump = b.stop_and_dump();
            let got = content(&dump);
            if o.status.success() {
                continue;
            }
            failed += 1;
            assert_clear_failure(&o);
            // Every file is the old or the new version; new ones may be
            // missing; nothing else but the restore's temporary files.
            let mut changed = false;
            for (path, v) in &got {
                let name = String::from_utf8_lossy(path);
                if name.ends_with(".belay~") {
                    continue;
                }
                let (o_v, n_v) = (old_c.get(path), new_c.get(path));
                assert!(
                    o_v == Some(v) || n_v == Some(v),
                    "{how} after {off}: {name} is neither the old nor the new version"
                );
                changed |= o_v != Some(v);
            }
            for (path, v) in &old_c {
                assert!(
                    got.get(path) == Some(v) || new_c.get(path) == got.get(path),
                    "{how} after {off}: {} went missing",
                    String::from_utf8_lossy(path)
                );
            }
            // Once anything on the board changed, the safety snapshot of
            // its state before the restore is in the repository.
            let r = Repo::open(&env.repo).unwrap();
            let safety: Vec<_> = env
                .snapshot_ids()
                .into_iter()
                .filter(|id| !before.contains(id))
                .filter(|id| r.read_snapshot(id).unwrap().is_safety())
                .collect();
            if changed {
                assert_eq!(safety.len(), 1, "{how} after {off}: no safety snapshot");
                let s = r.read_snapshot(&safety[0]).unwrap();
                let out = env.root.join(format!("safety-{how}-{off}"));
                assert!(
                    env.run(&[
                        "restore",
                        &safety[0].to_hex(),
                        "--to",
                        out.to_str().unwrap()
                    ])
                    .status
                    .success()
                );
                assert_eq!(
                    content(&out),
                    old_c,
                    "the safety snapshot {s:?} holds the old state"
                );
            }
            // The next restore, on the board as the failure left it,
            // finishes the job and leaves no temporary file.
            let b = board(&dump, |_| {});
            let o = env.run(&["restore", &target, "--to", &serial(&b), "--yes"]);
            assert!(
                o.status.success(),
                "rerun after {how} at {off}: {}",
                text(&o)
            );
            let after = content(&b.stop_and_dump());
            for (path, v) in &new_c {
                assert_eq!(
                    after.get(path),
                    Some(v),
                    "{}",
                    String::from_utf8_lossy(path)
                );
            }
            assert!(
                !after
                    .keys()
                    .any(|k| String::from_utf8_lossy(k).ends_with(".belay~")),
                "a temporary file was left: {:?}",
                after
                    .keys()
                    .map(|k| String::from_utf8_lossy(k))
                    .collect::<Vec<_>>()
            );
        }
    }
    assert!(
        failed >= 6,
        "most faults must land inside the restore: {failed}"
    );
    let check = env.run(&["check", "--read-data"]);
    assert!(check.status.success(), "{}", text(&check));
}

// ---- hostile boards: a scripted agent ----------------------------------

mod scripted {
    //! A board whose agent answers from a script (in this process, over
    //! `transport::serial::scripted::ScriptedPort`): it can list names no
    //! real filesystem holds and lie about sizes and hashes.

    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use belay_transport::serial::port::Link;
    use belay_transport::serial::protocol as p;
    use belay_transport::serial::scripted::ScriptedPort;
    use belay_transport::serial::session::{BoardInfo, Session};
    use sha2::Digest;

    /// One listed entry: absolute path, kind (1 file, 2 dir), listed size.
    pub struct Listed {
        pub path: Vec<u8>,
        pub kind: u8,
        pub size: u32,
    }

    pub struct Board {
        pub listing: Vec<Listed>,
        /// What a read of each path sends.
        pub files: BTreeMap<Vec<u8>, Vec<u8>>,
        /// Hash answers that differ from the content (a lying board).
        pub lie_hash: Vec<Vec<u8>>,
    }

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![p::MAGIC, kind];
        f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn sha(d: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(d).into()
    }

    impl Board {
        fn answer(&self, cmd: u8, d: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            match cmd {
                p::CMD_LIST => {
                    let mut e = Vec::new();
                    for l in &self.listing {
                        e.push(l.kind);
                        e.extend_from_slice(&l.size.to_le_bytes());
                        e.extend_from_slice(&0u32.to_le_bytes());
                        e.extend_from_slice(&(l.path.len() as u16).to_le_bytes());
                        e.extend_from_slice(&l.path);
                    }
                    out.extend(frame(p::FR_ENTRIES, &e));
                    out.extend(frame(p::FR_OK, b""));
                }
                p::CMD_HASH => {
                    for path in d.split(|&b| b == 0) {
                        let data = self.files.get(path).cloned().unwrap_or_default();
                        let mut h = sha(&data).to_vec();
                        if self.lie_hash.iter().any(|l| l == path) {
                            h = sha(b"something else").to_vec();
                        }
                        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
                        out.extend(frame(p::FR_HASH, &h));
                    }
                }
                p::CMD_READ => {
                    let path = &d[1..];
                    let data = self.files.get(path).cloned().unwrap_or_default();
                    for c in data.chunks(512) {
                        out.extend(frame(p::FR_DATA, c));
                    }
                    let mut t = if d[0] & p::READ_NO_HASH != 0 {
                        Vec::new()
                    } else {
                        sha(&data).to_vec()
                    };
                    t.extend_from_slice(&(data.len() as u32).to_le_bytes());
                    out.extend(frame(p::FR_TRAILER, &t));
                }
                _ => out.extend(frame(p::FR_OK, b"")),
            }
            out
        }

        /// A session with this board's agent running.
        pub fn session(self) -> Mutex<Session> {
            let mut pending: Vec<u8> = Vec::new();
            let respond = Box::new(move |w: &[u8]| {
                pending.extend_from_slice(w);
                let mut out = Vec::new();
                // Whole commands: a letter, 8 hex digits, the escaped body.
                while pending.len() >= 9 {
                    let Some(n) = std::str::from_utf8(&pending[1..9])
                        .ok()
                        .and_then(|h| usize::from_str_radix(h, 16).ok())
                    else {
                        // Not a command (the host interrupting): no answer.
                        pending.clear();
                        break;
                    };
                    if pending.len() < 9 + n {
                        break;
                    }
                    let cmd = pending[0];
                    let body = p::unescape(&pending[9..9 + n]).unwrap_or_default();
                    pending.drain(..9 + n);
                    out.extend(self.answer(cmd, &body));
                }
                (out, true)
            });
            let port = ScriptedPort::new(Vec::new(), respond)
                .quiet_limit(std::time::Duration::from_millis(300));
            let info = BoardInfo {
                fields: [
                    ("bs", "512"),
                    ("hash", "1"),
                    ("buf", "1"),
                    ("uid", "5c819ed0"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            };
            Mutex::new(Session::over(
                Link::over(Box::new(port), "scripted"),
                false,
                info,
            ))
        }
    }
}

fn hostile_backup(
    board: scripted::Board,
) -> (
    tempfile::TempDir,
    Repo,
    belay_store::Result<belay_store::backup::BackupReport>,
    Vec<String>,
) {
    use belay_store::backup::{BackupOptions, BackupProgress};
    use belay_transport::serial::{BoardSource, PullOptions};
    struct Warn(std::sync::Mutex<Vec<String>>);
    impl BackupProgress for Warn {
        fn warn(&self, m: &str) {
            self.0.lock().unwrap().push(m.to_string());
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::init(&tmp.path().join("repo")).unwrap();
    let session = board.session();
    let source = BoardSource::new(
        &session,
        PullOptions {
            deflate: false,
            hash: true,
        },
    );
    let warn = Warn(std::sync::Mutex::new(Vec::new()));
    let opts = BackupOptions {
        name: "hostile".into(),
        message: String::new(),
        meta: Vec::new(),
        host: "h".into(),
        user: "u".into(),
        time_ns: 0,
        skip_unreadable: false,
        skip_if_unchanged: false,
    };
    let r = belay_store::backup::backup(&repo, &source, &opts, &warn);
    let w = warn.0.into_inner().unwrap();
    (tmp, repo, r, w)
}

fn listed(path: &[u8], kind: u8, size: u32) -> scripted::Listed {
    scripted::Listed {
        path: path.to_vec(),
        kind,
        size,
    }
}

/// A board listing `../x`, `/abs` (as `//abs`), `a/../../b`, `.`, empty
/// components, a 255-byte and a 1000-byte name, a name that is not UTF-8
/// and an entry that is neither file nor directory: the backup keeps the
/// safe entries, skips every unsafe one with a warning, and a restore of
/// the snapshot writes only inside its target.
#[test]
fn a_board_listing_hostile_names_is_backed_up_without_them() {
    let long255 = [b"/".as_slice(), &[b'n'; 255]].concat();
    let long1000 = [b"/".as_slice(), &[b'm'; 1000]].concat();
    let bad_utf8 = b"/caf\xe9.py".to_vec();
    let good: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"/main.py".to_vec(), b"print('ok')\n".to_vec()),
        (long255.clone(), b"long\n".to_vec()),
        (bad_utf8.clone(), b"latin-1\n".to_vec()),
    ];
    let hostile: Vec<&[u8]> = vec![
        b"/../x",
        b"//abs",
        b"/lib/../../escape.py",
        b"/./dot",
        b"/lib//double",
        b"/lib/",
    ];
    let mut board = scripted::Board {
        listing: vec![listed(b"/lib", 2, 0), listed(b"/weird", 3, 0)],
        files: BTreeMap::new(),
        lie_hash: Vec::new(),
    };
    for (p, d) in &good {
        board.listing.push(listed(p, 1, d.len() as u32));
        board.files.insert(p.clone(), d.clone());
    }
    board.listing.push(listed(&long1000, 1, 4));
    board.files.insert(long1000.clone(), b"1000".to_vec());
    for p in &hostile {
        board.listing.push(listed(p, 1, 6));
        board.files.insert(p.to_vec(), b"pwned\n".to_vec());
    }
    let (tmp, repo, r, warnings) = hostile_backup(board);
    let report = r.unwrap_or_else(|e| panic!("the backup fails over hostile names: {e}"));
    eprintln!("warnings: {warnings:#?}");
    for p in &hostile {
        let shown = String::from_utf8_lossy(&p[1..]).into_owned();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(shown.trim_end_matches('/'))),
            "no warning names {shown:?}: {warnings:?}"
        );
    }
    assert!(warnings.iter().any(|w| w.contains("weird")), "{warnings:?}");
    // What the snapshot holds: the safe files, the 1000-byte name too (a
    // tree name has no length limit; folders refuse it at restore).
    let snap = repo.read_snapshot(&report.snapshot).unwrap();
    let mut names = Vec::new();
    belay_store::walk::visit(&repo, &snap.tree, b"", &mut |path, _| {
        names.push(path.to_vec());
        Ok(())
    })
    .unwrap();
    for (p, _) in &good {
        assert!(names.contains(&p[1..].to_vec()), "{names:?}");
    }
    for n in &names {
        assert!(belay_store::path::components(n).is_ok(), "unsafe {n:?}");
        assert!(!n.windows(2).any(|w| w == b".."), "{n:?}");
    }
    // A restore writes only inside its target, and says what it could not
    // write (the 1000-byte name) in one line.
    let to = tmp.path().join("box/out");
    let o = belay(repo.root())
        .env("BELAY_CACHE_DIR", tmp.path().join("cache"))
        .args(["restore", &report.snapshot.to_hex(), "--to"])
        .arg(&to)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    let outside: Vec<_> = fs::read_dir(tmp.path().join("box"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("out")], "{err}");
    assert!(!tmp.path().join("escape.py").exists() && !tmp.path().join("x").exists());
    if o.status.success() {
        assert_eq!(fs::read(to.join("main.py")).unwrap(), b"print('ok')\n");
    } else {
        assert_clear_failure(&o);
    }
}

/// A board whose hash of a file differs from the bytes it sends: the file
/// never enters the store as if it were fine.
#[test]
fn a_board_that_lies_about_a_hash_fails_the_backup_clearly() {
    let mut board = scripted::Board {
        listing: vec![listed(b"/a.py", 1, 4), listed(b"/b.py", 1, 4)],
        files: BTreeMap::new(),
        lie_hash: vec![b"/b.py".to_vec()],
    };
    board.files.insert(b"/a.py".to_vec(), b"aaa\n".to_vec());
    board.files.insert(b"/b.py".to_vec(), b"bbb\n".to_vec());
    let (_tmp, repo, r, warnings) = hostile_backup(board);
    eprintln!(
        "lying hash: {:?}, warnings {warnings:?}",
        r.as_ref().map(|x| x.snapshot).map_err(|e| e.to_string())
    );
    match r {
        Ok(report) => {
            // Accepted only if what was stored is what was read, and the
            // disagreement was reported.
            let snap = repo.read_snapshot(&report.snapshot).unwrap();
            let mut ok = false;
            belay_store::walk::visit(&repo, &snap.tree, b"", &mut |path, e| {
                if path == b"b.py"
                    && let belay_store::tree::Node::File { sha256, .. } = &e.node
                {
                    use sha2::Digest;
                    let real: [u8; 32] = sha2::Sha256::digest(b"bbb\n").into();
                    ok = *sha256 == real;
                }
                Ok(())
            })
            .unwrap();
            assert!(ok, "b.py was stored under the board's false hash");
            assert!(!warnings.is_empty(), "the lie went unreported");
        }
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.contains("b.py") && !m.contains('\n') && m.len() < 400,
                "{m}"
            );
        }
    }
}

/// A board whose listing gives sizes that are not the files' (0 for a
/// file of 3000 bytes, 4 GiB − 1 for one of 5): what is stored is what
/// was read, with its real size, or the backup fails in one line.
#[test]
fn a_board_that_lies_about_sizes_never_stores_a_wrong_size() {
    let big = noise(3000, 9);
    let mut board = scripted::Board {
        listing: vec![listed(b"/a.bin", 1, 0), listed(b"/b.txt", 1, u32::MAX)],
        files: BTreeMap::new(),
        lie_hash: Vec::new(),
    };
    board.files.insert(b"/a.bin".to_vec(), big.clone());
    board.files.insert(b"/b.txt".to_vec(), b"five\n".to_vec());
    let (_tmp, repo, r, warnings) = hostile_backup(board);
    eprintln!(
        "lying sizes: {:?}, warnings {warnings:?}",
        r.as_ref().map(|x| x.snapshot).map_err(|e| e.to_string())
    );
    let report = match r {
        Ok(r) => r,
        Err(e) => {
            let m = e.to_string();
            assert!(!m.contains('\n') && m.len() < 400, "{m}");
            return;
        }
    };
    let snap = repo.read_snapshot(&report.snapshot).unwrap();
    let mut sizes = BTreeMap::new();
    belay_store::walk::visit(&repo, &snap.tree, b"", &mut |path, e| {
        sizes.insert(path.to_vec(), e.node.size());
        Ok(())
    })
    .unwrap();
    assert_eq!(sizes.get(&b"a.bin"[..]), Some(&3000));
    assert_eq!(sizes.get(&b"b.txt"[..]), Some(&5));
}
