#!/usr/bin/env bash
# 10,000 connections open at once, then every one sends an echo: each must be answered
# exactly once. The socket timeout is raised so opening them all cannot time out the
# first ones. Then RSS per idle connection at 10,000 open connections.
. "$(dirname "$0")/common.sh"
n=${CONNECTIONS:-10000}
build
start_server -- --socket-timeout-ms 120000
"$client_bin" many --addr "$addr" --connections "$n" --secs 120
stop_server
start_server -- --socket-timeout-ms 120000
"$client_bin" idle --addr "$addr" --pid "$server_pid" --connections "$n" --settle-ms 2000
