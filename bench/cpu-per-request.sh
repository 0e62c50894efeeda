#!/bin/bash
# CPU per SCIM request of one orgsync process, and of PostgreSQL, over one peer-bench workload.
#
#   bench/cpu-per-request.sh [CHECKOUT] WORKLOAD [scim-load.mjs arguments...]
#   bench/cpu-per-request.sh . W1 --n 3000
#   SETUP="--workload W1 --n 1500" bench/cpu-per-request.sh . W2 --lookups 4000
#
# Starts orgsync from CHECKOUT (default: this project) on a fresh database `bench_cpu` with the
# reconciler on, as in production; runs SETUP first, untimed (users to look up, a warm JIT); then
# the workload with ../shared/peer-bench/scim-load.mjs at concurrency 16. It prints the load
# generator's row, the orgsync process's CPU time per request (utime + stime from /proc, each
# thread: the event loop and V8's helpers), that of every PostgreSQL backend alive at the end, and
# that of the load generator (which shares the machine's cores with both).
# Env: EXTRA_ENV (more orgsync settings, e.g. "RECONCILER=false"), NODE_FLAGS (e.g. "--cpu-prof"),
# BUILT=1 (run CHECKOUT's build, dist/main.js, as production does; `npm run build` there first).
# Nothing else should run on the machine meanwhile.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
app=$(cd "${1:-$here}" && pwd)
workload=$2
shift 2
load="$here/../shared/peer-bench/scim-load.mjs"
pg=postgres://postgres@127.0.0.1:5432
state=$(mktemp -u /tmp/cpu-per-request.XXXXXX)
psql -q "$pg/postgres" -c "drop database if exists bench_cpu" -c "create database bench_cpu" >/dev/null 2>&1
settings=(PORT=4451 HOST=127.0.0.1 PUBLIC_URL=http://127.0.0.1:4451 LOG_LEVEL=warn SCIM_RATE_LIMIT=0
  DATABASE_URL=$pg/bench_cpu SERVER_SECRET=bench-secret-0123456789abcdef0123456789abcdef ${EXTRA_ENV:-})
cd "$app"
env "${settings[@]}" npx --no-install orgsync migrate --json >/dev/null
env "${settings[@]}" npx --no-install orgsync org create --slug bench --name Bench --owner-email owner@bench.example --json >/dev/null
token=$(env "${settings[@]}" npx --no-install orgsync scim-token create --org bench --name bench --json |
  node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).token')
entry=(--import tsx src/main.ts)
[ "${BUILT:-}" = 1 ] && entry=(dist/main.js)
# shellcheck disable=SC2086
env "${settings[@]}" node ${NODE_FLAGS:-} "${entry[@]}" >/tmp/cpu-per-request.server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$state" "$state.json"' EXIT
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:4451/healthz && break; sleep 0.2; done

run() { node "$load" --base http://127.0.0.1:4451/scim/v2 --token "$token" --concurrency 16 --state "$state" "$@"; }
threads() { for t in /proc/$server/task/*; do echo "$(basename "$t") $(awk '{print $14 + $15}' "$t/stat")"; done | sort; }
postgres_ticks() {
  local total=0
  for p in $(pgrep -x postgres); do total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$total"
}

if [ -n "${SETUP:-}" ]; then
  # shellcheck disable=SC2086
  run --label setup --quiet $SETUP >/dev/null
fi
threads >"$state.before"
pg_before=$(postgres_ticks)
TIMEFORMAT='%U %S'
{ time run --label orgsync --workload "$workload" --json "$state.json" "$@" 2>&4 | grep '^| orgsync' >&3; } 3>&1 4>&2 2>"$state.load"
threads >"$state.after"
pg_after=$(postgres_ticks)
requests=$(node -pe "JSON.parse(require('fs').readFileSync('$state.json', 'utf8')).results.reduce((n, r) => n + r.requests, 0)")
ticks=$(getconf CLK_TCK)
per_request() { printf "%.3f" "$(echo "scale=6; $1 * 1000 / $ticks / $requests" | bc)"; }
join "$state.before" "$state.after" | awk '{ print $3 - $2 }' >"$state.delta"
echo "orgsync: $(per_request "$(paste -sd+ "$state.delta" | bc)") ms CPU per request" \
  "(event loop $(per_request "$(join "$state.before" "$state.after" | awk -v t="$server" '$1 == t { print $3 - $2 }')") ms)"
echo "PostgreSQL backends: $(per_request $((pg_after - pg_before))) ms CPU per request ($requests requests)"
load_seconds=$(awk '{ print $1 + $2 }' "$state.load")
printf "load generator: %.3f ms CPU per request (its start included)\n" "$(echo "scale=6; $load_seconds * 1000 / $requests" | bc)"
rm -f "$state.before" "$state.after" "$state.delta" "$state.load"
