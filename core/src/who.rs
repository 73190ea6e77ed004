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
