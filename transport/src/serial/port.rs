//! The serial line and MicroPython's raw REPL: open the port (exclusive,
//! DTR/RTS asserted so ESP boards are not held in reset), interrupt what
//! runs, enter the raw REPL without a soft reset, run code through raw-paste
//! (falling back to the classic raw REPL), and leave the friendly REPL
//! behind. Every wait has a deadline.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::error::BoardError;

/// How long the raw REPL may take to answer each step of the entry dance.
const ENTER_TIMEOUT: Duration = Duration::from_secs(3);
/// Overall budget for interrupting and entering the raw REPL, even if the
/// board keeps printing.
const ENTER_DEADLINE: Duration = Duration::from_secs(10);

const RAW_BANNER: &[u8] = b"raw REPL; CTRL-B to exit\r\n";

/// Set by [`interrupt`] (the CLI's Ctrl-C handler): every wait on the line
/// then stops, so the session ends cleanly (the agent is stopped and the
/// board left in its friendly REPL) instead of the process dying with the
/// board in the middle of a command.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Whether a board session is running that [`interrupt`] can end cleanly.
static CATCHING: AtomicBool = AtomicBool::new(false);

/// From now on, Ctrl-C ends board sessions cleanly (board commands only):
/// [`interrupt`] returns true.
pub fn catch_interrupts() {
    CATCHING.store(true, Ordering::SeqCst);
}

/// Ask the running board session to stop (called by a SIGINT handler; only
/// touches atomics). Returns false when nothing catches it — no board
/// session, or a second Ctrl-C — and the caller should exit at once.
pub fn interrupt() -> bool {
    let again = INTERRUPTED.swap(true, Ordering::SeqCst);
    CATCHING.load(Ordering::SeqCst) && !again
}

/// Whether Ctrl-C was pressed during this process.
pub fn was_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

pub struct Link {
    port: Box<dyn serialport::SerialPort>,
    /// The port's path, for messages.
    pub port_name: String,
    /// How the board is named in messages (port, then unique id when known).
    pub label: String,
    buf: Vec<u8>,
    pos: usize,
    /// Bytes received and sent on the line.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    trace: Option<std::fs::File>,
    /// Cleaning up after an error or an interrupt: waits proceed.
    closing: bool,
}

impl Link {
    pub fn open(port: &str, baud: u32) -> Result<Link, BoardError> {
        if !std::path::Path::new(port).exists() {
            return Err(BoardError::NoSuchPort { port: port.into() });
        }
        let sp = serialport::new(port, baud)
            .timeout(Duration::from_millis(50))
            .dtr_on_open(true)
            .exclusive(true)
            .open()
            .map_err(|e| {
                let msg = e.to_string();
                if msg.contains("exclusive") || msg.contains("busy") || msg.contains("Busy") {
                    BoardError::Busy { port: port.into() }
                } else if matches!(e.kind, serialport::ErrorKind::NoDevice) {
                    BoardError::NoSuchPort { port: port.into() }
                } else {
                    BoardError::Open {
                        port: port.into(),
                        reason: msg,
                    }
                }
            })?;
        let mut link = Link::over(sp, port);
        // DTR and RTS together: TinyUSB boards only send once DTR is up, and
        // ESP boards' auto-reset circuit stays released with both asserted.
        // A PTY refuses both (ENOTTY): not an error.
        let _ = link.port.write_data_terminal_ready(true);
        let _ = link.port.write_request_to_send(true);
        Ok(link)
    }

    /// A line over an already open port (a test's
    /// [`super::scripted::ScriptedPort`]); [`Link::open`] opens a real one.
    #[doc(hidden)]
    pub fn over(port: Box<dyn serialport::SerialPort>, name: &str) -> Link {
        Link {
            port,
            port_name: name.into(),
            label: name.into(),
            buf: Vec::with_capacity(1 << 16),
            pos: 0,
            rx_bytes: 0,
            tx_bytes: 0,
            closing: false,
            trace: std::env::var_os("BELAY_SERIAL_TRACE").and_then(|p| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .ok()
            }),
        }
    }

    fn trace(&mut self, dir: &str, data: &[u8]) {
        if let Some(t) = &mut self.trace {
            let _ = writeln!(t, "{dir} {:?}", String::from_utf8_lossy(data));
        }
    }

    fn lost(&self, e: &io::Error) -> BoardError {
        BoardError::Disconnected {
            board: self.label.clone(),
            detail: e.to_string(),
        }
    }

    pub fn write_all(&mut self, data: &[u8]) -> Result<(), BoardError> {
        self.trace(">", data);
        let mut rest = data;
        let deadline =
            Instant::now() + Duration::from_secs(10) + Duration::from_millis(rest.len() as u64);
        while !rest.is_empty() {
            if interrupted() && !self.closing {
                return Err(BoardError::Interrupted {
                    board: self.label.clone(),
                });
            }
            match self.port.write(rest) {
                Ok(0) => return Err(self.lost(&io::Error::from(io::ErrorKind::WriteZero))),
                Ok(n) => {
                    self.tx_bytes += n as u64;
                    rest = &rest[n..];
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                            | io::ErrorKind::WouldBlock
                    ) =>
                {
                    if Instant::now() > deadline {
                        return Err(BoardError::Timeout {
                            board: self.label.clone(),
                            doing: "sending".into(),
                            secs: 10,
                        });
                    }
                }
                Err(e) => return Err(self.lost(&e)),
            }
        }
        Ok(())
    }

    /// Bytes received and not consumed yet.
    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Read whatever arrives before `deadline` (at least one read attempt).
    /// Ok(false): nothing came.
    fn fill(&mut self, deadline: Instant) -> Result<bool, BoardError> {
        let mut tmp = [0u8; 16384];
        loop {
            if interrupted() && !self.closing {
                return Err(BoardError::Interrupted {
                    board: self.label.clone(),
                });
            }
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            let _ = self
                .port
                .set_timeout(left.clamp(Duration::from_millis(1), Duration::from_millis(200)));
            match self.port.read(&mut tmp) {
                Ok(0) => {
                    return Err(self.lost(&io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "end of file on the port",
                    )));
                }
                Ok(n) => {
                    self.rx_bytes += n as u64;
                    let data = tmp[..n].to_vec();
                    self.trace("<", &data);
                    if self.pos > 0 && self.pos == self.buf.len() {
                        self.buf.clear();
                        self.pos = 0;
                    }
                    self.buf.extend_from_slice(&data);
                    return Ok(true);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                            | io::ErrorKind::WouldBlock
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(self.lost(&e)),
            }
        }
    }

    /// Exactly `n` bytes, or a timeout error describing `doing`.
    pub fn read_exact(
        &mut self,
        n: usize,
        timeout: Duration,
        doing: &str,
    ) -> Result<Vec<u8>, BoardError> {
        let mut deadline = Instant::now() + timeout;
        while self.pending().len() < n {
            let before = self.pending().len();
            if !self.fill(deadline)? {
                // A board that reset mid-frame printed its banner instead.
                if let Some(what) = reset_marker(self.pending()) {
                    return Err(BoardError::Reset {
                        board: self.label.clone(),
                        what,
                    });
                }
                return Err(self.timeout(doing, timeout));
            }
            if self.pending().len() > before {
                // Data is flowing: the timeout is per gap, not per frame.
                deadline = Instant::now() + timeout;
            }
        }
        let out = self.pending()[..n].to_vec();
        self.consume(n);
        Ok(out)
    }

    fn timeout(&self, doing: &str, t: Duration) -> BoardError {
        BoardError::Timeout {
            board: self.label.clone(),
            doing: doing.into(),
            secs: t.as_secs().max(1),
        }
    }

    /// Everything up to and including the first `pat`; Ok(None) on timeout
    /// (the bytes seen stay available through [`Link::take_pending`]).
    pub fn read_until(
        &mut self,
        pat: &[u8],
        deadline: Instant,
    ) -> Result<Option<Vec<u8>>, BoardError> {
        loop {
            if let Some(i) = find(self.pending(), pat) {
                let end = i + pat.len();
                let out = self.pending()[..end].to_vec();
                self.consume(end);
                return Ok(Some(out));
            }
            if !self.fill(deadline)? {
                return Ok(None);
            }
        }
    }

    /// Put bytes back in front of what was received.
    pub fn unread(&mut self, data: &[u8]) {
        let mut v = data.to_vec();
        v.extend_from_slice(self.pending());
        self.buf = v;
        self.pos = 0;
    }

    /// Take (and forget) whatever was received but not consumed.
    pub fn take_pending(&mut self) -> Vec<u8> {
        let out = self.pending().to_vec();
        self.buf.clear();
        self.pos = 0;
        out
    }

    /// Read until the line has been quiet for `quiet`, at most `max`.
    /// Returns what was read; `false` if the line never went quiet.
    pub fn drain(&mut self, quiet: Duration, max: Duration) -> Result<(Vec<u8>, bool), BoardError> {
        let end = Instant::now() + max;
        loop {
            let now = Instant::now();
            if now >= end {
                return Ok((self.take_pending(), false));
            }
            if !self.fill((now + quiet).min(end))? {
                return Ok((self.take_pending(), Instant::now() < end));
            }
        }
    }

    /// Interrupt whatever runs and enter the raw REPL (no soft reset: the
    /// board's boot.py and main.py do not run again).
    pub fn enter_raw_repl(&mut self) -> Result<(), BoardError> {
        let start = Instant::now();
        let mut seen = Vec::new();
        // Ctrl-C until the line goes quiet: a program that prints endlessly
        // or swallows one KeyboardInterrupt gets a few more.
        for attempt in 0..5 {
            self.write_all(b"\r\x03")?;
            let (got, quiet) = self.drain(
                Duration::from_millis(if attempt == 0 { 40 } else { 150 }),
                Duration::from_millis(1500),
            )?;
            seen.extend_from_slice(&got);
            if quiet || start.elapsed() > ENTER_DEADLINE {
                break;
            }
        }
        for _ in 0..2 {
            self.write_all(b"\r\x01")?;
            let deadline = (Instant::now() + ENTER_TIMEOUT).min(start + ENTER_DEADLINE);
            if let Some(got) = self.read_until(RAW_BANNER, deadline)? {
                seen.extend_from_slice(&got);
                // The prompt follows the banner.
                if self.read_until(b">", deadline)?.is_some() {
                    // Anything after the prompt (a second banner from a
                    // repeated Ctrl-A) is dropped once the line is quiet.
                    let (rest, _) =
                        self.drain(Duration::from_millis(10), Duration::from_millis(300))?;
                    if rest.is_empty() || rest.ends_with(b">") {
                        return Ok(());
                    }
                    seen.extend_from_slice(&rest);
                }
            } else {
                seen.extend_from_slice(&self.take_pending());
            }
            if start.elapsed() > ENTER_DEADLINE {
                break;
            }
        }
        Err(BoardError::NotMicroPython {
            port: self.port_name.clone(),
            got: printable(&seen, 120),
        })
    }

    /// Run `code` in the raw REPL and return once the board has started
    /// executing it (its output follows on the line). Uses raw-paste when
    /// the board supports it; `Ok(true)` if it did.
    pub fn start_exec(&mut self, code: &[u8], allow_paste: bool) -> Result<bool, BoardError> {
        if allow_paste {
            self.write_all(b"\x05A\x01")?;
            let reply = self.read_exact(2, ENTER_TIMEOUT, "starting raw-paste mode")?;
            match &reply[..] {
                b"R\x01" => {
                    self.raw_paste(code)?;
                    return Ok(true);
                }
                b"R\x00" => {
                    // Understood but not supported: the prompt follows.
                    self.read_until(b">", Instant::now() + ENTER_TIMEOUT)?;
                }
                b"ra" => {
                    // Firmware older than raw-paste: Ctrl-A re-printed the banner.
                    self.read_until(b"\r\n>", Instant::now() + ENTER_TIMEOUT)?;
                }
                other => {
                    let mut got = other.to_vec();
                    got.extend(
                        self.drain(Duration::from_millis(100), Duration::from_millis(500))?
                            .0,
                    );
                    return Err(self.garbled("starting raw-paste mode", &got));
                }
            }
        }
        // Classic raw REPL: the board buffers the whole script; paced writes
        // so a 256-byte UART buffer keeps up.
        for piece in code.chunks(256) {
            self.write_all(piece)?;
            std::thread::sleep(Duration::from_millis(10));
        }
        self.write_all(b"\x04")?;
        let ok = self.read_exact(2, ENTER_TIMEOUT, "uploading the agent")?;
        if ok != b"OK" {
            let mut got = ok;
            got.extend(
                self.drain(Duration::from_millis(100), Duration::from_millis(500))?
                    .0,
            );
            return Err(self.garbled("uploading the agent", &got));
        }
        Ok(false)
    }

    fn raw_paste(&mut self, code: &[u8]) -> Result<(), BoardError> {
        let w = self.read_exact(2, ENTER_TIMEOUT, "starting raw-paste mode")?;
        let window = u16::from_le_bytes([w[0], w[1]]) as usize;
        if window == 0 {
            return Err(self.garbled("starting raw-paste mode", &w));
        }
        let mut credit = window;
        let mut rest = code;
        while !rest.is_empty() {
            if credit == 0 || !self.pending().is_empty() {
                if self.pending().is_empty() && !self.fill(Instant::now() + ENTER_TIMEOUT)? {
                    return Err(self.timeout("uploading the agent (raw-paste)", ENTER_TIMEOUT));
                }
                let p = self.take_pending();
                for &b in &p {
                    match b {
                        0x01 => credit += window,
                        0x04 => {
                            // The board ended the upload (a syntax error).
                            self.write_all(b"\x04")?;
                            let (tail, _) =
                                self.drain(Duration::from_millis(200), Duration::from_secs(2))?;
                            return Err(BoardError::Agent {
                                board: self.label.clone(),
                                detail: printable(&tail, 400),
                            });
                        }
                        _ => return Err(self.garbled("uploading the agent (raw-paste)", &p)),
                    }
                }
                continue;
            }
            let n = credit.min(rest.len());
            self.write_all(&rest[..n])?;
            credit -= n;
            rest = &rest[n..];
        }
        self.write_all(b"\x04")?;
        // The board acknowledges the end of the upload with 0x04 (after any
        // window credits still in flight).
        loop {
            let b = self.read_exact(1, ENTER_TIMEOUT, "finishing the agent upload")?;
            match b[0] {
                0x01 => continue,
                0x04 => return Ok(()),
                _ => {
                    let mut got = b;
                    got.extend(
                        self.drain(Duration::from_millis(100), Duration::from_millis(500))?
                            .0,
                    );
                    return Err(self.garbled("finishing the agent upload", &got));
                }
            }
        }
    }

    pub fn garbled(&self, doing: &str, got: &[u8]) -> BoardError {
        if let Some(what) = reset_marker(got) {
            return BoardError::Reset {
                board: self.label.clone(),
                what,
            };
        }
        BoardError::Garbled {
            board: self.label.clone(),
            doing: doing.into(),
            got: printable(got, 80),
        }
    }

    /// After the agent's code ended: wait for the raw REPL's end markers and
    /// prompt, then go back to the friendly REPL as the board was found.
    pub fn finish_exec_and_leave(&mut self) -> Result<(), BoardError> {
        let deadline = Instant::now() + ENTER_TIMEOUT;
        self.read_until(b"\x04>", deadline)?;
        self.leave_raw_repl()
    }

    /// Ctrl-B: back to the friendly REPL.
    pub fn leave_raw_repl(&mut self) -> Result<(), BoardError> {
        self.write_all(b"\x02")?;
        self.read_until(b">>> ", Instant::now() + Duration::from_secs(1))?;
        Ok(())
    }

    /// Best effort after a failure: stop the agent (Ctrl-C is never part of
    /// a frame, so it always reaches the board) and leave the raw REPL.
    pub fn abandon(&mut self) {
        self.closing = true;
        if self.write_all(b"\x03").is_err() {
            return;
        }
        let _ = self.drain(Duration::from_millis(100), Duration::from_millis(600));
        if self.write_all(b"\r\x03").is_ok() {
            let _ = self.drain(Duration::from_millis(50), Duration::from_millis(300));
            let _ = self.leave_raw_repl();
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Drop RTS before DTR, as mpremote does, so ESP boards do not reset.
        let _ = self.port.write_request_to_send(false);
        let _ = self.port.write_data_terminal_ready(false);
    }
}

fn find(hay: &[u8], pat: &[u8]) -> Option<usize> {
    if pat.is_empty() || hay.len() < pat.len() {
        return None;
    }
    hay.windows(pat.len()).position(|w| w == pat)
}

/// What a board printed that shows it reset.
pub fn reset_marker(got: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(got);
    for m in [
        "soft reboot",
        "MicroPython v",
        "raw REPL; CTRL-B to exit",
        "rst:0x",
        "ets ",
    ] {
        if let Some(at) = text.find(m) {
            // The marker and the rest of its line.
            let start = at;
            let line: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_graphic() || *c == ' ')
                .take(60)
                .collect();
            return Some(line.trim().to_string());
        }
    }
    None
}

/// Bytes for a message: printable ASCII kept, the rest escaped, cut at `max`.
pub fn printable(data: &[u8], max: usize) -> String {
    if data.is_empty() {
        return "nothing".into();
    }
    let mut s = String::new();
    for &b in data.iter().take(max) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if data.len() > max {
        s.push('…');
    }
    format!("\"{s}\"")
}
