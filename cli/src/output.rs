//! Formatting shared by commands: times, sizes, modes, JSON.

use belay_store::tree::{Node, TreeEntry};
use std::io::Write;

pub fn time_ns(ns: i64) -> String {
    match jiff::Timestamp::from_nanosecond(ns as i128) {
        Ok(t) => t
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S %:z")
            .to_string(),
        Err(_) => "?".into(),
    }
}

pub fn size(n: u64) -> String {
    bytesize::ByteSize::b(n).to_string()
}

pub fn mode_string(e: &TreeEntry) -> String {
    let t = match e.node {
        Node::Dir { .. } => 'd',
        Node::Symlink { .. } => 'l',
        Node::File { .. } => '-',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let bits = (e.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    if e.mode == 0 {
        s.replace_range(1.., "?????????");
    }
    s
}

/// Print one JSON document on stdout, its object keys in sorted order
/// (a typed result prints as its `serde_json::Value` always has). A closed
/// stdout is an error the caller passes up (main ends quietly on a broken
/// pipe).
pub fn print_json<T: serde::Serialize + ?Sized>(v: &T) -> std::io::Result<()> {
    let v = serde_json::to_value(v)?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &v)?;
    writeln!(out)?;
    out.flush()
}

/// `println!` that returns the write's error instead of panicking on a
/// closed stdout: `outln!("x {y}")?`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}
pub(crate) use outln;
