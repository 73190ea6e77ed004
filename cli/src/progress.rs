//! Progress bars on stderr (files, bytes, throughput, ETA): drawn only on a
//! terminal and without -q. Warnings go to stderr unless -q. With `-vv` and
//! stderr not a terminal (a log file, CI), progress is written as a line
//! at the start and at each further tenth of the bytes instead.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use belay_store::backup::BackupProgress;
use belay_store::restore::RestoreProgress;
use belay_transport::serial::HashProgress;
use belay_transport::serial::session::HashProgressFn;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
    quiet: bool,
    verb: &'static str,
    files_total: AtomicU64,
    files_done: AtomicU64,
    /// Line logging (`-vv` off a terminal): the last tenth reported + 1
    /// (0: nothing yet).
    log: Option<Arc<AtomicU64>>,
}

impl Progress {
    pub fn new(quiet: bool, verb: &'static str) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        if !quiet && std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} ETA {eta}",
            )
            .expect("valid progress template")
            .progress_chars("=> "),
        );
        bar.set_prefix(verb);
        Progress {
            bar,
            quiet,
            verb,
            files_total: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            log: None,
        }
    }

    /// Write progress as lines when no bar is drawn (`-vv`, not a terminal).
    pub fn logged(mut self, verbose: u8) -> Progress {
        if verbose >= 2 && !self.quiet && !std::io::stderr().is_terminal() {
            self.log = Some(Arc::new(AtomicU64::new(0)));
        }
        self
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Print a warning without tearing the bar.
    pub fn warning(&self, msg: &str) {
        if !self.quiet {
            self.bar.suspend(|| eprintln!("warning: {msg}"));
        }
    }

    fn begin(&self, files: u64, bytes: u64) {
        self.files_total.store(files, Ordering::Relaxed);
        self.files_done.store(0, Ordering::Relaxed);
        // After a hashing phase the same bar starts again for the transfer.
        self.bar.reset();
        self.bar.set_prefix(self.verb);
        self.bar.set_length(bytes);
        self.bar.set_message(format!("0/{files} files"));
        if let Some(l) = &self.log {
            l.store(0, Ordering::Relaxed);
        }
        self.log_line();
    }

    fn one_file_done(&self) {
        let done = self.files_done.fetch_add(1, Ordering::Relaxed) + 1;
        let total = self.files_total.load(Ordering::Relaxed);
        self.bar.set_message(format!("{done}/{total} files"));
    }

    fn add_bytes(&self, n: u64) {
        self.bar.inc(n);
        self.log_line();
    }

    /// A line for the log, once per tenth of the bytes.
    fn log_line(&self) {
        if let Some(l) = &self.log {
            log_step(
                l,
                self.verb,
                self.bar.position(),
                self.bar.length().unwrap_or(0),
                &self.bar.message(),
            );
        }
    }

    /// Shows the board hashing its files, on the same bar (until the
    /// transfer starts).
    pub fn hash_reporter(&self) -> HashProgressFn {
        let bar = self.bar.clone();
        let log = self.log.as_ref().map(|_| Arc::new(AtomicU64::new(0)));
        Box::new(move |p: &HashProgress| {
            if p.files_done == 0 && p.bytes_done == 0 {
                bar.reset();
                bar.set_prefix("hashing on the board");
                bar.set_length(p.bytes);
            }
            bar.set_position(p.bytes_done);
            let msg = format!("{}/{} files", p.files_done, p.files);
            bar.set_message(msg.clone());
            if let Some(l) = &log {
                log_step(l, "hashing on the board", p.bytes_done, p.bytes, &msg);
            }
        })
    }
}

fn log_step(last: &AtomicU64, what: &str, pos: u64, len: u64, msg: &str) {
    let tenth = (pos.min(len) * 10).checked_div(len).unwrap_or(10).min(10);
    if last.fetch_max(tenth + 1, Ordering::Relaxed) < tenth + 1 {
        eprintln!(
            "progress: {what}: {} of {} ({msg})",
            crate::output::size(pos),
            crate::output::size(len)
        );
    }
}

impl BackupProgress for Progress {
    fn start(&self, files: u64, bytes: u64) {
        self.begin(files, bytes)
    }
    fn bytes(&self, n: u64) {
        self.add_bytes(n)
    }
    fn file_done(&self) {
        self.one_file_done()
    }
    fn warn(&self, msg: &str) {
        self.warning(msg)
    }
}

impl RestoreProgress for Progress {
    fn start(&self, files: u64, bytes: u64) {
        self.begin(files, bytes)
    }
    fn bytes(&self, n: u64) {
        self.add_bytes(n)
    }
    fn file_done(&self) {
        self.one_file_done()
    }
}

impl belay_core::Bar for Progress {
    fn hash_reporter(&self) -> Option<HashProgressFn> {
        Some(Progress::hash_reporter(self))
    }
    fn finish(&self) {
        Progress::finish(self)
    }
}

/// A spinner on stderr while a live source is walked and hashed (only on a
/// terminal, never with -q or --json).
pub struct Spinner(ProgressBar);

impl Spinner {
    pub fn new(quiet: bool, msg: String) -> Spinner {
        let bar = ProgressBar::hidden();
        if !quiet && std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"),
            );
            bar.set_message(msg);
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
        }
        Spinner(bar)
    }
}

impl BackupProgress for Spinner {}
impl RestoreProgress for Spinner {}
impl belay_core::Bar for Spinner {
    fn finish(&self) {
        self.0.finish_and_clear()
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.finish_and_clear()
    }
}

/// A spinner on stderr with a phase and an object count (only on a terminal,
/// without -q or --json).
pub(crate) struct ObjectCounter {
    bar: ProgressBar,
    quiet: bool,
}

impl ObjectCounter {
    pub(crate) fn new(ctx: &crate::commands::Ctx, verb: &'static str) -> ObjectCounter {
        let quiet = ctx.quiet || ctx.json;
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        if !quiet && std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
        }
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {msg}: {pos} objects ({per_sec})")
                .expect("valid template"),
        );
        bar.set_prefix(verb);
        ObjectCounter { bar, quiet }
    }
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl belay_store::gc::Progress for ObjectCounter {
    fn phase(&self, name: &str) {
        self.bar.set_message(name.to_string());
    }
    fn objects(&self, n: u64) {
        self.bar.inc(n);
    }
    fn warn(&self, msg: &str) {
        if !self.quiet {
            self.bar.suspend(|| eprintln!("warning: {msg}"));
        }
    }
}

impl belay_core::Counter for ObjectCounter {
    fn finish(&self) {
        ObjectCounter::finish(self)
    }
}

/// The library's progress, shown as the CLI shows it: notes only at a
/// terminal, outcome lines on stdout (not with -q or --json), warnings on
/// stderr (not with -q), details with -v, bars from [`Progress`].
impl belay_core::Progress for crate::commands::Ctx {
    fn note(&self, msg: &str) {
        crate::commands::Ctx::note(self, msg)
    }
    fn info(&self, msg: &str) {
        crate::commands::Ctx::info(self, msg)
    }
    fn warn(&self, msg: &str) {
        crate::commands::Ctx::warn(self, msg)
    }
    fn detail(&self, msg: &str) {
        if self.verbose > 0 {
            eprintln!("{msg}");
        }
    }
    fn bar(&self, verb: &'static str, logged: bool) -> Box<dyn belay_core::Bar + '_> {
        let p = Progress::new(self.quiet || self.json, verb);
        Box::new(if logged { p.logged(self.verbose) } else { p })
    }
    fn spinner(&self, what: &str) -> Box<dyn belay_core::Bar + '_> {
        Box::new(Spinner::new(
            self.quiet || self.json,
            format!("comparing with {what}…"),
        ))
    }
    fn counter(&self, verb: &'static str) -> Box<dyn belay_core::Counter + '_> {
        Box::new(ObjectCounter::new(self, verb))
    }
    fn confirm(&self, what: &str) -> bool {
        use std::io::Write;
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() || self.json {
            return true;
        }
        eprintln!("{what}");
        eprint!("continue? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).is_err() {
            return false;
        }
        matches!(line.trim(), "y" | "Y" | "yes" | "Yes" | "YES")
    }
}
