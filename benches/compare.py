#!/usr/bin/env python3
"""belay against restic, borg (and rustic, if installed) on the same data, in one run.

Run through `benches/compare` (which installs the tools and builds belay);
see benches/README.md. Per repetition, on a fresh copy of the dataset and
with fresh repositories and caches for every tool:

  initial    first backup into an empty repository
  unchanged  the same tree again
  mutated    after `datasets.py mutate` (1% of files changed in the middle,
             5 added, 5 deleted), applied once and shared by every tool
  restore    the latest snapshot into an empty folder

Wall time (medians over the repetitions), peak RSS (`/usr/bin/time`) and
the repository's allocated size (`du -s -B1`) after the initial backup and
after all three. The tool order rotates per repetition; before each timed
step the page cache is flushed to disk (`sync`) and the source is in the
page cache (read once after it is copied or mutated).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PASSWORD = "belay-bench"
STEPS = ["initial", "unchanged", "mutated", "restore"]


def run(cmd, env=None, cwd=None, check=True):
    r = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr.decode(errors='replace')}")
    return r


def timed(cmd, env, cwd):
    """Wall seconds and peak RSS (KiB) of one command."""
    subprocess.run(["sync"])
    out = os.path.join(cwd, ".time-out")
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-v", "-o", out] + cmd, env=env, cwd=cwd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"timed command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr.decode(errors='replace')}")
    rss, cpu = 0, 0.0
    with open(out) as f:
        for line in f:
            if "Maximum resident set size" in line:
                rss = int(line.split(":")[1])
            if "User time (seconds)" in line or "System time (seconds)" in line:
                cpu += float(line.split(":")[1])
    os.remove(out)
    return wall, rss, cpu


def du(path):
    return int(run(["du", "-s", "-B1", path]).stdout.split()[0])


def warm(path):
    for dp, _, fn in os.walk(path):
        for f in fn:
            try:
                with open(os.path.join(dp, f), "rb") as fh:
                    while fh.read(1 << 20):
                        pass
            except OSError:
                pass


class Tool:
    """One tool: how to init, back up and restore, with its private caches."""

    def __init__(self, name, work, belay_bin=None):
        self.name = name
        self.work = work
        self.belay = belay_bin
        self.env = dict(os.environ)
        self.set_rep(0)

    def set_rep(self, rep):
        """Every repetition gets new directories: nothing is deleted during a
        run (on ext4 without a journal, creating inodes right after deleting
        many is slow, which would charge one tool for another's clean-up)."""
        self.repo = os.path.join(self.work, f"rep{rep}", f"repo-{self.name}")
        self.cache = os.path.join(self.work, f"rep{rep}", f"cache-{self.name}")
        self._env()

    def _env(self):
        name = self.name
        self.n = 0
        if name == "restic":
            self.env.update(RESTIC_PASSWORD=PASSWORD, RESTIC_REPOSITORY=self.repo)
        if name == "borg":
            self.env.update(BORG_BASE_DIR=self.cache, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
                            BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")
        if name in ("belay", "belay-nocache"):
            self.env.update(BELAY_CACHE_DIR=self.cache)
            self.env.pop("BELAY_REPO", None)
        if name == "belay-nocache":
            self.env.update(BELAY_NO_CACHE="1")
        if name == "rustic":
            self.env.update(RUSTIC_PASSWORD=PASSWORD, RUSTIC_REPOSITORY=self.repo)

    def reset(self):
        os.makedirs(self.cache, exist_ok=True)
        self.n = 0
        if self.name == "restic":
            run(["restic", "init", "-q", "--cache-dir", self.cache], env=self.env)
        elif self.name == "borg":
            run(["borg", "init", "--encryption", "none", self.repo], env=self.env)
        elif self.name in ("belay", "belay-nocache"):
            run([self.belay, "-r", self.repo, "-q", "init"], env=self.env)
        elif self.name == "rustic":
            run(["rustic", "init", "--cache-dir", self.cache], env=self.env)
        elif self.name == "tar+zstd":
            os.makedirs(self.repo)

    def backup_cmd(self):
        """The source is `data` relative to the work directory."""
        self.n += 1
        if self.name == "restic":
            return ["restic", "backup", "-q", "--cache-dir", self.cache, "data"]
        if self.name == "borg":
            return ["borg", "create", "--compression", "zstd,3", f"{self.repo}::s{self.n}", "data"]
        if self.name in ("belay", "belay-nocache"):
            return [self.belay, "-r", self.repo, "-q", "backup", "data", "--name", "bench"]
        if self.name == "rustic":
            return ["rustic", "backup", "--cache-dir", self.cache, "data"]
        if self.name == "tar+zstd":
            return ["sh", "-c", f"tar cf - data | zstd -q -3 -T2 -o {self.repo}/s{self.n}.tar.zst"]
        raise ValueError(self.name)

    def restore_cmd(self, target):
        if self.name == "restic":
            return ["restic", "restore", "-q", "--cache-dir", self.cache, "latest", "--target", target]
        if self.name == "borg":
            return ["sh", "-c", f'cd "{target}" && borg extract "{self.repo}::s{self.n}"']
        if self.name in ("belay", "belay-nocache"):
            return [self.belay, "-r", self.repo, "-q", "restore", "bench", "--to", target]
        if self.name == "rustic":
            return ["rustic", "restore", "--cache-dir", self.cache, "latest", target]
        if self.name == "tar+zstd":
            return ["sh", "-c", f'zstd -q -dc {self.repo}/s{self.n}.tar.zst | tar xf - -C "{target}"']
        raise ValueError(self.name)

    def restored_root(self, target, data):
        """Where the restored copy of `data` ends up below `target`."""
        if self.name in ("belay", "belay-nocache"):
            return target
        return os.path.join(target, "data")

    def version(self):
        try:
            if self.name in ("belay", "belay-nocache"):
                rev = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=False).stdout.decode().strip()
                return f"belay {rev}"
            if self.name == "tar+zstd":
                return run(["zstd", "--version"]).stdout.decode().strip()
            return run([self.name, "version" if self.name == "restic" else "--version"]).stdout.decode().strip()
        except Exception as e:  # noqa: BLE001
            return f"{self.name} ({e})"


def same_tree(a, b):
    r = subprocess.run(["diff", "-r", "-q", a, b], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return r.returncode == 0, r.stdout.decode(errors="replace")[:2000]


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {cpu}, {mem:.0f} GiB RAM, Linux {platform.release()}"


def fstype(path):
    r = run(["stat", "-f", "-c", "%T", path], check=False)
    return r.stdout.decode().strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["mixed", "board"], default="mixed")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--work", default=os.environ.get("BENCH_WORK", "/tmp/belay-bench"))
    ap.add_argument("--tools", default="belay,restic,borg,rustic,tar+zstd,belay-nocache",
                    help="comma-separated; rustic is skipped when not installed; belay-nocache is belay "
                         "with BELAY_NO_CACHE=1 (what the local cache saves)")
    ap.add_argument("--belay", default=os.path.join(ROOT, "target", "release", "belay"))
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--no-write", action="store_true", help="print only, write nothing to --out")
    ap.add_argument("--loop-ext4", type=int, metavar="GIB", default=0,
                    help="run in a fresh journaled ext4 filesystem of this size (a loop mount, needs root), "
                         "isolated from other processes creating and deleting files")
    a = ap.parse_args()

    names = [t for t in a.tools.split(",") if t]
    names = [t for t in names if t in ("belay", "belay-nocache", "tar+zstd") or shutil.which(t)]
    if "rustic" in a.tools and not shutil.which("rustic"):
        print("rustic is not installed: skipped (cargo install rustic-rs --locked to include it)")
    work = os.path.abspath(a.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    image = None
    if a.loop_ext4:
        image = work.rstrip("/") + ".ext4.img"
        run(["truncate", "-s", f"{a.loop_ext4}G", image])
        run(["mkfs.ext4", "-q", "-F", image])
        run(["mount", "-o", "loop", image, work])
    try:
        _bench(a, names, work)
    finally:
        if image:
            subprocess.run(["umount", work])
            os.remove(image)
        shutil.rmtree(work, ignore_errors=True)


def _bench(a, names, work):
    base = os.path.join(work, "base")
    gen = run([sys.executable, os.path.join(HERE, "datasets.py"), a.dataset, base]).stdout.decode().strip()
    print(gen)
    tools = [Tool(n, work, a.belay) for n in names]
    res = {t.name: {s: [] for s in STEPS} | {s + "_cpu": [] for s in STEPS}
           | {"rss_backup": [], "rss_restore": [], "size_initial": [], "size_final": []} for t in tools}
    load_before = loadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    verified = {}
    for rep in range(a.reps):
        order = tools[rep % len(tools):] + tools[:rep % len(tools)]
        data = os.path.join(work, f"rep{rep}", "data")
        os.makedirs(os.path.dirname(data))
        run(["cp", "-a", base, data])
        warm(data)
        for t in order:
            t.set_rep(rep)
            t.reset()
        for step in ("initial", "unchanged"):
            for t in order:
                if t.name == "tar+zstd" and step != "initial":
                    continue
                w, rss, cpu = timed(t.backup_cmd(), t.env, os.path.dirname(data))
                res[t.name][step].append(w)
                res[t.name][step + "_cpu"].append(cpu)
                res[t.name]["rss_backup"].append(rss)
                if step == "initial":
                    res[t.name]["size_initial"].append(du(t.repo))
        run([sys.executable, os.path.join(HERE, "datasets.py"), "mutate", data])
        warm(data)
        for t in order:
            w, rss, cpu = timed(t.backup_cmd(), t.env, os.path.dirname(data))
            res[t.name]["mutated"].append(w)
            res[t.name]["mutated_cpu"].append(cpu)
            res[t.name]["rss_backup"].append(rss)
            res[t.name]["size_final"].append(du(t.repo))
        for t in order:
            target = os.path.join(work, f"rep{rep}", f"restore-{t.name}")
            os.makedirs(target)
            w, rss, cpu = timed(t.restore_cmd(target), t.env, os.path.dirname(data))
            res[t.name]["restore"].append(w)
            res[t.name]["restore_cpu"].append(cpu)
            res[t.name]["rss_restore"].append(rss)
            if rep == 0:
                ok, diff = same_tree(data, t.restored_root(target, data))
                verified[t.name] = ok
                if not ok:
                    print(f"WARNING: {t.name} restore differs from the source:\n{diff}")
        print(f"rep {rep + 1}/{a.reps} done (load {loadavg()})", flush=True)
    load_after = loadavg()

    def med(name, key):
        v = res[name][key]
        return statistics.median(v) if v else None

    lines = []
    p = lines.append
    p(f"## {a.dataset} tree, {started:%Y-%m-%d %H:%M} UTC")
    p("")
    p(f"- data: {gen}")
    journal = "journaled ext4 loop mount (--loop-ext4)" if a.loop_ext4 else f"{fstype(work)} (root filesystem)"
    p(f"- machine: {machine()}; work dir: {journal}")
    p(f"- {a.reps} repetitions, medians; load average before {load_before}, after {load_after}")
    p("- versions: " + "; ".join(t.version() for t in tools))
    p("")
    p("| tool | initial s | unchanged s | mutated s | restore s | repo MiB (initial) | repo MiB (after 3) "
      "| peak RSS backup MiB | peak RSS restore MiB | restore verified |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")

    def f(x, d=2):
        return "–" if x is None else f"{x:.{d}f}"

    for t in tools:
        n = t.name
        rb = max(res[n]["rss_backup"]) / 1024 if res[n]["rss_backup"] else None
        rr = max(res[n]["rss_restore"]) / 1024 if res[n]["rss_restore"] else None
        p(f"| {n} | {f(med(n, 'initial'))} | {f(med(n, 'unchanged'))} | {f(med(n, 'mutated'))} "
          f"| {f(med(n, 'restore'))} | {f(med(n, 'size_initial') / 2**20, 1)} | {f(med(n, 'size_final') / 2**20, 1)} "
          f"| {f(rb, 0)} | {f(rr, 0)} | {'yes' if verified.get(n) else 'NO'} |")
    p("")
    p("CPU seconds (user + system, medians):")
    p("")
    p("| tool | " + " | ".join(STEPS) + " |")
    p("|---|" + "---:|" * len(STEPS))
    for t in tools:
        p(f"| {t.name} | " + " | ".join(f(med(t.name, s + '_cpu')) for s in STEPS) + " |")
    if "restic" in res and "belay" in res:
        p("")
        p("Ratios (belay / restic unless noted; target in brackets):")
        p("")
        p("| measure | belay | restic | ratio | target | met |")
        p("|---|---:|---:|---:|---:|---|")
        targets = [("initial", 0.35), ("unchanged", 0.30), ("mutated", 0.30), ("restore", 0.45)]
        summary = {}
        for step, tgt in targets:
            b, r = med("belay", step), med("restic", step)
            ratio = b / r
            summary[step] = ratio
            p(f"| {step} (s) | {b:.3f} | {r:.3f} | {ratio:.3f} | ≤ {tgt} | {'yes' if ratio <= tgt else 'no'} |")
        for step, tgt in targets:
            b, r = med("belay", step + "_cpu"), med("restic", step + "_cpu")
            if b is not None and r:
                summary[step + "_cpu"] = b / r
                p(f"| {step} (CPU s, for reference) | {b:.3f} | {r:.3f} | {b / r:.3f} | ({tgt}) | – |")
        peers = [med(x, "size_final") for x in ("restic", "borg") if x in res]
        b = med("belay", "size_final")
        ratio = b / min(peers)
        summary["size"] = ratio
        p(f"| repo size after 3 backups (MiB) vs min(restic, borg) | {b / 2**20:.1f} | {min(peers) / 2**20:.1f} "
          f"| {ratio:.3f} | ≤ 0.95 | {'yes' if ratio <= 0.95 else 'no'} |")
        bi = med("belay", "size_initial")
        pi = min(med(x, "size_initial") for x in ("restic", "borg") if x in res)
        p(f"| repo size after initial (MiB) vs min(restic, borg) | {bi / 2**20:.1f} | {pi / 2**20:.1f} "
          f"| {bi / pi:.3f} | ≤ 0.95 | {'yes' if bi / pi <= 0.95 else 'no'} |")
        brss = max(max(res["belay"]["rss_backup"]), max(res["belay"]["rss_restore"]))
        rrss = max(max(res["restic"]["rss_backup"]), max(res["restic"]["rss_restore"]))
        p(f"| peak RSS (MiB) | {brss / 1024:.0f} | {rrss / 1024:.0f} | {brss / rrss:.3f} | ≤ 1 "
          f"| {'yes' if brss <= rrss else 'no'} |")
        summary["rss"] = brss / rrss
        res["_ratios"] = summary
    p("")
    p("Every repetition (seconds): " + "; ".join(
        f"{t.name} " + ", ".join(f"{s} " + "/".join(f"{x:.2f}" for x in res[t.name][s]) for s in STEPS
                                 if res[t.name][s]) for t in tools))
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if not a.no_write:
        os.makedirs(a.out, exist_ok=True)
        stem = os.path.join(a.out, f"{started:%Y%m%d-%H%M}-{a.dataset}" + ("-loop" if a.loop_ext4 else ""))
        with open(stem + ".md", "w") as fh:
            fh.write(text)
        with open(stem + ".json", "w") as fh:
            json.dump({"started": started.isoformat(), "dataset": a.dataset, "reps": a.reps,
                       "load_before": load_before, "load_after": load_after, "machine": machine(),
                       "results": res}, fh, indent=1)
        print(f"written: {stem}.md, {stem}.json")


if __name__ == "__main__":
    main()
