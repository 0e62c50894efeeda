#!/bin/bash
# Creates and deactivations sent at once, as an IdP's reorganization sends them: two load
# generators (../shared/peer-bench/scim-load.mjs) at concurrency 8 each, one creating new users
# (W1), one deactivating users created just before (W5), against one orgsync process on a fresh
# database `bench_mixed` with the reconciler on. Prints each generator's row (errors, p99), the
# deadlocks PostgreSQL settled meanwhile, and whether the counters still sum to the rows.
#
#   bench/mixed-burst.sh [CHECKOUT] [N]      (CHECKOUT's build, dist/main.js: `npm run build` there first)
#
# Nothing else should run on the machine meanwhile.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
app=$(cd "${1:-$here}" && pwd)
n=${2:-3000}
load="$here/../shared/peer-bench/scim-load.mjs"
pg=postgres://postgres@127.0.0.1:5432
state=$(mktemp -u /tmp/mixed-burst.XXXXXX)
psql -q "$pg/postgres" -c "drop database if exists bench_mixed" -c "create database bench_mixed" >/dev/null 2>&1
settings=(PORT=4453 HOST=127.0.0.1 PUBLIC_URL=http://127.0.0.1:4453 LOG_LEVEL=warn SCIM_RATE_LIMIT=0
  DATABASE_URL=$pg/bench_mixed SERVER_SECRET=bench-secret-0123456789abcdef0123456789abcdef)
cd "$app"
env "${settings[@]}" npx --no-install orgsync migrate --json >/dev/null
env "${settings[@]}" npx --no-install orgsync org create --slug bench --name Bench --owner-email owner@bench.example --json >/dev/null
token=$(env "${settings[@]}" npx --no-install orgsync scim-token create --org bench --name bench --json |
  node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).token')
env "${settings[@]}" node dist/main.js >/tmp/mixed-burst.server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$state".*' EXIT
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:4453/healthz && break; sleep 0.2; done

run() { node "$load" --base http://127.0.0.1:4453/scim/v2 --token "$token" --quiet "$@"; }
deadlocks() { psql -Atc "select deadlocks from pg_stat_database where datname = 'bench_mixed'" "$pg/postgres"; }
run --workload W1 --n "$n" --state "$state.deactivated" >/dev/null
before=$(deadlocks)
run --workload W1 --n "$n" --concurrency 8 --state "$state.created" --label creates | grep '^| creates' &
creates=$!
run --workload W5 --deprovision "$n" --concurrency 8 --state "$state.deactivated" --label deactivations | grep '^| deactivations'
wait $creates
echo "deadlocks: $(($(deadlocks) - before)); HTTP 500s logged: $(grep -c '"SCIM request failed"' /tmp/mixed-burst.server.log || true)"
psql -At "$pg/bench_mixed" -c "
  select 'counters sum to the rows: ' || ((select sum(n) from member_counts) = (select count(*) from memberships where list_tab is not null)
    and (select sum(n) from scim_user_counts) = (select count(*) from scim_users))"
