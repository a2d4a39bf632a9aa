#!/usr/bin/env bash
# Benchmark (not a test) of the durable drain alone: N noop jobs written to a scratch ledger with
# one INSERT … SELECT, then one `keel-bench work CONC` worker (the real Worker: relay, guarded
# start and finish, heartbeats) until every row is `succeeded`. Prints jobs/s and the worker's
# peak RSS.
#   usage: bash scripts/bench-drain.sh [N=20000] [CONC=8]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-20000}"; CONC="${2:-8}"
bash scripts/services.sh
cargo build --release --bin keel-bench -q
. scripts/bench-scratch.sh
scratch drain
DB=$SCRATCH_DB
# The first start creates the database and applies migrations.
timeout 20 target/release/keel-bench work 1 & W=$!; sleep 2; kill $W; wait $W 2>/dev/null || true
psql -h 127.0.0.1 -U postgres -d $DB -qc "TRUNCATE jobs CASCADE; INSERT INTO jobs (id, kind, queue, args, max_attempts)
  SELECT gen_random_uuid(), 'bench.noop', 'default', jsonb_build_object('n', g), 10 FROM generate_series(1, $N) g;"
psql -h 127.0.0.1 -U postgres -d $DB -qc "VACUUM ANALYZE jobs"
t0=$(date +%s.%N)
target/release/keel-bench work "$CONC" & W=$!
until [ "$(psql -h 127.0.0.1 -U postgres -d $DB -tAc "SELECT count(*) FROM jobs WHERE status = 'succeeded'")" -ge "$N" ]; do sleep 0.2; done
t1=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$W/status")
kill $W; wait $W 2>/dev/null || true
python3 -c "print(f'durable drain: $N jobs, concurrency $CONC: {$N/($t1-$t0):.0f} jobs/s (worker start included); worker peak RSS {$hwm/1024:.1f} MB')"
