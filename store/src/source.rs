//! The Source and Sink traits live in their own crate, `belay-source`, so
//! that the transport can implement them without depending on the store.

pub use belay_source::*;
