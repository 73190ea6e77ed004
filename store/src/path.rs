//! Paths inside a snapshot: byte strings of `/`-separated names, relative,
//! with no empty, `.` or `..` component. Names are raw bytes because boards
//! and Unix filesystems allow names that are not UTF-8.

/// Is `name` acceptable as one entry name in a tree?
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// Split a relative path into its components, rejecting anything unsafe.
pub fn components(path: &[u8]) -> Result<Vec<&[u8]>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    if path.starts_with(b"/") {
        return Err(format!("absolute path {:?}", display(path)));
    }
    let parts: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    for p in &parts {
        if !valid_name(p) {
            return Err(format!("unsafe path component in {:?}", display(path)));
        }
    }
    Ok(parts)
}

/// Is `path` a snapshot path as trees store it: relative, non-empty, its
/// components valid names joined by single `/` (no empty component, no
/// leading or trailing `/`)? A source's entry must be one: `lib//x` or
/// `lib/` would otherwise make a tree entry with an empty name.
pub fn is_canonical(path: &[u8]) -> bool {
    !path.is_empty() && path.split(|&b| b == b'/').all(valid_name)
}

/// Join a directory path and a name.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Lossless-enough display: valid UTF-8 as is, other bytes as `\xNN`.
/// [`display`] of at most the first 60 bytes of a path, with `...` when
/// longer, for one-line messages about paths of any length.
pub fn display_short(path: &[u8]) -> String {
    const SHOWN: usize = 60;
    if path.len() <= SHOWN {
        return display(path);
    }
    format!("{}...", display(&path[..SHOWN]))
}

pub use belay_source::display_path as display;

/// Parse a path typed by a user (UTF-8, `\xNN` escapes as printed by
/// [`display`]) back into bytes, without leading or trailing slashes.
pub fn parse_user_path(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1] == b'x'
            && let (Some(h), Some(l)) = (hexval(b[i + 2]), hexval(b[i + 3]))
        {
            out.push(h * 16 + l);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    let trimmed: &[u8] = {
        let mut s = &out[..];
        while let [b'/', rest @ ..] = s {
            s = rest;
        }
        while let [rest @ .., b'/'] = s {
            s = rest;
        }
        s
    };
    trimmed.to_vec()
}

fn hexval(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths() {
        for ok in [&b"a"[..], b"lib/x.py", b"a/b/c", b"caf\xe9"] {
            assert!(is_canonical(ok), "{ok:?}");
        }
        for bad in [
            &b""[..],
            b"/a",
            b"a/",
            b"a//b",
            b"./a",
            b"a/../b",
            b"..",
            b"a\0b",
        ] {
            assert!(!is_canonical(bad), "{bad:?}");
        }
    }

    #[test]
    fn unsafe_components_are_rejected() {
        assert!(components(b"a/../b").is_err());
        assert!(components(b"/etc/passwd").is_err());
        assert!(components(b"a/./b").is_err());
        assert_eq!(components(b"a/b").unwrap(), vec![&b"a"[..], &b"b"[..]]);
    }

    #[test]
    fn display_roundtrips_through_parse() {
        let p = b"lib/caf\xe9/x y".to_vec();
        assert_eq!(parse_user_path(&display(&p)), p);
        assert_eq!(parse_user_path("/lib/"), b"lib".to_vec());
    }
}
