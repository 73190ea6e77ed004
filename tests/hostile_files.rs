//! Repository files are untrusted input (issue 16 item 4): an object, ref
//! or config that is a symlink to `/dev/zero`, a FIFO, or a huge sparse
//! file must give one clear line and exit 1 or 3 — never hang, never grow
//! memory without bound. Each case runs the real binary under an address
//! space limit and measures the child's peak RSS (`wait4`'s rusage).

use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use belay_suite::cli::{belay, belay_bin, belay_json, test_cache_dir};

/// The child may reserve at most this much address space: reading
/// `/dev/zero` or a 4 GiB sparse file whole cannot fit in it.
const ADDRESS_SPACE: u64 = 3 << 30;
/// Peak resident memory a command over a tiny repository may reach.
const MAX_RSS_KB: i64 = 256 * 1024;

struct Run {
    code: Option<i32>,
    stderr: String,
    max_rss_kb: i64,
}

/// Run `belay -r repo args…` with a bounded address space; its exit code,
/// stderr and peak RSS.
fn run_bounded(repo: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(belay_bin());
    cmd.arg("-r")
        .arg(repo)
        .args(args)
        .env_remove("BELAY_REPO")
        .env("BELAY_CACHE_DIR", test_cache_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("run belay");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain structs filled by the kernel; the child is ours and
    // not yet reaped (std's `Child` is never waited on).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    let code = if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        None
    };
    std::mem::forget(child);
    Run {
        code,
        stderr,
        max_rss_kb: usage.ru_maxrss,
    }
}

/// The command failed cleanly: exit 1 or 3, one line mentioning `what`,
/// bounded memory.
fn assert_clean_failure(run: &Run, what: &str) {
    assert!(
        matches!(run.code, Some(1 | 3)),
        "exit {:?} (a signal or allocation failure?), stderr: {}",
        run.code,
        run.stderr
    );
    let lines: Vec<&str> = run.stderr.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {}", run.stderr);
    assert!(
        lines[0].contains(what),
        "the line should mention {what:?}: {}",
        lines[0]
    );
    assert!(
        run.max_rss_kb < MAX_RSS_KB,
        "peak RSS {} KiB for a tiny repository",
        run.max_rss_kb
    );
}

/// A repository with one snapshot of one small file; returns the repo and
/// the id of that file's chunk.
fn repo_with_one_file(dir: &Path) -> (PathBuf, String) {
    let repo = dir.join("repo");
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    let content = b"print('hostile files')\n".repeat(40);
    fs::write(src.join("main.py"), &content).unwrap();
    belay(&repo).arg("init").assert().success();
    belay_json(&repo, &["backup", src.to_str().unwrap(), "--name", "b"]);
    let mut h = blake3::Hasher::new();
    h.update(&[1]);
    h.update(&content);
    (repo, h.finalize().to_hex().to_string())
}

/// The file that holds the chunk `id`: its loose object, or (format v2)
/// the pack holding it.
fn file_holding_chunk(repo: &Path, id: &str) -> PathBuf {
    let loose = repo.join("objects").join(&id[..2]).join(&id[2..4]).join(id);
    if loose.exists() {
        return loose;
    }
    let needle = hex::decode(id).unwrap();
    let mut stack = vec![repo.join("objects")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_slice())
            {
                return p;
            }
        }
    }
    panic!("no file of {} holds chunk {id}", repo.display());
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

enum Hostile {
    DevZero,
    Fifo,
    Sparse,
}

fn make_hostile(p: &Path, how: &Hostile) {
    fs::remove_file(p).unwrap();
    match how {
        Hostile::DevZero => std::os::unix::fs::symlink("/dev/zero", p).unwrap(),
        Hostile::Fifo => mkfifo(p),
        Hostile::Sparse => {
            let f = fs::File::create(p).unwrap();
            f.set_len(4 << 30).unwrap();
        }
    }
}

fn object_case(how: Hostile, what: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, chunk) = repo_with_one_file(tmp.path());
    make_hostile(&file_holding_chunk(&repo, &chunk), &how);
    let out = tmp.path().join("out");
    let run = run_bounded(&repo, &["restore", "b", "--to", out.to_str().unwrap()]);
    assert_clean_failure(&run, what);
    let run = run_bounded(&repo, &["check", "--read-data"]);
    assert!(
        matches!(run.code, Some(3)),
        "check must report the damage (exit 3): {:?} {}",
        run.code,
        run.stderr
    );
    assert!(
        run.max_rss_kb < MAX_RSS_KB,
        "check peak RSS {}",
        run.max_rss_kb
    );
}

#[test]
fn an_object_symlinked_to_dev_zero_is_refused_not_read() {
    object_case(Hostile::DevZero, "not a regular file");
}

#[test]
fn an_object_that_is_a_fifo_is_refused_without_hanging() {
    object_case(Hostile::Fifo, "not a regular file");
}

#[test]
fn a_huge_sparse_object_is_refused_by_its_size() {
    object_case(Hostile::Sparse, "larger than");
}

fn ref_case(how: Hostile, what: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _) = repo_with_one_file(tmp.path());
    make_hostile(&repo.join("refs/heads/b"), &how);
    let run = run_bounded(&repo, &["log", "b"]);
    assert_clean_failure(&run, what);
}

#[test]
fn a_ref_symlinked_to_dev_zero_is_refused() {
    ref_case(Hostile::DevZero, "not a regular file");
}

#[test]
fn a_ref_that_is_a_fifo_is_refused_without_hanging() {
    ref_case(Hostile::Fifo, "not a regular file");
}

#[test]
fn a_huge_ref_is_refused_by_its_size() {
    ref_case(Hostile::Sparse, "bytes");
}

fn config_case(how: Hostile, what: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _) = repo_with_one_file(tmp.path());
    make_hostile(&repo.join("config"), &how);
    let run = run_bounded(&repo, &["log"]);
    assert_clean_failure(&run, what);
}

#[test]
fn a_config_symlinked_to_dev_zero_is_refused() {
    config_case(Hostile::DevZero, "not a regular file");
}

#[test]
fn a_config_that_is_a_fifo_is_refused_without_hanging() {
    config_case(Hostile::Fifo, "not a regular file");
}

#[test]
fn a_huge_config_is_refused_by_its_size() {
    config_case(Hostile::Sparse, "bytes");
}

/// gc's own files on the share: a condemned list and the forget's undo
/// record that are FIFOs, `/dev/zero` or 4 GiB sparse files stop `gc`
/// with one line naming them (it used to hang on a FIFO and read the
/// others whole), and a journal file like that is skipped with a warning.
fn gc_file_case(how: Hostile, what: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _) = repo_with_one_file(tmp.path());
    let list = repo.join("gc/condemned/0-hostile.list");
    fs::write(&list, b"x").unwrap();
    make_hostile(&list, &how);
    let run = run_bounded(&repo, &["gc"]);
    assert_clean_failure(&run, what);
    assert!(run.stderr.contains("0-hostile.list"), "{}", run.stderr);
    fs::remove_file(&list).unwrap();

    let undo = repo.join("trash/undo.json");
    fs::create_dir_all(undo.parent().unwrap()).unwrap();
    fs::write(&undo, b"{}").unwrap();
    make_hostile(&undo, &how);
    for args in [&["gc"][..], &["undo-forget"]] {
        let run = run_bounded(&repo, args);
        assert_clean_failure(&run, what);
    }
    fs::remove_file(&undo).unwrap();

    let journal = repo.join("journal/20260101T000000Z-hostile.json");
    fs::create_dir_all(journal.parent().unwrap()).unwrap();
    fs::write(&journal, b"{}").unwrap();
    make_hostile(&journal, &how);
    let run = run_bounded(&repo, &["journal"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("hostile.json") && run.stderr.contains(what),
        "a warning names the file: {}",
        run.stderr
    );
    assert!(run.max_rss_kb < MAX_RSS_KB, "peak RSS {}", run.max_rss_kb);
}

#[test]
fn gc_lists_undo_records_and_journal_files_symlinked_to_dev_zero_are_refused() {
    gc_file_case(Hostile::DevZero, "not a regular file");
}

#[test]
fn gc_lists_undo_records_and_journal_files_that_are_fifos_do_not_hang() {
    gc_file_case(Hostile::Fifo, "not a regular file");
}

#[test]
fn huge_gc_lists_undo_records_and_journal_files_are_refused_by_size() {
    gc_file_case(Hostile::Sparse, "larger than");
}
