#!/usr/bin/env python3
"""Deterministic benchmark datasets for belay (no downloads, fixed seeds).

    datasets.py board  DIR [--seed N]   ~300 files, ~2 MB: a MicroPython board
    datasets.py mixed  DIR [--seed N]   ~5,000 files, ~100 MB: text, incompressible
                                        data, 10% duplicate files
    datasets.py mutate DIR [--seed N]   change 1% of the files in the middle,
                                        add 5 files, delete 5 files

The same seed gives byte-identical trees (and mtimes) on every machine with
Python 3.9+ (`random.Random` with an int seed, `randbytes`, `choices` and
`shuffle` are stable across versions). DIR must not exist for `board` and
`mixed`. Every generated file gets a fixed mtime (2026-01-01 plus its index
in seconds), and a mutated or added file gets that plus one day, so
tools that trust (size, mtime) see exactly the mutated files as changed.
"""

import argparse
import os
import random
import sys

BASE_MTIME = 1767225600  # 2026-01-01T00:00:00Z
DAY = 86400

WORDS = (
    "self value data time sensor read write buf len machine pin led state config "
    "count index result error retry timeout socket wifi connect send recv json "
    "temp humidity pressure level alarm queue task loop sleep ms us irq timer "
    "display draw text font width height color pixel frame update render event "
    "handler callback register register_cb init deinit start stop reset flag mode "
    "i2c spi uart adc pwm duty freq addr reg byte bytes bits mask shift offset "
    "path file open close line lines split strip format print log debug info warn "
    "network station access point channel rssi mqtt topic payload publish subscribe"
).split()

KEYWORDS = ["def", "class", "if", "elif", "else:", "for", "while", "return", "import", "from",
            "try:", "except", "with", "yield", "pass", "raise", "assert", "lambda"]


def ident(rng):
    n = rng.randint(1, 3)
    return "_".join(rng.choice(WORDS) for _ in range(n))


def py_line(rng, depth):
    k = rng.random()
    ind = "    " * depth
    if k < 0.12:
        return f"{ind}def {ident(rng)}({', '.join(ident(rng) for _ in range(rng.randint(0, 3)))}):"
    if k < 0.2:
        return f"{ind}# {' '.join(rng.choice(WORDS) for _ in range(rng.randint(3, 10)))}"
    if k < 0.3:
        return f"{ind}if {ident(rng)} {rng.choice(['==', '<', '>', 'is', 'in'])} {ident(rng)}:"
    if k < 0.38:
        return f"{ind}return {ident(rng)}({ident(rng)}, {rng.randint(0, 4096)})"
    if k < 0.45:
        return f"{ind}for {ident(rng)} in range({rng.randint(1, 64)}):"
    return f"{ind}{ident(rng)} = {ident(rng)}.{ident(rng)}({ident(rng)}, {rng.randint(0, 65535)})"


def py_source(rng, size):
    out = [f'"""{" ".join(rng.choice(WORDS) for _ in range(8))}."""', ""]
    for _ in range(rng.randint(1, 5)):
        out.append(f"import {rng.choice(WORDS)}")
    n, depth = sum(len(x) + 1 for x in out), 0
    while n < size:
        line = py_line(rng, depth)
        out.append(line)
        n += len(line) + 1
        if line.endswith(":"):
            depth = min(depth + 1, 4)
        elif rng.random() < 0.25 and depth > 0:
            depth -= 1
    return ("\n".join(out) + "\n").encode()[:size]


def json_doc(rng, size):
    parts, n = [], 2
    while n < size:
        v = rng.choice([str(rng.randint(0, 100000)), f'"{ident(rng)}"', "true", "false",
                        f"{rng.random() * 100:.3f}"])
        p = f'  "{ident(rng)}": {v}'
        parts.append(p)
        n += len(p) + 2
    return ("{\n" + ",\n".join(parts) + "\n}\n").encode()


def log_text(rng, size, t0):
    out, n, t = [], 0, t0
    levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
    while n < size:
        t += rng.randint(1, 600)
        line = (f"2026-01-{1 + (t // 86400) % 28:02d}T{(t // 3600) % 24:02d}:{(t // 60) % 60:02d}:"
                f"{t % 60:02d} {rng.choice(levels)} {ident(rng)}: "
                f"{' '.join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))} "
                f"{rng.randint(0, 99999)}")
        out.append(line)
        n += len(line) + 1
    return ("\n".join(out) + "\n").encode()[:size]


def csv_text(rng, size):
    out, n, t = ["time,temp,humidity,pressure,battery"], 0, 1767225600
    while n < size:
        t += 600
        line = (f"{t},{20 + rng.random() * 5:.2f},{40 + rng.random() * 20:.1f},"
                f"{1000 + rng.random() * 30:.1f},{3.3 + rng.random() * 0.9:.3f}")
        out.append(line)
        n += len(line) + 1
    return ("\n".join(out) + "\n").encode()[:size]


def mpy_like(rng, size):
    # bytecode-ish: half random, half repeated opcode patterns (zstd ~1.3x)
    out = bytearray(b"M\x06\x00\x1f")
    while len(out) < size:
        if rng.random() < 0.5:
            out += rng.randbytes(rng.randint(8, 64))
        else:
            out += bytes([0x10 + rng.randint(0, 15), 0x22, 0x80, 0x34]) * rng.randint(2, 8)
    return bytes(out[:size])


class Writer:
    def __init__(self, root):
        self.root = root
        self.count = 0
        self.bytes = 0

    def write(self, rel, data):
        p = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        t = BASE_MTIME + self.count
        os.utime(p, (t, t))
        self.count += 1
        self.bytes += len(data)


def gen_board(root, seed):
    rng = random.Random(seed)
    w = Writer(root)
    w.write("boot.py", py_source(rng, 600))
    w.write("main.py", py_source(rng, 4000))
    for i in range(24):
        w.write(f"app/{ident(rng)}_{i}.py", py_source(rng, rng.randint(1500, 40000)))
    for p in range(14):
        pkg = f"lib/{rng.choice(WORDS)}{p}"
        w.write(f"{pkg}/__init__.py", py_source(rng, rng.randint(100, 800)))
        for i in range(rng.randint(8, 14)):
            w.write(f"{pkg}/{ident(rng)}_{i}.py", py_source(rng, rng.randint(100, 9000)))
        if rng.random() < 0.5:
            w.write(f"{pkg}/{ident(rng)}.mpy", mpy_like(rng, rng.randint(800, 6000)))
    for i in range(20):
        w.write(f"tests/test_{ident(rng)}_{i}.py", py_source(rng, rng.randint(300, 3000)))
    for i in range(36):
        w.write(f"config/{ident(rng)}_{i}.json", json_doc(rng, rng.randint(80, 2500)))
    w.write("state.json", json_doc(rng, 400))
    # unicode names
    for i, name in enumerate(["température.json", "données/capteur_été.csv", "日本語/設定.json",
                              "émoji_🌡️.txt", "Ünïcødé/ñame.py"]):
        data = csv_text(rng, 3000) if name.endswith(".csv") else json_doc(rng, 600)
        w.write(name, data)
    # web ui, certs
    for i in range(6):
        w.write(f"www/{ident(rng)}_{i}.{rng.choice(['html', 'js', 'css'])}",
                py_source(rng, rng.randint(500, 8000)))
    w.write("certs/device.pem", b"-----BEGIN CERTIFICATE-----\n" + rng.randbytes(900).hex().encode()
            + b"\n-----END CERTIFICATE-----\n")
    # a few 50-200 KB binaries (incompressible) and small icons
    w.write("assets/photo.jpg", rng.randbytes(rng.randint(50_000, 80_000)))
    w.write("assets/splash.jpg", rng.randbytes(rng.randint(150_000, 200_000)))
    w.write("models/kws.tflite", mpy_like(rng, 180_000))
    w.write("fonts/font8x8.bin", rng.randbytes(60_000))
    for i in range(8):
        w.write(f"assets/icons/icon_{i}.bin", rng.randbytes(rng.randint(200, 1200)))
    # logs
    w.write("logs/system.log", log_text(rng, 32_000, 0))
    w.write("logs/system.log.1", log_text(rng, 32_000, 50_000))
    w.write("logs/events.log", log_text(rng, 120_000, 90_000))
    w.write("logs/error.log", log_text(rng, 9_000, 10_000))
    w.write("data/sensors.csv", csv_text(rng, 120_000))
    # deep nesting
    w.write("a/b/c/d/e/deep.py", py_source(rng, 700))
    return w


def gen_mixed(root, seed):
    """~5,000 files, ~100 MB: 4,500 distinct files and 500 duplicates."""
    rng = random.Random(seed)
    w = Writer(root)
    dirs = []
    for top in range(12):
        t = f"{rng.choice(WORDS)}_{top}"
        for sub in range(rng.randint(4, 10)):
            d = f"{t}/{rng.choice(WORDS)}_{sub}"
            dirs.append(d)
            if rng.random() < 0.3:
                dirs.append(f"{d}/{rng.choice(WORDS)}")
    distinct = []
    # Sizes: mostly small text, some medium, a few large; ~45% of the bytes
    # incompressible (media, archives, firmware images).
    for i in range(4500):
        r = rng.random()
        d = rng.choice(dirs)
        if r < 0.55:
            size = int(rng.lognormvariate(8.3, 1.0))  # median ~4 KB
            data = py_source(rng, max(size, 60))
            name = f"{d}/{ident(rng)}_{i}.py"
        elif r < 0.70:
            data = json_doc(rng, int(rng.lognormvariate(7.5, 1.0)) + 40)
            name = f"{d}/{ident(rng)}_{i}.json"
        elif r < 0.80:
            data = log_text(rng, int(rng.lognormvariate(10.0, 1.0)), i * 100)
            name = f"{d}/{ident(rng)}_{i}.log"
        elif r < 0.84:
            data = csv_text(rng, int(rng.lognormvariate(10.0, 1.0)))
            name = f"{d}/{ident(rng)}_{i}.csv"
        elif r < 0.96:
            data = rng.randbytes(int(rng.lognormvariate(9.8, 1.2)))
            name = f"{d}/{ident(rng)}_{i}.{rng.choice(['jpg', 'png', 'gz', 'bin'])}"
        else:
            data = mpy_like(rng, int(rng.lognormvariate(10.0, 1.0)))
            name = f"{d}/{ident(rng)}_{i}.mpy"
        distinct.append((name, data))
    # A few large files so that multi-chunk files and streaming reads count.
    for i in range(3):
        distinct.append((f"large/{ident(rng)}_{i}.img", rng.randbytes(rng.randint(3_000_000, 6_000_000))))
    for i in range(4):
        distinct.append((f"large/{ident(rng)}_{i}.log", log_text(rng, rng.randint(1_500_000, 3_000_000), i)))
    for name, data in distinct:
        w.write(name, data)
    # 10% duplicates: copies of distinct files under other names.
    for i in range(500):
        name, data = rng.choice(distinct[:4500])
        w.write(f"{rng.choice(dirs)}/copy_{i}_{os.path.basename(name)}", data)
    return w


def all_files(root):
    out = []
    for dp, dn, fn in os.walk(root):
        dn.sort()
        for f in sorted(fn):
            out.append(os.path.join(dp, f))
    out.sort()
    return out


def mutate(root, seed):
    """Change 1% of the files in the middle, add 5, delete 5."""
    rng = random.Random(seed)
    files = all_files(root)
    n_change = max(1, len(files) // 100)
    picks = rng.sample(files, n_change + 5)
    changed, deleted = picks[:n_change], picks[n_change:]
    for p in changed:
        with open(p, "rb") as f:
            data = bytearray(f.read())
        mid = len(data) // 2
        # Insert a short line in the middle and overwrite a few bytes after it.
        ins = f"\n# edited {rng.randint(0, 10**9)}\n".encode()
        data[mid:mid] = ins
        for k in range(min(16, len(data) - mid - len(ins))):
            data[mid + len(ins) + k] = rng.randint(0, 255)
        st = os.stat(p)
        with open(p, "wb") as f:
            f.write(data)
        os.utime(p, (st.st_mtime + DAY, st.st_mtime + DAY))
    for p in deleted:
        os.remove(p)
    t = BASE_MTIME + DAY
    for i in range(5):
        # Named by the seed, so that daily mutations (benches/year_of_board.sh)
        # keep the number of files steady instead of rewriting the same five.
        p = os.path.join(root, "added", f"new_{seed}_{i}.{rng.choice(['py', 'bin'])}")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        data = py_source(rng, rng.randint(2000, 30000)) if p.endswith(".py") else rng.randbytes(
            rng.randint(10_000, 300_000))
        with open(p, "wb") as f:
            f.write(data)
        os.utime(p, (t, t))
    return len(changed), 5, len(deleted)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["board", "mixed", "mutate"])
    ap.add_argument("dir")
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    if a.kind == "mutate":
        c, n_add, n_del = mutate(a.dir, 7 if a.seed is None else a.seed)
        print(f"mutated {a.dir}: {c} files changed, {n_add} added, {n_del} deleted")
        return
    if os.path.exists(a.dir):
        sys.exit(f"{a.dir} exists; give a new directory")
    if a.kind == "board":
        w = gen_board(a.dir, 1 if a.seed is None else a.seed)
    else:
        w = gen_mixed(a.dir, 2 if a.seed is None else a.seed)
    print(f"{a.kind}: {w.count} files, {w.bytes} bytes in {a.dir}")


if __name__ == "__main__":
    main()
