#!/usr/bin/env bash
# Regenerates .sqlx/ (compile-time metadata of every sqlx::query! in models/) against a scratch
# database with the migrations applied (SQLX_PREPARE_DB names it, so two checkouts can prepare at
# once). Run after changing SQL or migrations; commit .sqlx/.
set -euo pipefail
cd "$(dirname "$0")/.."
db="${SQLX_PREPARE_DB:-keel_sqlx_prepare}"
url="postgres://postgres@127.0.0.1:5432/$db"
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
for f in migrations/*.sql; do psql -h 127.0.0.1 -U postgres -d "$db" -q -v ON_ERROR_STOP=1 -f "$f"; done
# sqlx's own bookkeeping table (its DDL in sqlx-postgres), which `keel migrate` reads too.
psql -h 127.0.0.1 -U postgres -d "$db" -q -v ON_ERROR_STOP=1 -c "CREATE TABLE _sqlx_migrations (
  version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
  success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)"
# Write into a fresh folder and swap it in only when the check succeeded, so a failed run never
# leaves .sqlx/ empty.
tmp=$(mktemp -d "$PWD/.sqlx-new.XXXX")
trap 'rm -rf "$tmp"; psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
touch models/src/*.rs
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$tmp" DATABASE_URL="$url" cargo check -p keel-models --all-targets
rm -rf .sqlx && mv "$tmp" .sqlx
echo "wrote $(ls .sqlx | wc -l) query files to .sqlx/"
