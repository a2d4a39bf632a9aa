#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: formatting, clippy with warnings as errors, then
# every unit and integration test against this machine's real PostgreSQL and Redis (each test
# makes its own database and Redis key prefix and removes them afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast
