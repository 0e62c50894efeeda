#!/bin/bash
# The bare HTTP floor (bench/floor-server.mjs) against the raw PostgreSQL ceiling
# (../shared/peer-bench/pg-ceiling.mjs), alternately in one sitting: how much of the ceiling any
# Node HTTP service can reach on this machine, with the same load generator at concurrency 16.
#
#   bench/floor-vs-ceiling.sh [REPS]      (default 2; nothing else may run meanwhile)
#
# Prints each run's rows: the ceiling's C1 insert, C2 select and C3 update, and the floor's W1
# create, W2 lookup and W5 deactivate (5,000 creates and lookups, 1,000 deactivations, as the
# peer bench runs them).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
peers="$here/../shared/peer-bench"
pg=postgres://postgres@127.0.0.1:5432
for rep in $(seq "${1:-2}"); do
  psql -q "$pg/postgres" -c "drop database if exists bench_ceiling" -c "create database bench_ceiling" 2>/dev/null
  node "$peers/pg-ceiling.mjs" --db "$pg/bench_ceiling" --concurrency 16 --preload-total 0 --label "ceiling r$rep" |
    grep -E '^\| ceiling'
  psql -q "$pg/postgres" -c "drop database if exists bench_floor" -c "create database bench_floor" 2>/dev/null
  node "$here/bench/floor-server.mjs" --db "$pg/bench_floor" --port 4461 &
  floor=$!
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:4461/ && break; sleep 0.1; done
  state=$(mktemp -u /tmp/floor-vs-ceiling.XXXXXX)
  node "$peers/scim-load.mjs" --base http://127.0.0.1:4461/scim/v2 --token x --concurrency 16 --state "$state" \
    --label "floor r$rep" --workload W1,W2,W5 --n 5000 --lookups 5000 --deprovision 1000 | grep -E '^\| floor'
  kill "$floor"
  wait "$floor" 2>/dev/null || true
  rm -f "$state"
done
