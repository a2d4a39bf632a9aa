//! Aggregations: per sprint (with the blocker graph) and per portfolio.
//!
//! Roll-ups only read already-computed [`IssueRisk`]s (plus snapshots for
//! the graph), so a job can score issues once and aggregate many ways.
//! Conventions shared by every roll-up:
//! * `total` counts all issues, `done` the resolved ones;
//! * `by_level`, `average_score` and `top_risks` describe **open** work only
//!   (resolved issues always score 0 and would only dilute them), so
//!   `by_level` sums to `total − done`;
//! * money is summed in sorted order, so input order never changes totals;
//! * lists are sorted (score desc, then natural issue-key order).

use crate::assess::{IssueRisk, RiskLevel};
use crate::model::IssueSnapshot;
use crate::util::{issue_key_cmp, round2, sum_money};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How many issues `top_risks` lists.
pub const TOP_RISKS: usize = 5;

/// Project key used for the portfolio's `overall` entry. `*` cannot be a
/// Jira project key, so it never collides with a real project.
pub const OVERALL_KEY: &str = "*";

/// Count of open issues per level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelCounts {
    /// Open issues at `low`.
    pub low: u32,
    /// Open issues at `medium`.
    pub medium: u32,
    /// Open issues at `high`.
    pub high: u32,
    /// Open issues at `critical`.
    pub critical: u32,
}

impl LevelCounts {
    fn add(&mut self, level: RiskLevel) {
        let slot = match level {
            RiskLevel::Low => &mut self.low,
            RiskLevel::Medium => &mut self.medium,
            RiskLevel::High => &mut self.high,
            RiskLevel::Critical => &mut self.critical,
        };
        *slot = slot.saturating_add(1);
    }
}

/// A compact reference to a risky issue for dashboards and notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopRisk {
    /// Issue key.
    pub issue_key: String,
    /// Project key.
    pub project_key: String,
    /// Score 0–100.
    pub score: u8,
    /// Level.
    pub level: RiskLevel,
    /// Daily cost of delay.
    pub daily_cost_of_delay: f64,
    /// The issue's one-sentence explanation.
    pub summary: String,
}

impl From<&IssueRisk> for TopRisk {
    fn from(r: &IssueRisk) -> Self {
        Self {
            issue_key: r.issue_key.clone(),
            project_key: r.project_key.clone(),
            score: r.score,
            level: r.level,
            daily_cost_of_delay: r.daily_cost_of_delay,
            summary: r.summary.clone(),
        }
    }
}

/// "`from` blocks `to`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockerEdge {
    /// The blocking issue.
    pub from: String,
    /// The blocked issue.
    pub to: String,
    /// Whether the blocker is done (the link no longer blocks).
    pub resolved: bool,
}

/// Who blocks whom, inside and across the sprint boundary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockerGraph {
    /// Every issue key that appears in the sprint or in an edge, sorted.
    pub nodes: Vec<String>,
    /// The subset of `nodes` that is not in the sprint (external
    /// dependencies the team does not control), sorted.
    pub outside_sprint: Vec<String>,
    /// Edges sorted by (`from`, `to`), deduplicated.
    pub edges: Vec<BlockerEdge>,
}

/// Risk summary of one sprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SprintRollup {
    /// Sprint id as given by the caller.
    pub sprint_id: String,
    /// Sprint name as given by the caller.
    pub sprint_name: String,
    /// Issues in the sprint.
    pub total: u32,
    /// Resolved issues.
    pub done: u32,
    /// Open issues at `high` or `critical`.
    pub at_risk: u32,
    /// Open issues per level.
    pub by_level: LevelCounts,
    /// Up to five open issues by score desc, ties by issue key.
    pub top_risks: Vec<TopRisk>,
    /// Blocking relationships.
    pub blocker_graph: BlockerGraph,
    /// Sum of daily cost of delay over at-risk issues.
    pub cost_at_risk: f64,
    /// Sum of daily cost of delay over all issues (resolved ones are 0).
    pub total_daily_cost: f64,
    /// Mean score of open issues (0 if none).
    pub average_score: f64,
}

/// Risk summary of one project (or of everything, for `overall`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectRollup {
    /// Project key, or [`OVERALL_KEY`] for the portfolio total.
    pub project_key: String,
    /// Issues.
    pub total: u32,
    /// Resolved issues.
    pub done: u32,
    /// Open issues at `high` or `critical`.
    pub at_risk: u32,
    /// Open issues per level.
    pub by_level: LevelCounts,
    /// Mean score of open issues (0 if none).
    pub average_score: f64,
    /// Sum of daily cost of delay over at-risk issues.
    pub cost_at_risk: f64,
    /// Sum of daily cost of delay over all issues.
    pub total_daily_cost: f64,
    /// Up to five open issues by score desc, ties by issue key.
    pub top_risks: Vec<TopRisk>,
}

/// Per-project roll-ups plus the overall picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortfolioRollup {
    /// One entry per project, sorted by project key.
    pub projects: Vec<ProjectRollup>,
    /// All issues together, `project_key` = [`OVERALL_KEY`].
    pub overall: ProjectRollup,
}

#[derive(Default)]
struct Agg {
    total: u32,
    done: u32,
    at_risk: u32,
    by_level: LevelCounts,
    score_sum: u64,
    open: u64,
    cost_at_risk: Vec<f64>,
    total_daily_cost: Vec<f64>,
    top: Vec<TopRisk>,
}

fn aggregate<'a>(risks: impl IntoIterator<Item = &'a IssueRisk>) -> Agg {
    let mut a = Agg::default();
    let mut open: Vec<&IssueRisk> = Vec::new();
    for r in risks {
        a.total = a.total.saturating_add(1);
        a.total_daily_cost.push(r.daily_cost_of_delay);
        if r.resolved {
            a.done = a.done.saturating_add(1);
            continue;
        }
        a.by_level.add(r.level);
        a.score_sum += u64::from(r.score);
        a.open += 1;
        if r.level.is_at_risk() {
            a.at_risk = a.at_risk.saturating_add(1);
            a.cost_at_risk.push(r.daily_cost_of_delay);
        }
        open.push(r);
    }
    let mut top: Vec<TopRisk> = open.into_iter().map(TopRisk::from).collect();
    top.sort_by(top_risk_order);
    top.truncate(TOP_RISKS);
    a.top = top;
    a
}

/// Score descending, then natural issue-key order. The remaining fields
/// only break ties between duplicate keys, so that even malformed input
/// (the same key twice) cannot make the order depend on input order.
fn top_risk_order(x: &TopRisk, y: &TopRisk) -> std::cmp::Ordering {
    y.score
        .cmp(&x.score)
        .then_with(|| issue_key_cmp(&x.issue_key, &y.issue_key))
        .then_with(|| x.project_key.cmp(&y.project_key))
        .then_with(|| y.level.cmp(&x.level))
        .then_with(|| y.daily_cost_of_delay.total_cmp(&x.daily_cost_of_delay))
        .then_with(|| x.summary.cmp(&y.summary))
}

impl Agg {
    fn average(&self) -> f64 {
        if self.open == 0 {
            0.0
        } else {
            round2(self.score_sum as f64 / self.open as f64)
        }
    }

    fn into_project(self, project_key: String) -> ProjectRollup {
        ProjectRollup {
            project_key,
            total: self.total,
            done: self.done,
            at_risk: self.at_risk,
            by_level: self.by_level,
            average_score: self.average(),
            cost_at_risk: sum_money(self.cost_at_risk),
            total_daily_cost: sum_money(self.total_daily_cost),
            top_risks: self.top,
        }
    }
}

/// Builds the blocker graph from snapshots.
///
/// Sprint membership is the union of `sprint_keys` and the snapshots' keys.
/// Both link directions are read (`blocked_by` and `blocks`), and an edge
/// seen twice is kept once. `resolved` comes from the blocker's own
/// snapshot when the blocker is in the sprint (fresher than link data),
/// otherwise from the link; if link data disagrees, the edge is unresolved
/// (conservative).
pub fn blocker_graph<'a>(
    sprint_keys: impl IntoIterator<Item = &'a str>,
    snapshots: &[IssueSnapshot],
) -> BlockerGraph {
    let mut members: BTreeSet<String> = sprint_keys.into_iter().map(str::to_owned).collect();
    let mut own_done: BTreeMap<&str, bool> = BTreeMap::new();
    for s in snapshots {
        members.insert(s.key.clone());
        let e = own_done.entry(s.key.as_str()).or_insert(true);
        *e &= s.status_category.is_done();
    }
    let mut edges: BTreeMap<(String, String), bool> = BTreeMap::new();
    let mut put = |from: &str, to: &str, link_done: bool| {
        let resolved = own_done.get(from).copied().unwrap_or(link_done);
        edges
            .entry((from.to_owned(), to.to_owned()))
            .and_modify(|r| *r &= resolved)
            .or_insert(resolved);
    };
    for s in snapshots {
        for b in &s.blocked_by {
            put(&b.key, &s.key, b.status_category.is_done());
        }
        for b in &s.blocks {
            put(&s.key, &b.key, s.status_category.is_done());
        }
    }
    let mut nodes: BTreeSet<String> = members.clone();
    for (from, to) in edges.keys() {
        nodes.insert(from.clone());
        nodes.insert(to.clone());
    }
    let mut nodes: Vec<String> = nodes.into_iter().collect();
    nodes.sort_by(|a, b| issue_key_cmp(a, b));
    let outside_sprint = nodes
        .iter()
        .filter(|n| !members.contains(*n))
        .cloned()
        .collect();
    let mut edges: Vec<BlockerEdge> = edges
        .into_iter()
        .map(|((from, to), resolved)| BlockerEdge { from, to, resolved })
        .collect();
    edges.sort_by(|a, b| issue_key_cmp(&a.from, &b.from).then_with(|| issue_key_cmp(&a.to, &b.to)));
    BlockerGraph {
        nodes,
        outside_sprint,
        edges,
    }
}

/// Rolls up one sprint.
///
/// `risks` are the sprint's assessed issues (any order); `snapshots` are the
/// same issues' snapshots, used only for the blocker graph (issues missing
/// from `snapshots` still appear as graph nodes, without edges of their own).
pub fn rollup_sprint(
    sprint_id: &str,
    sprint_name: &str,
    risks: &[IssueRisk],
    snapshots: &[IssueSnapshot],
) -> SprintRollup {
    let blocker_graph = blocker_graph(risks.iter().map(|r| r.issue_key.as_str()), snapshots);
    let p = aggregate(risks).into_project(String::new());
    SprintRollup {
        sprint_id: sprint_id.to_owned(),
        sprint_name: sprint_name.to_owned(),
        total: p.total,
        done: p.done,
        at_risk: p.at_risk,
        by_level: p.by_level,
        top_risks: p.top_risks,
        blocker_graph,
        cost_at_risk: p.cost_at_risk,
        total_daily_cost: p.total_daily_cost,
        average_score: p.average_score,
    }
}

/// Rolls up many projects: one entry per `project_key` (sorted) plus the
/// overall picture under [`OVERALL_KEY`].
pub fn rollup_portfolio(risks: &[IssueRisk]) -> PortfolioRollup {
    let mut by_project: BTreeMap<&str, Vec<&IssueRisk>> = BTreeMap::new();
    for r in risks {
        by_project
            .entry(r.project_key.as_str())
            .or_default()
            .push(r);
    }
    let projects = by_project
        .into_iter()
        .map(|(key, rs)| aggregate(rs).into_project(key.to_owned()))
        .collect();
    PortfolioRollup {
        projects,
        overall: aggregate(risks).into_project(OVERALL_KEY.to_owned()),
    }
}
