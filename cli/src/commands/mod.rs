//! One module per command family. Each command resolves its arguments,
//! calls the store (and a transport) and prints; no repository logic lives
//! here.

mod archive;
mod backup;
mod browse;
mod check;
mod copy;
mod devices;
mod diff;
mod find;
mod forget;
mod gc;
mod history;
mod journal;
mod repair;
mod restore;
mod shell;
mod sources;
mod stats;
mod tags;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow, bail};
use belay_store::Repo;
use serde_json::json;

use crate::args::{Cli, Command};
use crate::output::print_json;

pub fn run(mut cli: Cli) -> Result<ExitCode> {
    let ctx = Ctx {
        json: cli.json,
        quiet: cli.quiet,
        verbose: cli.verbose,
        color: cli.color,
        pager: !cli.no_pager && !cli.json,
    };
    let config = crate::config::load(cli.config.as_deref())?;
    config.apply(&mut cli.command);
    let repo = cli.repo.clone().or_else(|| config.repository.clone());
    let repo_path = || -> Result<PathBuf> {
        let path = repo.clone().ok_or_else(|| {
            anyhow!("no repository given: use -r PATH, set BELAY_REPO, or set repository in the config file")
        })?;
        Ok(path)
    };
    let kind = crate::journal::kind_of(&cli.command);
    let result = dispatch(&ctx, cli.command, &repo_path);
    if let (Some(kind), Some(path)) = (kind, &repo) {
        let msg = result.as_ref().err().map(error_line);
        crate::journal::finish(path, kind, msg.as_deref(), ctx.quiet);
    }
    report_requests(&ctx);
    result
}

/// The error chain on one line, without repeating a cause whose text an
/// outer message already includes.
pub(crate) fn error_line(err: &anyhow::Error) -> String {
    belay_core::error_line(err.as_ref())
}

fn dispatch(
    ctx: &Ctx,
    command: Command,
    repo_path: &dyn Fn() -> Result<PathBuf>,
) -> Result<ExitCode> {
    match command {
        Command::Init { format } => init(ctx, &repo_path()?, format),
        Command::Migrate => gc::migrate(ctx, &open(&repo_path()?)?),
        Command::Backup(a) => backup::backup(ctx, &open(&repo_path()?)?, a),
        Command::Log(a) => history::log(ctx, &open(&repo_path()?)?, a),
        Command::Show { rev } => history::show(ctx, &open(&repo_path()?)?, &rev),
        Command::Ls { spec, recursive } => browse::ls(ctx, &open(&repo_path()?)?, &spec, recursive),
        Command::Cat { spec } => browse::cat(&open(&repo_path()?)?, &spec),
        Command::Restore(a) => restore::restore(ctx, &open(&repo_path()?)?, a),
        Command::Forget(a) => forget::forget(ctx, &open(&repo_path()?)?, a),
        Command::UndoForget => forget::undo(ctx, &open(&repo_path()?)?),
        Command::Gc(a) => gc::gc(ctx, &open(&repo_path()?)?, a),
        Command::Check(a) => check::check(ctx, &open(&repo_path()?)?, a),
        Command::Repair { sources, read_data } => {
            return repair::repair(ctx, &open(&repo_path()?)?, &sources, read_data);
        }
        Command::Unlock { remove_all } => gc::unlock(ctx, &open(&repo_path()?)?, remove_all),
        Command::Stats { rev } => stats::stats(ctx, &open(&repo_path()?)?, rev.as_deref()),
        Command::Sources { action: None } => sources::list(ctx, &open(&repo_path()?)?),
        Command::Sources {
            action: Some(crate::args::SourcesAction::Rm { name, dry_run }),
        } => sources::remove(ctx, &open(&repo_path()?)?, &name, dry_run),
        Command::Rename { old, new, force } => {
            sources::rename(ctx, &open(&repo_path()?)?, &old, &new, force)
        }
        Command::Devices => devices::devices(ctx),
        Command::Watch(a) => watch::watch(ctx, &repo_path()?, a),
        Command::Diff(a) => return diff::diff(ctx, &open(&repo_path()?)?, a),
        Command::Tag(a) => tags::tag(ctx, &open(&repo_path()?)?, a),
        Command::Tags => tags::list(ctx, &open(&repo_path()?)?),
        Command::Find(a) => find::find(ctx, &open(&repo_path()?)?, a),
        Command::Export(a) => archive::export(ctx, &open(&repo_path()?)?, a),
        Command::Import(a) => archive::import(ctx, &open(&repo_path()?)?, a),
        Command::Journal(a) => journal::journal(ctx, &open(&repo_path()?)?, a),
        Command::Copy(a) => copy::copy(ctx, &open(&repo_path()?)?, a),
        Command::Completions { shell } => shell::completions(shell),
        Command::Man { dir } => shell::man(ctx, dir.as_deref()),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// Output settings every command shares.
#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    pub color: crate::args::ColorWhen,
    /// Whether long output may go through a pager (not with --no-pager or --json).
    pub pager: bool,
}

impl Ctx {
    pub(crate) fn info(&self, msg: impl AsRef<str>) {
        if !self.quiet && !self.json {
            // A closed stdout (`belay gc | head -1`) is not worth a panic.
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), "{}", msg.as_ref());
        }
    }

    /// A remark for a person at a terminal (stderr), not for scripts.
    pub(crate) fn note(&self, msg: impl AsRef<str>) {
        use std::io::IsTerminal;
        if !self.quiet && !self.json && std::io::stderr().is_terminal() {
            eprintln!("{}", msg.as_ref());
        }
    }

    pub(crate) fn warn(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("warning: {}", msg.as_ref());
        }
    }
}

/// restic's and rclone's repository URLs (`s3:…`, `sftp:…`, `https://…`):
/// refused, instead of creating a local folder named `s3:`.
fn refuse_remote(path: &Path) -> Result<()> {
    const SCHEMES: [&str; 9] = [
        "b2", "gs", "azure", "sftp", "rest", "rclone", "swift", "http", "https",
    ];
    let s = path.to_string_lossy();
    let scheme = s.split_once(':').map(|(scheme, _)| scheme);
    if s.contains("://")
        || scheme.is_some_and(|p| SCHEMES.contains(&p.to_ascii_lowercase().as_str()))
    {
        bail!(
            "{s}: only folders and S3-compatible object storage (s3:https://host/bucket/prefix) are supported; give a local or mounted folder, e.g. -r /mnt/share/belay"
        );
    }
    Ok(())
}

/// Object storage this run opened, by location: one client (and one
/// conditional-write probe) per location, and what `-v` reports.
static OPENED: Mutex<Vec<(String, Arc<belay_s3::S3Storage>)>> = Mutex::new(Vec::new());

/// The object storage `path` names (`s3:…`); `None` for a folder.
fn object_storage(path: &Path) -> Result<Option<Arc<belay_s3::S3Storage>>> {
    let text = path.to_string_lossy();
    let Some(location) = belay_s3::parse_location(&text) else {
        refuse_remote(path)?;
        return Ok(None);
    };
    let location = location.map_err(|msg| anyhow!("{msg}"))?;
    let url = location.url();
    let mut opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, storage)) = opened.iter().find(|(u, _)| *u == url) {
        return Ok(Some(storage.clone()));
    }
    let storage =
        Arc::new(belay_s3::S3Storage::open(&location).map_err(|e| anyhow!("{url}: {e}"))?);
    opened.push((url, storage.clone()));
    Ok(Some(storage))
}

/// Open the repository the user named (`-r`, `--to`): a folder, or a
/// location on object storage (`s3:…`, docs/object-storage.md).
pub(crate) fn open(path: &Path) -> Result<Repo> {
    Ok(match object_storage(path)? {
        Some(s) => {
            let location = PathBuf::from(s.location().url());
            match Repo::open_storage(s.clone(), location) {
                Ok(repo) => repo,
                // No config: say so, unless the bucket itself is missing
                // (a GET cannot tell; a listing names the bucket).
                Err(e @ belay_store::Error::NotARepository(_)) => {
                    use belay_store::storage::Storage;
                    s.list_dir("").map_err(|e| anyhow!("{e}"))?;
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        None => Repo::open(path)?,
    })
}

/// `-v`: the requests each object storage was sent, on stderr.
pub(crate) fn report_requests(ctx: &Ctx) {
    if ctx.verbose == 0 || ctx.quiet {
        return;
    }
    for (url, s) in OPENED.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let r = s.requests();
        const MIB: f64 = 1048576.0;
        eprintln!(
            "requests: {} GET, {} PUT, {} HEAD, {} LIST, {} DELETE; {:.1} MiB sent, {:.1} MiB received ({url})",
            r.get,
            r.put,
            r.head,
            r.list,
            r.delete,
            r.bytes_sent as f64 / MIB,
            r.bytes_received as f64 / MIB
        );
    }
}

/// Create a repository where the user named ([`open`]'s locations).
pub(crate) fn init_repository(
    path: &Path,
    chunker: belay_store::chunker::ChunkerParams,
    level: i32,
    format: u64,
) -> Result<Repo> {
    Ok(match object_storage(path)? {
        Some(s) => {
            let location = PathBuf::from(s.location().url());
            Repo::init_storage(s, location, chunker, level, format)?
        }
        None => Repo::init_format(path, chunker, level, format)?,
    })
}

pub(crate) fn init(ctx: &Ctx, path: &Path, format: u64) -> Result<()> {
    let repo = init_repository(
        path,
        belay_store::chunker::ChunkerParams::default(),
        belay_store::repo::DEFAULT_ZSTD_LEVEL,
        format,
    )?;
    if ctx.json {
        print_json(
            &json!({"repository": path, "id": repo.config().id, "version": repo.config().version}),
        )?;
    } else {
        ctx.info(format!(
            "created belay repository {} at {}",
            &repo.config().id[..12],
            path.display()
        ));
    }
    Ok(())
}

pub(crate) use belay_core::who::{hostname, username};
