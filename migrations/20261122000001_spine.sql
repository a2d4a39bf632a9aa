-- The durable job spine: tenants, API keys and the job ledger.
-- Postgres is the source of truth; Redis only ever holds ids of rows that exist here.

CREATE TABLE tenants (
    id              uuid PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- HMAC secret for outbound webhooks, encrypted (AES-256-GCM, see models::crypto).
    signing_secret  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- First characters of the key, shown in listings so a key can be recognised without storing it.
    prefix      text NOT NULL,
    -- SHA-256 of the whole key. Keys are 190+ bits of randomness, so a fast hash is enough.
    key_hash    bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- failed = the last attempt hit a retryable error and the job waits (run_at) for its next attempt.
-- dead   = a fatal error, or attempts exhausted. Both can be brought back with retry.
CREATE TYPE job_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled');

CREATE TABLE jobs (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid REFERENCES tenants (id) ON DELETE CASCADE,
    kind                 text NOT NULL,
    queue                text NOT NULL,
    args                 jsonb NOT NULL,
    status               job_status NOT NULL DEFAULT 'queued',
    attempt              integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts         integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 1000),
    run_at               timestamptz NOT NULL DEFAULT now(),
    -- When the id was last pushed to Redis; NULL = Redis has not been told (the relay will).
    dispatched_at        timestamptz,
    -- While running: the worker owns the job until then; heartbeats extend it.
    lease_until          timestamptz,
    progress             jsonb,
    result               jsonb,
    last_error           jsonb,
    idempotency_key      text,
    cancel_requested_at  timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    finished_at          timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Idempotent submit: one job per (tenant, key).
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Relay: due, waiting rows per queue.
CREATE INDEX jobs_waiting ON jobs (queue, run_at) WHERE status IN ('queued', 'failed');
-- Relay: running rows whose lease may expire.
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE status = 'running';
-- API listing: a tenant's jobs, newest first (keyset pagination on id, a UUIDv7).
CREATE INDEX jobs_tenant_id ON jobs (tenant_id, id DESC);
