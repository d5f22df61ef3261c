#!/usr/bin/env bash
# Hitting max_connections (100): 100 idle connections held, 50 more each get an
# explicit 160 REQUEST_RATE; after they close, requests are served again. Then the
# file descriptor limit (the server under `prlimit --nofile=256`): 300 idle
# connections exhaust it, 50 requests wait in the backlog and are answered once the
# idle ones close; the server keeps serving.
. "$(dirname "$0")/common.sh"
build
start_server -- --max-connections 100 --socket-timeout-ms 30000
"$client_bin" limits --addr "$addr" --max-connections 100 --extra 50
stop_server
start_server prlimit --nofile=256:256 -- --socket-timeout-ms 30000
"$client_bin" fdlimit --addr "$addr" --hold 300 --waiting 50
grep -c 'accept failed' "$workdir/stderr" | sed 's/^/accept_failure_warnings=/'
