#!/usr/bin/env bash
# bench.sh: the load generator against a fresh 3-node cluster on 127.0.0.1 (fsync on,
# default settings), at concurrency 1, 16 and 64 with 64-byte messages, the same
# operation counts as ../shared/anchors/hraft/run.sh. After each summary line it prints
# the CPU time the three nodes used per committed message, and at the end each node's
# peak RSS.
#   scripts/bench.sh [runs]      (default 1; builds ./raft first)
# Env: N1 N16 N64 (appends per run), SIZE, MUX=1 (bench -mux: the appends in flight
# share one connection, batched).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
N1=${N1:-3000}; N16=${N16:-15000}; N64=${N64:-60000}; SIZE=${SIZE:-64}
mux=(); [[ ${MUX:-0} == 1 ]] && mux=(-mux)
source scripts/cluster.sh
# CPU ticks (user+system) of the nodes so far.
cpu() { local t=0; for p in "${pids[@]}"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
hz=$(getconf CLK_TCK)
for r in $(seq 1 "$runs"); do
  for cn in "1 $N1" "16 $N16" "64 $N64"; do
    set -- $cn
    before=$(cpu)
    line=$(./raft -C bench -S "$members" -n "$2" -c "$1" -size "$SIZE" "${mux[@]}")
    after=$(cpu)
    echo "$line cpu_ms_per_op=$(awk -v d=$((after - before)) -v hz="$hz" -v n="$2" 'BEGIN{printf "%.3f", d*1000/hz/n}')"
  done
done
for p in "${pids[@]}"; do echo "# node pid $p peak RSS $(awk '/VmHWM/{print $2, $3}' "/proc/$p/status")"; done
