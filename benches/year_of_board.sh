#!/usr/bin/env bash
# A year of daily board backups: the ~2 MB board dataset, mutated by the
# dataset generator (1% of the files changed, 5 added, 5 deleted) and
# backed up 365 times; then gc --grace 0 twice (every snapshot kept), then
# forget (keep-daily 30, keep-monthly 12) and gc again. Prints the
# repository's allocated size (du -s -B1) and file count against one
# zstd-3 compressed copy of the final tree, and the same for restic and
# borg (zstd,3) when installed, given the same 365 snapshots. Usage:
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
R=$WORK/belay
$BELAY -r "$R" init -q
have_restic=$(command -v restic || true)
have_borg=$(command -v borg || true)
[ -n "$have_restic" ] && restic -q -r "$WORK/restic" init >/dev/null
[ -n "$have_borg" ] && borg init -q --encryption none "$WORK/borg"
start=$(date +%s)
for day in $(seq 1 "$DAYS"); do
    [ "$day" -gt 1 ] && python3 "$ROOT/benches/datasets.py" mutate "$WORK/src" --seed "$day" >/dev/null
    $BELAY -r "$R" backup "$WORK/src" --name board -q
    [ -n "$have_restic" ] && restic -q -r "$WORK/restic" backup "$WORK/src" >/dev/null
    [ -n "$have_borg" ] && borg create -q --compression zstd,3 "$WORK/borg::d$day" "$WORK/src"
done
end=$(date +%s)
size() { du -s -B1 "$1" | cut -f1; }
files() { find "$1" -type f | wc -l; }
before=$(size "$R"); before_files=$(files "$R")
$BELAY -r "$R" gc --grace 0 -q
$BELAY -r "$R" gc --grace 0 -q
$BELAY -r "$R" check -q
kept=$(size "$R"); kept_files=$(files "$R")
$BELAY -r "$R" forget --keep-daily 30 --keep-monthly 12 -q >/dev/null
$BELAY -r "$R" gc --grace 0 -q
$BELAY -r "$R" gc --grace 0 -q
$BELAY -r "$R" check -q
one=$(tar -C "$WORK/src" -cf - . | zstd -3 -q | wc -c)
ratio() { echo "scale=2; $1 / $one" | bc; }
echo "days: $DAYS (belay + peers: $((end - start)) s)"
echo "one zstd-3 copy of the final tree: $one bytes"
echo "belay, $DAYS snapshots, before gc: $before bytes allocated in $before_files files ($(ratio "$before")x one copy)"
echo "belay, $DAYS snapshots, after gc: $kept bytes allocated in $kept_files files ($(ratio "$kept")x one copy)"
after=$(size "$R")
echo "belay after forget (daily 30, monthly 12) + gc: $after bytes allocated in $(files "$R") files ($(ratio "$after")x one copy)"
if [ -n "$have_restic" ]; then
    s=$(size "$WORK/restic"); echo "restic, $DAYS snapshots: $s bytes in $(files "$WORK/restic") files ($(ratio "$s")x)"
fi
if [ -n "$have_borg" ]; then
    s=$(size "$WORK/borg"); echo "borg zstd,3, $DAYS snapshots: $s bytes in $(files "$WORK/borg") files ($(ratio "$s")x)"
fi
