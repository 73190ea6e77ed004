//! The on-disk format is a contract (docs/format.md): fixed values must
//! encode to exactly these bytes, and these bytes must decode to exactly
//! these values, in every future version of belay.

use belay_store::ObjectId;
use belay_store::chunker::ChunkerParams;
use belay_store::object::{ObjectKind, decode_object, encode_object};
use belay_store::snapshot::{Snapshot, Summary};
use belay_store::tree::{Node, Tree, TreeEntry};

fn id(byte: u8) -> ObjectId {
    ObjectId([byte; 32])
}

fn sample_tree() -> Tree {
    Tree {
        entries: vec![
            TreeEntry {
                name: b"lib".to_vec(),
                mode: 0o755,
                mtime_ns: Some(1_700_000_000_000_000_000),
                node: Node::Dir { tree: id(0xdd) },
            },
            TreeEntry {
                name: b"main.py".to_vec(),
                mode: 0o644,
                mtime_ns: None,
                node: Node::File {
                    size: 300,
                    sha256: [0x5a; 32],
                    chunks: vec![id(0xc1)],
                },
            },
            TreeEntry {
                name: b"x".to_vec(),
                mode: 0,
                mtime_ns: Some(-1),
                node: Node::Symlink {
                    target: b"main.py".to_vec(),
                },
            },
        ],
    }
}

fn sample_snapshot() -> Snapshot {
    Snapshot {
        tree: id(0x11),
        parents: vec![id(0x22)],
        time_ns: 1_700_000_000_123_456_789,
        source: "pico".into(),
        location: "dir:/b".into(),
        host: "h".into(),
        user: "u".into(),
        message: "m".into(),
        meta: vec![("k".into(), "v".into())],
        device: vec![],
        chunker: ChunkerParams {
            algorithm: 1,
            whole_file_below: 65536,
            min_size: 16384,
            avg_size: 65536,
            max_size: 262144,
        },
        summary: Summary {
            files: 1,
            dirs: 2,
            symlinks: 3,
            bytes: 300,
            files_read: 1,
            bytes_read: 300,
            objects_added: 4,
            bytes_added: 500,
        },
    }
}

const TREE_HEX: &str = "0003036c6962ed03018080d0e2c6bfce972f01dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd076d61696e2e7079a4030000ac025a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a01c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1017800010102076d61696e2e7079";
const SNAPSHOT_HEX: &str = "001111111111111111111111111111111111111111111111111111111111111111012222222222222222222222222222222222222222222222222222222222222222aab4aed8c7bfce972f047069636f066469723a2f6201680175016d01016b01760001808004808001808004808010010203ac0201ac0204f403";
const TREE_ID: &str = "6a696498cde8fb835d8c27840cbdb7b0612a11483a98fe8832280caa7e47b1dc";
const SNAPSHOT_ID: &str = "2342accb7e98a3be74efc8a8cdd959547efeb06af0953480ec10ad87de521d95";
const CHUNK_ID_OF_HELLO: &str = "60200926b98f21cddd0dc4fb5c05e6a4d7ab691b9c8b01295ebefe1daca3bbe5";

#[test]
fn tree_vector() {
    let t = sample_tree();
    let bytes = t.encode();
    assert_eq!(hex::encode(&bytes), TREE_HEX);
    assert_eq!(Tree::decode(&hex::decode(TREE_HEX).unwrap()).unwrap(), t);
    assert_eq!(
        ObjectId::compute(ObjectKind::Tree, &bytes).to_hex(),
        TREE_ID
    );
}

#[test]
fn snapshot_vector() {
    let s = sample_snapshot();
    let bytes = s.encode();
    assert_eq!(hex::encode(&bytes), SNAPSHOT_HEX);
    assert_eq!(
        Snapshot::decode(&hex::decode(SNAPSHOT_HEX).unwrap()).unwrap(),
        s
    );
    assert_eq!(
        ObjectId::compute(ObjectKind::Snapshot, &bytes).to_hex(),
        SNAPSHOT_ID
    );
}

#[test]
fn chunk_vector_and_envelope() {
    let hello = b"hello\n";
    let chunk_id = ObjectId::compute(ObjectKind::Chunk, hello);
    assert_eq!(chunk_id.to_hex(), CHUNK_ID_OF_HELLO);
    // Too short to compress: stored raw, header + 6 bytes.
    let file = encode_object(ObjectKind::Chunk, hello, 3);
    assert_eq!(
        hex::encode(&file),
        "42454c5901010000060000000000000006000000000000006865 6c6c6f0a".replace(' ', "")
    );
    let (h, raw) = decode_object(&file).unwrap();
    assert_eq!(h.kind, ObjectKind::Chunk);
    assert_eq!(raw, hello);
}

#[test]
fn trailing_bytes_and_unknown_versions_are_rejected() {
    let mut t = sample_tree().encode();
    t.push(0);
    assert!(Tree::decode(&t).is_err());
    let mut s = sample_snapshot().encode();
    s[0] = 1; // version variant 1 does not exist yet
    assert!(Snapshot::decode(&s).is_err());
}

/// The pack holding only the chunk `hello\n` (docs/format.md §13.2).
const HELLO_PACK_HEX: &str = concat!(
    "42454c5001000000",
    "42454c5901010000060000000000000006000000000000006865 6c6c6f0a",
    "60200926b98f21cddd0dc4fb5c05e6a4d7ab691b9c8b01295ebefe1daca3bbe5",
    "0800000000000000 1e000000 01 000000",
    "2600000000000000 01000000 424c504b",
);
const HELLO_PACK_ID: &str = "118ab3b5703470aeb393c30bb42160845ffd8c08ad7bc90c5a26e63fa205d894";
/// The index object payload listing that pack (§13.3).
const HELLO_INDEX_PAYLOAD_HEX: &str = "000001118ab3b5703470aeb393c30bb42160845ffd8c08ad7bc90c5a26e63fa205d894660160200926b98f21cddd0dc4fb5c05e6a4d7ab691b9c8b01295ebefe1daca3bbe501081e";
const HELLO_INDEX_ID: &str = "6e22dbe9ba543b8a0430503a4cba4a0b551c686263a7aea6cf869be7a13b4d53";

#[test]
fn pack_and_index_vectors() {
    use belay_store::pack::{IndexV1, IndexedEntry, IndexedPack, PackBuilder, parse_pack};
    let hello = b"hello\n";
    let chunk_id = ObjectId::compute(ObjectKind::Chunk, hello);
    let mut b = PackBuilder::new();
    b.push(
        chunk_id,
        ObjectKind::Chunk,
        &encode_object(ObjectKind::Chunk, hello, 3),
    );
    let (pack_id, bytes, entries) = b.finish();
    let want = hex::decode(HELLO_PACK_HEX.replace(' ', "")).unwrap();
    assert_eq!(hex::encode(&bytes), hex::encode(&want));
    assert_eq!(bytes.len(), 102);
    assert_eq!(pack_id.to_hex(), HELLO_PACK_ID);
    assert_eq!(ObjectId::compute(ObjectKind::Pack, &want), pack_id);
    assert_eq!(parse_pack(&want).unwrap(), entries);

    let ix = IndexV1 {
        supersedes: vec![],
        packs: vec![IndexedPack {
            pack: pack_id,
            size: 102,
            entries: entries.iter().map(IndexedEntry::from_entry).collect(),
        }],
    };
    let payload = ix.encode();
    assert_eq!(hex::encode(&payload), HELLO_INDEX_PAYLOAD_HEX);
    assert_eq!(IndexV1::decode(&payload).unwrap(), ix);
    assert_eq!(
        ObjectId::compute(ObjectKind::Index, &payload).to_hex(),
        HELLO_INDEX_ID
    );
}
