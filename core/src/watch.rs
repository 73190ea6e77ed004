//! `watch`: wait for boards to appear (USB serial ports with known vendor
//! ids, or paths and globs), back each one up once per plug-in with
//! [`board::backup_board`], on a thread per board, optionally apply the
//! retention policy after each backup, and report every event.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use belay_store::Repo;
use belay_store::forget;
use belay_store::retention::Policy;
use belay_transport::devices::{self, UsbId};
use belay_transport::serial::port;
use serde::Serialize;

use crate::backup::{BackupResult, parse_meta};
use crate::board::{self, BoardBackupOptions};
use crate::error::{Error, Result, bail};
use crate::progress::Progress;
use crate::who::Who;

/// Where boards come from.
#[derive(Clone, Debug)]
pub enum Watching {
    /// USB serial ports with these ids.
    Usb(Vec<UsbId>),
    /// Paths and globs (`/dev/serial/by-id/*`).
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

    /// What is watched, in words.
    pub fn describe(&self) -> String {
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

/// The retention policy applied to a board's source after its backup.
#[derive(Clone, Debug, Serialize)]
pub struct RetentionApplied {
    pub source: String,
    pub kept: usize,
    pub removed: usize,
    pub removed_ids: Vec<String>,
    pub policy: Option<String>,
}

/// Something that happened; `belay watch --json` prints each as one line
/// (with the time).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event")]
pub enum WatchEvent {
    #[serde(rename = "watching")]
    Watching { watching: String },
    #[serde(rename = "appeared")]
    Appeared {
        port: String,
        target: String,
        usb: Option<String>,
        product: Option<String>,
    },
    #[serde(rename = "gone")]
    Gone {
        port: String,
        /// Unplugged while its backup ran.
        #[serde(skip)]
        during_backup: bool,
    },
    #[serde(rename = "backup-started")]
    BackupStarted { port: String },
    #[serde(rename = "backup")]
    Backup {
        port: String,
        #[serde(flatten)]
        backup: BackupResult,
    },
    #[serde(rename = "forget")]
    Forget {
        port: String,
        #[serde(flatten)]
        retention: RetentionApplied,
    },
    #[serde(rename = "failed")]
    Failed { port: String, error: String },
    #[serde(rename = "stopped")]
    Stopped {
        reason: &'static str,
        backups: u64,
        failures: u64,
    },
}

/// Where `watch` sends what it does, besides the [`Progress`] its board
/// sessions report through.
pub trait WatchReport: Sync {
    /// One event, on the watching thread. An error (a closed stdout) ends
    /// the watch.
    fn event(&self, e: &WatchEvent) -> std::io::Result<()>;
    /// A repository operation to record in the journal (`backup`,
    /// `forget`), with its result as JSON details, or its error.
    fn journal(&self, _kind: &str, _details: serde_json::Value, _error: Option<&str>) {}
}

/// The retention policy for a source, if it has one.
pub type PolicyFor<'a> = &'a (dyn Fn(&str) -> Option<Policy> + Sync);

/// Opens the repository for each backup, from the location as the user
/// gave it.
pub type OpenRepo<'a> =
    &'a (dyn Fn() -> std::result::Result<Repo, Box<dyn std::error::Error + Send + Sync>> + Sync);

/// What `watch` is asked to do.
pub struct WatchOptions<'a> {
    pub watching: Watching,
    /// How long a port must be present before its backup starts.
    pub settle: Duration,
    /// How often the ports are looked at.
    pub interval: Duration,
    /// Stop after this long.
    pub timeout: Option<Duration>,
    /// Stop after this many backups.
    pub max_backups: Option<u64>,
    /// Stop once every present board is backed up.
    pub exit_when_idle: bool,
    pub baud: u32,
    pub message: String,
    pub excludes: Vec<String>,
    /// `--meta KEY=VALUE`, as given.
    pub meta: Vec<String>,
    pub allow_empty: bool,
    pub names: board::BoardNames,
    /// Apply this retention policy to a board's source after a backup
    /// that saved a snapshot (as `belay forget --source NAME`).
    pub retention: Option<PolicyFor<'a>>,
    pub open_repo: OpenRepo<'a>,
}

/// How a watch ended.
#[derive(Clone, Debug)]
pub struct WatchEnd {
    /// `interrupted`, `timeout`, `max-backups` or `idle`.
    pub reason: &'static str,
    pub backups: u64,
    pub failures: u64,
    /// Ports whose last backup failed.
    pub failed_last: Vec<String>,
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
    result: Result<(BackupResult, Option<RetentionApplied>), String>,
}

fn to_map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(o) => o,
        _ => serde_json::Map::new(),
    }
}

/// Apply the retention policy to `source` after its backup: what it did,
/// or `None` when there is no policy for it.
fn apply_retention(
    repo: &Repo,
    source: &str,
    policy_for: PolicyFor,
    r: &dyn WatchReport,
) -> Result<Option<RetentionApplied>> {
    if policy_for(source).is_none() {
        return Ok(None);
    }
    let tz = jiff::tz::TimeZone::system();
    let plan = forget::plan_per_source(repo, &|s| policy_for(s), Some(source), &tz)?;
    let removed: Vec<String> = plan.removed().map(|d| d.id.to_hex()).collect();
    let result = forget::execute(repo, &plan);
    let applied = RetentionApplied {
        source: source.to_string(),
        kept: plan.kept_count(),
        removed: removed.len(),
        removed_ids: removed,
        policy: plan.sources.first().map(|s| s.policy.clone()),
    };
    let mut details = to_map(serde_json::to_value(&applied).unwrap_or_default());
    details.insert("watch".into(), true.into());
    let err = result.as_ref().err().map(|e| e.to_string());
    r.journal("forget", details.into(), err.as_deref());
    result?;
    Ok(Some(applied))
}

/// Back up the board on `port` once (on its own thread) and apply the
/// retention policy when asked.
fn backup_one(
    opts: &WatchOptions,
    port: &str,
    p: &dyn Progress,
    r: &dyn WatchReport,
) -> Result<(BackupResult, Option<RetentionApplied>)> {
    let repo = (opts.open_repo)().map_err(Error::Other)?;
    let bopts = BoardBackupOptions {
        port: port.to_string(),
        baud: opts.baud,
        name: None,
        names: opts.names.clone(),
        message: opts.message.clone(),
        excludes: opts.excludes.clone(),
        allow_empty: opts.allow_empty,
        deflate: None,
        hash: true,
        who: Who::now(parse_meta(&opts.meta)?),
    };
    let result = board::backup_board(&repo, &bopts, p);
    let mut details = match &result {
        Ok(b) => to_map(serde_json::to_value(b).unwrap_or_default()),
        Err(_) => serde_json::Map::new(),
    };
    details.insert("watch".into(), true.into());
    details
        .entry("board")
        .or_insert_with(|| port.to_string().into());
    let err = result.as_ref().err().map(|e| crate::error_line(e));
    r.journal("backup", details.into(), err.as_deref());
    let b = result?;
    let forgot = match opts.retention {
        Some(policy_for) if b.committed() => apply_retention(&repo, &b.source, policy_for, r)?,
        _ => None,
    };
    Ok((b, forgot))
}

/// Watch until stopped (Ctrl-C through the transport's interrupt, a
/// timeout, enough backups, or nothing left to do).
pub fn watch(opts: &WatchOptions, p: &dyn Progress, r: &dyn WatchReport) -> Result<WatchEnd> {
    if opts.max_backups == Some(0) {
        bail!("--max-backups 0: give at least 1 (or leave it out to watch until stopped)");
    }
    parse_meta(&opts.meta)?;
    r.event(&WatchEvent::Watching {
        watching: opts.watching.describe(),
    })?;
    std::thread::scope(|scope| watch_loop(opts, p, r, scope))
}

fn watch_loop<'s, 'e: 's>(
    opts: &'e WatchOptions,
    p: &'e dyn Progress,
    r: &'e dyn WatchReport,
    scope: &'s std::thread::Scope<'s, 'e>,
) -> Result<WatchEnd> {
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
        let timed_out = opts.timeout.is_some_and(|t| started.elapsed() >= t);
        let full = opts
            .max_backups
            .is_some_and(|m| completed + running as u64 >= m);
        if !stopping && !timed_out {
            match opts.watching.scan() {
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
                        r.event(&WatchEvent::Gone {
                            during_backup: p.running,
                            port: k,
                        })?;
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
                        r.event(&WatchEvent::Appeared {
                            port: f.port,
                            target: f.target.display().to_string(),
                            usb: f.usb,
                            product: f.product,
                        })?;
                    }
                }
                Err(e) => {
                    if scan_error.as_deref() != Some(e.as_str()) {
                        p.warn(&e);
                    }
                    scan_error = Some(e);
                }
            }
            // Start a backup for each plug-in that has none yet.
            let mut ready: Vec<String> = ports
                .iter()
                .filter(|(_, p)| {
                    p.present && !p.running && p.done != p.plug && p.since.elapsed() >= opts.settle
                })
                .map(|(k, _)| k.clone())
                .collect();
            ready.sort();
            for k in ready {
                if full
                    || opts
                        .max_backups
                        .is_some_and(|m| completed + running as u64 >= m)
                {
                    break;
                }
                let state = ports.get_mut(&k).expect("listed");
                state.running = true;
                running += 1;
                let plug = state.plug;
                let tx = tx.clone();
                r.event(&WatchEvent::BackupStarted { port: k.clone() })?;
                scope.spawn(move || {
                    // A panic must still be reported, or watch would wait
                    // for this board for ever.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        backup_one(opts, &k, p, r).map_err(|e| crate::error_line(&e))
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
        if let Ok(f) = rx.recv_timeout(opts.interval) {
            finished.push(f);
            finished.extend(rx.try_iter());
        }
        for f in finished {
            running -= 1;
            if let Some(p) = ports.get_mut(&f.port) {
                p.running = false;
                p.done = p.done.max(f.plug);
            }
            match f.result {
                Ok((backup, forgot)) => {
                    completed += 1;
                    failed_last.remove(&f.port);
                    r.event(&WatchEvent::Backup {
                        port: f.port.clone(),
                        backup,
                    })?;
                    if let Some(retention) = forgot {
                        r.event(&WatchEvent::Forget {
                            port: f.port,
                            retention,
                        })?;
                    }
                }
                Err(error) => {
                    failures += 1;
                    failed_last.insert(f.port.clone());
                    r.event(&WatchEvent::Failed {
                        port: f.port,
                        error,
                    })?;
                }
            }
        }
        if running == 0 {
            if port::was_interrupted() {
                break "interrupted";
            }
            if opts.timeout.is_some_and(|t| started.elapsed() >= t) {
                break "timeout";
            }
            if opts.max_backups.is_some_and(|m| completed >= m) {
                break "max-backups";
            }
            if opts.exit_when_idle && ports.values().all(|p| !p.present || p.done == p.plug) {
                break "idle";
            }
        }
    };
    r.event(&WatchEvent::Stopped {
        reason,
        backups: completed,
        failures,
    })?;
    let mut failed_last: Vec<String> = failed_last.into_iter().collect();
    failed_last.sort();
    Ok(WatchEnd {
        reason,
        backups: completed,
        failures,
        failed_last,
    })
}
