//! A session with a board's resident agent: connect (raw REPL, upload the
//! agent), then one method per protocol command.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::error::{BoardError, errno_text};
use super::port::{Link, printable};
use super::protocol::{self as p, command};

/// The agent's source, as kept in the repository (minified when sent).
pub const AGENT_SOURCE: &str = include_str!("agent.py");

/// Suffix of the temporary name a file is written to before it is verified
/// and renamed into place.
pub const TEMP_SUFFIX: &[u8] = b".belay~";

const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Try raw-paste mode for the upload (falls back by itself when the
    /// board refuses); false forces the classic raw REPL.
    pub raw_paste: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions { raw_paste: true }
    }
}

/// What the agent said about the board in its hello frame.
#[derive(Clone, Debug, Default)]
pub struct BoardInfo {
    pub fields: BTreeMap<String, String>,
}

impl BoardInfo {
    pub fn get(&self, k: &str) -> &str {
        self.fields.get(k).map(String::as_str).unwrap_or("")
    }
    fn num(&self, k: &str) -> Option<u64> {
        self.get(k).parse().ok()
    }
    pub fn unique_id(&self) -> Option<&str> {
        Some(self.get("uid")).filter(|s| !s.is_empty())
    }
    /// The agent's piece size (file reads and the largest command payload).
    pub fn block(&self) -> usize {
        self.num("bs").unwrap_or(512).clamp(256, 65536) as usize
    }
    pub fn has_hashlib(&self) -> bool {
        self.get("hash") == "1"
    }
    pub fn can_deflate(&self) -> bool {
        self.get("zc") == "1"
    }
    /// Whether the board can inflate (deflate module present).
    pub fn can_inflate(&self) -> bool {
        self.get("zd") == "1"
    }
    pub fn binary(&self) -> bool {
        self.get("buf") == "1"
    }
    fn fs(&self) -> Option<(u64, u64, u64)> {
        let v: Vec<u64> = self
            .get("fs")
            .split(',')
            .filter_map(|x| x.parse().ok())
            .collect();
        (v.len() == 3).then(|| (v[0], v[1], v[2]))
    }
    pub fn fs_block(&self) -> Option<u64> {
        self.fs().map(|f| f.0)
    }
    pub fn fs_size(&self) -> Option<u64> {
        self.fs().map(|f| f.0 * f.1)
    }
    pub fn fs_free(&self) -> Option<u64> {
        self.fs().map(|f| f.0 * f.2)
    }
    /// Seconds to add to a board timestamp to get Unix time; `None` when
    /// the board's epoch is unknown (no `time` module), so its file times
    /// mean nothing.
    pub fn epoch_offset(&self) -> Option<i64> {
        match self.get("epoch") {
            "2000" => Some(946_684_800),
            "1970" => Some(0),
            _ => None,
        }
    }
    /// e.g. "MicroPython v1.27.0 on 2025-12-10": from `os.uname()`, else
    /// from `sys.version` ("3.4.0; MicroPython v1.27.0 on 2025-12-10"),
    /// else the implementation's name and version, else "unknown".
    pub fn firmware(&self) -> String {
        let v = self.get("version");
        if !v.is_empty() {
            return format!("MicroPython {v}");
        }
        let sysver = self.get("sysver");
        if let Some((_, fw)) = sysver.split_once("; ")
            && !fw.trim().is_empty()
        {
            return fw.trim().to_string();
        }
        let implementation = format!("{} {}", self.get("impl"), self.get("ver"));
        if implementation.trim().is_empty() {
            "unknown".into()
        } else {
            implementation.trim().to_string()
        }
    }
    /// What the board's firmware lacks, as the agent found it: `uname`,
    /// `time`, `statvfs`, `machine`, `unique_id`, `hashlib`, `deflate`,
    /// `binascii`, `buffer`, `ilistdir`.
    pub fn missing(&self) -> Vec<&str> {
        self.get("miss")
            .split(',')
            .filter(|m| !m.is_empty())
            .collect()
    }
    pub fn lacks(&self, what: &str) -> bool {
        self.missing().contains(&what)
    }
    /// One line per missing piece that costs the user something, saying
    /// what it costs (free space and the unique id are left to the
    /// commands that need them).
    pub fn capability_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in self.missing() {
            out.push(match m {
                "uname" => format!(
                    "the board has no os.uname(): its firmware is recorded from sys.version as {:?}",
                    self.firmware()
                ),
                "time" => "the board has no time module, so its clock and epoch are unknown: file times are not recorded".into(),
                "hashlib" => "the board has no hashlib.sha256, so it cannot hash its files: every file is pulled to back it up or compare it, and a restore writes every file (checked by size only)".into(),
                "buffer" => "the board has no sys.stdout.buffer: frames go as base64 text (a third more bytes on the line)".into(),
                _ => continue,
            });
        }
        out
    }
}

/// One entry of the board's filesystem, as listed by the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardEntry {
    /// Absolute path on the board, e.g. `/lib/x.py`.
    pub path: Vec<u8>,
    /// 1 file, 2 directory, 3 something else.
    pub kind: u8,
    pub size: u64,
    /// Board timestamp in seconds of the board's epoch; 0 if none.
    pub mtime: u32,
}

pub struct Frame {
    pub kind: u8,
    pub data: Vec<u8>,
}

/// How far the board is with hashing its files (for a progress bar):
/// whole files answered, and bytes including those of the file at hand
/// (the agent reports every 64 KB of a large file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashProgress {
    pub files_done: u64,
    pub files: u64,
    pub bytes_done: u64,
    pub bytes: u64,
}

/// Called as the board hashes (see [`Session::set_hash_progress`]).
pub type HashProgressFn = Box<dyn Fn(&HashProgress) + Send>;

pub struct Session {
    pub(crate) link: Link,
    pub info: BoardInfo,
    text: bool,
    /// File content bytes that crossed the line (pulled or pushed).
    pub payload_bytes: u64,
    pub used_raw_paste: bool,
    /// Files the board hashed in this session, and their bytes.
    pub hashed_files: u64,
    pub hashed_bytes: u64,
    /// Warnings the agent sent (skipped mounts, unreadable directories).
    pub warnings: Vec<String>,
    closed: bool,
    broken: bool,
    walk_cache: Option<Vec<BoardEntry>>,
    hash_cache: HashMap<Vec<u8>, ([u8; 32], u64)>,
    /// Files the agent can find by index (its list from the last walk).
    index: HashMap<Vec<u8>, u16>,
    on_hash_progress: Option<HashProgressFn>,
    /// While a hash batch runs: where it is, and the bytes of the files
    /// answered before the one being hashed.
    hashing: Option<(HashProgress, u64)>,
}

impl Session {
    pub fn connect(port: &str, baud: u32, opts: &ConnectOptions) -> Result<Session, BoardError> {
        Session::connect_over(Link::open(port, baud)?, opts)
    }

    /// [`Session::connect`] over a line already open (a test's scripted
    /// port).
    #[doc(hidden)]
    pub fn connect_over(mut link: Link, opts: &ConnectOptions) -> Result<Session, BoardError> {
        let port = link.port_name.clone();
        link.enter_raw_repl()?;
        let code = p::minify(AGENT_SOURCE);
        // First the agent deflated (less than half the bytes on the line);
        // a board without deflate, or short of RAM for it, says so and gets
        // the plain source.
        let packed = bootstrap(&code);
        let mut used_raw_paste = link.start_exec(packed.as_bytes(), opts.raw_paste)?;
        let first = link.read_exact(1, Duration::from_secs(5), "starting the agent")?;
        if first[0] == b'b' {
            let deadline = Instant::now() + Duration::from_secs(3);
            link.read_until(b"\x04>", deadline)?;
            used_raw_paste = link.start_exec(code.as_bytes(), opts.raw_paste && used_raw_paste)?;
        } else {
            link.unread(&first);
        }
        let mut s = Session::over(link, false, BoardInfo::default());
        s.used_raw_paste = used_raw_paste;
        // The hello frame tells binary from text mode by its first byte.
        let first = s
            .link
            .read_exact(1, Duration::from_secs(5), "starting the agent")?;
        match first[0] {
            p::MAGIC => {}
            b'p' => s.text = true,
            0x04 => {
                let deadline = Instant::now() + Duration::from_secs(3);
                let tb = s.link.read_until(b"\x04", deadline)?.unwrap_or_default();
                let _ = s.link.read_until(b">", deadline);
                let _ = s.link.leave_raw_repl();
                s.closed = true;
                let text = String::from_utf8_lossy(&tb)
                    .trim_end_matches('\x04')
                    .trim()
                    .to_string();
                let last = board_text(text.lines().last().unwrap_or("no output").as_bytes());
                return Err(BoardError::Agent {
                    board: s.link.label.clone(),
                    detail: if last.contains("MemoryError") {
                        format!(
                            "{last} (the board is short of RAM: try again after a reset, or stop the program that runs on it)"
                        )
                    } else {
                        last
                    },
                });
            }
            _ => {
                let mut got = first;
                got.extend(
                    s.link
                        .drain(Duration::from_millis(100), Duration::from_millis(500))?
                        .0,
                );
                return Err(s.link.garbled("starting the agent", &got));
            }
        }
        let hello = s.recv_after(first[0], FRAME_TIMEOUT, "starting the agent")?;
        if hello.kind != p::FR_HELLO {
            return Err(s.link.garbled("starting the agent", &hello.data));
        }
        s.info = parse_info(&hello.data);
        if let Some(uid) = s.info.unique_id() {
            s.link.label = format!("board {uid} on {port}");
        } else {
            s.link.label = format!("board on {port}");
        }
        Ok(s)
    }

    /// A session whose agent already runs on `link`, in text or binary
    /// mode (for tests that script the board's side).
    #[doc(hidden)]
    pub fn over(link: Link, text: bool, info: BoardInfo) -> Session {
        Session {
            link,
            info,
            text,
            payload_bytes: 0,
            used_raw_paste: false,
            hashed_files: 0,
            hashed_bytes: 0,
            warnings: Vec::new(),
            closed: false,
            broken: false,
            walk_cache: None,
            hash_cache: HashMap::new(),
            index: HashMap::new(),
            on_hash_progress: None,
            hashing: None,
        }
    }

    pub fn label(&self) -> &str {
        &self.link.label
    }
    pub fn port(&self) -> &str {
        &self.link.port_name
    }
    /// All bytes on the line so far, both ways.
    pub fn wire_bytes(&self) -> u64 {
        self.link.rx_bytes + self.link.tx_bytes
    }
    pub fn text_mode(&self) -> bool {
        self.text
    }

    /// Report hashing progress to `f` (`None`: stop reporting).
    pub fn set_hash_progress(&mut self, f: Option<HashProgressFn>) {
        self.on_hash_progress = f;
    }

    fn report_hashing(&self) {
        if let (Some(f), Some((p, _))) = (&self.on_hash_progress, &self.hashing) {
            f(p);
        }
    }

    fn send(&mut self, cmd: u8, payload: &[u8]) -> Result<(), BoardError> {
        if self.broken {
            return Err(BoardError::Other {
                board: self.link.label.clone(),
                message: "the session was interrupted by an earlier error".into(),
            });
        }
        let c = command(cmd, payload, self.text);
        self.link.write_all(&c)
    }

    /// The next frame (warnings are collected, not returned).
    pub fn recv(&mut self, timeout: Duration, doing: &str) -> Result<Frame, BoardError> {
        let r = self.recv_inner(timeout, doing);
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    fn recv_inner(&mut self, timeout: Duration, doing: &str) -> Result<Frame, BoardError> {
        loop {
            let first = self.link.read_exact(1, timeout, doing)?;
            let f = self.recv_after(first[0], timeout, doing)?;
            if f.kind == p::FR_WARNING {
                self.warnings.push(board_text(&f.data));
                continue;
            }
            if f.kind == p::FR_PROGRESS {
                if let (Some((prog, base)), Ok(n)) =
                    (&mut self.hashing, <[u8; 4]>::try_from(&f.data[..]))
                {
                    prog.bytes_done = *base + u32::from_le_bytes(n) as u64;
                    self.report_hashing();
                }
                continue;
            }
            return Ok(f);
        }
    }

    /// Read a frame whose first byte was already read.
    fn recv_after(
        &mut self,
        first: u8,
        timeout: Duration,
        doing: &str,
    ) -> Result<Frame, BoardError> {
        if self.text {
            let mut line = vec![first];
            let deadline = Instant::now() + timeout;
            match self.link.read_until(b"\n", deadline)? {
                Some(rest) => line.extend(rest),
                None => {
                    line.extend(self.link.take_pending());
                    if line.len() > 1 {
                        return Err(self.link.garbled(doing, &line));
                    }
                    return Err(BoardError::Timeout {
                        board: self.link.label.clone(),
                        doing: doing.into(),
                        secs: timeout.as_secs(),
                    });
                }
            }
            let raw = p::base64_decode(&line).ok_or_else(|| self.link.garbled(doing, &line))?;
            let (kind, len) =
                p::parse_header(&raw).ok_or_else(|| self.link.garbled(doing, &line))?;
            if raw.len() != p::HEADER_LEN + len {
                return Err(self.link.garbled(doing, &line));
            }
            return Ok(Frame {
                kind,
                data: raw[p::HEADER_LEN..].to_vec(),
            });
        }
        let mut h = vec![first];
        h.extend(self.link.read_exact(p::HEADER_LEN - 1, timeout, doing)?);
        let Some((kind, len)) = p::parse_header(&h).filter(|(k, _)| k.is_ascii_uppercase()) else {
            let mut got = h;
            got.extend(
                self.link
                    .drain(Duration::from_millis(100), Duration::from_millis(700))?
                    .0,
            );
            return Err(self.link.garbled(doing, &got));
        };
        let data = self.link.read_exact(len, timeout, doing)?;
        Ok(Frame { kind, data })
    }

    fn remote_error(&self, path: &[u8], data: &[u8]) -> BoardError {
        let (errno, msg) = if data.len() >= 4 {
            (
                i32::from_le_bytes([data[0], data[1], data[2], data[3]]),
                board_text(&data[4..]),
            )
        } else {
            (-1, board_text(data))
        };
        let message = if errno > 0 {
            errno_text(errno).to_string()
        } else if errno == -4 {
            "changed while it was read; run the backup again".to_string()
        } else {
            format!("the agent failed: {msg}")
        };
        BoardError::Remote {
            board: self.link.label.clone(),
            path: display(path),
            errno,
            message,
        }
    }

    /// Send a command that answers K (or X).
    fn call(
        &mut self,
        cmd: u8,
        payload: &[u8],
        path: &[u8],
        doing: &str,
    ) -> Result<Frame, BoardError> {
        self.send(cmd, payload)?;
        let f = self.recv(FRAME_TIMEOUT, doing)?;
        match f.kind {
            p::FR_ERROR => Err(self.remote_error(path, &f.data)),
            p::FR_OK => Ok(f),
            _ => {
                self.broken = true;
                Err(self.link.garbled(doing, &f.data))
            }
        }
    }

    /// Every file and directory on the board (cached until the next change).
    pub fn walk(&mut self) -> Result<Vec<BoardEntry>, BoardError> {
        if let Some(w) = &self.walk_cache {
            return Ok(w.clone());
        }
        self.send(p::CMD_LIST, b"/")?;
        let mut out = Vec::new();
        loop {
            let f = self.recv(Duration::from_secs(30), "listing the board's files")?;
            match f.kind {
                p::FR_ENTRIES => {
                    let d = &f.data;
                    let mut i = 0;
                    while i + 11 <= d.len() {
                        let kind = d[i];
                        let size = u32::from_le_bytes(d[i + 1..i + 5].try_into().unwrap()) as u64;
                        let mtime = u32::from_le_bytes(d[i + 5..i + 9].try_into().unwrap());
                        let plen = u16::from_le_bytes([d[i + 9], d[i + 10]]) as usize;
                        i += 11;
                        if i + plen > d.len() {
                            return Err(self.link.garbled("listing the board's files", &f.data));
                        }
                        out.push(BoardEntry {
                            path: d[i..i + plen].to_vec(),
                            kind,
                            size,
                            mtime,
                        });
                        i += plen;
                    }
                    if i != d.len() {
                        return Err(self.link.garbled("listing the board's files", &f.data));
                    }
                }
                p::FR_OK => {
                    self.index.clear();
                    let files = out.iter().filter(|e| e.kind == 1);
                    if f.data == b"i" && files.clone().count() <= u16::MAX as usize {
                        for (i, e) in files.enumerate() {
                            self.index.insert(e.path.clone(), i as u16);
                        }
                    }
                    break;
                }
                p::FR_ERROR => return Err(self.remote_error(b"/", &f.data)),
                _ => return Err(self.link.garbled("listing the board's files", &f.data)),
            }
        }
        self.walk_cache = Some(out.clone());
        Ok(out)
    }

    /// SHA-256 and size of each file, computed on the board. Files that
    /// cannot be read come back as errors (in order).
    pub fn hashes(&mut self, files: &[(Vec<u8>, u64)]) -> Result<Vec<HashResult>, BoardError> {
        let mut out: Vec<Option<HashResult>> = files
            .iter()
            .map(|(path, _)| self.hash_cache.get(path).map(|h| Ok(*h)))
            .collect();
        let todo: Vec<usize> = (0..files.len()).filter(|&i| out[i].is_none()).collect();
        let limit = self.info.block();
        if todo.is_empty() {
            return Ok(out.into_iter().map(|o| o.expect("cached")).collect());
        }
        self.hashing = Some((
            HashProgress {
                files: todo.len() as u64,
                bytes: todo.iter().map(|&k| files[k].1).sum(),
                ..HashProgress::default()
            },
            0,
        ));
        self.report_hashing();
        let r = self.hash_batches(files, &todo, limit, &mut out);
        self.hashing = None;
        r?;
        Ok(out
            .into_iter()
            .map(|o| o.expect("every file answered"))
            .collect())
    }

    fn hash_batches(
        &mut self,
        files: &[(Vec<u8>, u64)],
        todo: &[usize],
        limit: usize,
        out: &mut [Option<HashResult>],
    ) -> Result<(), BoardError> {
        let mut i = 0;
        while i < todo.len() {
            // A batch: as many paths as fit in one command.
            let mut payload = Vec::new();
            let mut batch = Vec::new();
            while i < todo.len() {
                let path = &files[todo[i]].0;
                let mut next = payload.clone();
                if !next.is_empty() {
                    next.push(0);
                }
                next.extend_from_slice(path);
                if !batch.is_empty() && p::wire_len(&next, self.text) > limit {
                    break;
                }
                payload = next;
                batch.push(todo[i]);
                i += 1;
            }
            if batch.iter().all(|&k| self.index.contains_key(&files[k].0)) {
                payload = vec![b'#'];
                for &k in &batch {
                    payload.extend_from_slice(&self.index[&files[k].0].to_le_bytes());
                }
            }
            self.send(p::CMD_HASH, &payload)?;
            for &k in &batch {
                let (path, size) = &files[k];
                // A slow board hashes about 100 KB/s.
                let t = FRAME_TIMEOUT + Duration::from_millis(size / 50);
                let f = self.recv(t, "hashing files on the board")?;
                out[k] = Some(match f.kind {
                    p::FR_HASH if f.data.len() == 36 => {
                        let mut h = [0u8; 32];
                        h.copy_from_slice(&f.data[..32]);
                        let n = u32::from_le_bytes(f.data[32..36].try_into().unwrap()) as u64;
                        self.hash_cache.insert(path.clone(), (h, n));
                        self.hashed_files += 1;
                        self.hashed_bytes += n;
                        Ok((h, n))
                    }
                    p::FR_ERROR => Err(self.remote_error(path, &f.data)),
                    _ => {
                        self.broken = true;
                        return Err(self.link.garbled("hashing files on the board", &f.data));
                    }
                });
                if let Some((prog, base)) = &mut self.hashing {
                    *base += size;
                    prog.bytes_done = *base;
                    prog.files_done += 1;
                }
                self.report_hashing();
            }
        }
        Ok(())
    }

    /// Ask the board to stream a file; then call [`Session::read_frame`]
    /// until it returns the trailer.
    pub fn start_read(&mut self, path: &[u8], deflate: bool, hash: bool) -> Result<(), BoardError> {
        let mut payload = vec![
            (if deflate { p::READ_DEFLATE } else { 0 }) | (if hash { 0 } else { p::READ_NO_HASH }),
        ];
        match self.index.get(path) {
            Some(i) => {
                payload[0] |= p::READ_BY_INDEX;
                payload.extend_from_slice(&i.to_le_bytes());
            }
            None => payload.extend_from_slice(path),
        }
        self.send(p::CMD_READ, &payload)
    }

    /// The next piece of a file being read: `Ok(Piece::Data)` or the trailer.
    pub fn read_frame(&mut self, path: &[u8]) -> Result<Piece, BoardError> {
        let f = self.recv(FRAME_TIMEOUT, "pulling a file")?;
        match f.kind {
            p::FR_DATA => {
                self.payload_bytes += f.data.len() as u64;
                Ok(Piece::Data(f.data))
            }
            p::FR_DEFLATED => {
                let data = miniz_oxide::inflate::decompress_to_vec(&f.data).map_err(|_| {
                    self.broken = true;
                    self.link
                        .garbled("pulling a file (bad deflate data)", &f.data)
                })?;
                self.payload_bytes += data.len() as u64;
                Ok(Piece::Data(data))
            }
            p::FR_TRAILER => {
                let d = &f.data;
                let (hash, n) = match d.len() {
                    36 => {
                        let mut h = [0u8; 32];
                        h.copy_from_slice(&d[..32]);
                        (
                            Some(h),
                            u32::from_le_bytes(d[32..36].try_into().unwrap()) as u64,
                        )
                    }
                    4 => (None, u32::from_le_bytes(d[..4].try_into().unwrap()) as u64),
                    _ => {
                        self.broken = true;
                        return Err(self.link.garbled("pulling a file", d));
                    }
                };
                Ok(Piece::End {
                    sha256: hash,
                    size: n,
                })
            }
            p::FR_ERROR => Err(self.remote_error(path, &f.data)),
            _ => {
                self.broken = true;
                Err(self.link.garbled("pulling a file", &f.data))
            }
        }
    }

    /// The filesystem is about to change: the listing (and the agent's file
    /// indexes) go. Hashes stay: the caller updates those of the paths it
    /// changes, the rest still hold (nothing else runs on the board during
    /// a session), so a backup right after a restore hashes nothing again.
    fn invalidate(&mut self) {
        self.walk_cache = None;
        self.index.clear();
    }

    /// Write a whole file: to `path` + [`TEMP_SUFFIX`], verified by the
    /// board's hash of what it stored, then renamed over `path`. `content`
    /// errors abort the write and leave nothing behind.
    pub fn write_file(
        &mut self,
        path: &[u8],
        content: &mut dyn std::io::Read,
        window: usize,
    ) -> Result<u64, WriteError> {
        self.invalidate();
        self.hash_cache.remove(path);
        let mut tmp = path.to_vec();
        tmp.extend_from_slice(TEMP_SUFFIX);
        self.hash_cache.remove(&tmp);
        self.call(p::CMD_OPEN, &tmp, path, "opening a file for writing")?;
        let limit = self.info.block();
        let raw_max = if self.text { limit / 4 * 3 } else { limit };
        // Boards with room for a 4 KB window get compressed frames.
        let compress = self.info.can_inflate() && limit >= 4096;
        let mut sha = Sha256::new();
        let mut total = 0u64;
        let mut buf: Vec<u8> = Vec::with_capacity(2 * raw_max);
        let mut eof = false;
        let mut outstanding = 0usize;
        let mut failure: Option<BoardError> = None;
        loop {
            // Fill the buffer to at least one frame's worth.
            while !eof && buf.len() < raw_max {
                let mut tmpb = vec![0u8; raw_max];
                match content.read(&mut tmpb) {
                    Ok(0) => eof = true,
                    Ok(n) => buf.extend_from_slice(&tmpb[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.finish_outstanding(outstanding, path, &mut failure);
                        self.abort_write(path);
                        return Err(WriteError::Content(e));
                    }
                }
            }
            if buf.is_empty() {
                break;
            }
            let n = if self.text {
                buf.len().min(raw_max)
            } else {
                p::fit_escaped(&buf, limit).max(1)
            };
            // Compressed when that saves a tenth or more of the line.
            let (cmd, piece, wire) = match compress.then(|| {
                // At most 4 KB of content: the board inflates with a 4 KB window.
                let raw = &buf[..buf.len().min(4096)];
                (raw.len(), miniz_oxide::deflate::compress_to_vec(raw, 6))
            }) {
                // Bytes on the line per byte of content, compressed vs plain.
                Some((len, z))
                    if p::wire_len(&z, self.text) <= limit
                        && p::wire_len(&z, self.text) * n * 10
                            < p::wire_len(&buf[..n], self.text) * len * 9 =>
                {
                    let raw: Vec<u8> = buf.drain(..len).collect();
                    (p::CMD_WRITE_DEFLATED, raw, z)
                }
                _ => {
                    let raw: Vec<u8> = buf.drain(..n).collect();
                    let w = raw.clone();
                    (p::CMD_WRITE, raw, w)
                }
            };
            sha.update(&piece);
            total += piece.len() as u64;
            self.send(cmd, &wire)?;
            self.payload_bytes += piece.len() as u64;
            outstanding += 1;
            if outstanding >= window {
                self.collect_credit(path, &mut failure)?;
                outstanding -= 1;
            }
            if failure.is_some() {
                break;
            }
        }
        self.finish_outstanding(outstanding, path, &mut failure);
        if let Some(e) = failure {
            self.abort_write(path);
            return Err(WriteError::Board(e));
        }
        if self.broken {
            return Err(WriteError::Board(BoardError::Other {
                board: self.link.label.clone(),
                message: format!("{}: the write was interrupted", display(path)),
            }));
        }
        self.send(p::CMD_CLOSE, b"")?;
        let t = FRAME_TIMEOUT + Duration::from_millis(total / 50);
        let f = self.recv(t, "verifying a written file")?;
        let mut verified_hash = None;
        let ok = match f.kind {
            p::FR_TRAILER if f.data.len() == 36 => {
                let digest: [u8; 32] = sha.finalize().into();
                let n = u32::from_le_bytes(f.data[32..36].try_into().unwrap()) as u64;
                verified_hash = Some(digest);
                f.data[..32] == digest && n == total
            }
            p::FR_TRAILER if f.data.len() == 4 => {
                u32::from_le_bytes(f.data[..4].try_into().unwrap()) as u64 == total
            }
            p::FR_ERROR => {
                let e = self.remote_error(path, &f.data);
                self.remove_quiet(&tmp);
                return Err(WriteError::Board(e));
            }
            _ => {
                return Err(WriteError::Board(
                    self.link.garbled("verifying a written file", &f.data),
                ));
            }
        };
        if !ok {
            self.remove_quiet(&tmp);
            return Err(WriteError::Board(BoardError::Verify {
                board: self.link.label.clone(),
                path: display(path),
                message: "what the board stored does not match what was sent (its hash differs); the file was left unchanged".into(),
            }));
        }
        let mut both = tmp.clone();
        both.push(0);
        both.extend_from_slice(path);
        self.call(p::CMD_RENAME, &both, path, "renaming a written file")?;
        if let Some(h) = verified_hash {
            // What the board hashed from its flash, equal to what was sent.
            self.hash_cache.insert(path.to_vec(), (h, total));
        }
        Ok(total)
    }

    fn collect_credit(
        &mut self,
        path: &[u8],
        failure: &mut Option<BoardError>,
    ) -> Result<(), BoardError> {
        let f = self.recv(FRAME_TIMEOUT, "writing a file")?;
        match f.kind {
            p::FR_OK => {}
            p::FR_ERROR => {
                if failure.is_none() {
                    *failure = Some(self.remote_error(path, &f.data));
                }
            }
            _ => {
                self.broken = true;
                return Err(self.link.garbled("writing a file", &f.data));
            }
        }
        Ok(())
    }

    fn finish_outstanding(&mut self, mut n: usize, path: &[u8], failure: &mut Option<BoardError>) {
        while n > 0 {
            if let Err(e) = self.collect_credit(path, failure) {
                failure.get_or_insert(e);
                return;
            }
            n -= 1;
        }
    }

    fn abort_write(&mut self, path: &[u8]) {
        if !self.broken {
            let _ = self.call(p::CMD_ABORT, b"", path, "abandoning a write");
        }
    }

    fn remove_quiet(&mut self, path: &[u8]) {
        self.hash_cache.remove(path);
        let mut payload = vec![b'f'];
        payload.extend_from_slice(path);
        let _ = self.call(p::CMD_REMOVE, &payload, path, "removing a file");
    }

    pub fn mkdir(&mut self, path: &[u8]) -> Result<(), BoardError> {
        self.invalidate();
        self.call(p::CMD_MKDIR, path, path, "creating a directory")
            .map(|_| ())
    }

    /// Remove a file, or an empty directory when `dir`.
    pub fn remove(&mut self, path: &[u8], dir: bool) -> Result<(), BoardError> {
        self.invalidate();
        self.hash_cache.remove(path);
        let mut payload = vec![if dir { b'd' } else { b'f' }];
        payload.extend_from_slice(path);
        self.call(p::CMD_REMOVE, &payload, path, "removing")
            .map(|_| ())
    }

    /// Fresh board info (free space, free RAM).
    pub fn refresh_info(&mut self) -> Result<(), BoardError> {
        self.send(p::CMD_INFO, b"")?;
        let f = self.recv(FRAME_TIMEOUT, "asking for board info")?;
        if f.kind != p::FR_HELLO {
            return Err(self.link.garbled("asking for board info", &f.data));
        }
        self.info = parse_info(&f.data);
        Ok(())
    }

    /// Run Python code in the agent's namespace (e.g. a hash fallback).
    pub fn exec(&mut self, code: &str) -> Result<(), BoardError> {
        self.call(
            p::CMD_EXEC,
            code.as_bytes(),
            b"<exec>",
            "running code on the board",
        )
        .map(|_| ())
    }

    /// Round trip of a small frame.
    pub fn ping(&mut self) -> Result<Duration, BoardError> {
        let t = Instant::now();
        self.call(p::CMD_PING, b"", b"", "pinging")?;
        Ok(t.elapsed())
    }

    /// End the agent and leave the board in its friendly REPL.
    pub fn close(mut self) -> Result<(), BoardError> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<(), BoardError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        if self.broken {
            self.link.abandon();
            return Ok(());
        }
        self.send(p::CMD_QUIT, b"")?;
        let f = self.recv(FRAME_TIMEOUT, "ending the session")?;
        if f.kind != p::FR_OK {
            self.link.abandon();
            return Ok(());
        }
        self.link.finish_exec_and_leave()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.closed {
            self.closed = true;
            self.link.abandon();
        }
    }
}

/// A file's SHA-256 and size as the board computed them, or why it could not.
pub type HashResult = Result<([u8; 32], u64), BoardError>;

pub enum Piece {
    Data(Vec<u8>),
    End { sha256: Option<[u8; 32]>, size: u64 },
}

/// A failed write: the board's fault, or the content's (e.g. a snapshot
/// chunk that failed verification).
#[derive(Debug)]
pub enum WriteError {
    Board(BoardError),
    Content(std::io::Error),
}

impl From<BoardError> for WriteError {
    fn from(e: BoardError) -> Self {
        WriteError::Board(e)
    }
}

/// The agent as a small script that inflates and runs it, or prints
/// `belay:plain` when it cannot (no deflate or binascii, too little RAM).
/// The window (2^13) is larger than the agent, so any back-reference the
/// compressor makes is valid on the board.
pub fn bootstrap(code: &str) -> String {
    let z = miniz_oxide::deflate::compress_to_vec(code.as_bytes(), 10);
    format!(
        "def _belay_boot():\n try:\n  import deflate,io,binascii\n  return compile(deflate.DeflateIO(io.BytesIO(binascii.a2b_base64(b'{}')),deflate.RAW,13).read(),'belay','exec')\n except Exception:\n  return None\n_b=_belay_boot()\ndel _belay_boot\nif _b:\n try:\n  exec(_b)\n finally:\n  del _b\nelse:\n del _b\n print('belay:plain')\n",
        p::base64_encode(&z)
    )
}

fn parse_info(data: &[u8]) -> BoardInfo {
    let mut fields = BTreeMap::new();
    for line in String::from_utf8_lossy(data).lines() {
        // What the board says about itself ends up in snapshots and on
        // the user's terminal (`belay show`): no control characters, at
        // most 200 characters a value.
        if let Some((k, v)) = line.split_once('=') {
            fields.insert(board_text(k.as_bytes()), board_text(v.as_bytes()));
        }
    }
    BoardInfo { fields }
}

/// What the board said, for a message on the user's terminal: at most 200
/// characters, control characters (a hostile board's escape sequences,
/// newlines) as spaces.
fn board_text(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(&data[..data.len().min(800)]);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text.chars().count() > 200 || data.len() > 800 {
        out.push('…');
    }
    out.trim_end().to_string()
}

pub fn display(path: &[u8]) -> String {
    belay_source::display_path(path)
}

/// For messages: a few bytes of what came instead of a frame.
pub fn describe(data: &[u8]) -> String {
    printable(data, 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_fits_the_bootstrap_window() {
        let code = p::minify(AGENT_SOURCE);
        assert!(
            code.len() < 8192,
            "the agent must stay below 8 KiB minified"
        );
        let b = bootstrap(&code);
        assert!(
            b.len() < code.len() * 2 / 3,
            "{} vs {}",
            b.len(),
            code.len()
        );
        assert!(!b.bytes().any(|c| c < 0x20 && c != b'\n'));
    }
}
