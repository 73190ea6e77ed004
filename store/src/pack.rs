//! Packs and index objects (repository format v2, docs/format.md §13).
//!
//! A pack is one file holding many object envelopes back to back, followed
//! by a footer that lists them and a fixed-size trailer:
//!
//! ```text
//! offset        size   field
//! 0             4      magic "BELP"
//! 4             1      pack format version (1)
//! 5             3      reserved, 0
//! 8             ...    envelopes (docs/format.md §3.2), in footer order
//! F             48·n   footer: one entry per envelope (see FOOTER_ENTRY_LEN)
//! F + 48·n      16     trailer: F (u64 LE), n (u32 LE), magic "BLPK"
//! ```
//!
//! A pack is named by `BLAKE3(5 || whole file)`, so it lives under
//! `objects/ab/cd/` like every other object and `check` can verify it by
//! its name alone. An index object (kind 4, an ordinary envelope stored at
//! `index/<id>`) repeats the footers of the packs one backup (or gc)
//! wrote, so readers find any object without opening the packs.

use serde::{Deserialize, Serialize};

use crate::id::ObjectId;
use crate::object::ObjectKind;

pub const PACK_MAGIC: &[u8; 4] = b"BELP";
pub const PACK_VERSION: u8 = 1;
pub const PACK_HEADER_LEN: usize = 8;
/// id (32) | offset u64 LE (8) | length u32 LE (4) | kind (1) | reserved (3).
pub const FOOTER_ENTRY_LEN: usize = 48;
pub const TRAILER_MAGIC: &[u8; 4] = b"BLPK";
pub const TRAILER_LEN: usize = 16;
/// A pack is closed once its envelopes reach this many bytes.
pub const PACK_TARGET: usize = 16 << 20;
/// Largest pack a reader accepts (a pack never holds more than the target
/// plus one object).
pub const MAX_PACK: u64 = 1 << 30;

/// Where one object's envelope lies in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub id: ObjectId,
    pub kind: ObjectKind,
    /// Offset of the envelope from the start of the pack file.
    pub offset: u64,
    /// Length of the envelope (header and stored payload).
    pub length: u32,
}

/// Builds one pack in memory.
pub struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl Default for PackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PackBuilder {
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(1 << 20);
        buf.extend_from_slice(PACK_MAGIC);
        buf.push(PACK_VERSION);
        buf.extend_from_slice(&[0, 0, 0]);
        PackBuilder {
            buf,
            entries: Vec::new(),
        }
    }

    /// Append one envelope (as built by [`crate::object::encode_object`]).
    pub fn push(&mut self, id: ObjectId, kind: ObjectKind, envelope: &[u8]) {
        self.entries.push(PackEntry {
            id,
            kind,
            offset: self.buf.len() as u64,
            length: envelope.len() as u32,
        });
        self.buf.extend_from_slice(envelope);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The pack so far (header and envelopes).
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes of envelopes so far (with the header).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// The complete pack file: its id, its bytes and its entries.
    pub fn finish(mut self) -> (ObjectId, Vec<u8>, Vec<PackEntry>) {
        let footer_offset = self.buf.len() as u64;
        for e in &self.entries {
            self.buf.extend_from_slice(&encode_entry(e));
        }
        self.buf.extend_from_slice(&footer_offset.to_le_bytes());
        self.buf
            .extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(TRAILER_MAGIC);
        let id = ObjectId::compute(ObjectKind::Pack, &self.buf);
        (id, self.buf, self.entries)
    }
}

fn encode_entry(e: &PackEntry) -> [u8; FOOTER_ENTRY_LEN] {
    let mut b = [0u8; FOOTER_ENTRY_LEN];
    b[0..32].copy_from_slice(&e.id.0);
    b[32..40].copy_from_slice(&e.offset.to_le_bytes());
    b[40..44].copy_from_slice(&e.length.to_le_bytes());
    b[44] = e.kind as u8;
    b
}

/// Parse a trailer (the last [`TRAILER_LEN`] bytes of a pack of `file_len`
/// bytes): the footer's offset and entry count.
pub fn parse_trailer(trailer: &[u8], file_len: u64) -> Result<(u64, u32), String> {
    if trailer.len() != TRAILER_LEN || file_len < (PACK_HEADER_LEN + TRAILER_LEN) as u64 {
        return Err(format!("{file_len} bytes, too short for a pack"));
    }
    if &trailer[12..16] != TRAILER_MAGIC {
        return Err("bad trailer magic (not a belay pack, or truncated)".into());
    }
    let footer_offset = u64::from_le_bytes(trailer[0..8].try_into().unwrap());
    let count = u32::from_le_bytes(trailer[8..12].try_into().unwrap());
    let footer_len = count as u64 * FOOTER_ENTRY_LEN as u64;
    if footer_offset < PACK_HEADER_LEN as u64
        || footer_offset
            .checked_add(footer_len)
            .and_then(|x| x.checked_add(TRAILER_LEN as u64))
            != Some(file_len)
    {
        return Err(format!(
            "trailer says {count} entries from offset {footer_offset}, which does not fit a file of {file_len} bytes"
        ));
    }
    Ok((footer_offset, count))
}

/// Parse a footer (its `count` entries) of a pack whose footer starts at
/// `footer_offset`. Entries must be in file order, envelopes back to back
/// from the header to the footer.
pub fn parse_footer(footer: &[u8], footer_offset: u64) -> Result<Vec<PackEntry>, String> {
    if !footer.len().is_multiple_of(FOOTER_ENTRY_LEN) {
        return Err("footer length is not a whole number of entries".into());
    }
    let mut out = Vec::with_capacity(footer.len() / FOOTER_ENTRY_LEN);
    let mut next = PACK_HEADER_LEN as u64;
    for (i, b) in footer.chunks_exact(FOOTER_ENTRY_LEN).enumerate() {
        let id = ObjectId(b[0..32].try_into().unwrap());
        let offset = u64::from_le_bytes(b[32..40].try_into().unwrap());
        let length = u32::from_le_bytes(b[40..44].try_into().unwrap());
        let kind = match ObjectKind::from_byte(b[44]) {
            Some(k @ (ObjectKind::Chunk | ObjectKind::Tree)) => k,
            _ => return Err(format!("footer entry {i}: kind {} cannot be packed", b[44])),
        };
        if b[45..48] != [0, 0, 0] {
            return Err(format!("footer entry {i}: reserved bytes are not 0"));
        }
        if offset != next || (length as usize) < crate::object::HEADER_LEN {
            return Err(format!(
                "footer entry {i}: envelope at {offset} (+{length}) does not follow the previous one at {next}"
            ));
        }
        next = offset + length as u64;
        out.push(PackEntry {
            id,
            kind,
            offset,
            length,
        });
    }
    if next != footer_offset {
        return Err(format!(
            "envelopes end at {next} but the footer starts at {footer_offset}"
        ));
    }
    Ok(out)
}

/// Parse the entries of a whole pack held in memory.
pub fn parse_pack(bytes: &[u8]) -> Result<Vec<PackEntry>, String> {
    if bytes.len() < PACK_HEADER_LEN + TRAILER_LEN {
        return Err(format!("{} bytes, too short for a pack", bytes.len()));
    }
    check_header(&bytes[..PACK_HEADER_LEN])?;
    let (footer_offset, _) =
        parse_trailer(&bytes[bytes.len() - TRAILER_LEN..], bytes.len() as u64)?;
    parse_footer(
        &bytes[footer_offset as usize..bytes.len() - TRAILER_LEN],
        footer_offset,
    )
}

pub fn check_header(h: &[u8]) -> Result<(), String> {
    if h.len() < PACK_HEADER_LEN || &h[0..4] != PACK_MAGIC {
        return Err("bad magic (not a belay pack)".into());
    }
    if h[4] != PACK_VERSION {
        return Err(format!("unsupported pack version {}", h[4]));
    }
    if h[5..8] != [0, 0, 0] {
        return Err("reserved pack header bytes are not 0".into());
    }
    Ok(())
}

// ---- index objects ------------------------------------------------------

/// The payload of an index object (kind 4), postcard-encoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexPayload {
    V1(IndexV1),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexV1 {
    /// Index objects this one replaces (gc's consolidation), sorted: a
    /// reader that has this index may skip them.
    pub supersedes: Vec<ObjectId>,
    /// Packs, sorted by id.
    pub packs: Vec<IndexedPack>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedPack {
    pub pack: ObjectId,
    /// The pack file's length.
    pub size: u64,
    /// The pack's footer, in file order.
    pub entries: Vec<IndexedEntry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedEntry {
    pub id: ObjectId,
    pub kind: u8,
    pub offset: u64,
    pub length: u32,
}

impl IndexedEntry {
    pub fn from_entry(e: &PackEntry) -> Self {
        IndexedEntry {
            id: e.id,
            kind: e.kind as u8,
            offset: e.offset,
            length: e.length,
        }
    }
}

impl IndexV1 {
    pub fn encode(&self) -> Vec<u8> {
        crate::codec::encode(&IndexPayload::V1(self.clone()))
    }

    /// Decode and validate (sorted packs and supersedes, entries in file
    /// order, chunk or tree kinds).
    pub fn decode(bytes: &[u8]) -> Result<IndexV1, String> {
        let IndexPayload::V1(ix) = crate::codec::decode::<IndexPayload>(bytes)?;
        if !ix.supersedes.windows(2).all(|w| w[0] < w[1]) {
            return Err("superseded index ids are not sorted and unique".into());
        }
        if !ix.packs.windows(2).all(|w| w[0].pack < w[1].pack) {
            return Err("packs are not sorted and unique".into());
        }
        for p in &ix.packs {
            let mut next = PACK_HEADER_LEN as u64;
            for e in &p.entries {
                if !matches!(e.kind, 1 | 2) {
                    return Err(format!("pack {}: entry of kind {}", p.pack.short(), e.kind));
                }
                if e.offset != next || (e.length as usize) < crate::object::HEADER_LEN {
                    return Err(format!(
                        "pack {}: entries are not back to back",
                        p.pack.short()
                    ));
                }
                next = e.offset + e.length as u64;
            }
            let footer = p.entries.len() as u64 * FOOTER_ENTRY_LEN as u64 + TRAILER_LEN as u64;
            if next.checked_add(footer) != Some(p.size) {
                return Err(format!(
                    "pack {}: size {} does not match its entries",
                    p.pack.short(),
                    p.size
                ));
            }
        }
        Ok(ix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::encode_object;

    #[test]
    fn pack_roundtrip_and_damage() {
        let mut b = PackBuilder::new();
        let mut want = Vec::new();
        for i in 0..5u8 {
            let raw = vec![i; 100 + i as usize * 50];
            let id = ObjectId::compute(ObjectKind::Chunk, &raw);
            b.push(
                id,
                ObjectKind::Chunk,
                &encode_object(ObjectKind::Chunk, &raw, 3),
            );
            want.push(id);
        }
        let (id, bytes, entries) = b.finish();
        assert_eq!(id, ObjectId::compute(ObjectKind::Pack, &bytes));
        let parsed = parse_pack(&bytes).unwrap();
        assert_eq!(parsed, entries);
        assert_eq!(parsed.iter().map(|e| e.id).collect::<Vec<_>>(), want);
        for cut in [1, 10, 16, 48, bytes.len() - 9] {
            assert!(
                parse_pack(&bytes[..bytes.len() - cut]).is_err(),
                "cut {cut}"
            );
        }
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 20] ^= 1; // a footer entry's reserved byte
        assert!(parse_pack(&bad).is_err());
    }

    #[test]
    fn index_roundtrip_and_validation() {
        let mut b = PackBuilder::new();
        let raw = b"print('hi')\n".repeat(10);
        let cid = ObjectId::compute(ObjectKind::Chunk, &raw);
        b.push(
            cid,
            ObjectKind::Chunk,
            &encode_object(ObjectKind::Chunk, &raw, 3),
        );
        let (pid, bytes, entries) = b.finish();
        let ix = IndexV1 {
            supersedes: vec![],
            packs: vec![IndexedPack {
                pack: pid,
                size: bytes.len() as u64,
                entries: entries.iter().map(IndexedEntry::from_entry).collect(),
            }],
        };
        assert_eq!(IndexV1::decode(&ix.encode()).unwrap(), ix);
        let mut wrong = ix.clone();
        wrong.packs[0].size += 1;
        assert!(IndexV1::decode(&wrong.encode()).is_err());
    }
}
