#!/usr/bin/env python3
"""belay backup of a board vs `mpremote cp -r :/ DIR`, on the test board.

Usage: benches/board_vs_mpremote.py [--baud 115200] [--runs 3] [--mix text|binary] [--belay PATH]

Builds ~300 KB of mixed files (the example board image, Python sources, a
JSON log, binary blobs), starts a test board holding them at the given baud
rate, and times, on the same board:

  - belay backup serial:PTY --no-deflate   (fresh repository: full pull)
  - belay backup serial:PTY                (fresh repository: full pull, deflate on the board)
  - belay backup serial:PTY                (unchanged re-backup)
  - mpremote connect PTY cp -r :/ DIR      (mpremote 1.27, full pull)

Every tool talks to the board through a relay pseudo-terminal that counts the
bytes on the line in both directions ("wire bytes"). Prints a Markdown table;
the README's figures come from it. Needs node, python3 and mpremote
(tests/setup.sh installs it in tests/board/.venv).
"""

import argparse
import json
import os
import pty
import random
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tty

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_data(d, mix="text"):
    shutil.copytree(os.path.join(ROOT, "examples/board-image"), d)
    rnd = random.Random(42)
    if mix == "binary":
        # A board that holds mostly images, compiled modules and recordings.
        os.makedirs(os.path.join(d, "img"), exist_ok=True)
        for i in range(6):
            with open(os.path.join(d, "img/photo%d.jpg" % i), "wb") as f:
                f.write(bytes(rnd.randrange(256) for _ in range(35 * 1024)))
        for i in range(8):
            with open(os.path.join(d, "lib/m%d.mpy" % i), "wb") as f:
                f.write(bytes(rnd.choice([0, 1, 2, 0x1b, 0x34, 0x80, 0xFF, rnd.randrange(256)]) for _ in range(6 * 1024)))
        with open(os.path.join(d, "data/readings.json"), "w") as f:
            json.dump([{"t": 1700000000 + i * 60, "temp": round(rnd.uniform(15, 30), 2)} for i in range(300)], f)
        return
    os.makedirs(os.path.join(d, "lib/app"), exist_ok=True)
    # Python sources: the store's and the agent's style, varied.
    words = ["sensor", "value", "read", "write", "config", "retry", "timeout", "self", "return", "import"]
    for i in range(12):
        lines = []
        for j in range(220):
            w = rnd.sample(words, 4)
            lines.append("    def %s_%d(self, %s):\n        return self.%s + %d  # %s\n" % (w[0], j, w[1], w[2], rnd.randrange(1000), w[3]))
        with open(os.path.join(d, "lib/app/mod%02d.py" % i), "w") as f:
            f.write("class M%d:\n" % i + "".join(lines))
    with open(os.path.join(d, "data/readings.json"), "w") as f:
        json.dump([{"t": 1700000000 + i * 60, "temp": round(rnd.uniform(15, 30), 2), "rh": rnd.randrange(30, 90)} for i in range(900)], f)
    with open(os.path.join(d, "data/image.bin"), "wb") as f:
        f.write(bytes(rnd.randrange(256) for _ in range(70 * 1024)))
    with open(os.path.join(d, "firmware.mpy"), "wb") as f:
        f.write(bytes(rnd.choice([0, 1, 2, 0x1b, 0x34, 0x80, 0xFF, rnd.randrange(256)]) for _ in range(20 * 1024)))


def payload(d):
    n = 0
    for root, _, files in os.walk(d):
        for f in files:
            n += os.path.getsize(os.path.join(root, f))
    return n


class Relay:
    """A pseudo-terminal in front of the board's, counting bytes both ways."""

    def __init__(self, board_path):
        self.board = os.open(board_path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.board)
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self.slave = slave  # kept open so the line survives tool exits
        self.up = 0
        self.down = 0
        self.stop = False
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while not self.stop:
            r, _, _ = select.select([self.master, self.board], [], [], 0.05)
            for fd in r:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    continue
                if fd == self.master:
                    self.up += len(data)
                    os.write(self.board, data)
                else:
                    self.down += len(data)
                    os.write(self.master, data)

    def take(self):
        n = self.up + self.down
        self.up = self.down = 0
        return n


def timed(cmd, env=None):
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, env=env)
    dt = time.monotonic() - t
    if p.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), p.stderr.decode(errors="replace")))
    return dt, p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mix", choices=["text", "binary"], default="text", help="text-heavy (default) or binary-heavy files")
    ap.add_argument("--belay", default=os.path.join(ROOT, "target/release/belay"))
    ap.add_argument("--mpremote", default=os.environ.get("MPREMOTE") or os.path.join(ROOT, "tests/board/.venv/bin/mpremote"))
    a = ap.parse_args()
    if not os.path.exists(a.belay):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "belay-cli"], cwd=ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="belay-bench-")
    data = os.path.join(tmp, "data")
    make_data(data, a.mix)
    size = payload(data)
    board = subprocess.Popen([os.path.join(ROOT, "tests/board/start"), "--fs", data, "--baud", str(a.baud)], stdout=subprocess.PIPE)
    pty_path = board.stdout.readline().decode().strip()
    relay = Relay(pty_path)
    env = dict(os.environ, BELAY_CACHE_DIR=os.path.join(tmp, "cache"))
    rows = {k: [] for k in ["belay", "belay_deflate", "belay_unchanged", "mpremote"]}
    try:
        for run in range(a.runs):
            for kind, extra in [("belay", ["--no-deflate"]), ("belay_deflate", [])]:
                repo = os.path.join(tmp, "repo-%s-%d" % (kind, run))
                subprocess.run([a.belay, "-r", repo, "init"], check=True, capture_output=True, env=env)
                env["BELAY_CACHE_DIR"] = os.path.join(tmp, "cache-%s-%d" % (kind, run))
                relay.take()
                dt, out = timed([a.belay, "-r", repo, "--json", "backup", "serial:" + relay.path] + extra, env)
                j = json.loads(out)
                rows[kind].append((dt, relay.take(), j["bytes_transferred"], j["wire_bytes"]))
                if kind == "belay":
                    dt, out = timed([a.belay, "-r", repo, "--json", "backup", "serial:" + relay.path], env)
                    j = json.loads(out)
                    rows["belay_unchanged"].append((dt, relay.take(), j["bytes_transferred"], j["wire_bytes"]))
            dest = os.path.join(tmp, "mp-%d" % run)
            os.makedirs(dest)
            relay.take()
            dt, _ = timed([a.mpremote, "connect", relay.path, "cp", "-r", ":/", dest + "/"])
            rows["mpremote"].append((dt, relay.take(), payload(dest), None))
    finally:
        relay.stop = True
        board.terminate()
        board.wait()
    med = lambda xs: sorted(xs)[len(xs) // 2]
    print("payload: %d bytes in %d files (%s mix); baud %d; %d runs (median)" % (size, sum(len(f) for _, _, f in os.walk(data)), a.mix, a.baud, a.runs))
    print()
    print("| run | time (s) | wire bytes | wire / payload | file bytes moved |")
    print("|---|---|---|---|---|")
    for k in ["mpremote", "belay", "belay_deflate", "belay_unchanged"]:
        t = med([r[0] for r in rows[k]])
        w = med([r[1] for r in rows[k]])
        moved = med([r[2] for r in rows[k]])
        print("| %s | %.2f | %d | %.3f | %d |" % (k, t, w, w / size, moved))
    full = med([r[0] for r in rows["belay"]])
    mp = med([r[0] for r in rows["mpremote"]])
    un = med([r[0] for r in rows["belay_unchanged"]])
    print()
    print("belay full pull is %.2fx faster than mpremote; unchanged re-backup takes %.1f%% of the full pull" % (mp / full, 100 * un / full))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
