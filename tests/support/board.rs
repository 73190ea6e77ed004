//! The test board: the real MicroPython interpreter (its WebAssembly build,
//! under Node.js) on a pseudo-terminal, started from `tests/board/start`.
//! A test opens [`TestBoard::path`] exactly as it would open `/dev/ttyACM0`.
//!
//! ```no_run
//! use belay_suite::board::{BoardOptions, TestBoard};
//! # let fs_dir = std::path::Path::new("tests/fixtures/board");
//! let board = TestBoard::start(fs_dir, &BoardOptions::default());
//! // ... open board.path (e.g. serial:/dev/pts/5) ...
//! let dump = board.stop_and_dump(); // the board's filesystem, as a folder
//! assert!(dump.join("main.py").exists());
//! ```
//!
//! Needs `node` (18+) and `python3` on PATH; the npm package is installed on
//! first use (`npm ci` in tests/board, under a lock). See tests/board/README.md.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a board may take to print its PTY path.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a board may take to dump and exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// What a board does with a raw-paste request (`Ctrl-E A Ctrl-A`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RawPaste {
    /// The window protocol, as every firmware since v1.14 (the default).
    #[default]
    On,
    /// Answer `R\x00` then `>`, as pyexec does for a raw-paste command it
    /// does not support (`--no-raw-paste`).
    Refuse,
    /// Firmware older than raw-paste: Ctrl-A just re-prints the raw REPL
    /// banner, so the client reads `ra…` (`--raw-paste absent`).
    Absent,
}

/// Options of `tests/board/start`; `Default` is an RP2040-like board on a
/// 115200-baud line, without faults.
#[derive(Clone, Debug)]
pub struct BoardOptions {
    /// Line speed in baud, both directions (bytes/s = baud / 10); 0 = unthrottled.
    pub baud: u32,
    /// Python heap in bytes (`None`: 200 KB).
    pub heap: Option<u64>,
    /// Flash size in bytes: writes past it fail with ENOSPC (`None`: 16 MiB).
    pub flash_size: Option<u64>,
    /// Milliseconds each `write()` to a file takes per 4 KB started (a flash
    /// sector erase/program); the interpreter stalls meanwhile while input
    /// keeps arriving (`None`: instant).
    pub flash_write_ms: Option<u32>,
    /// Raw-paste support.
    pub raw_paste: RawPaste,
    /// Whether `hashlib` exists.
    pub hashlib: bool,
    /// Whether `deflate` exists.
    pub deflate: bool,
    /// Whether `sys.stdin.buffer` / `sys.stdout.buffer` exist.
    pub stdio_buffer: bool,
    /// What else the firmware lacks (`--without`): `uname`, `time`,
    /// `statvfs`, `machine`, `unique_id`, `ilistdir`, `ilistdir-size`,
    /// `binascii` (and `hashlib`, `deflate`, `buffer`, as the fields above).
    pub without: Vec<String>,
    /// A UART board's input buffer (e.g. 256): bytes arriving while it is
    /// full are dropped. `None`: USB-like flow control, nothing is lost.
    pub rx_buffer: Option<u32>,
    /// What `machine.unique_id()` returns, as hex (`None`: derived from the
    /// fs folder's path, stable across runs).
    pub unique_id: Option<String>,
    /// Close the line after this many bytes of output (a USB unplug).
    pub unplug_after_bytes: Option<u64>,
    /// Soft-reset the board after this many bytes of output.
    pub reset_after_bytes: Option<u64>,
    /// Replace output bytes from this one on with random bytes (16 of them,
    /// unless `extra_args` has `--garble-count K`).
    pub garble_after_bytes: Option<u64>,
    /// After this many bytes of output, change the board file `mutate_file`
    /// (once), from the interpreter between two of the running code's
    /// output writes: a file that changes while the host reads it.
    pub mutate_after_bytes: Option<u64>,
    /// The board file `mutate_after_bytes` changes, e.g. `data/big.bin`.
    pub mutate_file: Option<String>,
    /// How it changes: `false` appends a line (the size grows); `true`
    /// inverts its first and last 16 bytes in place (the size stays).
    pub mutate_overwrite: bool,
    /// Where the filesystem is dumped when the board stops (`None`: a
    /// temporary folder, removed with the [`BoardDump`]).
    pub dump_to: Option<PathBuf>,
    /// Log the board's events on stderr.
    pub verbose: bool,
    /// More arguments for `tests/board/start`.
    pub extra_args: Vec<String>,
}

impl Default for BoardOptions {
    fn default() -> Self {
        BoardOptions {
            baud: 115_200,
            heap: None,
            flash_size: None,
            flash_write_ms: None,
            raw_paste: RawPaste::On,
            hashlib: true,
            deflate: true,
            stdio_buffer: true,
            without: Vec::new(),
            rx_buffer: None,
            unique_id: None,
            unplug_after_bytes: None,
            reset_after_bytes: None,
            garble_after_bytes: None,
            mutate_after_bytes: None,
            mutate_file: None,
            mutate_overwrite: false,
            dump_to: None,
            verbose: false,
            extra_args: Vec::new(),
        }
    }
}

impl BoardOptions {
    /// The default board without the baud-rate limit (for fast tests).
    pub fn unthrottled() -> Self {
        BoardOptions {
            baud: 0,
            ..BoardOptions::default()
        }
    }

    fn args(&self) -> Vec<String> {
        let mut a = vec!["--baud".to_string(), self.baud.to_string()];
        let mut opt = |name: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(name.to_string());
                a.push(v);
            }
        };
        opt("--heap", self.heap.map(|v| v.to_string()));
        opt("--flash-size", self.flash_size.map(|v| v.to_string()));
        opt(
            "--flash-write-ms",
            self.flash_write_ms.map(|v| v.to_string()),
        );
        opt("--rx-buffer", self.rx_buffer.map(|v| v.to_string()));
        opt("--unique-id", self.unique_id.clone());
        opt(
            "--unplug-after-bytes",
            self.unplug_after_bytes.map(|v| v.to_string()),
        );
        opt(
            "--reset-after-bytes",
            self.reset_after_bytes.map(|v| v.to_string()),
        );
        opt(
            "--garble-after-bytes",
            self.garble_after_bytes.map(|v| v.to_string()),
        );
        opt(
            "--mutate-after-bytes",
            self.mutate_after_bytes.map(|v| v.to_string()),
        );
        opt("--mutate-file", self.mutate_file.clone());
        if self.mutate_overwrite {
            a.extend(["--mutate-how".into(), "overwrite".into()]);
        }
        match self.raw_paste {
            RawPaste::On => {}
            RawPaste::Refuse => a.push("--no-raw-paste".into()),
            RawPaste::Absent => a.extend(["--raw-paste".into(), "absent".into()]),
        }
        if !self.hashlib {
            a.push("--no-hashlib".into());
        }
        if !self.deflate {
            a.push("--no-deflate".into());
        }
        if !self.stdio_buffer {
            a.push("--no-buffer".into());
        }
        if !self.without.is_empty() {
            a.push("--without".into());
            a.push(self.without.join(","));
        }
        if self.verbose {
            a.push("--verbose".into());
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

/// A running test board. Dropping it stops the board (SIGTERM) and lets it
/// dump its filesystem.
#[derive(Debug)]
pub struct TestBoard {
    /// The pseudo-terminal to open, e.g. `/dev/pts/5`.
    pub path: PathBuf,
    child: Option<Child>,
    dump: BoardDump,
}

/// The board's filesystem as written to a host folder when the board
/// stopped. Derefs to the folder's path; a temporary folder is removed when
/// this is dropped.
#[derive(Debug)]
pub struct BoardDump {
    dir: PathBuf,
    temporary: bool,
}

impl BoardDump {
    /// The folder holding the board's files.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Keep the folder (also a temporary one) and return its path.
    pub fn keep(mut self) -> PathBuf {
        self.temporary = false;
        self.dir.clone()
    }
}

impl Deref for BoardDump {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.dir
    }
}

impl AsRef<Path> for BoardDump {
    fn as_ref(&self) -> &Path {
        &self.dir
    }
}

impl Drop for BoardDump {
    fn drop(&mut self) {
        if self.temporary {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// `tests/board` in this checkout.
pub fn board_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("board")
}

/// Installs the board's npm package (`npm ci` in tests/board) unless it is
/// there; concurrent callers (tests in parallel, several test binaries)
/// wait for one another through a lock file.
pub fn ensure_installed() -> io::Result<()> {
    let dir = board_dir();
    let marker =
        dir.join("node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs");
    if marker.exists() {
        return Ok(());
    }
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".npm-ci.lock"))?;
    lock.lock()?;
    if marker.exists() {
        return Ok(());
    }
    let status = Command::new(npm())
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot run npm (install Node.js 18+): {e}"),
            )
        })?;
    if !status.success() || !marker.exists() {
        return Err(io::Error::other(format!(
            "npm ci in {} failed ({status})",
            dir.display()
        )));
    }
    Ok(())
}

fn npm() -> String {
    std::env::var("NPM").unwrap_or_else(|_| "npm".to_string())
}

fn temp_dump_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "belay-board-dump-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

impl TestBoard {
    /// Starts a board whose filesystem is a copy of `fs_dir`, and waits until
    /// it is on the line. Panics (with the reason) if it cannot start.
    pub fn start(fs_dir: &Path, options: &BoardOptions) -> TestBoard {
        match TestBoard::try_start(fs_dir, options) {
            Ok(board) => board,
            Err(e) => panic!("cannot start the test board: {e}"),
        }
    }

    /// Like [`TestBoard::start`], returning the error instead of panicking.
    pub fn try_start(fs_dir: &Path, options: &BoardOptions) -> io::Result<TestBoard> {
        ensure_installed()?;
        let (dump_dir, temporary) = match &options.dump_to {
            Some(d) => (d.clone(), false),
            None => (temp_dump_dir(), true),
        };
        let mut child = Command::new(board_dir().join("start"))
            .arg("--fs")
            .arg(fs_dir)
            .arg("--dump-to")
            .arg(&dump_dir)
            .args(options.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let first = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(first);
            // Keep draining: the board prints nothing else, but a full pipe
            // must never block it.
            let _ = io::copy(&mut reader, &mut io::sink());
        });
        let dump = BoardDump {
            dir: dump_dir,
            temporary,
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) if line.trim().starts_with("/dev/") => line,
            other => {
                let _ = child.kill();
                let status = child.wait()?;
                return Err(io::Error::other(format!(
                    "the board did not print its PTY path ({status}; got {other:?})"
                )));
            }
        };
        Ok(TestBoard {
            path: PathBuf::from(line.trim()),
            child: Some(child),
            dump,
        })
    }

    /// The pseudo-terminal to open, e.g. `/dev/pts/5`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The process id of the board (for signals of one's own, e.g. SIGUSR1
    /// to dump without stopping).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Stops the board (SIGTERM), waits for it to dump its filesystem and
    /// exit, and returns the dump. Panics if the board could not dump.
    pub fn stop_and_dump(mut self) -> BoardDump {
        let ok = self.stop();
        assert!(
            ok,
            "the test board did not dump its filesystem and exit cleanly"
        );
        BoardDump {
            dir: self.dump.dir.clone(),
            temporary: std::mem::replace(&mut self.dump.temporary, false),
        }
    }

    /// SIGTERM, then wait; SIGKILL if the board does not exit in time.
    /// True if it exited successfully.
    fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }
}

impl Drop for TestBoard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `mpremote` to use in tests: `$MPREMOTE` if set, else the one
/// tests/setup.sh installs (tests/board/.venv/bin/mpremote), else `mpremote`
/// from PATH.
pub fn mpremote() -> PathBuf {
    if let Some(p) = std::env::var_os("MPREMOTE") {
        return PathBuf::from(p);
    }
    let venv = board_dir().join(".venv/bin/mpremote");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("mpremote")
}

/// Reads a whole file, for comparisons in tests.
pub fn read(path: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut v))
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    v
}
