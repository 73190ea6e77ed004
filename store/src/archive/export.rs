//! Export: a snapshot (or a path inside it) as one zip or tar archive, the
//! manifest first, then every entry in path order (a directory before its
//! contents). File contents stream from the repository, verified chunk by
//! chunk and against the file's SHA-256 as they are written.

use std::io::{self, Seek, Write};

use crate::archive::{
    Format, MANIFEST_FORMAT, MANIFEST_NAME, Manifest, ManifestEntry, archive_err,
};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::path;
use crate::repo::Repo;
use crate::restore::{self, ContentReader, PlannedEntry, RestoreProgress};
use crate::snapshot::Snapshot;
use crate::tree::{Node, TreeEntry};

/// Where the archive goes: a file (zip uses its central directory, written
/// at the end) or a stream such as stdout (zip then uses data descriptors).
pub enum Output<'a> {
    File(&'a mut std::fs::File),
    Stream(&'a mut dyn Write),
}

#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub format: Format,
    /// Write `belay-manifest.json` (the default).
    pub manifest: bool,
    /// The archive's own time (RFC 3339), recorded in the manifest.
    pub exported: String,
}

#[derive(Clone, Debug, Default)]
pub struct ExportReport {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    pub manifest: Option<Manifest>,
}

/// What to export: the entry `entry`, found at `path` in snapshot `id`
/// (a directory's contents, or a single file or symlink).
pub struct Selection<'a> {
    pub id: &'a ObjectId,
    pub snapshot: &'a Snapshot,
    pub path: &'a [u8],
    pub entry: &'a TreeEntry,
}

pub fn export(
    repo: &Repo,
    what: &Selection<'_>,
    opts: &ExportOptions,
    out: Output<'_>,
    progress: &dyn RestoreProgress,
) -> Result<ExportReport> {
    let (id, snap, sub_path, entry) = (what.id, what.snapshot, what.path, what.entry);
    if opts.format == Format::TarGz {
        return Err(archive_err(
            "exports are written as zip, tar or tar.zst (tar.gz is read on import only)",
        ));
    }
    let planned = restore::plan(repo, entry, None)?;
    if opts.manifest && planned.iter().any(|p| p.path == MANIFEST_NAME.as_bytes()) {
        return Err(archive_err(format!(
            "the snapshot has its own {MANIFEST_NAME} at the top; export without a manifest (--no-manifest) or a sub-path"
        )));
    }
    let manifest = opts
        .manifest
        .then(|| manifest(id, snap, sub_path, &planned, opts));
    let files: Vec<&PlannedEntry> = planned
        .iter()
        .filter(|p| matches!(p.entry.node, Node::File { .. }))
        .collect();
    progress.start(
        files.len() as u64,
        files.iter().map(|p| p.entry.node.size()).sum(),
    );
    let mut w = Writer::new(opts.format, out)?;
    let default_mtime = snap.time_ns;
    if let Some(m) = &manifest {
        let json = serde_json::to_vec_pretty(m).expect("manifest serialises");
        w.file(
            MANIFEST_NAME.as_bytes(),
            0o644,
            default_mtime,
            json.len() as u64,
            &mut &json[..],
        )
        .map_err(|e| write_err(MANIFEST_NAME.as_bytes(), e))?;
    }
    let mut report = ExportReport::default();
    for p in &planned {
        let mtime = p.entry.mtime_ns.unwrap_or(default_mtime);
        match &p.entry.node {
            Node::Dir { .. } => {
                w.dir(&p.path, mode_or(p.entry.mode, 0o755), mtime)
                    .map_err(|e| write_err(&p.path, e))?;
                report.dirs += 1;
            }
            Node::Symlink { target } => {
                w.symlink(&p.path, target, mtime)
                    .map_err(|e| write_err(&p.path, e))?;
                report.symlinks += 1;
            }
            Node::File {
                size,
                sha256,
                chunks,
            } => {
                let mut reader = ContentReader::new(repo, chunks, *size, *sha256, &p.path);
                let r = w.file(
                    &p.path,
                    mode_or(p.entry.mode, 0o644),
                    mtime,
                    *size,
                    &mut reader,
                );
                if let Some(e) = reader.error.take() {
                    return Err(e);
                }
                r.map_err(|e| write_err(&p.path, e))?;
                report.files += 1;
                report.bytes += size;
                progress.bytes(*size);
                progress.file_done();
            }
        }
    }
    w.finish()
        .map_err(|e| Error::Archive(format!("finishing the archive: {e}")))?;
    report.manifest = manifest;
    Ok(report)
}

fn write_err(p: &[u8], e: io::Error) -> Error {
    Error::Sink {
        path: path::display(p),
        source: e,
    }
}

fn mode_or(mode: u32, default: u32) -> u32 {
    if mode & 0o7777 == 0 {
        default
    } else {
        mode & 0o7777
    }
}

fn manifest(
    id: &ObjectId,
    snap: &Snapshot,
    sub_path: &[u8],
    planned: &[PlannedEntry],
    opts: &ExportOptions,
) -> Manifest {
    let entries = planned
        .iter()
        .map(|p| {
            let shown = path::display(&p.path);
            let mut e = ManifestEntry {
                path_hex: (std::str::from_utf8(&p.path).is_err()).then(|| hex::encode(&p.path)),
                path: shown,
                kind: p.entry.node.kind_name().to_string(),
                mode: p.entry.mode,
                mtime_ns: p.entry.mtime_ns,
                ..ManifestEntry::default()
            };
            match &p.entry.node {
                Node::File { size, sha256, .. } => {
                    e.size = Some(*size);
                    e.sha256 = Some(hex::encode(sha256));
                }
                Node::Symlink { target } => e.target = Some(path::display(target)),
                Node::Dir { .. } => {}
            }
            e
        })
        .collect();
    Manifest {
        format: MANIFEST_FORMAT.to_string(),
        snapshot: id.to_hex(),
        source: snap.source.clone(),
        location: snap.location.clone(),
        host: snap.host.clone(),
        user: snap.user.clone(),
        time: rfc3339(snap.time_ns),
        message: snap.message.clone(),
        meta: snap.meta.iter().cloned().collect(),
        device: snap.device.iter().cloned().collect(),
        path: path::display(sub_path),
        exported: opts.exported.clone(),
        entries,
    }
}

pub(crate) fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(ns as i128)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// A zip or tar writer behind one interface.
enum Writer<'a> {
    Tar(tar::Builder<Box<dyn Write + 'a>>),
    ZipFile(zip::ZipWriter<&'a mut std::fs::File>),
    ZipStream(zip::ZipWriter<zip::write::StreamWriter<&'a mut dyn Write>>),
}

/// The zstd level of `.tar.zst` exports (zstd's default).
const ZSTD_LEVEL: i32 = 3;

impl<'a> Writer<'a> {
    fn new(format: Format, out: Output<'a>) -> Result<Writer<'a>> {
        let sink: Box<dyn Write + 'a> = match out {
            Output::File(f) => {
                if format == Format::Zip {
                    return Ok(Writer::ZipFile(zip::ZipWriter::new(f)));
                }
                Box::new(io::BufWriter::new(f))
            }
            Output::Stream(s) => {
                if format == Format::Zip {
                    return Ok(Writer::ZipStream(zip::ZipWriter::new_stream(s)));
                }
                Box::new(s)
            }
        };
        let sink: Box<dyn Write + 'a> = if format == Format::TarZst {
            let enc = zstd::stream::write::Encoder::new(sink, ZSTD_LEVEL)
                .map_err(|e| archive_err(format!("zstd: {e}")))?
                .auto_finish();
            Box::new(enc)
        } else {
            sink
        };
        let mut b = tar::Builder::new(sink);
        b.mode(tar::HeaderMode::Complete);
        Ok(Writer::Tar(b))
    }

    fn file(
        &mut self,
        p: &[u8],
        mode: u32,
        mtime_ns: i64,
        size: u64,
        content: &mut dyn io::Read,
    ) -> io::Result<()> {
        match self {
            Writer::Tar(b) => {
                let mut h = tar_header(tar::EntryType::Regular, mode, mtime_ns);
                h.set_size(size);
                b.append_data(&mut h, os_path(p), content)
            }
            Writer::ZipFile(z) => zip_file(z, p, mode, mtime_ns, size, content),
            Writer::ZipStream(z) => zip_file(z, p, mode, mtime_ns, size, content),
        }
    }

    fn dir(&mut self, p: &[u8], mode: u32, mtime_ns: i64) -> io::Result<()> {
        match self {
            Writer::Tar(b) => {
                let mut h = tar_header(tar::EntryType::Directory, mode, mtime_ns);
                h.set_size(0);
                let mut name = p.to_vec();
                name.push(b'/');
                b.append_data(&mut h, os_path(&name), io::empty())
            }
            Writer::ZipFile(z) => zip_dir(z, p, mode, mtime_ns),
            Writer::ZipStream(z) => zip_dir(z, p, mode, mtime_ns),
        }
    }

    fn symlink(&mut self, p: &[u8], target: &[u8], mtime_ns: i64) -> io::Result<()> {
        match self {
            Writer::Tar(b) => {
                let mut h = tar_header(tar::EntryType::Symlink, 0o777, mtime_ns);
                h.set_size(0);
                b.append_link(&mut h, os_path(p), os_path(target))
            }
            Writer::ZipFile(z) => zip_symlink(z, p, target, mtime_ns),
            Writer::ZipStream(z) => zip_symlink(z, p, target, mtime_ns),
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Writer::Tar(b) => {
                let mut inner = b.into_inner()?;
                inner.flush()
            }
            Writer::ZipFile(z) => z.finish().map(|_| ()).map_err(io::Error::other),
            Writer::ZipStream(z) => z.finish().map(|_| ()).map_err(io::Error::other),
        }
    }
}

fn os_path(p: &[u8]) -> &std::path::Path {
    use std::os::unix::ffi::OsStrExt;
    std::path::Path::new(std::ffi::OsStr::from_bytes(p))
}

fn tar_header(kind: tar::EntryType, mode: u32, mtime_ns: i64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_mtime(mtime_ns.div_euclid(1_000_000_000).max(0) as u64);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn zip_name(p: &[u8]) -> io::Result<&str> {
    std::str::from_utf8(p).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "zip names must be UTF-8; export as --format tar",
        )
    })
}

fn zip_options(
    mode: u32,
    mtime_ns: i64,
    method: zip::CompressionMethod,
) -> io::Result<zip::write::FullFileOptions<'static, 'static>> {
    let secs = mtime_ns.div_euclid(1_000_000_000);
    let mut o = zip::write::FullFileOptions::default()
        .compression_method(method)
        .unix_permissions(mode)
        .large_file(false);
    if let Some(dt) = dos_time(secs) {
        o = o.last_modified_time(dt);
    }
    if let Ok(s) = u32::try_from(secs) {
        o = o
            .with_extended_timestamp(Some(s), None, None)
            .map_err(io::Error::other)?;
    }
    Ok(o)
}

/// A zip's DOS time is local time (Info-ZIP's habit); the extended
/// timestamp beside it holds the exact UTC second.
fn dos_time(secs: i64) -> Option<zip::DateTime> {
    let t = jiff::Timestamp::from_second(secs).ok()?;
    let z = t.to_zoned(jiff::tz::TimeZone::system());
    zip::DateTime::from_date_and_time(
        u16::try_from(z.year()).ok()?,
        z.month() as u8,
        z.day() as u8,
        z.hour() as u8,
        z.minute() as u8,
        z.second() as u8,
    )
    .ok()
}

fn zip_file<W: Write + Seek>(
    z: &mut zip::ZipWriter<W>,
    p: &[u8],
    mode: u32,
    mtime_ns: i64,
    size: u64,
    content: &mut dyn io::Read,
) -> io::Result<()> {
    let name = zip_name(p)?;
    let o = zip_options(mode, mtime_ns, zip::CompressionMethod::Deflated)?
        .large_file(size >= u32::MAX as u64);
    z.start_file(name, o).map_err(io::Error::other)?;
    io::copy(content, z)?;
    Ok(())
}

fn zip_dir<W: Write + Seek>(
    z: &mut zip::ZipWriter<W>,
    p: &[u8],
    mode: u32,
    mtime_ns: i64,
) -> io::Result<()> {
    let name = zip_name(p)?;
    let o = zip_options(mode, mtime_ns, zip::CompressionMethod::Stored)?;
    z.add_directory(name, o).map_err(io::Error::other)
}

fn zip_symlink<W: Write + Seek>(
    z: &mut zip::ZipWriter<W>,
    p: &[u8],
    target: &[u8],
    mtime_ns: i64,
) -> io::Result<()> {
    let name = zip_name(p)?;
    let target = zip_name(target)?;
    let o = zip_options(0o777, mtime_ns, zip::CompressionMethod::Stored)?;
    z.add_symlink(name, target, o).map_err(io::Error::other)
}
