#!/usr/bin/env bash
# sitrep and message-db on the same PostgreSQL server, one after the other in one run:
# durable appends at 1, 16 and 64 connections (sitrep on one and on two servers), then
# message-db's write_message through pgbench at the same concurrency.
#
#   benches/postgres.sh [POSTGRES_URL]
#
# POSTGRES_URL names a role that may create databases and roles (a superuser will do).
# Without it a throwaway server is started with .ci/postgres.sh and stopped at the end.
# Environment: SECONDS_EACH (10, for both), REPS (3, sitrep's runs per figure),
# SCALE_EVENTS (1000000: the events written before a new server's start-up is timed; 0
# skips it).
set -euo pipefail
cd "$(dirname "$0")/.."

url=${1:-}
if [[ -z $url ]]; then
  # shellcheck source=.ci/postgres.sh
  source .ci/postgres.sh
  postgres_start >&2
  url=$POSTGRES_ADMIN_URL
fi
seconds=${SECONDS_EACH:-10}

cargo build --release --quiet
echo "== sitrep"
target/release/sitrep-bench --store "$url" --reps "${REPS:-3}" --seconds "$seconds" \
  --scale-events "${SCALE_EVENTS:-1000000}"
echo
echo "== message-db"
SECONDS_EACH=$seconds benches/message-db/run.sh "$url"
