//! What most end-to-end tests start from: a temporary folder holding a new
//! repository, a private local cache and an empty config file, and the
//! `belay` command line pointed at them.

use std::path::PathBuf;

use serde_json::Value;

use crate::cli::belay;

pub struct TestRepo {
    _tmp: tempfile::TempDir,
    /// The temporary folder; [`TestRepo::dir`] names things inside it.
    pub root: PathBuf,
    pub repo: PathBuf,
    pub cache: PathBuf,
    /// Set (`Some`) or removed (`None`) for every command.
    env: Vec<(String, Option<String>)>,
}

impl Default for TestRepo {
    fn default() -> Self {
        Self::new()
    }
}

impl TestRepo {
    /// A new folder with an initialised repository.
    pub fn new() -> TestRepo {
        TestRepo::with_env(&[])
    }

    /// As [`TestRepo::new`], with environment variables set (`Some`) or
    /// removed (`None`) for every command, `init` included.
    pub fn with_env(env: &[(&str, Option<&str>)]) -> TestRepo {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let t = TestRepo {
            repo: root.join("repo"),
            cache: root.join("cache"),
            root,
            _tmp: tmp,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        };
        std::fs::write(t.config(), "").unwrap();
        t.cmd(&["init"]).assert().success();
        t
    }

    /// The config file every command reads (empty unless a test writes
    /// one), so that the user's own config never leaks into a test.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `belay -r REPO ARGS` with the private cache and config and the
    /// environment.
    pub fn cmd(&self, args: &[&str]) -> assert_cmd::Command {
        self.cmd_at(self.repo.as_os_str(), args)
    }

    /// As [`TestRepo::cmd`] on another repository (`-r repo`: a folder or
    /// a location such as `s3:…`).
    pub fn cmd_at(&self, repo: &std::ffi::OsStr, args: &[&str]) -> assert_cmd::Command {
        let mut c = belay(std::path::Path::new(repo));
        c.env("BELAY_CACHE_DIR", &self.cache)
            .env("BELAY_CONFIG", self.config());
        for (k, v) in &self.env {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.args(args);
        c
    }

    /// Run with `--json`, assert success, parse stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.cmd(&["--json"]).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "belay {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON on stdout")
    }

    /// Run, assert success, return stdout.
    pub fn stdout(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "belay {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run, assert failure, return stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            !out.status.success(),
            "belay {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Run, assert exit code 1 and one line on stderr (no panic); return it.
    pub fn fails_one_line(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "belay {args:?} should fail with exit code 1: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(!err.contains("panicked"), "{err}");
        err
    }

    /// A path inside the temporary folder.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `belay log --json`: every live snapshot, newest first.
    pub fn snapshots(&self) -> Vec<Value> {
        self.json(&["log"]).as_array().unwrap().clone()
    }
}
