#!/usr/bin/env bash
# compare.sh: this raft beside two anchors, in one sitting, as the README's performance
# table. The anchors: the net/rpc replication prototype of ../shared/anchors/floor (its
# best net/rpc variant, "bin inline pipe": a floor of what net/rpc allows on this machine,
# with no elections and no state machine) and hashicorp/raft (../shared/anchors/hraft).
# Each round runs every system on a fresh 3-node cluster on 127.0.0.1 (fsync on, 64-byte
# messages), one after the other, at c=1 and at c=64 and c=256 with the clients batched on
# one connection (mux; -mux for raft) and with a connection per client (conn; hraft has
# only that); the table gives the median of the rounds and each figure's ratio to the
# net/rpc prototype's. The anchors' lib.sh starts and stops the clusters (by PID) and
# takes each system's node CPU per committed message from /proc.
#   scripts/compare.sh [rounds]          (default 3)
# Env: SYSTEMS (default "rpc project hraft"; add "floor" for the raw-TCP prototype),
# ANCHORS (default ../shared/anchors), N1, N64, N256 (appends per run).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
anchors=$(cd "${ANCHORS:-../shared/anchors}" && pwd)
export RUN=${TMPDIR:-/tmp}/compare
bin=$RUN/bin
mkdir -p "$bin"
go build -o "$bin/raft" .
(cd "$anchors/floor" && go build -o "$bin/floor" .)
(cd "$anchors/hraft" && go build -o "$bin/hraft" .)
export FLOOR=$bin/floor RAFT=$bin/raft HRAFT=$bin/hraft
# shellcheck source=/dev/null
source "$anchors/floor/scripts/lib.sh"
N1=${N1:-3000}; N64=${N64:-60000}; N256=${N256:-60000}
systems=${SYSTEMS:-rpc project hraft}
out=$RUN/compare-$(date -u +%m%dT%H%M%S).txt
echo "# compare $(date -u +%FT%TZ) on $(nproc) CPUs, $rounds rounds; $(go version)" | tee "$out" >&2
for r in $(seq 1 "$rounds"); do
  for sys in $systems; do
    echo "# round $r $sys $(date -u +%T) loadavg $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out" >&2
    start_"$sys"
    modes="mux conn"; [[ $sys == hraft ]] && modes=conn
    bench_"$sys" 1 "$N1" "${modes%% *}"; measure "$sys-${modes%% *}" | tee -a "$out" >&2
    for cn in "64 $N64" "256 $N256"; do
      set -- $cn
      for m in $modes; do bench_"$sys" "$1" "$2" "$m"; measure "$sys-$m" | tee -a "$out" >&2; done
    done
    stop_nodes
  done
done
echo "# end $(date -u +%T) loadavg $(cut -d' ' -f1-3 /proc/loadavg); raw results in $out" >&2

# The table: per system and mode, the medians at c=1 (p50), c=64 and c=256 (ops/s), and
# node CPU per message at c=64; in brackets, the ratio to the net/rpc prototype's figure
# in the same mode (c=1: its mux run).
awk -f "$anchors/floor/scripts/median.awk" "$out" | awk -v rounds="$rounds" '
  NR > 1 { split($1, lm, "-"); sys = lm[1]; mode = lm[2]; c = $2; sub(/c=/, "", c)
           ops[sys, mode, c] = $4; p50[sys, mode, c] = $5; cpu[sys, mode, c] = $7
           if (!((sys, mode) in seen)) { seen[sys, mode] = 1; order[++n] = sys SUBSEP mode } }
  function ratio(v, b) { return (b > 0 && v != "") ? sprintf(" (%.2fx)", v / b) : "" }
  function c1(sys, mode) { return ((sys, mode, 1) in p50) ? mode : "mux" }
  END {
    name["floor"] = "raw TCP prototype"; name["rpc"] = "net/rpc prototype"; name["project"] = "this raft"; name["hraft"] = "hashicorp/raft"
    printf "| system (median of %d) | c=1 p50 ms | c=64 ops/s | c=256 ops/s | node CPU ms/msg, c=64 |\n|---|---|---|---|---|\n", rounds
    for (i = 1; i <= n; i++) {
      split(order[i], k, SUBSEP); sys = k[1]; mode = k[2]; bm = (mode == "conn") ? "conn" : "mux"
      one = ((sys, mode, 1) in p50) ? p50[sys, mode, 1] ratio(p50[sys, mode, 1], p50["rpc", "mux", 1]) : "-"
      printf "| %s, %s | %s | %s%s | %s%s | %s%s |\n", name[sys], mode, one,
        ops[sys, mode, 64], ratio(ops[sys, mode, 64], ops["rpc", bm, 64]),
        ops[sys, mode, 256], ratio(ops[sys, mode, 256], ops["rpc", bm, 256]),
        cpu[sys, mode, 64], ratio(cpu[sys, mode, 64], cpu["rpc", bm, 64])
    }
  }'
