#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: formatting, clippy with warnings as errors, then
# every unit and integration test against this machine's real PostgreSQL and Redis (each test
# makes its own database and Redis key prefix and removes them afterwards; the last step checks
# that the run left none behind).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh

# Test databases and Redis keys that exist now: only ones this run adds count as left behind.
leftovers() {
  {
    psql -h 127.0.0.1 -U postgres -Atc "SELECT 'database ' || datname FROM pg_database WHERE datname LIKE 'keel\_test%' OR datname = 'keel'"
    redis-cli -h 127.0.0.1 -p 6379 --scan --pattern 'keel-test*' | sed 's/^/redis key /'
  } | sort
}
before="$(leftovers)"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast

left="$(comm -13 <(echo "$before") <(leftovers))"
if [ -n "$left" ]; then
  echo "the tests passed but left these behind:" >&2
  echo "$left" >&2
  exit 1
fi
echo "nothing left behind: 0 test databases, 0 test Redis keys"
