#!/usr/bin/env bash
# The authentication commands under load, all in one run against one release server on
# a full-size store (15 denominations x 1,000 pages), coins drawn uniformly over it:
# type-0 echo, detect of 1 coin, detect of 40 coins, and durable pown of 1 coin (each
# coin once, a fresh PAN), over UDP and TCP, shared/bench's loadgen (replay mode,
# LOADGEN_STATUS=241 for the commands), pages already in memory (a detect pass over the
# whole store first, also before the pown runs). udp_effective_payload is 1440, as the deployed
# config has it, so 40 coins fit a datagram. Starts its own server on 127.0.0.1:PORT
# and stops it (by PID); the pown runs get a fresh copy of the store each.
#
#   bench/auth.sh PORT [SECONDS] [CONCURRENCY]
#
# Environment: STORE_DIR (default /tmp/raida-store-bench, shared with bench/store.sh),
# EXTRA (more server flags), POWN_SECONDS (each pown run; default four times SECONDS).
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ -d "$dir/store/Data" ] || "$gen" store "$dir/store" 1000
for kind in detect1 detect40; do
  [ -f "$dir/$kind.reqs" ] || "$gen" requests "$dir/store" "$kind" 400000 "$dir/$kind.reqs"
done
# The pown runs last POWN_SECONDS (default four times SECONDS), so that each spans log
# checkpoints (one per 32 MiB of log, about 700,000 powns): a 5 s run at 117k/s writes
# 27 MB and never reaches one. Enough distinct coins for a whole run (each coin once).
pown_secs=${POWN_SECONDS:-$((secs * 4))}
pown_coins=$((pown_secs * 200000))
[ -f "$dir/pown1-$pown_coins.reqs" ] ||
  "$gen" requests "$dir/store" pown1 "$pown_coins" "$dir/pown1-$pown_coins.reqs"

server=
start() { # start ROOT: a release server on ROOT; sets $server
  "$repo/target/release/raida-server" --port "$port" --bind 127.0.0.1 --data-root "$1" \
    --udp-payload-threshold 1440 ${EXTRA:-} >"$dir/server.out" 2>"$dir/server.err" &
  server=$!
  for _ in $(seq 200); do grep -q listening "$dir/server.out" 2>/dev/null && break; sleep 0.05; done
  grep -q listening "$dir/server.out" || { cat "$dir/server.err"; exit 1; }
}
stop() {
  [ -n "$server" ] || return 0
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=
}
trap stop EXIT
run() { # run MODE [FILE STATUS]: one loadgen line
  if [ $# -eq 1 ]; then
    "$bin/loadgen" "$1" 127.0.0.1 "$port" "$conc" "$secs" 0 0
  else
    LOADGEN_REQS=$2 LOADGEN_STATUS=$3 "$bin/loadgen" "$1" 127.0.0.1 "$port" "$conc" "$secs" 0 0
  fi
}
rps() { sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$1"; }

start "$dir/store"
for mode in udp tcp; do
  # Warm the page cache over the whole store first (every page loaded once).
  run "$mode" "$dir/detect1.reqs" 241 >/dev/null
  echo0=$(run "$mode"); echo "$mode echo type 0:   $echo0"
  d1=$(run "$mode" "$dir/detect1.reqs" 241); echo "$mode detect 1 coin:  $d1"
  d40=$(run "$mode" "$dir/detect40.reqs" 241); echo "$mode detect 40 coins: $d40"
  eval "${mode}_echo=$(rps "$echo0") ${mode}_d1=$(rps "$d1")"
done
stop
for mode in udp tcp; do
  rm -rf "$dir/pown-store" && cp -r "$dir/store" "$dir/pown-store"
  start "$dir/pown-store"
  # Pages already loaded, as for detect: every page once (detect over UDP).
  run udp "$dir/detect1.reqs" 241 >/dev/null
  p1=$(secs=$pown_secs run "$mode" "$dir/pown1-$pown_coins.reqs" 241)
  echo "$mode pown 1 coin ($pown_secs s): $p1"
  eval "${mode}_p1=$(rps "$p1")"
  grep -E 'syncs|records' "$dir/server.err" | tail -n 2 || true
  stop
done
python3 - <<EOF
for m in ("udp", "tcp"):
    e, d, p = ${udp_echo:-0}, ${udp_d1:-0}, ${udp_p1:-0}
    if m == "tcp":
        e, d, p = ${tcp_echo:-0}, ${tcp_d1:-0}, ${tcp_p1:-0}
    print(f"{m}: detect-1/echo {d / max(e, 1):.3f}  durable pown-1/detect-1 {p / max(d, 1):.3f}")
EOF
