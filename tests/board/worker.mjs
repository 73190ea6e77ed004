// The board: the MicroPython WebAssembly build, its real REPL, and what a
// board's firmware does around it (soft reset, raw-paste, boot.py/main.py,
// errno numbers, flash size). Runs in a worker thread so that Python code can
// block on stdin and stdout the way it does on a board while the main thread
// (board.mjs) keeps the serial line, the baud rate and the signals.
//
// Everything here is synchronous: the worker never returns to its event
// loop; it talks to the line through shared memory (shared.mjs).

import { workerData } from "node:worker_threads";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
    RX_RING_SIZE, TX_RING_SIZE,
    RX_HEAD, RX_TAIL, TX_HEAD, TX_TAIL, KBD_REQ, RESET_REQ,
    DUMP_REQ, DUMP_DONE, READY, WAKE, MUTATE_REQ,
} from "./shared.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const { ctlSab, rxSab, txSab, opts } = workerData;
const ctl = new Int32Array(ctlSab);
const rx = new Uint8Array(rxSab);
const tx = new Uint8Array(txSab);

// The board's flash is the root of Emscripten's MEMFS (its own /dev, /tmp,
// /home and /proc are removed at start). Mounting a VfsPosix with a root
// folder instead would break os.rename in 1.27.0 (both paths end up in one
// shared buffer).
const ROOT = "";
const BLOCK = 4096; // flash block size reported by statvfs
const RAW_PASTE_WINDOW = 128; // MICROPY_REPL_STDIN_BUFFER_MAX / 2, as on every port

function log(msg) {
    if (opts.verbose) process.stderr.write(`test board: ${msg}\n`);
}

// ---------------------------------------------------------------------------
// Loading the interpreter, with three adjustments made at instantiation:
//
// 1. Heap: the pyscript build grows its GC heap on demand (split heap) and
//    only collects garbage when control returns to JavaScript, never inside
//    a running exec. A fixed heap would therefore run out of memory in any
//    long-running program, however little it keeps alive. So the heap starts
//    at 3/4 of --heap and may grow in areas of at most 1/4 of --heap: no
//    single allocation larger than the heap can succeed (a whole file in RAM
//    fails, as on a board) and gc.mem_free() reports about --heap, while
//    garbage never exhausts memory (as a board's collector guarantees).
//    The limit is the constant returned by gc_get_max_new_split() (128 MiB),
//    patched in the module's code.
// 2. errno: Emscripten's errno numbers (ENOENT is 44) are translated to the
//    ones MicroPython uses on a board (ENOENT 2) at the syscall boundary, so
//    every OSError, from os.* and from file methods alike, carries a board's
//    number.
// 3. mp_js_ticks_ms is called by time.sleep()/ticks loops: it gives the
//    board a chance to notice Ctrl-C, resets and dump requests there too.

const SPLIT_MAX_PATTERN = [0x41, 0x80, 0x80, 0x80, 0xc0, 0x00]; // i32.const 134217728

function patchSplitHeapLimit(bytes, limit) {
    const found = [];
    outer: for (let i = 0; i + SPLIT_MAX_PATTERN.length <= bytes.length; i++) {
        for (let j = 0; j < SPLIT_MAX_PATTERN.length; j++) {
            if (bytes[i + j] !== SPLIT_MAX_PATTERN[j]) continue outer;
        }
        found.push(i);
    }
    if (found.length !== 1) {
        throw new Error(`cannot find the split-heap limit in micropython.wasm (${found.length} candidates); is the package version the pinned one?`);
    }
    const at = found[0] + 1;
    // 5-byte signed LEB128, same length as the original.
    bytes[at] = 0x80 | (limit & 0x7f);
    bytes[at + 1] = 0x80 | ((limit >>> 7) & 0x7f);
    bytes[at + 2] = 0x80 | ((limit >>> 14) & 0x7f);
    bytes[at + 3] = 0x80 | ((limit >>> 21) & 0x7f);
    bytes[at + 4] = (limit >>> 28) & 0x07;
}

// Emscripten errno -> MicroPython (Linux) errno.
const ERRNO_MAP = new Map([
    [63, 1], // EPERM
    [44, 2], // ENOENT
    [29, 5], // EIO
    [8, 9], // EBADF
    [6, 11], // EAGAIN
    [48, 12], // ENOMEM
    [2, 13], // EACCES
    [10, 16], // EBUSY
    [20, 17], // EEXIST
    [75, 18], // EXDEV
    [43, 19], // ENODEV
    [54, 20], // ENOTDIR
    [31, 21], // EISDIR
    [28, 22], // EINVAL
    [41, 23], // ENFILE
    [33, 24], // EMFILE
    [59, 25], // ENOTTY
    [22, 27], // EFBIG
    [51, 28], // ENOSPC
    [70, 29], // ESPIPE
    [69, 30], // EROFS
    [37, 36], // ENAMETOOLONG
    [55, 39], // ENOTEMPTY
    [138, 95], // EOPNOTSUPP
]);

let onTicks = (value) => value;

const origInstantiate = WebAssembly.instantiate;
WebAssembly.instantiate = async function (bin, imports) {
    if (bin instanceof ArrayBuffer || ArrayBuffer.isView(bin)) {
        const bytes = new Uint8Array(bin instanceof ArrayBuffer ? bin : bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength)).slice();
        patchSplitHeapLimit(bytes, opts.heapGrowth);
        bin = bytes;
    }
    if (imports && imports.env) {
        for (const [name, f] of Object.entries(imports.env)) {
            if (name.startsWith("__syscall_") && typeof f === "function") {
                imports.env[name] = (...args) => {
                    const r = f(...args);
                    if (typeof r === "number" && r < 0 && ERRNO_MAP.has(-r)) return -ERRNO_MAP.get(-r);
                    return r;
                };
            }
        }
        const ticks = imports.env.mp_js_ticks_ms;
        if (typeof ticks === "function") {
            imports.env.mp_js_ticks_ms = (...args) => onTicks(ticks(...args));
        }
    }
    const wasi = imports && imports.wasi_snapshot_preview1;
    if (wasi) {
        for (const [name, f] of Object.entries(wasi)) {
            if (name.startsWith("fd_") && typeof f === "function") {
                wasi[name] = (...args) => {
                    const r = f(...args);
                    if (typeof r === "number" && r > 0 && ERRNO_MAP.has(r)) return ERRNO_MAP.get(r);
                    return r;
                };
            }
        }
    }
    return origInstantiate.call(this, bin, imports);
};

const { loadMicroPython } = await import("@micropython/micropython-webassembly-pyscript");

// ---------------------------------------------------------------------------
// Output: every byte the interpreter prints goes into the TX ring; when the
// ring is full the interpreter waits, as it would on a slow UART.

let suppress = 0; // bytes still to drop (the "OK" of an emulated raw-paste)
let discard = true; // output thrown away (before the board is ready, after a reset fault)
let captured = null; // when an array, output is collected here instead

function emit(b) {
    if (captured) {
        captured.push(b);
        return;
    }
    if (suppress > 0) {
        suppress--;
        return;
    }
    maybePollEvents();
    if (discard) return;
    for (;;) {
        const head = ctl[TX_HEAD];
        const tail = Atomics.load(ctl, TX_TAIL);
        if (((head - tail) | 0) < TX_RING_SIZE) {
            tx[head & (TX_RING_SIZE - 1)] = b;
            Atomics.store(ctl, TX_HEAD, (head + 1) | 0);
            return;
        }
        pollEvents(false);
        if (discard) return;
        Atomics.wait(ctl, TX_TAIL, tail, 50);
    }
}

function emitStr(s) {
    for (const b of Buffer.from(s, "latin1")) emit(b);
}

// ---------------------------------------------------------------------------
// Input.

function rxAvailable() {
    return (Atomics.load(ctl, RX_HEAD) - ctl[RX_TAIL]) | 0;
}

function rxTake() {
    const tail = ctl[RX_TAIL];
    const b = rx[tail & (RX_RING_SIZE - 1)];
    Atomics.store(ctl, RX_TAIL, (tail + 1) | 0);
    return b;
}

function waitForWake(ms) {
    const w = Atomics.load(ctl, WAKE);
    if (rxAvailable() > 0) return;
    Atomics.wait(ctl, WAKE, w, ms);
}

// ---------------------------------------------------------------------------
// Events from the line: Ctrl-C while code runs, reset faults, dump requests.
//
// A board's receive interrupt compares every incoming byte with the
// interrupt character (Ctrl-C while code runs, none once the code called
// micropython.kbd_intr(-1) and at the REPL) and raises KeyboardInterrupt
// instead of buffering it. Here the board looks at what arrived whenever the
// running code gives it control: on each stdin read, on output (when the
// line signalled something new), and in time.sleep()/ticks calls.

let kbdSeen = 0;
let resetSeen = 0;
let mutateSeen = 0;
let pendingReset = false; // a reset fault waits for the running code to stop
let abortRead = false; // make a blocked stdin read return
let mp = null;
let intrChar = -1;
let scanPos = 0; // RX bytes before this were checked for the interrupt character
let lastWake = 0;
let executing = false; // Python code surely runs (for reset faults)

function schedInterrupt() {
    interrupts++;
    mp._module._mp_sched_keyboard_interrupt();
    abortRead = true;
}

// Cheap check for the hot paths (every output byte, every ticks call).
function maybePollEvents() {
    const w = Atomics.load(ctl, WAKE);
    if (w !== lastWake) pollEvents(false);
}

// `inRead`: called from inside a stdin read, so Python code is running.
function pollEvents(inRead) {
    lastWake = Atomics.load(ctl, WAKE);
    if (mp) intrChar = mp._module._mp_hal_get_interrupt_char();
    const head = Atomics.load(ctl, RX_HEAD);
    const tail = ctl[RX_TAIL];
    if (((scanPos - tail) | 0) < 0) scanPos = tail;
    if (intrChar >= 0) {
        for (let i = scanPos; i !== head; i = (i + 1) | 0) {
            if (rx[i & (RX_RING_SIZE - 1)] === intrChar) {
                // Interrupt: the character, and what came before it (as
                // TinyUSB flushes its buffer), never reach the code.
                Atomics.store(ctl, RX_TAIL, (i + 1) | 0);
                scanPos = (i + 1) | 0;
                schedInterrupt();
                break;
            }
        }
        if (((scanPos - head) | 0) < 0) scanPos = head;
    } else {
        scanPos = head;
    }
    const kbd = Atomics.load(ctl, KBD_REQ);
    if (kbd !== kbdSeen) {
        // An interrupt character that arrived while the input buffer was
        // full (the line could not buffer it; a receive interrupt still
        // sees it).
        kbdSeen = kbd;
        if (intrChar >= 0) schedInterrupt();
    }
    const reset = Atomics.load(ctl, RESET_REQ);
    if (reset !== resetSeen) {
        resetSeen = reset;
        log("reset fault");
        pendingReset = true;
        discard = true;
        if (inRead || intrChar >= 0 || executing) schedInterrupt();
    }
    const mutate = Atomics.load(ctl, MUTATE_REQ);
    if (mutate !== mutateSeen) {
        mutateSeen = mutate;
        mutateFile();
    }
    const dump = Atomics.load(ctl, DUMP_REQ);
    if (dump !== Atomics.load(ctl, DUMP_DONE)) {
        try {
            dumpFs(opts.dumpTo);
        } catch (e) {
            process.stderr.write(`test board: dump failed: ${e.stack || e}\n`);
        }
        Atomics.store(ctl, DUMP_DONE, dump);
        Atomics.notify(ctl, DUMP_DONE);
    }
}

// time.sleep() spins on mp_js_ticks_ms() (the port's mp_hal_delay_ms has no
// event hook): let it look at events, sleep a little once it is clearly
// spinning instead of burning a core, and when an interrupt was scheduled
// meanwhile, jump the tick counter forward so that the delay ends and the
// KeyboardInterrupt is raised, as a board's delay loop would.
let ticksLast = -1;
let ticksSame = 0;
let ticksOffset = 0;
let interrupts = 0;
onTicks = (value) => {
    const before = interrupts;
    maybePollEvents();
    if (value === ticksLast) {
        if (++ticksSame > 50) {
            ticksSame = 0;
            const w = Atomics.load(ctl, WAKE);
            if (w === lastWake) Atomics.wait(ctl, WAKE, w, 1);
            maybePollEvents();
        }
    } else {
        ticksLast = value;
        ticksSame = 0;
    }
    if (interrupts !== before) ticksOffset += 0x40000000;
    return (value + ticksOffset) % 0x100000000;
};

// Module.stdin: called once per byte by Emscripten's device read; null ends
// the read. The first byte of a read blocks until input arrives (a board's
// mp_hal_stdin_rx_chr); later bytes only take what is already there.
let readStarted = false;

function stdinGetChar() {
    if (!readStarted) {
        for (;;) {
            pollEvents(true);
            if (abortRead) {
                abortRead = false;
                return null;
            }
            if (rxAvailable() > 0) break;
            waitForWake(100);
        }
    } else {
        if (rxAvailable() === 0 || abortRead) {
            readStarted = false;
            return null;
        }
        if (intrChar >= 0 && rx[ctl[RX_TAIL] & (RX_RING_SIZE - 1)] === intrChar) {
            rxTake();
            schedInterrupt();
            readStarted = false;
            return null;
        }
    }
    readStarted = true;
    return rxTake();
}

// ---------------------------------------------------------------------------
// The filesystem.

// --mutate-after-bytes: the board's own code changes a file while the host
// may be reading it (a logger in a timer callback, the other core). Runs in
// the interpreter thread, between two writes of the running code's output,
// so the running code sees the change at its next file operation, as on a
// board.
function mutateFile() {
    const p = `${ROOT}/${opts.mutateFile.replace(/^\/+/, "")}`;
    try {
        if (opts.mutateHow === "append") {
            const line = Buffer.from("changed by the board while it was read\n", "latin1");
            const s = FS.open(p, "a");
            FS.write(s, line, 0, line.length);
            FS.close(s);
        } else {
            // The same size, other bytes at both ends: a reader that had
            // passed the head but not the tail gets neither version.
            const data = FS.readFile(p);
            const k = Math.min(16, data.length);
            const s = FS.open(p, "r+");
            for (const at of [0, data.length - k]) {
                const b = data.slice(at, at + k).map((x) => x ^ 0xff);
                FS.write(s, b, 0, k, at);
            }
            FS.close(s);
        }
        log(`changed ${p} (${opts.mutateHow})`);
    } catch (e) {
        process.stderr.write(`test board: --mutate-file ${p}: ${e && e.message ? e.message : e}\n`);
    }
}

function walk(node, rel, visit) {
    for (const name of Object.keys(node.contents).sort()) {
        const child = node.contents[name];
        const childRel = rel ? `${rel}/${name}` : name;
        visit(child, childRel);
        if (FS.isDir(child.mode)) walk(child, childRel, visit);
    }
}

function flashUsedBlocks() {
    let blocks = 2; // superblock pair
    walk(FS.root, "", (node) => {
        if (FS.isDir(node.mode)) blocks += 1;
        else if (FS.isFile(node.mode)) blocks += Math.ceil((node.usedBytes || 0) / BLOCK);
    });
    return blocks;
}

function flashTotalBlocks() {
    return Math.floor(opts.flashSize / BLOCK);
}

function removeTree(p) {
    const node = FS.lookupPath(p).node;
    if (FS.isDir(node.mode)) {
        // (/proc/self/fd is a pseudo directory without contents.)
        for (const name of Object.keys(node.contents || {})) removeTree(`${p}/${name}`);
        FS.rmdir(p);
    } else {
        FS.unlink(p);
    }
}

function loadFs(hostDir) {
    // Open streams (stdin, stdout, stderr) keep their device nodes.
    for (const name of Object.keys(FS.root.contents)) removeTree(`/${name}`);
    if (!hostDir) return;
    const copy = (src, dst) => {
        for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
            const s = path.join(src, ent.name);
            const d = `${dst}/${ent.name}`;
            const st = fs.statSync(s);
            if (st.isDirectory()) {
                FS.mkdir(d);
                copy(s, d);
                FS.utime(d, st.atimeMs, st.mtimeMs);
            } else if (st.isFile()) {
                FS.writeFile(d, fs.readFileSync(s));
                FS.utime(d, st.atimeMs, st.mtimeMs);
            } else {
                process.stderr.write(`test board: skipping ${s} (not a file or directory)\n`);
            }
        }
    };
    copy(hostDir, ROOT);
}

function clearDir(dir) {
    for (const name of fs.readdirSync(dir)) {
        fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    }
}

function dumpFs(dir) {
    if (!dir) return;
    fs.mkdirSync(dir, { recursive: true });
    clearDir(dir);
    const dirs = [];
    walk(FS.root, "", (node, rel) => {
        const host = path.join(dir, ...rel.split("/"));
        const mtime = new Date(node.mtime);
        if (FS.isDir(node.mode)) {
            fs.mkdirSync(host);
            dirs.push([host, mtime]);
        } else if (FS.isFile(node.mode)) {
            fs.writeFileSync(host, FS.readFile(`${ROOT}/${rel}`));
            fs.utimesSync(host, mtime, mtime);
        }
    });
    // Directory mtimes last: writing their files changed them.
    for (const [host, mtime] of dirs.reverse()) fs.utimesSync(host, mtime, mtime);
    log(`dumped the filesystem to ${dir}`);
}

// ---------------------------------------------------------------------------
// Start the interpreter.

let FS = null;
let hardResetRequested = false;
let resetCause = 1; // PWRON_RESET

const initialHeap = Math.max(8192, opts.heap - opts.heapGrowth);
mp = await loadMicroPython({
    heapsize: initialHeap,
    pystack: 4096,
    linebuffer: false,
    stdout: (data) => {
        for (const b of data) emit(b);
    },
    stderr: (data) => {
        for (const b of data) emit(b);
    },
    stdin: stdinGetChar,
});
FS = mp.FS;

// Flash size: a write that would make the files need more blocks than the
// flash has fails with ENOSPC (51 here, 28 once translated).
// Flash speed (--flash-write-ms): once the board is running, each write() to
// a file takes that long per 4 KB started, as a sector erase/program does.
// The interpreter thread just waits, as a board's CPU stalls on flash, while
// the line (board.mjs) keeps putting input into the bounded input buffer:
// on a UART board with --rx-buffer, what does not fit is dropped.
let flashDelays = false; // off while --fs is loaded
const flashStall = new Int32Array(new SharedArrayBuffer(4));
{
    const origWrite = FS.write;
    FS.write = function (stream, buffer, offset, length, position, canOwn) {
        const node = stream.node;
        if (length > 0 && FS.isFile(node.mode)) {
            const pos = typeof position === "number" ? position : stream.position;
            const oldSize = node.usedBytes || 0;
            const newSize = Math.max(oldSize, pos + length);
            const extra = Math.ceil(newSize / BLOCK) - Math.ceil(oldSize / BLOCK);
            if (extra > 0 && flashUsedBlocks() + extra > flashTotalBlocks()) {
                throw new FS.ErrnoError(51);
            }
            if (flashDelays && opts.flashWriteMs > 0) {
                Atomics.wait(flashStall, 0, 0, opts.flashWriteMs * Math.ceil(length / BLOCK));
            }
        }
        return origWrite.call(this, stream, buffer, offset, length, position, canOwn);
    };
}

// open() of a directory fails with EISDIR, as on LittleFS and FAT (Emscripten
// only fails at the first read); opendir() passes O_DIRECTORY.
{
    const origOpen = FS.open;
    const O_DIRECTORY = 0o200000;
    FS.open = function (p, flags, ...rest) {
        const stream = origOpen.call(this, p, flags, ...rest);
        if (typeof flags === "number" && !(flags & O_DIRECTORY) && stream.node && FS.isDir(stream.node.mode)) {
            FS.close(stream);
            throw new FS.ErrnoError(31);
        }
        return stream;
    };
}

try {
    loadFs(opts.fs);
} catch (e) {
    const why = e && e.errno === 51
        ? `does not fit in the flash (--flash-size ${opts.flashSize})`
        : `cannot be loaded: ${e && e.message ? e.message : e}`;
    process.stderr.write(`test board: --fs ${opts.fs} ${why}\n`);
    Atomics.store(ctl, READY, -1);
    Atomics.notify(ctl, READY);
    process.exit(2);
}
flashDelays = true;

mp.registerJsModule("_boardjs", {
    statvfs: () => {
        const total = flashTotalBlocks();
        const free = Math.max(0, total - flashUsedBlocks());
        return [BLOCK, BLOCK, total, free, free, 0, 0, 0, 0, 255].join(",");
    },
    hard_reset: () => {
        hardResetRequested = true;
    },
    reset_cause: () => resetCause,
});

// Stdin's device read returns at most what is there; poll() on it says
// whether anything is (the default device says "always readable").
{
    const stdinStream = FS.getStream(0);
    if (stdinStream && stdinStream.stream_ops) {
        stdinStream.stream_ops.poll = () => {
            pollEvents(true);
            if (rxAvailable() > 0 || abortRead) return 1 | 4; // POLLIN | POLLOUT
            waitForWake(1);
            return rxAvailable() > 0 ? 1 | 4 : 4;
        };
    }
}

// The banner tells the version and build date (for os.uname().version).
captured = [];
mp.replInit();
const banner = Buffer.from(captured).toString("latin1");
captured = null;
const bannerMatch = /MicroPython (v\S+) on (\S+);/.exec(banner);
const version = bannerMatch ? `${bannerMatch[1]} on ${bannerMatch[2]}` : "unknown";

function runPython(code) {
    try {
        mp.runPython(code);
    } catch (e) {
        if (e && e.name === "PythonError") {
            // (A Ctrl-C that came in while the board ran its own code is not news.)
            if (e.type !== "KeyboardInterrupt" || opts.verbose) {
                process.stderr.write(`test board: Python error: ${e.message}\n`);
            }
        } else {
            throw e;
        }
    }
}

const blocked = ["js", "jsffi"];
if (!opts.pyscriptModules) {
    // Frozen into the pyscript build, on no stock board.
    blocked.push("abc", "base64", "copy", "datetime", "fnmatch", "functools", "gzip", "hmac",
        "html", "inspect", "itertools", "locale", "logging", "operator", "pathlib", "stat",
        "string", "tarfile", "types", "unittest", "uu", "zlib");
}
// Modules --without removes (board_boot.py takes away the functions).
const without = new Set(opts.without);
const modulesOf = { hashlib: ["hashlib", "uhashlib"], deflate: ["deflate"], time: ["time", "utime"],
    binascii: ["binascii", "ubinascii"], machine: ["machine", "umachine"] };
for (const [what, names] of Object.entries(modulesOf)) {
    if (without.has(what)) blocked.push(...names);
}
const cfg = {
    sysname: opts.sysname,
    version,
    unique_id: opts.uniqueId,
    freq: 125000000,
    blocked,
    without: [...without],
    buffer: !without.has("buffer"),
};
const bootSource = fs.readFileSync(path.join(here, "board_boot.py"), "utf8");
mp.runPython(
    `_cfg = __import__("json").loads(${JSON.stringify(JSON.stringify(cfg))})\n` +
    `exec(compile(${JSON.stringify(bootSource)}, "_boot.py", "exec"))\n`,
);

// ---------------------------------------------------------------------------
// The REPL, as firmware drives it.

let rawMode = false; // which REPL pyexec is in (friendly until Ctrl-A)
let rawLine = []; // the first bytes of the raw REPL's current line
let rawLineLen = 0;

function processChar(b) {
    return mp.replProcessChar(b);
}

// Soft reset: what a port's main() does when pyexec returns
// PYEXEC_FORCED_EXIT: print "MPY: soft reboot", start afresh (here: clear
// the Python state the user made), run boot.py (and main.py in the friendly
// REPL), and re-initialise the REPL, which prints the raw-REPL banner and
// ">" in raw mode. Without the re-init the REPL's line buffer is left
// freed and the next multi-line input fails with a SyntaxError.
function softReset() {
    const hard = hardResetRequested;
    hardResetRequested = false;
    pendingReset = false;
    abortRead = false;
    readStarted = false;
    discard = false;
    if (hard) {
        // A hard reset (machine.reset()): the board reboots, its REPL starts
        // in friendly mode, as after power-on.
        resetCause = 2;
        if (rawMode) {
            captured = [];
            processChar(0x02);
            captured = null;
            rawMode = false;
        }
    } else {
        resetCause = 5;
        emitStr("MPY: soft reboot\r\n");
    }
    rawLine = [];
    rawLineLen = 0;
    // An interrupt scheduled for the code that was stopped may still be
    // pending: it must not hit the reboot's own Python.
    runPython("try:\n    for _ in range(3):\n        pass\nexcept KeyboardInterrupt:\n    pass\n");
    runPython("__import__('_board').soft_reset()");
    runPython("__import__('_board').run_file('boot.py')");
    if (!rawMode) runPython("__import__('_board').run_file('main.py')");
    mp.replInit();
}

function feedRaw(b) {
    if (b === 0x01 && rawLineLen === 2 && rawLine[0] === 0x05) {
        // Raw-paste request: Ctrl-E, a command byte, Ctrl-A. The event-driven
        // REPL would block for ever in do_reader_stdin() here, so the board
        // answers itself. Ctrl-C clears the REPL's line silently.
        const cmd = rawLine[1];
        processChar(0x03);
        rawLine = [];
        rawLineLen = 0;
        rawPaste(cmd);
        return 0;
    }
    executing = b === 0x04 && rawLineLen > 0;
    const r = processChar(b);
    executing = false;
    if (b === 0x01 || b === 0x03 || b === 0x04) {
        rawLine = [];
        rawLineLen = 0;
    } else if (b === 0x02) {
        rawMode = false;
    } else {
        if (rawLineLen < 2) rawLine.push(b);
        rawLineLen++;
    }
    return r;
}

function feed(b) {
    let r;
    if (rawMode) {
        r = feedRaw(b);
    } else {
        if (b === 0x01) {
            captured = [];
            r = processChar(b);
            const out = captured;
            captured = null;
            for (const c of out) emit(c);
            if (Buffer.from(out).toString("latin1").includes("raw REPL; CTRL-B to exit")) {
                rawMode = true;
                rawLine = [];
                rawLineLen = 0;
            }
        } else {
            r = processChar(b);
        }
    }
    intrChar = -1;
    if ((r & 0x100) || pendingReset || hardResetRequested) softReset();
}

// Blocking read of one byte outside Python code (raw-paste upload).
function takeByteBlocking() {
    for (;;) {
        pollEvents(false);
        if (pendingReset) return -1;
        if (rxAvailable() > 0) return rxTake();
        waitForWake(100);
    }
}

// Raw-paste, the board side of the window protocol (pyexec.c's
// do_reader_stdin / mp_reader_stdin_*): "R\x01", a 2-byte little-endian
// window, "\x01" for a second window; a "\x01" each time a window's worth
// has been consumed; Ctrl-D ends the upload ("\x04" back), Ctrl-C aborts it.
// The code is then compiled and run by the real raw REPL with its "OK"
// dropped, so output, "\x04", traceback, "\x04", ">" follow as on a board.
function rawPaste(cmd) {
    if (opts.rawPaste === "absent") {
        // Firmware older than raw-paste (v1.14): Ctrl-E and the command
        // byte were ordinary bytes, and Ctrl-A re-prints the banner.
        processChar(0x01);
        return;
    }
    if (opts.rawPaste !== "on" || cmd !== 0x41) {
        // pyexec's answer to a raw-paste command it does not support:
        // "R\x00", then the prompt.
        emitStr("R\x00>");
        return;
    }
    emitStr("R\x01");
    emit(RAW_PASTE_WINDOW & 0xff);
    emit(RAW_PASTE_WINDOW >> 8);
    emit(0x01);
    let remain = RAW_PASTE_WINDOW;
    const code = [];
    for (;;) {
        const b = takeByteBlocking();
        if (b < 0) return; // reset fault
        if (b === 0x03) {
            emitStr("\x04\x04KeyboardInterrupt: \r\n\x04>");
            return;
        }
        if (b === 0x04) {
            emit(0x04);
            break;
        }
        code.push(b);
        if (--remain === 0) {
            emit(0x01);
            remain = RAW_PASTE_WINDOW;
        }
    }
    let src = code;
    if (code.some((c) => c <= 0x04)) {
        // Control bytes would act on the classic raw REPL: compile the
        // code from a bytes literal instead.
        const lit = Buffer.from(code).toString("hex");
        src = [...Buffer.from(`exec(compile(bytes.fromhex('${lit}'),'<stdin>','exec'))`, "latin1")];
    }
    for (const c of src) {
        processChar(c);
    }
    suppress = 2; // "OK"
    executing = true;
    const r = processChar(0x04);
    executing = false;
    suppress = 0;
    rawLine = [];
    rawLineLen = 0;
    intrChar = -1;
    if ((r & 0x100) || pendingReset || hardResetRequested) softReset();
}

// boot.py runs before the board is on the line; main.py after.
runPython("__import__('_board').run_file('boot.py')");
Atomics.store(ctl, READY, 1);
Atomics.notify(ctl, READY);
discard = false;
runPython("__import__('_board').run_file('main.py')");
// The friendly REPL's banner and prompt, as after power-on.
mp.replInit();
log("ready");

for (;;) {
    pollEvents(false);
    if (pendingReset) {
        softReset();
        continue;
    }
    if (rxAvailable() > 0) {
        feed(rxTake());
        continue;
    }
    waitForWake(100);
}
