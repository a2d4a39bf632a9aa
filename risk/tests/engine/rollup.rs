use crate::fixtures::*;
use keel_risk::{
    assess_issues, blocker_graph, rollup_portfolio, rollup_sprint, BlockerEdge, IssueRisk,
    IssueSnapshot, LevelCounts, RiskLevel, Settings, StatusCategory, MODEL_VERSION, OVERALL_KEY,
};

/// A hand-made risk so roll-up arithmetic can be checked exactly.
fn risk(key: &str, score: u8, level: RiskLevel, daily: f64, resolved: bool) -> IssueRisk {
    IssueRisk {
        issue_key: key.into(),
        project_key: key.split('-').next().unwrap().into(),
        model_version: MODEL_VERSION.into(),
        assessed_at: now(),
        score,
        level,
        resolved,
        factors: vec![],
        daily_cost_of_delay: daily,
        people_involved: 1,
        overdue_days: 0,
        cost_so_far: 0.0,
        blocker_count: 0,
        negative_sentiment_share: 0.0,
        age_days: 1.0,
        summary: format!("{key} summary"),
    }
}

fn sprint_risks() -> Vec<IssueRisk> {
    use RiskLevel::*;
    vec![
        risk("ABC-4", 40, Medium, 2500.0, false),
        risk("ABC-10", 80, Critical, 5000.0, false),
        risk("ABC-1", 90, Critical, 7500.0, false),
        risk("ABC-7", 0, Low, 0.0, true),
        risk("ABC-9", 80, Critical, 2500.1, false),
        risk("ABC-3", 55, High, 0.1, false),
        risk("ABC-2", 30, Medium, 0.2, false),
        risk("ABC-5", 10, Low, 2500.0, false),
    ]
}

#[test]
fn sprint_counts_costs_and_average() {
    let r = rollup_sprint("42", "Sprint 42", &sprint_risks(), &[]);
    assert_eq!(r.sprint_id, "42");
    assert_eq!(r.sprint_name, "Sprint 42");
    assert_eq!(r.total, 8);
    assert_eq!(r.done, 1);
    assert_eq!(r.at_risk, 4);
    assert_eq!(
        r.by_level,
        LevelCounts {
            low: 1,
            medium: 2,
            high: 1,
            critical: 3
        }
    );
    // 7500 + 5000 + 2500.1 + 0.1
    assert_eq!(r.cost_at_risk, 15_000.2);
    assert_eq!(r.total_daily_cost, 20_000.4);
    // Open scores: 40+80+90+80+55+30+10 = 385 over 7.
    assert_eq!(r.average_score, 55.0);
}

#[test]
fn sprint_top_five_by_score_then_natural_key() {
    let r = rollup_sprint("42", "Sprint 42", &sprint_risks(), &[]);
    let keys: Vec<_> = r
        .top_risks
        .iter()
        .map(|t| (t.issue_key.as_str(), t.score))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("ABC-1", 90),
            ("ABC-9", 80),
            ("ABC-10", 80),
            ("ABC-3", 55),
            ("ABC-4", 40)
        ]
    );
    assert_eq!(r.top_risks[0].summary, "ABC-1 summary");
    assert_eq!(r.top_risks[0].level, RiskLevel::Critical);
}

#[test]
fn resolved_issues_never_in_top_risks() {
    let risks = vec![
        risk("ABC-1", 0, RiskLevel::Low, 0.0, true),
        risk("ABC-2", 0, RiskLevel::Low, 10.0, false),
    ];
    let r = rollup_sprint("1", "s", &risks, &[]);
    assert_eq!(r.top_risks.len(), 1);
    assert_eq!(r.top_risks[0].issue_key, "ABC-2");
    assert_eq!(r.by_level.low, 1);
}

#[test]
fn empty_sprint() {
    let r = rollup_sprint("0", "empty", &[], &[]);
    assert_eq!((r.total, r.done, r.at_risk), (0, 0, 0));
    assert_eq!(r.average_score, 0.0);
    assert!(
        r.top_risks.is_empty()
            && r.blocker_graph.nodes.is_empty()
            && r.blocker_graph.edges.is_empty()
    );
}

fn graph_snapshots() -> Vec<IssueSnapshot> {
    let mk = |key: &str, cat| IssueSnapshot::new(key, "ABC", cat, days_ago(3));
    let mut a1 = mk("ABC-1", StatusCategory::Indeterminate);
    // The link still says ABC-2 is new, but ABC-2's own snapshot says done.
    a1.blocked_by = vec![
        link("OPS-3", StatusCategory::New),
        link("ABC-2", StatusCategory::New),
    ];
    let mut a2 = mk("ABC-2", StatusCategory::Done);
    a2.blocks = vec![link("ABC-1", StatusCategory::Indeterminate)];
    let mut a3 = mk("ABC-3", StatusCategory::New);
    a3.blocks = vec![link("WEB-9", StatusCategory::New)];
    let mut a4 = mk("ABC-4", StatusCategory::New);
    a4.blocked_by = vec![link("EXT-1", StatusCategory::Done)];
    let a10 = mk("ABC-10", StatusCategory::New);
    vec![a1, a2, a3, a4, a10]
}

#[test]
fn blocker_graph_edges_inside_and_outside_sprint() {
    let snaps = graph_snapshots();
    let g = blocker_graph(snaps.iter().map(|s| s.key.as_str()), &snaps);
    assert_eq!(
        g.nodes,
        vec!["ABC-1", "ABC-2", "ABC-3", "ABC-4", "ABC-10", "EXT-1", "OPS-3", "WEB-9"]
    );
    assert_eq!(g.outside_sprint, vec!["EXT-1", "OPS-3", "WEB-9"]);
    let e = |from: &str, to: &str, resolved| BlockerEdge {
        from: from.into(),
        to: to.into(),
        resolved,
    };
    assert_eq!(
        g.edges,
        vec![
            e("ABC-2", "ABC-1", true), // deduplicated; blocker's own snapshot wins
            e("ABC-3", "WEB-9", false),
            e("EXT-1", "ABC-4", true),
            e("OPS-3", "ABC-1", false),
        ]
    );
}

#[test]
fn sprint_rollup_end_to_end() {
    let mut snaps = graph_snapshots();
    snaps.push(doomed_issue());
    snaps.push(fresh_issue().clone_with_key("ABC-11"));
    let risks = assess_issues(&snaps, &Settings::default(), now());
    let r = rollup_sprint("7", "Sprint 7", &risks, &snaps);
    assert_eq!(r.total, 7);
    assert_eq!(r.done, 1);
    assert_eq!(r.at_risk, 1);
    assert_eq!(r.top_risks[0].issue_key, "ABC-42");
    assert_eq!(
        r.cost_at_risk,
        risks
            .iter()
            .find(|x| x.issue_key == "ABC-42")
            .unwrap()
            .daily_cost_of_delay
    );
    // doomed_issue's blockers show up as edges into ABC-42.
    assert!(r
        .blocker_graph
        .edges
        .iter()
        .any(|e| e.from == "OPS-3" && e.to == "ABC-42" && !e.resolved));
    assert!(r
        .blocker_graph
        .edges
        .iter()
        .any(|e| e.from == "ABC-2" && e.to == "ABC-42" && e.resolved));
    assert!(r
        .blocker_graph
        .outside_sprint
        .contains(&"ABC-7".to_string()));
}

trait CloneWithKey {
    fn clone_with_key(&self, key: &str) -> Self;
}

impl CloneWithKey for IssueSnapshot {
    fn clone_with_key(&self, key: &str) -> Self {
        IssueSnapshot {
            key: key.into(),
            ..self.clone()
        }
    }
}

#[test]
fn portfolio_groups_by_project_sorted() {
    use RiskLevel::*;
    let risks = vec![
        risk("WEB-1", 60, High, 100.0, false),
        risk("ABC-1", 90, Critical, 200.0, false),
        risk("OPS-2", 10, Low, 50.0, false),
        risk("ABC-2", 20, Low, 300.0, false),
        risk("WEB-2", 0, Low, 0.0, true),
        risk("OPS-1", 35, Medium, 50.0, false),
    ];
    let p = rollup_portfolio(&risks);
    let keys: Vec<_> = p.projects.iter().map(|x| x.project_key.as_str()).collect();
    assert_eq!(keys, vec!["ABC", "OPS", "WEB"]);

    let abc = &p.projects[0];
    assert_eq!((abc.total, abc.done, abc.at_risk), (2, 0, 1));
    assert_eq!(
        abc.by_level,
        LevelCounts {
            low: 1,
            medium: 0,
            high: 0,
            critical: 1
        }
    );
    assert_eq!(abc.average_score, 55.0);
    assert_eq!(abc.cost_at_risk, 200.0);
    assert_eq!(abc.total_daily_cost, 500.0);
    assert_eq!(
        abc.top_risks
            .iter()
            .map(|t| t.issue_key.as_str())
            .collect::<Vec<_>>(),
        vec!["ABC-1", "ABC-2"]
    );

    let ops = &p.projects[1];
    assert_eq!((ops.total, ops.at_risk), (2, 0));
    assert_eq!(ops.average_score, 22.5);
    assert_eq!(ops.cost_at_risk, 0.0);
    assert_eq!(ops.top_risks[0].issue_key, "OPS-1");

    let web = &p.projects[2];
    assert_eq!((web.total, web.done, web.at_risk), (2, 1, 1));
    assert_eq!(web.average_score, 60.0);

    let all = &p.overall;
    assert_eq!(all.project_key, OVERALL_KEY);
    assert_eq!((all.total, all.done, all.at_risk), (6, 1, 2));
    assert_eq!(
        all.by_level,
        LevelCounts {
            low: 2,
            medium: 1,
            high: 1,
            critical: 1
        }
    );
    assert_eq!(all.cost_at_risk, 300.0);
    assert_eq!(all.total_daily_cost, 700.0);
    assert_eq!(all.average_score, 43.0);
    assert_eq!(
        all.top_risks
            .iter()
            .map(|t| t.issue_key.as_str())
            .collect::<Vec<_>>(),
        vec!["ABC-1", "WEB-1", "OPS-1", "ABC-2", "OPS-2"]
    );
}

#[test]
fn rollups_are_deterministic_and_order_independent() {
    let risks = sprint_risks();
    let snaps = graph_snapshots();
    let a = serde_json::to_string(&rollup_sprint("1", "s", &risks, &snaps)).unwrap();
    let b = serde_json::to_string(&rollup_sprint("1", "s", &risks, &snaps)).unwrap();
    assert_eq!(a, b);
    let mut risks_r = risks.clone();
    risks_r.reverse();
    let mut snaps_r = snaps.clone();
    snaps_r.rotate_left(2);
    let c = serde_json::to_string(&rollup_sprint("1", "s", &risks_r, &snaps_r)).unwrap();
    assert_eq!(a, c);
    assert_eq!(
        serde_json::to_string(&rollup_portfolio(&risks)).unwrap(),
        serde_json::to_string(&rollup_portfolio(&risks_r)).unwrap()
    );
}
