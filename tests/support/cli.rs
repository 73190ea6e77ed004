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
pub fn belay(repo: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(belay_bin());
    c.arg("-r")
        .arg(repo)
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
