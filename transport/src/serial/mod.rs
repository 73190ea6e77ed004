//! MicroPython boards over a serial port: the raw REPL ([`port`]), the
//! resident agent and its protocol ([`protocol`], [`session`]), and the
//! board as the store's source and sink ([`board`]). docs/boards.md
//! describes it all byte by byte.

pub mod board;
pub mod error;
pub mod port;
pub mod protocol;
#[doc(hidden)]
pub mod scripted;
pub mod session;

pub use board::{BoardSink, BoardSource, PullOptions};
pub use error::BoardError;
pub use session::{BoardInfo, ConnectOptions, HashProgress, Session};
