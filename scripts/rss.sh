#!/usr/bin/env bash
# rss.sh: a node's memory over a long load: a fresh 3-node cluster on 127.0.0.1 under
# the load generator (c=16, 64-byte messages) for SECONDS (default 300), printing each
# node's RSS every 30 s and the appends committed so far. Snapshots are on (default
# -snapshot-entries): the log in memory stays bounded, and the state machine keeps in
# memory only the messages applied since the latest snapshot (the others are read from
# its file), so RSS should stay flat.
#   scripts/rss.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
source scripts/cluster.sh
end=$((SECONDS + secs))
( while [ $SECONDS -lt $end ]; do ./raft -C bench -S "$members" -n 20000 -c 16 -size 64 >/dev/null || true; done ) &
load=$!
start=$SECONDS
while [ $SECONDS -lt $end ]; do
  sleep 30
  rss=$(for p in "${pids[@]}"; do awk '/VmRSS/{printf "%d ", $2/1024}' "/proc/$p/status"; done)
  applied=$(./raft -C status -S "$members" -json 2>/dev/null | sed 's/.*"applied_index":\([0-9]*\).*/\1/')
  echo "t=$((SECONDS - start))s applied=$applied rss_mb=[ $rss]"
done
wait $load 2>/dev/null || true
