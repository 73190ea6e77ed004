//! `belay watch`: parse, install the signal handling, call
//! `belay_core::watch`, and print every event (one JSON line each with
//! `--json`) and record each backup in the journal.

use super::Ctx;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use belay_core::watch::{WatchEvent, WatchOptions, WatchReport, Watching};
use belay_store::retention::parse_grace;
use belay_transport::devices::{self, UsbId, WATCH_DEFAULT_USB};
use belay_transport::serial::port;
use serde_json::Value;

use crate::args::WatchArgs;

/// Set by SIGTERM or SIGHUP: running backups end cleanly and watch exits 0
/// (a service being stopped), where Ctrl-C exits 130.
static TERMINATED: AtomicBool = AtomicBool::new(false);

fn duration(flag: &str, s: &str) -> Result<Duration> {
    parse_grace(s).map_err(|e| anyhow!("--{flag}: {e}"))
}

/// Prints events and writes the journal.
struct Printer<'a> {
    ctx: &'a Ctx,
    repo_path: &'a Path,
}

impl Printer<'_> {
    /// One event: a JSON line with `--json`, else a line with the time.
    fn emit(&self, e: &WatchEvent, port: Option<&str>, human: String) -> std::io::Result<()> {
        let ctx = self.ctx;
        if ctx.json {
            let mut v = serde_json::to_value(e)?;
            if let Value::Object(m) = &mut v {
                m.insert("time".into(), jiff::Timestamp::now().to_string().into());
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "{v}")?;
            out.flush()?;
        } else if !ctx.quiet {
            let now = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
            let mut out = std::io::stdout().lock();
            match port {
                Some(p) => writeln!(out, "{now} {p}: {human}")?,
                None => writeln!(out, "{now} {human}")?,
            }
            out.flush()?;
        }
        Ok(())
    }
}

impl WatchReport for Printer<'_> {
    fn event(&self, e: &WatchEvent) -> std::io::Result<()> {
        let (port, human) = match e {
            WatchEvent::Watching { watching } => (
                None,
                format!(
                    "watching {watching} for boards{}",
                    if self.ctx.json {
                        ""
                    } else {
                        " (Ctrl-C to stop)"
                    }
                ),
            ),
            WatchEvent::Appeared {
                port, usb, product, ..
            } => {
                let what = [usb.clone(), product.clone()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                (
                    Some(port),
                    if what.is_empty() {
                        "appeared".to_string()
                    } else {
                        format!("appeared ({what})")
                    },
                )
            }
            WatchEvent::Gone {
                port,
                during_backup,
            } => (
                Some(port),
                if *during_backup {
                    "gone (unplugged during its backup)"
                } else {
                    "gone"
                }
                .to_string(),
            ),
            WatchEvent::BackupStarted { port } => (Some(port), "backing up…".into()),
            WatchEvent::Backup { port, backup: b } => (
                Some(port),
                if b.committed() {
                    format!(
                        "snapshot {} saved for {} ({} files, {} pulled, {:.1}s)",
                        b.snapshot.short(),
                        b.source,
                        b.files,
                        b.files_read,
                        b.seconds
                    )
                } else {
                    format!(
                        "no changes since snapshot {} of {}: nothing saved",
                        b.snapshot.short(),
                        b.source
                    )
                },
            ),
            WatchEvent::Forget { port, retention } => (
                Some(port),
                format!(
                    "retention policy applied to {}: kept {}, removed {}",
                    retention.source, retention.kept, retention.removed
                ),
            ),
            WatchEvent::Failed { port, error } => (
                Some(port),
                format!(
                    "backup failed: {error}; it is tried again when the board is plugged in again"
                ),
            ),
            WatchEvent::Stopped {
                reason,
                backups,
                failures,
            } => (
                None,
                format!("stopped ({reason}): {backups} backups, {failures} failed"),
            ),
        };
        self.emit(e, port.map(String::as_str), human)
    }

    fn journal(&self, kind: &str, details: Value, error: Option<&str>) {
        let Value::Object(details) = details else {
            return;
        };
        crate::journal::write(self.repo_path, kind, details, error, self.ctx.quiet);
    }
}

pub(crate) fn watch(ctx: &Ctx, repo_path: &Path, a: WatchArgs) -> Result<()> {
    // The repository must be there before anything is plugged in.
    drop(super::open(repo_path)?);
    let settle = duration("settle", &a.settle)?;
    let interval = duration("interval", &a.interval)?.max(Duration::from_millis(50));
    let timeout = a
        .timeout
        .as_deref()
        .map(|t| duration("timeout", t))
        .transpose()?;
    let config = crate::config::get();
    if a.forget && !config.has_retention() {
        bail!(
            "--forget applies the config file's [retention] policies, and there are none: add [retention.NAME] or [retention.\"*\"] (docs/config.md), or leave out --forget"
        );
    }
    let watching = if a.ports.is_empty() {
        let ids = if a.usb.is_empty() {
            WATCH_DEFAULT_USB.to_vec()
        } else {
            a.usb
                .iter()
                .map(|s| UsbId::parse(s).map_err(|e| anyhow!("--usb {e}")))
                .collect::<Result<Vec<_>>>()?
        };
        Watching::Usb(ids)
    } else {
        for g in &a.ports {
            devices::glob_paths(g).map_err(|e| anyhow!("--port {e}"))?;
        }
        Watching::Paths(a.ports.clone())
    };
    let retention = |s: &str| config.retention_for(s);
    let open =
        || -> std::result::Result<belay_store::Repo, Box<dyn std::error::Error + Send + Sync>> {
            Ok(super::open(repo_path)?)
        };
    let opts = WatchOptions {
        watching,
        settle,
        interval,
        timeout,
        max_backups: a.max_backups,
        exit_when_idle: a.exit_when_idle,
        baud: a.baud,
        message: a.message.clone(),
        excludes: a.excludes.clone(),
        meta: a.meta.clone(),
        allow_empty: a.allow_empty,
        names: config.board_names(),
        retention: a.forget.then_some(&retention as _),
        open_repo: &open,
    };
    // Ctrl-C ends running board sessions cleanly (exit 130); SIGTERM and
    // SIGHUP do the same and exit 0; a second signal ends at once.
    port::catch_interrupts();
    crate::on_signals(&[libc::SIGTERM, libc::SIGHUP], |sig| {
        if TERMINATED.swap(true, Ordering::SeqCst) {
            std::process::exit(128 + sig);
        }
        port::interrupt();
    });
    // Board sessions print nothing but warnings: watch reports events.
    let inner = Ctx {
        json: true,
        quiet: ctx.quiet,
        verbose: ctx.verbose,
        color: ctx.color,
        pager: false,
    };
    let printer = Printer { ctx, repo_path };
    let end = belay_core::watch::watch(&opts, &inner, &printer)?;
    if TERMINATED.load(Ordering::SeqCst) {
        return Ok(());
    }
    if end.reason == "interrupted" {
        bail!("interrupted by Ctrl-C");
    }
    if !end.failed_last.is_empty() {
        bail!(
            "the last backup of {} failed (see above); plug the board in again, or run belay backup serial:PORT",
            end.failed_last.join(", ")
        );
    }
    Ok(())
}
