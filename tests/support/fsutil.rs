//! Building and comparing folder trees in tests.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What a test cares about for one entry: kind, content or link target,
/// permission bits and mtime in nanoseconds.
#[derive(Debug, PartialEq, Eq)]
pub enum Snap {
    File {
        content_hash: String,
        len: u64,
        mode: u32,
        mtime_ns: i64,
    },
    Dir {
        mode: u32,
    },
    Symlink {
        target: Vec<u8>,
    },
}

/// Every entry below `root`, by relative path bytes. Directory mtimes are
/// left out (creating entries changes them); file mtimes are included.
pub fn describe(root: &Path) -> BTreeMap<Vec<u8>, Snap> {
    let mut out = BTreeMap::new();
    // An explicit stack: folders may nest thousands deep.
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        describe_dir(root, &dir, &mut out, &mut dirs);
    }
    out
}

fn describe_dir(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<Vec<u8>, Snap>,
    dirs: &mut Vec<std::path::PathBuf>,
) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let rel = p
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let m = fs::symlink_metadata(&p).unwrap();
        if m.file_type().is_symlink() {
            let t = fs::read_link(&p).unwrap();
            out.insert(
                rel,
                Snap::Symlink {
                    target: t.as_os_str().as_bytes().to_vec(),
                },
            );
        } else if m.is_dir() {
            out.insert(
                rel,
                Snap::Dir {
                    mode: m.permissions().mode() & 0o7777,
                },
            );
            dirs.push(p);
        } else if m.is_file() {
            let data = fs::read(&p).unwrap();
            out.insert(
                rel,
                Snap::File {
                    content_hash: blake3::hash(&data).to_hex().to_string(),
                    len: data.len() as u64,
                    mode: m.permissions().mode() & 0o7777,
                    mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                },
            );
        }
    }
}

/// Assert two folders hold the same entries, bytes, modes and file mtimes;
/// the message names the first difference.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let da = describe(a);
    let db = describe(b);
    for (k, va) in &da {
        match db.get(k) {
            None => panic!("{} missing in {}", String::from_utf8_lossy(k), b.display()),
            Some(vb) => assert_eq!(
                va,
                vb,
                "{} differs between {} and {}",
                String::from_utf8_lossy(k),
                a.display(),
                b.display()
            ),
        }
    }
    for k in db.keys() {
        assert!(
            da.contains_key(k),
            "{} only in {}",
            String::from_utf8_lossy(k),
            b.display()
        );
    }
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Set a file's mtime (nanoseconds since the epoch) without following links.
pub fn set_mtime(path: &Path, ns: i64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns as u64);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// A small tmpfs mounted at `dir` (created), unmounted when dropped: a
/// disk that fills up. `None` (after saying "skipped") where mounting is
/// not allowed (not root).
pub fn small_tmpfs(dir: &Path, size_kib: u64) -> Option<Tmpfs> {
    if crate::matrix::local_only("object storage does not fill up like a disk") {
        return None;
    }
    fs::create_dir_all(dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return None;
    }
    Some(Tmpfs(dir.to_path_buf()))
}

/// See [`small_tmpfs`].
pub struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
