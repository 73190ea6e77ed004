//! `belay watch`: wait for boards to appear (USB serial ports with known
//! vendor ids, or paths and globs given with `--port`), back each one up
//! once per plug-in with `belay backup serial:PORT`'s code, on a thread per
//! board, and report every event (one JSON line each with `--json`).

use super::Ctx;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use belay_store::Repo;
use belay_store::retention::parse_grace;
use belay_transport::devices::{self, UsbId, WATCH_DEFAULT_USB};
use belay_transport::serial::port;
use serde_json::{Map, Value, json};

use crate::args::{BackupArgs, WatchArgs};
use belay_core::BackupResult;
use belay_core::board::BoardBackupOptions;

/// Set by SIGTERM or SIGHUP: running backups end cleanly and watch exits 0
/// (a service being stopped), where Ctrl-C exits 130.
static TERMINATED: AtomicBool = AtomicBool::new(false);

/// Where boards come from.
enum Watching {
    Usb(Vec<UsbId>),
    Paths(Vec<String>),
}

/// A port present now: the path to open, and what it is (the device a
/// link points to, and for USB ports the ids and product).
struct Found {
    port: String,
    target: PathBuf,
    usb: Option<String>,
    product: Option<String>,
}

impl Watching {
    fn scan(&self) -> Result<Vec<Found>, String> {
        let mut out = Vec::new();
        match self {
            Watching::Usb(ids) => {
                let devs = devices::list().map_err(|e| format!("cannot list serial ports: {e}"))?;
                for d in devs.iter().filter(|d| ids.iter().any(|i| i.matches(d))) {
                    out.push(Found {
                        port: d.port.clone(),
                        target: std::fs::canonicalize(&d.port)
                            .unwrap_or_else(|_| PathBuf::from(&d.port)),
                        usb: d.vid.zip(d.pid).map(|(v, p)| format!("{v:04x}:{p:04x}")),
                        product: d.product.clone().or_else(|| d.board.clone()),
                    });
                }
            }
            Watching::Paths(globs) => {
                for g in globs {
                    for p in devices::glob_paths(g)? {
                        let port = p.display().to_string();
                        let target = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
                        // One board seen through two paths (a by-id link
                        // and its /dev/ttyACM0) is backed up once.
                        if out
                            .iter()
                            .any(|f: &Found| f.port == port || f.target == target)
                        {
                            continue;
                        }
                        out.push(Found {
                            target,
                            port,
                            usb: None,
                            product: None,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        match self {
            Watching::Usb(ids) => format!(
                "USB serial ports with ids {}",
                ids.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Watching::Paths(g) => g.join(", "),
        }
    }
}

/// One port's plug-ins: `plug` counts appearances (and changes of what
/// the path points to); `done` is the plug-in whose backup has finished.
struct PortState {
    present: bool,
    target: PathBuf,
    plug: u64,
    done: u64,
    running: bool,
    since: Instant,
}

/// What a backup thread sends back.
struct Finished {
    port: String,
    plug: u64,
    result: Result<(BackupResult, Option<Value>), String>,
}

/// Print one event: a JSON line with `--json`, else a line with the time.
fn emit(ctx: &Ctx, event: &str, port: Option<&str>, fields: Value, human: String) -> Result<()> {
    if ctx.json {
        let mut m = Map::new();
        m.insert("event".into(), json!(event));
        m.insert("time".into(), json!(jiff::Timestamp::now().to_string()));
        if let Some(p) = port {
            m.insert("port".into(), json!(p));
        }
        if let Value::Object(o) = fields {
            m.extend(o);
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", Value::Object(m))?;
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

fn duration(flag: &str, s: &str) -> Result<Duration> {
    parse_grace(s).map_err(|e| anyhow!("--{flag}: {e}"))
}

/// Apply the config file's retention policy to `source` after its backup
/// (as `belay forget --source NAME` with no flags): the forget's summary,
/// or `None` when the config has no policy for it.
fn apply_retention(
    repo: &Repo,
    repo_path: &Path,
    source: &str,
    quiet: bool,
) -> Result<Option<Value>> {
    use belay_store::forget;
    let config = crate::config::get();
    if config.retention_for(source).is_none() {
        return Ok(None);
    }
    let tz = jiff::tz::TimeZone::system();
    let plan = forget::plan_per_source(repo, &|s| config.retention_for(s), Some(source), &tz)?;
    let removed: Vec<String> = plan.removed().map(|d| d.id.to_hex()).collect();
    let result = forget::execute(repo, &plan);
    let doc = json!({
        "source": source,
        "kept": plan.kept_count(),
        "removed": removed.len(),
        "removed_ids": removed,
        "policy": plan.sources.first().map(|s| s.policy.clone()),
    });
    let mut details = doc.as_object().cloned().unwrap_or_default();
    details.insert("watch".into(), json!(true));
    let err = result.as_ref().err().map(|e| e.to_string());
    crate::journal::write(repo_path, "forget", details, err.as_deref(), quiet);
    result?;
    Ok(Some(doc))
}

/// Back up the board on `port` once (on its own thread) and apply the
/// retention policy when asked.
fn backup_one(
    ctx: &Ctx,
    repo_path: &Path,
    a: &BackupArgs,
    port: &str,
    baud: u32,
    forget: bool,
) -> Result<(BackupResult, Option<Value>)> {
    let repo = super::open(repo_path)?;
    let o = super::backup::options(a);
    let opts = BoardBackupOptions {
        port: port.to_string(),
        baud,
        name: o.name,
        names: o.names,
        message: o.message,
        excludes: o.excludes,
        allow_empty: o.allow_empty,
        deflate: o.deflate,
        hash: o.hash,
        who: belay_core::Who::now(belay_core::backup::parse_meta(&a.meta)?),
    };
    let result = belay_core::board::backup_board(&repo, &opts, ctx).map_err(anyhow::Error::from);
    let mut details = match &result {
        Ok(b) => match serde_json::to_value(b)? {
            Value::Object(o) => o,
            _ => Map::new(),
        },
        Err(_) => Map::new(),
    };
    details.insert("watch".into(), json!(true));
    details.entry("board").or_insert_with(|| json!(port));
    let err = result.as_ref().err().map(super::error_line);
    crate::journal::write(repo_path, "backup", details, err.as_deref(), ctx.quiet);
    let b = result?;
    let forgot = if forget && b.committed() {
        apply_retention(&repo, repo_path, &b.source, ctx.quiet)?
    } else {
        None
    };
    Ok((b, forgot))
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
    if a.max_backups == Some(0) {
        bail!("--max-backups 0: give at least 1 (or leave it out to watch until stopped)");
    }
    if a.forget && !crate::config::get().has_retention() {
        bail!(
            "--forget applies the config file's [retention] policies, and there are none: add [retention.NAME] or [retention.\"*\"] (docs/config.md), or leave out --forget"
        );
    }
    belay_core::backup::parse_meta(&a.meta)?;
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
    // Ctrl-C ends running board sessions cleanly (exit 130); SIGTERM and
    // SIGHUP do the same and exit 0; a second signal ends at once.
    port::catch_interrupts();
    crate::on_signals(&[libc::SIGTERM, libc::SIGHUP], |sig| {
        if TERMINATED.swap(true, Ordering::SeqCst) {
            std::process::exit(128 + sig);
        }
        port::interrupt();
    });
    let bargs = BackupArgs {
        source: String::new(),
        name: None,
        message: a.message.clone(),
        excludes: a.excludes.clone(),
        meta: a.meta.clone(),
        skip_unreadable: false,
        allow_empty: a.allow_empty,
        deflate: false,
        no_deflate: false,
        no_hash: false,
    };
    // Board sessions print nothing but warnings: watch reports events.
    let inner = Ctx {
        json: true,
        quiet: ctx.quiet,
        verbose: ctx.verbose,
        color: ctx.color,
        pager: false,
    };
    emit(
        ctx,
        "watching",
        None,
        json!({"watching": watching.describe()}),
        format!(
            "watching {} for boards{}",
            watching.describe(),
            if ctx.json { "" } else { " (Ctrl-C to stop)" }
        ),
    )?;

    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<Finished>();
    let mut ports: HashMap<String, PortState> = HashMap::new();
    let mut running = 0usize;
    let mut completed = 0u64;
    let mut failures = 0u64;
    let mut failed_last: HashSet<String> = HashSet::new();
    let mut scan_error: Option<String> = None;
    let reason = loop {
        let stopping = port::was_interrupted();
        let timed_out = timeout.is_some_and(|t| started.elapsed() >= t);
        let full = a
            .max_backups
            .is_some_and(|m| completed + running as u64 >= m);
        if !stopping && !timed_out {
            match watching.scan() {
                Ok(found) => {
                    scan_error = None;
                    let here: HashSet<&str> = found.iter().map(|f| f.port.as_str()).collect();
                    let mut gone: Vec<&String> = ports
                        .iter()
                        .filter(|(k, p)| p.present && !here.contains(k.as_str()))
                        .map(|(k, _)| k)
                        .collect();
                    gone.sort();
                    let gone: Vec<String> = gone.into_iter().cloned().collect();
                    for k in gone {
                        let p = ports.get_mut(&k).expect("listed");
                        p.present = false;
                        let note = if p.running {
                            "gone (unplugged during its backup)"
                        } else {
                            "gone"
                        };
                        emit(ctx, "gone", Some(&k), json!({}), note.to_string())?;
                    }
                    for f in found {
                        let p = ports.entry(f.port.clone()).or_insert(PortState {
                            present: false,
                            target: PathBuf::new(),
                            plug: 0,
                            done: 0,
                            running: false,
                            since: Instant::now(),
                        });
                        if p.present && p.target == f.target {
                            continue;
                        }
                        p.present = true;
                        p.target = f.target.clone();
                        p.plug += 1;
                        p.since = Instant::now();
                        let what = [f.usb.clone(), f.product.clone()]
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>()
                            .join(" ");
                        emit(
                            ctx,
                            "appeared",
                            Some(&f.port),
                            json!({
                                "target": f.target.display().to_string(),
                                "usb": f.usb,
                                "product": f.product,
                            }),
                            if what.is_empty() {
                                "appeared".to_string()
                            } else {
                                format!("appeared ({what})")
                            },
                        )?;
                    }
                }
                Err(e) => {
                    if scan_error.as_deref() != Some(e.as_str()) {
                        ctx.warn(&e);
                    }
                    scan_error = Some(e);
                }
            }
            // Start a backup for each plug-in that has none yet.
            let mut ready: Vec<String> = ports
                .iter()
                .filter(|(_, p)| {
                    p.present && !p.running && p.done != p.plug && p.since.elapsed() >= settle
                })
                .map(|(k, _)| k.clone())
                .collect();
            ready.sort();
            for k in ready {
                if full
                    || a.max_backups
                        .is_some_and(|m| completed + running as u64 >= m)
                {
                    break;
                }
                let p = ports.get_mut(&k).expect("listed");
                p.running = true;
                running += 1;
                let plug = p.plug;
                let tx = tx.clone();
                let mut bargs = bargs.clone();
                bargs.source = format!("serial:{k}");
                let repo_path = repo_path.to_path_buf();
                let (baud, forget) = (a.baud, a.forget);
                emit(
                    ctx,
                    "backup-started",
                    Some(&k),
                    json!({}),
                    "backing up…".into(),
                )?;
                std::thread::spawn(move || {
                    // A panic must still be reported, or watch would wait
                    // for this board for ever.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        backup_one(&inner, &repo_path, &bargs, &k, baud, forget)
                            .map_err(|e| super::error_line(&e))
                    }))
                    .unwrap_or_else(|_| {
                        Err("internal error (a bug in belay: please report it)".into())
                    });
                    let _ = tx.send(Finished {
                        port: k,
                        plug,
                        result,
                    });
                });
            }
        }
        // Wait for a backup to end (or the next look at the ports).
        let mut finished = Vec::new();
        if let Ok(f) = rx.recv_timeout(interval) {
            finished.push(f);
            finished.extend(rx.try_iter());
        }
        for f in finished {
            running -= 1;
            if let Some(p) = ports.get_mut(&f.port) {
                p.running = false;
                p.done = p.done.max(f.plug);
            }
            report(ctx, &f, &mut completed, &mut failures, &mut failed_last)?;
        }
        if running == 0 {
            if port::was_interrupted() {
                break "interrupted";
            }
            if timeout.is_some_and(|t| started.elapsed() >= t) {
                break "timeout";
            }
            if a.max_backups.is_some_and(|m| completed >= m) {
                break "max-backups";
            }
            if a.exit_when_idle && ports.values().all(|p| !p.present || p.done == p.plug) {
                break "idle";
            }
        }
    };
    emit(
        ctx,
        "stopped",
        None,
        json!({"reason": reason, "backups": completed, "failures": failures}),
        format!("stopped ({reason}): {completed} backups, {failures} failed"),
    )?;
    if TERMINATED.load(Ordering::SeqCst) {
        return Ok(());
    }
    if reason == "interrupted" {
        bail!("interrupted by Ctrl-C");
    }
    if !failed_last.is_empty() {
        let mut ports: Vec<String> = failed_last.into_iter().collect();
        ports.sort();
        bail!(
            "the last backup of {} failed (see above); plug the board in again, or run belay backup serial:PORT",
            ports.join(", ")
        );
    }
    Ok(())
}

/// Print what a backup thread did and count it.
fn report(
    ctx: &Ctx,
    f: &Finished,
    completed: &mut u64,
    failures: &mut u64,
    failed_last: &mut HashSet<String>,
) -> Result<()> {
    match &f.result {
        Ok((b, forgot)) => {
            *completed += 1;
            failed_last.remove(&f.port);
            let human = if b.committed() {
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
            };
            emit(
                ctx,
                "backup",
                Some(&f.port),
                serde_json::to_value(b)?,
                human,
            )?;
            if let Some(v) = forgot {
                emit(
                    ctx,
                    "forget",
                    Some(&f.port),
                    v.clone(),
                    format!(
                        "retention policy applied to {}: kept {}, removed {}",
                        b.source, v["kept"], v["removed"]
                    ),
                )?;
            }
        }
        Err(e) => {
            *failures += 1;
            failed_last.insert(f.port.clone());
            emit(
                ctx,
                "failed",
                Some(&f.port),
                json!({"error": e}),
                format!("backup failed: {e}; it is tried again when the board is plugged in again"),
            )?;
        }
    }
    Ok(())
}
