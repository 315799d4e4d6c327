# cluster.sh: sourced by bench.sh and rss.sh. Builds ./raft, starts a fresh 3-node
# cluster on 127.0.0.1:17990-17992 (default settings, data in a temporary dir), waits
# for a leader, and stops it all on exit. Leaves $members and the node $pids.
go build -o raft .
dir=$(mktemp -d)
members="127.0.0.1:17990,127.0.0.1:17991,127.0.0.1:17992"
pids=()
cleanup() { kill -9 "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for p in 17990 17991 17992; do
  ./raft -c "$members" -p "$p" -d "$dir/$p" >/dev/null 2>"$dir/$p.err" &
  pids+=($!)
done
until ./raft -C status -S "$members" -json 2>/dev/null | grep -q '"leader":"1'; do sleep 0.1; done
