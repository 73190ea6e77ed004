//! The two traits through which files enter and leave a belay repository.
//! A folder and a MicroPython board implement them (`belay-transport`); the
//! repository (`belay-store`) only sees paths, metadata and byte streams.
//! This crate is all the two sides share: the transport knows nothing of
//! the repository, and the store nothing of devices.

use std::io::{self, Read};

/// A SHA-256 digest (what boards compute, and trees record per file).
pub type Sha256 = [u8; 32];

/// Lossless-enough display of a raw path: valid UTF-8 as is, other bytes
/// as `\xNN`.
pub fn display_path(path: &[u8]) -> String {
    let mut out = String::new();
    for chunk in path.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// What a source entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceKind {
    File,
    Dir,
    Symlink { target: Vec<u8> },
}

/// One entry found by walking a source. `path` is relative to the source's
/// root, `/`-separated, raw bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceEntry {
    pub path: Vec<u8>,
    pub kind: SourceKind,
    /// File size in bytes (0 for directories).
    pub size: u64,
    /// Unix permission bits, 0 when the source has none (boards).
    pub mode: u32,
    pub mtime_ns: Option<i64>,
    /// What identifies this file's current version on the source beyond
    /// size and mtime, where the source has it (folders: device, inode,
    /// ctime, as restic and git compare).
    pub stamp: Option<ChangeStamp>,
}

/// A file's identity and status-change time on a folder source: a rewrite
/// that keeps size and mtime (`cp -p`, `rsync -t`) still changes its ctime,
/// and another file at the same path has another inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChangeStamp {
    pub dev: u64,
    pub ino: u64,
    pub ctime_ns: i64,
}

/// Where a backup reads from.
pub trait Source: Sync {
    /// Where the files are, e.g. `dir:/home/ana/proj` (recorded in the snapshot).
    fn location(&self) -> String;

    /// The name the source suggests for itself when the user gives none
    /// (a folder's last component, a board's unique id). It may hold
    /// characters a source name cannot: the repository makes it one
    /// (`belay_store::repo::default_source_name`).
    fn default_name(&self) -> String;

    /// What the source says about itself (firmware, ids), recorded in the snapshot.
    fn device_info(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Every entry below the root, in any order. Things that cannot be
    /// backed up but need not stop the backup (special files) are reported
    /// through `warn` and left out.
    fn walk(&self, warn: &mut dyn FnMut(String)) -> io::Result<Vec<SourceEntry>>;

    /// Whether an unchanged (size, mtime) means unchanged content. Folders:
    /// yes (as restic and git assume); boards: no, their clocks reset.
    fn trusts_mtime(&self) -> bool {
        true
    }

    /// SHA-256 of the given files computed where they live, for sources on
    /// which reading is expensive (a board hashes in C and sends 32 bytes
    /// instead of the file). `None`: the source cannot; the files are read.
    fn hashes(&self, paths: &[&[u8]]) -> io::Result<Option<Vec<Sha256>>> {
        let _ = paths;
        Ok(None)
    }

    /// Whether files may be opened from several threads at once.
    fn parallel_reads(&self) -> bool {
        true
    }

    /// Open a file for reading. A source that can check what it sends (a
    /// board's own hash) returns an error from `read` instead of wrong bytes.
    fn open(&self, path: &[u8]) -> io::Result<Box<dyn Read + Send + '_>>;
}

/// Metadata to apply to a restored entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    pub mode: u32,
    pub mtime_ns: Option<i64>,
}

/// Where a restore writes to. Paths are relative to the target's root and
/// already checked to be safe (no `..`, no absolute paths).
pub trait Sink: Sync {
    fn location(&self) -> String;

    /// Create a directory (its parent exists). Existing directories are fine.
    fn mkdir(&self, path: &[u8]) -> io::Result<()>;

    /// Write a whole file. `content` yields exactly `size` verified bytes
    /// or fails; on failure nothing may be left under the final name.
    fn write_file(
        &self,
        path: &[u8],
        size: u64,
        content: &mut dyn Read,
        meta: &EntryMeta,
    ) -> io::Result<()>;

    fn symlink(&self, path: &[u8], target: &[u8], meta: &EntryMeta) -> io::Result<()>;

    /// Called for each directory after everything inside it was written, to
    /// apply its permissions and mtime.
    fn finish_dir(&self, path: &[u8], meta: &EntryMeta) -> io::Result<()>;

    fn parallel_writes(&self) -> bool {
        true
    }

    /// What the target already holds, with the SHA-256 of files where the
    /// target can tell cheaply (a board hashes them itself). A restore then
    /// skips files that are already identical and, when asked, removes what
    /// the snapshot does not have. `None` (the default): unknown, every
    /// file is written.
    fn existing(&self) -> io::Result<Option<Vec<ExistingEntry>>> {
        Ok(None)
    }

    /// Remove a file, or an empty directory when `dir` (used by a restore
    /// with deletion, deepest entries first).
    fn remove(&self, path: &[u8], dir: bool) -> io::Result<()> {
        let _ = (path, dir);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this target cannot remove entries",
        ))
    }
}

/// One entry already present at a restore target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingEntry {
    pub entry: SourceEntry,
    /// SHA-256 of a file's content, when known.
    pub sha256: Option<Sha256>,
}
