#!/usr/bin/env bash
# Benchmark (not a test) of durable pick-up latency alone, the third phase of the queue benchmark
# without the rest: one `keel-bench work CONC` worker (the real Worker), then `keel-bench produce
# RATE SECS` submitting through the API's submit path at a fixed rate. Latency = handler start −
# the time taken before the submit; the first second is dropped, as in ../shared/peers.
#   usage: bash scripts/bench-latency.sh [RATE=200] [SECS=6] [CONC=8]
#   env:   KEEL_BENCH_MODE=queue measures the Redis fast lane alone
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${1:-200}"; SECS="${2:-6}"; CONC="${3:-8}"
bash scripts/services.sh
cargo build --release --bin keel-bench -q
. scripts/bench-scratch.sh
scratch latency
target/release/keel-bench work "$CONC" & W=$!
sleep 2 # the first start creates the database and applies migrations
target/release/keel-bench produce "$RATE" "$SECS" >/dev/null
sleep 1
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$W/status")
kill $W; wait $W 2>/dev/null || true
cat "$BENCH_OUT"/*.txt | python3 -c "
import sys
rows = [tuple(map(int, l.split())) for l in sys.stdin if l.strip()]
t0 = min(ts for _, _, ts in rows)
lat = sorted((s - ts) / 1e6 for s, _, ts in rows if ts and ts - t0 >= 1e9)
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f'pick-up latency at $RATE/s ({len(rows)} jobs, {len(lat)} after the first second): '
      f'p50 {q(0.5):.2f} ms, p90 {q(0.9):.2f} ms, p99 {q(0.99):.2f} ms; worker peak RSS {$hwm/1024:.1f} MB')
"
