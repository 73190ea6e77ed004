//! The object envelope: a fixed 24-byte header followed by the payload,
//! zstd-compressed or stored raw when zstd does not make it smaller.
//!
//! ```text
//! offset size field
//!  0     4    magic "BELY"
//!  4     1    format version (1)
//!  5     1    kind (1 chunk, 2 tree, 3 snapshot)
//!  6     1    compression (0 none, 1 zstd)
//!  7     1    reserved, 0
//!  8     8    raw (uncompressed) payload length, u64 little-endian
//! 16     8    stored payload length, u64 little-endian
//! 24     ...  stored payload
//! ```

use std::cell::RefCell;
use std::io::Read;

use crate::codec::MAX_PAYLOAD;

pub const MAGIC: &[u8; 4] = b"BELY";
pub const OBJECT_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ObjectKind {
    Chunk = 1,
    Tree = 2,
    Snapshot = 3,
    /// An index object (format v2): lists packs and their objects.
    Index = 4,
    /// A pack file (format v2). Only its id uses this kind: packs are not
    /// envelopes.
    Pack = 5,
}

impl ObjectKind {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(ObjectKind::Chunk),
            2 => Some(ObjectKind::Tree),
            3 => Some(ObjectKind::Snapshot),
            4 => Some(ObjectKind::Index),
            5 => Some(ObjectKind::Pack),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Chunk => "chunk",
            ObjectKind::Tree => "tree",
            ObjectKind::Snapshot => "snapshot",
            ObjectKind::Index => "index",
            ObjectKind::Pack => "pack",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Compression {
    None = 0,
    Zstd = 1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: ObjectKind,
    pub compression: Compression,
    pub raw_len: u64,
    pub stored_len: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(MAGIC);
        h[4] = OBJECT_VERSION;
        h[5] = self.kind as u8;
        h[6] = self.compression as u8;
        h[8..16].copy_from_slice(&self.raw_len.to_le_bytes());
        h[16..24].copy_from_slice(&self.stored_len.to_le_bytes());
        h
    }

    /// Parse a header; the error says what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Header, String> {
        if bytes.len() < HEADER_LEN {
            return Err(format!("{} bytes, shorter than the header", bytes.len()));
        }
        if &bytes[0..4] != MAGIC {
            return Err("bad magic (not a belay object)".into());
        }
        if bytes[4] != OBJECT_VERSION {
            return Err(format!("unsupported object version {}", bytes[4]));
        }
        let kind = ObjectKind::from_byte(bytes[5])
            .filter(|k| *k != ObjectKind::Pack)
            .ok_or(format!("unknown kind {}", bytes[5]))?;
        let compression = match bytes[6] {
            0 => Compression::None,
            1 => Compression::Zstd,
            c => return Err(format!("unknown compression {c}")),
        };
        if bytes[7] != 0 {
            return Err("reserved header byte is not 0".into());
        }
        let raw_len = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
        let stored_len = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
        if raw_len > MAX_PAYLOAD as u64 || stored_len > MAX_PAYLOAD as u64 {
            return Err("payload length exceeds the cap".into());
        }
        if compression == Compression::None && raw_len != stored_len {
            return Err("uncompressed payload with differing lengths".into());
        }
        Ok(Header {
            kind,
            compression,
            raw_len,
            stored_len,
        })
    }
}

/// Payloads claiming at most this many bytes are decompressed into a buffer
/// of the claimed size in one call; larger claims grow with the output.
const PREALLOCATE_UP_TO: u64 = 1 << 20;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Build the complete object file bytes (header + payload) for `raw`.
/// Compression contexts are reused per thread.
pub fn encode_object(kind: ObjectKind, raw: &[u8], level: i32) -> Vec<u8> {
    let compressed = if level == 0 || raw.len() < 32 {
        None
    } else {
        COMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().map(|(l, _)| *l) != Some(level) {
                *slot = Some((
                    level,
                    zstd::bulk::Compressor::new(level).expect("zstd context"),
                ));
            }
            let (_, c) = slot.as_mut().unwrap();
            c.compress(raw).ok()
        })
    };
    let (compression, payload): (Compression, &[u8]) = match &compressed {
        Some(c) if c.len() < raw.len() => (Compression::Zstd, c),
        _ => (Compression::None, raw),
    };
    let header = Header {
        kind,
        compression,
        raw_len: raw.len() as u64,
        stored_len: payload.len() as u64,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(payload);
    out
}

/// Split an object file into its header and raw payload. Does not check the
/// id; [`crate::repo::Repo::read_object`] does.
pub fn decode_object(file: &[u8]) -> Result<(Header, Vec<u8>), String> {
    let header = Header::decode(file)?;
    let body = &file[HEADER_LEN..];
    if (body.len() as u64) < header.stored_len {
        return Err(format!(
            "truncated: {} payload bytes of {}",
            body.len(),
            header.stored_len
        ));
    }
    if (body.len() as u64) > header.stored_len {
        return Err(format!(
            "{} bytes after the payload",
            body.len() as u64 - header.stored_len
        ));
    }
    let raw = match header.compression {
        Compression::None => body.to_vec(),
        // A large claim is not believed up front: the output grows only as
        // far as the stream really expands (and stops one byte past the
        // claim, for a bomb).
        Compression::Zstd if header.raw_len > PREALLOCATE_UP_TO => {
            let mut out = Vec::new();
            zstd::stream::read::Decoder::new(body)
                .and_then(|d| d.take(header.raw_len + 1).read_to_end(&mut out))
                .map_err(|e| format!("zstd: {e}"))?;
            out
        }
        Compression::Zstd => DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new().expect("zstd context"));
            }
            slot.as_mut()
                .unwrap()
                .decompress(body, header.raw_len as usize)
                .map_err(|e| format!("zstd: {e}"))
        })?,
    };
    if raw.len() as u64 != header.raw_len {
        return Err(format!(
            "payload decompressed to {} bytes, header says {}",
            raw.len(),
            header.raw_len
        ));
    }
    Ok((header, raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_compressible_and_incompressible() {
        let text = b"print('hello')\n".repeat(100);
        let obj = encode_object(ObjectKind::Chunk, &text, 3);
        assert_eq!(obj[6], Compression::Zstd as u8);
        assert!(obj.len() < text.len());
        assert_eq!(decode_object(&obj).unwrap().1, text);

        let mut x = 0x1234_5678_u32;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let obj = encode_object(ObjectKind::Chunk, &noise, 3);
        assert_eq!(obj[6], Compression::None as u8);
        assert_eq!(decode_object(&obj).unwrap().1, noise);
    }

    #[test]
    fn truncated_and_garbage_are_rejected() {
        let obj = encode_object(ObjectKind::Tree, &b"abc".repeat(50), 3);
        assert!(decode_object(&obj[..obj.len() - 1]).is_err());
        assert!(decode_object(&obj[..10]).is_err());
        assert!(decode_object(b"").is_err());
        let mut extra = obj.clone();
        extra.push(0);
        assert!(decode_object(&extra).is_err());
    }
}
