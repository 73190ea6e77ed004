//! How ids and times appear in results: ids as 64 hex digits (what
//! `--json` has always printed), for `#[serde(serialize_with = …)]`;
//! times as RFC 3339.

use belay_store::ObjectId;
use serde::Serializer;

pub fn id<S: Serializer>(id: &ObjectId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_hex())
}

pub fn opt_id<S: Serializer>(id: &Option<ObjectId>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.serialize_some(&id.to_hex()),
        None => s.serialize_none(),
    }
}

pub fn ids<S: Serializer>(ids: &[ObjectId], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ids.iter().map(|i| i.to_hex()))
}

/// RFC 3339 for a time in nanoseconds since the epoch ("" if out of range).
pub fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(ns as i128)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
