//! A belay repository on S3-compatible object storage: [`S3Storage`]
//! implements [`belay_store::storage::Storage`] through
//! [opendal](https://opendal.apache.org)'s S3 service and its blocking
//! operator (a small tokio runtime lives inside each [`S3Storage`]; the
//! callers stay synchronous).
//!
//! # Where
//!
//! A location is written restic style, path-style addressing
//! ([`parse_location`]):
//!
//! * `s3:http://host:9000/bucket/prefix` (plain HTTP, e.g. a local server)
//! * `s3:https://host/bucket`
//! * `s3:host/bucket/prefix` (HTTPS)
//!
//! Keys are stored under `prefix/` in the bucket (the whole bucket when
//! the prefix is empty).
//!
//! # Credentials
//!
//! From the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`) or an AWS profile (`AWS_PROFILE`, `~/.aws/config`
//! and `~/.aws/credentials`), as the AWS tools do. The region comes from
//! `AWS_REGION` or `AWS_DEFAULT_REGION`, else `us-east-1` (what
//! S3-compatible servers expect). Credentials never appear in a message
//! or in [`Storage::locate`].
//!
//! # Requests per trait method
//!
//! | method | requests |
//! |---|---|
//! | `read(key, max)` | one GET, streamed: past `max` bytes the connection is dropped and `InvalidData` returned |
//! | `read_range` | a chunk of a pack (`objects/…`, under 4 MiB): served from a read-ahead window when one holds it, else a ranged GET of the 4 MiB-aligned block holding it (streamed: the shorter last block of a pack is one GET too), kept as a window (16 kept); anything else: one ranged GET (short → `UnexpectedEof`) |
//! | `stat` | one HEAD: size, and `mtime` = the server's `Last-Modified` |
//! | `put_new` | one PUT with `If-None-Match: *` (412/409 → `AlreadyExisted`); on a server that ignores the header: a HEAD, then a PUT (see below) |
//! | `put_replace` | one PUT |
//! | `delete` | a HEAD (S3's DELETE succeeds on an absent key, so the HEAD says whether it was there), then a DELETE |
//! | `list(prefix)` | ListObjectsV2, recursive (one request per 1000 keys) |
//! | `list_dir(dir)` | ListObjectsV2 with delimiter `/`: the names directly in `dir` |
//! | `rename(from, to)` | CopyObject (one PUT with `x-amz-copy-source`; absent `from` → false), then a DELETE of `from`: a crash between leaves both keys |
//! | `touch` | a GET and a PUT of the same bytes (moves `Last-Modified`) |
//! | `now(dir)` | a PUT of `dir/.tmp-clock-<unique>`, a HEAD for its `Last-Modified`, a DELETE |
//! | `set_mtime` | nothing: `Ok(false)` |
//! | `sync`, `sync_entry`, `sync_all`, `create_dirs` | nothing (a successful PUT is durable; object storage has no directories) |
//!
//! [`S3Storage::requests`] counts the requests actually sent (retries
//! included) and the body bytes each way (received: the answers'
//! `Content-Length`, so a `read` refused past `max` counts the whole
//! object). The first `put_new` of a process adds the probe below (two
//! PUTs and a DELETE). `mtime`s are the server's `Last-Modified`, an HTTP
//! date: whole seconds.
//!
//! A missing bucket is reported by every request that gets an answer body
//! (GET, PUT, LIST); a HEAD answers a bare 404, so `stat` and `delete`
//! see an absent key there.
//!
//! # Write-once on servers that ignore `If-None-Match`
//!
//! AWS S3 (since 2024), MinIO, Ceph and most others refuse a conditional
//! PUT of an existing key with 412. Some S3-compatible servers ignore the
//! header and overwrite (`rclone serve s3` 1.75, the test server, does). Once per process and endpoint, the first
//! `put_new` probes: it PUTs `.tmp-probe-<unique>` twice with
//! `If-None-Match: *`, then deletes it. When the second PUT succeeded, the
//! server ignores the header and `put_new` falls back to HEAD-then-PUT.
//! That fallback is racy between two writers of the same key (both see it
//! absent, both write): belay's object keys are content hashes (the same
//! bytes either way) and its other write-once keys are unique names, so
//! only lock files lose their exclusion there. `BELAY_S3_CONDITIONAL=on`
//! skips the probe and trusts the header, `off` always uses HEAD-then-PUT,
//! `probe` (the default) probes.
//!
//! # Faults
//!
//! Throttling (503 SlowDown, 429), other 5xx answers and connection
//! faults are retried with exponential backoff (opendal's RetryLayer, 5
//! attempts in all, jittered, at most about 4 s of waiting). What is left
//! becomes an `io::Error` whose message is one line saying what is wrong
//! and what to do: "access denied by <endpoint>: check AWS_ACCESS_KEY_ID
//! / AWS_SECRET_ACCESS_KEY / AWS_PROFILE", "bucket <b> does not exist on
//! <endpoint>: create it first", "cannot reach <endpoint>: connection
//! refused".

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use belay_store::atomic::{Published, TEMP_PREFIX};
use belay_store::storage::{FileInfo, Storage};
use opendal::blocking;
use opendal::layers::RetryLayer;
use opendal::options::{ListOptions, ReadOptions, WriteOptions};
use opendal::{Buffer, ErrorKind, HttpBody, HttpTransport, HttpTransporter, OperationContext};
use serde::Serialize;

/// Where a repository is: an endpoint, a bucket, a prefix in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// `http://host:port` or `https://host[:port]`, no trailing `/`.
    pub endpoint: String,
    pub bucket: String,
    /// `/`-separated, no leading or trailing `/`; empty for the whole
    /// bucket.
    pub prefix: String,
}

impl S3Location {
    /// The location as written: `s3:<endpoint>/<bucket>[/<prefix>]`.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3:{}/{}", self.endpoint, self.bucket)
        } else {
            format!("s3:{}/{}/{}", self.endpoint, self.bucket, self.prefix)
        }
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}

/// `None` when `s` is not an S3 location (does not start with `s3:`);
/// otherwise the location, or a message saying what is wrong with it.
pub fn parse_location(s: &str) -> Option<Result<S3Location, String>> {
    let rest = s.strip_prefix("s3:")?;
    Some(parse_rest(s, rest))
}

fn parse_rest(whole: &str, rest: &str) -> Result<S3Location, String> {
    let (scheme, rest) = if let Some(r) = rest.strip_prefix("http://") {
        ("http", r)
    } else if let Some(r) = rest.strip_prefix("https://") {
        ("https", r)
    } else if rest.contains("://") {
        return Err(format!(
            "{whole}: only http:// and https:// endpoints are supported"
        ));
    } else {
        ("https", rest.trim_start_matches('/'))
    };
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h, p),
        None => (rest, ""),
    };
    if host.is_empty() {
        return Err(format!(
            "{whole}: no host (write s3:https://host/bucket/prefix)"
        ));
    }
    if host.contains('@') {
        return Err(format!(
            "{whole}: credentials do not belong in the location; set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
        ));
    }
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let bucket = parts.next().ok_or_else(|| {
        format!("{whole}: no bucket (write s3:{scheme}://{host}/<bucket>[/<prefix>])")
    })?;
    let prefix: Vec<&str> = parts.collect();
    if prefix.iter().any(|p| *p == "." || *p == "..") {
        return Err(format!(
            "{whole}: `.` and `..` are not allowed in the prefix"
        ));
    }
    Ok(S3Location {
        endpoint: format!("{scheme}://{host}"),
        bucket: bucket.to_string(),
        prefix: prefix.join("/"),
    })
}

/// Requests sent so far (retries included) and body bytes each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    pub get: u64,
    pub put: u64,
    pub head: u64,
    pub list: u64,
    pub delete: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl RequestCounts {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.get + self.put + self.head + self.list + self.delete
    }
}

impl std::ops::Sub for RequestCounts {
    type Output = RequestCounts;
    fn sub(self, o: RequestCounts) -> RequestCounts {
        RequestCounts {
            get: self.get - o.get,
            put: self.put - o.put,
            head: self.head - o.head,
            list: self.list - o.list,
            delete: self.delete - o.delete,
            bytes_sent: self.bytes_sent - o.bytes_sent,
            bytes_received: self.bytes_received - o.bytes_received,
        }
    }
}

#[derive(Default)]
struct Counters {
    get: AtomicU64,
    put: AtomicU64,
    head: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

/// The HTTP transport, counting what goes through it.
struct Counting {
    inner: HttpTransporter,
    counts: Arc<Counters>,
}

impl HttpTransport for Counting {
    async fn fetch(&self, req: http::Request<Buffer>) -> opendal::Result<http::Response<HttpBody>> {
        let c = &self.counts;
        let query = req.uri().query().unwrap_or("");
        let counter = match *req.method() {
            http::Method::HEAD => &c.head,
            http::Method::PUT => &c.put,
            http::Method::DELETE => &c.delete,
            // Batch delete (`?delete`).
            http::Method::POST => &c.delete,
            _ if query.contains("list-type") || query.contains("delimiter") => &c.list,
            _ => &c.get,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let is_head = req.method() == http::Method::HEAD;
        c.bytes_sent
            .fetch_add(req.body().len() as u64, Ordering::Relaxed);
        let resp = self.inner.fetch(req).await?;
        if !is_head
            && let Some(n) = resp
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        {
            c.bytes_received.fetch_add(n, Ordering::Relaxed);
        }
        Ok(resp)
    }
}

/// How `put_new` keeps a key write-once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conditional {
    /// `If-None-Match: *`.
    Header,
    /// HEAD, then PUT when absent (racy).
    HeadThenPut,
}

/// What the probe found, per endpoint, once per process.
fn probed() -> &'static Mutex<HashMap<String, Conditional>> {
    static P: OnceLock<Mutex<HashMap<String, Conditional>>> = OnceLock::new();
    P.get_or_init(Default::default)
}

/// A name no other process or thread picks.
fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{}-{:x}-{}",
        std::process::id(),
        t,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Explicit credentials (instead of the environment and AWS profiles).
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl S3Credentials {
    pub fn new(access_key_id: &str, secret_access_key: &str) -> S3Credentials {
        S3Credentials {
            access_key_id: access_key_id.to_string(),
            secret_access_key: secret_access_key.to_string(),
            session_token: None,
        }
    }
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// A repository in an S3 bucket (or under a prefix in it).
pub struct S3Storage {
    op: blocking::Operator,
    loc: S3Location,
    counts: Arc<Counters>,
    /// Set by `BELAY_S3_CONDITIONAL` (or the probe, on first use).
    conditional: OnceLock<Conditional>,
    /// Recent read-ahead windows of packs, newest last (see `read_range`).
    windows: Mutex<std::collections::VecDeque<Window>>,
    /// Kept last: the operator's handle needs it alive.
    _rt: tokio::runtime::Runtime,
}

impl S3Storage {
    /// Sets up the client; sends no request (the first request reports
    /// faults: unreachable server, credentials, missing bucket).
    pub fn open(loc: &S3Location) -> io::Result<S3Storage> {
        S3Storage::open_with(loc, None)
    }

    /// As [`S3Storage::open`], with these credentials when given (the
    /// environment and AWS profiles are then not consulted).
    pub fn open_with(loc: &S3Location, creds: Option<S3Credentials>) -> io::Result<S3Storage> {
        opendal::install_default();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("belay-s3")
            .enable_all()
            .build()?;
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .ok()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".to_string());
        let root = format!("/{}", loc.prefix);
        let builder = opendal::services::S3::default()
            .endpoint(&loc.endpoint)
            .bucket(&loc.bucket)
            .root(&root)
            .region(&region);
        let builder = match &creds {
            Some(c) => {
                let b = builder
                    .disable_config_load()
                    .disable_ec2_metadata()
                    .access_key_id(&c.access_key_id)
                    .secret_access_key(&c.secret_access_key);
                match &c.session_token {
                    Some(t) => b.session_token(t),
                    None => b,
                }
            }
            None => builder,
        };
        let counts = Arc::new(Counters::default());
        let transport = HttpTransporter::new(Counting {
            inner: HttpTransporter::default(),
            counts: counts.clone(),
        });
        let op = {
            let _guard = rt.enter();
            let op = opendal::Operator::new(builder)
                .map_err(|e| {
                    io::Error::other(format!("{}: {}", loc.url(), first_line(&e.to_string())))
                })?
                .with_context(OperationContext::new().with_http_transport(transport))
                .layer(
                    RetryLayer::new()
                        .with_max_times(4)
                        .with_factor(2.0)
                        .with_min_delay(Duration::from_millis(100))
                        .with_max_delay(Duration::from_secs(2))
                        .with_jitter(),
                );
            blocking::Operator::new(op).map_err(|e| io::Error::other(e.to_string()))?
        };
        let conditional = OnceLock::new();
        match std::env::var("BELAY_S3_CONDITIONAL").as_deref() {
            Ok("on") => {
                let _ = conditional.set(Conditional::Header);
            }
            Ok("off") => {
                let _ = conditional.set(Conditional::HeadThenPut);
            }
            Ok("probe") | Ok("") | Err(_) => {}
            Ok(other) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("BELAY_S3_CONDITIONAL={other}: expected on, off or probe"),
                ));
            }
        }
        Ok(S3Storage {
            op,
            loc: loc.clone(),
            counts,
            conditional,
            windows: Mutex::new(std::collections::VecDeque::new()),
            _rt: rt,
        })
    }

    /// Where the repository is.
    pub fn location(&self) -> &S3Location {
        &self.loc
    }

    /// Requests sent so far, retries included.
    pub fn requests(&self) -> RequestCounts {
        let c = &self.counts;
        RequestCounts {
            get: c.get.load(Ordering::Relaxed),
            put: c.put.load(Ordering::Relaxed),
            head: c.head.load(Ordering::Relaxed),
            list: c.list.load(Ordering::Relaxed),
            delete: c.delete.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
        }
    }

    /// Does the server honour `If-None-Match: *`? (probed once per
    /// process and endpoint unless `BELAY_S3_CONDITIONAL` says).
    pub fn conditional_puts(&self) -> io::Result<bool> {
        Ok(self.conditional()? == Conditional::Header)
    }

    fn conditional(&self) -> io::Result<Conditional> {
        if let Some(c) = self.conditional.get() {
            return Ok(*c);
        }
        let id = format!("{}/{}", self.loc.endpoint, self.loc.bucket);
        let known = probed().lock().unwrap().get(&id).copied();
        let c = match known {
            Some(c) => c,
            None => {
                let c = self.probe()?;
                probed().lock().unwrap().insert(id, c);
                c
            }
        };
        let _ = self.conditional.set(c);
        Ok(c)
    }

    fn probe(&self) -> io::Result<Conditional> {
        let key = format!("{TEMP_PREFIX}probe-{}", unique());
        let first = self.put_if_absent(&key, b"1")?;
        let second = self.put_if_absent(&key, b"2");
        let _ = self.op.delete(&key);
        match (first, second?) {
            (Published::Created, Published::AlreadyExisted) => Ok(Conditional::Header),
            _ => Ok(Conditional::HeadThenPut),
        }
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> io::Result<Published> {
        let opts = WriteOptions {
            if_not_exists: true,
            ..Default::default()
        };
        match self.op.write_options(key, bytes.to_vec(), opts) {
            Ok(_) => Ok(Published::Created),
            Err(e) if already_exists(&e) => Ok(Published::AlreadyExisted),
            Err(e) => Err(self.err("write", key, e)),
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.op
            .write(key, bytes.to_vec())
            .map(|_| ())
            .map_err(|e| self.err("write", key, e))
    }

    fn url(&self, key: &str) -> String {
        if self.loc.prefix.is_empty() {
            format!("s3:{}/{}/{}", self.loc.endpoint, self.loc.bucket, key)
        } else {
            format!(
                "s3:{}/{}/{}/{}",
                self.loc.endpoint, self.loc.bucket, self.loc.prefix, key
            )
        }
    }

    /// One line: what is wrong and what to do.
    fn err(&self, what: &str, key: &str, e: opendal::Error) -> io::Error {
        let ep = &self.loc.endpoint;
        let msg = e.message().to_string();
        let full = format!("{e:?}");
        let has = |s: &str| msg.contains(s) || full.contains(s);
        if has("NoSuchBucket") {
            return io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "bucket {} does not exist on {ep}: create it first",
                    self.loc.bucket
                ),
            );
        }
        if e.kind() == ErrorKind::PermissionDenied
            || has("InvalidAccessKeyId")
            || has("SignatureDoesNotMatch")
            || has("AccessDenied")
        {
            return io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "access denied by {ep}: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE"
                ),
            );
        }
        // No credentials anywhere: the request cannot even be signed.
        if has("signing http request") || has("no valid credential") {
            return io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "no credentials for {ep}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
                ),
            );
        }
        if e.kind() == ErrorKind::NotFound {
            return io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: not found", self.url(key)),
            );
        }
        if let Some(cause) = network_cause(&e) {
            return io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("cannot reach {ep}: {cause}"),
            );
        }
        if e.kind() == ErrorKind::RateLimited || has("SlowDown") {
            return io::Error::other(format!(
                "{ep} kept throttling requests (503 SlowDown / 429) after 5 attempts: try again later"
            ));
        }
        if e.kind() == ErrorKind::ConfigInvalid {
            return io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: {}", self.loc.url(), first_line(&msg)),
            );
        }
        io::Error::other(format!(
            "{what} {} failed: {:?}: {}",
            self.url(key),
            e.kind(),
            first_line(&msg)
        ))
    }
}

fn first_line(s: &str) -> &str {
    let l = s.lines().next().unwrap_or("").trim();
    if l.len() > 200 {
        let mut end = 200;
        while !l.is_char_boundary(end) {
            end -= 1;
        }
        &l[..end]
    } else {
        l
    }
}

/// A connection fault (refused, reset, DNS, timeout), in a few words.
fn network_cause(e: &opendal::Error) -> Option<String> {
    use std::error::Error as _;
    let mut chain = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = e.source();
    while let Some(c) = cur {
        chain.push(c.to_string().to_lowercase());
        if let Some(io) = c.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return Some("connection refused".into()),
                io::ErrorKind::ConnectionReset => return Some("connection reset".into()),
                io::ErrorKind::TimedOut => return Some("timed out".into()),
                _ => {}
            }
        }
        cur = c.source();
    }
    let all = format!("{} {}", e.message().to_lowercase(), chain.join(" "));
    for (needle, cause) in [
        ("connection refused", "connection refused"),
        ("connection reset", "connection reset"),
        ("dns error", "host name not found"),
        ("failed to lookup", "host name not found"),
        ("timed out", "timed out"),
        ("connection closed", "connection closed"),
        ("error sending request", "no answer"),
        ("client error (connect)", "cannot connect"),
        ("tcp connect", "cannot connect"),
    ] {
        if all.contains(needle) {
            return Some(cause.into());
        }
    }
    None
}

fn already_exists(e: &opendal::Error) -> bool {
    if matches!(
        e.kind(),
        ErrorKind::ConditionNotMatch | ErrorKind::AlreadyExists
    ) {
        return true;
    }
    let m = format!("{e:?}");
    m.contains("PreconditionFailed")
        || m.contains("ConditionalRequestConflict")
        || m.contains("status: 412")
        || m.contains("status: 409")
}

/// `dir/` (empty for the root).
fn dir_prefix(dir: &str) -> String {
    let d = dir.trim_matches('/');
    if d.is_empty() {
        String::new()
    } else {
        format!("{d}/")
    }
}

fn info(m: &opendal::Metadata) -> FileInfo {
    FileInfo {
        size: m.content_length(),
        allocated: m.content_length(),
        mtime: m.last_modified().map(SystemTime::from),
    }
}

/// The object ends before the range does (opendal refuses a short
/// answer) or before it starts.
fn short_answer(e: &opendal::Error) -> bool {
    e.kind() == ErrorKind::RangeNotSatisfied || e.message().contains("too little data")
}

/// Bytes read past a requested chunk of a pack.
const READ_AHEAD: u64 = 4 << 20;
/// Windows kept (a few restores or readers at once).
const WINDOWS: usize = 16;

struct Window {
    key: String,
    offset: u64,
    bytes: Arc<Vec<u8>>,
}

impl S3Storage {
    /// `len` bytes at `offset` of `key` from a read-ahead window.
    fn windowed(&self, key: &str, offset: u64, len: u64) -> Option<Vec<u8>> {
        let windows = self.windows.lock().unwrap();
        let w = windows.iter().rev().find(|w| {
            w.key == key && w.offset <= offset && offset + len <= w.offset + w.bytes.len() as u64
        })?;
        let start = (offset - w.offset) as usize;
        Some(w.bytes[start..start + len as usize].to_vec())
    }

    /// One ranged GET of the [`READ_AHEAD`]-aligned block holding
    /// `offset` (and on to `offset + len`), kept as a window. Aligned, so
    /// that readers going back and forth in a pack (parallel restores)
    /// fetch each block once. The last block of an object is shorter than
    /// the range, which opendal refuses: then one GET of the rest.
    fn read_window(&self, key: &str, offset: u64, len: u64) -> io::Result<()> {
        let start = offset - offset % READ_AHEAD;
        let end = (start + READ_AHEAD).max(offset + len);
        // Streamed: a shorter object (its last block) delivers what it has
        // before opendal complains of too little data, so one GET serves.
        let reader = self.op.reader(key).map_err(|e| self.err("read", key, e))?;
        let mut bytes = Vec::new();
        match reader.into_iterator(start..end) {
            Ok(chunks) => {
                for chunk in chunks {
                    match chunk {
                        Ok(c) => bytes.extend_from_slice(&c.to_bytes()),
                        Err(e) if short_answer(&e) => break,
                        Err(e) => return Err(self.err("read", key, e)),
                    }
                }
            }
            // Past the end: an empty window (the caller says EOF).
            Err(e) if short_answer(&e) => {}
            Err(e) => return Err(self.err("read", key, e)),
        }
        let mut windows = self.windows.lock().unwrap();
        if windows.len() >= WINDOWS {
            windows.pop_front();
        }
        windows.push_back(Window {
            key: key.to_string(),
            offset: start,
            bytes: Arc::new(bytes),
        });
        Ok(())
    }

    /// One ranged GET; `None` when the object ends before the range does
    /// (opendal refuses a short answer) or before it starts.
    fn get_range(&self, key: &str, range: opendal::BytesRange) -> io::Result<Option<Vec<u8>>> {
        let opts = ReadOptions {
            range,
            ..Default::default()
        };
        match self.op.read_options(key, opts) {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(e) if short_answer(&e) => Ok(None),
            Err(e) => Err(self.err("read", key, e)),
        }
    }

    /// A key written or removed: its windows are stale.
    fn forget_windows(&self, key: &str) {
        self.windows.lock().unwrap().retain(|w| w.key != key);
    }
}

impl Storage for S3Storage {
    fn read(&self, key: &str, max: u64) -> io::Result<Vec<u8>> {
        // One GET, streamed: stop (and drop the connection) past `max`
        // bytes. (A ranged GET of `max + 1` bytes fails on a shorter
        // object: opendal checks that a sized range comes back whole; a
        // suffix range answers 416 on some servers.)
        let reader = self.op.reader(key).map_err(|e| self.err("read", key, e))?;
        let chunks = reader
            .into_iterator(..)
            .map_err(|e| self.err("read", key, e))?;
        let mut bytes = Vec::new();
        for chunk in chunks {
            let chunk = chunk.map_err(|e| self.err("read", key, e))?;
            bytes.extend_from_slice(&chunk.to_bytes());
            if bytes.len() as u64 > max {
                break;
            }
        }
        if bytes.len() as u64 > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: larger than {max} bytes", self.url(key)),
            ));
        }
        Ok(bytes)
    }

    fn read_range(&self, key: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        if let Some(bytes) = self.windowed(key, offset, len) {
            return Ok(bytes);
        }
        // A chunk of a pack: read ahead, so that a restore (which reads
        // in pack order) sends one GET per READ_AHEAD bytes, not one per
        // chunk.
        if key.starts_with("objects/") && len < READ_AHEAD {
            self.read_window(key, offset, len)?;
            if let Some(bytes) = self.windowed(key, offset, len) {
                return Ok(bytes);
            }
        }
        let bytes = self
            .get_range(key, (offset..offset.saturating_add(len)).into())?
            .unwrap_or_default();
        if (bytes.len() as u64) < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: {len} bytes at {offset} wanted, {} there",
                    self.url(key),
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    fn stat(&self, key: &str) -> io::Result<Option<FileInfo>> {
        match self.op.stat(key) {
            Ok(m) if m.is_file() => Ok(Some(info(&m))),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a regular file",
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // A missing bucket answers 404 too: tell it apart.
                let err = self.err("stat", key, e);
                if err.to_string().starts_with("bucket ") {
                    Err(err)
                } else {
                    Ok(None)
                }
            }
            Err(e) => Err(self.err("stat", key, e)),
        }
    }

    fn put_new(&self, key: &str, bytes: &[u8], _durable: bool) -> io::Result<Published> {
        match self.conditional()? {
            Conditional::Header => self.put_if_absent(key, bytes),
            Conditional::HeadThenPut => {
                if self.stat(key)?.is_some() {
                    return Ok(Published::AlreadyExisted);
                }
                self.put(key, bytes)?;
                Ok(Published::Created)
            }
        }
    }

    fn put_replace(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.forget_windows(key);
        self.put(key, bytes)
    }

    fn list(
        &self,
        prefix: &str,
        f: &mut dyn FnMut(&str, FileInfo) -> io::Result<()>,
    ) -> io::Result<()> {
        let dir = dir_prefix(prefix);
        let opts = ListOptions {
            recursive: true,
            ..Default::default()
        };
        let lister = self
            .op
            .lister_options(if dir.is_empty() { "/" } else { &dir }, opts)
            .map_err(|e| self.err("list", &dir, e))?;
        for entry in lister {
            let entry = entry.map_err(|e| self.err("list", &dir, e))?;
            let m = entry.metadata();
            // Some servers (rclone) answer the prefix `config/` with the
            // object `config`: keep what is really under `dir`.
            if !m.is_file() || !entry.path().starts_with(&dir) || entry.path().ends_with('/') {
                continue;
            }
            f(entry.path().trim_start_matches('/'), info(m))?;
        }
        Ok(())
    }

    fn list_dir(&self, dir: &str) -> io::Result<Vec<String>> {
        let d = dir_prefix(dir);
        let lister = self
            .op
            .lister(if d.is_empty() { "/" } else { &d })
            .map_err(|e| self.err("list", &d, e))?;
        let mut out = Vec::new();
        for entry in lister {
            let entry = entry.map_err(|e| self.err("list", &d, e))?;
            if !entry.metadata().is_file() {
                continue;
            }
            let Some(name) = entry.path().strip_prefix(&d) else {
                continue;
            };
            if !name.is_empty() && !name.contains('/') {
                out.push(name.to_string());
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn delete(&self, key: &str) -> io::Result<bool> {
        self.forget_windows(key);
        if self.stat(key)?.is_none() {
            return Ok(false);
        }
        self.op
            .delete(key)
            .map_err(|e| self.err("delete", key, e))?;
        Ok(true)
    }

    fn sync(&self, _keys: &[String]) -> io::Result<()> {
        Ok(())
    }

    fn locate(&self, key: &str) -> PathBuf {
        PathBuf::from(self.url(key))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<bool> {
        self.forget_windows(from);
        self.forget_windows(to);
        match self.op.copy(from, to) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let err = self.err("copy", from, e);
                if err.to_string().starts_with("bucket ") {
                    return Err(err);
                }
                return Ok(false);
            }
            Err(e) => return Err(self.err("copy", from, e)),
        }
        self.op
            .delete(from)
            .map_err(|e| self.err("delete", from, e))?;
        Ok(true)
    }

    fn sync_entry(&self, _key: &str) -> io::Result<()> {
        Ok(())
    }

    fn touch(&self, key: &str) -> io::Result<()> {
        let bytes = self
            .op
            .read(key)
            .map_err(|e| self.err("read", key, e))?
            .to_vec();
        self.put(key, &bytes)
    }

    fn now(&self, dir: &str) -> io::Result<SystemTime> {
        let key = format!(
            "{}/{TEMP_PREFIX}clock-{}",
            dir.trim_end_matches('/'),
            unique()
        );
        self.put(&key, b"")?;
        let m = self.op.stat(&key).map_err(|e| self.err("stat", &key, e));
        let _ = self.op.delete(&key);
        m?.last_modified().map(SystemTime::from).ok_or_else(|| {
            io::Error::other(format!(
                "{}: the server gave no Last-Modified",
                self.loc.endpoint
            ))
        })
    }

    fn set_mtime(&self, _key: &str, _mtime: SystemTime) -> io::Result<bool> {
        Ok(false)
    }

    fn create_dirs(&self, _dirs: &[&str]) -> io::Result<()> {
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(parse_location("/some/dir"), None);
        assert_eq!(parse_location("sftp:host/x"), None);
        let l = parse_location("s3:http://127.0.0.1:9000/bkt/a/b")
            .unwrap()
            .unwrap();
        assert_eq!(l.endpoint, "http://127.0.0.1:9000");
        assert_eq!(l.bucket, "bkt");
        assert_eq!(l.prefix, "a/b");
        assert_eq!(l.url(), "s3:http://127.0.0.1:9000/bkt/a/b");
        let l = parse_location("s3:https://s3.example.com/bkt")
            .unwrap()
            .unwrap();
        assert_eq!(l.endpoint, "https://s3.example.com");
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("bkt", ""));
        let l = parse_location("s3:s3.amazonaws.com/bkt/repo/")
            .unwrap()
            .unwrap();
        assert_eq!(l.endpoint, "https://s3.amazonaws.com");
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("bkt", "repo"));
        for bad in [
            "s3:http://host:9000",
            "s3:http://host:9000/",
            "s3:host",
            "s3:",
        ] {
            let e = parse_location(bad).unwrap().unwrap_err();
            assert!(
                e.contains("no bucket") || e.contains("no host"),
                "{bad}: {e}"
            );
        }
        let e = parse_location("s3:ftp://h/b").unwrap().unwrap_err();
        assert!(e.contains("http"), "{e}");
        let e = parse_location("s3:https://k:s@h/b").unwrap().unwrap_err();
        assert!(e.contains("credentials"), "{e}");
    }

    #[test]
    fn open_needs_no_network_and_locate_shows_no_secret() {
        let l = parse_location("s3:http://127.0.0.1:1/bkt/p")
            .unwrap()
            .unwrap();
        let s = S3Storage::open(&l).unwrap();
        assert_eq!(
            s.locate("objects/ab/cd/x"),
            PathBuf::from("s3:http://127.0.0.1:1/bkt/p/objects/ab/cd/x")
        );
        assert_eq!(s.requests(), RequestCounts::default());
    }
}
