//! Chunking-parameter study for the belay v1 repository format (DESIGN.md §2).
//!
//! Run with `cargo bench --bench chunk_params` (release build, no criterion, no
//! downloads, fully deterministic: one splitmix64 stream from a fixed seed).
//! Results and the recommendation are recorded in `docs/chunking.md`.
//!
//! # What is measured
//!
//! A simulated board filesystem is backed up once (day 0) and then once a day
//! for a year (days 1..=365) into one simulated content-addressed repository
//! per candidate chunking scheme. A repository is a `HashSet` of blake3 object
//! ids; each object that is new to it costs a 16-byte header plus its zstd
//! level-3 payload (or the raw bytes when zstd does not shrink them), and
//! occupies that size rounded up to whole 4096-byte filesystem blocks (one
//! loose file per object). Besides file chunks every snapshot writes one tree
//! object per changed directory (entries: name, kind, mode, size, mtime and the
//! 32-byte chunk ids of each file, so a finer split also makes trees bigger)
//! and one snapshot object; those are counted as "meta".
//!
//! Candidates (FastCDC v2020, Normalization::Level1, seed 0):
//! * A: whole file if < 64 KiB, else 16 / 64 / 256 KiB min / avg / max
//! * B: 4 / 16 / 64 KiB on every file
//! * C: whole file if < 64 KiB, else 4 / 16 / 64 KiB
//! * D: whole file if < 16 KiB, else 4 / 16 / 64 KiB
//!
//! # Board model (day 0)
//!
//! About 300 files / 2.5 MB in nested directories, sizes drawn log-uniformly:
//! * `boot.py`, `main.py`, `app/*.py` (24 application modules, 1.5–60 KB: the
//!   "hot" files a developer works on), `lib/<12 packages>/*.py` (10–14 modules
//!   each, 100 B – 30 KB, plus `__init__.py`), `tests/*.py` (300 B – 5 KB).
//!   Python is generated from a vocabulary of ~190 identifiers picked with a
//!   skewed (Zipf-like) distribution, keywords, calls, nested blocks with
//!   4-space indentation, comments and docstrings; each module reuses its
//!   own ~30 names heavily. zstd-3 ratio of all sources together: ~3.1x.
//! * `.mpy` bytecode-like files (8 small ones, 0.5–20 KB, plus a 96 KB
//!   `lib/ui/widgets.mpy`): skewed opcode bytes plus qstr strings, ~1.3x.
//! * JSON: `config/*.json` (30, 100 B – 4 KB), `data/*.json` incl. a
//!   `state.json` rewritten every day and `version.json`.
//! * Web UI: `www/*.html|css|js` (14 files, 0.5–20 KB). PEM certificates.
//! * Binaries: `assets/logo.jpg` (48–80 KB) and `assets/splash.jpg`
//!   (200–300 KB) incompressible, 8 small `.png` icons, `lib/ml/model.bin`
//!   (180 KB of quantised int8 weights, semi-compressible) and `assets/font_16.bin`
//!   (60 KB bitmap font, mostly zero bits).
//! * Rotating logs: `logs/system.log` (rotates at 32 KiB), `logs/events.log`
//!   (128 KiB), `logs/error.log` (16 KiB) and a CSV data logger
//!   `data/sensors.csv` (128 KiB, one row every 10 minutes). A rotation renames
//!   `x` to `x.1` (replacing the old `x.1`) and starts an empty `x`.
//!
//! # Daily history (days 1..=365)
//!
//! Every day: each log gets its daily appends (system 30–90 lines, events
//! 10–40, error 0–6, sensors.csv 144 rows), rotating when full; `state.json`
//! is rewritten. On 45% of days a developer edits 1–4 Python files (70% from
//! the hot set `app/` + `main.py`, 30% any `.py`), each with 1–4 line
//! operations placed in the middle 60% of the file: insert 1–5 new lines,
//! delete 1–3 lines, or replace 1–3 lines. With p = 1/7 a config JSON gets 1–3
//! values changed; with p = 1/30 a binary asset is replaced by new content;
//! with p = 0.08 a new `.py` file is added, p = 0.04 a file is renamed or
//! moved, p = 0.04 a file is deleted.
//!
//! Every 30th day (12 times a year) a "firmware deploy": each `app/*.py` is
//! edited with p = 0.6 (2–12 operations anywhere in the file), each `lib/`
//! module with p = 0.35 (2–10 operations) or rewritten from scratch with
//! p = 0.08, each small `.mpy` is regenerated with p = 0.5, `widgets.mpy` gets
//! 3–10 local splices (16 B – 2 KB), `www/` and `tests/` files are edited with
//! p = 0.3, 30% of configs change, `version.json` is rewritten, and a new lib
//! module is added with p = 0.5.
//!
//! The same history is also stored with a sweep of neighbouring parameters
//! (whole-file threshold 8 / 32 KiB, CDC 2/8/32, 8/32/128, 16/64/256 KiB) and
//! with three more seeds (different board and history) for the four candidates.
//! A separate check measures edit locality on a 16 MiB pseudo-random file:
//! 10 bytes overwritten in the middle, and 10 bytes inserted in the middle.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::time::Instant;

use fastcdc::v2020::FastCDC;

type Id = [u8; 32];

const BLOCK: u64 = 4096;
const HEADER: u64 = 16;
const ZSTD_LEVEL: i32 = 3;
const DAYS: u32 = 365;
const DEPLOY_EVERY: u32 = 30;
const SEED: u64 = 0x6265_6c61_795f_7631; // "belay_v1"
const KIB: usize = 1024;
/// 2025-11-22T00:00:00Z, the day of the first (initial) backup.
const EPOCH: u64 = 1_763_769_600;

// ---------------------------------------------------------------------------
// Deterministic PRNG (splitmix64).

struct Rng {
    state: u64,
    /// Identifiers of the module being generated: real modules reuse a small
    /// set of their own names heavily.
    local: Vec<String>,
}

impl Rng {
    fn new(seed: u64) -> Self {
        Rng {
            state: seed,
            local: Vec::new(),
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn log_uniform(&mut self, lo: usize, hi: usize) -> usize {
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        (a + (b - a) * self.unit()).exp() as usize
    }

    /// Skewed towards 0 (Zipf-like), in `0..n`.
    fn skewed(&mut self, n: usize) -> usize {
        ((n as f64 * self.unit().powi(3)) as usize).min(n - 1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn pick_skewed<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.skewed(items.len())]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        for c in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Content generators.

const WORDS: &[&str] = &[
    "value",
    "data",
    "self",
    "buf",
    "state",
    "config",
    "read",
    "write",
    "pin",
    "sensor",
    "msg",
    "result",
    "count",
    "index",
    "time",
    "client",
    "addr",
    "status",
    "error",
    "timeout",
    "name",
    "size",
    "mode",
    "led",
    "topic",
    "payload",
    "key",
    "item",
    "items",
    "len",
    "temp",
    "level",
    "interval",
    "retry",
    "start",
    "stop",
    "update",
    "handle",
    "event",
    "callback",
    "queue",
    "task",
    "loop",
    "sleep",
    "ms",
    "now",
    "elapsed",
    "last",
    "next",
    "file",
    "path",
    "json",
    "parse",
    "load",
    "save",
    "default",
    "options",
    "params",
    "init",
    "setup",
    "reset",
    "enable",
    "disable",
    "check",
    "valid",
    "format",
    "encode",
    "decode",
    "send",
    "recv",
    "packet",
    "header",
    "crc",
    "offset",
    "width",
    "height",
    "x",
    "y",
    "color",
    "pixel",
    "display",
    "draw",
    "text",
    "font",
    "line",
    "rect",
    "screen",
    "button",
    "pressed",
    "debounce",
    "irq",
    "timer",
    "rtc",
    "ntp",
    "sync",
    "server",
    "request",
    "response",
    "url",
    "host",
    "port",
    "socket",
    "mqtt",
    "publish",
    "subscribe",
    "log",
    "debug",
    "info",
    "warn",
    "min",
    "max",
    "avg",
    "sum",
    "total",
    "scale",
    "factor",
    "calib",
    "raw",
    "filter",
    "window",
    "sample",
    "samples",
    "history",
    "cache",
    "flag",
    "ready",
    "busy",
    "lock",
    "manager",
    "driver",
    "device",
    "board",
    "network",
    "power",
    "motor",
    "speed",
    "target",
    "pid",
    "gain",
    "output",
    "input",
    "humidity",
    "pressure",
    "i2c",
    "spi",
    "uart",
    "reg",
    "freq",
    "duty",
    "pwm",
    "adc",
    "voltage",
    "battery",
    "threshold",
    "wifi",
    "connect",
    "ssid",
    "password",
    "token",
    "channel",
    "frame",
    "block",
    "chunk",
    "stream",
    "reader",
    "writer",
    "schedule",
    "alarm",
    "relay",
    "valve",
    "pump",
    "fan",
    "heater",
    "setpoint",
    "hysteresis",
    "average",
    "median",
    "delta",
    "prev",
    "cur",
    "tmp",
    "obj",
    "cfg",
    "ctx",
    "args",
    "kwargs",
];

const BUILTINS: &[&str] = &[
    "len",
    "print",
    "range",
    "int",
    "str",
    "min",
    "max",
    "isinstance",
    "time.sleep_ms",
    "time.ticks_ms",
    "time.ticks_diff",
    "gc.collect",
    "json.dumps",
    "json.loads",
    "struct.pack",
    "bytearray",
    "const",
];

const IMPORTS: &[&str] = &[
    "import time",
    "import machine",
    "from machine import Pin, I2C",
    "import ujson as json",
    "import uasyncio as asyncio",
    "import network",
    "import os",
    "import gc",
    "from micropython import const",
    "import struct",
    "import ubinascii",
    "from machine import Timer, RTC",
];

fn word(r: &mut Rng) -> &'static str {
    WORDS[((WORDS.len() as f64 * r.unit().powi(4)) as usize).min(WORDS.len() - 1)]
}

fn ident(r: &mut Rng) -> String {
    if !r.local.is_empty() && r.chance(0.75) {
        let i = r.skewed(r.local.len());
        return r.local[i].clone();
    }
    global_ident(r)
}

fn global_ident(r: &mut Rng) -> String {
    let n = *r.pick(&[1usize, 1, 1, 2, 2, 3]);
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push('_');
        }
        s.push_str(word(r));
    }
    s
}

fn capitalised(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn class_name(r: &mut Rng) -> String {
    let n = r.range(1, 2);
    (0..n).map(|_| capitalised(word(r))).collect()
}

fn words(r: &mut Rng, lo: usize, hi: usize) -> String {
    let n = r.range(lo, hi);
    (0..n).map(|_| word(r)).collect::<Vec<_>>().join(" ")
}

fn number(r: &mut Rng) -> String {
    match r.below(6) {
        0..=2 => r.below(10).to_string(),
        3 => (*r.pick(&["100", "1000", "255", "0.5", "1.0", "500", "20"])).to_string(),
        4 => r.below(1000).to_string(),
        _ => format!("0x{:02X}", r.below(256)),
    }
}

fn atom(r: &mut Rng) -> String {
    match r.below(11) {
        0..=3 => ident(r),
        4 | 5 => format!("self.{}", ident(r)),
        6 => number(r),
        7 => format!("\"{}\"", words(r, 1, 4)),
        8 => (*r.pick(&["None", "True", "False"])).to_string(),
        _ => call(r, 1),
    }
}

fn call(r: &mut Rng, depth: usize) -> String {
    let callee = match r.below(4) {
        0 => ident(r),
        1 => format!("self.{}", ident(r)),
        2 => format!("{}.{}", ident(r), ident(r)),
        _ => (*r.pick(BUILTINS)).to_string(),
    };
    let n = r.range(0, 3);
    let args: Vec<String> = (0..n).map(|_| expr(r, depth + 1)).collect();
    format!("{callee}({})", args.join(", "))
}

fn expr(r: &mut Rng, depth: usize) -> String {
    if depth > 1 {
        return atom(r);
    }
    match r.below(9) {
        0..=3 => atom(r),
        4 => call(r, depth),
        5 => format!(
            "{} {} {}",
            atom(r),
            r.pick(&["+", "-", "*", "//", "%", "&", "|", "<<"]),
            atom(r)
        ),
        6 => format!("[{}, {}]", atom(r), atom(r)),
        7 => format!("{{\"{}\": {}}}", word(r), atom(r)),
        _ => cond(r),
    }
}

fn cond(r: &mut Rng) -> String {
    match r.below(4) {
        0 => format!("{} is None", atom(r)),
        1 => format!("not {}", atom(r)),
        _ => format!(
            "{} {} {}",
            atom(r),
            r.pick(&["==", "!=", "<", ">", "<=", ">=", "in"]),
            atom(r)
        ),
    }
}

fn stmt(r: &mut Rng, indent: usize, depth: usize, out: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    let k = r.below(100);
    match k {
        55..=62 if depth < 3 => {
            out.push(format!("{pad}if {}:", cond(r)));
            block(r, indent + 4, depth + 1, 1, 4, out);
            if r.chance(0.3) {
                out.push(format!("{pad}else:"));
                block(r, indent + 4, depth + 1, 1, 3, out);
            }
        }
        63..=68 if depth < 3 => {
            out.push(format!("{pad}for {} in {}:", ident(r), expr(r, 0)));
            block(r, indent + 4, depth + 1, 1, 4, out);
        }
        69..=71 if depth < 3 => {
            out.push(format!("{pad}try:"));
            block(r, indent + 4, depth + 1, 1, 3, out);
            out.push(format!(
                "{pad}except {} as e:",
                r.pick(&["OSError", "Exception", "ValueError"])
            ));
            block(r, indent + 4, depth + 1, 1, 2, out);
        }
        0..=34 => {
            let target = if r.chance(0.4) {
                format!("self.{}", ident(r))
            } else {
                ident(r)
            };
            out.push(format!("{pad}{target} = {}", expr(r, 0)));
        }
        35..=54 => out.push(format!("{pad}{}", call(r, 0))),
        72..=79 => out.push(format!("{pad}return {}", expr(r, 0))),
        80..=89 => out.push(format!("{pad}# {}", words(r, 2, 9))),
        90..=93 => out.push(String::new()),
        _ => out.push(format!(
            "{pad}{} {} {}",
            ident(r),
            r.pick(&["+=", "-=", "|="]),
            atom(r)
        )),
    }
}

fn block(r: &mut Rng, indent: usize, depth: usize, lo: usize, hi: usize, out: &mut Vec<String>) {
    for _ in 0..r.range(lo, hi) {
        stmt(r, indent, depth, out);
    }
}

fn py_function(r: &mut Rng, indent: usize, method: bool, out: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    let mut args: Vec<String> = Vec::new();
    if method {
        args.push("self".into());
    }
    for _ in 0..r.range(0, 3) {
        if r.chance(0.3) {
            args.push(format!("{}={}", ident(r), atom(r)));
        } else {
            args.push(ident(r));
        }
    }
    out.push(String::new());
    let name = if method && r.chance(0.1) {
        "__init__".to_string()
    } else {
        ident(r)
    };
    out.push(format!("{pad}def {name}({}):", args.join(", ")));
    if r.chance(0.5) {
        out.push(format!(
            "{pad}    \"\"\"{}.\"\"\"",
            capitalised(&words(r, 3, 10))
        ));
    }
    block(r, indent + 4, 1, 3, 14, out);
}

fn joined_len(lines: &[String]) -> usize {
    lines.iter().map(|l| l.len() + 1).sum()
}

/// Cut `lines` at the first line that reaches `target` bytes and join them.
fn join_lines(lines: &[String], target: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(target + 128);
    for l in lines {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
        if out.len() >= target {
            break;
        }
    }
    out
}

fn py_module(r: &mut Rng, target: usize) -> Vec<u8> {
    r.local = (0..30).map(|_| global_ident(r)).collect();
    let mut lines = vec![format!("\"\"\"{}.\"\"\"", capitalised(&words(r, 3, 12)))];
    for _ in 0..r.range(1, 6) {
        if r.chance(0.2) {
            lines.push(format!(
                "from {}.{} import {}",
                r.pick(&["lib", "app"]),
                word(r),
                class_name(r)
            ));
        } else {
            lines.push((*r.pick(IMPORTS)).to_string());
        }
    }
    lines.push(String::new());
    for _ in 0..r.range(0, 5) {
        lines.push(format!(
            "{} = const({})",
            ident(r).to_uppercase(),
            r.below(4096)
        ));
    }
    let mut len = joined_len(&lines);
    while len < target {
        let before = lines.len();
        if r.chance(0.6) {
            py_function(r, 0, false, &mut lines);
        } else {
            lines.push(String::new());
            lines.push(String::new());
            lines.push(format!("class {}:", class_name(r)));
            if r.chance(0.6) {
                lines.push(format!(
                    "    \"\"\"{}.\"\"\"",
                    capitalised(&words(r, 3, 10))
                ));
            }
            for _ in 0..r.range(2, 6) {
                py_function(r, 4, true, &mut lines);
            }
        }
        len += joined_len(&lines[before..]);
    }
    r.local.clear();
    join_lines(&lines, target)
}

fn py_lines(r: &mut Rng, indent: usize) -> Vec<String> {
    let mut v = Vec::new();
    stmt(r, indent, 2, &mut v);
    v
}

fn json_scalar(r: &mut Rng) -> String {
    match r.below(6) {
        0 => r.below(100).to_string(),
        1 => r.below(100_000).to_string(),
        2 => format!("{:.3}", r.unit() * 50.0),
        3 => (*r.pick(&["true", "false", "null"])).to_string(),
        _ => format!("\"{}\"", words(r, 1, 3)),
    }
}

fn json_doc(r: &mut Rng, target: usize) -> Vec<u8> {
    let mut entries: Vec<String> = Vec::new();
    let mut len = 4;
    while len < target {
        let e = if r.chance(0.25) {
            let inner: Vec<String> = (0..r.range(2, 6))
                .map(|_| format!("    \"{}\": {}", ident(r), json_scalar(r)))
                .collect();
            format!("  \"{}\": {{\n{}\n  }}", ident(r), inner.join(",\n"))
        } else if r.chance(0.1) {
            let inner: Vec<String> = (0..r.range(2, 8)).map(|_| json_scalar(r)).collect();
            format!("  \"{}\": [{}]", ident(r), inner.join(", "))
        } else {
            format!("  \"{}\": {}", ident(r), json_scalar(r))
        };
        len += e.len() + 2;
        entries.push(e);
    }
    format!("{{\n{}\n}}\n", entries.join(",\n")).into_bytes()
}

/// Change 1..=n scalar values of a pretty-printed JSON document in place.
fn json_tweak(r: &mut Rng, data: &mut Vec<u8>, n: usize) {
    let text = String::from_utf8(std::mem::take(data)).expect("generated JSON is UTF-8");
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let candidates: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("\": ") && !l.ends_with('{') && !l.ends_with('['))
        .map(|(i, _)| i)
        .collect();
    if !candidates.is_empty() {
        for _ in 0..n {
            let i = *r.pick(&candidates);
            let line = &lines[i];
            let colon = line.find("\": ").expect("candidate has a key") + 3;
            let comma = if line.ends_with(',') { "," } else { "" };
            lines[i] = format!("{}{}{comma}", &line[..colon], json_scalar(r));
        }
    }
    *data = lines.join("\n").into_bytes();
}

fn state_json(r: &mut Rng, day: u32) -> Vec<u8> {
    format!(
        "{{\n  \"boot_count\": {},\n  \"last_boot\": {},\n  \"uptime_s\": {},\n  \
         \"wifi_rssi\": -{},\n  \"mem_free\": {},\n  \"temp_c\": {:.2},\n  \
         \"relay\": {},\n  \"setpoint\": {:.1},\n  \"errors\": {},\n  \
         \"last_sync\": {},\n  \"fw\": \"1.{}.{}\",\n  \"ota_pending\": false\n}}\n",
        100 + day * 2 + r.below(3) as u32,
        EPOCH + u64::from(day) * 86_400 + r.below(3600) as u64,
        r.below(86_400),
        r.range(40, 90),
        r.range(40_000, 90_000),
        15.0 + r.unit() * 15.0,
        r.chance(0.5),
        19.0 + r.unit() * 4.0,
        r.below(20),
        EPOCH + u64::from(day) * 86_400 + r.below(86_400) as u64,
        day / DEPLOY_EVERY,
        day % 7,
    )
    .into_bytes()
}

fn web_lines(r: &mut Rng, indent: usize, ext: &str) -> Vec<String> {
    let pad = " ".repeat(indent);
    match ext {
        "html" => match r.below(3) {
            0 => vec![
                format!("{pad}<div class=\"{}-{}\">", word(r), word(r)),
                format!("{pad}  <span id=\"{}\">{}</span>", ident(r), words(r, 1, 5)),
                format!("{pad}</div>"),
            ],
            1 => vec![format!("{pad}<p>{}.</p>", capitalised(&words(r, 4, 14)))],
            _ => vec![format!(
                "{pad}<a href=\"/{}/{}\">{}</a>",
                word(r),
                word(r),
                words(r, 1, 3)
            )],
        },
        "css" => {
            let mut v = vec![format!(".{}-{} {{", word(r), word(r))];
            for _ in 0..r.range(1, 5) {
                v.push(format!(
                    "  {}: {}{};",
                    r.pick(&[
                        "margin",
                        "padding",
                        "width",
                        "height",
                        "font-size",
                        "border"
                    ]),
                    r.below(40),
                    r.pick(&["px", "em", "%", "rem"])
                ));
            }
            v.push("}".into());
            v
        }
        _ => match r.below(3) {
            0 => vec![format!("{pad}const {} = {};", ident(r), expr(r, 0))],
            1 => vec![format!("{pad}{};", call(r, 0))],
            _ => vec![
                format!("{pad}function {}({}) {{", ident(r), ident(r)),
                format!("{pad}  return {};", expr(r, 0)),
                format!("{pad}}}"),
            ],
        },
    }
}

fn web_doc(r: &mut Rng, target: usize, ext: &str) -> Vec<u8> {
    let mut lines = Vec::new();
    let mut len = 0;
    while len < target {
        let indent = if ext == "css" { 0 } else { 2 * r.range(0, 3) };
        let l = web_lines(r, indent, ext);
        len += joined_len(&l);
        lines.extend(l);
    }
    join_lines(&lines, target)
}

const OPCODES: &[u8] = &[
    0x11, 0x12, 0x14, 0x16, 0x1b, 0x1c, 0x23, 0x24, 0x25, 0x26, 0x34, 0x35, 0x36, 0x42, 0x43, 0x44,
    0x51, 0x52, 0x53, 0x59, 0x5a, 0x5b, 0x63, 0x64, 0x65, 0x66, 0x80, 0x81, 0x82, 0x83, 0x87, 0xb0,
    0xb1, 0xb2, 0xc0, 0xc1, 0xd7, 0xd8, 0xe0, 0xf2,
];

fn mpy(r: &mut Rng, size: usize) -> Vec<u8> {
    let mut out = b"M\x06\x00\x1f".to_vec();
    while out.len() < size {
        if r.chance(0.2) {
            let w = ident(r);
            out.push(w.len() as u8);
            out.extend_from_slice(w.as_bytes());
            out.push(0);
        } else {
            for _ in 0..r.range(16, 64) {
                if r.chance(0.75) {
                    out.push(*r.pick_skewed(OPCODES));
                } else {
                    out.push(r.next_u64() as u8);
                }
            }
        }
    }
    out.truncate(size);
    out
}

fn jpeg(r: &mut Rng, size: usize) -> Vec<u8> {
    let mut out = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00".to_vec();
    out.extend(r.bytes(size.saturating_sub(out.len() + 2)));
    out.extend_from_slice(b"\xff\xd9");
    out
}

fn model_weights(r: &mut Rng, size: usize) -> Vec<u8> {
    let mut out = b"TFL3".to_vec();
    while out.len() < size {
        let a = i32::from(r.next_u64() as u8 as i8);
        let b = i32::from(r.next_u64() as u8 as i8);
        out.push(((a * b) >> 7) as u8);
    }
    out
}

fn font_bitmap(r: &mut Rng, size: usize) -> Vec<u8> {
    (0..size)
        .map(|_| if r.chance(0.6) { 0 } else { r.next_u64() as u8 })
        .collect()
}

fn pem(r: &mut Rng, size: usize) -> Vec<u8> {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = b"-----BEGIN CERTIFICATE-----\n".to_vec();
    while out.len() + 26 < size {
        for _ in 0..64 {
            out.push(*r.pick(B64));
        }
        out.push(b'\n');
    }
    out.extend_from_slice(b"-----END CERTIFICATE-----\n");
    out
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn log_line(r: &mut Rng, ts: u64, module: &str) -> String {
    let (y, mo, d) = civil_from_days((ts / 86_400) as i64);
    let s = ts % 86_400;
    let level = r.pick_skewed(&["INFO", "DEBUG", "WARN", "ERROR"]);
    let msg = match r.below(6) {
        0 => format!("{} {}={}", word(r), word(r), r.below(5000)),
        1 => format!(
            "connected to 192.168.1.{} rssi=-{}",
            r.range(2, 254),
            r.range(40, 90)
        ),
        2 => format!("{} took {} ms", ident(r), r.below(900)),
        3 => format!("read {}: {:.2}", word(r), r.unit() * 100.0),
        4 => format!(
            "mem_free={} alloc={}",
            r.range(30_000, 90_000),
            r.below(60_000)
        ),
        _ => words(r, 2, 8),
    };
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} {level} {module}: {msg}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Apply `ops` line operations (insert 1–5 / delete 1–3 / replace 1–3 lines).
/// `middle` restricts positions to the middle 60% of the file.
fn edit_lines(
    r: &mut Rng,
    data: &mut Vec<u8>,
    ops: usize,
    middle: bool,
    gen_lines: &dyn Fn(&mut Rng, usize) -> Vec<String>,
) {
    let mut lines: Vec<Vec<u8>> = data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    for _ in 0..ops {
        let n = lines.len();
        let pos = if middle && n >= 5 {
            r.range(n / 5, n * 4 / 5 - 1)
        } else {
            r.below(n)
        };
        let indent = lines[pos].iter().take_while(|&&b| b == b' ').count();
        let fresh = |r: &mut Rng, k: usize| -> Vec<Vec<u8>> {
            let mut v = Vec::new();
            while v.len() < k {
                v.extend(gen_lines(r, indent).into_iter().map(String::into_bytes));
            }
            v.truncate(k);
            v
        };
        match r.below(3) {
            0 => {
                let k = r.range(1, 5);
                let new = fresh(r, k);
                lines.splice(pos..pos, new);
            }
            1 if n > 4 => {
                let k = r.range(1, 3).min(n - pos - 1);
                lines.drain(pos..pos + k);
            }
            _ => {
                let k = r.range(1, 3).min(n - pos);
                let new = fresh(r, k);
                lines.splice(pos..pos + k, new);
            }
        }
    }
    *data = lines.join(&b'\n');
}

/// Replace `ops` random byte ranges (16 B – 2 KB) with new bytes of a
/// (possibly) different length: a locally changed binary.
fn splice_bytes(r: &mut Rng, data: &mut Vec<u8>, ops: usize) {
    for _ in 0..ops {
        let pos = r.below(data.len());
        let del = r.range(16, 2048).min(data.len() - pos);
        let ins = r.range(16, 2048);
        let new = r.bytes(ins);
        data.splice(pos..pos + del, new);
    }
}

// ---------------------------------------------------------------------------
// The simulated board.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Py,
    Mpy,
    Json,
    Log,
    Web,
    Pem,
    Jpeg,
    Model,
    Font,
}

const CATEGORIES: [&str; 6] = ["py", "mpy", "json", "log/csv", "www/pem", "binary"];

impl Kind {
    fn category(self) -> usize {
        match self {
            Kind::Py => 0,
            Kind::Mpy => 1,
            Kind::Json => 2,
            Kind::Log => 3,
            Kind::Web | Kind::Pem => 4,
            Kind::Jpeg | Kind::Model | Kind::Font => 5,
        }
    }
}

struct File {
    data: Vec<u8>,
    mtime: u64,
    kind: Kind,
}

struct LogSpec {
    path: &'static str,
    module: &'static str,
    rotate_at: usize,
    per_day: (usize, usize),
    csv: bool,
}

const LOGS: &[LogSpec] = &[
    LogSpec {
        path: "logs/system.log",
        module: "main",
        rotate_at: 32 * KIB,
        per_day: (30, 90),
        csv: false,
    },
    LogSpec {
        path: "logs/events.log",
        module: "events",
        rotate_at: 128 * KIB,
        per_day: (10, 40),
        csv: false,
    },
    LogSpec {
        path: "logs/error.log",
        module: "err",
        rotate_at: 16 * KIB,
        per_day: (0, 6),
        csv: false,
    },
    LogSpec {
        path: "data/sensors.csv",
        module: "",
        rotate_at: 128 * KIB,
        per_day: (144, 144),
        csv: true,
    },
];

const PACKAGES: &[&str] = &[
    "net", "mqtt", "sensors", "display", "ui", "storage", "ota", "drivers", "util", "aio", "ble",
    "power",
];

struct Board {
    r: Rng,
    files: BTreeMap<String, File>,
    now: u64,
    sensor: [f64; 4],
}

impl Board {
    fn put(&mut self, path: String, kind: Kind, data: Vec<u8>) {
        let mtime = self.now;
        self.files.insert(path, File { data, mtime, kind });
    }

    fn fresh_path(&mut self, dir: &str, ext: &str) -> String {
        loop {
            let p = format!("{dir}/{}.{ext}", ident(&mut self.r));
            if !self.files.contains_key(&p) {
                return p;
            }
        }
    }

    fn paths_where(&self, f: impl Fn(&str, &File) -> bool) -> Vec<String> {
        self.files
            .iter()
            .filter(|(p, file)| f(p, file))
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn generate(&mut self, path: &str, kind: Kind, size: usize) -> Vec<u8> {
        let r = &mut self.r;
        match kind {
            Kind::Py => py_module(r, size),
            Kind::Mpy => mpy(r, size),
            Kind::Json => json_doc(r, size),
            Kind::Web => web_doc(r, size, path.rsplit('.').next().unwrap_or("js")),
            Kind::Pem => pem(r, size),
            Kind::Jpeg => jpeg(r, size),
            Kind::Model => model_weights(r, size),
            Kind::Font => font_bitmap(r, size),
            Kind::Log => Vec::new(),
        }
    }

    fn add(&mut self, path: String, kind: Kind, size: usize) {
        let data = self.generate(&path, kind, size);
        self.put(path, kind, data);
    }

    fn new(seed: u64) -> Board {
        let mut b = Board {
            r: Rng::new(seed),
            files: BTreeMap::new(),
            now: EPOCH,
            sensor: [21.0, 45.0, 1013.0, 3.9],
        };
        let size = b.r.range(300, 800);
        b.add("boot.py".into(), Kind::Py, size);
        let size = b.r.range(1000, 4000);
        b.add("main.py".into(), Kind::Py, size);
        for _ in 0..24 {
            let p = b.fresh_path("app", "py");
            let size = b.r.log_uniform(1500, 60_000);
            b.add(p, Kind::Py, size);
        }
        for pkg in PACKAGES {
            let dir = format!("lib/{pkg}");
            let size = b.r.log_uniform(60, 400);
            b.add(format!("{dir}/__init__.py"), Kind::Py, size);
            for _ in 0..b.r.range(10, 14) {
                let p = b.fresh_path(&dir, "py");
                let size = b.r.log_uniform(100, 30_000);
                b.add(p, Kind::Py, size);
            }
        }
        for pkg in ["display", "ui", "drivers", "ble"] {
            for _ in 0..2 {
                let p = b.fresh_path(&format!("lib/{pkg}"), "mpy");
                let size = b.r.log_uniform(500, 20_000);
                b.add(p, Kind::Mpy, size);
            }
        }
        b.add("lib/ui/widgets.mpy".into(), Kind::Mpy, 96 * KIB);
        b.add("lib/ml/model.bin".into(), Kind::Model, 180 * KIB);
        for _ in 0..20 {
            let p = b.fresh_path("tests", "py");
            let size = b.r.log_uniform(300, 5000);
            b.add(p, Kind::Py, size);
        }
        for _ in 0..30 {
            let p = b.fresh_path("config", "json");
            let size = b.r.log_uniform(100, 4000);
            b.add(p, Kind::Json, size);
        }
        for _ in 0..10 {
            let p = b.fresh_path("data", "json");
            let size = b.r.log_uniform(100, 2000);
            b.add(p, Kind::Json, size);
        }
        let state = state_json(&mut b.r, 0);
        b.put("data/state.json".into(), Kind::Json, state);
        b.add("data/version.json".into(), Kind::Json, 200);
        for (name, ext) in [("index", "html"), ("style", "css"), ("app", "js")] {
            let size = b.r.log_uniform(2000, 20_000);
            b.add(format!("www/{name}.{ext}"), Kind::Web, size);
        }
        for _ in 0..11 {
            let ext = *b.r.pick(&["html", "css", "js"]);
            let p = b.fresh_path("www", ext);
            let size = b.r.log_uniform(500, 20_000);
            b.add(p, Kind::Web, size);
        }
        for name in ["ca.pem", "client.pem", "client.key"] {
            let size = b.r.range(1000, 2000);
            b.add(format!("certs/{name}"), Kind::Pem, size);
        }
        let size = b.r.range(48_000, 80_000);
        b.add("assets/logo.jpg".into(), Kind::Jpeg, size);
        let size = b.r.range(200_000, 300_000);
        b.add("assets/splash.jpg".into(), Kind::Jpeg, size);
        for _ in 0..8 {
            let p = b.fresh_path("assets/icons", "png");
            let size = b.r.log_uniform(300, 3000);
            b.add(p, Kind::Jpeg, size);
        }
        b.add("assets/font_16.bin".into(), Kind::Font, 60 * KIB);
        // Logs start part-way full; the larger ones already rotated once.
        for (i, spec) in LOGS.iter().enumerate() {
            b.put(spec.path.into(), Kind::Log, Vec::new());
            if i != 2 {
                let full = spec.rotate_at - 1;
                b.fill_log(i, full);
                let data = std::mem::take(&mut b.files.get_mut(spec.path).unwrap().data);
                b.put(format!("{}.1", spec.path), Kind::Log, data);
            }
            let part = b.r.range(spec.rotate_at / 10, spec.rotate_at * 9 / 10);
            b.fill_log(i, part);
        }
        b
    }

    /// Append log lines to `LOGS[i]` until it holds at least `bytes`.
    fn fill_log(&mut self, i: usize, bytes: usize) {
        while self.files[LOGS[i].path].data.len() < bytes {
            let line = self.log_record(i, self.now - 86_400);
            self.files.get_mut(LOGS[i].path).unwrap().data.extend(line);
        }
    }

    fn log_record(&mut self, i: usize, ts: u64) -> Vec<u8> {
        let spec = &LOGS[i];
        let mut line = if spec.csv {
            for (v, step) in self.sensor.iter_mut().zip([0.2, 0.5, 0.3, 0.002]) {
                *v += (self.r.unit() - 0.5) * step;
            }
            let [t, h, p, v] = self.sensor;
            format!("{ts},{t:.2},{h:.1},{p:.1},{v:.3}")
        } else {
            log_line(&mut self.r, ts, spec.module)
        };
        line.push('\n');
        line.into_bytes()
    }

    /// Append one day of records to log `i`, rotating when it would overflow.
    fn append_log(&mut self, i: usize) {
        let spec = &LOGS[i];
        let n = self.r.range(spec.per_day.0, spec.per_day.1);
        for k in 0..n {
            let ts = self.now + (k as u64 * 86_400) / n as u64;
            let line = self.log_record(i, ts);
            let cur = self.files[spec.path].data.len();
            if cur + line.len() > spec.rotate_at {
                let old = self.files.remove(spec.path).unwrap();
                self.files.insert(format!("{}.1", spec.path), old);
                self.put(spec.path.into(), Kind::Log, Vec::new());
            }
            let f = self.files.get_mut(spec.path).unwrap();
            f.data.extend(line);
            f.mtime = ts;
        }
    }

    fn edit(&mut self, path: &str, ops: usize, middle: bool) {
        let mut f = self.files.remove(path).expect("edited file exists");
        let ext = path.rsplit('.').next().unwrap_or("").to_string();
        match f.kind {
            Kind::Py => edit_lines(&mut self.r, &mut f.data, ops, middle, &py_lines),
            Kind::Web => {
                let gen_lines = |r: &mut Rng, indent: usize| web_lines(r, indent, &ext);
                edit_lines(&mut self.r, &mut f.data, ops, middle, &gen_lines);
            }
            Kind::Json => json_tweak(&mut self.r, &mut f.data, ops),
            _ => splice_bytes(&mut self.r, &mut f.data, ops),
        }
        f.mtime = self.now + self.r.below(86_400) as u64;
        self.files.insert(path.to_string(), f);
    }

    fn regenerate(&mut self, path: &str, scale: (f64, f64)) {
        let (kind, len) = {
            let f = &self.files[path];
            (f.kind, f.data.len())
        };
        let factor = scale.0 + (scale.1 - scale.0) * self.r.unit();
        let size = ((len as f64 * factor) as usize).max(64);
        self.add(path.to_string(), kind, size);
    }

    fn advance(&mut self, day: u32) {
        self.now = EPOCH + u64::from(day) * 86_400;
        for i in 0..LOGS.len() {
            self.append_log(i);
        }
        let state = state_json(&mut self.r, day);
        self.put("data/state.json".into(), Kind::Json, state);

        if self.r.chance(0.45) {
            let hot = self.paths_where(|p, _| p.starts_with("app/") || p == "main.py");
            let any_py = self.paths_where(|_, f| f.kind == Kind::Py);
            for _ in 0..self.r.range(1, 4) {
                let p = if self.r.chance(0.7) {
                    self.r.pick(&hot).clone()
                } else {
                    self.r.pick(&any_py).clone()
                };
                let ops = self.r.range(1, 4);
                self.edit(&p, ops, true);
            }
        }
        if self.r.chance(1.0 / 7.0) {
            let configs = self.paths_where(|p, _| p.starts_with("config/"));
            let p = self.r.pick(&configs).clone();
            let ops = self.r.range(1, 3);
            self.edit(&p, ops, true);
        }
        if self.r.chance(1.0 / 30.0) {
            let assets =
                self.paths_where(|_, f| matches!(f.kind, Kind::Jpeg | Kind::Model | Kind::Font));
            let p = self.r.pick(&assets).clone();
            self.regenerate(&p, (0.8, 1.2));
        }
        if self.r.chance(0.08) {
            let dir = if self.r.chance(0.5) {
                "app".to_string()
            } else {
                format!("lib/{}", self.r.pick(PACKAGES))
            };
            let p = self.fresh_path(&dir, "py");
            let size = self.r.log_uniform(200, 30_000);
            self.add(p, Kind::Py, size);
        }
        if self.r.chance(0.04) {
            let movable =
                self.paths_where(|p, f| f.kind == Kind::Py && p != "main.py" && p != "boot.py");
            let from = self.r.pick(&movable).clone();
            let dir = if self.r.chance(0.7) {
                from.rsplit_once('/').map_or("app", |(d, _)| d).to_string()
            } else {
                format!("lib/{}", self.r.pick(PACKAGES))
            };
            let to = self.fresh_path(&dir, "py");
            let f = self.files.remove(&from).unwrap();
            self.files.insert(to, f);
        }
        if self.r.chance(0.04) {
            let deletable = self.paths_where(|p, f| {
                matches!(f.kind, Kind::Py | Kind::Json | Kind::Web)
                    && !matches!(
                        p,
                        "main.py" | "boot.py" | "data/state.json" | "data/version.json"
                    )
            });
            let p = self.r.pick(&deletable).clone();
            self.files.remove(&p);
        }
        if day.is_multiple_of(DEPLOY_EVERY) {
            self.deploy();
        }
    }

    fn deploy(&mut self) {
        for p in self.paths_where(|_, f| f.kind == Kind::Py) {
            if p.starts_with("app/") || p == "main.py" {
                if self.r.chance(0.6) {
                    let ops = self.r.range(2, 12);
                    self.edit(&p, ops, false);
                }
            } else if p.starts_with("lib/") {
                if self.r.chance(0.08) {
                    self.regenerate(&p, (0.7, 1.3));
                } else if self.r.chance(0.35) {
                    let ops = self.r.range(2, 10);
                    self.edit(&p, ops, false);
                }
            } else if self.r.chance(0.3) {
                let ops = self.r.range(1, 4);
                self.edit(&p, ops, false);
            }
        }
        for p in self.paths_where(|_, f| f.kind == Kind::Mpy) {
            if p == "lib/ui/widgets.mpy" {
                let ops = self.r.range(3, 10);
                self.edit(&p, ops, false);
            } else if self.r.chance(0.5) {
                self.regenerate(&p, (0.9, 1.15));
            }
        }
        for p in self.paths_where(|_, f| f.kind == Kind::Web) {
            if self.r.chance(0.3) {
                let ops = self.r.range(1, 6);
                self.edit(&p, ops, false);
            }
        }
        for p in self.paths_where(|p, _| p.starts_with("config/")) {
            if self.r.chance(0.3) {
                let ops = self.r.range(1, 3);
                self.edit(&p, ops, false);
            }
        }
        self.add("data/version.json".into(), Kind::Json, 200);
        if self.r.chance(0.5) {
            let dir = format!("lib/{}", self.r.pick(PACKAGES));
            let p = self.fresh_path(&dir, "py");
            let size = self.r.log_uniform(200, 30_000);
            self.add(p, Kind::Py, size);
        }
    }
}

// ---------------------------------------------------------------------------
// Simulated content-addressed store.

#[derive(Clone, Copy)]
struct Scheme {
    name: &'static str,
    rule: &'static str,
    whole_below: usize,
    min: usize,
    avg: usize,
    max: usize,
}

impl Scheme {
    fn cut(&self, data: &[u8]) -> Vec<(usize, usize)> {
        if data.is_empty() {
            Vec::new()
        } else if data.len() < self.whole_below {
            vec![(0, data.len())]
        } else {
            FastCDC::new(data, self.min, self.avg, self.max)
                .map(|c| (c.offset, c.length))
                .collect()
        }
    }
}

const SCHEMES: [Scheme; 4] = [
    Scheme {
        name: "A",
        rule: "whole <64 KiB, else 16/64/256 KiB",
        whole_below: 64 * KIB,
        min: 16 * KIB,
        avg: 64 * KIB,
        max: 256 * KIB,
    },
    Scheme {
        name: "B",
        rule: "4/16/64 KiB on every file",
        whole_below: 0,
        min: 4 * KIB,
        avg: 16 * KIB,
        max: 64 * KIB,
    },
    Scheme {
        name: "C",
        rule: "whole <64 KiB, else 4/16/64 KiB",
        whole_below: 64 * KIB,
        min: 4 * KIB,
        avg: 16 * KIB,
        max: 64 * KIB,
    },
    Scheme {
        name: "D",
        rule: "whole <16 KiB, else 4/16/64 KiB",
        whole_below: 16 * KIB,
        min: 4 * KIB,
        avg: 16 * KIB,
        max: 64 * KIB,
    },
];

/// Neighbours of the candidates, to see how sensitive the result is to the
/// whole-file threshold and to the CDC sizes.
const SWEEP: [Scheme; 7] = [
    Scheme {
        name: "D8",
        rule: "whole <8 KiB, else 4/16/64 KiB",
        whole_below: 8 * KIB,
        min: 4 * KIB,
        avg: 16 * KIB,
        max: 64 * KIB,
    },
    Scheme {
        name: "D32",
        rule: "whole <32 KiB, else 4/16/64 KiB",
        whole_below: 32 * KIB,
        min: 4 * KIB,
        avg: 16 * KIB,
        max: 64 * KIB,
    },
    Scheme {
        name: "E2",
        rule: "whole <16 KiB, else 2/8/32 KiB",
        whole_below: 16 * KIB,
        min: 2 * KIB,
        avg: 8 * KIB,
        max: 32 * KIB,
    },
    Scheme {
        name: "E8",
        rule: "whole <16 KiB, else 8/32/128 KiB",
        whole_below: 16 * KIB,
        min: 8 * KIB,
        avg: 32 * KIB,
        max: 128 * KIB,
    },
    Scheme {
        name: "E16",
        rule: "whole <16 KiB, else 16/64/256 KiB",
        whole_below: 16 * KIB,
        min: 16 * KIB,
        avg: 64 * KIB,
        max: 256 * KIB,
    },
    Scheme {
        name: "F",
        rule: "whole <64 KiB, else 8/32/128 KiB",
        whole_below: 64 * KIB,
        min: 8 * KIB,
        avg: 32 * KIB,
        max: 128 * KIB,
    },
    Scheme {
        name: "B2",
        rule: "2/8/32 KiB on every file",
        whole_below: 0,
        min: 2 * KIB,
        avg: 8 * KIB,
        max: 32 * KIB,
    },
];

fn allocated(stored: u64) -> u64 {
    stored.div_ceil(BLOCK) * BLOCK
}

fn object_id(tag: &[u8], data: &[u8]) -> Id {
    let mut h = blake3::Hasher::new();
    h.update(tag);
    h.update(data);
    *h.finalize().as_bytes()
}

#[derive(Clone, Copy, Default)]
struct Tally {
    objects: u64,
    stored: u64,
    alloc: u64,
}

impl Tally {
    fn add(&mut self, stored: u64) {
        self.objects += 1;
        self.stored += stored;
        self.alloc += allocated(stored);
    }

    fn merge(&mut self, o: Tally) {
        self.objects += o.objects;
        self.stored += o.stored;
        self.alloc += o.alloc;
    }
}

/// Stored size (header + zstd-3 payload, or raw) per object id, shared by all
/// repositories so identical objects are compressed once.
struct Sizer {
    comp: zstd::bulk::Compressor<'static>,
    sizes: HashMap<Id, u64>,
}

impl Sizer {
    fn stored(&mut self, id: Id, data: &[u8]) -> u64 {
        let comp = &mut self.comp;
        *self.sizes.entry(id).or_insert_with(|| {
            let c = comp.compress(data).expect("zstd compress").len();
            HEADER + c.min(data.len()) as u64
        })
    }
}

enum Node<'a> {
    File(&'a File, Rc<Vec<Id>>),
    Dir(BTreeMap<&'a str, Node<'a>>),
}

fn insert_node<'a>(dir: &mut BTreeMap<&'a str, Node<'a>>, path: &'a str, node: Node<'a>) {
    match path.split_once('/') {
        Some((head, rest)) => {
            let e = dir
                .entry(head)
                .or_insert_with(|| Node::Dir(BTreeMap::new()));
            if let Node::Dir(sub) = e {
                insert_node(sub, rest, node);
            }
        }
        None => {
            dir.insert(path, node);
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Day {
    all: Tally,
    chunks: Tally,
}

struct Repo {
    scheme: Scheme,
    ids: HashSet<Id>,
    file_chunks: HashMap<Id, Rc<Vec<Id>>>,
    parent: Id,
    chunks: Tally,
    /// Chunk objects that fit in a single block.
    small_chunks: u64,
    meta: Tally,
    by_category: [Tally; CATEGORIES.len()],
    days: Vec<Day>,
}

impl Repo {
    fn new(scheme: Scheme) -> Repo {
        Repo {
            scheme,
            ids: HashSet::new(),
            file_chunks: HashMap::new(),
            parent: [0; 32],
            chunks: Tally::default(),
            small_chunks: 0,
            meta: Tally::default(),
            by_category: [Tally::default(); CATEGORIES.len()],
            days: Vec::new(),
        }
    }

    fn total(&self) -> Tally {
        let mut t = self.chunks;
        t.merge(self.meta);
        t
    }

    fn snapshot(&mut self, board: &Board, keys: &[Id], sizer: &mut Sizer) {
        let mut day = Day::default();
        let mut root: BTreeMap<&str, Node> = BTreeMap::new();
        for ((path, file), key) in board.files.iter().zip(keys) {
            let list = match self.file_chunks.get(key) {
                Some(l) => l.clone(),
                None => {
                    let cat = file.kind.category();
                    let mut ids = Vec::new();
                    for (off, len) in self.scheme.cut(&file.data) {
                        let piece = &file.data[off..off + len];
                        let id = object_id(b"blob\0", piece);
                        if self.ids.insert(id) {
                            let s = sizer.stored(id, piece);
                            day.all.add(s);
                            day.chunks.add(s);
                            self.chunks.add(s);
                            self.small_chunks += u64::from(s <= BLOCK);
                            self.by_category[cat].add(s);
                        }
                        ids.push(id);
                    }
                    let l = Rc::new(ids);
                    self.file_chunks.insert(*key, l.clone());
                    l
                }
            };
            insert_node(&mut root, path, Node::File(file, list));
        }
        let root_id = self.write_tree(&root, sizer, &mut day);
        let mut snap = Vec::new();
        snap.extend_from_slice(&root_id);
        snap.extend_from_slice(&self.parent);
        snap.extend_from_slice(&board.now.to_le_bytes());
        snap.extend_from_slice(b"source=esp32-s3-01 host=workstation message=daily backup ");
        snap.extend_from_slice(&(board.files.len() as u64).to_le_bytes());
        let bytes: u64 = board.files.values().map(|f| f.data.len() as u64).sum();
        snap.extend_from_slice(&bytes.to_le_bytes());
        let id = object_id(b"snapshot\0", &snap);
        if self.ids.insert(id) {
            let s = sizer.stored(id, &snap);
            day.all.add(s);
            self.meta.add(s);
        }
        self.parent = id;
        self.days.push(day);
    }

    fn write_tree(&mut self, dir: &BTreeMap<&str, Node>, sizer: &mut Sizer, day: &mut Day) -> Id {
        let mut buf = Vec::new();
        buf.extend_from_slice(&(dir.len() as u32).to_le_bytes());
        for (name, node) in dir {
            buf.extend_from_slice(&(name.len() as u16).to_le_bytes());
            buf.extend_from_slice(name.as_bytes());
            match node {
                Node::File(f, ids) => {
                    buf.push(1);
                    buf.extend_from_slice(&0o100_644u32.to_le_bytes());
                    buf.extend_from_slice(&(f.data.len() as u64).to_le_bytes());
                    buf.extend_from_slice(&f.mtime.to_le_bytes());
                    buf.extend_from_slice(&(ids.len() as u32).to_le_bytes());
                    for id in ids.iter() {
                        buf.extend_from_slice(id);
                    }
                }
                Node::Dir(sub) => {
                    let id = self.write_tree(sub, sizer, day);
                    buf.push(2);
                    buf.extend_from_slice(&0o040_755u32.to_le_bytes());
                    buf.extend_from_slice(&id);
                }
            }
        }
        let id = object_id(b"tree\0", &buf);
        if self.ids.insert(id) {
            let s = sizer.stored(id, &buf);
            day.all.add(s);
            self.meta.add(s);
        }
        id
    }
}

// ---------------------------------------------------------------------------
// Reporting.

fn mib(b: u64) -> String {
    format!("{:.2}", b as f64 / (1024.0 * 1024.0))
}

fn kib(b: f64) -> String {
    format!("{:.1}", b / 1024.0)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn edit_locality() {
    const SIZE: usize = 16 * 1024 * 1024;
    let mut r = Rng::new(SEED ^ 0x1DEA);
    let original = r.bytes(SIZE);
    let mut overwritten = original.clone();
    for b in &mut overwritten[SIZE / 2..SIZE / 2 + 10] {
        *b ^= 0x5A;
    }
    let mut inserted = original.clone();
    inserted.splice(SIZE / 2..SIZE / 2, r.bytes(10));

    println!("\n### Edit locality: 16 MiB pseudo-random file, 10 bytes changed in the middle\n");
    println!(
        "| Scheme | CDC params (file > threshold) | chunks in file | new chunks, 10 B overwritten | new bytes | new chunks, 10 B inserted | new bytes |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for s in SCHEMES {
        let base: HashSet<Id> = s
            .cut(&original)
            .into_iter()
            .map(|(o, l)| object_id(b"blob\0", &original[o..o + l]))
            .collect();
        let fresh = |data: &[u8]| -> (usize, usize) {
            let mut n = 0;
            let mut bytes = 0;
            for (o, l) in s.cut(data) {
                if !base.contains(&object_id(b"blob\0", &data[o..o + l])) {
                    n += 1;
                    bytes += l;
                }
            }
            (n, bytes)
        };
        let (n1, b1) = fresh(&overwritten);
        let (n2, b2) = fresh(&inserted);
        println!(
            "| {} | {}/{}/{} KiB | {} | {} | {} KiB | {} | {} KiB |",
            s.name,
            s.min / KIB,
            s.avg / KIB,
            s.max / KIB,
            base.len(),
            n1,
            kib(b1 as f64),
            n2,
            kib(b2 as f64)
        );
    }
}

struct Sim {
    repos: Vec<Repo>,
    deploy_days: Vec<usize>,
    final_files: usize,
    final_bytes: usize,
}

/// Run the year of history of `board` into one repository per scheme.
fn simulate(schemes: &[Scheme], mut board: Board) -> Sim {
    let mut sizer = Sizer {
        comp: zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("zstd compressor"),
        sizes: HashMap::new(),
    };
    let mut repos: Vec<Repo> = schemes.iter().copied().map(Repo::new).collect();
    let mut deploy_days = Vec::new();
    for day in 0..=DAYS {
        if day > 0 {
            board.advance(day);
            if day.is_multiple_of(DEPLOY_EVERY) {
                deploy_days.push(day as usize);
            }
        }
        let keys: Vec<Id> = board
            .files
            .values()
            .map(|f| *blake3::hash(&f.data).as_bytes())
            .collect();
        for repo in &mut repos {
            repo.snapshot(&board, &keys, &mut sizer);
        }
    }
    Sim {
        repos,
        deploy_days,
        final_files: board.files.len(),
        final_bytes: board.files.values().map(|f| f.data.len()).sum(),
    }
}

fn describe_board(board: &Board) {
    let mut per_cat = [(0usize, 0usize, 0usize); CATEGORIES.len()];
    let mut sizes: Vec<usize> = Vec::new();
    for f in board.files.values() {
        let c = &mut per_cat[f.kind.category()];
        c.0 += 1;
        c.1 += f.data.len();
        c.2 += zstd::bulk::compress(&f.data, ZSTD_LEVEL)
            .expect("zstd")
            .len()
            .min(f.data.len());
        sizes.push(f.data.len());
    }
    let total_bytes: usize = sizes.iter().sum();
    println!(
        "Day-0 board: {} files, {} bytes ({} MiB); files < 16 KiB: {}, 16–64 KiB: {}, >= 64 KiB: {}\n",
        board.files.len(),
        total_bytes,
        mib(total_bytes as u64),
        sizes.iter().filter(|&&s| s < 16 * KIB).count(),
        sizes
            .iter()
            .filter(|&&s| (16 * KIB..64 * KIB).contains(&s))
            .count(),
        sizes.iter().filter(|&&s| s >= 64 * KIB).count(),
    );
    println!("| Category | files | bytes | zstd-3 ratio (whole files) |");
    println!("|---|---:|---:|---:|");
    for (name, (n, raw, comp)) in CATEGORIES.iter().zip(per_cat) {
        println!(
            "| {name} | {n} | {raw} | {:.2}x |",
            raw as f64 / comp.max(1) as f64
        );
    }
}

fn main() {
    let started = Instant::now();
    println!("# belay chunking-parameter study (benches/chunk_params.rs)\n");
    let board = Board::new(SEED);
    describe_board(&board);

    let mut schemes: Vec<Scheme> = SCHEMES.to_vec();
    schemes.extend_from_slice(&SWEEP);
    let sim = simulate(&schemes, board);
    let (repos, sweep) = sim.repos.split_at(SCHEMES.len());
    let deploy_days = &sim.deploy_days;
    println!(
        "\nDay-365 board: {} files, {} MiB. {} snapshots (day 0 + {} daily, {} deploy days).\n",
        sim.final_files,
        mib(sim.final_bytes as u64),
        DAYS + 1,
        DAYS,
        deploy_days.len()
    );

    let n = f64::from(DAYS);
    println!("### Year of history: totals and growth per daily snapshot (4096-byte blocks)\n");
    println!(
        "| Scheme | Rule | Objects | Stored MiB | Allocated MiB | Alloc / stored | Day-0 objects | Day-0 alloc MiB | Mean new objects / snapshot | Mean stored KiB / snapshot | Mean alloc KiB / snapshot | Median alloc KiB / day | Deploy-day mean alloc KiB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for repo in repos {
        let t = repo.total();
        let d0 = repo.days[0].all;
        let later = &repo.days[1..];
        let objects: u64 = later.iter().map(|d| d.all.objects).sum();
        let stored: u64 = later.iter().map(|d| d.all.stored).sum();
        let alloc: u64 = later.iter().map(|d| d.all.alloc).sum();
        let med = median(later.iter().map(|d| d.all.alloc).collect());
        let deploy: u64 = deploy_days.iter().map(|&d| repo.days[d].all.alloc).sum();
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {} | {} | {:.1} | {} | {} | {} | {} |",
            repo.scheme.name,
            repo.scheme.rule,
            t.objects,
            mib(t.stored),
            mib(t.alloc),
            t.alloc as f64 / t.stored as f64,
            d0.objects,
            mib(d0.alloc),
            objects as f64 / n,
            kib(stored as f64 / n),
            kib(alloc as f64 / n),
            kib(med as f64),
            kib(deploy as f64 / deploy_days.len() as f64),
        );
    }

    println!("\n### Object mix over the whole year\n");
    println!(
        "| Scheme | Chunk objects | Chunk stored MiB | Chunk alloc MiB | Mean chunk object (stored) | Chunk objects <= 1 block | Tree + snapshot objects | Tree + snapshot alloc MiB | Mean new chunk objects / snapshot |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for repo in repos {
        let c = repo.chunks;
        let small = repo.small_chunks;
        let day_chunks: u64 = repo.days[1..].iter().map(|d| d.chunks.objects).sum();
        println!(
            "| {} | {} | {} | {} | {} KiB | {:.0}% | {} | {} | {:.1} |",
            repo.scheme.name,
            c.objects,
            mib(c.stored),
            mib(c.alloc),
            kib(c.stored as f64 / c.objects as f64),
            100.0 * small as f64 / c.objects as f64,
            repo.meta.objects,
            mib(repo.meta.alloc),
            day_chunks as f64 / n,
        );
    }

    println!("\n### Where the year's space goes: allocated (stored) MiB, all 366 snapshots\n");
    print!("| Scheme |");
    for c in CATEGORIES {
        print!(" {c} |");
    }
    println!(" trees + snapshots |");
    println!("|---|{}---:|", "---:|".repeat(CATEGORIES.len()));
    for repo in repos {
        print!("| {} |", repo.scheme.name);
        for t in &repo.by_category {
            print!(" {} ({}) |", mib(t.alloc), mib(t.stored));
        }
        println!(" {} |", mib(repo.meta.alloc));
    }

    println!("\n### Sweep: threshold and CDC sizes around the candidates (same history)\n");
    println!(
        "| Scheme | Rule | Objects | Stored MiB | Allocated MiB | Day-0 objects | Mean new objects / snapshot | Mean stored KiB / snapshot | Mean alloc KiB / snapshot | log/csv alloc MiB | py alloc MiB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for repo in repos.iter().filter(|r| r.scheme.name == "D").chain(sweep) {
        let t = repo.total();
        let later = &repo.days[1..];
        let objects: u64 = later.iter().map(|d| d.all.objects).sum();
        let stored: u64 = later.iter().map(|d| d.all.stored).sum();
        let alloc: u64 = later.iter().map(|d| d.all.alloc).sum();
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} |",
            repo.scheme.name,
            repo.scheme.rule,
            t.objects,
            mib(t.stored),
            mib(t.alloc),
            repo.days[0].all.objects,
            objects as f64 / n,
            kib(stored as f64 / n),
            kib(alloc as f64 / n),
            mib(repo.by_category[3].alloc),
            mib(repo.by_category[0].alloc),
        );
    }

    println!(
        "\n### Seed robustness: other boards and histories (allocated / stored MiB over the year)\n"
    );
    print!("| Seed |");
    for s in SCHEMES {
        print!(" {} |", s.name);
    }
    println!();
    println!("|---|{}", "---:|".repeat(SCHEMES.len()));
    for k in 1..=3u64 {
        let seed = SEED.wrapping_add(k);
        let sim = simulate(&SCHEMES, Board::new(seed));
        print!("| base+{k} |");
        for repo in &sim.repos {
            let t = repo.total();
            print!(" {} / {} |", mib(t.alloc), mib(t.stored));
        }
        println!();
    }

    edit_locality();
    println!(
        "\n(zstd level {ZSTD_LEVEL}, {HEADER}-byte object header, {BLOCK}-byte blocks; runtime {:.1} s)",
        started.elapsed().as_secs_f64()
    );
}
