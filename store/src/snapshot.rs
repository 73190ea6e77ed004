//! Snapshots: the commit objects of belay. A snapshot names a root tree, its
//! parents (history only: they keep nothing alive), when and where it was
//! taken and what the source said about itself.

use serde::{Deserialize, Serialize};

use crate::chunker::ChunkerParams;
use crate::codec;
use crate::id::ObjectId;

/// Totals recorded at backup time. Field order is part of the format.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Sum of the sizes of all files.
    pub bytes: u64,
    /// Files whose content was read from the source (new or changed).
    pub files_read: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Objects this backup added to the repository, and their size on disk.
    pub objects_added: u64,
    pub bytes_added: u64,
}

/// Field order is part of the format (see `docs/format.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub tree: ObjectId,
    pub parents: Vec<ObjectId>,
    /// Host clock at backup time, nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// The source name (the branch): a folder's name or a board's id.
    pub source: String,
    /// Where the files came from, e.g. `dir:/home/ana/proj` or
    /// `serial:/dev/ttyACM0`.
    pub location: String,
    pub host: String,
    pub user: String,
    pub message: String,
    /// User metadata (`--meta K=V`), sorted by key, keys unique.
    pub meta: Vec<(String, String)>,
    /// What the source said about itself (board firmware, ids), sorted by key.
    pub device: Vec<(String, String)>,
    pub chunker: ChunkerParams,
    pub summary: Summary,
}

/// `meta` keys belay itself writes (docs/format.md §6). A safety snapshot
/// taken before a restore: `belay.safety=restore` and `belay.restore_of` =
/// the restored snapshot's id.
pub const META_SAFETY: &str = "belay.safety";
pub const META_RESTORE_OF: &str = "belay.restore_of";
/// The state recorded right after a restore to a board: the id restored.
pub const META_RESTORED_FROM: &str = "belay.restored_from";
/// The backup's `--exclude` globs, one per line, in the order given.
pub const META_EXCLUDE: &str = "belay.exclude";

#[derive(Serialize, Deserialize)]
enum SnapshotRecord {
    V1(Snapshot),
}

impl Snapshot {
    /// A value of the board facts (`device`), e.g. `firmware`.
    pub fn device_value(&self, k: &str) -> Option<&str> {
        self.device
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode(&SnapshotRecord::V1(self.clone()))
    }

    pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
        let SnapshotRecord::V1(s) = codec::decode::<SnapshotRecord>(bytes)?;
        for list in [&s.meta, &s.device] {
            if list.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err("metadata keys not sorted or not unique".into());
            }
        }
        Ok(s)
    }

    /// The value of a `meta` key.
    pub fn meta_value(&self, key: &str) -> Option<&str> {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this is a safety snapshot taken before a restore.
    pub fn is_safety(&self) -> bool {
        self.meta_value(META_SAFETY).is_some()
    }

    /// The `--exclude` globs the backup was made with.
    pub fn excludes(&self) -> Vec<String> {
        self.meta_value(META_EXCLUDE)
            .map(|v| v.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// `time_ns` as a timestamp.
    pub fn time(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_nanosecond(self.time_ns as i128)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
}
