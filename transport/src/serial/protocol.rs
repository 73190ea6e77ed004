//! The agent protocol's byte formats (docs/boards.md has the full table).
//!
//! Host → board, one command per frame: a 9-byte ASCII header (command
//! letter + 8 lowercase hex digits: the payload's length on the wire), then
//! the payload. In binary mode the payload is raw bytes with the REPL's
//! control bytes escaped (0x01–0x05 and ESC become ESC + byte+0x40, ESC as
//! `ESC [`), so a stray payload can never act on the REPL and Ctrl-C stays an
//! abort. In text mode (boards without `sys.stdin.buffer`) it is base64.
//!
//! Board → host: frames `0xA5 | type | u32 LE length | payload`, raw in
//! binary mode, one base64 line per frame in text mode.

use base64::Engine as _;

/// First byte of every board → host frame.
pub const MAGIC: u8 = 0xA5;
/// Length of a board → host frame header.
pub const HEADER_LEN: usize = 6;
/// No frame from a board is larger than this (sanity check on the length).
pub const MAX_FRAME: usize = 1 << 20;

// Host → board commands.
pub const CMD_LIST: u8 = b'L';
pub const CMD_HASH: u8 = b'S';
pub const CMD_READ: u8 = b'R';
pub const CMD_OPEN: u8 = b'O';
pub const CMD_WRITE: u8 = b'W';
/// A write frame holding raw deflate data (independent per frame, window
/// 4 KB), for boards whose agent reports `zd=1`.
pub const CMD_WRITE_DEFLATED: u8 = b'Y';
pub const CMD_CLOSE: u8 = b'C';
pub const CMD_ABORT: u8 = b'A';
pub const CMD_MKDIR: u8 = b'M';
pub const CMD_RENAME: u8 = b'N';
pub const CMD_REMOVE: u8 = b'D';
pub const CMD_INFO: u8 = b'I';
pub const CMD_EXEC: u8 = b'X';
pub const CMD_PING: u8 = b'P';
pub const CMD_QUIT: u8 = b'Q';

// Board → host frame types.
pub const FR_HELLO: u8 = b'H';
pub const FR_ENTRIES: u8 = b'E';
pub const FR_OK: u8 = b'K';
pub const FR_HASH: u8 = b'S';
pub const FR_DATA: u8 = b'D';
pub const FR_DEFLATED: u8 = b'Z';
pub const FR_TRAILER: u8 = b'T';
pub const FR_WARNING: u8 = b'W';
/// Progress within a long operation: u32 LE bytes done so far (sent every
/// 64 KB while the board hashes a file).
pub const FR_PROGRESS: u8 = b'G';
pub const FR_ERROR: u8 = b'X';

/// Read flags (first payload byte of `R`).
pub const READ_DEFLATE: u8 = 1;
pub const READ_NO_HASH: u8 = 2;
/// The path is a u16 LE index into the agent's list from the last `L`.
pub const READ_BY_INDEX: u8 = 4;

const ESC: u8 = 0x1b;

fn needs_escape(b: u8) -> bool {
    (0x01..=0x05).contains(&b) || b == ESC
}

/// Length of `data` once escaped.
pub fn escaped_len(data: &[u8]) -> usize {
    data.len() + data.iter().filter(|&&b| needs_escape(b)).count()
}

/// Append `data`, escaped, to `out`.
pub fn escape_into(data: &[u8], out: &mut Vec<u8>) {
    for &b in data {
        if needs_escape(b) {
            out.push(ESC);
            out.push(if b == ESC { b'[' } else { b + 0x40 });
        } else {
            out.push(b);
        }
    }
}

/// The inverse of [`escape_into`] (what the agent does with `bytes.replace`).
pub fn unescape(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == ESC {
            let c = *data.get(i + 1)?;
            out.push(match c {
                b'A'..=b'E' => c - 0x40,
                b'[' => ESC,
                _ => return None,
            });
            i += 2;
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    Some(out)
}

/// How many leading bytes of `data` fit in `limit` wire bytes once escaped
/// (an escape pair is never split).
pub fn fit_escaped(data: &[u8], limit: usize) -> usize {
    let mut used = 0;
    for (i, &b) in data.iter().enumerate() {
        let w = if needs_escape(b) { 2 } else { 1 };
        if used + w > limit {
            return i;
        }
        used += w;
    }
    data.len()
}

/// Encode one host → board command.
pub fn command(cmd: u8, payload: &[u8], text: bool) -> Vec<u8> {
    let body = if text {
        base64_encode(payload).into_bytes()
    } else {
        let mut v = Vec::with_capacity(escaped_len(payload));
        escape_into(payload, &mut v);
        v
    };
    let mut out = Vec::with_capacity(9 + body.len());
    out.push(cmd);
    out.extend_from_slice(format!("{:08x}", body.len()).as_bytes());
    out.extend_from_slice(&body);
    out
}

/// The wire length of a command's payload.
pub fn wire_len(payload: &[u8], text: bool) -> usize {
    if text {
        payload.len().div_ceil(3) * 4
    } else {
        escaped_len(payload)
    }
}

/// Parse a board → host frame header: (type, length).
pub fn parse_header(h: &[u8]) -> Option<(u8, usize)> {
    if h.len() < HEADER_LEN || h[0] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes([h[2], h[3], h[4], h[5]]) as usize;
    if len > MAX_FRAME {
        return None;
    }
    Some((h[1], len))
}

pub fn base64_encode(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decode base64, ignoring whitespace (MicroPython's `b2a_base64` ends its
/// lines with `\n`); `None` on anything else.
pub fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let clean: Vec<u8> = text
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(clean).ok()
}

/// Shrink Python source for upload: drop comment-only and blank lines and
/// reduce each 4-space indentation level to one space. The agent keeps its
/// comments on lines of their own so this stays a line filter.
pub fn minify(src: &str) -> String {
    let mut out = String::with_capacity(src.len() / 2);
    for line in src.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        for _ in 0..indent / 4 {
            out.push(' ');
        }
        out.push_str(trimmed.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_roundtrip_every_byte() {
        let data: Vec<u8> = (0..=255u8).chain([0x1b, b'[', 0x1b, b'A', 1, 2]).collect();
        let mut e = Vec::new();
        escape_into(&data, &mut e);
        assert_eq!(e.len(), escaped_len(&data));
        assert!(!e.iter().any(|&b| (1..=5).contains(&b)));
        assert_eq!(unescape(&e).unwrap(), data);
    }

    #[test]
    fn fit_never_splits_a_pair() {
        let data = [b'a', 3, 3, b'b'];
        assert_eq!(fit_escaped(&data, 2), 1);
        assert_eq!(fit_escaped(&data, 3), 2);
        assert_eq!(fit_escaped(&data, 6), 4);
    }

    #[test]
    fn base64_roundtrip() {
        for n in 0..20 {
            let d: Vec<u8> = (0..n as u8).map(|b| b.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(base64_encode(&d).as_bytes()).unwrap(), d);
        }
        assert_eq!(base64_encode(b"ab"), "YWI=");
        // MicroPython's b2a_base64 lines end with \n (and a tty adds \r).
        assert_eq!(base64_decode(b"YWI=\r\n").unwrap(), b"ab");
        assert!(base64_decode(b"YW*=").is_none());
    }

    #[test]
    fn command_header() {
        let c = command(b'R', b"\x01/a", false);
        assert_eq!(&c[..9], b"R00000004");
        assert_eq!(&c[9..], b"\x1bA/a");
    }

    #[test]
    fn minify_keeps_code() {
        let m = minify("# c\nif x:\n    # c\n    y = 1\n\n        \nz\n");
        assert_eq!(m, "if x:\n y = 1\nz\n");
    }
}
