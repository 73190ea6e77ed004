//! Snapshot summaries for `log` and friends, from the local cache's
//! catalogue when it has them (docs/cache.md), else from the repository
//! (and then catalogued). Snapshots are immutable, so a catalogued payload
//! is always right; which snapshots are live comes from `snapshots/`
//! (one directory listing), never from the cache.

use crate::cache::Cache;
use crate::error::Result;
use crate::id::ObjectId;
use crate::repo::Repo;
use crate::snapshot::Snapshot;

pub struct Catalog<'a> {
    repo: &'a Repo,
    cache: Option<Cache>,
}

impl<'a> Catalog<'a> {
    /// Use the repository's local cache unless `BELAY_NO_CACHE` is set or it
    /// cannot be opened.
    pub fn open(repo: &'a Repo) -> Catalog<'a> {
        Catalog {
            repo,
            cache: Cache::open_default(repo),
        }
    }

    /// Read everything from the repository.
    pub fn without_cache(repo: &'a Repo) -> Catalog<'a> {
        Catalog { repo, cache: None }
    }

    /// Snapshot `id`, or `None` when its object is gone (forgotten and
    /// collected).
    pub fn snapshot(&self, id: &ObjectId) -> Result<Option<Snapshot>> {
        if let Some(s) = self.cache.as_ref().and_then(|c| c.catalogued(id)) {
            return Ok(Some(s));
        }
        if !self.repo.has_object(id) {
            return Ok(None);
        }
        let s = self.repo.read_snapshot(id)?;
        if let Some(c) = &self.cache {
            let _ = c.catalogue_add(&[(*id, s.clone())]);
        }
        Ok(Some(s))
    }

    /// Does snapshot `id` still exist (catalogued, or its object is present)?
    pub fn exists(&self, id: &ObjectId) -> bool {
        self.cache
            .as_ref()
            .is_some_and(|c| c.catalogued(id).is_some())
            || self.repo.has_object(id)
    }

    /// Snapshot `id`; an error naming it when it is gone.
    pub fn read(&self, id: &ObjectId) -> Result<Snapshot> {
        match self.snapshot(id)? {
            Some(s) => Ok(s),
            None => self.repo.read_snapshot(id),
        }
    }

    /// Every live snapshot (a marker in `snapshots/`), newest first (ties by id).
    /// A marker whose snapshot is missing or damaged fails it (see
    /// [`Catalog::live_reporting`]).
    pub fn live(&self) -> Result<Vec<(ObjectId, Snapshot)>> {
        let mut first = None;
        let out = self.live_reporting(&mut |e| {
            first.get_or_insert(e);
        })?;
        match first {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// As [`Catalog::live`], but a snapshot that cannot be read (missing,
    /// damaged) is handed to `bad` and left out, so one bad snapshot does
    /// not stop `log` or `stats` for the whole repository.
    pub fn live_reporting(
        &self,
        bad: &mut dyn FnMut(crate::Error),
    ) -> Result<Vec<(ObjectId, Snapshot)>> {
        let ids = self.repo.list_snapshots()?;
        let mut known = match &self.cache {
            Some(c) => c.catalogue_all().unwrap_or_default(),
            None => Default::default(),
        };
        let mut out = Vec::with_capacity(ids.len());
        let mut added = Vec::new();
        for id in ids {
            match known.remove(&id) {
                Some(s) => out.push((id, s)),
                None => match self.repo.read_snapshot(&id) {
                    Ok(s) => {
                        added.push((id, s.clone()));
                        out.push((id, s));
                    }
                    Err(
                        e @ (crate::Error::MissingObject { .. }
                        | crate::Error::CorruptObject { .. }
                        | crate::Error::WrongKind { .. }),
                    ) => bad(e),
                    Err(e) => return Err(e),
                },
            }
        }
        if let Some(c) = &self.cache {
            let _ = c.catalogue_add(&added);
        }
        out.sort_by(|a, b| b.1.time_ns.cmp(&a.1.time_ns).then(a.0.cmp(&b.0)));
        Ok(out)
    }
}
