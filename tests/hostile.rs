//! Hostile input: repositories and folders no belay writer would produce,
//! as they can arrive on a shared drive. Every command must end with one
//! clear line (or succeed), never crash, never write outside its target,
//! and stay within bounded memory.

use std::fs;
use std::path::{Path, PathBuf};

use belay_store::Repo;
use belay_suite::cli::{Measured, belay, belay_command, run_measured};
use belay_suite::fsutil::assert_same_tree;
use belay_suite::handmade;

/// Peak memory no command may exceed on these small hostile inputs.
const MAX_RSS_KIB: u64 = 512 * 1024;

fn init(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    belay(&repo).arg("init").assert().success();
    repo
}

/// Run `belay -r REPO ARGS...`; assert it ended by itself (no signal, no
/// panic), with exit 0, 1 or 3, a clear line on failure, and bounded memory.
fn run(repo: &Path, args: &[&str]) -> Measured {
    let m = run_measured(belay_command(repo).args(args));
    let err = m.stderr_text();
    eprintln!(
        "belay {:?}: exit {:?} signal {:?}, peak RSS {} KiB, stderr: {}",
        args.iter()
            .map(|a| if a.len() > 40 { "<long>" } else { a })
            .collect::<Vec<_>>(),
        m.code,
        m.signal,
        m.peak_rss_kib,
        err.lines().next().unwrap_or("")
    );
    assert_eq!(
        m.signal, None,
        "belay {args:?} was killed by a signal: {err}"
    );
    assert!(
        matches!(m.code, Some(0 | 1 | 3)),
        "belay {args:?} exited {:?}: {err}",
        m.code
    );
    assert!(!err.contains("panicked"), "belay {args:?} panicked: {err}");
    assert!(!err.contains("overflow"), "belay {args:?}: {err}");
    if m.code != Some(0) {
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            !lines.is_empty() && lines.iter().all(|l| l.len() < 400),
            "belay {args:?} should fail with a short clear line, got: {err}"
        );
    }
    assert!(
        m.peak_rss_kib < MAX_RSS_KIB,
        "belay {args:?} used {} KiB",
        m.peak_rss_kib
    );
    m
}

#[test]
fn trees_nested_100000_deep_get_a_clear_line_from_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_path = init(tmp.path());
    let small = tmp.path().join("small");
    fs::create_dir_all(small.join("d")).unwrap();
    fs::write(small.join("d/f"), b"small\n").unwrap();
    belay(&repo_path)
        .args(["backup"])
        .arg(&small)
        .assert()
        .success();
    let repo = Repo::open(&repo_path).unwrap();
    handmade::commit_deep_chain(&repo, "deep", 100_000, b"at the bottom\n");
    // A path just past the limit, and one within it, for `cat`.
    let path_at = |levels: usize| format!("deep:{}f", "d/".repeat(levels));

    let out = tmp.path().join("out");
    let too_deep = |m: &Measured| {
        assert!(
            m.stderr_text().contains("nest more than 4096 levels deep"),
            "{}",
            m.stderr_text()
        )
    };
    for args in [
        vec!["ls", "-R", "deep"],
        vec!["ls", "-R", "--json", "deep"],
        vec!["diff", "small", "deep"],
        vec!["diff", "deep", "small"],
        vec!["find", "f"],
        vec!["find", "--all", "*"],
    ] {
        let m = run(&repo_path, &args);
        assert_ne!(m.code, Some(0), "{args:?} cannot finish on this tree");
        too_deep(&m);
    }
    let m = run(
        &repo_path,
        &["restore", "deep", "--to", out.to_str().unwrap()],
    );
    assert_ne!(m.code, Some(0));
    too_deep(&m);
    assert!(
        !out.exists() || fs::read_dir(&out).unwrap().next().is_none(),
        "a refused restore wrote something"
    );
    for args in [
        vec!["ls", "deep"],
        vec!["log"],
        vec!["log", "--", "d/d/f"],
        vec!["show", "deep"],
        vec!["stats"],
    ] {
        assert_eq!(run(&repo_path, &args).code, Some(0), "{args:?}");
    }
    // `cat` follows the path it is given (no argument can name the file:
    // Linux caps one argument at 128 KiB).
    let m = run(&repo_path, &["cat", &path_at(30_000)]);
    assert_eq!(m.code, Some(1), "d/ x 30000 does not reach the file");
    assert!(
        m.stderr_text().contains("no such path"),
        "{}",
        m.stderr_text()
    );
    // check names the snapshot, exits 3; gc keeps everything it reaches.
    let m = run(&repo_path, &["check"]);
    assert_eq!(m.code, Some(3));
    let m = run(&repo_path, &["--json", "check"]);
    let report: serde_json::Value = serde_json::from_slice(&m.stdout).unwrap();
    let text = report.to_string();
    assert!(
        text.contains("too-deep") && text.contains("100000 levels"),
        "{text}"
    );
    let m = run(&repo_path, &["gc", "--grace", "0"]);
    assert_eq!(m.code, Some(0), "{}", m.stderr_text());
    let m = run(&repo_path, &["gc", "--now"]);
    assert_eq!(m.code, Some(0), "{}", m.stderr_text());
    assert_eq!(
        run(&repo_path, &["check"]).code,
        Some(3),
        "gc kept the deep snapshot whole"
    );
    assert_eq!(run(&repo_path, &["ls", "-R", "small"]).code, Some(0));
}

#[test]
fn a_chain_exactly_at_the_depth_limit_is_read_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_path = init(tmp.path());
    let repo = Repo::open(&repo_path).unwrap();
    handmade::commit_deep_chain(&repo, "deep", 4096, b"at the bottom\n");
    let m = run(&repo_path, &["ls", "-R", "deep"]);
    assert_eq!(m.code, Some(0), "{}", m.stderr_text());
    assert_eq!(String::from_utf8_lossy(&m.stdout).lines().count(), 4097);
    assert_eq!(run(&repo_path, &["check"]).code, Some(0));
    let m = run(&repo_path, &["find", "f"]);
    assert_eq!(m.code, Some(0));
    let m = run(
        &repo_path,
        &["cat", &format!("deep:{}f", "d/".repeat(4096))],
    );
    assert_eq!(m.stdout, b"at the bottom\n");
    handmade::commit_deep_chain(&repo, "deeper", 4097, b"at the bottom\n");
    assert_eq!(run(&repo_path, &["ls", "-R", "deeper"]).code, Some(3));
    assert_eq!(run(&repo_path, &["check"]).code, Some(3));
}

/// The deepest folder absolute paths allow (Linux: `PATH_MAX`, 4096 bytes)
/// is backed up, restored byte-identical and checked.
#[test]
fn the_deepest_folder_the_os_allows_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_path = init(tmp.path());
    let src = tmp.path().join("src");
    let mut dir = src.clone();
    fs::create_dir(&dir).unwrap();
    let mut depth = 0;
    loop {
        let next = dir.join("d");
        // Room below the deepest directory for the file `f` and for the
        // temporary name restore writes it under (`.tmp-` + 16 + name).
        if next.as_os_str().len() + 40 >= libc::PATH_MAX as usize {
            break;
        }
        match fs::create_dir(&next) {
            Ok(()) => {
                dir = next;
                depth += 1;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => break,
            Err(e) => panic!("{}: {e}", next.display()),
        }
    }
    fs::write(dir.join("f"), b"deepest\n").unwrap();
    eprintln!("folder nested {depth} deep");
    assert!(depth > 2000, "only {depth} levels");
    let m = run(&repo_path, &["backup", src.to_str().unwrap()]);
    assert_eq!(m.code, Some(0), "{}", m.stderr_text());
    let dst = tmp.path().join("dst"); // as long as src: every path fits
    let m = run(
        &repo_path,
        &["restore", "src", "--to", dst.to_str().unwrap()],
    );
    assert_eq!(m.code, Some(0), "{}", m.stderr_text());
    assert_same_tree(&src, &dst);
    assert_eq!(run(&repo_path, &["check", "--read-data"]).code, Some(0));
    assert_eq!(
        run(&repo_path, &["diff", "src", src.to_str().unwrap()]).code,
        Some(0)
    );
}

// ---------------------------------------------------------------------------
// Hostile repositories, one case per test.

/// A repository with one folder backed up as `src` (a `lib/` directory and
/// two files), its path and the source folder.
fn with_backup(tmp: &Path) -> (PathBuf, PathBuf) {
    with_backup_in(tmp, init(tmp))
}

fn with_backup_in(tmp: &Path, repo: PathBuf) -> (PathBuf, PathBuf) {
    let src = tmp.join("src");
    fs::create_dir_all(src.join("lib")).unwrap();
    fs::write(src.join("main.py"), b"print('main')\n".repeat(40)).unwrap();
    fs::write(src.join("lib/util.py"), b"def f(): pass\n").unwrap();
    belay(&repo).arg("backup").arg(&src).assert().success();
    (repo, src)
}

/// A snapshot `evil` whose root tree holds one file entry with `name`,
/// pointing at a real chunk.
fn commit_named(repo: &Repo, name: &[u8]) {
    use belay_store::object::ObjectKind;
    use belay_store::tree::{Node, Tree, TreeEntry};
    let (chunk, _) = repo.write_object(ObjectKind::Chunk, b"pwned\n").unwrap();
    let tree = Tree {
        entries: vec![TreeEntry {
            name: name.to_vec(),
            mode: 0o644,
            mtime_ns: None,
            node: Node::File {
                size: 6,
                sha256: [0; 32],
                chunks: vec![chunk],
            },
        }],
    };
    handmade::commit_tree(repo, "evil", &tree);
}

/// Every reader of the snapshot `rev` fails with exit 3 naming `needle`,
/// and a restore writes nothing, inside or outside `--to`.
fn every_reader_refuses(tmp: &Path, repo: &Path, rev: &str, needle: &str) {
    let to = tmp.join("restore-here");
    let before = outside_listing(tmp);
    for args in [
        vec!["ls", "-R", rev],
        vec!["find", "*"],
        vec!["restore", rev, "--to", to.to_str().unwrap()],
        vec!["check"],
    ] {
        let m = run(repo, &args);
        assert_eq!(m.code, Some(3), "{args:?}: {}", m.stderr_text());
        let shown = if args[0] == "check" {
            String::from_utf8_lossy(&m.stdout).into_owned() + &m.stderr_text()
        } else {
            m.stderr_text()
        };
        assert!(shown.contains(needle), "{args:?}: {shown}");
    }
    assert!(
        !to.exists() || fs::read_dir(&to).unwrap().next().is_none(),
        "a refused restore wrote into --to"
    );
    assert_eq!(
        outside_listing(tmp),
        before,
        "something was written outside --to"
    );
}

/// Every path below `dir` except the repository and the restore target.
fn outside_listing(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if d == dir && (name == "repo" || name == "restore-here") {
                continue;
            }
            if p.is_dir() && !p.is_symlink() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_names_absolute_with_slash_or_nul_are_refused() {
    for name in [&b"/etc/passwd"[..], b"a/../../x", b"a\0b", b".", b""] {
        let tmp = tempfile::tempdir().unwrap();
        let (repo_path, _) = with_backup(tmp.path());
        let repo = Repo::open(&repo_path).unwrap();
        commit_named(&repo, name);
        eprintln!("name {:?}", String::from_utf8_lossy(name));
        every_reader_refuses(tmp.path(), &repo_path, "evil", "invalid entry name");
    }
}

#[test]
fn hostile_decompression_bomb_is_refused_with_bounded_memory() {
    use belay_store::object::{Compression, Header, ObjectKind};
    use belay_store::tree::{Node, Tree, TreeEntry};
    let tmp = tempfile::tempdir().unwrap();
    let (repo_path, _) = with_backup(tmp.path());
    let repo = Repo::open(&repo_path).unwrap();
    // 1 GiB of zeros as a zstd stream (about 32 KiB), under a header that
    // claims 100 bytes, filed under an id nothing else has.
    let mut stream = Vec::new();
    {
        let mut enc = zstd::stream::write::Encoder::new(&mut stream, 1).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            std::io::Write::write_all(&mut enc, &zeros).unwrap();
        }
        enc.finish().unwrap();
    }
    let bomb_id = belay_store::ObjectId([0xb0; 32]);
    let h = Header {
        kind: ObjectKind::Chunk,
        compression: Compression::Zstd,
        raw_len: 100,
        stored_len: stream.len() as u64,
    };
    let path = repo.object_path(&bomb_id);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = h.encode().to_vec();
    file.extend_from_slice(&stream);
    fs::write(&path, file).unwrap();
    let tree = Tree {
        entries: vec![TreeEntry {
            name: b"bomb".to_vec(),
            mode: 0o644,
            mtime_ns: None,
            node: Node::File {
                size: 100,
                sha256: [0; 32],
                chunks: vec![bomb_id],
            },
        }],
    };
    handmade::commit_tree(&repo, "evil", &tree);
    let to = tmp.path().join("restore-here");
    for args in [
        vec!["cat", "evil:bomb"],
        vec!["restore", "evil", "--to", to.to_str().unwrap()],
        vec!["check", "--read-data"],
    ] {
        let m = run(&repo_path, &args);
        assert_eq!(m.code, Some(3), "{args:?}: {}", m.stderr_text());
        let shown = String::from_utf8_lossy(&m.stdout).into_owned() + &m.stderr_text();
        assert!(shown.contains(&bomb_id.to_hex()), "{args:?}: {shown}");
        assert!(m.stdout.len() < 4096, "{args:?} printed the bomb");
    }
    assert!(!to.join("bomb").exists());
}

#[test]
fn hostile_length_fields_claiming_huge_vectors_are_refused() {
    use belay_store::object::ObjectKind;
    let tmp = tempfile::tempdir().unwrap();
    let (repo_path, _) = with_backup(tmp.path());
    let repo = Repo::open(&repo_path).unwrap();
    // TreeRecord::V1, then an entry count of 2^35 with one byte behind it;
    // then a name length of 2^32 in an otherwise plausible entry.
    for payload in [
        vec![0u8, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x01],
        vec![0u8, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a'],
    ] {
        let (tree_id, _) = repo.write_object(ObjectKind::Tree, &payload).unwrap();
        let snap = belay_store::snapshot::Snapshot {
            tree: tree_id,
            ..repo
                .read_snapshot(
                    &repo
                        .read_ref(belay_store::repo::RefKind::Head, "src")
                        .unwrap()
                        .unwrap(),
                )
                .unwrap()
        };
        let (id, _) = repo.commit_snapshot(&snap).unwrap();
        repo.write_ref(belay_store::repo::RefKind::Head, "evil", &id)
            .unwrap();
        every_reader_refuses(tmp.path(), &repo_path, "evil", "is corrupt");
    }
}

#[test]
fn hostile_object_stored_under_the_wrong_id_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    // Format 1: one file per object, so one can hold another's bytes.
    let v1 = tmp.path().join("repo");
    belay(&v1)
        .args(["init", "--format", "1"])
        .assert()
        .success();
    let (repo_path, _) = with_backup_in(tmp.path(), v1);
    let repo = Repo::open(&repo_path).unwrap();
    let head = repo
        .read_ref(belay_store::repo::RefKind::Head, "src")
        .unwrap()
        .unwrap();
    let root = repo.read_snapshot(&head).unwrap().tree;
    let lib = match &repo.read_tree(&root).unwrap().get(b"lib").unwrap().node {
        belay_store::tree::Node::Dir { tree } => *tree,
        _ => unreachable!(),
    };
    // The root tree's file now holds the (valid) lib tree's bytes.
    fs::copy(repo.object_path(&lib), repo.object_path(&root)).unwrap();
    every_reader_refuses(tmp.path(), &repo_path, "src", "does not match its id");
}

#[test]
fn hostile_kind_confusion_a_chunk_where_a_tree_belongs() {
    use belay_store::object::ObjectKind;
    use belay_store::tree::{Node, Tree, TreeEntry};
    let tmp = tempfile::tempdir().unwrap();
    let (repo_path, _) = with_backup(tmp.path());
    let repo = Repo::open(&repo_path).unwrap();
    let (chunk, _) = repo.write_object(ObjectKind::Chunk, b"not a tree").unwrap();
    let tree = Tree {
        entries: vec![TreeEntry {
            name: b"dir".to_vec(),
            mode: 0o755,
            mtime_ns: None,
            node: Node::Dir { tree: chunk },
        }],
    };
    handmade::commit_tree(&repo, "evil", &tree);
    every_reader_refuses(
        tmp.path(),
        &repo_path,
        "evil",
        "is a chunk, expected a tree",
    );
    // And a tree where a chunk belongs: cat names it.
    let head = repo
        .read_ref(belay_store::repo::RefKind::Head, "src")
        .unwrap()
        .unwrap();
    let root = repo.read_snapshot(&head).unwrap().tree;
    let tree = Tree {
        entries: vec![TreeEntry {
            name: b"file".to_vec(),
            mode: 0o644,
            mtime_ns: None,
            node: Node::File {
                size: 10,
                sha256: [0; 32],
                chunks: vec![root],
            },
        }],
    };
    handmade::commit_tree(&repo, "evil2", &tree);
    let m = run(&repo_path, &["cat", "evil2:file"]);
    assert_eq!(m.code, Some(3));
    assert!(
        m.stderr_text().contains("is a tree, expected a chunk"),
        "{}",
        m.stderr_text()
    );
}

#[test]
fn hostile_refs_and_tag_names_with_dots_or_slashes() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo_path, src) = with_backup(tmp.path());
    let src = src.to_str().unwrap();
    let head = fs::read_to_string(repo_path.join("refs/heads/src")).unwrap();
    // Names no writer makes, planted on the drive.
    fs::create_dir_all(repo_path.join("refs/tags/sub")).unwrap();
    fs::write(repo_path.join("refs/tags/sub/x"), &head).unwrap();
    fs::write(repo_path.join("refs/heads/..evil"), &head).unwrap();
    fs::write(repo_path.join("refs/tags/.hidden"), &head).unwrap();
    for args in [
        vec!["log", "--oneline"],
        vec!["tags"],
        vec!["check"],
        vec!["gc", "--dry-run"],
        vec!["stats"],
    ] {
        let m = run(&repo_path, &args);
        assert_eq!(m.code, Some(0), "{args:?}: {}", m.stderr_text());
    }
    // Names given by the user: refused before any file is touched.
    // (A NUL cannot be passed in an argument at all.)
    for name in ["../../escaped", "a/b", "..", "sub/x", ".hidden"] {
        for args in [
            vec!["tag", name, "src"],
            vec!["log", name],
            vec!["tag", "-d", name],
            vec!["backup", "--name", name, src],
        ] {
            let m = run(&repo_path, &args);
            assert_ne!(m.code, Some(0), "{args:?} succeeded");
        }
    }
    assert!(!tmp.path().join("escaped").exists());
    assert!(!repo_path.join("escaped").exists());
    assert!(
        repo_path.join("refs/tags/sub/x").exists(),
        "nothing deleted"
    );
}

#[test]
fn hostile_config_missing_or_garbage() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo_path, src) = with_backup(tmp.path());
    let src = src.to_str().unwrap();
    let good = fs::read_to_string(repo_path.join("config")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("missing", vec![]),
        ("binary", vec![0xff, 0xfe, 0, 1, 2]),
        ("not an object", b"[1,2,3]".to_vec()),
        (
            "wrong types",
            good.replace("\"level\": 3", "\"level\": \"x\"")
                .into_bytes(),
        ),
        (
            "absurd chunker",
            good.replace("\"max_size\": 65536", "\"max_size\": 0")
                .into_bytes(),
        ),
        ("huge", vec![b' '; 10 << 20]),
    ];
    for (what, bytes) in cases {
        if what == "missing" {
            fs::remove_file(repo_path.join("config")).unwrap();
        } else {
            fs::write(repo_path.join("config"), &bytes).unwrap();
        }
        for args in [vec!["log"], vec!["check"], vec!["backup", src]] {
            let m = run(&repo_path, &args);
            assert_eq!(m.code, Some(1), "{what}: {args:?}: {}", m.stderr_text());
        }
    }
    // A FIFO as config, or a ref, must not hang a reader.
    fs::write(repo_path.join("config"), &good).unwrap();
    let fifo = repo_path.join("refs/tags/fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let m = run(&repo_path, &["tags"]);
    assert_eq!(m.code, Some(1), "{}", m.stderr_text());
    assert!(
        m.stderr_text().contains("not a regular file"),
        "{}",
        m.stderr_text()
    );
    fs::remove_file(&fifo).unwrap();
    fs::remove_file(repo_path.join("config")).unwrap();
    let c = std::ffi::CString::new(repo_path.join("config").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let m = run(&repo_path, &["log"]);
    assert_eq!(m.code, Some(1), "{}", m.stderr_text());
}
