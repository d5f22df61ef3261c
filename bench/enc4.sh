#!/usr/bin/env bash
# Encryption type 4 (AES-256 + HMAC, coin 1:1 of the demo store): `raida bench --enc 4`
# against our server and against shared/bench's null server, alternating A B A B, 3
# rounds per transport, median ratio. The null server cannot validate or encrypt, so
# both are run with --no-verify (every complete answer counts, by its status byte);
# our server's answers are checked separately first, with verification on.
#
#   bench/enc4.sh PORT [SECONDS] [CONNECTIONS] [BENCH_THREADS]
#
# Start our release server yourself on 127.0.0.1:PORT (raida id 0, coin id 0, the
# embedded default in a temporary directory: its demo store holds coin 1:1). The null
# server is started here on PORT+1 and stopped at the end.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$repo/../shared}
port=$1; secs=${2:-5}; conc=${3:-64}; threads=${4:-1}
raida=$repo/target/release/raida
bin=${TMPDIR:-/tmp}/raida-bench-bin
mkdir -p "$bin"
gcc -O2 -o "$bin/nullserver" "$shared/bench/nullserver.c"
# The demo ANs are fixed; take 1:1's from the tool rather than re-deriving it.
an=$("$raida" keys demo --data-root "$(mktemp -d)" 2>/dev/null | awk '$1=="1:1" {print $2}')
"$bin/nullserver" $((port + 1)) & null=$!
trap 'kill $null 2>/dev/null || true' EXIT
sleep 0.3
run() { # run PORT MODE EXTRA [ENC ARGS]: prints "rps p99_us errors"
  local port=$1 mode=$2 extra=$3; shift 3
  local enc=("$@"); [ ${#enc[@]} -eq 0 ] && enc=(--enc 4 --coin 1:1 --an "$an")
  "$raida" bench $mode --port "$port" --duration "$secs" --connections "$conc" --threads "$threads" \
    "${enc[@]}" $extra --json |
    python3 -c "import json,sys; d=json.load(sys.stdin); print(int(d['requests_per_s']), d['latency_us']['p99'], d['error_count'])"
}
echo "verified against our server: tcp $(run "$port" "" "") / udp $(run "$port" --udp "") (rps p99_us errors)"
rt=(); ru=(); pt=(); pu=(); r0=(); p0=()
for round in 1 2 3; do
  for mode in tcp udp; do
    flag=""; [ $mode = udp ] && flag=--udp
    read -r a ap ae < <(run "$port" "$flag" --no-verify)
    read -r b bp be < <(run $((port + 1)) "$flag" --no-verify)
    echo "round $round $mode server: rps=$a p99_us=$ap errors=$ae   null: rps=$b p99_us=$bp errors=$be"
    r=$(python3 -c "print(f'{$a/max($b,1):.3f}')"); p=$(python3 -c "print(f'{$ap/max($bp,1):.2f}')")
    if [ $mode = tcp ]; then
      rt+=("$r"); pt+=("$p")
      # The null server frames every header as 32 bytes: on a 48-byte type-4 header it
      # answers early and resets. Its correctly framed type-0 rate is the other floor.
      read -r c cp ce < <(run $((port + 1)) "" --no-verify --enc 0)
      echo "round $round tcp null with type 0 (correctly framed): rps=$c p99_us=$cp errors=$ce"
      r0+=("$(python3 -c "print(f'{$a/max($c,1):.3f}')")"); p0+=("$(python3 -c "print(f'{$ap/max($cp,1):.2f}')")")
    else
      ru+=("$r"); pu+=("$p")
    fi
  done
done
med() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
echo "enc 4 ratio server/null (median of 3): tcp $(med "${rt[@]}") udp $(med "${ru[@]}"); p99 server/null: tcp $(med "${pt[@]}") udp $(med "${pu[@]}")"
echo "tcp: server type 4 / null type 0 (median of 3): $(med "${r0[@]}"); p99 $(med "${p0[@]}")"
