#!/usr/bin/env bash
# Every endurance run, one after the other (about three minutes). Not part of
# scripts/test: they are long and load the machine.
set -euo pipefail
here=$(dirname "$0")
for run in many slowloris flood limits budget perip; do
  echo "== $run"
  bash "$here/$run.sh"
done
