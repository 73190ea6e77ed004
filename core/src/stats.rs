//! `stats`: how much the repository holds and saves (deduplication,
//! compression), and how each snapshot made it grow.

use belay_store::{ObjectId, Repo, rev};
use serde::Serialize;

use crate::error::Result;
use crate::progress::Progress;

/// What one snapshot added.
#[derive(Clone, Debug, Serialize)]
pub struct Growth {
    #[serde(serialize_with = "crate::json::id")]
    pub id: ObjectId,
    pub source: String,
    /// RFC 3339.
    pub time: String,
    #[serde(skip)]
    pub time_ns: i64,
    pub files: u64,
    pub bytes: u64,
    pub new_objects: u64,
    pub new_bytes: u64,
}

/// The figures; `stats --json` prints them.
#[derive(Clone, Debug, Serialize)]
pub struct StatsResult {
    pub snapshots: u64,
    pub sources: u64,
    pub files: u64,
    pub raw_bytes: u64,
    pub unique_bytes: u64,
    pub stored_bytes: u64,
    pub allocated_bytes: u64,
    pub chunks: u64,
    pub trees: u64,
    pub dedup_ratio: f64,
    pub compression_ratio: f64,
    pub repository_objects: u64,
    pub repository_bytes: u64,
    /// With one snapshot: what forgetting it would free.
    pub exclusive_bytes: Option<u64>,
    /// Oldest first (every snapshot only).
    pub growth: Vec<Growth>,
    /// The one snapshot the figures are for, if one was named.
    #[serde(skip)]
    pub only: Option<ObjectId>,
}

/// The figures for the whole repository, or for snapshot `rev`.
pub fn stats(repo: &Repo, rev: Option<&str>, p: &dyn Progress) -> Result<StatsResult> {
    let only = rev.map(|r| rev::resolve(repo, r)).transpose()?;
    let counter = p.counter("stats");
    let st = belay_store::stats::stats(repo, only, &*counter);
    counter.finish();
    drop(counter);
    let st = st?;
    Ok(StatsResult {
        snapshots: st.snapshots,
        sources: st.sources,
        files: st.files,
        raw_bytes: st.raw_bytes,
        unique_bytes: st.unique_bytes,
        stored_bytes: st.stored_bytes,
        allocated_bytes: st.allocated_bytes,
        chunks: st.chunks,
        trees: st.trees,
        dedup_ratio: st.dedup_ratio(),
        compression_ratio: st.compression_ratio(),
        repository_objects: st.repo_objects,
        repository_bytes: st.repo_bytes,
        exclusive_bytes: st.exclusive_bytes,
        growth: st
            .growth
            .into_iter()
            .map(|g| Growth {
                id: g.id,
                source: g.source,
                time: crate::json::rfc3339(g.time_ns),
                time_ns: g.time_ns,
                files: g.files,
                bytes: g.bytes,
                new_objects: g.new_objects,
                new_bytes: g.new_bytes,
            })
            .collect(),
        only,
    })
}
