//! Who made a snapshot, from where and when: what every backup records.

/// Who and when, recorded in snapshots.
#[derive(Clone, Debug, Default)]
pub struct Who {
    /// `--meta KEY=VALUE` pairs and what belay records about the backup.
    pub meta: Vec<(String, String)>,
    pub host: String,
    pub user: String,
    pub time_ns: i64,
}

impl Who {
    /// This host and user, now, with `meta`.
    pub fn now(meta: Vec<(String, String)>) -> Who {
        Who {
            meta,
            host: hostname(),
            user: username(),
            time_ns: now_ns(),
        }
    }
}

impl Who {
    /// The store's options for a snapshot of source `name` made by this
    /// person at this time: `first` metadata, then theirs. Everything
    /// else is the store's default (unreadable files fail the backup; an
    /// unchanged source still gets a snapshot).
    pub fn snapshot(
        &self,
        name: &str,
        message: String,
        first: Vec<(String, String)>,
    ) -> belay_store::backup::BackupOptions {
        let mut meta = first;
        meta.extend(self.meta.iter().cloned());
        belay_store::backup::BackupOptions {
            name: name.to_string(),
            message,
            meta,
            host: self.host.clone(),
            user: self.user.clone(),
            time_ns: self.time_ns,
            skip_unreadable: false,
            skip_if_unchanged: false,
        }
    }
}

pub fn now_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

/// The host name recorded in snapshots (gethostname(2)).
pub fn hostname() -> String {
    let h = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_string();
    if h.is_empty() { "unknown".into() } else { h }
}

/// The user recorded in snapshots (the account name; empty when unknown).
pub fn username() -> String {
    whoami::username().unwrap_or_default()
}
