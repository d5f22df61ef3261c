#!/usr/bin/env bash
# The store under load: type-1 echo (a key lookup per request) with keys drawn from 8
# pages against keys drawn uniformly from a full-size store (15 denominations x 1,000
# pages, 15,000 pages, 261 MB), UDP and TCP, shared/bench's loadgen in replay mode
# (LOADGEN_REQS), alternating A B A B, 3 rounds per transport, median ratio
# uniform/8-pages. Starts its own release server on 127.0.0.1:PORT and stops it (by PID).
#
#   bench/store.sh PORT [SECONDS] [CONCURRENCY]
#
# Environment: STORE_DIR (default /tmp/raida-store-bench: the store and request files are
# made there once and reused), STRACE=1 (also trace openat/read/pread64/statx during one
# uniform UDP run and count page-file accesses by thread name), DROP_CACHES=1 (drop the
# OS page cache before the uniform runs; needs root), EXTRA (more server flags).
set -euo pipefail
source "$(dirname "$0")/common.sh"
if [ ! -d "$dir/store/Data" ]; then
  echo "making a full-size store under $dir/store"
  "$gen" store "$dir/store" 1000
fi
[ -f "$dir/echo1-8pages.reqs" ] || "$gen" requests "$dir/store" echo1 400000 "$dir/echo1-8pages.reqs" 8
[ -f "$dir/echo1-uniform.reqs" ] || "$gen" requests "$dir/store" echo1 400000 "$dir/echo1-uniform.reqs"

"$repo/target/release/raida-server" --port "$port" --bind 127.0.0.1 --data-root "$dir/store" \
  ${EXTRA:-} >"$dir/server.out" 2>"$dir/server.err" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$dir/server.out" 2>/dev/null && break; sleep 0.1; done
grep -q listening "$dir/server.out" || { cat "$dir/server.err"; exit 1; }

run() { # run MODE FILE: one loadgen line
  LOADGEN_REQS=$2 "$bin/loadgen" "$1" 127.0.0.1 "$port" "$conc" "$secs" 0 0
}
ru=(); rt=()
for round in 1 2 3; do
  for mode in udp tcp; do
    a=$(run $mode "$dir/echo1-8pages.reqs")
    [ "${DROP_CACHES:-}" = 1 ] && sync && echo 3 >/proc/sys/vm/drop_caches
    b=$(run $mode "$dir/echo1-uniform.reqs")
    echo "round $round $mode 8 pages: $a"
    echo "round $round $mode uniform: $b"
    ra=$(sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$a"); rb=$(sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$b")
    ratio=$(python3 -c "print(f'{$rb/max($ra,1):.3f}')")
    if [ $mode = udp ]; then ru+=("$ratio"); else rt+=("$ratio"); fi
  done
done
med() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
echo "ratio uniform/8-pages (median of 3): udp $(med "${ru[@]}") tcp $(med "${rt[@]}")"

if [ "${STRACE:-}" = 1 ]; then
  trace=$dir/strace.out
  # A fresh server, so every page is loaded during the traced run.
  kill $server; wait $server 2>/dev/null || true
  "$repo/target/release/raida-server" --port "$port" --bind 127.0.0.1 --data-root "$dir/store" \
    ${EXTRA:-} >"$dir/server.out" 2>"$dir/server.err" &
  server=$!
  for _ in $(seq 100); do grep -q listening "$dir/server.out" 2>/dev/null && break; sleep 0.1; done
  strace -f -y -qq -e trace=openat,read,pread64,statx -o "$trace" -p $server &
  tracer=$!
  sleep 1
  run udp "$dir/echo1-uniform.reqs" >/dev/null
  kill -INT $tracer; wait $tracer 2>/dev/null || true
  # strace -o with -f writes "TID syscall(...)"; name each TID by /proc.
  declare -A names
  for t in /proc/$server/task/*; do names[$(basename "$t")]=$(cat "$t/comm"); done
  echo "page-file accesses (openat/read/pread64/statx of Data/ files) by thread:"
  grep -E 'Data/|\.bin' "$trace" | awk '{print $1}' | sort | uniq -c | while read -r n tid; do
    echo "  ${names[$tid]:-tid $tid}: $n"
  done
  echo "  total lines traced: $(wc -l <"$trace")"
  loop=0
  for t in "${!names[@]}"; do
    case "${names[$t]}" in raida-loop-*)
      c=$(awk -v t="$t" '$1==t' "$trace" | grep -cE 'Data/|\.bin' || true); loop=$((loop + c)) ;;
    esac
  done
  echo "page-file accesses from raida-loop-* threads: $loop"
fi
