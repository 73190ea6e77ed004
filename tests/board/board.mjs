// The test board's serial line: started by ./start (through pty_exec.py,
// which provides the pseudo-terminal as fds 3 and 4). Runs MicroPython in a
// worker thread (worker.mjs) and moves bytes between it and the PTY at the
// chosen baud rate, with the faults asked for. See README.md.

import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { Worker } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import {
    RX_RING_SIZE, TX_RING_SIZE, CTL_SIZE,
    RX_HEAD, RX_TAIL, TX_HEAD, TX_TAIL, KBD_REQ, RESET_REQ,
    DUMP_REQ, DUMP_DONE, READY, WAKE, MUTATE_REQ,
} from "./shared.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const MASTER_FD = 3;
const SLAVE_FD = 4;

const USAGE = `usage: tests/board/start [--fs DIR] [options]

Starts a MicroPython test board on a pseudo-terminal and prints its path
(e.g. /dev/pts/5) as the first line of stdout; runs until SIGTERM/SIGINT.

  --fs DIR                 copy DIR into the board's filesystem at / (default: empty)
  --dump-to DIR            write the board's filesystem to DIR on exit (and on SIGUSR1);
                           DIR must be empty or absent
  --baud N                 bytes per second = N/10, both directions (default 115200; 0 = unthrottled)
  --heap BYTES             Python heap (default 200K; e.g. 40K for an ESP8266)
  --flash-size BYTES       flash size: writes past it fail with ENOSPC (default 16M)
  --flash-write-ms N       each write() to a file takes N ms per 4 KB started (a flash
                           sector erase/program), during which the interpreter does
                           nothing else while input keeps arriving (default 0)
  --rx-buffer BYTES        the board's input buffer; bytes arriving while it is full
                           are dropped, as on UART boards (default: 1024 with flow control)
  --unique-id HEX          what machine.unique_id() returns (default: from the --fs path)
  --sysname NAME           os.uname().sysname (default: webassembly)
  --raw-paste MODE         raw-paste (Ctrl-E A Ctrl-A) support: on (default: the window
                           protocol), refuse (answer R\\x00 then ">", as pyexec does for a
                           raw-paste command it does not support), absent (firmware older
                           than v1.14: Ctrl-A just re-prints the raw REPL banner)
  --no-raw-paste           same as --raw-paste refuse
  --without LIST           what the board's firmware lacks, comma-separated: uname
                           (os.uname), time (time/utime), statvfs (os.statvfs), machine
                           (the machine module), unique_id (machine.unique_id), ilistdir
                           (os.ilistdir), ilistdir-size (os.ilistdir yields 3-tuples, as
                           VfsPosix), hashlib, deflate, binascii, buffer (sys.stdin.buffer
                           / sys.stdout.buffer)
  --no-hashlib             no hashlib module (same as --without hashlib)
  --no-deflate             no deflate module (same as --without deflate)
  --no-buffer              no sys.stdin.buffer / sys.stdout.buffer (--without buffer)
  --unplug-after-bytes N   close the line after N bytes of output (a USB unplug)
  --reset-after-bytes N    soft-reset the board after N bytes of output
  --garble-after-bytes N   replace output bytes from the N-th on with random bytes
  --mutate-after-bytes N   after N bytes of output, change the file --mutate-file on the
                           board, from the interpreter thread between two of the running
                           code's output writes (as a timer callback or the other core
                           would); once
  --mutate-file PATH       the board file --mutate-after-bytes changes (e.g. data/log.csv)
  --mutate-how HOW         append (default: a line is appended, the size grows) or
                           overwrite (the first and last 16 bytes are inverted in place,
                           the size stays)
  --garble-count K         how many bytes --garble-after-bytes replaces (default 16)
  --seed N                 seed for the garbage (default 1)
  --pyscript-modules       keep the pure-Python modules frozen into the pyscript build
                           (base64, logging, ...), which no stock board has
  --verbose                log events on stderr
  --trace FILE             append every byte of the line to FILE ("> " host to board,
                           "< " board to host, escaped)
`;

// What --without can take away (board_boot.py does it).
const WITHOUT = ["uname", "time", "statvfs", "machine", "unique_id", "ilistdir", "ilistdir-size",
    "hashlib", "deflate", "binascii", "buffer"];

function fail(msg) {
    process.stderr.write(`test board: ${msg}\n`);
    process.exit(2);
}

function parseSize(s, name) {
    const m = /^(\d+)([kKmM]?)$/.exec(String(s));
    if (!m) fail(`${name}: not a size: ${s}`);
    const unit = { "": 1, k: 1024, K: 1024, m: 1 << 20, M: 1 << 20 }[m[2]];
    return Number(m[1]) * unit;
}

function parseArgs(argv) {
    const o = {
        fs: null,
        dumpTo: null,
        baud: 115200,
        heap: 200 * 1024,
        flashSize: 16 << 20,
        flashWriteMs: 0,
        rxBuffer: 0,
        uniqueId: null,
        sysname: "webassembly",
        rawPaste: "on",
        without: new Set(),
        unplugAfter: -1,
        resetAfter: -1,
        garbleAfter: -1,
        garbleCount: 16,
        mutateAfter: -1,
        mutateFile: null,
        mutateHow: "append",
        seed: 1,
        verbose: false,
        trace: null,
        pyscriptModules: false,
    };
    const flags = {
        "--no-raw-paste": () => (o.rawPaste = "refuse"),
        "--no-hashlib": () => o.without.add("hashlib"),
        "--no-deflate": () => o.without.add("deflate"),
        "--no-buffer": () => o.without.add("buffer"),
        "--verbose": () => (o.verbose = true),
        "--pyscript-modules": () => (o.pyscriptModules = true),
        "--help": () => {
            process.stdout.write(USAGE);
            process.exit(0);
        },
    };
    const values = {
        "--fs": (v) => (o.fs = path.resolve(v)),
        "--dump-to": (v) => (o.dumpTo = path.resolve(v)),
        "--baud": (v) => (o.baud = parseSize(v, "--baud")),
        "--heap": (v) => (o.heap = parseSize(v, "--heap")),
        "--flash-size": (v) => (o.flashSize = parseSize(v, "--flash-size")),
        "--flash-write-ms": (v) => (o.flashWriteMs = parseSize(v, "--flash-write-ms")),
        "--rx-buffer": (v) => (o.rxBuffer = parseSize(v, "--rx-buffer")),
        "--unique-id": (v) => {
            if (!/^([0-9a-fA-F]{2})+$/.test(v)) fail(`--unique-id: not hex bytes: ${v}`);
            o.uniqueId = v.toLowerCase();
        },
        "--sysname": (v) => (o.sysname = v),
        "--without": (v) => {
            for (const name of v.split(",").map((x) => x.trim()).filter((x) => x)) {
                if (!WITHOUT.includes(name)) fail(`--without: ${name} is not one of ${WITHOUT.join(", ")}`);
                o.without.add(name);
            }
        },
        "--raw-paste": (v) => {
            if (!["on", "refuse", "absent"].includes(v)) fail(`--raw-paste: on, refuse or absent, not ${v}`);
            o.rawPaste = v;
        },
        "--unplug-after-bytes": (v) => (o.unplugAfter = parseSize(v, "--unplug-after-bytes")),
        "--reset-after-bytes": (v) => (o.resetAfter = parseSize(v, "--reset-after-bytes")),
        "--garble-after-bytes": (v) => (o.garbleAfter = parseSize(v, "--garble-after-bytes")),
        "--mutate-after-bytes": (v) => (o.mutateAfter = parseSize(v, "--mutate-after-bytes")),
        "--mutate-file": (v) => (o.mutateFile = v),
        "--mutate-how": (v) => {
            if (!["append", "overwrite"].includes(v)) fail(`--mutate-how: append or overwrite, not ${v}`);
            o.mutateHow = v;
        },
        "--garble-count": (v) => (o.garbleCount = parseSize(v, "--garble-count")),
        "--seed": (v) => (o.seed = parseSize(v, "--seed")),
        "--trace": (v) => (o.trace = path.resolve(v)),
    };
    for (let i = 0; i < argv.length; i++) {
        let a = argv[i];
        let v;
        const eq = a.indexOf("=");
        if (a.startsWith("--") && eq > 0) {
            v = a.slice(eq + 1);
            a = a.slice(0, eq);
        }
        if (flags[a] && v === undefined) {
            flags[a]();
        } else if (values[a]) {
            if (v === undefined) {
                if (i + 1 >= argv.length) fail(`${a} needs a value`);
                v = argv[++i];
            }
            values[a](v);
        } else {
            fail(`unknown argument: ${argv[i]}\n\n${USAGE}`);
        }
    }
    if (o.heap < 16 * 1024) fail("--heap: at least 16K");
    if ((o.mutateAfter >= 0) !== (o.mutateFile !== null)) fail("--mutate-after-bytes and --mutate-file go together");
    if (o.rxBuffer > RX_RING_SIZE) fail(`--rx-buffer: at most ${RX_RING_SIZE}`);
    if (o.fs && !fs.statSync(o.fs, { throwIfNoEntry: false })?.isDirectory()) fail(`--fs: not a directory: ${o.fs}`);
    if (o.dumpTo && fs.existsSync(o.dumpTo) && fs.readdirSync(o.dumpTo).length > 0) {
        fail(`--dump-to: not empty: ${o.dumpTo}`);
    }
    if (!o.uniqueId) {
        // Stable per --fs folder, distinct between folders: like a board.
        o.uniqueId = crypto.createHash("sha256").update(o.fs || "").digest("hex").slice(0, 16);
    }
    if (o.without.has("binascii") && o.without.has("buffer")) {
        fail("--without binascii,buffer: no MicroPython build lacks both, and belay needs one of them");
    }
    o.without = [...o.without];
    o.heapGrowth = Math.max(4096, Math.floor(o.heap / 4));
    return o;
}

const opts = parseArgs(process.argv.slice(2));
const ptyPath = process.env.BOARD_PTY_PATH;
if (!ptyPath) fail("start the board with tests/board/start (BOARD_PTY_PATH is not set)");

function log(msg) {
    if (opts.verbose) process.stderr.write(`test board: ${msg}\n`);
}

// ---------------------------------------------------------------------------

const ctlSab = new SharedArrayBuffer(CTL_SIZE * 4);
const rxSab = new SharedArrayBuffer(RX_RING_SIZE);
const txSab = new SharedArrayBuffer(TX_RING_SIZE);
const ctl = new Int32Array(ctlSab);
const rx = new Uint8Array(rxSab);
const tx = new Uint8Array(txSab);

const worker = new Worker(path.join(here, "worker.mjs"), {
    workerData: { ctlSab, rxSab, txSab, opts },
    stdout: false,
    stderr: false,
});
worker.on("error", (e) => {
    process.stderr.write(`test board: the board crashed: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
});
worker.on("exit", (code) => {
    if (!stopping) {
        process.stderr.write(`test board: the board stopped (exit code ${code})\n`);
        process.exit(1);
    }
});

function wakeBoard() {
    Atomics.add(ctl, WAKE, 1);
    Atomics.notify(ctl, WAKE);
}

// ---------------------------------------------------------------------------
// The line.

const throttled = opts.baud > 0;
const rate = opts.baud / 10; // bytes per second, 8N1
const burst = Math.max(4, Math.ceil(rate * 0.004));
const rxCap = opts.rxBuffer > 0 ? opts.rxBuffer : 1024;
const dropWhenFull = opts.rxBuffer > 0;
// Bytes taken from the PTY and not yet delivered: a USB-serial adapter's
// FIFO. Small when throttled, so that a host's writes block as on a real line.
const hostFifo = throttled ? 256 : 65536;

let rxTokens = 0;
let txTokens = 0;
let lastTick = process.hrtime.bigint();
const inBuf = Buffer.alloc(hostFifo);
let inStart = 0;
let inEnd = 0;
let outPending = Buffer.alloc(0);
let outCount = 0; // bytes of output put on the line
let dropped = 0;
let unplugged = false;
let resetDone = false;
let mutateDone = false;
let idleTicks = 0;

// xorshift32, seeded: the same garbage each run.
let prng = opts.seed >>> 0 || 1;
function randomByte() {
    prng ^= prng << 13;
    prng >>>= 0;
    prng ^= prng >>> 17;
    prng ^= prng << 5;
    prng >>>= 0;
    return prng & 0xff;
}

let traceDir = "";
let traceLine = "";
function trace(dir, bytes) {
    if (!opts.trace || bytes.length === 0) return;
    if (dir !== traceDir && traceLine) {
        fs.appendFileSync(opts.trace, `${traceDir} ${traceLine}\n`);
        traceLine = "";
    }
    traceDir = dir;
    for (const b of bytes) {
        traceLine += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`;
        if (b === 0x0a || traceLine.length > 200) {
            fs.appendFileSync(opts.trace, `${traceDir} ${traceLine}\n`);
            traceLine = "";
        }
    }
}

function unplug() {
    if (unplugged) return;
    unplugged = true;
    log(`unplugged after ${outCount} bytes of output`);
    try {
        fs.closeSync(MASTER_FD);
    } catch {}
    try {
        fs.closeSync(SLAVE_FD);
    } catch {}
}

function readHost() {
    if (unplugged) return false;
    if (inStart === inEnd) {
        inStart = 0;
        inEnd = 0;
    }
    if (inEnd === inBuf.length && inStart > 0) {
        inBuf.copy(inBuf, 0, inStart, inEnd);
        inEnd -= inStart;
        inStart = 0;
    }
    if (inEnd - inStart >= hostFifo || inEnd === inBuf.length) return false;
    try {
        const n = fs.readSync(MASTER_FD, inBuf, inEnd, inBuf.length - inEnd, null);
        trace(">", inBuf.subarray(inEnd, inEnd + n));
        inEnd += n;
        return n > 0;
    } catch (e) {
        if (e.code === "EAGAIN" || e.code === "EWOULDBLOCK") return false;
        if (e.code === "EIO") return false; // no client: cannot happen while fd 4 is open
        throw e;
    }
}

function deliverToBoard() {
    let head = ctl[RX_HEAD];
    let moved = false;
    while (inStart < inEnd && (!throttled || rxTokens >= 1)) {
        const b = inBuf[inStart];
        if (((head - Atomics.load(ctl, RX_TAIL)) | 0) < rxCap) {
            rx[head & (RX_RING_SIZE - 1)] = b;
            head = (head + 1) | 0;
            Atomics.store(ctl, RX_HEAD, head);
            inStart++;
            moved = true;
        } else if (dropWhenFull) {
            inStart++;
            dropped++;
            if (b === 0x03) {
                // A receive interrupt still sees the interrupt character.
                Atomics.add(ctl, KBD_REQ, 1);
                moved = true;
            }
            if (dropped === 1 || dropped % 1000 === 0) log(`input buffer full: ${dropped} byte(s) dropped so far`);
        } else {
            break; // flow control: the host waits
        }
        if (throttled) rxTokens -= 1;
    }
    if (moved) wakeBoard();
    return moved;
}

function takeFromBoard() {
    checkFaults();
    let tail = ctl[TX_TAIL];
    const head = Atomics.load(ctl, TX_HEAD);
    let avail = (head - tail) | 0;
    if (avail <= 0) return false;
    if (unplugged) {
        Atomics.store(ctl, TX_TAIL, head);
        Atomics.notify(ctl, TX_TAIL);
        return true;
    }
    if (outPending.length > 0) return false;
    let n = avail;
    if (throttled) n = Math.min(n, Math.floor(txTokens));
    if (n <= 0) return false;
    if (opts.unplugAfter >= 0) n = Math.min(n, Math.max(0, opts.unplugAfter - outCount));
    if (opts.resetAfter >= 0 && !resetDone) n = Math.min(n, Math.max(0, opts.resetAfter - outCount));
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
        let b = tx[tail & (TX_RING_SIZE - 1)];
        tail = (tail + 1) | 0;
        const at = outCount + i;
        if (opts.garbleAfter >= 0 && at >= opts.garbleAfter && at < opts.garbleAfter + opts.garbleCount) {
            b = randomByte();
            if (at === opts.garbleAfter) log(`garbling ${opts.garbleCount} byte(s) of output from byte ${at}`);
        }
        out[i] = b;
    }
    Atomics.store(ctl, TX_TAIL, tail);
    Atomics.notify(ctl, TX_TAIL);
    if (throttled) txTokens -= n;
    outCount += n;
    trace("<", out);
    outPending = out;
    writeHost();
    checkFaults();
    return n > 0;
}

function checkFaults() {
    if (opts.resetAfter >= 0 && !resetDone && outCount >= opts.resetAfter) {
        resetDone = true;
        log(`reset fault after ${outCount} bytes of output`);
        // What the board had not sent yet is lost with the reset.
        Atomics.store(ctl, TX_TAIL, Atomics.load(ctl, TX_HEAD));
        Atomics.add(ctl, RESET_REQ, 1);
        Atomics.notify(ctl, TX_TAIL);
        wakeBoard();
    }
    if (opts.unplugAfter >= 0 && outCount >= opts.unplugAfter && outPending.length === 0) unplug();
    if (opts.mutateAfter >= 0 && !mutateDone && outCount >= opts.mutateAfter) {
        mutateDone = true;
        log(`changing ${opts.mutateFile} after ${outCount} bytes of output`);
        Atomics.add(ctl, MUTATE_REQ, 1);
        wakeBoard();
    }
}

function writeHost() {
    if (unplugged) {
        outPending = Buffer.alloc(0);
        return;
    }
    while (outPending.length > 0) {
        let n;
        try {
            n = fs.writeSync(MASTER_FD, outPending, 0, outPending.length);
        } catch (e) {
            if (e.code === "EAGAIN" || e.code === "EWOULDBLOCK") return;
            throw e;
        }
        outPending = outPending.subarray(n);
    }
}

function tick() {
    const now = process.hrtime.bigint();
    const dt = Number(now - lastTick) / 1e9;
    lastTick = now;
    if (throttled) {
        rxTokens = Math.min(rxTokens + dt * rate, burst);
        txTokens = Math.min(txTokens + dt * rate, burst);
    }
    let busy = false;
    if (outPending.length > 0) {
        writeHost();
        checkFaults();
        busy = true;
    }
    busy = readHost() || busy;
    busy = deliverToBoard() || busy;
    busy = takeFromBoard() || busy;
    busy = busy || inStart < inEnd || ((Atomics.load(ctl, TX_HEAD) - ctl[TX_TAIL]) | 0) > 0;
    idleTicks = busy ? 0 : idleTicks + 1;
    // 1 ms while bytes move; polls less often the longer the line is idle.
    setTimeout(tick, idleTicks > 1200 ? 15 : idleTicks > 200 ? 5 : 1);
}

// ---------------------------------------------------------------------------
// Start, stop, dump.

let stopping = false;
let dumpWaiters = [];

function requestDump() {
    return new Promise((resolve) => {
        const req = Atomics.add(ctl, DUMP_REQ, 1) + 1;
        wakeBoard();
        const started = Date.now();
        const check = () => {
            if (Atomics.load(ctl, DUMP_DONE) === req) return resolve(true);
            if (Date.now() - started > 10000) return resolve(false);
            setTimeout(check, 5);
        };
        check();
    });
}

async function stop(signal) {
    if (stopping) return;
    stopping = true;
    log(`stopping (${signal})`);
    let ok = true;
    if (opts.dumpTo) {
        ok = await requestDump();
        if (!ok) process.stderr.write("test board: the board did not answer the dump request within 10 s (busy in code that does no I/O?)\n");
    }
    await worker.terminate();
    process.exit(ok ? 0 : 1);
}

// A board whose starter died (a test process killed without running its
// destructors) would run for ever: stop with it.
const parentPid = process.ppid;
setInterval(() => {
    if (process.ppid !== parentPid) stop("parent exited");
}, 1000).unref();

process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
process.on("SIGHUP", () => stop("SIGHUP"));
process.on("SIGUSR1", async () => {
    if (opts.dumpTo && !stopping) {
        const ok = await requestDump();
        log(ok ? "dumped on SIGUSR1" : "dump on SIGUSR1 timed out");
    }
});
void dumpWaiters;

// Wait for the interpreter, then announce the port.
await new Promise((resolve) => {
    const check = () => {
        if (Atomics.load(ctl, READY) !== 0) return resolve();
        setTimeout(check, 5);
    };
    check();
});
if (Atomics.load(ctl, READY) < 0) {
    stopping = true;
    process.exit(2);
}
process.stdout.write(`${ptyPath}\n`);
log(`ready on ${ptyPath} (baud ${opts.baud || "unthrottled"}, heap ${opts.heap}, unique id ${opts.uniqueId})`);
tick();
