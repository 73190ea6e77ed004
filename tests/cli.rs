//! The command line as git and restic users expect it: pipes, `--json`
//! errors, Ctrl-C, global options after the command, revision shortcuts,
//! pagers and colour, durations, fleet commands (sources, rename, forget
//! by id). Through the real binary.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use belay_suite::cli::{belay, belay_bin};
use belay_suite::fsutil::noise;
use serde_json::Value;

/// A temporary folder with a repository, a private cache and a folder to
/// back up.
struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let e = Env {
            repo: root.join("repo"),
            root,
            _tmp: tmp,
        };
        e.cmd(&["init"]).assert().success();
        e
    }

    fn cmd(&self, args: &[&str]) -> assert_cmd::Command {
        let mut c = belay(&self.repo);
        c.env("BELAY_CACHE_DIR", self.root.join("cache"))
            .env("TZ", "UTC")
            .env_remove("NO_COLOR")
            .env_remove("PAGER")
            .env_remove("BELAY_PAGER")
            .args(args);
        c
    }

    /// A process without `-r`: for options placed after the command.
    fn bare(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::new(belay_bin());
        c.env_remove("BELAY_REPO")
            .env("BELAY_CACHE_DIR", self.root.join("cache"))
            .env("TZ", "UTC");
        c
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.cmd(&["--json"]).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "belay {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON on stdout")
    }

    fn folder(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.root.join(name);
        for (p, c) in files {
            let p = dir.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, c).unwrap();
        }
        dir
    }

    fn backup(&self, dir: &Path, extra: &[&str]) -> Value {
        let mut args = vec!["backup", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.json(&args)
    }
}

/// `belay ARGS | head -c 1`-like: a reader that closes the pipe after a
/// few bytes. Returns the exit status and stderr.
fn with_closed_stdout(mut cmd: Command) -> (std::process::ExitStatus, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    let _ = stdout.read(&mut first);
    drop(stdout);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap(), err)
}

#[test]
fn json_into_a_closed_pipe_ends_quietly_with_exit_0() {
    let e = Env::new();
    // Enough snapshots that the JSON does not fit in the pipe's buffer.
    let dir = e.folder("proj", &[("a.txt", "a")]);
    for i in 0..40 {
        fs::write(dir.join("a.txt"), format!("version {i}")).unwrap();
        e.backup(&dir, &["-m", &"long message ".repeat(200)]);
    }
    for args in [&["--json", "log"][..], &["log"][..], &["show", "proj"][..]] {
        let mut cmd = Command::new(belay_bin());
        cmd.arg("-r")
            .arg(&e.repo)
            .args(args)
            .env("BELAY_CACHE_DIR", e.root.join("cache"))
            .env("RUST_BACKTRACE", "1");
        let (status, err) = with_closed_stdout(cmd);
        assert_eq!(status.code(), Some(0), "belay {args:?}: {err}");
        assert_eq!(err, "", "belay {args:?} printed on stderr");
    }
}

#[test]
fn errors_under_json_are_one_json_object_on_stderr() {
    let e = Env::new();
    let out = e.cmd(&["--json", "show", "nosuch"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let v: Value = serde_json::from_slice(&out.stderr).expect("JSON on stderr");
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["kind"], "error");
    assert!(v["error"].as_str().unwrap().contains("nosuch"), "{v}");

    // Usage errors too (exit 2), wherever --json is.
    let out = e
        .cmd(&["log", "--no-such-flag", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stderr).expect("JSON on stderr");
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["kind"], "usage");
    assert!(
        v["error"].as_str().unwrap().contains("--no-such-flag"),
        "{v}"
    );

    // Without --json: one human line.
    let out = e.cmd(&["show", "nosuch"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
}

#[test]
fn ctrl_c_exits_130() {
    let e = Env::new();
    // `belay cat` of a big file into a pipe nobody reads: it blocks
    // writing, and Ctrl-C arrives then.
    let dir = e.folder("proj", &[("small.txt", "s")]);
    fs::write(dir.join("big.bin"), noise(4 << 20, 7)).unwrap();
    e.backup(&dir, &[]);
    let mut child = Command::new(belay_bin())
        .arg("-r")
        .arg(&e.repo)
        .args(["cat", "proj:big.bin"])
        .env("BELAY_CACHE_DIR", e.root.join("cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it has filled the pipe (it is then blocked writing).
    let mut stdout = child.stdout.take().unwrap();
    let mut some = [0u8; 4096];
    stdout.read_exact(&mut some).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
}

/// Five snapshots of `proj` (a.txt changes each time).
fn five_snapshots(e: &Env) -> PathBuf {
    let dir = e.folder("proj", &[("a.txt", "0")]);
    for i in 0..5 {
        fs::write(dir.join("a.txt"), format!("version {i}")).unwrap();
        e.backup(&dir, &["-m", &format!("v{i}")]);
    }
    dir
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn global_options_work_after_the_command() {
    let e = Env::new();
    five_snapshots(&e);
    let out = e
        .bare()
        .args(["log", "--oneline", "-r"])
        .arg(&e.repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5);
}

#[test]
fn log_takes_git_counts() {
    let e = Env::new();
    five_snapshots(&e);
    assert_eq!(ids(&e.json(&["log", "-3"])).len(), 3);
    assert_eq!(ids(&e.json(&["log", "-n", "2"])).len(), 2);
    assert_eq!(ids(&e.json(&["log", "proj", "-1"])).len(), 1);
}

#[test]
fn head_and_latest_name_the_only_source_latest_snapshot() {
    let e = Env::new();
    five_snapshots(&e);
    let proj = e.json(&["show", "proj"])["id"].clone();
    assert_eq!(e.json(&["show", "HEAD"])["id"], proj);
    assert_eq!(e.json(&["show", "latest"])["id"], proj);
    assert_eq!(
        e.json(&["show", "HEAD~1"])["id"],
        e.json(&["show", "proj~1"])["id"]
    );
    // With two sources, HEAD is ambiguous: refused, naming both.
    let other = e.folder("other", &[("b.txt", "b")]);
    e.backup(&other, &[]);
    let out = e.cmd(&["show", "HEAD"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("other") && err.contains("proj"), "{err}");
}

#[test]
fn ranges_have_git_meaning_in_log_and_diff() {
    let e = Env::new();
    five_snapshots(&e);
    let all = ids(&e.json(&["log", "proj"]));
    assert_eq!(ids(&e.json(&["log", "proj~3..proj"])), all[..3]);
    assert_eq!(ids(&e.json(&["log", "proj~2.."])), all[..2]);
    assert_eq!(ids(&e.json(&["log", "..proj~3"])), all[3..]);
    assert_eq!(
        e.json(&["diff", "proj~2..proj"]),
        e.json(&["diff", "proj~2", "proj"])
    );
    let out = e.cmd(&["log", "proj~1...proj"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("A..B"));
    let out = e.cmd(&["show", "proj~1..proj"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("log"));
}

#[test]
fn remote_repository_urls_are_refused_without_creating_folders() {
    let e = Env::new();
    // Object storage is a location (here one that does not answer), the
    // other schemes are refused; none becomes a local folder.
    for (url, says) in [
        (
            "s3:http://127.0.0.1:9/bucket",
            "no credentials for http://127.0.0.1:9",
        ),
        ("sftp:host:/srv/belay", "only folders and S3-compatible"),
        ("https://x/y", "only folders and S3-compatible"),
    ] {
        let out = e
            .bare()
            .current_dir(&e.root)
            // No credentials from this machine's environment or profiles.
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .args(["-r", url, "init"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{url}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{url}: {err}");
    }
    let names: Vec<_> = fs::read_dir(&e.root)
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "repo" && n != "cache")
        .collect();
    assert!(names.is_empty(), "created {names:?}");
}

#[test]
fn a_port_given_as_a_folder_gets_a_hint_and_auto_lists_boards() {
    let e = Env::new();
    let out = e.cmd(&["backup", "/dev/ttyACM0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("serial:/dev/ttyACM0"), "{err}");
    // No MicroPython board by USB ids on a test machine: a clear line.
    let out = e.cmd(&["backup", "serial:auto"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("serial:auto") && err.contains("MicroPython"),
        "{err}"
    );
    // mpremote's short names name the port (which does not exist here).
    let out = e.cmd(&["backup", "serial:u7"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/dev/ttyUSB7"), "{err}");
}

#[test]
fn durations_have_one_syntax() {
    let e = Env::new();
    five_snapshots(&e);
    // restic's `m` (months) would be minutes now: refused with a hint.
    let out = e
        .cmd(&["forget", "--keep-within", "30m", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("30mo"), "{err}");
    let v = e.json(&["forget", "--keep-within", "1y 6mo", "--dry-run"]);
    assert_eq!(v["kept"], 5);
    assert_eq!(v["policy"], "keep-within 1y6mo");
    let v = e.json(&["gc", "--grace", "1d12h", "--dry-run"]);
    assert_eq!(v["dry_run"], true);
    let v = e.json(&["gc", "--grace", "90 minutes", "--dry-run"]);
    assert_eq!(v["dry_run"], true);
    let out = e.cmd(&["gc", "--grace", "2mo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    // --since speaks the same units.
    assert_eq!(ids(&e.json(&["log", "--since", "90m"])).len(), 5);
}

/// Run `belay` on a pseudo-terminal (Python's pty module), return what it
/// printed there.
fn on_a_terminal(e: &Env, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut c = Command::new("python3");
    c.arg("-c")
        .arg("import pty, sys, os; os.environ['TERM']='xterm'; pty.spawn(sys.argv[1:])")
        .arg(belay_bin())
        .arg("-r")
        .arg(&e.repo)
        .args(args)
        .env("BELAY_CACHE_DIR", e.root.join("cache"))
        .env_remove("NO_COLOR")
        .env_remove("PAGER")
        .env_remove("BELAY_PAGER")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn log_pages_and_colours_only_on_a_terminal() {
    let e = Env::new();
    five_snapshots(&e);
    let marker = e.root.join("paged");
    let pager = format!("cat > '{}'", marker.display());
    // On a terminal: through BELAY_PAGER, coloured.
    on_a_terminal(&e, &["log"], &[("BELAY_PAGER", &pager)]);
    let paged = fs::read_to_string(&marker).expect("the pager ran");
    assert!(
        paged.contains("snapshot ") && paged.contains("\x1b["),
        "{paged}"
    );
    fs::remove_file(&marker).unwrap();
    // PAGER too; NO_COLOR turns colour off; --no-pager prints directly.
    on_a_terminal(&e, &["log"], &[("PAGER", &pager), ("NO_COLOR", "1")]);
    let paged = fs::read_to_string(&marker).expect("the pager ran");
    assert!(!paged.contains("\x1b["), "{paged}");
    fs::remove_file(&marker).unwrap();
    let direct = on_a_terminal(&e, &["log", "--no-pager"], &[("PAGER", &pager)]);
    assert!(direct.contains("snapshot ") && !marker.exists());
    // Into a pipe: no pager, no colour, unless --color always.
    let out = e.cmd(&["log"]).env("PAGER", &pager).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("snapshot ") && !text.contains("\x1b[") && !marker.exists());
    let out = e.cmd(&["log", "--color", "always"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\x1b["));
}

#[test]
fn an_unchanged_backup_adds_no_snapshot_unless_allowed() {
    let e = Env::new();
    let dir = e.folder("proj", &[("a.txt", "a")]);
    let first = e.backup(&dir, &[]);
    let out = e.cmd(&["backup", dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let short = &first["snapshot"].as_str().unwrap()[..12];
    assert!(
        text.contains(&format!("no changes since snapshot {short}")),
        "{text}"
    );
    assert_eq!(ids(&e.json(&["log"])).len(), 1);
    let forced = e.backup(&dir, &["--allow-empty"]);
    assert_eq!(forced["parent"], first["snapshot"]);
    assert_eq!(ids(&e.json(&["log"])).len(), 2);
}

#[test]
fn forget_by_id_moves_the_head_and_log_marks_forgotten_snapshots() {
    let e = Env::new();
    five_snapshots(&e);
    let all = ids(&e.json(&["log", "proj"]));
    // The newest and the middle one, by prefix and by NAME~N.
    let v = e.json(&["forget", &all[0][..10], "proj~2"]);
    assert_eq!(v["removed"], 2);
    assert_eq!(v["kept"], 3);
    assert_eq!(v["sources"][0]["head_after"], all[1].as_str());
    let live = ids(&e.json(&["log"]));
    assert_eq!(live, [all[1].clone(), all[3].clone(), all[4].clone()]);
    // `log --source` shows the source's line, forgotten ones marked.
    let line = e.json(&["log", "--source", "proj"]);
    let marked: Vec<(String, bool)> = line
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().into(), s["forgotten"] == true))
        .collect();
    assert!(marked.contains(&(all[1].clone(), false)), "{line}");
    let human = String::from_utf8(
        e.cmd(&["log", "--oneline", "--source", "proj"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for l in human.lines() {
        let forgotten = l.starts_with(&all[0][..12]) || l.starts_with(&all[2][..12]);
        assert_eq!(l.contains("forgotten"), forgotten, "{human}");
    }
    // A tagged snapshot is refused by id; undo brings both back.
    e.cmd(&["tag", "keep", &all[4]]).assert().success();
    let out = e.cmd(&["forget", &all[4]]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("tag -d keep"));
    e.cmd(&["undo-forget"]).assert().success();
    assert_eq!(ids(&e.json(&["log"])), all);
}

#[test]
fn sources_lists_every_source_and_rm_sends_one_to_the_trash() {
    let e = Env::new();
    five_snapshots(&e);
    let other = e.folder("other", &[("b.txt", "bb")]);
    e.backup(&other, &[]);
    let v = e.json(&["sources"]);
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[0]["name"], "other");
    assert_eq!(rows[0]["bytes"], 2);
    assert_eq!(rows[1]["name"], "proj");
    assert_eq!(rows[1]["kind"], "folder");
    assert_eq!(rows[1]["snapshots"], 5);
    assert_eq!(rows[1]["bytes"], "version 4".len());
    assert!(rows[1]["id"].as_str().unwrap().ends_with("proj"), "{v}");
    assert_eq!(rows[1]["latest"], e.json(&["show", "proj"])["id"]);
    let human = String::from_utf8(e.cmd(&["sources"]).output().unwrap().stdout).unwrap();
    assert!(
        human.starts_with("NAME") && human.lines().count() == 3,
        "{human}"
    );

    let dry = e.json(&["sources", "rm", "proj", "--dry-run"]);
    assert_eq!(dry["snapshots"].as_array().unwrap().len(), 5);
    assert_eq!(e.json(&["sources"]).as_array().unwrap().len(), 2);
    e.json(&["sources", "rm", "proj"]);
    let left = e.json(&["sources"]);
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
    assert_eq!(ids(&e.json(&["log"])).len(), 1);
    assert!(!e.cmd(&["show", "proj"]).output().unwrap().status.success());
    // Like a forget: undo brings it back.
    e.cmd(&["undo-forget"]).assert().success();
    assert_eq!(e.json(&["sources"]).as_array().unwrap().len(), 2);
    assert_eq!(ids(&e.json(&["log", "proj"])).len(), 5);
    let out = e.cmd(&["sources", "rm", "nosuch"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("other, proj"), "{err}");
}
