-- One trial per tenant, ever: a row here is a trial the tenant has had (local mode: its
-- checkout granted one; Stripe mode: Stripe reported a subscription with a trial). Unlike
-- billing_subscriptions.trial_end it survives cancelling and subscribing again.
CREATE TABLE billing_trials (
    tenant_id   uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    mode        text NOT NULL CHECK (mode IN ('local', 'stripe')),
    plan_id     text NOT NULL,
    trial_end   timestamptz,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- The trials granted before this table existed.
INSERT INTO billing_trials (tenant_id, mode, plan_id, trial_end)
SELECT tenant_id, mode, plan_id, trial_end FROM billing_subscriptions WHERE trial_end IS NOT NULL
ON CONFLICT DO NOTHING;
