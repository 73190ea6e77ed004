//! Where belay's files come from and go to. Each transport implements the
//! store's [`belay_store::source::Source`] and [`belay_store::source::Sink`]
//! traits and knows nothing of the repository format.
//!
//! - [`dir`]: a folder on the host (`dir:PATH` or a plain path).
//! - [`serial`]: a MicroPython board on a serial port (`serial:PORT[@BAUD]`).
//! - [`devices`]: the serial ports present, with known boards marked.

pub mod devices;
pub mod dir;
pub mod location;
pub mod serial;

pub use location::Location;
