//! Import: a zip or tar archive as a backup [`Source`]. An archive written
//! by `belay export` carries a manifest; then every file is checked against
//! the manifest's size and SHA-256 as it is read (a mismatch fails the
//! import before any snapshot is written), and the manifest's exact mtimes
//! and modes are used. Any other zip or tar (`zip -r`, GNU tar, Python's
//! zipfile) imports with what it holds. Member names with `..`, absolute
//! names and names that occur twice are refused.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256 as Sha256Hasher};

use crate::archive::{Format, MANIFEST_FORMAT, MANIFEST_NAME, Manifest, archive_err, member_path};
use crate::error::{Error, Result};
use crate::id::Sha256;
use crate::path;
use crate::source::{Source, SourceEntry, SourceKind};

/// Entries up to this size are decompressed into memory; larger zip
/// entries go through a temporary file.
const IN_MEMORY_BELOW: u64 = 8 << 20;
/// A manifest larger than this is refused (a million entries is ~200 MB).
const MANIFEST_MAX: u64 = 512 << 20;

/// An archive opened for import.
pub struct ArchiveSource {
    location: String,
    default_name: String,
    format: Format,
    entries: Vec<SourceEntry>,
    manifest: Option<Manifest>,
    /// From the manifest: the size and SHA-256 each file must have.
    expected: HashMap<Vec<u8>, (u64, Sha256)>,
    backing: Backing,
}

enum Backing {
    /// An uncompressed tar (a `.tar.zst`/`.tar.gz` is first decompressed
    /// into a temporary file): each file is a byte range of it.
    Tar {
        file: SharedFile,
        ranges: HashMap<Vec<u8>, (u64, u64)>,
    },
    Zip {
        archive: zip::ZipArchive<SharedFile>,
        index: HashMap<Vec<u8>, usize>,
    },
}

impl ArchiveSource {
    /// Open `path` (`-`: standard input, read to a temporary file first).
    /// The format comes from the file's first bytes; `format` overrides.
    pub fn open(path: &Path, format: Option<Format>) -> Result<ArchiveSource> {
        let (file, location, stem) = if path == Path::new("-") {
            let mut tmp = tempfile::tempfile().map_err(|e| Error::io("a temporary file", e))?;
            io::copy(&mut io::stdin().lock(), &mut tmp)
                .map_err(|e| Error::io("standard input", e))?;
            (tmp, "archive:-".to_string(), "import".to_string())
        } else {
            let f = File::open(path).map_err(|e| Error::io(path, e))?;
            let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            (f, format!("archive:{}", abs.display()), stem_of(path))
        };
        let mut head = vec![0u8; 512];
        let n = file.read_at(&mut head, 0).map_err(|e| Error::io(path, e))?;
        head.truncate(n);
        let format = match format.or_else(|| Format::sniff(&head)) {
            Some(f) => f,
            None => {
                return Err(archive_err(format!(
                    "{}: not a zip or tar archive (nor .tar.zst / .tar.gz); give --format if it is one",
                    path.display()
                )));
            }
        };
        let what = |e: io::Error| archive_err(format!("{}: {e}", path.display()));
        let mut src = match format {
            Format::Zip => open_zip(SharedFile::new(file)).map_err(|e| prefix(path, e))?,
            Format::Tar => open_tar(SharedFile::new(file)).map_err(|e| prefix(path, e))?,
            Format::TarZst => {
                let dec = zstd::stream::read::Decoder::new(file).map_err(what)?;
                open_tar(spool(dec).map_err(what)?).map_err(|e| prefix(path, e))?
            }
            Format::TarGz => {
                let dec = flate2::read::MultiGzDecoder::new(file);
                open_tar(spool(dec).map_err(what)?).map_err(|e| prefix(path, e))?
            }
        };
        src.location = location;
        src.default_name = stem;
        src.format = format;
        src.apply_manifest().map_err(|e| prefix(path, e))?;
        Ok(src)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The archive's manifest, when it has one (written by `belay export`).
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// Files, directories and symlinks in the archive (the manifest aside).
    pub fn entries(&self) -> &[SourceEntry] {
        &self.entries
    }

    /// Take the manifest out of the entries, check it against them, and use
    /// its exact mtimes and modes.
    fn apply_manifest(&mut self) -> Result<()> {
        let Some(pos) = self
            .entries
            .iter()
            .position(|e| e.path == MANIFEST_NAME.as_bytes() && e.kind == SourceKind::File)
        else {
            return Ok(());
        };
        if self.entries[pos].size > MANIFEST_MAX {
            return Ok(());
        }
        let mut text = Vec::new();
        self.raw_open(MANIFEST_NAME.as_bytes())
            .and_then(|mut r| r.read_to_end(&mut text))
            .map_err(|e| archive_err(format!("{MANIFEST_NAME}: {e}")))?;
        // Only a manifest that says it is one is taken as one; any other
        // file of that name is an ordinary file.
        let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice::<serde_json::Value>(&text)
        else {
            return Ok(());
        };
        let Some(fmt) = obj.get("format").and_then(|v| v.as_str()) else {
            return Ok(());
        };
        if !fmt.starts_with("belay-export/") {
            return Ok(());
        }
        if fmt != MANIFEST_FORMAT {
            return Err(archive_err(format!(
                "{MANIFEST_NAME} is {fmt:?}, this belay reads {MANIFEST_FORMAT:?}; upgrade belay"
            )));
        }
        let m: Manifest = serde_json::from_slice(&text)
            .map_err(|e| archive_err(format!("{MANIFEST_NAME} is damaged: {e}")))?;
        self.entries.remove(pos);
        let mut listed = HashMap::new();
        for e in &m.entries {
            if listed.insert(e.path_bytes(), e).is_some() {
                return Err(archive_err(format!(
                    "{MANIFEST_NAME} lists {:?} twice",
                    e.path
                )));
            }
        }
        for e in &mut self.entries {
            let Some(me) = listed.remove(&e.path) else {
                return Err(archive_err(format!(
                    "archive entry {:?} is not listed in {MANIFEST_NAME} (the archive was changed after export)",
                    path::display(&e.path)
                )));
            };
            let kind = match e.kind {
                SourceKind::File => "file",
                SourceKind::Dir => "dir",
                SourceKind::Symlink { .. } => "symlink",
            };
            if me.kind != kind {
                return Err(archive_err(format!(
                    "archive entry {:?} is a {kind}, {MANIFEST_NAME} says {}",
                    me.path, me.kind
                )));
            }
            if e.kind == SourceKind::File {
                let sha = me
                    .sha256
                    .as_deref()
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|b| <Sha256>::try_from(b.as_slice()).ok())
                    .ok_or_else(|| {
                        archive_err(format!(
                            "{MANIFEST_NAME}: {:?} has no valid sha256",
                            me.path
                        ))
                    })?;
                let size = me.size.unwrap_or(u64::MAX);
                if size != e.size {
                    return Err(archive_err(format!(
                        "{:?} is {} bytes in the archive, {MANIFEST_NAME} says {size}",
                        me.path, e.size
                    )));
                }
                self.expected.insert(e.path.clone(), (size, sha));
            }
            e.mode = me.mode;
            e.mtime_ns = me.mtime_ns;
        }
        if let Some(missing) = listed.keys().min() {
            return Err(archive_err(format!(
                "{:?} is listed in {MANIFEST_NAME} but missing from the archive",
                path::display(missing)
            )));
        }
        self.manifest = Some(m);
        Ok(())
    }

    fn raw_open(&self, p: &[u8]) -> io::Result<Box<dyn Read + Send + '_>> {
        let missing = || io::Error::new(io::ErrorKind::NotFound, "not in the archive");
        match &self.backing {
            Backing::Tar { file, ranges } => {
                let &(pos, len) = ranges.get(p).ok_or_else(missing)?;
                Ok(Box::new(file.range(pos, len)))
            }
            Backing::Zip { archive, index } => {
                let &i = index.get(p).ok_or_else(missing)?;
                let mut archive = archive.clone();
                let mut f = archive.by_index(i).map_err(zip_io)?;
                if f.size() < IN_MEMORY_BELOW {
                    let mut buf = Vec::with_capacity(f.size() as usize);
                    f.read_to_end(&mut buf)?;
                    Ok(Box::new(io::Cursor::new(buf)))
                } else {
                    let mut tmp = tempfile::tempfile()?;
                    io::copy(&mut f, &mut tmp)?;
                    tmp.seek(SeekFrom::Start(0))?;
                    Ok(Box::new(tmp))
                }
            }
        }
    }
}

fn prefix(path: &Path, e: Error) -> Error {
    match e {
        Error::Archive(m) if path != Path::new("-") => {
            Error::Archive(format!("{}: {m}", path.display()))
        }
        other => other,
    }
}

fn stem_of(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".into());
    let lower = name.to_ascii_lowercase();
    let cut = [".tar.zst", ".tar.gz", ".tzst", ".tgz", ".tar", ".zip"]
        .iter()
        .find(|ext| lower.ends_with(*ext))
        .map_or(name.len(), |ext| name.len() - ext.len());
    crate::repo::sanitize_ref_name(&name[..cut])
}

fn zip_io(e: zip::result::ZipError) -> io::Error {
    match e {
        zip::result::ZipError::Io(io) => io,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

/// Decompress a stream into a temporary file, to read it as a plain tar.
fn spool(mut r: impl Read) -> io::Result<SharedFile> {
    let mut tmp = tempfile::tempfile()?;
    let mut w = io::BufWriter::new(&mut tmp);
    io::copy(&mut r, &mut w)?;
    w.flush()?;
    drop(w);
    Ok(SharedFile::new(tmp))
}

/// Checks one archive entry's name and records it, refusing duplicates.
struct Names(HashSet<Vec<u8>>);

impl Names {
    fn add(&mut self, raw: &[u8]) -> Result<Option<Vec<u8>>> {
        let p = member_path(raw)?;
        if p.is_empty() {
            return Ok(None); // "./": the root itself
        }
        if !self.0.insert(p.clone()) {
            return Err(archive_err(format!(
                "the archive holds {:?} twice; refusing to import an ambiguous archive",
                path::display(&p)
            )));
        }
        Ok(Some(p))
    }
}

fn source_from(entries: Vec<SourceEntry>, backing: Backing) -> ArchiveSource {
    ArchiveSource {
        location: String::new(),
        default_name: String::new(),
        format: Format::Tar,
        entries,
        manifest: None,
        expected: HashMap::new(),
        backing,
    }
}

fn open_tar(file: SharedFile) -> Result<ArchiveSource> {
    let bad = |e: io::Error| archive_err(format!("not a readable tar archive: {e}"));
    let mut reader = file.range(0, file.len().map_err(bad)?);
    let mut ar = tar::Archive::new(&mut reader);
    let mut names = Names(HashSet::new());
    let mut entries = Vec::new();
    let mut ranges: HashMap<Vec<u8>, (u64, u64)> = HashMap::new();
    for entry in ar.entries_with_seek().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let kind = entry.header().entry_type();
        let raw_name = entry.path_bytes().into_owned();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let Some(p) = names.add(&raw_name)? else {
            continue;
        };
        let h = entry.header();
        let mode = h.mode().unwrap_or(0) & 0o7777;
        let mut mtime_ns = h.mtime().ok().map(|s| s as i64 * 1_000_000_000);
        if let Ok(Some(pax)) = entry.pax_extensions() {
            for ext in pax.flatten() {
                if ext.key() == Ok("mtime")
                    && let Some(ns) = ext.value().ok().and_then(pax_time_ns)
                {
                    mtime_ns = Some(ns);
                }
            }
        }
        let shown = || path::display(&p);
        let kind = if kind.is_file() || kind.is_contiguous() {
            if kind.is_gnu_sparse() {
                return Err(archive_err(format!(
                    "{}: a sparse file (GNU tar -S); unpack and import the folder instead",
                    shown()
                )));
            }
            ranges.insert(p.clone(), (entry.raw_file_position(), entry.size()));
            SourceKind::File
        } else if kind.is_gnu_sparse() {
            return Err(archive_err(format!(
                "{}: a sparse file (GNU tar -S); unpack and import the folder instead",
                shown()
            )));
        } else if kind.is_dir() {
            SourceKind::Dir
        } else if kind.is_symlink() {
            let target = entry.link_name_bytes().unwrap_or_default().into_owned();
            SourceKind::Symlink { target }
        } else if kind.is_hard_link() {
            // The same content as an earlier member.
            let target = entry.link_name_bytes().unwrap_or_default().into_owned();
            let target = member_path(&target)?;
            let Some(&range) = ranges.get(&target) else {
                return Err(archive_err(format!(
                    "{}: a hard link to {:?}, which is not an earlier file of the archive",
                    shown(),
                    path::display(&target)
                )));
            };
            ranges.insert(p.clone(), range);
            entries.push(SourceEntry {
                path: p,
                kind: SourceKind::File,
                size: range.1,
                mode,
                mtime_ns,
                stamp: None,
            });
            continue;
        } else {
            return Err(archive_err(format!(
                "{}: a device, FIFO or other special file; belay keeps files, directories and symlinks",
                shown()
            )));
        };
        let size = if kind == SourceKind::File {
            entry.size()
        } else {
            0
        };
        entries.push(SourceEntry {
            path: p,
            kind,
            size,
            mode,
            mtime_ns,
            stamp: None,
        });
    }
    Ok(source_from(entries, Backing::Tar { file, ranges }))
}

/// A PAX time (`1700000000.123456789`) in nanoseconds.
fn pax_time_ns(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let frac: i64 = digits.parse().ok()?;
    Some(secs * 1_000_000_000 + if secs < 0 { -frac } else { frac })
}

fn open_zip(file: SharedFile) -> Result<ArchiveSource> {
    let bad = |e: zip::result::ZipError| archive_err(format!("not a readable zip archive: {e}"));
    let mut archive = zip::ZipArchive::new(file).map_err(bad)?;
    let mut names = Names(HashSet::new());
    let mut entries = Vec::new();
    let mut index = HashMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).map_err(bad)?;
        let raw_name = f.name_raw().to_vec();
        let Some(p) = names.add(&raw_name)? else {
            continue;
        };
        if f.encrypted() {
            return Err(archive_err(format!(
                "{}: encrypted; decrypt the archive first",
                path::display(&p)
            )));
        }
        let mode = f.unix_mode().unwrap_or(0) & 0o7777;
        let mut mtime_ns = f.last_modified().and_then(dos_time_ns);
        for field in f.extra_data_fields() {
            if let zip::ExtraField::ExtendedTimestamp(t) = field
                && let Some(s) = t.mod_time()
            {
                mtime_ns = Some(s as i64 * 1_000_000_000);
            }
        }
        let (kind, size) = if f.is_dir() {
            (SourceKind::Dir, 0)
        } else if f.is_symlink() {
            let mut target = Vec::new();
            f.read_to_end(&mut target)
                .map_err(|e| archive_err(format!("{}: {e}", path::display(&p))))?;
            (SourceKind::Symlink { target }, 0)
        } else {
            index.insert(p.clone(), i);
            (SourceKind::File, f.size())
        };
        entries.push(SourceEntry {
            path: p,
            kind,
            size,
            mode,
            mtime_ns,
            stamp: None,
        });
    }
    Ok(source_from(entries, Backing::Zip { archive, index }))
}

/// A zip's DOS time, read as the local time it is by convention.
fn dos_time_ns(t: zip::DateTime) -> Option<i64> {
    let dt = jiff::civil::DateTime::new(
        t.year() as i16,
        t.month() as i8,
        t.day() as i8,
        t.hour() as i8,
        t.minute() as i8,
        t.second() as i8,
        0,
    )
    .ok()?;
    let z = dt.to_zoned(jiff::tz::TimeZone::system()).ok()?;
    Some(z.timestamp().as_nanosecond() as i64)
}

impl Source for ArchiveSource {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn default_name(&self) -> String {
        self.default_name.clone()
    }

    /// An exported board's facts come back with it.
    fn device_info(&self) -> Vec<(String, String)> {
        self.manifest
            .as_ref()
            .map(|m| {
                m.device
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn walk(&self, _warn: &mut dyn FnMut(String)) -> io::Result<Vec<SourceEntry>> {
        Ok(self.entries.clone())
    }

    /// An archive's mtimes are those of another machine (often to the
    /// second): every file is read.
    fn trusts_mtime(&self) -> bool {
        false
    }

    fn open(&self, p: &[u8]) -> io::Result<Box<dyn Read + Send + '_>> {
        let r = self.raw_open(p)?;
        Ok(match self.expected.get(p) {
            Some(&(size, sha256)) => Box::new(Verified {
                inner: r,
                sha: Sha256Hasher::new(),
                seen: 0,
                size,
                sha256,
            }),
            None => r,
        })
    }
}

/// Fails at the end of a file whose bytes do not match the manifest.
struct Verified<R> {
    inner: R,
    sha: Sha256Hasher,
    seen: u64,
    size: u64,
    sha256: Sha256,
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.seen += n as u64;
        if n == 0 || self.seen > self.size {
            let got: Sha256 = self.sha.clone().finalize().into();
            if self.seen != self.size || got != self.sha256 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "content does not match {MANIFEST_NAME} ({} bytes, SHA-256 {}; the manifest says {} bytes, {})",
                        self.seen,
                        hex::encode(got),
                        self.size,
                        hex::encode(self.sha256)
                    ),
                ));
            }
        }
        Ok(n)
    }
}

/// A file shared by several readers, each with its own position (`pread`),
/// so entries can be read from several threads.
#[derive(Clone)]
struct SharedFile {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl SharedFile {
    fn new(file: File) -> SharedFile {
        SharedFile {
            file: Arc::new(file),
            pos: 0,
            end: u64::MAX,
        }
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// The bytes `start .. start + len`.
    fn range(&self, start: u64, len: u64) -> SharedFile {
        SharedFile {
            file: self.file.clone(),
            pos: start,
            end: start.saturating_add(len),
        }
    }
}

impl Read for SharedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = self.end.saturating_sub(self.pos);
        let want = (buf.len() as u64).min(room) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SharedFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => {
                let end = if self.end == u64::MAX {
                    self.len()?
                } else {
                    self.end
                };
                end.checked_add_signed(d)
            }
        };
        self.pos = new
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}
