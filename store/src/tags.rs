//! Tags: names for snapshots, in `refs/tags/<name>` (docs/format.md §7).
//! A tag is a gc root like a snapshot marker.
//!
//! File content, as written by this module:
//!
//! ```text
//! <64-hex snapshot id>\n
//! \n                        only when there is a message: a blank line,
//! <message>\n               then the message (UTF-8, as given, one final \n)
//! ```
//!
//! Readers take the id from the first line. Lines between the first line
//! and the first blank line are reserved for future fields and ignored;
//! everything after the first blank line is the message.

use std::io;

use crate::atomic::Published;
use crate::error::{Error, IoContext, Result};
use crate::id::ObjectId;
use crate::repo::{RefKind, Repo, validate_ref_name};

/// One tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub name: String,
    pub snapshot: ObjectId,
    /// Empty when the tag has none.
    pub message: String,
}

/// The bytes of a tag file.
pub fn encode(id: &ObjectId, message: &str) -> String {
    let msg = message.trim_end();
    if msg.is_empty() {
        format!("{id}\n")
    } else {
        format!("{id}\n\n{msg}\n")
    }
}

/// Parse a tag file: its id and message.
pub fn decode(text: &str) -> Option<(ObjectId, String)> {
    let mut lines = text.split('\n');
    let id = ObjectId::from_hex(lines.next()?.trim())?;
    let rest: Vec<&str> = lines.collect();
    let message = match rest
        .iter()
        .position(|l| l.trim_end_matches('\r').is_empty())
    {
        Some(blank) => rest[blank + 1..].join("\n").trim_end().to_string(),
        None => String::new(),
    };
    Some((id, message))
}

/// A tag's snapshot and message, if the tag exists.
pub fn read(repo: &Repo, name: &str) -> Result<Option<Tag>> {
    validate_ref_name(name)?;
    let key = Repo::ref_key(RefKind::Tag, name);
    let path = repo.storage().locate(&key);
    match repo.read_small_text(&key) {
        Ok(text) => {
            let (snapshot, message) = decode(&text).ok_or_else(|| Error::BadRef {
                path: path.clone(),
                reason: "does not hold a 64-digit snapshot id".into(),
            })?;
            Ok(Some(Tag {
                name: name.to_string(),
                snapshot,
                message,
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Every tag, by name.
pub fn list(repo: &Repo) -> Result<Vec<Tag>> {
    let mut out = Vec::new();
    for name in repo.list_refs(RefKind::Tag)?.into_keys() {
        if let Some(t) = read(repo, &name)? {
            out.push(t);
        }
    }
    Ok(out)
}

/// Create the tag `name` at `id`. An existing tag is an error unless
/// `force`, which moves it; returns the snapshot it pointed at before.
/// Creation is race-safe: of two people creating the same tag at once,
/// one gets the error.
pub fn write(
    repo: &Repo,
    name: &str,
    id: &ObjectId,
    message: &str,
    force: bool,
) -> Result<Option<ObjectId>> {
    validate_ref_name(name)?;
    if ObjectId::from_hex(name).is_some() {
        return Err(Error::InvalidName {
            name: name.to_string(),
            reason: "a tag cannot look like a snapshot id".into(),
        });
    }
    let key = Repo::ref_key(RefKind::Tag, name);
    let storage = repo.storage();
    let path = storage.locate(&key);
    let bytes = encode(id, message);
    let previous = read(repo, name)?;
    if force {
        storage.put_replace(&key, bytes.as_bytes()).at(&path)?;
        return Ok(previous.map(|t| t.snapshot));
    }
    if let Some(t) = previous {
        return Err(Error::Rev(format!(
            "tag {name:?} already exists (on snapshot {}); use --force to move it or `belay tag -d {name}` first",
            t.snapshot.short()
        )));
    }
    match storage.put_new(&key, bytes.as_bytes(), true).at(&path)? {
        Published::Created => {
            storage.sync_entry(&key).at(&path)?;
            Ok(None)
        }
        Published::AlreadyExisted => Err(Error::Rev(format!(
            "tag {name:?} was just created by someone else; use --force to move it"
        ))),
    }
}

/// Delete a tag; returns what it pointed at, `None` if there was no such tag.
pub fn delete(repo: &Repo, name: &str) -> Result<Option<Tag>> {
    let Some(t) = read(repo, name)? else {
        return Ok(None);
    };
    repo.delete_ref(RefKind::Tag, name)?;
    Ok(Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_files_roundtrip() {
        let id = ObjectId([7; 32]);
        assert_eq!(encode(&id, ""), format!("{id}\n"));
        assert_eq!(encode(&id, "shipped\n\n"), format!("{id}\n\nshipped\n"));
        assert_eq!(decode(&encode(&id, "")).unwrap(), (id, String::new()));
        let m = "v1.2 shipped\n\nto 40 boards";
        assert_eq!(decode(&encode(&id, m)).unwrap(), (id, m.to_string()));
        // Reserved header lines before the blank line are ignored.
        assert_eq!(
            decode(&format!("{id}\nfuture field\n\nhello\n")).unwrap(),
            (id, "hello".to_string())
        );
        assert!(decode("nope\n").is_none());
    }
}
