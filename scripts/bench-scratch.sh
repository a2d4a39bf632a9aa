# Sourced by the keel-bench benchmarks: `scratch NAME` points keel-bench at a scratch database
# `keel_bench_NAME` and Redis prefix `keelbenchNAME` (emptied first) and a fresh BENCH_OUT
# folder, and removes all three when the script exits, however it exits.
scratch() {
  SCRATCH_DB="keel_bench_$1"; SCRATCH_PREFIX="keelbench$1"
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$SCRATCH_DB" REDIS_URL=redis://127.0.0.1:6379 \
    KEEL_REDIS_PREFIX="$SCRATCH_PREFIX" RUST_LOG="${RUST_LOG:-warn}" BENCH_OUT="$(mktemp -d)"
  scratch_clean
  trap 'scratch_clean; rm -rf "$BENCH_OUT"' EXIT
}

scratch_clean() {
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $SCRATCH_DB WITH (FORCE)" 2>/dev/null || true
  redis-cli --scan --pattern "$SCRATCH_PREFIX:*" | xargs -r redis-cli del >/dev/null
}
