//! The `belay` binary: parse arguments, run one command, print human or
//! JSON output, map errors to exit codes (0 ok, 1 error, 2 usage,
//! 3 integrity problem).

mod args;
mod board;
mod commands;
mod config;
mod journal;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A closed stdout (`belay cat x | head`) is not an error.
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            let msg = commands::error_line(&err);
            eprintln!("error: {msg}");
            let integrity = err.chain().any(|e| {
                e.downcast_ref::<belay_store::Error>()
                    .is_some_and(|e| e.is_integrity())
            });
            ExitCode::from(if integrity { 3 } else { 1 })
        }
    }
}
