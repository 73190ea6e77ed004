#!/usr/bin/env bash
# belay diff vs restic diff on the same data: two snapshots of a
# 5,000-file tree in which one file changed.
#
#   benches/history_diff.sh [path/to/belay]      (default: target/release/belay)
#
# Prints, for each tool: median wall time of 7 runs (page cache warm, after
# one unmeasured run), the files each opened in its repository or cache
# (strace), and for belay the tree objects read (`belay -v diff`).
# Needs restic (Debian: apt-get install restic) and strace.
set -euo pipefail

BELAY=${1:-target/release/belay}
BELAY=$(realpath "$BELAY")
W=$(mktemp -d /tmp/belay-histbench.XXXXXX)
trap 'rm -rf "$W"' EXIT
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$W/restic-cache"
export BELAY_CACHE_DIR="$W/belay-cache"

# 20 dirs x 10 subdirs x 25 files of 200 B - 4 KiB of text (deterministic).
python3 - "$W/data" <<'PY'
import os, random, sys
root = sys.argv[1]
r = random.Random(5000)
words = "import machine time print def return self value sensor config while if else for in".split()
for d in range(20):
    for s in range(10):
        p = os.path.join(root, f"d{d:02}", f"s{s}")
        os.makedirs(p, exist_ok=True)
        for f in range(25):
            n = r.randint(200, 4096)
            text = []
            size = 0
            while size < n:
                line = " ".join(r.choice(words) for _ in range(r.randint(3, 10))) + "\n"
                text.append(line)
                size += len(line)
            with open(os.path.join(p, f"f{f:02}.py"), "w") as fh:
                fh.write("".join(text))
PY
CHANGED="$W/data/d07/s3/f12.py"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms() { # run "$@" 7 times after one warm-up, print the median in ms
  "$@" >/dev/null 2>&1
  for _ in 1 2 3 4 5 6 7; do
    local t0 t1
    t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 ))
  done | median | awk '{printf "%.1f", $1/1000}'
}
opens() { # files opened under $1 while running the rest
  local dir=$1; shift
  strace -f -qq -e trace=openat -o "$W/trace" "$@" >/dev/null 2>&1
  grep -c "\"$dir" "$W/trace" || true
}

# belay
B="$W/belay-repo"
"$BELAY" -q -r "$B" init
"$BELAY" -q -r "$B" backup "$W/data" --name data
echo "one more line" >> "$CHANGED"
"$BELAY" -q -r "$B" backup "$W/data" --name data
belay_out=$("$BELAY" -r "$B" diff data~1 data)
belay_trees=$("$BELAY" -v -r "$B" diff data~1 data --name-only 2>&1 >/dev/null | awk '/compared/ {print $2}')
belay_ms=$(ms "$BELAY" -r "$B" diff data~1 data)
belay_opens=$(opens "$B/objects" "$BELAY" -r "$B" diff data~1 data)
belay_objects=$(find "$B/objects" -type f | wc -l)
# The snapshot against the folder itself (walk + stat, no file read).
belay_live_ms=$(ms "$BELAY" -r "$B" diff data "dir:$W/data")

# restic, same data, same change
python3 - "$CHANGED" <<'PY'
import sys
p = sys.argv[1]
lines = open(p).read().splitlines(keepends=True)
open(p, "w").write("".join(lines[:-1]))
PY
R="$W/restic-repo"
restic -q -r "$R" init >/dev/null
restic -q -r "$R" backup "$W/data" >/dev/null
echo "one more line" >> "$CHANGED"
restic -q -r "$R" backup "$W/data" >/dev/null
ids=$(restic -r "$R" snapshots --json | python3 -c 'import json,sys; print(" ".join(s["short_id"] for s in sorted(json.load(sys.stdin), key=lambda s: s["time"])))')
set -- $ids
restic_out=$(restic -r "$R" diff "$1" "$2")
restic_ms=$(ms restic -r "$R" diff "$1" "$2")
restic_opens=$(opens "$W/restic" restic -r "$R" diff "$1" "$2")
restic_version=$(restic version | awk '{print $2}')
# Fixed cost of each tool's start (open the repo, read one small thing).
belay_base_ms=$(ms "$BELAY" -r "$B" show data)
restic_base_ms=$(ms restic -r "$R" cat config)

echo "belay diff output:";  echo "$belay_out" | sed 's/^/    /'
echo "restic diff output:"; echo "$restic_out" | sed 's/^/    /'
echo
echo "| tool | median time | tree objects read | files opened in repo/cache |"
echo "|---|---:|---:|---:|"
echo "| belay diff (repo: $belay_objects objects) | ${belay_ms} ms | $belay_trees | $belay_opens |"
echo "| restic $restic_version diff | ${restic_ms} ms | not reported | $restic_opens |"
echo "| belay diff data dir:FOLDER (live, 5,000 files stat'ed, none read) | ${belay_live_ms} ms | all ($(( 20 * 10 + 20 + 1 ))) | - |"
echo
echo "start-up alone: belay show ${belay_base_ms} ms, restic cat config ${restic_base_ms} ms"
