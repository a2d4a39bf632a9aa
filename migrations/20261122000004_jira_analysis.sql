-- Jira delivery-risk analysis: a tenant's Jira connection, its risk settings, every analysis
-- ever made (history and trends), and the usage each successful analysis records.

-- One Jira Cloud site per tenant. The API token is sealed with AES-256-GCM under a key id
-- (models::crypto::SecretBox), so it can be read back by workers and keys can be rotated.
CREATE TABLE tenant_jira (
    tenant_id      uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    base_url       text NOT NULL,
    email          text NOT NULL,
    token_sealed   text NOT NULL,
    -- Who the token belongs to, as Jira's /myself answered when the connection was checked.
    account_id     text NOT NULL,
    display_name   text,
    connected_at   timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- The tenant's knobs of the risk engine (keel_risk::Settings as JSON). No row = defaults.
CREATE TABLE tenant_risk_settings (
    tenant_id   uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    settings    jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every issue assessment, whether it came from an issue, sprint or portfolio job. One row per
-- (job, issue): a retried or redelivered job rewrites its own rows instead of adding more.
CREATE TABLE analysis_history (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    job_id            uuid NOT NULL,
    source            text NOT NULL CHECK (source IN ('issue', 'sprint', 'portfolio')),
    issue_key         text NOT NULL,
    project           text NOT NULL,
    risk_score        smallint NOT NULL CHECK (risk_score BETWEEN 0 AND 100),
    risk_level        text NOT NULL,
    daily_cost        double precision NOT NULL,
    blocker_count     integer NOT NULL,
    negative_share    double precision NOT NULL,
    age_days          double precision NOT NULL,
    result            jsonb NOT NULL,
    analyzed_at       timestamptz NOT NULL,
    UNIQUE (job_id, issue_key)
);
CREATE INDEX analysis_history_issue ON analysis_history (tenant_id, issue_key, analyzed_at DESC, id DESC);

-- Append-only usage ledger: one row per successful job, keyed by the job so a retried or twice
-- delivered job can never record twice. Billing (plans, quotas) builds on these rows.
CREATE TABLE usage_events (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    job_id       uuid NOT NULL UNIQUE,
    kind         text NOT NULL,
    units        integer NOT NULL CHECK (units >= 0),
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_events_tenant ON usage_events (tenant_id, recorded_at);
