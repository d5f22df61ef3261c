#!/usr/bin/env bash
# The healing commands (PROTOCOL.md 8b) under load, on release servers on 127.0.0.1.
# Client side: bench/healing.py (python3) and shared/bench's loadgen. Every process is
# started here and stopped by its PID.
#
#   bench/healing.sh hang PORT [SECONDS] [CONCURRENCY]
#     One server (raida id 0, the demo store, 8 workers) whose raida_servers name, at
#     indices 1..24, one peer on PORT+1 that accepts TCP connections and never answers
#     (bench/hangpeer.c). For fixes with a ticket at position 1 only (one peer call
#     each) and at positions 1..24 (24 calls each, all to the silent peer):
#     (a) answer times: 20 fixes one at a time, then 3 x MAX_FIXES fixes with MAX_FIXES
#         in flight, plus one more fix sent while MAX_FIXES wait (160 at once);
#     (b) type-0 echo (loadgen, CONCURRENCY in flight, UDP and TCP, SECONDS each) alone
#         and while MAX_FIXES fixes wait on that peer (`healing.py keep`), alternating,
#         ROUNDS rounds (5), and the median of the rounds' ratios, of requests/s and
#         of the server's CPU time per echo (user + system, /proc/PID/stat).
#   bench/healing.sh network BASE_PORT [SECONDS] [CONCURRENCY]
#     25 servers (scripts/local-network --release, the demo store, one worker each) on
#     BASE_PORT..BASE_PORT+24. Per round (3, alternating): FIXES tickets are fetched
#     from each of RAIDAs 1..24 over UDP (not timed), then loadgen replays FIXES fixes
#     of one coin each (24 tickets, all good: each fix passes, 241) to RAIDA 0 over TCP
#     for SECONDS; then get_ticket of one coin to RAIDA 1 (whose records the fixes do
#     not change) over TCP and over UDP. With each figure: the CPU time RAIDA 0 and
#     all 25 servers together spent per answered request.
#
# Pick ports below the kernel's ephemeral range (32768.. here), or a client socket may
# hold one. Environment: PEER_TIMEOUT_MS (hang: 2000; network: 1000), MAX_FIXES (64),
# ROUNDS (hang (b): 5), SERVER_BIN (hang: the server binary; default the release
# build), ONLY=a or b (hang: (a) or (b) only), POSITIONS (hang: the ticket positions
# to try, "1 1-24"), FIXES (network: fixes prepared per round, 8000; a round that used
# them all says so), THREADS (network: worker threads per server; default
# local-network's 1), EXTRA (more server flags, e.g. "--busy-poll-us 0").
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$repo/../shared}
part=${1:?usage: bench/healing.sh hang|network PORT [SECONDS] [CONCURRENCY]}
port=${2:?port}; secs=${3:-5}; conc=${4:-64}
max_fixes=${MAX_FIXES:-64}
rounds=${ROUNDS:-5}
bin=${TMPDIR:-/tmp}/raida-bench-bin
mkdir -p "$bin"
gcc -O2 -o "$bin/loadgen" "$shared/bench/loadgen.c" -lz
gcc -O2 -o "$bin/hangpeer" "$repo/bench/hangpeer.c"
(cd "$repo" && CARGO_INCREMENTAL=0 cargo build --release -q -p raida-server -p raida-cli)
server_bin=${SERVER_BIN:-$repo/target/release/raida-server}
raida=$repo/target/release/raida
py="python3 $repo/bench/healing.py"
dir=$(mktemp -d /tmp/raida-healing-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -f "$dir/net/pids" ]; then "$repo/scripts/local-network" stop --dir "$dir/net" >/dev/null; fi
  rm -rf "$dir"
}
trap cleanup EXIT
rps() { sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$1"; }
med() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
ratio() { python3 -c "print(f'{$1 / max($2, 1):.3f}')"; }
ok() { sed -E 's/.*ok=([0-9]+).*/\1/' <<<"$1"; }
# cpu PID...: user + system clock ticks of the first PID, then of all of them together.
cpu() {
  local p s=0
  for p in "$@"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$(awk '{print $14 + $15}' "/proc/$1/stat") $s"
}
# us_per OK BEFORE AFTER (two `cpu` lines of one PID): its CPU microseconds per request.
us_per() {
  local hz; hz=$(getconf CLK_TCK)
  read -r a0 _ <<<"$2"; read -r b0 _ <<<"$3"
  python3 -c "print(f'{($b0 - $a0) * 1e6 / $hz / max($1, 1):.2f}')"
}
# per OK BEFORE AFTER (two `cpu` lines): CPU ms per answered request, first server and all.
per() {
  local hz; hz=$(getconf CLK_TCK)
  read -r a0 a1 <<<"$2"; read -r b0 b1 <<<"$3"
  python3 -c "ok = max($1, 1); print(f'cpu_ms_per_request raida0={($b0 - $a0) * 1000 / $hz / ok:.3f} all_servers={($b1 - $a1) * 1000 / $hz / ok:.3f}')"
}
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%H:%M:%S) UTC, $(git -C "$repo" rev-parse --short HEAD)"

hang() {
  local timeout=${PEER_TIMEOUT_MS:-2000} hport=$((port + 1)) list="" i
  "$raida" keys demo --data-root "$dir" >"$dir/coins.txt" 2>/dev/null
  for ((i = 0; i < 25; i++)); do
    [ -n "$list" ] && list="$list, "
    if [ "$i" = 0 ]; then list="$list\"127.0.0.1:$port\""; else list="$list\"127.0.0.1:$hport\""; fi
  done
  cat >"$dir/config.toml" <<EOF
[server]
raida_id = 0
port = $port
raida_servers = [$list]

[network]
bind = "127.0.0.1"
metrics_addr = "127.0.0.1:$((port + 2))"

[healing]
peer_timeout_ms = $timeout
max_fixes = $max_fixes
EOF
  "$bin/hangpeer" "$hport" >"$dir/hang.out" 2>&1 &
  pids+=($!)
  (cd "$dir" && exec "$server_bin" --config config.toml ${EXTRA:-} >"$dir/server.out" 2>"$dir/server.err") &
  local server=$!
  pids+=("$server")
  for _ in $(seq 200); do grep -q listening "$dir/server.out" 2>/dev/null && break; sleep 0.05; done
  grep -q listening "$dir/server.out" || { cat "$dir/server.err"; exit 1; }
  echo "server pid $server, peer_timeout_ms $timeout, max_fixes $max_fixes, hanging peer on $hport, flags: ${EXTRA:-none}"
  local settle
  settle=$(python3 -c "print($timeout / 1000 + 0.5)")
  for pos in ${POSITIONS:-1 1-24}; do
    if [ "${ONLY:-}" != b ]; then
      echo "== fixes with tickets at positions $pos (a): answer times"
      $py fixes "$port" 0 "$dir/coins.txt" "$pos" 20 1
      $py fixes "$port" 0 "$dir/coins.txt" "$pos" $((3 * max_fixes)) "$max_fixes" 1
    fi
    [ "${ONLY:-}" = a ] && continue
    echo "== positions $pos (b): echo alone / echo while $max_fixes fixes wait"
    local mode round a b keeper c0 c1 ca cb
    for mode in udp tcp; do
      local ratios=() cpus=()
      for round in $(seq "$rounds"); do
        c0=$(cpu "$server")
        a=$("$bin/loadgen" "$mode" 127.0.0.1 "$port" "$conc" "$secs" 0 0)
        c1=$(cpu "$server"); ca=$(us_per "$(ok "$a")" "$c0" "$c1")
        $py keep "$port" 0 "$dir/coins.txt" "$pos" "$max_fixes" >"$dir/keep.out" 2>&1 &
        keeper=$!
        for _ in $(seq 100); do grep -q waiting "$dir/keep.out" && break; sleep 0.05; done
        c0=$(cpu "$server")
        b=$("$bin/loadgen" "$mode" 127.0.0.1 "$port" "$conc" "$secs" 0 0)
        c1=$(cpu "$server"); cb=$(us_per "$(ok "$b")" "$c0" "$c1")
        kill -INT "$keeper"; wait "$keeper" || true
        ratios+=("$(ratio "$(rps "$b")" "$(rps "$a")")")
        cpus+=("$(python3 -c "print(f'{$cb / max($ca, 0.001):.3f}')")")
        echo "$mode round $round alone:      $a server_cpu_us_per_req=$ca"
        echo "$mode round $round with fixes: $b server_cpu_us_per_req=$cb  rps ratio ${ratios[-1]}, cpu/req ratio ${cpus[-1]}"
        echo "  $(grep kept "$dir/keep.out")"
        # The fixes the keeper left end at their deadline; the next run starts without.
        sleep "$settle"
      done
      echo "$mode positions $pos: echo with $max_fixes fixes waiting / alone, median of $rounds: rps $(med "${ratios[@]}") (rounds ${ratios[*]}); server CPU per echo $(med "${cpus[@]}") (rounds ${cpus[*]})"
    done
  done
  # The server's own count: fixes, refusals, and peer calls by outcome over all peers.
  curl -s "http://127.0.0.1:$((port + 2))/metrics" | awk '
    /^raida_fix(es_started|es_refused)_total|^raida_fix_latency_seconds_(sum|count)/ { print }
    /^raida_peer_calls_total/ { match($0, /outcome="[a-z_]+"/); o = substr($0, RSTART + 9, RLENGTH - 10); n[o] += $2 }
    END { for (o in n) if (n[o]) printf "raida_peer_calls_total{outcome=\"%s\"} %d (all peers)\n", o, n[o] }' || true
  echo "machine at the end: load $(cut -d' ' -f1-3 /proc/loadavg)"
}

network() {
  local timeout=${PEER_TIMEOUT_MS:-1000} fixes=${FIXES:-8000} round f t u threads=()
  [ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
  "$repo/scripts/local-network" start --release --dir "$dir/net" --base-port "$port" -- \
    --peer-timeout-ms "$timeout" --max-fixes "$max_fixes" "${threads[@]}" \
    --max-tickets 16777216 --max-ticket-coins 16777216 ${EXTRA:-} >/dev/null
  mapfile -t servers <"$dir/net/pids"
  echo "25 servers on $port..$((port + 24)), peer_timeout_ms $timeout, max_fixes $max_fixes, threads ${THREADS:-1, as local-network sets}, flags: ${EXTRA:-none}"
  # get_ticket goes to RAIDA 1, whose records keep the demo ANs (the fixes rewrite RAIDA 0's).
  $py ticket-reqs 1 0 "$dir/net/coins.txt" 100000 "$dir/get_ticket.reqs"
  local fr=() tr=() ur=() c0 c1 used
  for round in 1 2 3; do
    $py tickets "$port" 25 0 "$dir/net/coins.txt" "$fixes" "$dir/fixes.reqs"
    c0=$(cpu "${servers[@]}")
    f=$(LOADGEN_REQS=$dir/fixes.reqs LOADGEN_STATUS=241 "$bin/loadgen" tcp 127.0.0.1 "$port" "$conc" "$secs" 0 0)
    c1=$(cpu "${servers[@]}")
    echo "round $round fix (tcp, RAIDA 0):        $f $(per "$(ok "$f")" "$c0" "$c1")"
    used=$(sed -E 's/.*ok=([0-9]+).*errors=([0-9]+).*/\1 + \2/' <<<"$f")
    if [ $((used)) -ge "$fixes" ]; then echo "  (all $fixes prepared fixes were sent: raise FIXES)"; fi
    c0=$(cpu "${servers[@]}")
    t=$(LOADGEN_REQS=$dir/get_ticket.reqs LOADGEN_STATUS=241 "$bin/loadgen" tcp 127.0.0.1 $((port + 1)) "$conc" "$secs" 0 0)
    c1=$(cpu "${servers[@]}")
    echo "round $round get_ticket (tcp, RAIDA 1): $t $(per "$(ok "$t")" "$c0" "$c1")"
    u=$(LOADGEN_REQS=$dir/get_ticket.reqs LOADGEN_STATUS=241 "$bin/loadgen" udp 127.0.0.1 $((port + 1)) "$conc" "$secs" 0 0)
    echo "round $round get_ticket (udp, RAIDA 1): $u"
    fr+=("$(rps "$f")"); tr+=("$(rps "$t")"); ur+=("$(rps "$u")")
  done
  echo "median of 3: fix tcp $(med "${fr[@]}")/s, get_ticket tcp $(med "${tr[@]}")/s, udp $(med "${ur[@]}")/s; fix/get_ticket (tcp) $(ratio "$(med "${fr[@]}")" "$(med "${tr[@]}")")"
  echo "machine at the end: load $(cut -d' ' -f1-3 /proc/loadavg)"
}

case "$part" in
  hang) hang ;;
  network) network ;;
  *) echo "usage: bench/healing.sh hang|network PORT [SECONDS] [CONCURRENCY]" >&2; exit 2 ;;
esac
