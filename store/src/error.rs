//! Errors of the store. Every variant names what it is about (an object's
//! path, a snapshot, a ref) so the CLI can print one clear line.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0} is not a belay repository (no config file); create one with `belay init`")]
    NotARepository(PathBuf),
    #[error("{0} already holds a belay repository")]
    AlreadyARepository(PathBuf),
    #[error("{0} exists and is not empty; choose an empty or new directory for the repository")]
    InitTargetNotEmpty(PathBuf),
    #[error(
        "{path}: repository format version {found} is not supported by this belay (it reads versions 1 to {supported}); upgrade belay"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error("{path}: invalid repository config: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    #[error("object {id} is missing (expected at {path})")]
    MissingObject { id: String, path: PathBuf },
    #[error("object {id} is corrupt ({path}): {reason}")]
    CorruptObject {
        id: String,
        path: PathBuf,
        reason: String,
    },
    #[error("object {id} is a {found}, expected a {expected}")]
    WrongKind {
        id: String,
        found: &'static str,
        expected: &'static str,
    },
    #[error(
        "{path}: directories nest more than {max} levels deep, the most a belay snapshot may hold (docs/format.md §5)",
        max = crate::tree::MAX_DEPTH
    )]
    TooDeep { path: String },
    #[error("{0}")]
    Rev(String),
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("{path}: bad ref: {reason}")]
    BadRef { path: PathBuf, reason: String },
    #[error("{0}")]
    Unsafe(String),
    #[error("reading {path} from the source: {source}")]
    Source {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("writing {path} to the target: {source}")]
    Sink {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Verify(String),
    /// An archive to import or export: what is wrong with it.
    #[error("{0}")]
    Archive(String),
    #[error("interrupted")]
    Interrupted,
    #[error("local cache {path}: {reason}")]
    Cache { path: PathBuf, reason: String },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True for problems with the repository's content (corrupt or missing
    /// objects), as opposed to usage or environment errors.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            Error::MissingObject { .. }
                | Error::CorruptObject { .. }
                | Error::WrongKind { .. }
                | Error::TooDeep { .. }
                | Error::BadRef { .. }
                | Error::Verify(_)
        )
    }
}

/// `text` cut to at most `max` bytes (at a character boundary) plus `…`:
/// for reasons that quote what a hostile file holds (a 64 KiB string in a
/// config made a 64 KiB error line).
pub fn shorten(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Attach a path to an `io::Result`.
pub trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
