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
