//! How an operation tells its caller what is happening, without printing:
//! one [`Progress`] per call. The CLI implements it with indicatif bars
//! and lines on stderr; a GUI would update its widgets; [`Silent`] drops
//! everything (what a script or a test wants).

use belay_store::backup::BackupProgress;
use belay_store::restore::RestoreProgress;
use belay_transport::serial::session::HashProgressFn;

/// What an operation reports while it runs. Every method has a default
/// that does nothing, so an implementation picks what it shows.
pub trait Progress: Sync {
    /// A remark for a person watching ("connecting to the board on …").
    fn note(&self, _msg: &str) {}
    /// A step's outcome worth telling as it happens (a safety snapshot
    /// was saved, and how to undo the restore with it).
    fn info(&self, _msg: &str) {}
    /// Something went less well than it should, and the operation goes on.
    fn warn(&self, _msg: &str) {}
    /// Details for the curious (`-v`): what the board said about itself,
    /// what a comparison cost.
    fn detail(&self, _msg: &str) {}
    /// A phase that moves files and bytes begins ("backup", "restore",
    /// "safety snapshot", "recording"); `logged` asks for the progress to
    /// be written as lines where no bar can be drawn. The phase ends when
    /// the returned [`Bar`] is dropped or finished.
    fn bar(&self, _verb: &'static str, _logged: bool) -> Box<dyn Bar + '_> {
        Box::new(NoBar)
    }
    /// A long wait with nothing to count (a folder or board being walked
    /// and hashed for a comparison); ends when the returned value drops.
    fn spinner(&self, _what: &str) -> Box<dyn Bar + '_> {
        Box::new(NoBar)
    }
    /// A phase that walks objects ("gc", "check", "migrate"): phases and
    /// an object count. Ends when the returned [`Counter`] is dropped.
    fn counter(&self, _verb: &'static str) -> Box<dyn Counter + '_> {
        Box::new(NoBar)
    }
    /// Whether to go ahead with a change the caller may want to see first
    /// (a restore that overwrites a board). `true` by default.
    fn confirm(&self, _what: &str) -> bool {
        true
    }
}

/// One phase's counters: the store's backup and restore progress, and the
/// board's own hashing.
pub trait Bar: BackupProgress + RestoreProgress {
    /// What the board calls while it hashes its files (same bar).
    fn hash_reporter(&self) -> Option<HashProgressFn> {
        None
    }
    /// The phase is over (the bar goes away).
    fn finish(&self) {}
}

/// A phase that counts objects (the store's gc, check and migrate
/// progress).
pub trait Counter: belay_store::gc::Progress {
    /// The phase is over.
    fn finish(&self) {}
}

/// A bar that shows nothing.
pub struct NoBar;
impl BackupProgress for NoBar {}
impl RestoreProgress for NoBar {}
impl Bar for NoBar {}
impl belay_store::gc::Progress for NoBar {}
impl Counter for NoBar {}

/// Reports nothing and confirms everything.
pub struct Silent;
impl Progress for Silent {}
