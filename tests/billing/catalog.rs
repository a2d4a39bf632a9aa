//! The public plan catalog.

use super::*;

#[tokio::test]
async fn the_plan_catalog_is_public() {
    let env = env().await;
    let (status, body) = get(&env, None, "/api/plans").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "local");
    let ids: Vec<&str> = body["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["free", "starter", "team", "business"]);
    let starter = &body["plans"][1];
    assert_eq!(
        starter["kind_limits"],
        json!({ "jira.analyze.issue": 200, "jira.analyze.sprint": 5, "jira.analyze.portfolio": 1 })
    );
    assert_eq!(
        starter["rate_limit"],
        json!({ "per_minute": 60, "per_hour": 2000 })
    );
    assert_eq!(
        starter["stripe_price_monthly"],
        "price_keel_starter_monthly"
    );
    assert_eq!(
        body["unit_weights"]["sentiment.score"],
        json!({ "units": 1, "per": 100, "item": "texts" })
    );
    assert_eq!(body["unit_weights"]["jira.analyze.portfolio"]["units"], 20);
    let packs: Vec<(u64, u64)> = body["credit_packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["units"].as_u64().unwrap(),
                p["valid_days"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(packs, [(50, 90), (100, 90), (250, 120)]);
    assert_eq!(
        body["add_ons"][0]["features"],
        json!({ "priority_lane": true })
    );
}
