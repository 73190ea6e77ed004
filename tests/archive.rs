//! `belay export` / `belay import` through the binary: byte-exact round
//! trips in every format, interop with archives made by tar and Python's
//! zipfile, and refusal of damaged or hostile archives.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use belay_suite::cli::{belay, belay_json};
use belay_suite::fsutil::{assert_same_tree, noise, set_mtime};

fn init(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    belay(&repo).arg("init").assert().success();
    repo
}

/// A tree with what archives must carry: nested folders, an empty file, an
/// executable, a multi-chunk binary, nanosecond mtimes and a symlink.
fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("lib/sensors")).unwrap();
    fs::create_dir_all(root.join("data/empty-dir")).unwrap();
    fs::write(root.join("main.py"), "import sensors\nprint('hi')\n").unwrap();
    fs::write(
        root.join("lib/sensors/bme280.py"),
        "class BME280:\n    pass\n",
    )
    .unwrap();
    fs::write(root.join("data/empty.txt"), "").unwrap();
    fs::write(root.join("data/blob.bin"), noise(300_000, 7)).unwrap();
    fs::write(root.join("run.sh"), "#!/bin/sh\necho run\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root.join("main.py"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("lib/sensors/bme280.py", root.join("sensor.py")).unwrap();
    for (i, f) in [
        "main.py",
        "lib/sensors/bme280.py",
        "data/empty.txt",
        "data/blob.bin",
        "run.sh",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(
            &root.join(f),
            1_700_000_000_123_456_789 + i as i64 * 1_000_000_007,
        );
    }
}

fn tree_of(repo: &Path, rev: &str) -> String {
    belay_json(repo, &["show", rev])["tree"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn export_then_import_is_byte_exact_in_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path());
    let src = tmp.path().join("board");
    sample_tree(&src);
    belay_json(
        &repo,
        &[
            "backup",
            src.to_str().unwrap(),
            "--name",
            "pico",
            "-m",
            "as shipped",
            "--meta",
            "site=lab",
        ],
    );
    let original_tree = tree_of(&repo, "pico");
    for (i, name) in ["state.zip", "state.tar", "state.tar.zst"]
        .iter()
        .enumerate()
    {
        let archive = tmp.path().join(name);
        let out = belay_json(&repo, &["export", "pico", "-o", archive.to_str().unwrap()]);
        assert_eq!(out["files"], 5, "{name}: {out}");
        assert_eq!(out["symlinks"], 1);
        let copy = format!("copy-{i}");
        let imp = belay_json(
            &repo,
            &["import", archive.to_str().unwrap(), "--name", &copy],
        );
        assert_eq!(imp["manifest"], true, "{name}: {imp}");
        // The same tree id: every name, byte, mode and nanosecond came back.
        assert_eq!(tree_of(&repo, &copy), original_tree, "{name}");
        let restored = tmp.path().join(format!("restored-{i}"));
        belay(&repo)
            .args(["restore", &copy, "--to"])
            .arg(&restored)
            .assert()
            .success();
        assert_same_tree(&src, &restored);
        let show = belay_json(&repo, &["show", &copy]);
        assert_eq!(show["message"], "as shipped");
        assert_eq!(show["meta"]["site"], "lab");
        assert_eq!(show["meta"]["import.source"], "pico");
    }
}

#[test]
fn export_of_a_path_and_to_stdout_reads_with_tar() {
    if Command::new("tar").arg("--version").output().is_err() {
        eprintln!("skipped: no tar");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path());
    let src = tmp.path().join("board");
    sample_tree(&src);
    belay_json(&repo, &["backup", src.to_str().unwrap(), "--name", "pico"]);
    let out = belay(&repo)
        .args(["export", "pico:lib", "-o", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tarball = tmp.path().join("lib.tar");
    fs::write(&tarball, &out.stdout).unwrap();
    let x = tmp.path().join("x");
    fs::create_dir(&x).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        fs::read(x.join("sensors/bme280.py")).unwrap(),
        fs::read(src.join("lib/sensors/bme280.py")).unwrap()
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(x.join("belay-manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "belay-export/1");
    assert_eq!(manifest["path"], "lib");
    assert_eq!(manifest["source"], "pico");
    let entry = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "sensors/bme280.py")
        .unwrap();
    assert_eq!(entry["size"], 23);
    assert_eq!(
        entry["sha256"].as_str().unwrap(),
        sha256_hex(&fs::read(src.join("lib/sensors/bme280.py")).unwrap())
    );
    // An existing file is not replaced without --force.
    fs::write(tmp.path().join("taken.zip"), "mine").unwrap();
    belay(&repo)
        .args(["export", "pico", "-o"])
        .arg(tmp.path().join("taken.zip"))
        .assert()
        .failure()
        .stderr(predicates::str::contains("--force"));
    assert_eq!(fs::read(tmp.path().join("taken.zip")).unwrap(), b"mine");
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

#[test]
fn plain_archives_from_tar_and_python_import() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path());
    let src = tmp.path().join("proj");
    sample_tree(&src);
    let python = if Command::new("python3").arg("-V").output().is_ok() {
        Some("python3")
    } else {
        None
    };
    let mut made = Vec::new();
    if Command::new("tar").arg("--version").output().is_ok() {
        let t = tmp.path().join("gnu.tar.gz");
        let st = Command::new("tar")
            .arg("-czf")
            .arg(&t)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        made.push((t, true));
    }
    if let Some(py) = python {
        let z = tmp.path().join("py.zip");
        // `python3 -m zipfile -c` stores names relative to the folder given.
        let st = Command::new(py)
            .current_dir(&src)
            .args(["-m", "zipfile", "-c"])
            .arg(&z)
            .args(["main.py", "lib", "data", "run.sh"])
            .status()
            .unwrap();
        assert!(st.success());
        made.push((z, false));
    }
    for (i, (archive, has_symlink)) in made.iter().enumerate() {
        let name = format!("plain-{i}");
        let imp = belay_json(
            &repo,
            &["import", archive.to_str().unwrap(), "--name", &name],
        );
        assert_eq!(imp["manifest"], false);
        let restored = tmp.path().join(format!("r-{i}"));
        belay(&repo)
            .args(["restore", &name, "--to"])
            .arg(&restored)
            .assert()
            .success();
        for f in [
            "main.py",
            "lib/sensors/bme280.py",
            "data/empty.txt",
            "data/blob.bin",
            "run.sh",
        ] {
            assert_eq!(
                fs::read(restored.join(f)).unwrap(),
                fs::read(src.join(f)).unwrap(),
                "{f} from {}",
                archive.display()
            );
        }
        if *has_symlink {
            // GNU tar keeps modes, symlinks and mtimes to the second.
            assert_eq!(
                fs::read_link(restored.join("sensor.py")).unwrap(),
                Path::new("lib/sensors/bme280.py")
            );
            let m = fs::metadata(restored.join("run.sh")).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o755);
            use std::os::unix::fs::MetadataExt;
            assert_eq!(m.mtime(), fs::metadata(src.join("run.sh")).unwrap().mtime());
        }
    }
}

/// A tar written by hand (Python's tarfile) with one chosen member.
fn python_tar(path: &Path, names: &[&str]) -> bool {
    let script = format!(
        "import io,tarfile,sys\nt=tarfile.open(sys.argv[1],'w')\nfor n in {names:?}:\n    i=tarfile.TarInfo(n); d=b'x'; i.size=len(d); t.addfile(i, io.BytesIO(d))\nt.close()\n"
    );
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn hostile_and_damaged_archives_are_refused_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path());
    let cases: [(&[&str], &str); 3] = [
        (&["ok.py", "../escape.py"], "'..'"),
        (&["/etc/cron.d/evil"], "absolute"),
        (&["a.py", "./a.py"], "twice"),
    ];
    for (i, (names, why)) in cases.iter().enumerate() {
        let t = tmp.path().join(format!("bad-{i}.tar"));
        if !python_tar(&t, names) {
            eprintln!("skipped: no python3");
            return;
        }
        let out = belay(&repo)
            .args(["import"])
            .arg(&t)
            .args(["--name", "bad"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{names:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{names:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    // Nothing was imported.
    let log = belay_json(&repo, &["log"]);
    assert_eq!(log.as_array().unwrap().len(), 0);

    // A belay export whose file content changed after export.
    let src = tmp.path().join("board");
    sample_tree(&src);
    belay_json(&repo, &["backup", src.to_str().unwrap(), "--name", "pico"]);
    let t = tmp.path().join("state.tar");
    belay_json(&repo, &["export", "pico", "-o", t.to_str().unwrap()]);
    let mut bytes = fs::read(&t).unwrap();
    let at = bytes
        .windows(14)
        .position(|w| w == b"class BME280:\n")
        .unwrap();
    bytes[at] = b'C';
    fs::write(&t, &bytes).unwrap();
    let out = belay(&repo)
        .args(["import"])
        .arg(&t)
        .args(["--name", "tampered"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bme280.py") && err.contains("belay-manifest.json"),
        "{err}"
    );
    belay(&repo).args(["show", "tampered"]).assert().failure();
    // Not an archive at all.
    fs::write(tmp.path().join("notes.txt"), "hello").unwrap();
    belay(&repo)
        .args(["import"])
        .arg(tmp.path().join("notes.txt"))
        .assert()
        .failure()
        .stderr(predicates::str::contains("not a zip or tar archive"));
}
