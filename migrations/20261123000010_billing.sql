-- Billing (issue #5): Stripe events (inbox), per-object ordering, subscriptions, customers,
-- invoices, purchases and credit grants. Every Stripe-derived row is written by the
-- `stripe.event` job from a stored event, never straight from a webhook request.

-- The inbox: one row per Stripe event id, inserted with its processing job in one transaction.
CREATE TABLE stripe_events (
    id            text PRIMARY KEY,                -- evt_…
    -- Arrival order, for newest-first keyset pages.
    seq           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    type          text NOT NULL,
    api_version   text,
    -- Stripe's `created` (unix seconds → timestamptz): orders events per object.
    created       timestamptz NOT NULL,
    livemode      boolean NOT NULL DEFAULT false,
    payload       jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'received'
                  CHECK (status IN ('received', 'processed', 'ignored', 'skipped_stale', 'failed')),
    error         text,
    -- The newest processing job (a replay enqueues another).
    job_id        uuid,
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz
);
CREATE INDEX stripe_events_status ON stripe_events (status, seq DESC);
CREATE INDEX stripe_events_type ON stripe_events (type, seq DESC);

-- The newest event applied per Stripe object (sub_…, in_…, cus_…, cs_…). An event older than
-- this, by (created, event id), changes nothing: Stripe does not deliver in order.
CREATE TABLE stripe_object_versions (
    object_id      text PRIMARY KEY,
    event_created  timestamptz NOT NULL,
    event_id       text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- A tenant's Stripe customer.
CREATE TABLE billing_customers (
    tenant_id           uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    stripe_customer_id  text NOT NULL UNIQUE,
    email               text,
    name                text,
    deleted_at          timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- A tenant's subscription (none = the catalog's free plan). `mode` says who owns it: 'local'
-- (applied by Keel without Stripe) or 'stripe' (mirrored from Stripe events).
CREATE TABLE billing_subscriptions (
    tenant_id               uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    mode                    text NOT NULL CHECK (mode IN ('local', 'stripe')),
    plan_id                 text NOT NULL,
    billing_interval        text NOT NULL CHECK (billing_interval IN ('month', 'year')),
    -- Stripe's statuses: trialing, active, past_due, canceled, unpaid, incomplete, …
    status                  text NOT NULL,
    add_ons                 text[] NOT NULL DEFAULT '{}',
    current_period_start    timestamptz,
    current_period_end      timestamptz,
    cancel_at_period_end    boolean NOT NULL DEFAULT false,
    canceled_at             timestamptz,
    ended_at                timestamptz,
    trial_end               timestamptz,
    stripe_customer_id      text,
    stripe_subscription_id  text UNIQUE,
    catalog_version         integer NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_subscriptions_customer ON billing_subscriptions (stripe_customer_id);

CREATE TABLE billing_invoices (
    id                      text PRIMARY KEY,     -- in_… (Stripe) or inv_local_… (local mode)
    tenant_id               uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    stripe_subscription_id  text,
    number                  text,
    status                  text NOT NULL,        -- draft, open, paid, uncollectible, void
    amount_due              bigint NOT NULL,
    amount_paid             bigint NOT NULL,
    currency                text NOT NULL,
    description             text,
    period_start            timestamptz,
    period_end              timestamptz,
    hosted_invoice_url      text,
    payment_failed_at       timestamptz,
    paid_at                 timestamptz,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_invoices_tenant ON billing_invoices (tenant_id, created_at DESC);

-- What a tenant bought: a credit pack or a subscription checkout. A Stripe checkout session
-- yields at most one purchase (its id is unique), so a redelivered event grants nothing twice.
CREATE TABLE billing_purchases (
    id                          uuid PRIMARY KEY,
    tenant_id                   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind                        text NOT NULL CHECK (kind IN ('credit_pack', 'subscription')),
    item_id                     text NOT NULL,     -- credit pack id or plan id
    amount                      bigint NOT NULL CHECK (amount >= 0),
    currency                    text NOT NULL,
    source                      text NOT NULL CHECK (source IN ('local', 'stripe')),
    stripe_checkout_session_id  text UNIQUE,
    created_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_purchases_tenant ON billing_purchases (tenant_id, created_at DESC);

-- Prepaid units. Metering consumes `remaining` oldest expiry first (index below), under a row
-- lock; expired grants are simply never picked.
CREATE TABLE billing_credit_grants (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    purchase_id  uuid NOT NULL UNIQUE REFERENCES billing_purchases (id) ON DELETE CASCADE,
    pack_id      text NOT NULL,
    units        bigint NOT NULL CHECK (units > 0),
    remaining    bigint NOT NULL CHECK (remaining BETWEEN 0 AND units),
    granted_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL CHECK (expires_at > granted_at)
);
CREATE INDEX billing_credit_grants_spend ON billing_credit_grants (tenant_id, expires_at)
    WHERE remaining > 0;
