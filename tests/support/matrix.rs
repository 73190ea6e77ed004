//! The storage test matrix. Every end-to-end test names its repository by
//! a folder. With `BELAY_TEST_STORAGE=s3`, `belay -r FOLDER` becomes
//! `belay -r s3:http://127.0.0.1:PORT/BUCKET/PREFIX` for the same files:
//! the S3 test server (`rclone serve s3`, a real server that keeps each
//! object as a file) serves the parent of the temporary directory, the
//! temporary directory is the bucket, and the rest of the folder's path is
//! the prefix. So the same tests, unchanged, run against object storage,
//! and what they check or damage on disk is what the server serves.
//! `tests/run` runs the folder, history, gc and crash tests both ways.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::s3::S3Server;

/// Is this run the object-storage half of the matrix?
pub fn is_s3() -> bool {
    std::env::var_os("BELAY_TEST_STORAGE").is_some_and(|v| v == "s3")
}

/// A test that cannot run on object storage (it needs a local filesystem:
/// a full disk, permissions, fsync tracing) says so and returns early.
pub fn local_only(why: &str) -> bool {
    if is_s3() {
        eprintln!("not run on object storage: {why}");
        return true;
    }
    false
}

struct Served {
    endpoint: String,
    env: Vec<(&'static str, String)>,
    root: PathBuf,
    bucket: String,
}

fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let tmp = std::env::temp_dir()
            .canonicalize()
            .expect("the temporary directory exists");
        let root = tmp.parent().expect("TMPDIR has a parent").to_path_buf();
        let bucket = tmp
            .file_name()
            .expect("TMPDIR has a name")
            .to_string_lossy()
            .into_owned();
        assert!(
            bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "BELAY_TEST_STORAGE=s3 needs TMPDIR named like a bucket (lowercase, digits, '-'), e.g. /tmp/belay-s3/tests; it is {}",
            tmp.display()
        );
        // The server dies with the thread that started it
        // (PR_SET_PDEATHSIG), so one that lives as long as the process
        // starts it and keeps it.
        let (tx, rx) = std::sync::mpsc::channel();
        let served_root = root.clone();
        std::thread::spawn(move || {
            let server = S3Server::serving(&served_root);
            tx.send((server.endpoint(), server.env())).unwrap();
            loop {
                std::thread::park();
            }
        });
        let (endpoint, env) = rx.recv().expect("the S3 test server started");
        Served {
            endpoint,
            env,
            root,
            bucket,
        }
    })
}

/// What to pass to `-r` for the repository in `folder`, and the variables
/// the command needs (credentials for the test server).
pub fn repo_arg(folder: &Path) -> (OsString, Vec<(&'static str, String)>) {
    if !is_s3() {
        return (folder.as_os_str().to_owned(), Vec::new());
    }
    let s = served();
    let abs = match folder.canonicalize() {
        Ok(p) => p,
        // Not created yet (init): its parent is.
        Err(_) => match (folder.parent(), folder.file_name()) {
            (Some(p), Some(n)) => p.canonicalize().map_or(folder.to_path_buf(), |p| p.join(n)),
            _ => folder.to_path_buf(),
        },
    };
    let Ok(rest) = abs.strip_prefix(s.root.join(&s.bucket)) else {
        // Outside the served directory (a fixture in the source tree): a
        // folder, as without the matrix.
        return (folder.as_os_str().to_owned(), Vec::new());
    };
    // The server caches directory listings for 0.1 s (see s3.rs): files a
    // test wrote or damaged on disk just now must be visible to it.
    std::thread::sleep(std::time::Duration::from_millis(150));
    let location = format!("s3:{}/{}/{}", s.endpoint, s.bucket, rest.to_string_lossy());
    (location.into(), s.env.clone())
}
