#!/usr/bin/env bash
# A minute of garbage over TCP and UDP, valid headers declaring oversized bodies
# (--max-body-size 1024, declared 65535: answered 16 before anything is read or
# allocated), half-open connections; RSS sampled every second must stay flat, the
# server must not panic and must answer correctly afterwards.
. "$(dirname "$0")/common.sh"
build
start_server -- --max-body-size 1024
"$client_bin" flood --addr "$addr" --pid "$server_pid" --secs "${SECS:-60}"
