#!/usr/bin/env bash
# gc, check and stats at scale: N small files (default 100,000) in 50
# directories, backed up twice with half the files changed, the first
# snapshot forgotten; then gc (mark + condemn), gc --grace 0 (delete), gc
# with nothing to do, check, check --read-data, stats, each under
# /usr/bin/time (wall time, peak RSS). Usage:
#   bash benches/gc_scale.sh [path/to/belay] [N]
set -euo pipefail
BELAY=${1:-target/release/belay}
N=${2:-100000}
BELAY=$(realpath "$BELAY")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export BELAY_CACHE_DIR=$WORK/cache
python3 - "$WORK/src" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
per = n // 50
for d in range(50):
    p = f"{root}/d{d:02}"
    os.makedirs(p, exist_ok=True)
    for f in range(per):
        with open(f"{p}/f{f:05}.txt", "w") as fh:
            fh.write(f"file {d} {f} " + "x" * (40 + (d * f) % 50) + "\n")
PY
R=$WORK/repo
t() { local label=$1; shift; /usr/bin/time -f "$label: %e s, peak RSS %M KB" "$@" >/dev/null; }
$BELAY -r "$R" init -q
t "backup 1" $BELAY -r "$R" backup "$WORK/src" --name big -q
python3 - "$WORK/src" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(0, 50, 2):
    p = f"{root}/d{d:02}"
    for f in sorted(os.listdir(p)):
        with open(f"{p}/{f}", "w") as fh:
            fh.write(f"changed {d} {f} " + "y" * 40 + "\n")
        os.utime(f"{p}/{f}", (2000000000, 2000000000))
PY
t "backup 2" $BELAY -r "$R" backup "$WORK/src" --name big -q
echo "objects: $(find "$R/objects" -type f | wc -l)"
$BELAY -r "$R" forget --keep-last 1 -q
t "gc (mark + condemn)" $BELAY -r "$R" gc -q
t "gc --grace 0 (delete)" $BELAY -r "$R" gc --grace 0 -q
t "gc (nothing to do)" $BELAY -r "$R" gc -q
echo "objects: $(find "$R/objects" -type f | wc -l)"
t "check" $BELAY -r "$R" check -q
t "check --read-data" $BELAY -r "$R" check --read-data -q
t "stats" $BELAY -r "$R" stats
