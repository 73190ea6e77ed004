// Layout of the memory shared by the line (board.mjs, main thread) and the
// board (worker.mjs, the MicroPython interpreter in a worker thread).
//
// Two byte rings carry the serial line: RX (host -> board) and TX (board ->
// host). Counters are free-running 32-bit integers; ring sizes are powers of
// two, so `count & (size - 1)` is the index and `(head - tail) | 0` the fill.

export const RX_RING_SIZE = 1 << 16; // storage; the board's buffer is smaller
export const TX_RING_SIZE = 1 << 12; // a board's output buffer

// Indices into the Int32Array `ctl`.
export const RX_HEAD = 0; // written by the line: bytes delivered to the board
export const RX_TAIL = 1; // written by the board: bytes consumed
export const TX_HEAD = 2; // written by the board: bytes produced
export const TX_TAIL = 3; // written by the line: bytes sent to the host
export const MUTATE_REQ = 4; // line: --mutate-after-bytes reached (count)
export const KBD_REQ = 5; // line: interrupt characters seen (count)
export const RESET_REQ = 6; // line: soft resets requested (count)
export const DUMP_REQ = 7; // line: dumps requested (count)
export const DUMP_DONE = 8; // board: last dump request served
export const READY = 9; // board: 1 once the REPL runs, -1 on a fatal error
export const WAKE = 10; // line: bumped (and notified) to wake the board
export const DISCARD_TX = 11; // board: 1 while output must be thrown away
export const CTL_SIZE = 16;

export const TIOCM_DUMMY = 0;
