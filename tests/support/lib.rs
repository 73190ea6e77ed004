//! Shared helpers for the end-to-end tests.
pub mod board;
pub mod cli;
pub mod env;
pub mod fsutil;
pub mod handmade;
pub mod matrix;
pub mod objects;
pub mod s3;
