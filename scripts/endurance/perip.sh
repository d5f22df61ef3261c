#!/usr/bin/env bash
# Fairness: with --max-connections-per-ip 100 and no trusted network, 1,000 connections
# from 127.0.0.2 get exactly 900 refusals with 160 while an echo load from 127.0.0.1
# keeps going (its rate alone, then under the flood, is printed).
. "$(dirname "$0")/common.sh"
build
start_server -- --max-connections-per-ip 100 --trusted-networks "" --socket-timeout-ms 60000
"$client_bin" perip --addr "$addr" --connections 1000 --limit 100 --secs "${SECS:-5}"
