//! The library's one error type. Each variant keeps its cause as a typed
//! source (a `belay_store::Error`, a board's error, an I/O error), so a
//! caller can still ask the store whether a failure is an integrity
//! problem, and a CLI that prints the chain prints what it printed before.

/// What an operation of belay-core can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Store(#[from] belay_store::Error),
    #[error("{0}")]
    Board(#[from] belay_transport::serial::BoardError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A request the library refuses as given (a bad option, a side that
    /// does not exist, a plan that cannot work); the text says why.
    #[error("{0}")]
    Invalid(String),
    /// The operation was declined where it asked for confirmation.
    #[error("{0}")]
    Cancelled(String),
    /// An error from a function the caller gave (opening the repository).
    #[error("{0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// `message`, because of `source` (what `anyhow::Context` did).
    #[error("{message}")]
    Context {
        message: String,
        #[source]
        source: Box<Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }

    /// This error, explained by `message` first.
    pub fn context(self, message: impl Into<String>) -> Error {
        Error::Context {
            message: message.into(),
            source: Box::new(self),
        }
    }

    /// Whether the repository was found damaged (some object missing or
    /// corrupt), anywhere in the chain.
    pub fn is_integrity(&self) -> bool {
        match self {
            Error::Store(e) => e.is_integrity(),
            Error::Context { source, .. } => source.is_integrity(),
            _ => false,
        }
    }
}

/// `result.context("…")` / `.with_context(|| …)` for the library's results.
pub(crate) trait ResultExt<T> {
    fn with_context(self, f: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn with_context(self, f: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| e.into().context(f()))
    }
}

/// `bail!` for the library: return `Error::Invalid` with a formatted text.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::Error::Invalid(format!($($arg)*)))
    };
}
pub(crate) use bail;
