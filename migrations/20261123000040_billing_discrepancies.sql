-- Daily Stripe reconciliation (issue #5): every field where Keel's copy of a Stripe
-- subscription disagreed with Stripe, as found and fixed by the `stripe.reconcile` job.
-- Append-only: one row per field per run that found it, so operators can see how often
-- (and why) webhooks left Keel behind.
CREATE TABLE billing_discrepancies (
    id                      bigserial PRIMARY KEY,
    tenant_id               uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    stripe_subscription_id  text NOT NULL,
    -- status, plan, billing_interval, current_period_start, current_period_end,
    -- cancel_at_period_end
    field                   text NOT NULL,
    local_value             jsonb NOT NULL,
    stripe_value            jsonb NOT NULL,
    detected_at             timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX billing_discrepancies_tenant ON billing_discrepancies (tenant_id, detected_at DESC);
