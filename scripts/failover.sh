#!/usr/bin/env bash
# failover.sh: how long a 3-node cluster on 127.0.0.1 (default timings) is unavailable
# when its leader is SIGKILLed: the time from the kill to the next committed append
# through a surviving member (one client process, which retries on its own).
# With TERM, the leader is stopped with SIGTERM instead and hands leadership over first.
#   scripts/failover.sh [kills] [KILL|TERM]     (default 20 KILL; builds ./raft first)
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-20}
sig=${2:-KILL}
go build -o raft .
dir=$(mktemp -d)
ports=(17990 17991 17992)
members="127.0.0.1:17990,127.0.0.1:17991,127.0.0.1:17992"
declare -A pid
start() { ./raft -c "$members" -p "$1" -d "$dir/$1" >>"$dir/$1.out" 2>>"$dir/$1.err" & pid[$1]=$!; }
cleanup() { kill -9 "${pid[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for p in "${ports[@]}"; do start "$p"; done
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
send() { ./raft -C clientcommand -m "$1" -S "127.0.0.1:$2" -timeout 10s 2>/dev/null; }
leader_of() { sed -n 's/.*leader 127.0.0.1:\([0-9]*\)).*/\1/p'; }
times=()
for i in $(seq 1 "$kills"); do
  lead=$(send "probe-$i" 17990 | leader_of)
  survivor=17990; [ "$lead" = 17990 ] && survivor=17991
  sleep 0.5 # a steady state: followers have heard heartbeats recently
  t0=$(now_ms)
  kill -"$sig" "${pid[$lead]}"; wait "${pid[$lead]}" 2>/dev/null || true
  out=$(send "after-kill-$i" "$survivor")
  t1=$(now_ms)
  times+=($((t1 - t0)))
  echo "kill $i: leader :$lead -> $(echo "$out" | leader_of | sed 's/^/:/'), $((t1 - t0)) ms" >&2
  start "$lead"
  until send "rejoin-$i" "$lead" >/dev/null; do sleep 0.1; done
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
n=${#sorted[@]}
echo "signal=$sig kills=$n median_ms=${sorted[$((n / 2))]} max_ms=${sorted[$((n - 1))]} min_ms=${sorted[0]}"
