//! The plan catalog: plans, unit weights per job kind, credit packs and add-ons, read from a
//! versioned TOML file (`config/plans.toml` is embedded as the default). Parsing refuses
//! unknown fields so a typo is an error, not a silently ignored limit; [`Catalog::validate`]
//! (in `validate.rs`) checks the rules a well-formed file can still break.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::CatalogError;

/// The catalog shipped in the binary.
pub const DEFAULT_CATALOG: &str = include_str!("../../config/plans.toml");

/// Add-on feature: the tenant's Jira client may run this many requests at once (an integer;
/// never lowers the operator's `KEEL_JIRA_CONCURRENCY`).
pub const FEATURE_JIRA_CONCURRENCY: &str = "jira_concurrency";
/// Add-on feature: the tenant's jobs go ahead of others in the queue (`true`). Not applied yet:
/// the job ledger and the lane have no notion of priority (see README, Billing & Stripe).
pub const FEATURE_PRIORITY_LANE: &str = "priority_lane";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Bumped whenever prices or limits change.
    pub version: u32,
    /// ISO 4217, lowercase (Stripe's spelling); every price is in its smallest unit.
    pub currency: String,
    #[serde(default)]
    pub unit_weights: BTreeMap<String, UnitWeight>,
    pub plans: Vec<Plan>,
    #[serde(default)]
    pub credit_packs: Vec<CreditPack>,
    #[serde(default)]
    pub add_ons: Vec<AddOn>,
}

/// What one job of a kind costs: `units` for every `per` items of args field `item`
/// (rounded up), or a flat `units` when `item` is absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitWeight {
    pub units: u64,
    #[serde(default = "one")]
    pub per: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overage {
    /// Usage stops at the allowance (plus credits).
    HardCap,
    /// Usage beyond the allowance is billed at this price per unit (cents).
    PerUnit(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_minute: u32,
    pub per_hour: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub id: String,
    pub name: String,
    /// Exactly one plan is free: every tenant without a subscription is on it.
    #[serde(default)]
    pub free: bool,
    pub monthly_price: i64,
    pub annual_price: i64,
    pub included_units: u64,
    pub overage: Overage,
    /// Writes (every request but `GET` and `HEAD`) per minute and per hour.
    pub rate_limit: RateLimit,
    /// Reads (`GET`, `HEAD`, long polls included) per minute and per hour, counted apart from
    /// writes: a client polling its jobs must not spend the budget it submits them with. Unset:
    /// [`READS_PER_WRITE`] times `rate_limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_rate_limit: Option<RateLimit>,
    /// Most jobs of a kind per month; a kind not listed is limited only by units.
    #[serde(default)]
    pub kind_limits: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe_price_monthly: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe_price_annual: Option<String>,
}

/// A plan's read allowance when it names none: this many reads per write allowed.
pub const READS_PER_WRITE: u32 = 20;

impl Plan {
    /// The plan's read allowance ([`Plan::read_rate_limit`], or [`READS_PER_WRITE`] times its
    /// write allowance).
    pub fn read_limit(&self) -> RateLimit {
        self.read_rate_limit.unwrap_or(RateLimit {
            per_minute: self.rate_limit.per_minute.saturating_mul(READS_PER_WRITE),
            per_hour: self.rate_limit.per_hour.saturating_mul(READS_PER_WRITE),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditPack {
    pub id: String,
    pub units: u64,
    /// Credits expire this many days after the purchase.
    pub valid_days: u32,
    pub price: i64,
    pub stripe_price: String,
}

/// A recurring subscription item that switches features on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddOn {
    pub id: String,
    pub name: String,
    pub monthly_price: i64,
    pub annual_price: i64,
    pub features: BTreeMap<String, toml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe_price_monthly: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe_price_annual: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Month,
    Year,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "month" => Some(Interval::Month),
            "year" => Some(Interval::Year),
            _ => None,
        }
    }
}

/// What a Stripe price id stands for in this catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum PriceRef<'a> {
    Plan(&'a Plan, Interval),
    AddOn(&'a AddOn, Interval),
    CreditPack(&'a CreditPack),
}

impl Plan {
    pub fn price(&self, interval: Interval) -> i64 {
        match interval {
            Interval::Month => self.monthly_price,
            Interval::Year => self.annual_price,
        }
    }

    /// Monthly recurring revenue of one subscription (annual prices spread over 12 months).
    pub fn monthly_revenue(&self, interval: Interval) -> i64 {
        match interval {
            Interval::Month => self.monthly_price,
            Interval::Year => self.annual_price / 12,
        }
    }

    pub fn stripe_price(&self, interval: Interval) -> Option<&str> {
        match interval {
            Interval::Month => self.stripe_price_monthly.as_deref(),
            Interval::Year => self.stripe_price_annual.as_deref(),
        }
        .filter(|s| !s.is_empty())
    }
}

impl Catalog {
    /// Parses and validates a catalog; `known_kinds` are the job kinds weights may name.
    pub fn parse(text: &str, known_kinds: &[&str]) -> Result<Self, CatalogError> {
        let catalog: Catalog =
            toml::from_str(text).map_err(|e| CatalogError::Parse(e.to_string()))?;
        catalog.validate(known_kinds)?;
        catalog.check_features()?;
        Ok(catalog)
    }

    /// The features Keel acts on must have the right type, so a typo (`jira_concurrency =
    /// "8"`) stops start-up instead of silently switching nothing on.
    fn check_features(&self) -> Result<(), CatalogError> {
        for a in &self.add_ons {
            if let Some(v) = a.features.get(FEATURE_JIRA_CONCURRENCY) {
                if !v.as_integer().is_some_and(|n| (1..=64).contains(&n)) {
                    return Err(CatalogError::Invalid(format!(
                        "add-on {:?}: feature {FEATURE_JIRA_CONCURRENCY} must be an integer from 1 to 64",
                        a.id
                    )));
                }
            }
            if let Some(v) = a.features.get(FEATURE_PRIORITY_LANE) {
                if v.as_bool().is_none() {
                    return Err(CatalogError::Invalid(format!(
                        "add-on {:?}: feature {FEATURE_PRIORITY_LANE} must be true or false",
                        a.id
                    )));
                }
            }
        }
        Ok(())
    }

    /// The embedded default catalog.
    pub fn default_catalog(known_kinds: &[&str]) -> Result<Self, CatalogError> {
        Self::parse(DEFAULT_CATALOG, known_kinds)
    }

    /// `path` (from `KEEL_PLANS_FILE`) when given, else the embedded default.
    pub fn load(path: Option<&str>, known_kinds: &[&str]) -> Result<Self, CatalogError> {
        match path {
            None => Self::default_catalog(known_kinds),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| CatalogError::Read(format!("{p}: {e}")))?;
                Self::parse(&text, known_kinds)
            }
        }
    }

    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }

    pub fn free_plan(&self) -> &Plan {
        self.plans
            .iter()
            .find(|p| p.free)
            .expect("a validated catalog has exactly one free plan")
    }

    pub fn credit_pack(&self, id: &str) -> Option<&CreditPack> {
        self.credit_packs.iter().find(|p| p.id == id)
    }

    pub fn add_on(&self, id: &str) -> Option<&AddOn> {
        self.add_ons.iter().find(|a| a.id == id)
    }

    /// The values that the add-ons `ids` (a subscription's `add_ons`) give feature `key`. Ids the
    /// catalog no longer lists switch nothing on.
    pub fn add_on_features<'a>(
        &'a self,
        ids: &'a [String],
        key: &'a str,
    ) -> impl Iterator<Item = &'a toml::Value> + 'a {
        ids.iter()
            .filter_map(|id| self.add_on(id))
            .filter_map(move |a| a.features.get(key))
    }

    /// Whether one of the add-ons `ids` sets feature `key` to `true` (e.g. `priority_lane`).
    pub fn feature_enabled(&self, ids: &[String], key: &str) -> bool {
        self.add_on_features(ids, key)
            .any(|v| v.as_bool() == Some(true))
    }

    /// The largest positive integer the add-ons `ids` set for feature `key` (e.g.
    /// `jira_concurrency`); `None` when none of them sets it.
    pub fn feature_max(&self, ids: &[String], key: &str) -> Option<u64> {
        self.add_on_features(ids, key)
            .filter_map(|v| v.as_integer())
            .filter_map(|n| u64::try_from(n).ok())
            .filter(|&n| n > 0)
            .max()
    }

    /// Maps a Stripe price id (from a subscription item or checkout line) to the catalog.
    pub fn price(&self, stripe_price: &str) -> Option<PriceRef<'_>> {
        for p in &self.plans {
            for i in [Interval::Month, Interval::Year] {
                if p.stripe_price(i) == Some(stripe_price) {
                    return Some(PriceRef::Plan(p, i));
                }
            }
        }
        for a in &self.add_ons {
            let by = |i| match i {
                Interval::Month => a.stripe_price_monthly.as_deref(),
                Interval::Year => a.stripe_price_annual.as_deref(),
            };
            for i in [Interval::Month, Interval::Year] {
                if by(i) == Some(stripe_price) {
                    return Some(PriceRef::AddOn(a, i));
                }
            }
        }
        self.credit_packs
            .iter()
            .find(|c| c.stripe_price == stripe_price)
            .map(PriceRef::CreditPack)
    }

    /// Units one job of `kind` with `args` costs; `None` when the kind is not metered.
    pub fn units_for(&self, kind: &str, args: &serde_json::Value) -> Option<u64> {
        let w = self.unit_weights.get(kind)?;
        let Some(item) = &w.item else {
            return Some(w.units);
        };
        let n = args
            .get(item)
            .and_then(|v| v.as_array())
            .map_or(0, |a| a.len() as u64)
            .max(1);
        Some(n.div_ceil(w.per) * w.units)
    }
}

static GLOBAL: OnceLock<Arc<Catalog>> = OnceLock::new();

/// Installs the process's catalog (first call wins). Job handlers reach the catalog through
/// [`global`] because the shared `Services` struct has no slot for it yet.
pub fn install(catalog: Catalog) -> Arc<Catalog> {
    GLOBAL.get_or_init(|| Arc::new(catalog)).clone()
}

/// The installed catalog, or the embedded default when none was installed.
pub fn global() -> Arc<Catalog> {
    GLOBAL
        .get_or_init(|| {
            Arc::new(
                toml::from_str(DEFAULT_CATALOG).expect("the embedded catalog parses (unit test)"),
            )
        })
        .clone()
}

#[cfg(test)]
mod feature_tests {
    use super::*;

    fn catalog() -> Catalog {
        toml::from_str(DEFAULT_CATALOG).unwrap()
    }

    #[test]
    fn add_on_features_are_read_from_the_tenants_add_ons() {
        let c = catalog();
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(c.feature_max(&[], FEATURE_JIRA_CONCURRENCY), None);
        assert_eq!(
            c.feature_max(&ids(&["priority_lane"]), FEATURE_JIRA_CONCURRENCY),
            None
        );
        assert_eq!(
            c.feature_max(&ids(&["jira_concurrency"]), FEATURE_JIRA_CONCURRENCY),
            Some(8)
        );
        assert_eq!(
            c.feature_max(
                &ids(&["gone", "jira_concurrency"]),
                FEATURE_JIRA_CONCURRENCY
            ),
            Some(8)
        );
        assert!(c.feature_enabled(&ids(&["priority_lane"]), FEATURE_PRIORITY_LANE));
        assert!(!c.feature_enabled(&ids(&["jira_concurrency"]), FEATURE_PRIORITY_LANE));
        assert!(!c.feature_enabled(&[], FEATURE_PRIORITY_LANE));
    }

    #[test]
    fn a_mistyped_feature_value_is_refused_naming_the_add_on() {
        let text = DEFAULT_CATALOG.replace("jira_concurrency = 8", "jira_concurrency = \"8\"");
        let err = Catalog::parse(
            &text,
            &[
                "jira.analyze.issue",
                "jira.analyze.sprint",
                "jira.analyze.portfolio",
                "sentiment.score",
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("\"jira_concurrency\"") && err.contains("1 to 64"),
            "{err}"
        );
        assert!(Catalog::parse(
            DEFAULT_CATALOG,
            &[
                "jira.analyze.issue",
                "jira.analyze.sprint",
                "jira.analyze.portfolio",
                "sentiment.score"
            ]
        )
        .is_ok());
    }
}
