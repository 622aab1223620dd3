#!/usr/bin/env bash
# Spec conformance: schemathesis (https://schemathesis.readthedocs.io, v4) drives the real
# server with requests generated from api-spec/openapi.yaml -- the spec's examples, boundary
# and invalid values for every parameter and body member, random valid and invalid requests,
# and stateful sequences along the spec's `links` -- and checks every answer against the
# spec: status codes, content types, headers, bodies against their schemas, no 5xx, invalid
# input refused, valid input accepted, methods outside the spec refused with 405 and Allow,
# and what a 201 creates is readable. Settings: .ci/schemathesis.toml; sitrep's own checks
# (the live feed's events, state-dependent refusals): .ci/schemathesis_hooks.py.
#
#   bash .ci/schemathesis.sh                       # what CI runs (about 2 minutes)
#   SITREP_ST_EXAMPLES=300 bash .ci/schemathesis.sh   # more cases per operation
#   SITREP_ST_SEED=1234 bash .ci/schemathesis.sh      # replay the seed a failed run printed
#
# The server runs open (no tokens), as any unauthenticated server must: on a loopback
# address, with the demo scenario in a fresh temporary data directory, signing checkpoints
# with a key made for the run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

examples=${SITREP_ST_EXAMPLES:-100}
seed=${SITREP_ST_SEED:-}

if ! python3 -c 'import schemathesis' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check schemathesis
fi
st=(python3 -m schemathesis.cli)
echo "== schemathesis $("${st[@]}" --version | awk '{print $NF}')"

cargo build --quiet

work=$(mktemp -d)
server_pid=
cleanup() {
  local rc=$?
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if ((rc != 0)) && [[ -s $work/server.log ]]; then
    echo "== the server's log (last 40 lines)"
    tail -n 40 "$work/server.log"
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
mkdir "$work/data" "$work/run"
# With a signing key, so GET /v1/audit/checkpoint answers its checkpoint.
target/debug/sitrep key new --name ci.example/sitrep --out "$work/log.key" >/dev/null 2>&1
RUST_LOG=${RUST_LOG:-warn} target/debug/sitrep serve --demo --listen "127.0.0.1:$port" \
  --data-dir "$work/data" --signing-key "$work/log.key" --min-seq-wait 0.01 >"$work/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 100); do
  if curl -fsS "$base/healthz" >/dev/null 2>&1; then
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the server exited before it was healthy" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fsS "$base/healthz" >/dev/null || { echo "the server is not healthy after 20 s" >&2; exit 1; }
echo "== sitrep serve --demo on $base"

# Phases: examples (the spec's own), coverage (boundaries and invalid values, unexpected
# methods), fuzzing (random valid and invalid requests), stateful (sequences along the
# spec's `links`: append then read the event and prove it, page on, head then proofs, ...).
# GET /v1/events/stream is tested too: schemathesis reads at most 3 events or 1 s of it
# (.ci/schemathesis.toml), so the endless stream cannot hang the run.
args=(
  --config-file "$root/.ci/schemathesis.toml"
  run "$root/api-spec/openapi.yaml"
  --url "$base"
  --phases examples,coverage,fuzzing,stateful
  --max-examples "$examples"
  --workers 2
  --request-timeout 10
  --no-color
)
if [[ -n $seed ]]; then
  args+=(--seed "$seed")
fi
echo "== schemathesis ${args[*]}"
# The hooks file registers the custom checks; run from a scratch directory so nothing
# (hypothesis database, reports) lands in the repository.
status=0
(cd "$work/run" && SCHEMATHESIS_HOOKS="$root/.ci/schemathesis_hooks.py" timeout 600 "${st[@]}" "${args[@]}") ||
  status=$?

# Bad input must never panic the server, not even in a task whose response had already
# started (a live feed answers 200 before it reads the store), which no answer shows.
if grep -q 'panicked at' "$work/server.log"; then
  echo "== the server panicked during the run:" >&2
  grep -A1 'panicked at' "$work/server.log" | grep -v '^--$' >&2
  status=1
fi

# After all that, the server is up and its log intact: every hash and link re-checked.
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "== the server died during the run" >&2
  status=1
elif ! verify=$(curl -fsS "$base/v1/audit/verify") ||
  ! python3 -c 'import json, sys; sys.exit(json.loads(sys.argv[1]).get("ok") is not True)' "$verify"; then
  echo "== GET /v1/audit/verify after the run: ${verify:-no answer}" >&2
  status=1
else
  echo "== GET /v1/audit/verify after the run: $verify"
fi
exit "$status"
