//! One snapshot as one file: `.zip`, `.tar`, `.tar.zst` (and `.tar.gz` on
//! import), with a `belay-manifest.json` that says where the files came
//! from and lets an import verify every byte. [`export`] writes such an
//! archive from a snapshot; [`import`] reads one (or any plain zip or tar)
//! as a backup source. The archive layout is specified in docs/format.md
//! ("Archives").

pub mod export;
pub mod import;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The manifest's name, at the root of an archive.
pub const MANIFEST_NAME: &str = "belay-manifest.json";
/// The manifest's `format` value; a reader refuses other values.
pub const MANIFEST_FORMAT: &str = "belay-export/1";

/// An archive format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Zip,
    Tar,
    TarZst,
    /// Read only (`tar czf`): exports use `.tar.zst`.
    TarGz,
}

impl Format {
    /// The format a file name asks for, by its extension.
    pub fn from_name(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".zip") {
            Some(Format::Zip)
        } else if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
            Some(Format::TarZst)
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(Format::TarGz)
        } else if name.ends_with(".tar") {
            Some(Format::Tar)
        } else {
            None
        }
    }

    /// `--format` values: zip, tar, tar.zst (tar.gz on import).
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "zip" => Some(Format::Zip),
            "tar" => Some(Format::Tar),
            "tar.zst" | "tzst" | "tar-zst" | "zst" => Some(Format::TarZst),
            "tar.gz" | "tgz" | "tar-gz" | "gz" => Some(Format::TarGz),
            _ => None,
        }
    }

    /// The format of an archive by its first bytes (at least 262 of them
    /// for a tar); `None` when it is none of them.
    pub fn sniff(head: &[u8]) -> Option<Format> {
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Some(Format::Zip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Format::TarZst)
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Some(Format::TarGz)
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            Some(Format::Tar)
        } else if head.len() >= 512 && tar_checksum_ok(&head[..512]) {
            // A pre-POSIX (v7) tar header: no magic, but a valid checksum.
            Some(Format::Tar)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Zip => "zip",
            Format::Tar => "tar",
            Format::TarZst => "tar.zst",
            Format::TarGz => "tar.gz",
        }
    }
}

fn tar_checksum_ok(h: &[u8]) -> bool {
    let field = String::from_utf8_lossy(&h[148..156]);
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    sum == want && h[..100].iter().any(|&b| b != 0)
}

/// `belay-manifest.json`. Field names are part of the format (docs/format.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// The exported snapshot's id (64 hex digits).
    pub snapshot: String,
    /// Its source name, where it was taken, by whom.
    pub source: String,
    pub location: String,
    pub host: String,
    pub user: String,
    /// When the snapshot was taken (RFC 3339, UTC, nanoseconds).
    pub time: String,
    pub message: String,
    /// `--meta` of the snapshot.
    pub meta: std::collections::BTreeMap<String, String>,
    /// What the board said about itself (firmware, unique id, ...).
    pub device: std::collections::BTreeMap<String, String>,
    /// The path inside the snapshot that was exported (`""`: all of it);
    /// archive paths are relative to it.
    pub path: String,
    /// When the archive was written (RFC 3339).
    pub exported: String,
    /// Every entry of the archive except the manifest, in path order.
    pub entries: Vec<ManifestEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// `/`-separated, relative; names that are not UTF-8 as `\xNN` escapes
    /// (then `path_hex` holds the bytes).
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    /// `file`, `dir` or `symlink`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix permission bits as recorded in the snapshot (0: none, a board).
    pub mode: u32,
    /// Nanoseconds since the epoch, as recorded (`null`: none, a board).
    pub mtime_ns: Option<i64>,
    /// Files: length and SHA-256 (hex) of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Symlinks: the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl ManifestEntry {
    /// The entry's path as bytes.
    pub fn path_bytes(&self) -> Vec<u8> {
        match &self.path_hex {
            Some(h) => hex::decode(h).unwrap_or_else(|_| self.path.as_bytes().to_vec()),
            None => self.path.as_bytes().to_vec(),
        }
    }
}

/// An archive member name as a snapshot path: a leading `./` and trailing
/// `/` dropped; `..`, absolute names and NUL bytes refused.
pub fn member_path(raw: &[u8]) -> Result<Vec<u8>> {
    let refuse = |why: &str| {
        Error::Archive(format!(
            "archive entry {:?}: {why}; refusing to import it",
            crate::path::display(raw)
        ))
    };
    if raw.starts_with(b"/") {
        return Err(refuse("an absolute name"));
    }
    if raw.contains(&0) {
        return Err(refuse("a NUL byte in the name"));
    }
    let mut parts = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(refuse("a '..' component")),
            p => parts.push(p),
        }
    }
    Ok(parts.join(&b'/'))
}

fn archive_err(what: impl std::fmt::Display) -> Error {
    Error::Archive(what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths() {
        assert_eq!(member_path(b"./a/b").unwrap(), b"a/b");
        assert_eq!(member_path(b"a/b/").unwrap(), b"a/b");
        assert_eq!(member_path(b"./").unwrap(), b"");
        assert!(member_path(b"../x").is_err());
        assert!(member_path(b"a/../../x").is_err());
        assert!(member_path(b"/etc/passwd").is_err());
    }

    #[test]
    fn formats_by_name_and_content() {
        assert_eq!(
            Format::from_name(Path::new("x.TAR.ZST")),
            Some(Format::TarZst)
        );
        assert_eq!(Format::from_name(Path::new("x.zip")), Some(Format::Zip));
        assert_eq!(Format::from_name(Path::new("x.tgz")), Some(Format::TarGz));
        assert_eq!(Format::from_name(Path::new("x.json")), None);
        assert_eq!(Format::sniff(b"PK\x03\x04...."), Some(Format::Zip));
        assert_eq!(Format::sniff(b"hello"), None);
    }
}
