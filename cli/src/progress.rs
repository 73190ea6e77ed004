//! Progress bars on stderr (files, bytes, throughput, ETA): drawn only on a
//! terminal and without -q. Warnings go to stderr unless -q.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use belay_store::backup::BackupProgress;
use belay_store::restore::RestoreProgress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
    quiet: bool,
    files_total: AtomicU64,
    files_done: AtomicU64,
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
            files_total: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
        }
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
        self.bar.set_length(bytes);
        self.bar.set_message(format!("0/{files} files"));
    }

    fn one_file_done(&self) {
        let done = self.files_done.fetch_add(1, Ordering::Relaxed) + 1;
        let total = self.files_total.load(Ordering::Relaxed);
        self.bar.set_message(format!("{done}/{total} files"));
    }
}

impl BackupProgress for Progress {
    fn start(&self, files: u64, bytes: u64) {
        self.begin(files, bytes)
    }
    fn bytes(&self, n: u64) {
        self.bar.inc(n)
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
        self.bar.inc(n)
    }
    fn file_done(&self) {
        self.one_file_done()
    }
}
