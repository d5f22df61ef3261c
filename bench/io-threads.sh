#!/usr/bin/env bash
# io_threads 1 against 2: our release server started here with --io-threads N (embedded
# default in a temporary directory), loaded by shared/bench's loadgen over TCP and UDP
# (echo, type 0) and by `raida bench --enc 4` (inline crypto), 3 rounds each, median.
#
#   bench/io-threads.sh PORT [SECONDS] [CONCURRENCY]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$repo/../shared}
port=$1; secs=${2:-5}; conc=${3:-64}
server=$repo/target/release/raida-server
raida=$repo/target/release/raida
bin=${TMPDIR:-/tmp}/raida-bench-bin
mkdir -p "$bin"
gcc -O2 -o "$bin/loadgen" "$shared/bench/loadgen.c" -lz
an=$("$raida" keys demo --data-root "$(mktemp -d)" 2>/dev/null | awk '$1=="1:1" {print $2}')
med() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
for n in 1 2; do
  dir=$(mktemp -d)
  (cd "$dir" && exec "$server" --port "$port" --bind 127.0.0.1 --io-threads "$n" >"$dir/out" 2>"$dir/err") &
  pid=$!
  sleep 0.7
  t=(); u=(); e=()
  for round in 1 2 3; do
    t+=("$("$bin/loadgen" tcp 127.0.0.1 "$port" "$conc" "$secs" 0 0 | sed -E 's/.*rps=([0-9]+).*/\1/')")
    u+=("$("$bin/loadgen" udp 127.0.0.1 "$port" "$conc" "$secs" 0 0 | sed -E 's/.*rps=([0-9]+).*/\1/')")
    e+=("$("$raida" bench --port "$port" --duration "$secs" --connections "$conc" --threads 1 \
        --enc 4 --coin 1:1 --an "$an" --json | python3 -c "import json,sys; print(int(json.load(sys.stdin)['requests_per_s']))")")
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$dir"
  echo "io_threads=$n tcp_rps=$(med "${t[@]}") udp_rps=$(med "${u[@]}") tcp_enc4_rps=$(med "${e[@]}")  (rounds: tcp ${t[*]}; udp ${u[*]}; enc4 ${e[*]})"
done
