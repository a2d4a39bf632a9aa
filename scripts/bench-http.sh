#!/usr/bin/env bash
# Benchmark of the durable HTTP submit path (not a test): `keel api` (release build) on a
# scratch database, `wrk` with 8 connections POSTing noop jobs for SECS seconds. Every 202 means
# the job's row was committed to Postgres (and its id pushed to Redis). No worker runs, so the
# submit path is measured alone, as the queue benchmark measures enqueue alone. Plan request-rate
# limits are off (KEEL_RATE_LIMITS=false): they would cap the bench tenant at its plan's rate,
# and this measures the capacity of the path, not a plan. noop is not metered either way.
# With BATCH=n in the environment it POSTs /api/jobs/batch with n noop jobs per request instead.
#   usage: [BATCH=n] bash scripts/bench-http.sh [SECS=10] [CONNECTIONS=8]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"; CONNS="${2:-8}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
bash scripts/services.sh
cargo build --release --bin keel -q
DB=keel_bench_http
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" KEEL_REDIS_PREFIX=keelbenchhttp \
  KEEL_API_ADDR=127.0.0.1:18080 KEEL_ADMIN_TOKEN=bench-admin-token-0123 RUST_LOG=warn \
  KEEL_REDIS_WINDOW=10000000 KEEL_RATE_LIMITS=false
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB" >/dev/null
redis-cli --scan --pattern 'keelbenchhttp:*' | xargs -r redis-cli del >/dev/null
target/release/keel migrate >/dev/null
target/release/keel api & API=$!
trap 'kill $API 2>/dev/null; wait $API 2>/dev/null; redis-cli --scan --pattern "keelbenchhttp:*" | xargs -r redis-cli del >/dev/null; psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
for _ in $(seq 50); do curl -sf localhost:18080/health >/dev/null && break; sleep 0.1; done
KEEL_KEY=$(curl -sf -X POST localhost:18080/api/tenants -H "Authorization: Bearer $KEEL_ADMIN_TOKEN" \
  -H 'Content-Type: application/json' -d '{"name":"bench"}' | sed 's/.*"api_key":"\([^"]*\)".*/\1/')
export KEEL_KEY
if [ -n "${BATCH:-}" ]; then
  export BATCH
  wrk -t 2 -c "$CONNS" -d "${SECS}s" --latency -s scripts/wrk-batch.lua http://127.0.0.1:18080/api/jobs/batch
else
  wrk -t 2 -c "$CONNS" -d "${SECS}s" --latency -s scripts/wrk-submit.lua http://127.0.0.1:18080/api/jobs
fi
echo "jobs in the ledger: $(psql -h 127.0.0.1 -U postgres -d $DB -tAc 'SELECT count(*) FROM jobs')"
echo "peak API RSS (MB): $(awk '/VmHWM/ {print $2/1024}' /proc/$API/status)"
