#!/usr/bin/env bash
# The locker commands under load beside pown, against one release server on a full-size
# store (15 denominations x 1,000 pages): put (store_sum of 1 coin into a locker of its
# own), peek (of those lockers), remove (each coin once, to a new AN), and durable pown
# of 1 coin, over UDP and TCP, shared/bench's loadgen (replay mode, LOADGEN_STATUS=241).
# Each mode gets a fresh copy of the store: the puts run first, then the peeks (of the
# first PEEKS lockers, which the puts filled), then the removes (each coin once: a
# remove past the coins the puts moved answers 242 and is not counted as ok); the pown
# run gets a copy of its own. Starts its own server on 127.0.0.1:PORT and stops it (by
# PID).
#
#   bench/lockers.sh PORT [SECONDS] [CONCURRENCY]
#
# Environment: STORE_DIR (default /tmp/raida-store-bench, shared with bench/auth.sh),
# PEEKS (default 2000), EXTRA (more server flags).
set -euo pipefail
source "$(dirname "$0")/common.sh"
peeks=${PEEKS:-2000}
[ -d "$dir/store/Data" ] || "$gen" store "$dir/store" 1000
for kind in put1 remove1; do
  [ -f "$dir/$kind.reqs" ] || "$gen" requests "$dir/store" "$kind" 1500000 "$dir/$kind.reqs"
done
[ -f "$dir/peek1-$peeks.reqs" ] || "$gen" requests "$dir/store" peek1 "$peeks" "$dir/peek1-$peeks.reqs"
[ -f "$dir/pown1.reqs" ] || "$gen" requests "$dir/store" pown1 1500000 "$dir/pown1.reqs"

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
run() { # run MODE FILE: one loadgen line, 241 counted as ok
  LOADGEN_REQS=$2 LOADGEN_STATUS=241 "$bin/loadgen" "$1" 127.0.0.1 "$port" "$conc" "$secs" 0 0
}

for mode in udp tcp; do
  rm -rf "$dir/locker-store" && cp -r "$dir/store" "$dir/locker-store"
  start "$dir/locker-store"
  echo "$mode put 1 coin:     $(run "$mode" "$dir/put1.reqs")"
  echo "$mode peek 1 coin:    $(run "$mode" "$dir/peek1-$peeks.reqs")"
  echo "$mode remove 1 coin:  $(run "$mode" "$dir/remove1.reqs")"
  stop
  rm -rf "$dir/pown-store" && cp -r "$dir/store" "$dir/pown-store"
  start "$dir/pown-store"
  echo "$mode pown 1 coin:    $(run "$mode" "$dir/pown1.reqs")"
  stop
done
rm -rf "$dir/locker-store" "$dir/pown-store"
