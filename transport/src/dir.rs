//! A folder on the host as a source (walk with ripgrep's `ignore` walker,
//! honouring `.belayignore` and `--exclude`) and as a restore target
//! (writes that never leave the target directory).

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use belay_source::{ChangeStamp, EntryMeta, Sink, Source, SourceEntry, SourceKind};

/// Name of the per-folder ignore file (gitignore syntax).
pub const IGNORE_FILE: &str = ".belayignore";

pub struct DirSource {
    root: PathBuf,
    excludes: Vec<String>,
    /// Absolute paths never to descend into (the repository itself).
    skip: Vec<PathBuf>,
    skip_unreadable: bool,
}

impl DirSource {
    /// `excludes` are gitignore-style globs (`*.pyc`, `/build`, `logs/`).
    pub fn new(root: &Path, excludes: Vec<String>, skip_unreadable: bool) -> io::Result<DirSource> {
        let meta = fs::metadata(root)?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(DirSource {
            root: fs::canonicalize(root)?,
            excludes,
            skip: Vec::new(),
            skip_unreadable,
        })
    }

    /// Never back up anything below `path` (used for a repository that lives
    /// inside the folder being backed up).
    pub fn skip_path(&mut self, path: &Path) {
        if let Ok(p) = fs::canonicalize(path) {
            self.skip.push(p);
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

pub fn mtime_ns(meta: &fs::Metadata) -> Option<i64> {
    meta.mtime()
        .checked_mul(1_000_000_000)?
        .checked_add(meta.mtime_nsec())
}

fn rel_bytes(root: &Path, p: &Path) -> Vec<u8> {
    p.strip_prefix(root)
        .unwrap_or(p)
        .as_os_str()
        .as_bytes()
        .to_vec()
}

impl Source for DirSource {
    fn location(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    fn default_name(&self) -> String {
        self.root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "root".into())
    }

    fn walk(&self, warn: &mut dyn FnMut(String)) -> io::Result<Vec<SourceEntry>> {
        let mut overrides = ignore::overrides::OverrideBuilder::new(&self.root);
        for g in &self.excludes {
            overrides.add(&format!("!{g}")).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("--exclude {g:?}: {e}"))
            })?;
        }
        let overrides = overrides
            .build()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let skip = self.skip.clone();
        let walker = ignore::WalkBuilder::new(&self.root)
            .standard_filters(false)
            .add_custom_ignore_filename(IGNORE_FILE)
            .overrides(overrides)
            .follow_links(false)
            .filter_entry(move |e| !skip.iter().any(|s| e.path() == s))
            .build();
        let mut out = Vec::new();
        for item in walker {
            let entry = match item {
                Ok(e) => e,
                Err(err) => {
                    let msg = err.to_string();
                    if self.skip_unreadable {
                        warn(format!("skipping unreadable entry: {msg}"));
                        continue;
                    }
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!("{msg} (use --skip-unreadable to leave it out)"),
                    ));
                }
            };
            if entry.depth() == 0 {
                continue;
            }
            let path = entry.path();
            let meta = match fs::symlink_metadata(path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // vanished
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            };
            let ft = meta.file_type();
            let kind = if ft.is_file() {
                SourceKind::File
            } else if ft.is_dir() {
                SourceKind::Dir
            } else if ft.is_symlink() {
                let target = fs::read_link(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                SourceKind::Symlink {
                    target: target.as_os_str().as_bytes().to_vec(),
                }
            } else {
                warn(format!(
                    "skipping special file {} (not a file, directory or symlink)",
                    path.display()
                ));
                continue;
            };
            out.push(SourceEntry {
                path: rel_bytes(&self.root, path),
                size: if kind == SourceKind::File {
                    meta.len()
                } else {
                    0
                },
                kind,
                mode: meta.permissions().mode() & 0o7777,
                mtime_ns: mtime_ns(&meta),
                stamp: Some(ChangeStamp {
                    dev: meta.dev(),
                    ino: meta.ino(),
                    ctime_ns: meta
                        .ctime()
                        .saturating_mul(1_000_000_000)
                        .saturating_add(meta.ctime_nsec()),
                }),
            });
        }
        Ok(out)
    }

    fn open(&self, path: &[u8]) -> io::Result<Box<dyn Read + Send + '_>> {
        let full = self.root.join(OsStr::from_bytes(path));
        let f = File::open(&full)?;
        Ok(Box::new(f))
    }
}

/// A folder as a restore target. Every write stays inside `root`: paths are
/// checked by the store, directories that turn out to be symlinks are
/// refused, and files are written to a temporary name and renamed, so an
/// existing symlink at the final name is replaced, never followed.
pub struct DirSink {
    root: PathBuf,
}

impl DirSink {
    pub fn new(root: &Path) -> io::Result<DirSink> {
        fs::create_dir_all(root)?;
        Ok(DirSink {
            root: root.to_path_buf(),
        })
    }

    fn full(&self, rel: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(rel))
    }

    /// The directory `rel`'s parent must be a real directory (not a symlink)
    /// below root.
    fn checked_parent(&self, rel: &[u8]) -> io::Result<PathBuf> {
        let full = self.full(rel);
        let parent = full.parent().unwrap_or(&self.root).to_path_buf();
        if parent != self.root {
            let m = fs::symlink_metadata(&parent)?;
            if !m.is_dir() {
                return Err(io::Error::other(format!(
                    "refusing to write through {} (not a real directory)",
                    parent.display()
                )));
            }
        }
        Ok(full)
    }
}

fn set_mtime_nofollow(path: &Path, mtime_ns: i64) -> io::Result<()> {
    use std::ffi::CString;
    let c = CString::new(path.as_os_str().as_bytes())?;
    let ts = libc::timespec {
        tv_sec: mtime_ns.div_euclid(1_000_000_000) as libc::time_t,
        tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
    };
    let times = [ts, ts];
    // SAFETY: c is a valid NUL-terminated path and times points at two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn system_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

impl Sink for DirSink {
    fn location(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    fn mkdir(&self, rel: &[u8]) -> io::Result<()> {
        let full = self.checked_parent(rel)?;
        match fs::symlink_metadata(&full) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a directory", full.display()),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&full),
            Err(e) => Err(e),
        }
    }

    fn write_file(
        &self,
        rel: &[u8],
        _size: u64,
        content: &mut dyn Read,
        meta: &EntryMeta,
    ) -> io::Result<()> {
        let full = self.checked_parent(rel)?;
        let dir = full.parent().unwrap_or(&self.root);
        if fs::symlink_metadata(&full).is_ok_and(|m| m.is_dir()) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is a directory", full.display()),
            ));
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".belay-restore-")
            .tempfile_in(dir)?;
        // A chunk (at most 64 KiB) per write, not io::copy's 8 KiB pieces:
        // half the write calls of a restore.
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match content.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            tmp.write_all(&buf[..n])?;
        }
        tmp.flush()?;
        let f = tmp.as_file();
        if meta.mode != 0 {
            f.set_permissions(fs::Permissions::from_mode(meta.mode))?;
        }
        if let Some(ns) = meta.mtime_ns {
            f.set_modified(system_time(ns))?;
        }
        tmp.persist(&full).map_err(|e| e.error)?;
        Ok(())
    }

    fn symlink(&self, rel: &[u8], target: &[u8], meta: &EntryMeta) -> io::Result<()> {
        let full = self.checked_parent(rel)?;
        let dir = full.parent().unwrap_or(&self.root);
        if fs::symlink_metadata(&full).is_ok_and(|m| m.is_dir()) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is a directory", full.display()),
            ));
        }
        // Create under a temporary name, then rename over whatever is there.
        let tmp = dir.join(format!(
            ".belay-link-{}-{}",
            std::process::id(),
            blake3::hash(rel).to_hex().as_str().get(..16).unwrap_or("x")
        ));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &tmp)?;
        if let Some(ns) = meta.mtime_ns {
            // Not every filesystem keeps symlink times; that is not an error.
            let _ = set_mtime_nofollow(&tmp, ns);
        }
        fs::rename(&tmp, &full)
    }

    fn finish_dir(&self, rel: &[u8], meta: &EntryMeta) -> io::Result<()> {
        let full = self.full(rel);
        if meta.mode != 0 {
            fs::set_permissions(&full, fs::Permissions::from_mode(meta.mode))?;
        }
        if let Some(ns) = meta.mtime_ns {
            File::open(&full)?.set_modified(system_time(ns))?;
        }
        Ok(())
    }
}
