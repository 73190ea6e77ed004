//! Snapshots built by hand, for tests of what belay must do with a
//! repository its own writer would never produce (unsafe names, lying sizes).

use belay_store::object::ObjectKind;
use belay_store::repo::RefKind;
use belay_store::snapshot::{Snapshot, Summary};
use belay_store::tree::Tree;
use belay_store::{ObjectId, Repo};

/// Store `tree` as the root of a new snapshot of `source` (encoded without
/// the writer's checks, as a buggy or hostile writer could) and point the
/// source's head at it.
pub fn commit_tree(repo: &Repo, source: &str, tree: &Tree) -> ObjectId {
    let mut payload = vec![0u8]; // TreeRecord::V1
    payload.extend(postcard::to_stdvec(tree).expect("encode tree"));
    let (tree_id, _) = repo.write_object(ObjectKind::Tree, &payload).unwrap();
    let snap = Snapshot {
        tree: tree_id,
        parents: vec![],
        time_ns: 1,
        source: source.into(),
        location: "dir:/handmade".into(),
        host: "h".into(),
        user: "u".into(),
        message: String::new(),
        meta: vec![],
        device: vec![],
        chunker: repo.chunker(),
        summary: Summary::default(),
    };
    let (id, _) = repo.commit_snapshot(&snap).unwrap();
    repo.write_ref(RefKind::Head, source, &id).unwrap();
    id
}

/// A snapshot of `source` whose directories nest `depth` deep: `d/d/…/d/`
/// with the file `f` (holding `content`) at the bottom; trees are written
/// bottom-up, as a hostile writer could. Returns the snapshot id.
pub fn commit_deep_chain(repo: &Repo, source: &str, depth: usize, content: &[u8]) -> ObjectId {
    use belay_store::tree::{Node, TreeEntry};
    let (chunk, _) = repo.write_object(ObjectKind::Chunk, content).unwrap();
    let mut tree = Tree {
        entries: vec![TreeEntry {
            name: b"f".to_vec(),
            mode: 0o644,
            mtime_ns: None,
            node: Node::File {
                size: content.len() as u64,
                sha256: sha256(content),
                chunks: vec![chunk],
            },
        }],
    };
    for _ in 0..depth {
        let (id, _) = repo.write_tree(&tree).unwrap();
        tree = Tree {
            entries: vec![TreeEntry {
                name: b"d".to_vec(),
                mode: 0o755,
                mtime_ns: None,
                node: Node::Dir { tree: id },
            }],
        };
    }
    commit_tree(repo, source, &tree)
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}
