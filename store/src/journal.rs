//! The audit journal: who did what to the repository, when, and how it
//! ended. One small write-once JSON file per operation under `journal/`
//! (no appends to a shared file, so any number of writers on a shared drive
//! never clash), and `journal/compacted-*.jsonl` files into which gc folds
//! old entries. Readers merge both and drop duplicates by entry id, so a
//! crash mid-compaction loses nothing. Specified in docs/format.md §12.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::error::{IoContext, Result};
use crate::repo::Repo;

pub const DIR: &str = "journal";
pub const VERSION: u32 = 1;
const COMPACTED_PREFIX: &str = "compacted-";
/// Largest journal file a reader accepts (a compacted file holds about
/// 300 bytes per operation).
const MAX_FILE: u64 = 256 << 20;

/// One operation. Field names are part of the format.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub version: u32,
    /// Unique per entry (16 hex digits, random): duplicates are dropped.
    pub id: String,
    /// When the operation ended, RFC 3339 UTC, and as nanoseconds.
    pub time: String,
    pub time_ns: i64,
    pub user: String,
    pub host: String,
    /// `backup`, `restore`, `forget`, `undo-forget`, `gc`, `tag`, `import`,
    /// `migrate`, ... (readers must accept kinds they do not know).
    pub kind: String,
    /// `ok` or `error`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The source (board or folder name) the operation was about, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Snapshot ids the operation made, read or removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<String>,
    /// Counts and bytes, per kind (e.g. `files`, `bytes_added`, `removed`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// 16 random hex digits.
pub fn random_id() -> String {
    let mut b = [0u8; 8];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut b))
        .is_ok();
    if !ok {
        let t = jiff::Timestamp::now().as_nanosecond();
        let h = blake3::hash(format!("{t}-{}", std::process::id()).as_bytes());
        b.copy_from_slice(&h.as_bytes()[..8]);
    }
    hex::encode(b)
}

fn read_text(repo: &Repo, key: &str) -> io::Result<String> {
    repo.storage()
        .read(key, MAX_FILE)
        .and_then(|b| String::from_utf8(b).map_err(|_| io::ErrorKind::InvalidData.into()))
}

/// Write one entry as its own file, `journal/<UTC time>-<id>.json`
/// (names sort by time), durably and without overwriting anything.
pub fn record(repo: &Repo, entry: &Entry) -> Result<PathBuf> {
    let t = jiff::Timestamp::from_nanosecond(entry.time_ns as i128)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let name = format!("{}-{}.json", t.strftime("%Y%m%dT%H%M%S%.9fZ"), entry.id);
    let key = format!("{DIR}/{name}");
    let path = repo.storage().locate(&key);
    let mut bytes = serde_json::to_vec(entry).expect("journal entry serialises");
    bytes.push(b'\n');
    repo.storage().put_new(&key, &bytes, true).at(&path)?;
    let _ = repo.storage().sync_entry(&key);
    Ok(path)
}

/// Every entry, oldest first, duplicates (by id) dropped. Unreadable or
/// foreign files are skipped and named in `warnings`.
pub fn list(repo: &Repo, warnings: &mut Vec<String>) -> Result<Vec<Entry>> {
    let (entries, _) = read_all(repo, None, warnings)?;
    Ok(entries)
}

/// Read the journal; with `older_than_ns`, also say which files hold only
/// entries older than that (loose ones) or are compacted files.
fn read_all(
    repo: &Repo,
    older_than_ns: Option<i64>,
    warnings: &mut Vec<String>,
) -> Result<(Vec<Entry>, Vec<String>)> {
    let mut out = Vec::new();
    let mut old_files = Vec::new();
    for name in repo.list_dir(DIR)? {
        let key = format!("{DIR}/{name}");
        let path = repo.storage().locate(&key);
        if name.starts_with(atomic::TEMP_PREFIX) {
            continue;
        }
        let compacted = name.starts_with(COMPACTED_PREFIX) && name.ends_with(".jsonl");
        if !compacted && !name.ends_with(".json") {
            continue;
        }
        // Anyone can drop a file here: one that is not a regular file, too
        // large, unreadable or not UTF-8 is skipped with a warning, never
        // read whole or allowed to stop the listing.
        let text = match read_text(repo, &key) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                warnings.push(format!("{}: not a journal file ({e})", path.display()));
                continue;
            }
        };
        let mut all_old = true;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Entry>(line) {
                Ok(e) => {
                    all_old &= older_than_ns.is_some_and(|t| e.time_ns < t);
                    out.push(e);
                }
                Err(err) => {
                    all_old = false;
                    warnings.push(format!(
                        "{}: not a journal entry ({})",
                        path.display(),
                        crate::error::shorten(err.to_string(), 200)
                    ));
                }
            }
        }
        if older_than_ns.is_some() && (compacted || all_old) {
            old_files.push(key);
        }
    }
    let mut seen = HashSet::new();
    out.retain(|e| seen.insert(e.id.clone()));
    out.sort_by(|a, b| a.time_ns.cmp(&b.time_ns).then_with(|| a.id.cmp(&b.id)));
    Ok((out, old_files))
}

/// Fold every entry older than `older_than_ns` and every earlier compacted
/// file into one new write-once `compacted-*.jsonl`, then delete the files
/// it replaces. Returns how many files were folded. Safe with concurrent
/// writers (new entries are younger) and concurrent compactions (each only
/// deletes files whose entries its own new file holds).
pub fn compact(repo: &Repo, older_than_ns: i64) -> Result<usize> {
    let mut warnings = Vec::new();
    let (_, files) = read_all(repo, Some(older_than_ns), &mut warnings)?;
    if files.len() < 2 {
        return Ok(0);
    }
    // What the folded files hold: old entries, and whatever compacted files hold.
    let mut keep = Vec::new();
    for f in &files {
        let text = read_text(repo, f).at(repo.storage().locate(f))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Ok(e) = serde_json::from_str::<Entry>(line) {
                keep.push(e);
            }
        }
    }
    let mut seen = HashSet::new();
    keep.retain(|e| seen.insert(e.id.clone()));
    keep.sort_by(|a, b| a.time_ns.cmp(&b.time_ns).then_with(|| a.id.cmp(&b.id)));
    let mut body = Vec::new();
    for e in &keep {
        serde_json::to_writer(&mut body, e).expect("journal entry serialises");
        body.write_all(b"\n").expect("write to a Vec");
    }
    let stamp = |ns: i64| {
        jiff::Timestamp::from_nanosecond(ns as i128)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string()
    };
    let first = keep.first().map_or(0, |e| e.time_ns);
    let last = keep.last().map_or(0, |e| e.time_ns);
    let key = format!(
        "{DIR}/{COMPACTED_PREFIX}{}-{}-{}.jsonl",
        stamp(first),
        stamp(last),
        random_id()
    );
    let storage = repo.storage();
    storage
        .put_new(&key, &body, true)
        .at(storage.locate(&key))?;
    storage.sync_entry(&key).at(storage.locate(&key))?;
    for f in &files {
        storage.delete(f).at(storage.locate(f))?;
    }
    if let Some(f) = files.first() {
        let _ = storage.sync_entry(f);
    }
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str, t: i64) -> Entry {
        Entry {
            version: VERSION,
            id: random_id(),
            time: String::new(),
            time_ns: t,
            user: "ana".into(),
            host: "lab".into(),
            kind: kind.into(),
            outcome: "ok".into(),
            ..Entry::default()
        }
    }

    #[test]
    fn a_foreign_file_is_a_warning_not_an_error() {
        // Found by tests/fuzz_decoders.rs: one journal file that was not
        // UTF-8 made every listing fail.
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repo::init(&tmp.path().join("r")).unwrap();
        record(&repo, &entry("backup", 1_000)).unwrap();
        let dir = tmp.path().join("r").join(DIR);
        std::fs::write(dir.join("x.json"), b"{\xff\xfe}\n").unwrap();
        // Too large to be one (sparse: costs no disk).
        std::fs::File::create(dir.join("y.json"))
            .unwrap()
            .set_len(MAX_FILE + 1)
            .unwrap();
        // A directory is not a file of the journal: not even listed.
        std::fs::create_dir(dir.join("d.json")).unwrap();
        let mut w = Vec::new();
        assert_eq!(list(&repo, &mut w).unwrap().len(), 1);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().all(|m| m.contains("not a journal file")), "{w:?}");
    }

    #[test]
    fn record_list_and_compact_keep_every_entry_once() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repo::init(&tmp.path().join("r")).unwrap();
        for i in 0..5 {
            record(&repo, &entry("backup", 1_000 + i)).unwrap();
        }
        record(&repo, &entry("gc", 9_000)).unwrap();
        let mut w = Vec::new();
        assert_eq!(list(&repo, &mut w).unwrap().len(), 6);
        assert_eq!(compact(&repo, 5_000).unwrap(), 5);
        let after = list(&repo, &mut w).unwrap();
        assert_eq!(after.len(), 6);
        assert_eq!(after.last().unwrap().kind, "gc");
        let files = repo.list_dir(DIR).unwrap();
        assert_eq!(files.len(), 2, "{files:?}");
        // A second compaction folds the compacted file and the now old entry.
        assert_eq!(compact(&repo, 10_000).unwrap(), 2);
        assert_eq!(list(&repo, &mut w).unwrap().len(), 6);
        assert!(w.is_empty(), "{w:?}");
    }
}
