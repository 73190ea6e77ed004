#!/usr/bin/env python3
"""belay on object storage vs on a local folder, on the same data in one run.

    python3 benches/s3.py --belay target/release/belay [--dataset mixed|board] [--reps N]

For each target (a local folder, and an S3 bucket served on loopback by
`rclone serve s3`, the tests' S3 server: `bash tests/setup.sh` installs it),
it times: init, the initial backup, a backup with nothing changed, a backup
after `datasets.py mutate` (1% of the files), and a restore; and for the S3
target it counts the requests each command sent (GET, PUT, HEAD, LIST,
DELETE, from `belay -v`) and the bytes each way. With restic installed,
restic's backup to the same server is timed beside it. Medians of --reps
runs; each repetition starts from an empty repository. Loopback has no
latency: these figures count requests and CPU, not a WAN's round trips.
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RCLONE = os.environ.get("RCLONE", os.path.join(ROOT, "tests", "board", ".venv", "bin", "rclone"))
KEY, SECRET = "belaybench", "belaybenchsecret"
ENV = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
           AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
           RESTIC_PASSWORD="bench")
REQ = re.compile(r"requests: (\d+) GET, (\d+) PUT, (\d+) HEAD, (\d+) LIST, (\d+) DELETE; "
                 r"([\d.]+) MiB sent, ([\d.]+) MiB received")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, work):
        self.data = os.path.join(work, "s3-data")
        os.makedirs(os.path.join(self.data, "bench"), exist_ok=True)
        self.port = free_port()
        self.proc = subprocess.Popen(
            [RCLONE, "serve", "s3", "--addr", f"127.0.0.1:{self.port}",
             "--auth-key", f"{KEY},{SECRET}", "--vfs-cache-mode", "off",
             "--dir-cache-time", "100ms", "--poll-interval", "0", "--no-cleanup",
             "--config", "/dev/null", self.data],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("rclone serve s3 did not start")

    def url(self, prefix):
        return f"s3:http://127.0.0.1:{self.port}/bench/{prefix}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def run(cmd, check=True):
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    dt = time.monotonic() - t0
    if check and p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    m = REQ.search(p.stderr)
    req = None
    if m:
        g = m.groups()
        req = dict(get=int(g[0]), put=int(g[1]), head=int(g[2]), list=int(g[3]),
                   delete=int(g[4]), sent_mib=float(g[5]), received_mib=float(g[6]))
    return dt, req


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--belay", default=os.path.join(ROOT, "target", "release", "belay"))
    ap.add_argument("--dataset", choices=["mixed", "board"], default="mixed")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work", default=None)
    a = ap.parse_args()
    if not os.path.exists(RCLONE):
        raise SystemExit(f"{RCLONE} missing: run `bash tests/setup.sh` (or set RCLONE)")
    work = a.work or tempfile.mkdtemp(prefix="belay-s3-bench-")
    data = os.path.join(work, "data")
    if not os.path.exists(data):
        subprocess.run([sys.executable, os.path.join(HERE, "datasets.py"), a.dataset, data], check=True)
    server = Server(work)
    restic = shutil.which("restic")
    steps = ["init", "initial", "unchanged", "mutated", "restore"]
    results = {}  # (target, step) -> [(seconds, requests)]
    try:
        for rep in range(a.reps):
            mutated = os.path.join(work, f"mutated-{rep}")
            if os.path.exists(mutated):
                shutil.rmtree(mutated)
            shutil.copytree(data, mutated, symlinks=True)
            subprocess.run([sys.executable, os.path.join(HERE, "datasets.py"), "mutate", mutated], check=True,
                           stdout=subprocess.DEVNULL)
            for target in ["folder", "s3"]:
                repo = os.path.join(work, f"repo-{rep}") if target == "folder" else server.url(f"repo-{rep}")
                cache = os.path.join(work, f"cache-{target}-{rep}")
                b = [a.belay, "-v", "-r", repo]
                ENV["BELAY_CACHE_DIR"] = cache
                out = os.path.join(work, f"restored-{target}-{rep}")
                for step, cmd in [
                    ("init", b + ["init"]),
                    ("initial", b + ["backup", data, "--name", "data"]),
                    ("unchanged", b + ["backup", data, "--name", "data"]),
                    ("mutated", b + ["backup", mutated, "--name", "data"]),
                    ("restore", b + ["restore", "data", "--to", out]),
                ]:
                    results.setdefault((target, step), []).append(run(cmd))
                shutil.rmtree(out, ignore_errors=True)
            if restic:
                r = ["restic", "-q", "-r", server.url(f"restic-{rep}").replace("s3:", "s3:", 1)]
                results.setdefault(("restic-s3", "init"), []).append(run(r + ["init"]))
                results.setdefault(("restic-s3", "initial"), []).append(run(r + ["backup", data]))
                results.setdefault(("restic-s3", "unchanged"), []).append(run(r + ["backup", data]))
    finally:
        server.stop()

    def du(path):
        return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True).stdout.split()[0])

    print(f"# belay on S3 (rclone serve s3 on loopback) vs a local folder, dataset {a.dataset}, "
          f"median of {a.reps}, {time.strftime('%Y-%m-%d')}")
    print(f"# data {du(data) / 2**20:.1f} MiB; S3 bucket after the runs {du(server.data) / 2**20:.1f} MiB")
    print("| step | folder s | S3 s | S3/folder | GET | PUT | HEAD | LIST | DELETE | MiB sent | MiB received |" +
          (" restic S3 s |" if restic else ""))
    print("|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if restic else ""))
    for step in steps:
        f = statistics.median(t for t, _ in results[("folder", step)])
        s = statistics.median(t for t, _ in results[("s3", step)])
        reqs = [r for _, r in results[("s3", step)] if r]
        med = {k: statistics.median(r[k] for r in reqs) for k in reqs[0]} if reqs else {}
        row = (f"| {step} | {f:.2f} | {s:.2f} | {s / f if f else 0:.2f}× | "
               + " | ".join(f"{med.get(k, 0):g}" for k in
                            ["get", "put", "head", "list", "delete", "sent_mib", "received_mib"]) + " |")
        if restic:
            rr = results.get(("restic-s3", step))
            row += f" {statistics.median(t for t, _ in rr):.2f} |" if rr else " – |"
        print(row)
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
