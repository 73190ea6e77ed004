//! A board as the store's [`Source`] (backup) and [`Sink`] (restore). Both
//! share one [`Session`] behind a mutex: a board is one serial line, so
//! reads and writes are sequential.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::sync::Mutex;

use belay_source::Sha256 as Sha;
use belay_source::{EntryMeta, ExistingEntry, Sink, Source, SourceEntry, SourceKind};
use sha2::{Digest, Sha256};

use super::error::BoardError;
use super::session::{BoardEntry, Piece, Session, WriteError, display};
use crate::ignore_rules::{IgnoreRules, is_ignore_file};

/// Board path (absolute) of a store path (relative).
fn abs(rel: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(rel.len() + 1);
    p.push(b'/');
    p.extend_from_slice(rel);
    p
}

fn rel(abs: &[u8]) -> &[u8] {
    abs.strip_prefix(b"/").unwrap_or(abs)
}

/// How a pull behaves.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Compress on the board (only used when the board can).
    pub deflate: bool,
    /// Let the board hash files (skip unchanged and known files). Off:
    /// every file is pulled.
    pub hash: bool,
}

pub struct BoardSource<'a> {
    session: &'a Mutex<Session>,
    opts: PullOptions,
    /// `--exclude` globs; the board's `.belayignore` files are added to
    /// these at each walk.
    excludes: IgnoreRules,
    /// Paths backed up whatever the rules say (what a restore is about to
    /// overwrite, for its safety snapshot).
    forced: HashSet<Vec<u8>>,
    /// Hashes the board reported, checked again when a file is pulled.
    hashes: Mutex<HashMap<Vec<u8>, Sha>>,
}

impl<'a> BoardSource<'a> {
    pub fn new(session: &'a Mutex<Session>, opts: PullOptions) -> Self {
        BoardSource {
            session,
            opts,
            excludes: IgnoreRules::default(),
            forced: HashSet::new(),
            hashes: Mutex::new(HashMap::new()),
        }
    }

    /// Leave out paths matching these gitignore-style globs (`--exclude`).
    pub fn with_excludes(mut self, globs: &[String]) -> io::Result<Self> {
        self.excludes = IgnoreRules::new(globs)?;
        Ok(self)
    }

    /// Always back these (relative) paths up, even where `.belayignore` or
    /// `--exclude` would leave them out.
    pub fn with_forced(mut self, paths: impl IntoIterator<Item = Vec<u8>>) -> Self {
        self.forced.extend(paths);
        self
    }

    /// The rules a backup applies: the `--exclude` globs and the board's
    /// `.belayignore` files (read from the board, top-down; warnings for
    /// bad lines go to `warn`).
    pub fn rules(&self, warn: &mut dyn FnMut(String)) -> io::Result<IgnoreRules> {
        let mut rules = self.excludes.clone();
        let mut files: Vec<Vec<u8>> = {
            let mut s = self.session.lock().unwrap();
            s.walk()?
                .into_iter()
                .filter(|e| e.kind == 1 && is_ignore_file(&e.path))
                .map(|e| rel(&e.path).to_vec())
                .collect()
        };
        files.sort_by_key(|p| p.iter().filter(|&&b| b == b'/').count());
        for f in files {
            if rules.is_ignored(&f, false) {
                continue;
            }
            let mut content = Vec::new();
            self.open(&f)?.read_to_end(&mut content)?;
            for w in rules.add_file(&f, &content) {
                warn(w);
            }
        }
        Ok(rules)
    }
}

/// What to record about a board in its snapshots.
pub fn device_info(s: &Session) -> Vec<(String, String)> {
    let i = &s.info;
    let mut v = vec![
        ("firmware".to_string(), i.firmware()),
        ("port".to_string(), s.port().to_string()),
        ("machine".to_string(), i.get("machine").to_string()),
        (
            "implementation".to_string(),
            format!("{} {}", i.get("impl"), i.get("ver")),
        ),
        ("platform".to_string(), i.get("platform").to_string()),
        ("sysname".to_string(), i.get("sysname").to_string()),
        (
            "release".to_string(),
            Some(i.get("release"))
                .filter(|r| !r.is_empty())
                .unwrap_or(i.get("ver"))
                .to_string(),
        ),
        ("mpy".to_string(), i.get("mpy").to_string()),
    ];
    if let Some(u) = i.unique_id() {
        v.push(("unique_id".into(), u.to_string()));
    }
    if let Some(n) = i.fs_size() {
        v.push(("fs_size".into(), n.to_string()));
    }
    if let Some(n) = i.fs_free() {
        v.push(("fs_free".into(), n.to_string()));
    }
    v.push(("mem_free".into(), i.get("free").to_string()));
    // What the firmware lacks (docs/boards.md), so `show` can tell why a
    // snapshot has no file times or unique id.
    v.push(("missing".into(), i.missing().join(",")));
    v.retain(|(_, val)| !val.trim().is_empty());
    v
}

/// The name a board suggests for itself when the user gives none: its
/// unique id, else `board-` and the port's file name (the repository makes
/// it a valid source name).
pub fn default_name(s: &Session) -> String {
    match s.info.unique_id() {
        Some(u) => u.to_string(),
        None => {
            let port = s.port();
            let base = port.rsplit('/').next().unwrap_or(port);
            format!("board-{base}")
        }
    }
}

fn entries_of(s: &Session, list: &[BoardEntry], warn: &mut dyn FnMut(String)) -> Vec<SourceEntry> {
    // Without a known epoch the board's timestamps are not recorded.
    let off = s.info.epoch_offset();
    let mut out = Vec::with_capacity(list.len());
    for e in list {
        let kind = match e.kind {
            1 => SourceKind::File,
            2 => SourceKind::Dir,
            _ => {
                warn(format!(
                    "{}: skipping {} (not a file or directory)",
                    s.label(),
                    display(&e.path)
                ));
                continue;
            }
        };
        out.push(SourceEntry {
            path: rel(&e.path).to_vec(),
            size: if kind == SourceKind::File { e.size } else { 0 },
            kind,
            mode: 0,
            mtime_ns: off
                .filter(|_| e.mtime > 0)
                .map(|off| (e.mtime as i64 + off) * 1_000_000_000),
            stamp: None,
        });
    }
    out
}

impl Source for BoardSource<'_> {
    fn location(&self) -> String {
        format!("serial:{}", self.session.lock().unwrap().port())
    }

    fn default_name(&self) -> String {
        default_name(&self.session.lock().unwrap())
    }

    fn device_info(&self) -> Vec<(String, String)> {
        device_info(&self.session.lock().unwrap())
    }

    fn walk(&self, warn: &mut dyn FnMut(String)) -> io::Result<Vec<SourceEntry>> {
        let rules = self.rules(warn)?;
        let mut s = self.session.lock().unwrap();
        let list = s.walk()?;
        for w in std::mem::take(&mut s.warnings) {
            warn(format!("{}: {w}", s.label()));
        }
        let mut entries = entries_of(&s, &list, warn);
        entries.retain(|e| {
            self.forced.contains(&e.path) || !rules.is_ignored(&e.path, e.kind == SourceKind::Dir)
        });
        Ok(entries)
    }

    fn trusts_mtime(&self) -> bool {
        false
    }

    fn hashes(&self, paths: &[&[u8]]) -> io::Result<Option<Vec<Sha>>> {
        let mut s = self.session.lock().unwrap();
        if !self.opts.hash || !s.info.has_hashlib() {
            return Ok(None);
        }
        let sizes: HashMap<Vec<u8>, u64> =
            s.walk()?.into_iter().map(|e| (e.path, e.size)).collect();
        let files: Vec<(Vec<u8>, u64)> = paths
            .iter()
            .map(|p| {
                let a = abs(p);
                let size = sizes.get(&a).copied().unwrap_or(0);
                (a, size)
            })
            .collect();
        let results = s.hashes(&files)?;
        let mut out = Vec::with_capacity(results.len());
        let mut known = self.hashes.lock().unwrap();
        for ((path, size), r) in files.iter().zip(results) {
            let (h, n) = r.map_err(|e| match e {
                BoardError::Remote {
                    errno: 2,
                    board,
                    path,
                    ..
                } => BoardError::Other {
                    board,
                    message: format!("{path} vanished while the backup was running; run it again"),
                },
                other => other,
            })?;
            if n != *size {
                return Err(BoardError::Other {
                    board: s.label().to_string(),
                    message: format!(
                        "{} changed while it was read (listed with {size} bytes, hashed {n}); run the backup again",
                        display(path)
                    ),
                }
                .into());
            }
            known.insert(path.clone(), h);
            out.push(h);
        }
        Ok(Some(out))
    }

    fn parallel_reads(&self) -> bool {
        false
    }

    fn open(&self, path: &[u8]) -> io::Result<Box<dyn Read + Send + '_>> {
        let a = abs(path);
        let expected_hash = self.hashes.lock().unwrap().get(&a).copied();
        let mut s = self.session.lock().unwrap();
        let expected_size = s.walk()?.iter().find(|e| e.path == a).map(|e| e.size);
        let deflate = self.opts.deflate && s.info.can_deflate();
        let hash = s.info.has_hashlib();
        s.start_read(&a, deflate, hash)?;
        Ok(Box::new(BoardReader {
            session: self.session,
            path: a,
            expected_size,
            expected_hash,
            sha: Sha256::new(),
            n: 0,
            buf: Vec::new(),
            pos: 0,
            done: false,
            failed: false,
        }))
    }
}

/// Streams one file from the board, checking it against the board's own
/// hash (and size, and the hash reported before the pull) at the end: the
/// last `read` fails instead of returning end-of-file if anything differs.
struct BoardReader<'a> {
    session: &'a Mutex<Session>,
    path: Vec<u8>,
    expected_size: Option<u64>,
    expected_hash: Option<Sha>,
    sha: Sha256,
    n: u64,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    failed: bool,
}

impl BoardReader<'_> {
    fn fail(&mut self, e: BoardError) -> io::Error {
        self.failed = true;
        e.into_io()
    }
}

impl Read for BoardReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            if self.failed {
                return Err(io::Error::other("the pull already failed"));
            }
            let mut s = self.session.lock().unwrap();
            let piece = match s.read_frame(&self.path) {
                Ok(p) => p,
                Err(e) => {
                    drop(s);
                    let e = match e {
                        BoardError::Remote {
                            errno: 2,
                            board,
                            path,
                            ..
                        } => BoardError::Other {
                            board,
                            message: format!(
                                "{path} vanished while it was read; run the backup again"
                            ),
                        },
                        other => other,
                    };
                    return Err(self.fail(e));
                }
            };
            match piece {
                Piece::Data(d) => {
                    self.sha.update(&d);
                    self.n += d.len() as u64;
                    self.buf = d;
                    self.pos = 0;
                }
                Piece::End { sha256, size } => {
                    let label = s.label().to_string();
                    drop(s);
                    let got: Sha = self.sha.clone().finalize().into();
                    let problem = if size != self.n {
                        Some(format!(
                            "received {} bytes but the board sent {size}: the transfer was garbled; run the backup again",
                            self.n
                        ))
                    } else if sha256.is_some_and(|h| h != got) {
                        Some("the received bytes do not match the board's hash: the transfer was garbled; run the backup again".to_string())
                    } else if self.expected_size.is_some_and(|e| e != size)
                        || self.expected_hash.is_some_and(|h| h != got)
                    {
                        Some("changed while it was read; run the backup again".to_string())
                    } else {
                        None
                    };
                    if let Some(message) = problem {
                        return Err(self.fail(BoardError::Verify {
                            board: label,
                            path: display(&self.path),
                            message,
                        }));
                    }
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for BoardReader<'_> {
    fn drop(&mut self) {
        // Keep the session in step if the reader is dropped early.
        if self.done || self.failed {
            return;
        }
        let mut s = self.session.lock().unwrap();
        while let Ok(Piece::Data(_)) = s.read_frame(&self.path) {}
    }
}

/// A board as a restore target. Paths are relative to the board's root.
pub struct BoardSink<'a> {
    session: &'a Mutex<Session>,
    /// Frames in flight while writing: 1 on UART boards (their input
    /// buffer is ~256 bytes), more where USB flow control holds the rest.
    pub window: usize,
}

impl<'a> BoardSink<'a> {
    pub fn new(session: &'a Mutex<Session>, window: usize) -> Self {
        BoardSink {
            session,
            window: window.max(1),
        }
    }
}

impl Sink for BoardSink<'_> {
    fn location(&self) -> String {
        format!("serial:{}", self.session.lock().unwrap().port())
    }

    fn mkdir(&self, path: &[u8]) -> io::Result<()> {
        Ok(self.session.lock().unwrap().mkdir(&abs(path))?)
    }

    fn write_file(
        &self,
        path: &[u8],
        _size: u64,
        content: &mut dyn Read,
        _meta: &EntryMeta,
    ) -> io::Result<()> {
        let mut s = self.session.lock().unwrap();
        match s.write_file(&abs(path), content, self.window) {
            Ok(_) => Ok(()),
            Err(WriteError::Board(e)) => Err(e.into_io()),
            Err(WriteError::Content(e)) => Err(e),
        }
    }

    fn symlink(&self, path: &[u8], _target: &[u8], _meta: &EntryMeta) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{}: boards have no symbolic links; leave it out with --include",
                display(path)
            ),
        ))
    }

    fn finish_dir(&self, _path: &[u8], _meta: &EntryMeta) -> io::Result<()> {
        // Boards keep no permissions, and no way to set times.
        Ok(())
    }

    fn parallel_writes(&self) -> bool {
        false
    }

    fn existing(&self) -> io::Result<Option<Vec<ExistingEntry>>> {
        let mut s = self.session.lock().unwrap();
        let list = s.walk()?;
        let mut warn = |_w: String| {};
        let entries = entries_of(&s, &list, &mut warn);
        let files: Vec<(Vec<u8>, u64)> = list
            .iter()
            .filter(|e| e.kind == 1)
            .map(|e| (e.path.clone(), e.size))
            .collect();
        let hashes: HashMap<Vec<u8>, Sha> = if s.info.has_hashlib() {
            let r = s.hashes(&files)?;
            files
                .iter()
                .zip(r)
                .filter_map(|((p, _), h)| h.ok().map(|(h, _)| (rel(p).to_vec(), h)))
                .collect()
        } else {
            HashMap::new()
        };
        Ok(Some(
            entries
                .into_iter()
                .map(|e| {
                    let sha256 = hashes.get(&e.path).copied();
                    ExistingEntry { entry: e, sha256 }
                })
                .collect(),
        ))
    }

    fn remove(&self, path: &[u8], dir: bool) -> io::Result<()> {
        Ok(self.session.lock().unwrap().remove(&abs(path), dir)?)
    }
}
