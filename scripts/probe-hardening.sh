#!/usr/bin/env bash
# Reproduces the four failures issue 23 measured black-box and prints each figure: a flooded
# Stripe signature (time to answer, /health worst case), 40 and 200 concurrent metered submits
# (status codes, another tenant's read latency), 1,000 connections stalled mid-header
# (connections closed), and the Dockerfile's defaults (the public admin token off loopback).
#
#   scripts/probe-hardening.sh [path/to/keel]     # default: a release build of this checkout
#
# Runs `keel up` on a scratch database and Redis prefix on this machine's Postgres and Redis,
# and removes both afterwards. Figures depend on the machine: compare runs on one machine.
set -euo pipefail
cd "$(dirname "$0")/.."
keel="${1:-}"
if [ -z "$keel" ]; then
  cargo build --release --locked --bin keel
  keel="${CARGO_TARGET_DIR:-target}/release/keel"
fi
db="keel_probe_hardening"
prefix="keel-probe-$$"
port="${PROBE_PORT:-18480}"
log="$(mktemp)"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" REDIS_URL="redis://127.0.0.1:6379"
export KEEL_REDIS_PREFIX="$prefix" RUST_LOG=warn
pid=""
# SIGTERM, then SIGKILL: a process whose one runtime thread is stuck (the unbounded flood, on
# an old binary) never gets to its shutdown.
stop() {
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  [ -n "$pid" ] && stop "$pid"
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  redis-cli --scan --pattern "$prefix*" | xargs -r redis-cli del >/dev/null
  rm -f "$log"
}
trap cleanup EXIT
ulimit -n 8192 2>/dev/null || true

# Waits for /health; returns 1 if keel exited first.
up() {
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

echo "keel: $keel"
# 4. The Dockerfile's defaults: every interface, KEEL_ENV and the secrets unset.
KEEL_API_ADDR="0.0.0.0:$port" "$keel" up >"$log" 2>&1 &
pid=$!
if up; then
  status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/api/tenants" \
    -H 'Authorization: Bearer keel-dev-admin-token' -H 'Content-Type: application/json' \
    -d '{"name":"anyone"}')
  echo "4. Dockerfile defaults (0.0.0.0, no secrets): started; POST /api/tenants with the public development token -> $status"
  stop "$pid"
else
  wait "$pid" 2>/dev/null && code=0 || code=$?
  echo "4. Dockerfile defaults (0.0.0.0, no secrets): refused to start, exit $code: $(grep -m1 -i 'keel_admin_token' "$log" || tail -1 "$log")"
fi
pid=""

# 1-3 on loopback, with a webhook secret, metering on and request-rate limits off (so the
# submits reach the database rather than the rate limiter).
export KEEL_API_ADDR="127.0.0.1:$port" KEEL_ADMIN_TOKEN="probe-admin-token-0123456789"
export KEEL_STRIPE_WEBHOOK_SECRETS="whsec_probe" KEEL_METERING=true KEEL_RATE_LIMITS=false
"$keel" up >"$log" 2>&1 &
pid=$!
up || { echo "keel did not start:"; cat "$log"; exit 1; }
python3 scripts/probe_hardening.py "127.0.0.1:$port" "$KEEL_ADMIN_TOKEN" whsec_probe
