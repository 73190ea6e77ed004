//! The `belay` binary: parse arguments, run one command, print human or
//! JSON output, map errors to exit codes (0 ok, 1 error, 2 usage,
//! 3 integrity problem, 130 interrupted).

mod args;
mod commands;
mod config;
mod journal;
mod output;
mod pager;
mod progress;

use std::io::Write;
use std::process::ExitCode;

use belay_transport::serial::port;
use clap::Parser;
use serde::Serialize;

/// Exit code after Ctrl-C, as shells report a process ended by SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

/// What `--json` prints on stderr when a command fails.
#[derive(Serialize)]
struct JsonError<'a> {
    error: &'a str,
    kind: &'a str,
    exit_code: u8,
}

fn report(json: bool, message: &str, kind: &str, code: u8) -> ExitCode {
    if json {
        let e = JsonError {
            error: message,
            kind,
            exit_code: code,
        };
        let line = serde_json::to_string(&e).expect("plain strings serialize");
        let _ = writeln!(std::io::stderr(), "{line}");
    } else {
        let _ = writeln!(std::io::stderr(), "error: {message}");
    }
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let args = args::normalize(std::env::args_os());
    let wants_json = args.iter().any(|a| a == "--json");
    let cli = match args::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if wants_json && e.use_stderr() => {
            // clap's first line, without its "error: " prefix and usage.
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            return report(true, first, "usage", 2);
        }
        Err(e) => e.exit(),
    };
    // Ctrl-C: a board session ends cleanly (the board is left in its
    // REPL) and the command fails with exit code 130; anything else, or a
    // second Ctrl-C, ends the process at once with 130. Every repository
    // write is atomic, so stopping between two of them loses nothing.
    // ctrlc's thread must never take SIGTERM or SIGHUP: a folder backup
    // waits for those itself (commands/backup.rs), and a thread that does
    // not block them would get their default action (the process dies with
    // its session file left). Threads inherit the mask they start with.
    let term_hup = signal_set(&[libc::SIGTERM, libc::SIGHUP]);
    // SAFETY: masks of the calling thread, with an initialised set.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &term_hup, std::ptr::null_mut()) };
    let _ = ctrlc::set_handler(|| {
        if !port::interrupt() {
            // A backup's session file goes with it (exiting runs no
            // destructor); what was written stays as safe as after a crash.
            belay_store::session::remove_own_files();
            eprintln!("error: interrupted by Ctrl-C");
            std::process::exit(EXIT_INTERRUPTED.into());
        }
    });
    // SAFETY: as above.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &term_hup, std::ptr::null_mut()) };
    let json = cli.json;
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A closed stdout (`belay log | head`) is not an error: stop
            // quietly, as ripgrep does.
            if stdout_closed()
                && err.chain().any(|e| {
                    e.downcast_ref::<std::io::Error>()
                        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
                })
            {
                return ExitCode::SUCCESS;
            }
            let msg = commands::error_line(&err);
            let integrity = err.chain().any(|e| {
                e.downcast_ref::<belay_store::Error>()
                    .is_some_and(|e| e.is_integrity())
            });
            if port::was_interrupted() {
                report(json, &msg, "interrupted", EXIT_INTERRUPTED)
            } else if integrity {
                report(json, &msg, "integrity", 3)
            } else {
                report(json, &msg, "error", 1)
            }
        }
    }
}

/// Whether stdout is a pipe whose reader has gone (`belay log | head`).
/// A broken pipe elsewhere (a board's line closed by an unplug) is an
/// error like any other: only the reader closing stdout ends quietly.
fn stdout_closed() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no timeout.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n > 0 && fd.revents & libc::POLLERR != 0
}

/// A signal set holding `signals` (also for commands/backup.rs).
pub(crate) fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before it is used.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

/// Take `signals` away from every thread started after this call and run
/// `handler` on a thread of its own each time one arrives (in order, one at
/// a time). Call it before any thread starts, so that every thread inherits
/// the blocked mask and the signal reaches only the waiting thread.
pub(crate) fn on_signals(
    signals: &[libc::c_int],
    mut handler: impl FnMut(libc::c_int) + Send + 'static,
) {
    let set = signal_set(signals);
    // SAFETY: plain libc calls on an initialised signal set.
    unsafe {
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
    }
    std::thread::spawn(move || {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: as above; sig is a valid out-pointer.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                return;
            }
            handler(sig);
        }
    });
}
