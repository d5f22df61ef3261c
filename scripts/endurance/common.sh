# Shared by the endurance scripts: build, start a release raida-server on 127.0.0.1
# (embedded default, raida id 0, coin id 0, in a temporary directory), stop it by PID.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
port=${PORT:-47100}
addr=127.0.0.1:$port
build() {
  (cd "$repo" && cargo build --release -q -p raida-server --bin raida-server \
    && cargo build --release -q -p raida-tests --example endurance)
  server_bin=$repo/target/release/raida-server
  client_bin=$repo/target/release/examples/endurance
}
# start_server [PREFIX...] -- [FLAGS...]: PREFIX (e.g. prlimit) wraps the server.
start_server() {
  local prefix=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do prefix+=("$1"); shift; done
  [ "${1:-}" = "--" ] && shift
  workdir=$(mktemp -d)
  # exec: $! is the server itself, not a subshell.
  (cd "$workdir" && exec "${prefix[@]}" "$server_bin" --port "$port" --bind 127.0.0.1 "$@" \
      >"$workdir/stdout" 2>"$workdir/stderr") &
  server_pid=$!
  trap stop_server EXIT
  for _ in $(seq 100); do
    grep -q '^listening' "$workdir/stdout" 2>/dev/null && break
    sleep 0.05
  done
  grep -q '^listening' "$workdir/stdout" || { echo "server did not start"; cat "$workdir/stderr"; exit 1; }
  echo "server pid=$server_pid flags: $*"
}
stop_server() {
  if [ -n "${server_pid:-}" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [ -n "${workdir:-}" ]; then
    if grep -qi 'panick' "$workdir/stderr"; then echo "SERVER PANICKED:"; cat "$workdir/stderr"; fi
    rm -rf "$workdir"
  fi
  server_pid=
}
