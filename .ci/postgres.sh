# shellcheck shell=bash
# A throwaway PostgreSQL server on loopback, for the tests of the PostgreSQL store
# (CONTRACT section 14) and for benches/message-db. Sourced, not run:
#
#   source .ci/postgres.sh
#   postgres_install   # Debian's postgresql when no server binaries are found
#   postgres_start     # exports SITREP_TEST_POSTGRES; the server stops when the shell exits
#
# The server runs from a data directory of its own in a temp dir, on a free port of
# 127.0.0.1, whatever cluster the machine may already run (which it leaves alone). It
# refuses to run as root, so as root it runs as the `postgres` user. Tests log in as
# `sitrep`, a role that may create databases but is not a superuser (as in production),
# with a password made for this run. The superuser `postgres` (for tools that install
# roles, such as benches/message-db) has a password of its own, in POSTGRES_ADMIN_URL, a
# shell variable that is not exported to the tests.

# Tests run two servers with their pools and 64 concurrent clients at once.
POSTGRES_MAX_CONNECTIONS=300
# Ports tried when another process takes the free one between the probe and the start.
POSTGRES_START_ATTEMPTS=5
POSTGRES_START_TIMEOUT_S=60

postgres_bindir() {
  local newest
  newest=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -n 1) || true
  if [[ -n $newest && -x $newest/initdb ]]; then
    printf '%s\n' "$newest"
  elif command -v pg_config >/dev/null 2>&1 && [[ -x $(pg_config --bindir)/initdb ]]; then
    pg_config --bindir
  else
    return 1
  fi
}

postgres_install() {
  if postgres_bindir >/dev/null; then return 0; fi
  local sudo_=""
  if [[ $(id -u) -ne 0 ]]; then sudo_=sudo; fi
  # A policy-rc.d that refuses keeps the package from starting its own cluster as a
  # service: the tests start the server they need.
  local policy=/usr/sbin/policy-rc.d own_policy=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo_ tee "$policy" >/dev/null && $sudo_ chmod +x "$policy" && own_policy=1
  fi
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends postgresql
  if [[ -n $own_policy ]]; then $sudo_ rm -f "$policy"; fi
}

# Run a server binary as the user that may own the data directory (from `/`, which that
# user may enter whatever the caller's directory).
postgres_as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# Letters and digits only: it goes into a URL as it is.
postgres_password() {
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n'
}

postgres_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

postgres_stop() {
  if [[ -z ${POSTGRES_DIR:-} ]]; then return 0; fi
  if [[ -f $POSTGRES_DIR/data/postmaster.pid ]]; then
    postgres_as_owner "$POSTGRES_BIN/pg_ctl" -D "$POSTGRES_DIR/data" -m fast -w stop >/dev/null ||
      echo "postgres_stop: pg_ctl stop failed; log: $POSTGRES_DIR/server.log" >&2
  fi
  rm -rf "$POSTGRES_DIR"
  POSTGRES_DIR=""
}

postgres_start() {
  POSTGRES_BIN=$(postgres_bindir) || {
    echo "postgres_start: no PostgreSQL server binaries (apt-get install postgresql)" >&2
    return 1
  }
  POSTGRES_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sitrep-pg.XXXXXX")
  trap postgres_stop EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$POSTGRES_DIR"; fi

  local password admin_password
  password=$(postgres_password)
  admin_password=$(postgres_password)
  printf '%s\n' "$admin_password" >"$POSTGRES_DIR/pwfile"
  postgres_as_owner "$POSTGRES_BIN/initdb" --pgdata="$POSTGRES_DIR/data" --username=postgres \
    --pwfile="$POSTGRES_DIR/pwfile" --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
    >"$POSTGRES_DIR/initdb.log" 2>&1 || {
    cat "$POSTGRES_DIR/initdb.log" >&2
    return 1
  }
  postgres_as_owner tee -a "$POSTGRES_DIR/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$POSTGRES_DIR'
max_connections = $POSTGRES_MAX_CONNECTIONS
synchronous_commit = on
fsync = on
EOF

  local attempt port=""
  for ((attempt = 1; attempt <= POSTGRES_START_ATTEMPTS; attempt++)); do
    port=$(postgres_free_port)
    if postgres_as_owner "$POSTGRES_BIN/pg_ctl" -D "$POSTGRES_DIR/data" -l "$POSTGRES_DIR/server.log" \
      -o "-p $port" -w -t "$POSTGRES_START_TIMEOUT_S" start >/dev/null; then
      break
    fi
    port=""
  done
  if [[ -z $port ]]; then
    echo "postgres_start: the server did not start:" >&2
    tail -n 30 "$POSTGRES_DIR/server.log" >&2
    return 1
  fi

  postgres_as_owner "$POSTGRES_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$POSTGRES_DIR" -p "$port" \
    -U postgres -d postgres -c "CREATE ROLE sitrep LOGIN CREATEDB PASSWORD '$password'"
  export SITREP_TEST_POSTGRES="postgres://sitrep:$password@127.0.0.1:$port/postgres"
  # shellcheck disable=SC2034 # read by the scripts that source this one
  POSTGRES_ADMIN_URL="postgres://postgres:$admin_password@127.0.0.1:$port/postgres"
  echo "$("$POSTGRES_BIN/postgres" --version) on 127.0.0.1:$port, data in $POSTGRES_DIR"
}
