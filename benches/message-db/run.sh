#!/usr/bin/env bash
# The comparison for sitrep's durable appends on PostgreSQL: message-db, the Eventide
# project's message store in PostgreSQL (functions, a table and an advisory lock per
# category), appending one message per transaction with its own `write_message`.
#
#   benches/message-db/run.sh [POSTGRES_URL]
#
# POSTGRES_URL names a role that may create databases and roles (message-db's installer
# makes a `message_store` role); a superuser will do. Without it, a throwaway server is
# started with .ci/postgres.sh and stopped at the end. The package comes from the npm
# registry (`npm pack`), is installed with its own install.sh into a new database (dropped
# at the end), and pgbench calls
#   message_store.write_message(gen_random_uuid(), stream, type, data)
# with the README's example development, one stream per client. Two layouts of streams:
#   one-category  the streams of one category (`situation-<client>`), as an application
#                 keeps one kind of entity: message-db's write lock is per category, so
#                 appends are serialised, as in sitrep's single log
#   own-category  each client's stream in a category of its own: no shared lock
# One line per layout and concurrency, e.g.
#   message-db clients=16 streams=one-category tps=812.4 latency_ms=19.70
#
# Environment: SECONDS_EACH (10), CLIENTS ("1 16 64"), LAYOUTS ("one-category
# own-category"), MESSAGE_DB_VERSION (1.3.1).
set -euo pipefail

seconds_each=${SECONDS_EACH:-10}
clients_list=${CLIENTS:-1 16 64}
layouts=${LAYOUTS:-one-category own-category}
version=${MESSAGE_DB_VERSION:-1.3.1}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
threads_max=$(nproc)

url=${1:-}
if [[ -z $url ]]; then
  # shellcheck source=.ci/postgres.sh
  source "$here/../../.ci/postgres.sh"
  postgres_start >&2
  url=$POSTGRES_ADMIN_URL
fi

# libpq's variables, for message-db's scripts (they run `psql DBNAME`) and for pgbench.
eval "$(python3 - "$url" <<'EOF'
import shlex, sys
from urllib.parse import unquote, urlsplit
u = urlsplit(sys.argv[1])
if u.scheme not in ("postgres", "postgresql"):
    sys.exit(f"not a postgres:// URL: {sys.argv[1]}")
for name, value in (("PGHOST", u.hostname), ("PGPORT", u.port),
                    ("PGUSER", u.username and unquote(u.username)),
                    ("PGPASSWORD", u.password and unquote(u.password))):
    if value is not None:
        print(f"export {name}={shlex.quote(str(value))}")
EOF
)"

work=$(mktemp -d)
database="message_db_bench_$$"
cleanup() {
  psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
  if declare -F postgres_stop >/dev/null; then postgres_stop; fi
}
trap cleanup EXIT

(cd "$work" && npm pack --silent "@eventide/message-db@$version" >/dev/null && tar xzf ./*.tgz)
DATABASE_NAME=$database CREATE_DATABASE=on bash "$work/package/database/install.sh" >"$work/install.log" 2>&1 || {
  cat "$work/install.log" >&2
  exit 1
}
installed=$(psql -X -At -d "$database" -c 'SELECT message_store.message_store_version()')
server=$(psql -X -At -d "$database" -c 'SHOW server_version')
echo "# message-db $version (schema $installed) on PostgreSQL $server, ${seconds_each}s per line, $(nproc) cores" >&2

# message-db's functions call each other unqualified: its clients put the schema first.
export PGOPTIONS="-c search_path=message_store,public"

# The message: the README's development, as a client posts it to sitrep.
data='{"type": "forces_entered", "location": "aleppo-south", "occurred_at": "2024-12-01T09:00:00Z", "source": {"name": "HTS military operations command", "kind": "party_statement", "claimant": "hts"}, "data": {"actor": "hts"}}'

for layout in $layouts; do
  case $layout in
    one-category) stream="'situation-' || :client_id" ;;
    own-category) stream="'situation' || :client_id || '-1'" ;;
    *)
      echo "unknown layout $layout (one-category, own-category)" >&2
      exit 2
      ;;
  esac
  printf "SELECT message_store.write_message(gen_random_uuid()::varchar, %s, 'ForcesEntered', '%s'::jsonb);\n" \
    "$stream" "$data" >"$work/write-$layout.sql"
  for clients in $clients_list; do
    threads=$((clients < threads_max ? clients : threads_max))
    out=$(pgbench -n -M prepared -f "$work/write-$layout.sql" -c "$clients" -j "$threads" \
      -T "$seconds_each" "$database" 2>&1) || {
      echo "$out" >&2
      exit 1
    }
    tps=$(awk '/^tps = / {print $3; exit}' <<<"$out")
    latency=$(awk '/^latency average = / {print $4; exit}' <<<"$out")
    failed=$(awk '/^number of failed transactions: / {print $5; exit}' <<<"$out")
    if [[ -z $tps || -z $latency || ${failed:-0} != 0 ]]; then
      echo "$out" >&2
      exit 1
    fi
    printf 'message-db clients=%s streams=%s tps=%.1f latency_ms=%.2f\n' "$clients" "$layout" "$tps" "$latency"
  done
done

written=$(psql -X -At -d "$database" -c 'SELECT count(*) FROM message_store.messages')
echo "# $written messages written" >&2
