//! Boards end to end: connect one session per operation, name the board
//! from its identity, back it up, and (in [`restore`]) restore a snapshot
//! to it with a safety snapshot first, so a restore never loses what the
//! board held.

mod restore;

pub use restore::{
    BoardChanges, BoardRestore, BoardRestoreOptions, BoardRestorePlan, BoardRestored, restore_board,
};

use std::sync::Mutex;
use std::time::Instant;

use belay_store::backup::{self, BackupOptions as StoreBackupOptions, KnownFiles};
use belay_store::cache::Cache;
use belay_store::repo::RefKind;
use belay_store::source::Source;
use belay_store::{ObjectId, Repo};
use belay_transport::devices;
use belay_transport::serial::{
    BoardSource, ConnectOptions, PullOptions, Session, board as sboard, port,
};
use serde::Serialize;

use crate::backup::{BackupFrom, BackupResult};
use crate::error::{Error, Result, ResultExt};
use crate::progress::Progress;
use crate::who::Who;

/// The device key under which a board's `machine.unique_id()` is recorded.
pub const UNIQUE_ID: &str = "unique_id";

/// Source names given to boards by their unique id (a config file's
/// `[boards.NAME] unique_id = …`): (unique id, name).
#[derive(Clone, Debug, Default)]
pub struct BoardNames(pub Vec<(String, String)>);

impl BoardNames {
    /// The name given to the board with this unique id (ids compare
    /// without regard to case).
    pub fn for_unique_id(&self, uid: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(uid))
            .map(|(_, n)| n.as_str())
    }
}

/// One session with the board on a port, for one operation.
pub struct Board {
    session: Mutex<Session>,
    port: String,
    label: String,
}

impl Board {
    /// Connect to the board on `port` (raw REPL, the agent uploaded),
    /// reporting what it lacks.
    pub fn connect(port: &str, baud: u32, p: &dyn Progress) -> Result<Board> {
        let board = Board::open(port, baud, p)?;
        let s = board.lock();
        for w in s.info.capability_warnings() {
            p.warn(&format!("{}: {w}", s.label()));
        }
        let missing = s.info.missing();
        if !missing.is_empty() {
            p.detail(&format!(
                "{}: the firmware lacks {}",
                s.label(),
                missing.join(", ")
            ));
        }
        p.detail(&format!(
            "{}: {} ({}), agent in {} mode, uploaded with {}",
            s.label(),
            s.info.firmware(),
            s.info.get("machine"),
            if s.text_mode() { "base64" } else { "binary" },
            if s.used_raw_paste {
                "raw-paste"
            } else {
                "the classic raw REPL"
            }
        ));
        drop(s);
        Ok(board)
    }

    /// Connect to the board on `port`, saying nothing about what it lacks
    /// (for a caller that reports it in its own words).
    pub fn open(port: &str, baud: u32, p: &dyn Progress) -> Result<Board> {
        p.note(&format!("connecting to the board on {port}…"));
        let s = Session::connect(port, baud, &ConnectOptions::default())?;
        Ok(Board {
            label: s.label().to_string(),
            port: port.to_string(),
            session: Mutex::new(s),
        })
    }

    /// Whether the board can hash its files (else every file of a size
    /// in question is pulled).
    pub fn has_hashlib(&self) -> bool {
        self.lock().info.has_hashlib()
    }

    /// How the board is named in messages (port, unique id).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `serial:PORT`, as the user gives it back to belay.
    pub fn location(&self) -> String {
        format!("serial:{}", self.port)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The board's `machine.unique_id()`, if it has one.
    pub fn unique_id(&self) -> Option<String> {
        self.lock().info.unique_id().map(str::to_string)
    }

    /// Pull options: compress on the board where it can (unless told
    /// not to), hash there when asked.
    fn pull(&self, deflate: Option<bool>, hash: bool) -> PullOptions {
        PullOptions {
            deflate: deflate.unwrap_or(true) && self.lock().info.can_deflate(),
            hash,
        }
    }

    /// The board as a source of files.
    pub fn source(&self, deflate: Option<bool>, hash: bool) -> BoardSource<'_> {
        BoardSource::new(&self.session, self.pull(deflate, hash))
    }

    /// Bytes on the line so far, both ways.
    pub fn wire_bytes(&self) -> u64 {
        self.lock().wire_bytes()
    }

    /// Payload bytes carried so far (file contents, either way).
    pub fn payload_bytes(&self) -> u64 {
        self.lock().payload_bytes
    }

    /// Report the warnings the session gathered (and forget them).
    pub fn drain_warnings(&self, p: &dyn Progress) {
        for w in std::mem::take(&mut self.lock().warnings) {
            p.warn(&w);
        }
    }

    /// Leave the board in its friendly REPL; a failure is a warning (the
    /// operation is done).
    pub fn close(self, p: &dyn Progress) {
        let s = self.session.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = s.close() {
            p.warn(&format!("{e}"));
        }
    }
}

/// Run `f` with the board on `port` as a source (hashing on the board
/// where it can), then leave the board in its friendly REPL.
pub fn with_source<R, E: From<Error>>(
    port: &str,
    baud: u32,
    p: &dyn Progress,
    f: impl FnOnce(&dyn Source) -> std::result::Result<R, E>,
) -> std::result::Result<R, E> {
    port::catch_interrupts();
    let board = Board::connect(port, baud, p)?;
    let r = f(&board.source(None, true));
    if r.is_ok() {
        board.close(p);
    }
    r
}

/// The local cache, or none (with a warning) if it cannot be opened: it
/// only saves transfers.
fn open_cache(repo: &Repo, p: &dyn Progress) -> Option<Cache> {
    if std::env::var_os("BELAY_NO_CACHE").is_some() {
        return None;
    }
    match Cache::open(repo) {
        Ok(c) => {
            if let Err(e) = c.index_heads(repo) {
                p.warn(&format!("could not fill the local cache: {e}"));
            }
            Some(c)
        }
        Err(e) => {
            p.warn(&format!("{e}; continuing without it"));
            None
        }
    }
}

/// The newest snapshot of the board with this unique id, among the heads:
/// (source name, snapshot id).
pub fn latest_for_unique_id(repo: &Repo, uid: &str) -> Result<Option<(String, ObjectId)>> {
    let mut best: Option<(i64, String, ObjectId)> = None;
    for (name, id) in repo.list_refs(RefKind::Head)? {
        let Ok(s) = repo.read_snapshot(&id) else {
            continue;
        };
        if s.device_value(UNIQUE_ID) == Some(uid) && best.as_ref().is_none_or(|b| s.time_ns > b.0) {
            best = Some((s.time_ns, name, id));
        }
    }
    Ok(best.map(|b| (b.1, b.2)))
}

/// The source name for a board. Without `explicit`: the name `names`
/// gives its unique id, else the name of the board's newest snapshot (so a
/// name given once sticks), else its unique id. With a new name: the
/// board's history continues under it (its ref starts at the board's
/// newest snapshot).
pub fn board_name(
    repo: &Repo,
    board: &Board,
    explicit: Option<&str>,
    names: &BoardNames,
    p: &dyn Progress,
) -> Result<String> {
    let uid = board.unique_id();
    if let Some(n) = explicit {
        belay_store::repo::validate_ref_name(n)?;
        if let Some(uid) = &uid
            && repo.read_ref(RefKind::Head, n)?.is_none()
            && let Some((old, head)) = latest_for_unique_id(repo, uid)?
        {
            repo.write_ref(RefKind::Head, n, &head)?;
            p.note(&format!(
                "{}: its history continues as {n} (it was {old})",
                board.label()
            ));
        }
        return Ok(n.to_string());
    }
    if let Some(n) = uid.as_deref().and_then(|u| names.for_unique_id(u)) {
        return Ok(n.to_string());
    }
    match &uid {
        Some(uid) => Ok(latest_for_unique_id(repo, uid)?
            .map(|(n, _)| n)
            .unwrap_or_else(|| uid.clone())),
        None => {
            let n = belay_store::repo::sanitize_ref_name(&sboard::default_name(&board.lock()));
            p.warn(&format!(
                "{}: the board has no machine.unique_id(); naming it {n} after its port (use --name to choose)",
                board.label()
            ));
            Ok(n)
        }
    }
}

/// What a board backup is asked to do.
#[derive(Clone, Debug, Default)]
pub struct BoardBackupOptions {
    pub port: String,
    pub baud: u32,
    /// The source name; by default from the board's identity.
    pub name: Option<String>,
    pub names: BoardNames,
    pub message: String,
    pub excludes: Vec<String>,
    /// Save a snapshot even when nothing changed.
    pub allow_empty: bool,
    /// Compress on the board: `None` where it can.
    pub deflate: Option<bool>,
    /// Let the board hash its files, so known files are not pulled.
    pub hash: bool,
    pub who: Who,
}

/// What the line carried during a board backup.
#[derive(Clone, Debug, Serialize)]
pub struct BoardLine {
    /// How the board is named in messages (port, unique id).
    pub board: String,
    pub files_known: u64,
    pub bytes_transferred: u64,
    pub files_hashed: u64,
    pub bytes_hashed: u64,
    pub wire_bytes: u64,
    pub deflate: bool,
}

/// Back up the board on `opts.port` (one session) and return what
/// happened. An unchanged board adds no snapshot unless `allow_empty`.
pub fn backup_board(
    repo: &Repo,
    opts: &BoardBackupOptions,
    p: &dyn Progress,
) -> Result<BackupResult> {
    let started = Instant::now();
    let cache = open_cache(repo, p);
    // Ctrl-C ends the session cleanly (no snapshot, board left in its REPL).
    port::catch_interrupts();
    let board = Board::connect(&opts.port, opts.baud, p)?;
    let name = board_name(repo, &board, opts.name.as_deref(), &opts.names, p)?;
    // Hashing on the board pays only when the repository may already hold
    // some of the files: not for a board's first backup into a repository
    // that holds no files at all (the pull checks every file by the
    // board's hash anyway).
    let knows_nothing = repo.read_ref(RefKind::Head, &name)?.is_none()
        && cache
            .as_ref()
            .is_some_and(|c| c.is_empty().unwrap_or(false));
    let pull = board.pull(opts.deflate, opts.hash && !knows_nothing);
    let deflate_used = pull.deflate;
    let label = board.label().to_string();
    let sopts = StoreBackupOptions {
        skip_if_unchanged: !opts.allow_empty,
        ..opts.who.snapshot(&name, opts.message.clone(), Vec::new())
    };
    p.note(&format!(
        "{label}: listing{} its files…",
        if pull.hash { " and hashing" } else { "" }
    ));
    let bar = p.bar("backup", true);
    board.lock().set_hash_progress(bar.hash_reporter());
    let result = BoardSource::new(&board.session, pull)
        .with_excludes(&opts.excludes)
        .map_err(Error::from)
        .and_then(|source| {
            Ok(backup::backup_with(
                repo,
                &source,
                &sopts,
                cache.as_ref().map(|c| c as &dyn KnownFiles),
                &*bar,
            )?)
        });
    bar.finish();
    drop(bar);
    let transferred = board.payload_bytes();
    let report = result.with_context(|| "no snapshot was written".into())?;
    // Leave the board in its friendly REPL; a failure here does not undo
    // the snapshot.
    let wire_total = board.wire_bytes();
    let (files_hashed, bytes_hashed) = {
        let s = board.lock();
        (s.hashed_files, s.hashed_bytes)
    };
    board.drain_warnings(p);
    board.close(p);
    for w in &report.warnings {
        p.detail(&format!("warning: {w}"));
    }
    if report.committed
        && let Some(c) = &cache
        && let Err(e) = c.index_snapshot(repo, &report.snapshot)
    {
        p.warn(&format!("{e}"));
    }
    let from = BackupFrom::Board(BoardLine {
        board: label,
        files_known: report.files_known,
        bytes_transferred: transferred,
        files_hashed,
        bytes_hashed,
        wire_bytes: wire_total,
        deflate: deflate_used,
    });
    Ok(BackupResult::new(
        report,
        name,
        started.elapsed().as_secs_f64(),
        from,
    ))
}

/// A serial port present; `devices --json` prints the list.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceInfo {
    pub port: String,
    /// "usb", "pci", "bluetooth" or "unknown".
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// USB vendor and product ids, 4 hex digits each.
    pub vid: Option<String>,
    pub pid: Option<String>,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    /// What the USB ids suggest, e.g. "Raspberry Pi RP2040 (Pico)".
    pub board: Option<String>,
    /// The ids belong to a MicroPython board (native USB).
    pub micropython: bool,
    /// A USB-serial bridge (small input buffer).
    pub uart_bridge: bool,
}

/// The serial ports present, and which look like MicroPython boards.
pub fn devices() -> Result<Vec<DeviceInfo>> {
    let devs = devices::list().with_context(|| "cannot list serial ports".into())?;
    Ok(devs
        .into_iter()
        .map(|d| DeviceInfo {
            port: d.port,
            kind: d.kind,
            vid: d.vid.map(|v| format!("{v:04x}")),
            pid: d.pid.map(|v| format!("{v:04x}")),
            serial_number: d.serial_number,
            manufacturer: d.manufacturer,
            product: d.product,
            board: d.board,
            micropython: d.micropython_likely,
            uart_bridge: d.uart_bridge,
        })
        .collect())
}
