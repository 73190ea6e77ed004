//! `tag` and `tags`: names for snapshots (refs/tags/NAME).

use belay_store::repo::RefKind;
use belay_store::snapshot::Snapshot;
use belay_store::{ObjectId, Repo, rev, tags};
use serde::Serialize;

use crate::error::{Result, bail};

/// A tag as `tags --json` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct TagInfo {
    pub name: String,
    #[serde(serialize_with = "crate::json::id")]
    pub snapshot: ObjectId,
    /// The snapshot's source and time (none when it was forgotten).
    pub source: Option<String>,
    pub time: Option<String>,
    #[serde(skip)]
    pub time_ns: Option<i64>,
    pub message: String,
    pub forgotten: bool,
}

impl TagInfo {
    fn new(repo: &Repo, t: &tags::Tag) -> TagInfo {
        let snap: Option<Snapshot> = repo
            .has_object(&t.snapshot)
            .then(|| repo.read_snapshot(&t.snapshot).ok())
            .flatten();
        TagInfo {
            name: t.name.clone(),
            snapshot: t.snapshot,
            source: snap.as_ref().map(|s| s.source.clone()),
            time: snap.as_ref().map(|s| crate::json::rfc3339(s.time_ns)),
            time_ns: snap.as_ref().map(|s| s.time_ns),
            message: t.message.clone(),
            forgotten: snap.is_none(),
        }
    }
}

/// Every tag, by name.
pub fn list(repo: &Repo) -> Result<Vec<TagInfo>> {
    Ok(tags::list(repo)?
        .iter()
        .map(|t| TagInfo::new(repo, t))
        .collect())
}

/// A tag set (or moved); `tag --json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Tagged {
    pub tag: String,
    #[serde(serialize_with = "crate::json::id")]
    pub snapshot: ObjectId,
    pub source: Option<String>,
    pub time: Option<String>,
    #[serde(skip)]
    pub time_ns: Option<i64>,
    pub message: String,
    /// Where the tag pointed before (none: it is new).
    #[serde(serialize_with = "crate::json::opt_id")]
    pub previous: Option<ObjectId>,
}

/// Name snapshot `rev` (by default the only head) `name`; `force` moves
/// an existing tag.
pub fn tag(
    repo: &Repo,
    name: &str,
    rev: Option<&str>,
    message: &str,
    force: bool,
) -> Result<Tagged> {
    belay_store::repo::validate_ref_name(name)?;
    if repo.read_ref(RefKind::Head, name)?.is_some() {
        bail!(
            "a source is named {name:?}: a tag of the same name would hide its latest snapshot in revisions; choose another name"
        );
    }
    let id = match rev {
        Some(r) => rev::resolve(repo, r)?,
        None => rev::only_head(repo, &format!("belay tag {name}"))?,
    };
    let snap = repo.read_snapshot(&id)?;
    let previous = tags::write(repo, name, &id, message, force)?;
    Ok(Tagged {
        tag: name.to_string(),
        snapshot: id,
        source: Some(snap.source.clone()),
        time: Some(crate::json::rfc3339(snap.time_ns)),
        time_ns: Some(snap.time_ns),
        message: message.trim_end().to_string(),
        previous,
    })
}

/// A tag removed; `tag -d --json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Untagged {
    pub tag: String,
    pub deleted: bool,
    #[serde(serialize_with = "crate::json::id")]
    pub snapshot: ObjectId,
}

/// Remove tag `name`.
pub fn delete(repo: &Repo, name: &str) -> Result<Untagged> {
    let Some(t) = tags::delete(repo, name)? else {
        bail!("no tag named {name:?} (`belay tags` lists them)");
    };
    Ok(Untagged {
        tag: name.to_string(),
        deleted: true,
        snapshot: t.snapshot,
    })
}
