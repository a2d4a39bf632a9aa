-- Scheduled billing tasks (issue #6): per-tenant-period exactly-once keys, tenant
-- notifications (usage statements, billing summaries, expiry notices) with an optional
-- notification URL, and monthly revenue snapshots.

-- The scheduler's exactly-once ledger for work that is per tenant and period rather than per
-- tick (e.g. closing a usage period). Recorded in the transaction that inserts the job, like
-- `schedule_runs`: replicas racing for the same (task, tenant, period) serialise on the primary
-- key and exactly one commits its job.
CREATE TABLE schedule_tenant_runs (
    task          text NOT NULL,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    period_start  timestamptz NOT NULL,
    -- SET NULL: housekeeping deletes old finished jobs, the record must stay. DEFERRABLE: the
    -- key is taken first, with the id of the job inserted right after it.
    job_id        uuid REFERENCES jobs (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task, tenant_id, period_start)
);
CREATE INDEX schedule_tenant_runs_job ON schedule_tenant_runs (job_id) WHERE job_id IS NOT NULL;

-- Where a tenant wants its notifications POSTed (signed like every webhook.deliver).
CREATE TABLE tenant_notification_settings (
    tenant_id   uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    url         text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Everything Keel told a tenant. `subject` names what the notice is about and its threshold
-- (`sub:{tenant}:{period_end}:7d`, `grant:{id}:1d`, a period start, a month): the unique key
-- makes every notice exactly-once however often a task or job runs.
CREATE TABLE notifications (
    id               uuid PRIMARY KEY,            -- UUIDv7: newest-first keyset pages
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind             text NOT NULL,               -- usage_statement, billing_summary, …
    subject          text NOT NULL,
    body             jsonb NOT NULL,
    -- The webhook.deliver job that carried it (no FK: housekeeping deletes old jobs).
    delivery_job_id  uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, kind, subject)
);
CREATE INDEX notifications_tenant ON notifications (tenant_id, id DESC);

-- One row per month, written once by the monthly billing run (the primary key makes a rerun
-- or a racing duplicate a no-op). Amounts in the catalog currency's smallest unit.
CREATE TABLE revenue_snapshots (
    month                 date PRIMARY KEY,       -- first day of the month (UTC)
    currency              text NOT NULL,
    mrr                   bigint NOT NULL,
    arr                   bigint NOT NULL,
    -- {"team": {"active": 3, "trialing": 1}, …}
    active_subscriptions  jsonb NOT NULL,
    churned_30d           bigint NOT NULL,
    overage_revenue       bigint NOT NULL,
    credit_pack_sales     bigint NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now()
);
