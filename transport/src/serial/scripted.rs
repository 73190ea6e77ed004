//! A serial port in memory whose "board" is a script: what the host writes
//! goes to a responder, which queues what the board answers. For tests that
//! feed a session hostile or mutated board output without a board (the
//! decoder fuzz harness, tests/fuzz_decoders.rs). Not used by belay itself.
//!
//! Reads return queued bytes (at most `max_read` at a time, so frames arrive
//! split like on a real line). With nothing queued, a read waits its
//! timeout and reports it, as a quiet line does, until the line has been
//! quiet for `quiet_limit` since the last write; then, or once the
//! responder has ended the line and its bytes are read, reads return end of
//! file (an unplugged board). So no wait on a scripted port outlasts
//! `quiet_limit`.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use serialport::{ClearBuffer, DataBits, FlowControl, Parity, SerialPort, StopBits};

/// What the responder is told on each write, and returns: bytes to queue,
/// and whether the line stays up afterwards.
pub type Responder = Box<dyn FnMut(&[u8]) -> (Vec<u8>, bool) + Send>;

#[doc(hidden)]
pub struct ScriptedPort {
    queue: VecDeque<u8>,
    respond: Responder,
    up: bool,
    timeout: Duration,
    max_read: usize,
    quiet_limit: Duration,
    last_write: Instant,
    /// Every byte the host wrote.
    pub written: Vec<u8>,
}

impl ScriptedPort {
    /// A port that first says `initial`, then answers each write through
    /// `respond`.
    pub fn new(initial: Vec<u8>, respond: Responder) -> ScriptedPort {
        ScriptedPort {
            queue: initial.into(),
            respond,
            up: true,
            timeout: Duration::from_millis(50),
            max_read: 4096,
            quiet_limit: Duration::from_millis(250),
            last_write: Instant::now(),
            written: Vec::new(),
        }
    }

    /// A port that says `bytes` and then is unplugged, whatever is written.
    pub fn replay(bytes: Vec<u8>) -> ScriptedPort {
        let mut p = ScriptedPort::new(bytes, Box::new(|_| (Vec::new(), false)));
        p.up = false;
        p
    }

    /// Largest piece one read returns (at least 1).
    pub fn max_read(mut self, n: usize) -> Self {
        self.max_read = n.max(1);
        self
    }

    /// How long the line may stay quiet after a write before it counts as
    /// unplugged.
    pub fn quiet_limit(mut self, d: Duration) -> Self {
        self.quiet_limit = d;
        self
    }
}

impl io::Read for ScriptedPort {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.queue.is_empty() {
            let n = buf.len().min(self.max_read).min(self.queue.len());
            for (i, b) in self.queue.drain(..n).enumerate() {
                buf[i] = b;
            }
            return Ok(n);
        }
        if !self.up || self.last_write.elapsed() >= self.quiet_limit {
            return Ok(0);
        }
        std::thread::sleep(
            self.timeout
                .min(self.quiet_limit.saturating_sub(self.last_write.elapsed())),
        );
        Err(io::Error::new(io::ErrorKind::TimedOut, "quiet"))
    }
}

impl io::Write for ScriptedPort {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(data);
        self.last_write = Instant::now();
        if self.up {
            let (reply, up) = (self.respond)(data);
            self.queue.extend(reply);
            self.up = up;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn unsupported<T>() -> serialport::Result<T> {
    Err(serialport::Error::new(
        serialport::ErrorKind::Unknown,
        "a scripted port has no such setting",
    ))
}

impl SerialPort for ScriptedPort {
    fn name(&self) -> Option<String> {
        Some("scripted".into())
    }
    fn baud_rate(&self) -> serialport::Result<u32> {
        Ok(115_200)
    }
    fn data_bits(&self) -> serialport::Result<DataBits> {
        Ok(DataBits::Eight)
    }
    fn flow_control(&self) -> serialport::Result<FlowControl> {
        Ok(FlowControl::None)
    }
    fn parity(&self) -> serialport::Result<Parity> {
        Ok(Parity::None)
    }
    fn stop_bits(&self) -> serialport::Result<StopBits> {
        Ok(StopBits::One)
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn set_baud_rate(&mut self, _: u32) -> serialport::Result<()> {
        Ok(())
    }
    fn set_data_bits(&mut self, _: DataBits) -> serialport::Result<()> {
        Ok(())
    }
    fn set_flow_control(&mut self, _: FlowControl) -> serialport::Result<()> {
        Ok(())
    }
    fn set_parity(&mut self, _: Parity) -> serialport::Result<()> {
        Ok(())
    }
    fn set_stop_bits(&mut self, _: StopBits) -> serialport::Result<()> {
        Ok(())
    }
    fn set_timeout(&mut self, timeout: Duration) -> serialport::Result<()> {
        self.timeout = timeout;
        Ok(())
    }
    fn write_request_to_send(&mut self, _: bool) -> serialport::Result<()> {
        unsupported()
    }
    fn write_data_terminal_ready(&mut self, _: bool) -> serialport::Result<()> {
        unsupported()
    }
    fn read_clear_to_send(&mut self) -> serialport::Result<bool> {
        unsupported()
    }
    fn read_data_set_ready(&mut self) -> serialport::Result<bool> {
        unsupported()
    }
    fn read_ring_indicator(&mut self) -> serialport::Result<bool> {
        unsupported()
    }
    fn read_carrier_detect(&mut self) -> serialport::Result<bool> {
        unsupported()
    }
    fn bytes_to_read(&self) -> serialport::Result<u32> {
        Ok(self.queue.len() as u32)
    }
    fn bytes_to_write(&self) -> serialport::Result<u32> {
        Ok(0)
    }
    fn clear(&self, _: ClearBuffer) -> serialport::Result<()> {
        Ok(())
    }
    fn try_clone(&self) -> serialport::Result<Box<dyn SerialPort>> {
        unsupported()
    }
    fn set_break(&self) -> serialport::Result<()> {
        unsupported()
    }
    fn clear_break(&self) -> serialport::Result<()> {
        unsupported()
    }
}
