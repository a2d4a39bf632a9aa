//! The parts of Stripe's event and object shapes Keel reads (API version `2025-03-31.basil`
//! and later, with fallbacks for older fields). Everything else in a payload is ignored, and
//! the raw payload is kept in the database, so adding a field later needs no migration.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// Metadata key carrying the Keel tenant id on customers, subscriptions and checkout sessions.
pub const TENANT_KEY: &str = "keel_tenant_id";
/// Metadata key on a checkout session that sells a credit pack.
pub const CREDIT_PACK_KEY: &str = "keel_credit_pack";
/// Metadata key on a subscription checkout session naming the plan.
pub const PLAN_KEY: &str = "keel_plan";

/// The event envelope (`object: "event"`).
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: String,
    pub object: String,
    #[serde(default)]
    pub api_version: Option<String>,
    /// Unix seconds: when Stripe created the event; orders events per object.
    pub created: i64,
    #[serde(default)]
    pub livemode: bool,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: Value,
}

impl Event {
    /// Parses the envelope; `Err` names what is wrong.
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        let ev: Event = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
        if ev.object != "event" {
            return Err(format!("object is {:?}, expected \"event\"", ev.object));
        }
        if !ev.id.starts_with("evt_") || ev.id.len() > 255 {
            // Not echoed whole: a 20 KB id made a 20 KB error.
            let shown: String = ev.id.chars().take(64).collect();
            let more = if shown.len() < ev.id.len() { "…" } else { "" };
            return Err(format!("id {shown:?}{more} is not a Stripe event id"));
        }
        if ev.kind.is_empty() || ev.kind.len() > 255 {
            return Err("type is empty or too long".into());
        }
        Ok(ev)
    }
}

/// A reference that may be expanded into the object (`"cus_…"` or `{"id": "cus_…", …}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Expandable {
    Id(String),
    Object { id: String },
}

impl Expandable {
    pub fn id(&self) -> &str {
        match self {
            Expandable::Id(s) | Expandable::Object { id: s } => s,
        }
    }
}

pub type Metadata = BTreeMap<String, String>;

#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub customer: Expandable,
    pub status: String,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    #[serde(default)]
    pub canceled_at: Option<i64>,
    #[serde(default)]
    pub ended_at: Option<i64>,
    #[serde(default)]
    pub trial_end: Option<i64>,
    pub items: List<SubscriptionItem>,
    /// Before `2025-03-31.basil` the period lived here; now on each item.
    #[serde(default)]
    pub current_period_start: Option<i64>,
    #[serde(default)]
    pub current_period_end: Option<i64>,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionItem {
    pub id: String,
    pub price: Price,
    #[serde(default)]
    pub current_period_start: Option<i64>,
    #[serde(default)]
    pub current_period_end: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Price {
    pub id: String,
}

impl Subscription {
    /// The billing period: the first item's (current API versions), else the legacy fields.
    pub fn period(&self) -> (Option<i64>, Option<i64>) {
        let item = self.items.data.first();
        (
            item.and_then(|i| i.current_period_start)
                .or(self.current_period_start),
            item.and_then(|i| i.current_period_end)
                .or(self.current_period_end),
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Invoice {
    pub id: String,
    pub customer: Expandable,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub amount_due: i64,
    #[serde(default)]
    pub amount_paid: i64,
    pub currency: String,
    #[serde(default)]
    pub period_start: Option<i64>,
    #[serde(default)]
    pub period_end: Option<i64>,
    pub created: i64,
    #[serde(default)]
    pub hosted_invoice_url: Option<String>,
    /// Before `2025-03-31.basil`.
    #[serde(default)]
    pub subscription: Option<Expandable>,
    #[serde(default)]
    pub parent: Option<InvoiceParent>,
    #[serde(default)]
    pub status_transitions: Option<StatusTransitions>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceParent {
    #[serde(default)]
    pub subscription_details: Option<SubscriptionDetails>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionDetails {
    #[serde(default)]
    pub subscription: Option<Expandable>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusTransitions {
    #[serde(default)]
    pub paid_at: Option<i64>,
}

impl Invoice {
    pub fn subscription_id(&self) -> Option<&str> {
        self.parent
            .as_ref()
            .and_then(|p| p.subscription_details.as_ref())
            .and_then(|d| d.subscription.as_ref())
            .or(self.subscription.as_ref())
            .map(Expandable::id)
    }

    pub fn paid_at(&self) -> Option<i64> {
        self.status_transitions.as_ref().and_then(|s| s.paid_at)
    }
}

/// `object: "checkout.session"`.
#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub mode: String,
    #[serde(default)]
    pub customer: Option<Expandable>,
    #[serde(default)]
    pub subscription: Option<Expandable>,
    #[serde(default)]
    pub client_reference_id: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub amount_total: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub payment_status: Option<String>,
    #[serde(default)]
    pub payment_intent: Option<Expandable>,
    pub created: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Customer {
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub metadata: Metadata,
}

/// The event types Keel applies; any other type is stored and marked `ignored`.
pub const HANDLED: &[&str] = &[
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.trial_will_end",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.finalized",
    "checkout.session.completed",
    "customer.updated",
    "customer.deleted",
];
