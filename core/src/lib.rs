//! belay-core: everything belay does, as calls another program can make.
//!
//! The `belay` binary parses its arguments, calls one function here and
//! prints the result; `belay watch`, a GUI or a daemon make the same calls.
//! Each operation takes typed options, reports progress through a
//! [`Progress`] (it never prints), and returns a typed result that
//! serializes (serde) to what `belay … --json` prints.
//!
//! The layers, one way: this crate → `belay-store` (the repository) and
//! `belay-transport` (folders and boards), both → `belay-source` (the
//! Source/Sink interface between them). Only the CLI knows the terminal.

pub mod archive;
pub mod backup;
pub mod board;
pub mod browse;
pub mod diff;
mod error;
pub mod find;
pub mod forget;
pub mod history;
pub mod json;
pub mod maintenance;
pub mod progress;
pub mod restore;
pub mod sources;
pub mod stats;
pub mod tags;
pub mod watch;
pub mod who;

pub use backup::{BackupOptions, BackupResult, backup};
pub use diff::{DiffOptions, DiffResult, diff};
pub use error::{Error, Result};
pub use progress::{Bar, Counter, NoBar, Progress, Silent};
pub use restore::{RestoreOptions, RestoreResult, restore};
pub use who::Who;

/// A size as people read it ("1.2 MiB"), for messages.
pub fn size(n: u64) -> String {
    bytesize::ByteSize::b(n).to_string()
}

/// An error and its causes on one line, without repeating a cause whose
/// text an outer message already includes (what `belay` prints).
pub fn error_line(e: &dyn std::error::Error) -> String {
    let mut msg = String::new();
    let mut cur = Some(e);
    while let Some(e) = cur {
        let s = e.to_string();
        if !msg.contains(&s) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&s);
        }
        cur = e.source();
    }
    msg
}
