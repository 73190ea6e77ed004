#!/usr/bin/env bash
# A year of daily board backups: the ~2 MB board dataset, mutated by the
# dataset generator (1% of the files changed, 5 added, 5 deleted) and
# backed up 365 times; then gc --grace 0 twice (every snapshot kept), then
# forget --keep-last 30 and gc again. Prints the
# repository's allocated size (du -s -B1) and file count against one zstd-3
# copy of the first tree plus every day's changed and added files (zstd-3
# each), and the same for restic and borg (zstd,3) when installed, given
# the same 365 snapshots. Usage:
#   bash benches/year_of_board.sh [path/to/belay] [DAYS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BELAY=$(realpath "${1:-$ROOT/target/release/belay}")
DAYS=${2:-365}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export BELAY_CACHE_DIR=$WORK/cache RESTIC_PASSWORD=belay-bench BORG_BASE_DIR=$WORK/borgbase
export RESTIC_CACHE_DIR=$WORK/restic-cache BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
python3 "$ROOT/benches/datasets.py" board "$WORK/src" >/dev/null
tar -C "$WORK/src" -cf - . | zstd -3 -q | wc -c >"$WORK/first"
R=$WORK/belay
$BELAY -r "$R" init -q
have_restic=$(command -v restic || true)
have_borg=$(command -v borg || true)
[ -n "$have_restic" ] && restic -q -r "$WORK/restic" init >/dev/null
[ -n "$have_borg" ] && borg init --encryption none "$WORK/borg"
start=$(date +%s)
for day in $(seq 1 "$DAYS"); do
    if [ "$day" -gt 1 ]; then
        python3 "$ROOT/benches/datasets.py" mutate "$WORK/src" --seed "$day" >/dev/null
        # The day's churn: changed and added files, zstd -3 each.
        python3 - "$WORK/src" "$WORK/state" >>"$WORK/churn" <<'PY'
import json, os, subprocess, sys
root, state = sys.argv[1], sys.argv[2]
now = {}
for dp, _, fs in os.walk(root):
    for f in fs:
        p = os.path.join(dp, f)
        st = os.stat(p)
        now[p] = [st.st_size, st.st_mtime_ns]
before = json.load(open(state)) if os.path.exists(state) else {}
total = 0
for p, v in now.items():
    if before.get(p) != v:
        total += len(subprocess.run(["zstd", "-3", "-c", "-q", p], capture_output=True).stdout)
json.dump(now, open(state, "w"))
print(total)
PY
    else
        python3 -c "import json,os,sys; r=sys.argv[1]; json.dump({os.path.join(d,f):[os.stat(os.path.join(d,f)).st_size, os.stat(os.path.join(d,f)).st_mtime_ns] for d,_,fs in os.walk(r) for f in fs}, open(sys.argv[2],'w'))" "$WORK/src" "$WORK/state"
    fi
    $BELAY -r "$R" backup "$WORK/src" --name board -q
    [ -n "$have_restic" ] && restic -q -r "$WORK/restic" backup "$WORK/src" >/dev/null
    [ -n "$have_borg" ] && borg create --compression zstd,3 "$WORK/borg::d$day" "$WORK/src"
done
end=$(date +%s)
size() { du -s -B1 "$1" | cut -f1; }
files() { find "$1" -type f | wc -l; }
before=$(size "$R"); before_files=$(files "$R")
$BELAY -r "$R" gc --grace 0 -q
$BELAY -r "$R" gc --grace 0 -q
$BELAY -r "$R" check -q
kept=$(size "$R"); kept_files=$(files "$R")
$BELAY -r "$R" forget --keep-last 30 -q >/dev/null
$BELAY -r "$R" gc --grace 0 -q
$BELAY -r "$R" gc --grace 0 -q
$BELAY -r "$R" check -q
first=$(cat "$WORK/first")
churn=$(awk '{s+=$1} END {print s+0}' "$WORK/churn" 2>/dev/null || echo 0)
one=$((first + churn))
ratio() { echo "scale=2; $1 / $one" | bc; }
echo "days: $DAYS (belay + peers: $((end - start)) s)"
echo "reference: one zstd-3 copy of the first tree ($first bytes) + every day's changed and added files, zstd-3 each ($churn bytes) = $one bytes"
echo "belay, $DAYS snapshots, before gc: $before bytes allocated in $before_files files ($(ratio "$before")x one copy)"
echo "belay, $DAYS snapshots, after gc: $kept bytes allocated in $kept_files files ($(ratio "$kept")x one copy)"
after=$(size "$R")
echo "belay after forget --keep-last 30 + gc: $after bytes allocated in $(files "$R") files ($(ratio "$after")x one copy)"
if [ -n "$have_restic" ]; then
    s=$(size "$WORK/restic"); echo "restic, $DAYS snapshots: $s bytes in $(files "$WORK/restic") files ($(ratio "$s")x)"
fi
if [ -n "$have_borg" ]; then
    s=$(size "$WORK/borg"); echo "borg zstd,3, $DAYS snapshots: $s bytes in $(files "$WORK/borg") files ($(ratio "$s")x)"
fi
