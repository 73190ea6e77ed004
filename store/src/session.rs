//! Running operations and gc safety (docs/format.md §10).
//!
//! - `sessions/<host>-<pid>-<random>.json`: one per running backup, created
//!   before the backup reads its parent, removed after its ref moved. A
//!   heartbeat refreshes its mtime every minute.
//! - `locks/gc.json`: at most one gc at a time.
//! - `gc/generation`: bumped by every gc; `gc/deleting` exists while a gc
//!   deletes objects.
//!
//! A session or lock is stale when its process is gone: on the same host,
//! its pid no longer runs; from another host, its heartbeat (mtime) is
//! older than [`STALE_AFTER`] by the share's clock.
//!
//! The test hook [`pause_point`] lets tests stop a process at a named
//! point: with `BELAY_TEST_PAUSE_AT=<name>[,<name>…]` and
//! `BELAY_TEST_PAUSE_DIR=<dir>`, reaching `<name>` creates
//! `<dir>/<name>.reached` and waits until `<dir>/<name>.go` exists.

use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::atomic::TEMP_PREFIX;
use crate::error::{Error, IoContext, Result};
use crate::id::ObjectId;
use crate::repo::Repo;
use crate::storage::Storage;
use crate::tree::Node;

/// A session or lock from another host whose heartbeat is older than this
/// (by the share's clock) is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);
const HEARTBEAT: Duration = Duration::from_secs(60);

/// The content of a session or lock file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Owner {
    /// `backup` or `gc`.
    pub kind: String,
    pub host: String,
    pub pid: u32,
    /// Host clock when it started, RFC 3339.
    pub started: String,
    /// What it works on (a backup's source name).
    #[serde(default)]
    pub source: String,
}

impl Owner {
    fn new(kind: &str, source: &str) -> Owner {
        Owner {
            kind: kind.into(),
            host: hostname(),
            pid: std::process::id(),
            started: jiff::Timestamp::now().to_string(),
            source: source.into(),
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {} (pid {}", self.kind, self.host, self.pid)?;
        if !self.started.is_empty() {
            write!(f, ", since {}", self.started)?;
        }
        f.write_str(")")?;
        if !self.source.is_empty() {
            write!(f, " of {}", self.source)?;
        }
        Ok(())
    }
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // (or truncates) within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc == 0 {
        let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let s = String::from_utf8_lossy(&buf[..n]).trim().to_string();
        if !s.is_empty() {
            return s;
        }
    }
    "unknown".into()
}

fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks for the process's existence.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Session and lock files this process holds, so that a signal can remove
/// them before the process ends (see [`remove_own_files`]).
type OwnFile = (Arc<dyn Storage>, String);
static OWN_FILES: std::sync::Mutex<Vec<OwnFile>> = std::sync::Mutex::new(Vec::new());

/// Remove every session and lock file this process holds: for a process
/// ending on a signal (Ctrl-C, SIGTERM, SIGHUP), which runs no destructor.
/// Nothing was committed after this, so leaving is as safe as a crash,
/// minus the stale files.
pub fn remove_own_files() {
    let files = std::mem::take(&mut *OWN_FILES.lock().unwrap_or_else(|e| e.into_inner()));
    for (storage, key) in files {
        let _ = storage.delete(&key);
    }
}

/// The share's clock: the mtime of a file written now under `dir` (a key).
pub fn share_now(repo: &Repo, dir: &str) -> Result<SystemTime> {
    repo.storage()
        .now(dir)
        .map_err(|e| Error::io(repo.storage().locate(dir), e))
}

/// How long ago (by the share's clock `now`) `key` was last modified.
pub fn age(repo: &Repo, key: &str, now: SystemTime) -> Option<Duration> {
    let m = repo.storage().stat(key).ok()??.mtime?;
    Some(now.duration_since(m).unwrap_or(Duration::ZERO))
}

/// Is the owner of `key` (a session or lock file) gone?
pub fn is_stale(repo: &Repo, key: &str, owner: Option<&Owner>, now: SystemTime) -> bool {
    match owner {
        Some(o) if o.host == hostname() || o.host == sanitize(&hostname()) => !pid_alive(o.pid),
        _ => age(repo, key, now).is_some_and(|a| a > STALE_AFTER),
    }
}

/// A session file's name is `<host>-<pid>-<random>.json` (the host with
/// characters other than ASCII letters, digits and `-` replaced by `_`).
fn owner_from_name(name: &str) -> Option<Owner> {
    let stem = name.strip_suffix(".json")?;
    let mut parts = stem.rsplitn(3, '-');
    let _random = parts.next()?;
    let pid: u32 = parts.next()?.parse().ok()?;
    let host = parts.next()?.to_string();
    Some(Owner {
        kind: "backup".into(),
        host,
        pid,
        started: String::new(),
        source: String::new(),
    })
}

fn read_owner(repo: &Repo, key: &str) -> Option<Owner> {
    serde_json::from_slice(&repo.storage().read(key, crate::repo::MAX_SMALL_FILE).ok()?).ok()
}

/// A session or lock file in the repository.
#[derive(Clone, Debug)]
pub struct Active {
    /// Its key (`sessions/…`, `locks/gc.json`).
    pub key: String,
    /// Where it is, for messages.
    pub path: PathBuf,
    pub owner: Option<Owner>,
    pub stale: bool,
}

/// Every session file, each with whether it is stale.
pub fn list_sessions(repo: &Repo, now: SystemTime) -> Result<Vec<Active>> {
    let mut out = Vec::new();
    for name in repo.list_dir("sessions")? {
        if name.starts_with(TEMP_PREFIX) || !name.ends_with(".json") {
            continue;
        }
        let key = format!("sessions/{name}");
        let owner = read_owner(repo, &key).or_else(|| owner_from_name(&name));
        // A file that vanished meanwhile (its backup finished) is skipped.
        if !repo.exists(&key) {
            continue;
        }
        let stale = is_stale(repo, &key, owner.as_ref(), now);
        let path = repo.storage().locate(&key);
        out.push(Active {
            key,
            path,
            owner,
            stale,
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// The gc generation (`gc/generation`); 0 when the file is missing.
pub fn generation(repo: &Repo) -> Result<u64> {
    let path = repo.storage().locate(GENERATION);
    match repo.read_small_text(GENERATION) {
        Ok(t) => t.trim().parse().map_err(|_| Error::BadRef {
            path,
            reason: "gc generation is not a number".into(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Write the gc generation. On a full disk (gc must run exactly then) an
/// existing file is overwritten in place, which needs no new block.
pub(crate) fn write_generation(repo: &Repo, generation: u64, on_full: &dyn Fn()) -> Result<()> {
    let storage = repo.storage();
    let path = storage.locate(GENERATION);
    let text = format!("{generation}\n");
    let first = storage.put_replace(GENERATION, text.as_bytes());
    let result = match first {
        Err(e) if e.kind() == io::ErrorKind::StorageFull => {
            // Free the blocks of our own lock files, then try again.
            on_full();
            storage.put_replace(GENERATION, text.as_bytes())
        }
        r => r,
    };
    match result {
        // Only a local filesystem fills up; overwriting in place needs no
        // new block.
        Err(e)
            if e.kind() == io::ErrorKind::StorageFull
                && storage.local_root().is_some()
                && path.exists() =>
        {
            use std::io::Write;
            let mut f = File::options().write(true).open(&path).at(&path)?;
            f.write_all(text.as_bytes()).at(&path)?;
            f.set_len(text.len() as u64).at(&path)?;
            f.sync_all().at(&path)
        }
        Err(e) if e.kind() == io::ErrorKind::StorageFull => Err(Error::io(
            &path,
            io::Error::new(
                e.kind(),
                "the disk is full: free a few kilobytes (e.g. abandoned .tmp- files) and run gc again",
            ),
        )),
        r => r.at(&path),
    }
}

const GENERATION: &str = "gc/generation";
pub(crate) const DELETING: &str = "gc/deleting";
const GC_LOCK: &str = "locks/gc.json";

/// A file that exists while its owner runs, refreshed by a heartbeat
/// thread, removed on drop.
struct Heartbeat {
    storage: Arc<dyn Storage>,
    key: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Heartbeat {
    /// Create `path` holding `owner` as JSON, or empty (`owner` None: a
    /// session's name says who owns it). An empty file needs no data block,
    /// so a backup still starts on a full disk; a lock falls back to empty
    /// there too (gc must run exactly then), and readers judge an empty lock
    /// by its heartbeat alone.
    fn create(
        repo: &Repo,
        key: String,
        owner: Option<&Owner>,
    ) -> Result<std::result::Result<Heartbeat, ()>> {
        let text = match owner {
            Some(o) => {
                let mut t = serde_json::to_vec_pretty(o).expect("owner serializes");
                t.push(b'\n');
                t
            }
            None => Vec::new(),
        };
        let storage = repo.storage().clone();
        let path = storage.locate(&key);
        let published = match storage.put_new(&key, &text, true) {
            Err(e) if e.kind() == io::ErrorKind::StorageFull && !text.is_empty() => {
                storage.put_new(&key, b"", true)
            }
            r => r,
        };
        match published.at(&path)? {
            crate::atomic::Published::Created => {}
            crate::atomic::Published::AlreadyExisted => return Ok(Err(())),
        }
        storage.sync_entry(&key).at(&path)?;
        OWN_FILES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((storage.clone(), key.clone()));
        let (tx, rx) = mpsc::channel::<()>();
        let (s, k) = (storage.clone(), key.clone());
        let thread = thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(HEARTBEAT) {
                let _ = s.touch(&k);
            }
        });
        Ok(Ok(Heartbeat {
            storage,
            key,
            stop: Some(tx),
            thread: Some(thread),
        }))
    }
}

impl Heartbeat {
    /// Empty the file, freeing its data block (on a full disk, for gc's
    /// own bookkeeping).
    fn shed(&self) {
        if let Some(root) = self.storage.local_root()
            && let Ok(f) = File::options().write(true).open(root.join(&self.key))
        {
            let _ = f.set_len(0);
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        OWN_FILES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(_, k)| k != &self.key);
        if self.storage.delete(&self.key).is_ok() {
            let _ = self.storage.sync_entry(&self.key);
        }
    }
}

/// A running backup's session (see the module docs and docs/format.md §10).
pub struct Session {
    _file: Heartbeat,
    generation: u64,
    deleting_at_start: bool,
    /// The generation [`Session::before_commit`] checked against.
    checked_generation: std::sync::atomic::AtomicU64,
}

impl Session {
    /// Announce a backup. Must be called before the backup reads its parent
    /// or checks whether any object exists.
    pub fn begin(repo: &Repo, source: &str) -> Result<Session> {
        let owner = Owner::new("backup", source);
        let file = loop {
            let mut r = [0u8; 6];
            fill_random(&mut r);
            let name = format!(
                "{}-{}-{}.json",
                sanitize(&owner.host),
                owner.pid,
                hex::encode(r)
            );
            if let Ok(h) = Heartbeat::create(repo, format!("sessions/{name}"), None)? {
                break h;
            }
        };
        // Read after the session is visible (the order gc relies on).
        let generation = generation(repo)?;
        let deleting_at_start = repo.exists(DELETING);
        Ok(Session {
            _file: file,
            generation,
            deleting_at_start,
            checked_generation: std::sync::atomic::AtomicU64::new(generation),
        })
    }

    /// Call after every object of the new snapshot is written and before the
    /// snapshot object: waits for a gc that is deleting, and when a gc ran
    /// during this backup, checks that every object the snapshot references
    /// still exists. A missing one fails the backup (nothing is committed);
    /// running it again stores what is missing.
    ///
    /// `known_generation` is the generation the caller's other knowledge
    /// (the local cache, opened before this session) is valid for.
    pub fn before_commit(
        &self,
        repo: &Repo,
        root: &ObjectId,
        known_generation: Option<u64>,
    ) -> Result<()> {
        let waited = wait_while_deleting(repo)?;
        let now_gen = generation(repo)?;
        self.checked_generation
            .store(now_gen, std::sync::atomic::Ordering::SeqCst);
        let stale_knowledge = known_generation.is_some_and(|g| g != self.generation);
        if !(waited || self.deleting_at_start || now_gen != self.generation || stale_knowledge) {
            return Ok(());
        }
        let missing = missing_objects(repo, root)?;
        if let Some(first) = missing.first() {
            return Err(Error::Unsafe(format!(
                "a gc that ran during this backup removed {} object(s) it reuses (e.g. {}); nothing was committed: run the backup again",
                missing.len(),
                repo.object_path(first).display()
            )));
        }
        Ok(())
    }

    /// Call after the snapshot's marker is written and before its head
    /// moves: a gc that started deleting between [`Session::before_commit`]
    /// and the marker may not have seen the marker. If one did (the
    /// generation moved), wait for it and check again; if it removed
    /// something the snapshot needs, withdraw the marker and fail.
    pub fn after_commit(&self, repo: &Repo, root: &ObjectId, snapshot: &ObjectId) -> Result<()> {
        let waited = wait_while_deleting(repo)?;
        let now_gen = generation(repo)?;
        let checked = self
            .checked_generation
            .load(std::sync::atomic::Ordering::SeqCst);
        if !waited && now_gen == checked {
            return Ok(());
        }
        let missing = missing_objects(repo, root)?;
        if let Some(first) = missing.first() {
            repo.remove_marker(snapshot)?;
            return Err(Error::Unsafe(format!(
                "a gc that ran while this backup committed removed {} object(s) it reuses (e.g. {}); the snapshot was withdrawn: run the backup again",
                missing.len(),
                repo.object_path(first).display()
            )));
        }
        Ok(())
    }
}

/// Objects below `root` (itself included) that do not exist.
fn missing_objects(repo: &Repo, root: &ObjectId) -> Result<Vec<ObjectId>> {
    // Packs seen before the gc ran may be gone now.
    if let Some(p) = repo.packed() {
        p.forget_presence();
    }
    let mut missing = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![*root];
    while let Some(t) = stack.pop() {
        if !seen.insert(t) {
            continue;
        }
        if !repo.has_object(&t) {
            missing.push(t);
            continue;
        }
        for e in repo.read_tree(&t)?.entries {
            match e.node {
                Node::Dir { tree } => stack.push(tree),
                Node::File { chunks, .. } => {
                    for c in chunks {
                        if seen.insert(c) && !repo.has_object(&c) {
                            missing.push(c);
                        }
                    }
                }
                Node::Symlink { .. } => {}
            }
        }
    }
    Ok(missing)
}

/// Wait while a gc is deleting objects (`gc/deleting` exists and its owner
/// is alive). Returns whether it waited.
fn wait_while_deleting(repo: &Repo) -> Result<bool> {
    let mut waited = false;
    let mut polls = 0u32;
    loop {
        if !repo.exists(DELETING) {
            return Ok(waited);
        }
        // Whether its gc died: checked at once, then every 2 s (reading the
        // share's clock writes a file there).
        if polls.is_multiple_of(40) {
            let owner = read_owner(repo, DELETING);
            let now = share_now(repo, "gc")?;
            if is_stale(repo, DELETING, owner.as_ref(), now) {
                return Ok(true);
            }
        }
        polls += 1;
        waited = true;
        thread::sleep(Duration::from_millis(50));
    }
}

/// The gc lock, `locks/gc.json`.
pub struct GcLock {
    file: Heartbeat,
}

impl GcLock {
    /// Take the lock; a stale one (its gc died) is taken over.
    pub fn acquire(repo: &Repo) -> Result<GcLock> {
        let path = repo.storage().locate(GC_LOCK);
        let owner = Owner::new("gc", "");
        for _ in 0..3 {
            if let Ok(h) = Heartbeat::create(repo, GC_LOCK.into(), Some(&owner))? {
                return Ok(GcLock { file: h });
            }
            let other = read_owner(repo, GC_LOCK);
            let now = share_now(repo, "locks")?;
            if is_stale(repo, GC_LOCK, other.as_ref(), now) {
                let _ = repo.storage().delete(GC_LOCK);
                continue;
            }
            let who = other
                .map(|o| o.to_string())
                .unwrap_or_else(|| "an unknown process".into());
            return Err(Error::Unsafe(format!(
                "another gc is running ({who}; lock {}): wait for it to finish, or if it is not running, `belay unlock --remove-all`",
                path.display()
            )));
        }
        Err(Error::Unsafe(format!(
            "could not take the gc lock {}",
            path.display()
        )))
    }

    /// Give the lock's data block back (full disk; see [`Heartbeat::shed`]).
    pub fn shed(&self) {
        self.file.shed();
    }
}

/// What [`unlock`] did.
#[derive(Debug, Default)]
pub struct Unlocked {
    /// Lock and session files removed.
    pub removed: Vec<Active>,
    /// Files of processes that still run, left in place.
    pub kept: Vec<Active>,
}

/// `belay unlock`: remove the gc lock, the deletion mark and session files
/// whose process is gone (restic's `unlock`); with `remove_all`, also
/// those naming a process that still seems to run (the user knows better:
/// a lock from a machine that was switched off, an unsynchronised clock).
pub fn unlock(repo: &Repo, remove_all: bool) -> Result<Unlocked> {
    let mut found = Vec::new();
    for key in [GC_LOCK, DELETING] {
        if repo.exists(key) {
            let dir = key.rsplit_once('/').expect("lock has a directory").0;
            let now = share_now(repo, dir)?;
            let owner = read_owner(repo, key);
            let stale = is_stale(repo, key, owner.as_ref(), now);
            found.push(Active {
                key: key.into(),
                path: repo.storage().locate(key),
                owner,
                stale,
            });
        }
    }
    let sessions = repo.list_dir("sessions")?;
    if !sessions.is_empty() {
        found.extend(list_sessions(repo, share_now(repo, "sessions")?)?);
    }
    let mut out = Unlocked::default();
    for a in found {
        if a.stale || remove_all {
            match repo.storage().delete(&a.key) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return Err(Error::io(&a.path, e)),
            }
            repo.storage().sync_entry(&a.key).at(&a.path)?;
            out.removed.push(a);
        } else {
            out.kept.push(a);
        }
    }
    Ok(out)
}

/// `gc/deleting` while a gc deletes objects.
pub(crate) struct DeletingMark {
    file: Heartbeat,
}

impl DeletingMark {
    pub(crate) fn create(repo: &Repo) -> Result<DeletingMark> {
        // We hold the gc lock, so an existing file is a dead gc's.
        let _ = repo.storage().delete(DELETING);
        match Heartbeat::create(repo, DELETING.into(), Some(&Owner::new("gc", "")))? {
            Ok(h) => Ok(DeletingMark { file: h }),
            Err(()) => Err(Error::Unsafe(format!(
                "{} appeared while holding the gc lock",
                repo.storage().locate(DELETING).display()
            ))),
        }
    }

    pub(crate) fn shed(&self) {
        self.file.shed();
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

fn fill_random(buf: &mut [u8]) {
    use std::io::Read;
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_err()
    {
        let seed = format!("{:?}{}", SystemTime::now(), std::process::id());
        let h = blake3::hash(seed.as_bytes());
        for (b, x) in buf.iter_mut().zip(h.as_bytes()) {
            *b = *x;
        }
    }
}

/// Test hook: see the module docs. Does nothing unless
/// `BELAY_TEST_PAUSE_AT` names `point`.
pub fn pause_point(point: &str) {
    let Ok(points) = std::env::var("BELAY_TEST_PAUSE_AT") else {
        return;
    };
    if !points.split(',').any(|p| p == point) {
        return;
    }
    let Some(dir) = std::env::var_os("BELAY_TEST_PAUSE_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let _ = fs::write(dir.join(format!("{point}.reached")), b"");
    let go = dir.join(format!("{point}.go"));
    while !go.exists() {
        thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_moves_mtime_to_now() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(&dir.path().join("r")).unwrap();
        let (storage, key) = (repo.storage(), "sessions/s.json");
        storage.put_new(key, b"", true).unwrap();
        let old = SystemTime::now() - Duration::from_secs(7200);
        assert!(storage.set_mtime(key, old).unwrap());
        let now = share_now(&repo, "sessions").unwrap();
        assert!(age(&repo, key, now).unwrap() > Duration::from_secs(7000));
        storage.touch(key).unwrap();
        assert!(age(&repo, key, now).unwrap() < Duration::from_secs(60));
    }

    #[test]
    fn owner_from_a_session_name() {
        let o = owner_from_name("lab-pc_local-4242-0123456789ab.json").unwrap();
        assert_eq!(o.host, "lab-pc_local");
        assert_eq!(o.pid, 4242);
        assert!(owner_from_name("garbage.json").is_none());
        assert!(owner_from_name("a-b-c").is_none());
        // This host, a pid that does not run: stale; our own pid: live.
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(&dir.path().join("r")).unwrap();
        let p = "sessions/x.json";
        repo.storage().put_new(p, b"", true).unwrap();
        let now = SystemTime::now();
        let me = Owner::new("backup", "");
        assert!(!is_stale(&repo, p, Some(&me), now));
        let dead = Owner {
            pid: i32::MAX as u32 - 1,
            ..me.clone()
        };
        assert!(is_stale(&repo, p, Some(&dead), now));
        // Another host: judged by the age of the heartbeat.
        let other = Owner {
            host: "elsewhere".into(),
            ..me
        };
        assert!(!is_stale(&repo, p, Some(&other), now));
        assert!(is_stale(&repo, p, Some(&other), now + STALE_AFTER * 2));
    }
}
