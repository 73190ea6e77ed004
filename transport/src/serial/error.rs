//! Errors of a board session. Each names the board (its port, and its unique
//! id once known) so the CLI can print one line that says which board failed
//! and what to do.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("{port}: no such serial port (see `belay devices` for the ports present)")]
    NoSuchPort { port: String },
    #[error("{port}: the port is busy (another program, e.g. an IDE or mpremote, has it open)")]
    Busy { port: String },
    #[error("{port}: cannot open the serial port: {reason}")]
    Open { port: String, reason: String },
    #[error(
        "{port}: no MicroPython raw REPL answered (is this a MicroPython board, at this baud rate, and not stuck with interrupts off?); it sent: {got}"
    )]
    NotMicroPython { port: String, got: String },
    #[error("{board}: the board was disconnected ({detail})")]
    Disconnected { board: String, detail: String },
    #[error(
        "{board}: the board reset during the session (it printed {what:?}); run the command again"
    )]
    Reset { board: String, what: String },
    #[error("{board}: the board stopped answering while {doing} (no data for {secs} s)")]
    Timeout {
        board: String,
        doing: String,
        secs: u64,
    },
    #[error(
        "{board}: garbled data from the board while {doing} (got {got}); check the cable and run the command again"
    )]
    Garbled {
        board: String,
        doing: String,
        got: String,
    },
    #[error("{board}: the belay agent could not run on the board: {detail}")]
    Agent { board: String, detail: String },
    #[error("{board}: {path}: {message}")]
    Remote {
        board: String,
        path: String,
        errno: i32,
        message: String,
    },
    #[error("{board}: {path}: {message}")]
    Verify {
        board: String,
        path: String,
        message: String,
    },
    #[error("{board}: {message}")]
    Other { board: String, message: String },
    #[error("{board}: interrupted; the board was left in its REPL")]
    Interrupted { board: String },
}

impl BoardError {
    /// As an `io::Error` (the store's Source/Sink traits speak io), keeping
    /// this error's message. ENOSPC and ENOENT map to their io kinds.
    pub fn into_io(self) -> io::Error {
        let kind = match &self {
            BoardError::Remote { errno: 2, .. } => io::ErrorKind::NotFound,
            BoardError::Remote { errno: 28, .. } => io::ErrorKind::StorageFull,
            BoardError::Timeout { .. } => io::ErrorKind::TimedOut,
            BoardError::Disconnected { .. } => io::ErrorKind::BrokenPipe,
            _ => io::ErrorKind::Other,
        };
        // The message only: the store adds the file's path, and a source
        // chain would print the same text twice.
        io::Error::new(kind, self.to_string())
    }
}

impl From<BoardError> for io::Error {
    fn from(e: BoardError) -> io::Error {
        e.into_io()
    }
}

/// A readable errno name for messages.
pub fn errno_text(errno: i32) -> &'static str {
    match errno {
        1 => "operation not permitted",
        2 => "no such file or directory",
        5 => "I/O error",
        12 => "out of memory",
        13 => "permission denied",
        17 => "already exists",
        19 => "no such device",
        20 => "not a directory",
        21 => "is a directory",
        22 => "invalid argument",
        28 => "no space left on the board's filesystem",
        30 => "read-only filesystem",
        36 => "name too long",
        39 => "directory not empty",
        _ => "error",
    }
}
