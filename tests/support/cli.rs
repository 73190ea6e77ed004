//! Running the real `belay` binary from tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Path of the `belay` binary, built once per test process (the root
/// package's tests do not build other packages' binaries by themselves).
pub fn belay_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(root)
            .args(["build", "-q", "-p", "belay-cli", "--bin", "belay"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building belay failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let bin = target.join("debug").join("belay");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

/// Where tests keep belay's local cache (instead of the user's
/// `~/.cache/belay`); keyed by repository id inside, so one is enough.
pub fn test_cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("test-cache")
}

/// `belay -r REPO ...` as an assert_cmd command (a test may override
/// `BELAY_CACHE_DIR` with its own).
/// With `BELAY_TEST_STORAGE=s3` the repository is reached through the S3
/// test server (tests/support/matrix.rs).
pub fn belay(repo: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(belay_bin());
    let (location, env) = crate::matrix::repo_arg(repo);
    c.arg("-r")
        .arg(location)
        .envs(env)
        .env_remove("BELAY_REPO")
        .env("BELAY_CACHE_DIR", test_cache_dir());
    c
}

/// Run `belay -r REPO --json ARGS...`, assert success, parse stdout.
pub fn belay_json(repo: &Path, args: &[&str]) -> serde_json::Value {
    let out = belay(repo)
        .arg("--json")
        .args(args)
        .output()
        .expect("run belay");
    assert!(
        out.status.success(),
        "belay {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("belay --json prints JSON")
}

/// How a command run by [`run_measured`] ended.
#[derive(Debug)]
pub struct Measured {
    /// The exit code, or `None` when a signal ended it (`signal` says which).
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Peak resident memory of the process, in KiB (from `wait4`).
    pub peak_rss_kib: u64,
}

impl Measured {
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Run `cmd` to its end with stdout and stderr in files, and measure its
/// peak resident memory (the process's own `ru_maxrss`, via `wait4`).
pub fn run_measured(cmd: &mut Command) -> Measured {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    // Reaped by the wait4 below, which also gives the rusage.
    #[allow(clippy::zombie_processes)]
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn");
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; wait4 fills it and the status.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    let st = std::process::ExitStatus::from_raw(status);
    Measured {
        code: st.code(),
        signal: st.signal(),
        stdout: std::fs::read(&out_path).unwrap(),
        stderr: std::fs::read(&err_path).unwrap(),
        peak_rss_kib: usage.ru_maxrss as u64,
    }
}

/// `belay -r REPO` as a plain [`Command`] (for [`run_measured`]).
pub fn belay_command(repo: &Path) -> Command {
    let mut c = Command::new(belay_bin());
    c.arg("-r")
        .arg(repo)
        .env_remove("BELAY_REPO")
        .env("BELAY_CACHE_DIR", test_cache_dir());
    c
}
