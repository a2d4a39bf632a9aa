//! Rules a well-formed catalog can still break. Each error names the entry at fault, so a bad
//! `KEEL_PLANS_FILE` stops Keel at start with a message an operator can act on.

use std::collections::HashSet;

use crate::catalog::{Catalog, Overage};
use crate::CatalogError;

/// Job kinds the default catalog prices before their handlers are registered (the Jira
/// analysis kinds land in another crate); they count as known.
pub const RESERVED_KINDS: &[&str] = &[
    "jira.analyze.issue",
    "jira.analyze.sprint",
    "jira.analyze.portfolio",
];

fn bad(msg: impl Into<String>) -> CatalogError {
    CatalogError::Invalid(msg.into())
}

fn check_id(what: &str, id: &str) -> Result<(), CatalogError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "{what} id {id:?} must be 1 to 64 characters of a-z, 0-9, '_' or '-'"
        )))
    }
}

fn non_negative(what: &str, price: i64) -> Result<(), CatalogError> {
    if price < 0 {
        return Err(bad(format!("{what} must be >= 0, not {price}")));
    }
    Ok(())
}

impl Catalog {
    pub fn validate(&self, known_kinds: &[&str]) -> Result<(), CatalogError> {
        if self.version == 0 {
            return Err(bad("version must be at least 1"));
        }
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_lowercase()) {
            return Err(bad(format!(
                "currency {:?} must be a lowercase ISO 4217 code such as \"usd\"",
                self.currency
            )));
        }
        let known = |k: &str| known_kinds.contains(&k) || RESERVED_KINDS.contains(&k);
        for (kind, w) in &self.unit_weights {
            if !known(kind) {
                return Err(bad(format!("unit_weights: unknown job kind {kind:?}")));
            }
            if w.units == 0 || w.per == 0 {
                return Err(bad(format!(
                    "unit_weights.{kind}: units and per must be >= 1"
                )));
            }
            if w.per > 1 && w.item.is_none() {
                return Err(bad(format!(
                    "unit_weights.{kind}: per = {} needs `item` (the args field to count)",
                    w.per
                )));
            }
        }
        // Stripe price ids must be unique across the whole catalog: a webhook maps each one back.
        let mut prices = HashSet::new();
        let mut price_once = |what: String, price: Option<&str>| -> Result<(), CatalogError> {
            match price {
                Some("") => Err(bad(format!("{what}: Stripe price id is empty"))),
                Some(p) if !prices.insert(p.to_string()) => {
                    Err(bad(format!("{what}: Stripe price id {p:?} is used twice")))
                }
                _ => Ok(()),
            }
        };
        if self.plans.is_empty() {
            return Err(bad("no plans"));
        }
        match self.plans.iter().filter(|p| p.free).count() {
            1 => {}
            n => return Err(bad(format!("exactly one plan must be free, found {n}"))),
        }
        let mut ids = HashSet::new();
        for p in &self.plans {
            check_id("plan", &p.id)?;
            if !ids.insert(p.id.as_str()) {
                return Err(bad(format!("plan id {:?} is used twice", p.id)));
            }
            let at = format!("plan {:?}", p.id);
            non_negative(&format!("{at}: monthly_price"), p.monthly_price)?;
            non_negative(&format!("{at}: annual_price"), p.annual_price)?;
            if let Overage::PerUnit(c) = p.overage {
                non_negative(&format!("{at}: overage per_unit"), c)?;
            }
            for (name, r) in [
                ("rate_limit", Some(p.rate_limit)),
                ("read_rate_limit", p.read_rate_limit),
            ] {
                if let Some(r) = r {
                    if r.per_minute == 0 || r.per_hour < r.per_minute {
                        return Err(bad(format!(
                            "{at}: {name} needs per_minute >= 1 and per_hour >= per_minute"
                        )));
                    }
                }
            }
            for kind in p.kind_limits.keys() {
                if !self.unit_weights.contains_key(kind) {
                    return Err(bad(format!(
                        "{at}: kind_limits names {kind:?}, which has no unit weight"
                    )));
                }
            }
            if p.free {
                if p.monthly_price != 0 || p.annual_price != 0 {
                    return Err(bad(format!("{at} is free but has a price")));
                }
                if p.stripe_price_monthly.is_some() || p.stripe_price_annual.is_some() {
                    return Err(bad(format!("{at} is free but has Stripe price ids")));
                }
            } else if p.stripe_price_monthly.is_none() || p.stripe_price_annual.is_none() {
                return Err(bad(format!(
                    "{at} needs stripe_price_monthly and stripe_price_annual"
                )));
            }
            price_once(at.clone(), p.stripe_price_monthly.as_deref())?;
            price_once(at, p.stripe_price_annual.as_deref())?;
        }
        let mut ids = HashSet::new();
        for c in &self.credit_packs {
            check_id("credit pack", &c.id)?;
            if !ids.insert(c.id.as_str()) {
                return Err(bad(format!("credit pack id {:?} is used twice", c.id)));
            }
            let at = format!("credit pack {:?}", c.id);
            if c.units == 0 {
                return Err(bad(format!("{at}: units must be >= 1")));
            }
            if c.valid_days == 0 {
                return Err(bad(format!("{at}: valid_days must be >= 1")));
            }
            non_negative(&format!("{at}: price"), c.price)?;
            price_once(at, Some(&c.stripe_price))?;
        }
        let mut ids = HashSet::new();
        for a in &self.add_ons {
            check_id("add-on", &a.id)?;
            if !ids.insert(a.id.as_str()) {
                return Err(bad(format!("add-on id {:?} is used twice", a.id)));
            }
            let at = format!("add-on {:?}", a.id);
            non_negative(&format!("{at}: monthly_price"), a.monthly_price)?;
            non_negative(&format!("{at}: annual_price"), a.annual_price)?;
            if a.features.is_empty() {
                return Err(bad(format!("{at} switches no feature on")));
            }
            price_once(at.clone(), a.stripe_price_monthly.as_deref())?;
            price_once(at, a.stripe_price_annual.as_deref())?;
        }
        Ok(())
    }
}
