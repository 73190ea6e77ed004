//! Where belay's files come from and go to. Each transport implements the
//! store's [`belay_store::source::Source`] and [`belay_store::source::Sink`]
//! traits and knows nothing of the repository format.
//!
//! - [`dir`]: a folder on the host (`dir:PATH` or a plain path).

pub mod dir;
pub mod location;

pub use location::Location;
