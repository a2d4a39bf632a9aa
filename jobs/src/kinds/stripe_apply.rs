//! How each Stripe event type changes Keel's billing records (called by `stripe.event`
//! inside its transaction, with the event row locked).

use chrono::{DateTime, Utc};
use keel_billing::stripe::{self as s, CREDIT_PACK_KEY, PLAN_KEY, TENANT_KEY};
use keel_billing::{Catalog, PriceRef};
use keel_models::billing::events::{claim_version, StripeEvent};
use keel_models::billing::from_unix;
use keel_models::billing::ledger::{self, CreditGrant, Invoice, Purchase};
use keel_models::billing::subscriptions::{self as subs, SubscriptionState};
use keel_models::billing::trials;
use keel_models::PgConnection;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use uuid::Uuid;

pub enum Outcome {
    Applied(Value),
    Ignored(String),
    Stale(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Cannot be applied as it is (unreadable payload, a price not in the catalog).
    #[error("{0}")]
    Invalid(String),
    /// No Keel tenant for it yet; the event that links one may still arrive.
    #[error("{0}")]
    Unresolved(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

type Result<T> = std::result::Result<T, ApplyError>;

fn parse<T: DeserializeOwned>(event: &StripeEvent) -> Result<T> {
    serde_json::from_value(event.payload["data"]["object"].clone())
        .map_err(|e| ApplyError::Invalid(format!("{} data.object cannot be read: {e}", event.kind)))
}

fn ts(secs: Option<i64>) -> Option<DateTime<Utc>> {
    secs.and_then(from_unix)
}

/// A tenant id from metadata or `client_reference_id`, if it names an existing tenant.
async fn named_tenant(conn: &mut PgConnection, raw: Option<&String>) -> Result<Option<Uuid>> {
    let Some(id) = raw.and_then(|r| Uuid::parse_str(r).ok()) else {
        return Ok(None);
    };
    Ok(subs::tenant_exists(conn, id).await?.then_some(id))
}

fn stale(event: &StripeEvent, object: &str) -> Outcome {
    Outcome::Stale(format!(
        "a newer event than {} ({}) was already applied to {object}",
        event.id, event.created
    ))
}

pub async fn apply(
    conn: &mut PgConnection,
    catalog: &Catalog,
    event: &StripeEvent,
) -> Result<Outcome> {
    match event.kind.as_str() {
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted"
        | "customer.subscription.trial_will_end" => subscription(conn, catalog, event).await,
        "invoice.paid"
        | "invoice.payment_succeeded"
        | "invoice.payment_failed"
        | "invoice.finalized" => invoice(conn, event).await,
        "checkout.session.completed" => checkout(conn, catalog, event).await,
        "customer.updated" | "customer.deleted" => customer(conn, event).await,
        other => Ok(Outcome::Ignored(format!(
            "event type {other} is not handled"
        ))),
    }
}

async fn subscription(
    conn: &mut PgConnection,
    catalog: &Catalog,
    event: &StripeEvent,
) -> Result<Outcome> {
    let sub: s::Subscription = parse(event)?;
    let customer = sub.customer.id().to_string();
    let tenant = match named_tenant(conn, sub.metadata.get(TENANT_KEY)).await? {
        Some(t) => Some(t),
        None => match subs::tenant_for_subscription(conn, &sub.id).await? {
            Some(t) => Some(t),
            None => subs::tenant_for_customer(conn, &customer).await?,
        },
    };
    let tenant = tenant.ok_or_else(|| {
        ApplyError::Unresolved(format!(
            "no Keel tenant for subscription {} (customer {customer}); set metadata.{TENANT_KEY}",
            sub.id
        ))
    })?;
    if !claim_version(conn, &sub.id, event.created, &event.id).await? {
        return Ok(stale(event, &sub.id));
    }
    let mut plan = None;
    let mut add_ons = Vec::new();
    for item in &sub.items.data {
        match catalog.price(&item.price.id) {
            Some(PriceRef::Plan(p, interval)) if plan.is_none() => plan = Some((p, interval)),
            Some(PriceRef::AddOn(a, _)) => add_ons.push(a.id.clone()),
            _ => {
                return Err(ApplyError::Invalid(format!(
                "subscription {} has price {}, which is not a plan or add-on of catalog version {}",
                sub.id, item.price.id, catalog.version
            )))
            }
        }
    }
    let (plan, interval) = plan
        .ok_or_else(|| ApplyError::Invalid(format!("subscription {} has no plan price", sub.id)))?;
    let current = subs::lock(conn, tenant).await?;
    let deleted = event.kind == "customer.subscription.deleted";
    let status = if deleted {
        "canceled".to_string()
    } else {
        sub.status.clone()
    };
    if let Some(cur) = &current {
        let other = cur
            .stripe_subscription_id
            .as_deref()
            .filter(|o| *o != sub.id);
        let ending = matches!(status.as_str(), "canceled" | "incomplete_expired");
        if other.is_some() && ending && cur.status != "canceled" {
            return Ok(Outcome::Ignored(format!(
                "subscription {} ended, but the tenant's current subscription is {}",
                sub.id,
                other.unwrap_or_default()
            )));
        }
    }
    subs::link_customer(conn, tenant, &customer).await?;
    let (start, end) = sub.period();
    let state = SubscriptionState {
        tenant_id: tenant,
        mode: "stripe".into(),
        plan_id: plan.id.clone(),
        billing_interval: interval.as_str().into(),
        status,
        add_ons,
        current_period_start: ts(start),
        current_period_end: ts(end),
        cancel_at_period_end: sub.cancel_at_period_end,
        canceled_at: ts(sub.canceled_at).or(deleted.then_some(event.created)),
        ended_at: ts(sub.ended_at).or(deleted.then_some(event.created)),
        trial_end: ts(sub.trial_end),
        stripe_customer_id: Some(customer),
        stripe_subscription_id: Some(sub.id.clone()),
        catalog_version: catalog.version as i32,
    };
    let saved = subs::upsert(conn, &state).await?;
    if state.trial_end.is_some() {
        // The tenant's one trial: its next checkout offers none (`POST /api/billing/checkout`).
        trials::record(conn, tenant, "stripe", &plan.id, state.trial_end).await?;
    }
    Ok(Outcome::Applied(json!({
        "tenant_id": tenant, "subscription": sub.id, "plan": saved.plan_id, "status": saved.status
    })))
}

async fn invoice(conn: &mut PgConnection, event: &StripeEvent) -> Result<Outcome> {
    let inv: s::Invoice = parse(event)?;
    let customer = inv.customer.id().to_string();
    let mut tenant = subs::tenant_for_customer(conn, &customer).await?;
    if tenant.is_none() {
        if let Some(sub) = inv.subscription_id() {
            tenant = subs::tenant_for_subscription(conn, sub).await?;
        }
    }
    let tenant = tenant.ok_or_else(|| {
        ApplyError::Unresolved(format!(
            "no Keel tenant for invoice {} (customer {customer})",
            inv.id
        ))
    })?;
    if !claim_version(conn, &inv.id, event.created, &event.id).await? {
        return Ok(stale(event, &inv.id));
    }
    let failed = event.kind == "invoice.payment_failed";
    let status = inv.status.clone().unwrap_or_else(|| "open".into());
    let paid_at = ts(inv.paid_at()).or((status == "paid").then_some(event.created));
    let row = Invoice {
        id: inv.id.clone(),
        tenant_id: tenant,
        stripe_subscription_id: inv.subscription_id().map(str::to_string),
        number: inv.number.clone(),
        status,
        amount_due: inv.amount_due,
        amount_paid: inv.amount_paid,
        currency: inv.currency.clone(),
        description: None,
        period_start: ts(inv.period_start),
        period_end: ts(inv.period_end),
        hosted_invoice_url: inv.hosted_invoice_url.clone(),
        payment_failed_at: failed.then_some(event.created),
        paid_at,
        created_at: from_unix(inv.created).unwrap_or(event.created),
    };
    ledger::upsert_invoice(conn, &row).await?;
    Ok(Outcome::Applied(
        json!({ "tenant_id": tenant, "invoice": inv.id, "status": row.status }),
    ))
}

async fn checkout(
    conn: &mut PgConnection,
    catalog: &Catalog,
    event: &StripeEvent,
) -> Result<Outcome> {
    let cs: s::CheckoutSession = parse(event)?;
    let customer = cs.customer.as_ref().map(|c| c.id().to_string());
    let mut tenant = named_tenant(conn, cs.client_reference_id.as_ref()).await?;
    if tenant.is_none() {
        tenant = named_tenant(conn, cs.metadata.get(TENANT_KEY)).await?;
    }
    if let (None, Some(c)) = (tenant, &customer) {
        tenant = subs::tenant_for_customer(conn, c).await?;
    }
    let tenant = tenant.ok_or_else(|| {
        ApplyError::Unresolved(format!(
            "no Keel tenant for checkout session {}; set client_reference_id to the tenant id",
            cs.id
        ))
    })?;
    if !claim_version(conn, &cs.id, event.created, &event.id).await? {
        return Ok(stale(event, &cs.id));
    }
    if let Some(c) = &customer {
        subs::link_customer(conn, tenant, c).await?;
    }
    let (kind, item) = match (cs.metadata.get(CREDIT_PACK_KEY), cs.mode.as_str()) {
        (Some(pack), _) => ("credit_pack", pack.clone()),
        (None, "subscription") => (
            "subscription",
            cs.metadata
                .get(PLAN_KEY)
                .cloned()
                .unwrap_or_else(|| "subscription".into()),
        ),
        (None, mode) => {
            return Ok(Outcome::Ignored(format!(
                "checkout session {} (mode {mode}) sells neither a plan nor a credit pack",
                cs.id
            )))
        }
    };
    let pack = match kind {
        "credit_pack" => Some(catalog.credit_pack(&item).ok_or_else(|| {
            ApplyError::Invalid(format!("credit pack {item:?} is not in the catalog"))
        })?),
        _ => None,
    };
    if !matches!(
        cs.payment_status.as_deref(),
        Some("paid") | Some("no_payment_required") | None
    ) {
        return Ok(Outcome::Ignored(format!(
            "checkout session {} is not paid yet (payment_status {:?})",
            cs.id, cs.payment_status
        )));
    }
    let purchase = Purchase {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        kind: kind.into(),
        item_id: item.clone(),
        amount: cs.amount_total.or(pack.map(|p| p.price)).unwrap_or(0),
        currency: cs
            .currency
            .clone()
            .unwrap_or_else(|| catalog.currency.clone()),
        source: "stripe".into(),
        stripe_checkout_session_id: Some(cs.id.clone()),
        created_at: event.created,
    };
    let Some(purchase) = ledger::insert_purchase(conn, &purchase).await? else {
        return Ok(Outcome::Applied(
            json!({ "tenant_id": tenant, "already_recorded": cs.id }),
        ));
    };
    if let Some(pack) = pack {
        ledger::insert_credit_grant(
            conn,
            &CreditGrant::for_purchase(
                &purchase,
                pack.units as i64,
                pack.valid_days,
                event.created,
            ),
        )
        .await?;
    }
    Ok(Outcome::Applied(
        json!({ "tenant_id": tenant, "purchase": purchase.id, "item": item }),
    ))
}

async fn customer(conn: &mut PgConnection, event: &StripeEvent) -> Result<Outcome> {
    let cus: s::Customer = parse(event)?;
    let tenant = match named_tenant(conn, cus.metadata.get(TENANT_KEY)).await? {
        Some(t) => Some(t),
        None => subs::tenant_for_customer(conn, &cus.id).await?,
    };
    let Some(tenant) = tenant else {
        return Ok(Outcome::Ignored(format!(
            "customer {} is not linked to a tenant",
            cus.id
        )));
    };
    if !claim_version(conn, &cus.id, event.created, &event.id).await? {
        return Ok(stale(event, &cus.id));
    }
    let deleted = cus.deleted || event.kind == "customer.deleted";
    subs::upsert_customer(
        conn,
        tenant,
        &cus.id,
        cus.email.as_deref(),
        cus.name.as_deref(),
        deleted,
    )
    .await?;
    Ok(Outcome::Applied(
        json!({ "tenant_id": tenant, "customer": cus.id, "deleted": deleted }),
    ))
}
