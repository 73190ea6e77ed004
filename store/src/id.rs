//! Object ids: 32-byte blake3 digests, printed as 64 lowercase hex digits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::object::ObjectKind;

/// The id of an object: blake3 over the kind byte followed by the
/// uncompressed payload (see `docs/format.md`, "Object ids").
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId(pub [u8; 32]);

impl ObjectId {
    pub fn compute(kind: ObjectKind, payload: &[u8]) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(&[kind as u8]);
        h.update(payload);
        ObjectId(*h.finalize().as_bytes())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first `n` hex digits, for display.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        // Only lowercase is canonical; accept uppercase input but compare by bytes.
        Some(ObjectId(out))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.short())
    }
}

impl FromStr for ObjectId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ObjectId::from_hex(s).ok_or_else(|| format!("not a 64-digit hex object id: {s:?}"))
    }
}

/// A SHA-256 digest of a whole file's content. Boards compute it themselves
/// (`hashlib.sha256`), so it is how a board's file is recognised without
/// sending it.
pub use belay_source::Sha256;

pub fn sha256_hex(d: &Sha256) -> String {
    hex::encode(d)
}
