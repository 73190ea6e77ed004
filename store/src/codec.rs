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

pub fn decode<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
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
    // postcard also accepts overlong varints (`80 00` for 0): only the
    // canonical encoding is valid, so one value has one encoding and one id.
    if encode(&value) != bytes {
        return Err("not the canonical encoding (an integer has redundant bytes)".into());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_varints_are_rejected() {
        // (u32, Vec<u8>) = (0, []), canonical and with redundant varint bytes
        // (found by tests/fuzz_decoders.rs).
        assert_eq!(decode::<(u32, Vec<u8>)>(&[0, 0]).unwrap(), (0, vec![]));
        for bad in [&[0x80, 0x00, 0x00][..], &[0x00, 0x80, 0x80, 0x00]] {
            let e = decode::<(u32, Vec<u8>)>(bad).unwrap_err();
            assert!(e.contains("canonical"), "{e}");
        }
    }
}
