#!/usr/bin/env bash
# The memory attack: 10,000 connections from 127.0.0.2 each send a type-0 header
# declaring 65,535 body bytes and 65,000 of them, then stop. With the default budget
# (max_buffered_bytes, 64 MiB) the server's RSS stays within it + 64 MB while an echo
# load from 127.0.0.1 runs (its rate alone, then under the attack, is printed). The
# socket timeout is raised so that the budget, not the timeout, bounds the memory.
. "$(dirname "$0")/common.sh"
n=${CONNECTIONS:-10000}
build
start_server -- --socket-timeout-ms 60000
"$client_bin" bodies --addr "$addr" --pid "$server_pid" --connections "$n" \
  --budget $((64 << 20)) --secs "${SECS:-10}"
