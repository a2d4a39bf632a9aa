-- Metering (issue #5): a job's units are reserved at submit, in the transaction that inserts the
-- job; consumed when it succeeds; released when it ends dead or cancelled. Settlement happens in
-- a trigger on the job's status change, i.e. in the very transaction that finishes the job, so
-- no crash, retry or duplicate delivery can settle a job twice or not at all.

-- One row per tenant and billing period: the allowance and what is used and held of it.
CREATE TABLE usage_periods (
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    period_start       timestamptz NOT NULL,
    period_end         timestamptz NOT NULL CHECK (period_end > period_start),
    plan_id            text NOT NULL,
    included_units     bigint NOT NULL CHECK (included_units >= 0),
    -- Units taken from the plan's allowance, from credits and as overage: consumed (jobs that
    -- succeeded) and reserved (jobs not finished yet).
    used_included      bigint NOT NULL DEFAULT 0,
    reserved_included  bigint NOT NULL DEFAULT 0,
    used_credits       bigint NOT NULL DEFAULT 0,
    reserved_credits   bigint NOT NULL DEFAULT 0,
    used_overage       bigint NOT NULL DEFAULT 0,
    reserved_overage   bigint NOT NULL DEFAULT 0,
    -- Set by the period rollover once the period is closed and its overage reported.
    closed_at          timestamptz,
    PRIMARY KEY (tenant_id, period_start)
);

-- Jobs per kind in a period, for the plan's per-kind monthly limits.
CREATE TABLE usage_period_kinds (
    tenant_id     uuid NOT NULL,
    period_start  timestamptz NOT NULL,
    kind          text NOT NULL,
    used          bigint NOT NULL DEFAULT 0,
    reserved      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, period_start, kind),
    FOREIGN KEY (tenant_id, period_start) REFERENCES usage_periods ON DELETE CASCADE
);

-- One row per metered job: where its units came from, and whether they are still held.
-- No foreign key to jobs: housekeeping deletes old jobs, the usage record stays.
CREATE TABLE usage_reservations (
    job_id         uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    period_start   timestamptz NOT NULL,
    kind           text NOT NULL,
    units          bigint NOT NULL CHECK (units >= 0),
    from_included  bigint NOT NULL CHECK (from_included >= 0),
    from_credits   bigint NOT NULL CHECK (from_credits >= 0),
    from_overage   bigint NOT NULL CHECK (from_overage >= 0),
    -- [{"grant_id": "...", "units": n}]: returned to these grants if the job is released.
    credit_grants  jsonb NOT NULL DEFAULT '[]',
    state          text NOT NULL DEFAULT 'reserved' CHECK (state IN ('reserved', 'consumed', 'released')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    settled_at     timestamptz,
    CHECK (from_included + from_credits + from_overage = units),
    FOREIGN KEY (tenant_id, period_start) REFERENCES usage_periods ON DELETE CASCADE
);
CREATE INDEX usage_reservations_period ON usage_reservations (tenant_id, period_start);

-- Settles a job's reservation when the job finishes. `succeeded` consumes; `dead`/`cancelled`
-- release (credits go back to their grants). A job retried after it was released and then
-- succeeding is still metered: its units count as used allowance (they may exceed it).
CREATE FUNCTION keel_settle_usage() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r usage_reservations%ROWTYPE;
    g jsonb;
BEGIN
    SELECT * INTO r FROM usage_reservations WHERE job_id = NEW.id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF NEW.status = 'succeeded' THEN
        IF r.state = 'reserved' THEN
            UPDATE usage_periods SET
                used_included = used_included + r.from_included,
                reserved_included = reserved_included - r.from_included,
                used_credits = used_credits + r.from_credits,
                reserved_credits = reserved_credits - r.from_credits,
                used_overage = used_overage + r.from_overage,
                reserved_overage = reserved_overage - r.from_overage
            WHERE tenant_id = r.tenant_id AND period_start = r.period_start;
            UPDATE usage_period_kinds SET used = used + 1, reserved = reserved - 1
            WHERE tenant_id = r.tenant_id AND period_start = r.period_start AND kind = r.kind;
        ELSIF r.state = 'released' THEN
            UPDATE usage_periods SET used_included = used_included + r.units
            WHERE tenant_id = r.tenant_id AND period_start = r.period_start;
            UPDATE usage_period_kinds SET used = used + 1
            WHERE tenant_id = r.tenant_id AND period_start = r.period_start AND kind = r.kind;
        ELSE
            RETURN NULL; -- consumed already
        END IF;
        UPDATE usage_reservations SET state = 'consumed', settled_at = now() WHERE job_id = NEW.id;
    ELSIF r.state = 'reserved' THEN
        UPDATE usage_periods SET
            reserved_included = reserved_included - r.from_included,
            reserved_credits = reserved_credits - r.from_credits,
            reserved_overage = reserved_overage - r.from_overage
        WHERE tenant_id = r.tenant_id AND period_start = r.period_start;
        UPDATE usage_period_kinds SET reserved = reserved - 1
        WHERE tenant_id = r.tenant_id AND period_start = r.period_start AND kind = r.kind;
        FOR g IN SELECT * FROM jsonb_array_elements(r.credit_grants) LOOP
            UPDATE billing_credit_grants
            SET remaining = LEAST(units, remaining + (g->>'units')::bigint)
            WHERE id = (g->>'grant_id')::uuid;
        END LOOP;
        UPDATE usage_reservations SET state = 'released', settled_at = now() WHERE job_id = NEW.id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_settle_usage
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'dead', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION keel_settle_usage();
