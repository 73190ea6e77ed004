//! The one frozen codec for hashed structures (trees, snapshots): postcard
//! 1.x. Decoding caps the size first and rejects trailing bytes, so one
//! object has exactly one encoding.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest payload any object may have (64 MiB). A tree of a directory with
/// a million entries stays far below it.
pub const MAX_PAYLOAD: usize = 64 << 20;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("postcard encoding of an in-memory value cannot fail")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.len() > MAX_PAYLOAD {
        return Err(format!("payload of {} bytes exceeds the cap", bytes.len()));
    }
    let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!(
            "{} trailing bytes after the encoded value",
            rest.len()
        ));
    }
    Ok(value)
}
