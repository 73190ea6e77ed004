"""Create a pseudo-terminal and exec the board program with it.

Usage: pty_exec.py PROGRAM ARGS...

The PTY master becomes fd 3 (non-blocking) and the slave fd 4 of PROGRAM; the
slave's path is in the environment as BOARD_PTY_PATH. The slave is put in raw
mode (no echo, no CR/LF translation, no signal characters, 8 bits) before any
client can open it, and PROGRAM keeps fd 4 open so that a client closing the
port does not hang the master up (a board outlives its host connections).
Python's standard library is all this needs: no package to install.
"""

import fcntl
import os
import sys
import termios
import tty


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: pty_exec.py PROGRAM ARGS...")
    master, slave = os.openpty()
    tty.setraw(slave, termios.TCSANOW)
    attrs = termios.tcgetattr(slave)
    # iflag, oflag, cflag, lflag: make sure nothing is translated or swallowed.
    attrs[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                  | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON
                  | termios.IXOFF | termios.IXANY)
    attrs[1] &= ~termios.OPOST
    attrs[2] = (attrs[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8 | termios.CREAD | termios.CLOCAL
    attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    path = os.ttyname(slave)
    os.set_blocking(master, False)
    # Move both ends out of the way first, so that dup2 to 3 and 4 never
    # closes the other end.
    high_master = fcntl.fcntl(master, fcntl.F_DUPFD, 10)
    high_slave = fcntl.fcntl(slave, fcntl.F_DUPFD, 10)
    os.close(master)
    os.close(slave)
    os.dup2(high_master, 3, inheritable=True)
    os.dup2(high_slave, 4, inheritable=True)
    os.close(high_master)
    os.close(high_slave)
    os.environ["BOARD_PTY_PATH"] = path
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
