//! Race-safe file publication. Every file in a repository appears under its
//! final name complete or not at all: it is written to a unique temporary
//! name in the same directory and then renamed. Objects are published
//! without overwriting, so a second writer of the same id finding it present
//! is success, not an error.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Prefix of temporary files; readers and gc ignore names starting with it.
pub const TEMP_PREFIX: &str = ".tmp-";

pub enum Published {
    Created,
    AlreadyExisted,
}

fn temp_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    match tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
    {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir)?;
            tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .tempfile_in(dir)
        }
        r => r,
    }
}

/// Publish `bytes` at `path` unless a file is already there. With `sync`
/// the data is fsynced before it becomes visible; otherwise the caller
/// makes it durable later (see [`sync_filesystem`]).
pub fn publish_new(path: &Path, bytes: &[u8], sync: bool) -> io::Result<Published> {
    let dir = path.parent().expect("object path has a parent");
    let mut tmp = temp_in(dir)?;
    tmp.write_all(bytes)?;
    if sync {
        tmp.as_file().sync_all()?;
    } else {
        start_writeback(tmp.as_file());
    }
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(Published::Created),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(Published::AlreadyExisted),
        Err(e) => Err(e.error),
    }
}

/// Ask the kernel to start writing `f`'s data now, without waiting
/// (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`), so that the one
/// `syncfs` before a snapshot finds little left to write. A hint only.
fn start_writeback(f: &File) {
    #[cfg(target_os = "linux")]
    {
        if std::env::var_os("BELAY_NO_EARLY_WRITEBACK").is_some() {
            return;
        }
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the duration of the call.
        unsafe {
            libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

/// Publish `bytes` at `path`, replacing what is there (refs, config,
/// a torn object), durably: file and directory are fsynced.
pub fn publish_replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("path has a parent");
    let mut tmp = temp_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    fsync_dir(dir)
}

/// Make a directory entry change (create, rename, delete) durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir) {
        Ok(f) => match f.sync_all() {
            // Some filesystems (and network shares) refuse fsync on a directory.
            Err(e)
                if e.kind() == io::ErrorKind::InvalidInput
                    || e.raw_os_error() == Some(libc::EINVAL) =>
            {
                Ok(())
            }
            r => r,
        },
        Err(e) => Err(e),
    }
}

/// Flush every dirty page and directory entry of the filesystem holding
/// `path` (Linux `syncfs`): one call instead of an fsync per object.
/// Returns false where that is not available, so the caller fsyncs files.
pub fn sync_filesystem(path: &Path) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        let f = File::open(path)?;
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs only reads the descriptor, which stays open for the call.
        let rc = unsafe { libc::syncfs(f.as_raw_fd()) };
        if rc == 0 {
            return Ok(true);
        }
        Err(io::Error::last_os_error())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        Ok(false)
    }
}
