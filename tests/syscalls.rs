//! Syscall budget of an unchanged re-backup (issue 7), counted with
//! `strace` (installed by tests/setup.sh): it opens no file contents of the
//! source, opens no object of the repository, and writes at most 5 files in
//! the repository (session file, snapshot object, snapshot marker, ref, and
//! the audit journal's entry, docs/format.md §12).
//! Counts, not time: deterministic on any machine.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use belay_suite::cli::{belay, belay_bin};
use belay_suite::fsutil::noise;

const N: usize = 300;

fn have_strace() -> bool {
    Command::new("strace").arg("-V").output().is_ok()
}

fn make_tree(root: &Path) {
    for i in 0..N {
        let dir = root.join(format!("d{}/sub{}", i % 7, i % 3));
        fs::create_dir_all(&dir).unwrap();
        let data = if i % 10 == 0 {
            noise(20_000 + i * 13, i as u64)
        } else {
            format!("print('file {i}')\n")
                .repeat(1 + i % 50)
                .into_bytes()
        };
        fs::write(dir.join(format!("f{i}.py")), data).unwrap();
    }
}

/// One syscall from `strace -f`: the call name, its first quoted path, the
/// second quoted path (rename targets), the whole line.
struct Call {
    name: String,
    paths: Vec<String>,
    line: String,
}

fn parse(trace: &str) -> Vec<Call> {
    let mut out = Vec::new();
    for line in trace.lines() {
        // "PID name(args) = result"
        let rest = line.split_once(' ').map_or(line, |(_, r)| r).trim_start();
        let Some((name, _)) = rest.split_once('(') else {
            continue;
        };
        let mut paths = Vec::new();
        let mut it = rest.split('"');
        it.next();
        while let Some(p) = it.next() {
            paths.push(p.to_string());
            it.next();
        }
        out.push(Call {
            name: name.to_string(),
            paths,
            line: line.to_string(),
        });
    }
    out
}

fn failed(c: &Call) -> bool {
    c.line.contains("= -1 ")
}

fn traced_backup(repo: &Path, src: &Path, cache: &Path, trace: &Path) {
    let status = Command::new("strace")
        .args(["-f", "-qq", "-s", "4096", "-o"])
        .arg(trace)
        .args([
            "-e",
            "trace=open,openat,creat,rename,renameat,renameat2,link,linkat,mkdir,mkdirat,unlink,unlinkat,truncate",
        ])
        .arg(belay_bin())
        .arg("-r")
        .arg(repo)
        .args(["-q", "backup"])
        .arg(src)
        .args(["--name", "budget"])
        .env("BELAY_CACHE_DIR", cache)
        .env_remove("BELAY_NO_CACHE")
        .status()
        .expect("run strace");
    assert!(status.success(), "traced backup failed");
}

#[test]
fn unchanged_rebackup_opens_no_contents_and_writes_at_most_5_files() {
    if !have_strace() {
        eprintln!("SKIPPED: strace is not installed (tests/setup.sh installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let repo = tmp.path().join("repo");
    let cache = tmp.path().join("cache");
    make_tree(&src);
    belay(&repo).arg("init").assert().success();
    for _ in 0..2 {
        belay(&repo)
            .env("BELAY_CACHE_DIR", &cache)
            .args(["-q", "backup"])
            .arg(&src)
            .args(["--name", "budget"])
            .assert()
            .success();
    }
    let trace = tmp.path().join("trace.txt");
    traced_backup(&repo, &src, &cache, &trace);
    let calls = parse(&fs::read_to_string(&trace).unwrap());
    let src_s = fs::canonicalize(&src).unwrap().display().to_string() + "/";
    let repo_s = repo.display().to_string() + "/";
    let objects = format!("{repo_s}objects/");

    // No file content of the source is opened (directories are listed).
    let content_opens: Vec<&str> = calls
        .iter()
        .filter(|c| c.name.starts_with("open") && !failed(c))
        .filter(|c| c.paths.first().is_some_and(|p| p.starts_with(&src_s)))
        .filter(|c| !c.line.contains("O_DIRECTORY"))
        .map(|c| c.line.as_str())
        .collect();
    assert!(
        content_opens.is_empty(),
        "source contents opened: {content_opens:#?}"
    );

    // No existing object is opened for reading.
    let object_reads: Vec<&str> = calls
        .iter()
        .filter(|c| c.name.starts_with("open") && !failed(c))
        .filter(|c| c.paths.first().is_some_and(|p| p.starts_with(&objects)))
        .filter(|c| !c.line.contains("O_CREAT"))
        .map(|c| c.line.as_str())
        .collect();
    assert!(object_reads.is_empty(), "objects opened: {object_reads:#?}");

    // Files published in the repository: renames and links into it, and
    // files created under their final name.
    let published: Vec<&str> = calls
        .iter()
        .filter(|c| !failed(c))
        .filter(|c| match c.name.as_str() {
            "rename" | "renameat" | "renameat2" | "link" | "linkat" => {
                c.paths.get(1).is_some_and(|p| p.starts_with(&repo_s))
            }
            "open" | "openat" | "creat" => {
                c.line.contains("O_CREAT")
                    && c.paths.first().is_some_and(|p| {
                        p.starts_with(&repo_s) && !file_name(p).starts_with(".tmp-")
                    })
            }
            _ => false,
        })
        .map(|c| c.line.as_str())
        .collect();
    eprintln!(
        "unchanged re-backup of {N} files: {} files written in the repository",
        published.len()
    );
    assert!(
        published.len() <= 5,
        "{} files written in the repository: {published:#?}",
        published.len()
    );
}

fn file_name(p: &str) -> String {
    PathBuf::from(p)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
