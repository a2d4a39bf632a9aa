//! Catalog parsing and validation.

use serde_json::json;

use crate::catalog::{Catalog, Interval, Overage, PriceRef, DEFAULT_CATALOG};
use crate::CatalogError;

const KINDS: &[&str] = &["sentiment.score", "noop"];

fn default() -> Catalog {
    Catalog::default_catalog(KINDS).expect("default catalog is valid")
}

/// The default catalog with `edit` applied to its TOML text.
fn edited(from: &str, to: &str) -> Result<Catalog, CatalogError> {
    assert!(
        DEFAULT_CATALOG.contains(from),
        "fixture text {from:?} not in the catalog"
    );
    Catalog::parse(&DEFAULT_CATALOG.replacen(from, to, 1), KINDS)
}

#[track_caller]
fn invalid(from: &str, to: &str, says: &str) {
    match edited(from, to) {
        Err(e) => assert!(e.to_string().contains(says), "{e} should mention {says:?}"),
        Ok(_) => panic!("editing {from:?} → {to:?} should be refused"),
    }
}

#[test]
fn the_default_catalog_has_four_plans_three_packs_two_add_ons() {
    let c = default();
    let ids: Vec<_> = c.plans.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["free", "starter", "team", "business"]);
    assert_eq!(c.free_plan().id, "free");
    let starter = c.plan("starter").unwrap();
    assert_eq!(starter.kind_limits["jira.analyze.issue"], 200);
    assert_eq!(starter.kind_limits["jira.analyze.sprint"], 5);
    assert_eq!(starter.kind_limits["jira.analyze.portfolio"], 1);
    assert_eq!(starter.overage, Overage::HardCap);
    assert_eq!(c.plan("team").unwrap().overage, Overage::PerUnit(4));
    let packs: Vec<_> = c
        .credit_packs
        .iter()
        .map(|p| (p.units, p.valid_days))
        .collect();
    assert_eq!(packs, [(50, 90), (100, 90), (250, 120)]);
    assert_eq!(c.add_ons.len(), 2);
}

#[test]
fn stripe_price_ids_map_back_to_plans_packs_and_add_ons() {
    let c = default();
    match c.price("price_keel_team_annual") {
        Some(PriceRef::Plan(p, Interval::Year)) => assert_eq!(p.id, "team"),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(c.price("price_keel_pack_250"), Some(PriceRef::CreditPack(p)) if p.units == 250)
    );
    assert!(matches!(
        c.price("price_keel_priority_lane_monthly"),
        Some(PriceRef::AddOn(a, Interval::Month)) if a.id == "priority_lane"
    ));
    assert!(c.price("price_unknown").is_none());
}

#[test]
fn unit_weights_are_data() {
    let c = default();
    assert_eq!(c.units_for("jira.analyze.sprint", &json!({})), Some(5));
    assert_eq!(c.units_for("jira.analyze.portfolio", &json!({})), Some(20));
    let texts = |n: usize| json!({ "texts": vec!["x"; n] });
    assert_eq!(c.units_for("sentiment.score", &texts(1)), Some(1));
    assert_eq!(c.units_for("sentiment.score", &texts(100)), Some(1));
    assert_eq!(c.units_for("sentiment.score", &texts(101)), Some(2));
    assert_eq!(c.units_for("noop", &json!({})), None);
}

#[test]
fn monthly_revenue_spreads_annual_prices() {
    let c = default();
    let p = c.plan("starter").unwrap();
    assert_eq!(p.monthly_revenue(Interval::Month), 2900);
    assert_eq!(p.monthly_revenue(Interval::Year), 29000 / 12);
}

#[test]
fn duplicate_plan_ids_are_refused() {
    invalid(
        "id = \"team\"",
        "id = \"starter\"",
        "plan id \"starter\" is used twice",
    );
}

#[test]
fn exactly_one_free_plan() {
    invalid(
        "free = true\n",
        "",
        "exactly one plan must be free, found 0",
    );
    invalid(
        "id = \"business\"\nname = \"Business\"\n",
        "id = \"business\"\nname = \"Business\"\nfree = true\n",
        "exactly one plan must be free, found 2",
    );
}

#[test]
fn negative_prices_are_refused() {
    invalid(
        "monthly_price = 2900",
        "monthly_price = -1",
        "monthly_price must be >= 0",
    );
    invalid("price = 900", "price = -900", "price must be >= 0");
    invalid(
        "per_unit = 4",
        "per_unit = -4",
        "overage per_unit must be >= 0",
    );
}

#[test]
fn weights_must_name_known_kinds() {
    invalid(
        "[unit_weights.\"sentiment.score\"]",
        "[unit_weights.\"nope.kind\"]",
        "unknown job kind \"nope.kind\"",
    );
    invalid(
        "per = 100\nitem = \"texts\"\n",
        "per = 100\n",
        "needs `item`",
    );
}

#[test]
fn credit_packs_need_a_validity_and_units() {
    invalid(
        "valid_days = 120",
        "valid_days = 0",
        "valid_days must be >= 1",
    );
    invalid(
        "units = 250\nvalid_days",
        "units = 0\nvalid_days",
        "units must be >= 1",
    );
}

#[test]
fn stripe_price_ids_are_unique_and_paid_plans_have_them() {
    invalid(
        "\"price_keel_team_monthly\"",
        "\"price_keel_starter_monthly\"",
        "used twice",
    );
    invalid(
        "stripe_price_annual = \"price_keel_team_annual\"\n",
        "",
        "needs stripe_price_monthly and stripe_price_annual",
    );
}

#[test]
fn kind_limits_name_weighted_kinds_and_rate_limits_are_sane() {
    invalid(
        "kind_limits = {}",
        "kind_limits = { \"noop\" = 5 }",
        "has no unit weight",
    );
    invalid(
        "per_minute = 300, per_hour = 15000",
        "per_minute = 300, per_hour = 10",
        "rate_limit",
    );
}

#[test]
fn typos_and_bad_toml_are_parse_errors() {
    assert!(matches!(
        edited("included_units = 500", "included_unit = 500"),
        Err(CatalogError::Parse(_))
    ));
    assert!(matches!(
        Catalog::parse("not toml [", KINDS),
        Err(CatalogError::Parse(_))
    ));
    assert!(matches!(
        Catalog::load(Some("/nonexistent/plans.toml"), KINDS),
        Err(CatalogError::Read(_))
    ));
}

#[test]
fn the_catalog_serialises_for_the_public_endpoint() {
    let v = serde_json::to_value(default()).unwrap();
    assert_eq!(v["plans"][2]["overage"], json!({ "per_unit": 4 }));
    assert_eq!(v["plans"][1]["overage"], json!("hard_cap"));
    assert_eq!(v["add_ons"][0]["features"]["priority_lane"], json!(true));
}
