//! Where belay's files come from and go to. Each transport implements the
//! [`belay_source::Source`] and [`belay_source::Sink`]
//! traits and knows nothing of the repository format.
//!
//! - [`dir`]: a folder on the host (`dir:PATH` or a plain path).
//! - [`serial`]: a MicroPython board on a serial port (`serial:PORT[@BAUD]`).
//! - [`devices`]: the serial ports present, with known boards marked.
//! - [`ignore_rules`]: `--exclude` and `.belayignore` for sources that are
//!   not folders here (boards).

pub mod devices;
pub mod dir;
pub mod ignore_rules;
pub mod location;
pub mod serial;

pub use location::Location;
