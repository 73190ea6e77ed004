"""Run Python code on a MicroPython board through its raw REPL, as
`mpremote exec` does, with nothing but Python's standard library.

Usage: board-exec.py PORT CODE

Interrupts what runs (Ctrl-C), enters the raw REPL (Ctrl-A), sends CODE and
Ctrl-D, prints what the board printed, and returns to the friendly REPL
(Ctrl-B). Exits 1 if the code raised.
"""

import os
import sys
import termios
import time
import tty


class Line:
    """The serial line, with what was read past the last marker kept."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = b""

    def read_until(self, marker, timeout=20.0):
        end = time.monotonic() + timeout
        while marker not in self.buf:
            if time.monotonic() > end:
                sys.exit(f"board-exec: no answer from the board (waited for {marker!r}, got {self.buf[-80:]!r})")
            try:
                self.buf += os.read(self.fd, 4096)
            except BlockingIOError:
                time.sleep(0.01)
        i = self.buf.index(marker) + len(marker)
        got, self.buf = self.buf[:i], self.buf[i:]
        return got


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: board-exec.py PORT CODE")
    port, code = sys.argv[1], sys.argv[2]
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd, termios.TCSANOW)
    try:
        os.write(fd, b"\r\x03\x03")
        time.sleep(0.1)
        termios.tcflush(fd, termios.TCIFLUSH)
        line = Line(fd)
        os.write(fd, b"\x01")
        line.read_until(b"raw REPL; CTRL-B to exit\r\n>")
        os.write(fd, code.encode() + b"\x04")
        line.read_until(b"OK")
        out = line.read_until(b"\x04")[:-1]
        err = line.read_until(b"\x04")[:-1]
        line.read_until(b">")
        os.write(fd, b"\x02")
        sys.stdout.write(out.decode(errors="replace").replace("\r\n", "\n"))
        if err:
            sys.stderr.write(err.decode(errors="replace").replace("\r\n", "\n"))
            sys.exit(1)
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
