#!/usr/bin/env bash
# Slowloris: 5,000 connections dribbling one byte a second while a normal TCP echo load
# runs (64 in flight); they must be closed at the socket timeout (2 s) and the normal
# load must keep >= 0.8 of the throughput it has alone (measured first, same length).
. "$(dirname "$0")/common.sh"
build
start_server --
"$client_bin" slowloris --addr "$addr" --slow "${SLOW:-5000}" --secs "${SECS:-15}" --load 64 --timeout-ms 2000
