//! Trees: one object per directory, entries sorted by name bytes, names
//! unique. An unchanged directory encodes to the same bytes and so the same
//! id, which lets diff and gc skip whole subtrees.

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::id::{ObjectId, Sha256};
use crate::path::valid_name;

/// How deep directories may nest: a directory's tree is at most this many
/// levels below the snapshot's root tree (a path holds at most this many
/// directories). Readers refuse deeper trees with
/// [`crate::Error::TooDeep`] and `check` reports them, so no walk's memory
/// or stack grows with what a hostile repository claims. Git's
/// `core.maxTreeDepth` has the same default; a path within Linux's
/// `PATH_MAX` (4096 bytes) nests at most 2048 deep.
pub const MAX_DEPTH: usize = 4096;

/// What a tree entry is. Variant order is part of the format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Node {
    /// A regular file: its length, the SHA-256 of its whole content and the
    /// ids of its chunks in order (none for an empty file).
    File {
        size: u64,
        sha256: Sha256,
        chunks: Vec<ObjectId>,
    },
    /// A directory and the id of its tree.
    Dir { tree: ObjectId },
    /// A symbolic link and its target, as raw bytes.
    Symlink {
        #[serde(with = "serde_bytes")]
        target: Vec<u8>,
    },
}

impl Node {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Node::File { .. } => "file",
            Node::Dir { .. } => "dir",
            Node::Symlink { .. } => "symlink",
        }
    }
    pub fn size(&self) -> u64 {
        match self {
            Node::File { size, .. } => *size,
            Node::Symlink { target } => target.len() as u64,
            Node::Dir { .. } => 0,
        }
    }
}

/// One entry of a directory. Field order is part of the format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// Unix permission bits (`0o7777` mask); 0 when the source has none.
    pub mode: u32,
    /// Modification time in nanoseconds since the Unix epoch, if the source
    /// keeps one.
    pub mtime_ns: Option<i64>,
    pub node: Node,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub entries: Vec<TreeEntry>,
}

/// The versioned on-disk form; new versions are appended, never reordered.
#[derive(Serialize, Deserialize)]
enum TreeRecord {
    V1(Tree),
}

impl Tree {
    /// Encode canonically. Entries must already be sorted and unique.
    pub fn encode(&self) -> Vec<u8> {
        debug_assert!(self.check().is_ok());
        codec::encode(&TreeRecord::V1(self.clone()))
    }

    pub fn decode(bytes: &[u8]) -> Result<Tree, String> {
        let TreeRecord::V1(tree) = codec::decode::<TreeRecord>(bytes)?;
        tree.check()?;
        Ok(tree)
    }

    /// Names valid, strictly increasing (sorted and unique).
    pub fn check(&self) -> Result<(), String> {
        for e in &self.entries {
            if !valid_name(&e.name) {
                return Err(format!(
                    "invalid entry name {:?}",
                    crate::path::display(&e.name)
                ));
            }
        }
        for w in self.entries.windows(2) {
            if w[0].name >= w[1].name {
                return Err(format!(
                    "entries not sorted or not unique at {:?}",
                    crate::path::display(&w[1].name)
                ));
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &[u8]) -> Option<&TreeEntry> {
        self.entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_entry() -> impl Strategy<Value = TreeEntry> {
        let node = prop_oneof![
            (
                any::<u64>(),
                any::<[u8; 32]>(),
                prop::collection::vec(any::<[u8; 32]>(), 0..4)
            )
                .prop_map(|(size, sha256, c)| Node::File {
                    size,
                    sha256,
                    chunks: c.into_iter().map(ObjectId).collect()
                }),
            any::<[u8; 32]>().prop_map(|t| Node::Dir { tree: ObjectId(t) }),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(|target| Node::Symlink { target }),
        ];
        (
            prop::collection::vec(1u8..=255, 1..20),
            any::<u32>(),
            any::<Option<i64>>(),
            node,
        )
            .prop_map(|(name, mode, mtime_ns, node)| TreeEntry {
                name,
                mode,
                mtime_ns,
                node,
            })
    }

    proptest! {
        #[test]
        fn tree_roundtrip(mut entries in prop::collection::vec(arb_entry(), 0..20)) {
            entries.retain(|e| valid_name(&e.name));
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            entries.dedup_by(|a, b| a.name == b.name);
            let t = Tree { entries };
            let bytes = t.encode();
            prop_assert_eq!(Tree::decode(&bytes).unwrap(), t);
            let mut extra = bytes.clone();
            extra.push(0);
            prop_assert!(Tree::decode(&extra).is_err());
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = Tree::decode(&bytes);
        }
    }

    #[test]
    fn unsorted_tree_is_rejected() {
        let e = |n: &[u8]| TreeEntry {
            name: n.to_vec(),
            mode: 0,
            mtime_ns: None,
            node: Node::Symlink { target: vec![] },
        };
        let bad = codec::encode(&TreeRecord::V1(Tree {
            entries: vec![e(b"b"), e(b"a")],
        }));
        assert!(Tree::decode(&bad).is_err());
    }
}
