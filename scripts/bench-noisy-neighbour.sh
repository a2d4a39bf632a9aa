#!/usr/bin/env bash
# Issue 22's noisy-neighbour benchmark: `keel up` (16 worker slots) on a scratch database; tenant
# A submits 800 webhook.deliver jobs to a receiver that takes 0.5 s each, then tenant B submits
# 20 noop jobs, one a second while A's backlog drains; prints how long each of B's jobs took from submit to end.
#
#   scripts/bench-noisy-neighbour.sh [path/to/keel] [NOISY=800] [QUIET=20] [DELAY=0.5]
#
# Request-rate limits and metering are off (they are not what is measured), private networks
# on (the receiver is on loopback). Removes its database and Redis keys afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
keel="${1:-}"
if [ -z "$keel" ]; then
  cargo build --release --locked --bin keel
  keel="${CARGO_TARGET_DIR:-target}/release/keel"
fi
db="keel_bench_noisy"
prefix="keel-bench-noisy-$$"
port="${BENCH_PORT:-18490}"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" REDIS_URL="redis://127.0.0.1:6379"
export KEEL_REDIS_PREFIX="$prefix" RUST_LOG=warn KEEL_API_ADDR="127.0.0.1:$port"
export KEEL_ADMIN_TOKEN="bench-admin-token-0123456789" KEEL_RATE_LIMITS=false KEEL_METERING=false
export KEEL_ALLOW_PRIVATE_NETWORKS=true KEEL_WORKER_CONCURRENCY=16
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; sleep 2; kill -9 "$pid" 2>/dev/null || true; fi
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli --scan --pattern "$prefix*" | xargs -r redis-cli del >/dev/null
}
trap cleanup EXIT
"$keel" up >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done
echo "keel: $keel ($(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1))"
python3 scripts/bench_noisy_neighbour.py "$port" "$KEEL_ADMIN_TOKEN" "${2:-800}" "${3:-20}" "${4:-0.5}"
