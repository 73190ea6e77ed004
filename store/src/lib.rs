//! The belay repository: content-addressed, deduplicated, compressed storage
//! of file trees and the snapshots that name them.
//!
//! Layering, bottom to top:
//! - [`id`], [`codec`], [`object`]: object ids, the frozen postcard codec and
//!   the on-disk object envelope (header + zstd payload).
//! - [`chunker`]: content-defined chunking (FastCDC v2020).
//! - [`tree`], [`snapshot`]: the hashed structures.
//! - [`repo`]: the repository directory (config, objects, markers, refs).
//! - [`source`]: the traits through which files come in and go out; the
//!   store never knows whether they live in a folder or on a board.
//! - [`backup`], [`restore`], [`walk`], [`rev`]: operations as graph walks.
//!
//! `docs/format.md` is the specification of everything written here.

pub mod archive;
pub mod atomic;
pub mod backup;
pub mod cache;
pub mod cache_state;
pub mod catalog;
pub mod check;
pub mod chunker;
pub mod codec;
pub mod copy;
pub mod diff;
pub mod error;
pub mod forget;
pub mod gc;
pub mod history;
pub mod id;
pub mod journal;
pub mod migrate;
pub mod object;
pub mod pack;
pub mod packed;
pub mod path;
pub mod rename;
pub mod repack;
pub mod repair;
pub mod repo;
pub mod restore;
pub mod retention;
pub mod rev;
pub mod session;
pub mod snapshot;
pub mod source;
pub mod stats;
pub mod storage;
pub mod tags;
pub mod timespec;
pub mod tree;
pub mod walk;

pub use error::{Error, Result};
pub use id::ObjectId;
pub use repo::Repo;
