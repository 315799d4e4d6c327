#!/usr/bin/env bash
# compare.sh: this raft beside the anchor (hashicorp/raft, ../shared/anchors/hraft/run.sh)
# in one sitting. Each round runs scripts/bench.sh with -mux, then without, then the
# anchor, so a machine that drifts slows all three alike; at the end it prints the median
# of the rounds for each system and concurrency, and the anchor's node CPU per message
# and peak RSS (sampled from /proc while it runs).
#   scripts/compare.sh [rounds]      (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
anchor=${ANCHOR:-../shared/anchors/hraft/run.sh}
[[ -x $anchor ]] || { echo "compare.sh: no anchor at $anchor (set ANCHOR)" >&2; exit 1; }
hz=$(getconf CLK_TCK)
out=$(mktemp)
trap 'rm -f "$out" "$out".*' EXIT

# sample_anchor writes the CPU ticks and peak RSS (kB) of the anchor's node processes to
# $out.cpu and $out.rss until it is killed.
sample_anchor() {
  declare -A ticks rss
  while true; do
    for p in $(pgrep -f 'hraft-anchor-bin -id' || true); do
      t=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null) && ticks[$p]=$t
      r=$(awk '/VmHWM/{print $2}' "/proc/$p/status" 2>/dev/null) && [[ -n $r ]] && rss[$p]=$r
    done
    sum=0; for p in "${!ticks[@]}"; do sum=$((sum + ticks[$p])); done
    echo "$sum" >"$out.cpu"; echo "${rss[*]}" >"$out.rss"
    sleep 0.2
  done
}

for r in $(seq 1 "$rounds"); do
  echo "# round $r of $rounds, $(date -u +%T) loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  MUX=1 scripts/bench.sh 1 | grep -E 'ops=|peak RSS' | sed 's/^/raft-mux /' | tee -a "$out" >&2
  scripts/bench.sh 1 | grep ops= | sed 's/^/raft-rpc /' | tee -a "$out" >&2
  sample_anchor & sampler=$!
  INPROC=0 "$anchor" | grep ops= | sed 's/^/hraft /' | tee -a "$out" >&2
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  ops=$(grep '^hraft ' "$out" | tail -3 | sed 's/.* ops=\([0-9]*\).*/\1/' | paste -sd+ | bc)
  echo "hraft-cpu $(awk -v t="$(cat "$out.cpu")" -v hz="$hz" -v n="$ops" 'BEGIN{printf "%.3f", t*1000/hz/n}') $(cat "$out.rss")" >>"$out"
done

# The median of a field over the rounds, for one system and concurrency.
median() { grep "^$1 .* conc=$2 " "$out" | sed "s/.* $3=\([0-9.]*\).*/\1/" | sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
echo "median of $rounds rounds:"
for sys in raft-mux raft-rpc hraft; do
  for c in 1 16 64; do
    line="$sys c=$c ops_per_sec=$(median $sys $c ops_per_sec) p50_ms=$(median $sys $c p50_ms) p99_ms=$(median $sys $c p99_ms)"
    [[ $sys != hraft ]] && line="$line cpu_ms_per_op=$(median $sys $c cpu_ms_per_op)"
    echo "$line"
  done
done
echo "raft peak RSS per node, last -mux run: $(grep '^raft-mux # node' "$out" | tail -3 | awk '{print $8, $9}' | paste -sd' ')"
echo "hraft node cpu_ms_per_op over each whole run (c=1,16,64): $(grep '^hraft-cpu' "$out" | awk '{print $2}' | sort -n | paste -sd' '); peak RSS kB per node, last run: $(grep '^hraft-cpu' "$out" | tail -1 | cut -d' ' -f3-)"
