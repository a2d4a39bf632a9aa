//! Input domain types: what the engine knows about an issue.
//!
//! These are deliberately *not* Jira's JSON. The Jira client elsewhere in
//! Keel maps REST payloads (fields, changelog, issue links, comments plus
//! the sentiment classifier's output) into these types, so the engine stays
//! independent of Jira API versions and is trivial to build in tests.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Jira's coarse workflow bucket (`statusCategory.key`).
///
/// Risk rules depend on the *category*, not on the free-form status name,
/// because every Jira project names its statuses differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusCategory {
    /// Not started (`"new"`, e.g. "To Do", "Backlog").
    New,
    /// In flight (`"indeterminate"`, e.g. "In Progress", "In Review").
    Indeterminate,
    /// Resolved (`"done"`). Done issues carry no delivery risk.
    Done,
}

impl StatusCategory {
    /// Maps Jira's `statusCategory.key` to a category.
    ///
    /// Unknown keys (Jira reports `"undefined"` for some broken workflows)
    /// are treated as [`StatusCategory::New`]: assuming unresolved work is
    /// the conservative choice for a risk engine.
    pub fn from_jira_key(key: &str) -> Self {
        match key.trim().to_ascii_lowercase().as_str() {
            "done" => Self::Done,
            "indeterminate" => Self::Indeterminate,
            _ => Self::New,
        }
    }

    /// The stable string form used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Indeterminate => "indeterminate",
            Self::Done => "done",
        }
    }

    /// Whether work in this category is finished.
    pub fn is_done(self) -> bool {
        self == Self::Done
    }
}

/// One field change from the issue changelog.
///
/// Only `"status"` and `"assignee"` are read by the engine; other fields are
/// accepted so the client can pass the changelog through unfiltered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// When the change happened.
    pub at: DateTime<Utc>,
    /// Changed field name, e.g. `"status"` or `"assignee"` (case-insensitive).
    pub field: String,
    /// Previous value (status name or assignee id); `None` when empty.
    #[serde(default)]
    pub from: Option<String>,
    /// New value; `None` when cleared (e.g. unassigned).
    #[serde(default)]
    pub to: Option<String>,
}

/// Another issue on the far end of a "blocks" link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkedIssue {
    /// Issue key, e.g. `"ABC-7"`.
    pub key: String,
    /// Category of the linked issue; a done blocker no longer blocks.
    pub status_category: StatusCategory,
    /// Title, kept for display in graphs and explanations.
    #[serde(default)]
    pub summary: String,
}

/// Sentiment label produced by the comment classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// Frustration, complaints, escalations.
    Negative,
    /// Neither.
    Neutral,
    /// Praise, agreement.
    Positive,
}

/// A comment reduced to what the risk model needs: when, who, and tone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommentSentiment {
    /// When the comment was posted.
    pub at: DateTime<Utc>,
    /// Author account id or display name.
    #[serde(default)]
    pub author: String,
    /// Classifier label; the engine counts `negative` labels.
    pub sentiment: Label,
    /// Classifier probability of `negative`; carried for consumers, the
    /// score uses the label so that a threshold change in the classifier is
    /// the single place that decides what "negative" means.
    #[serde(default)]
    pub negative_prob: f32,
}

/// Everything the engine knows about one issue at one point in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueSnapshot {
    /// Issue key, e.g. `"ABC-123"`.
    pub key: String,
    /// Project key, e.g. `"ABC"`; used to group the portfolio roll-up.
    pub project_key: String,
    /// Issue title.
    #[serde(default)]
    pub summary: String,
    /// Workflow status name, e.g. `"In Review"` (display only).
    #[serde(default)]
    pub status: String,
    /// Workflow bucket; drives time-in-status expectations and "done".
    pub status_category: StatusCategory,
    /// Jira priority name (`Highest`, `High`, `Medium`, `Low`, `Lowest`).
    #[serde(default)]
    pub priority: Option<String>,
    /// Current assignee, if any.
    #[serde(default)]
    pub assignee: Option<String>,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Last update time (informational).
    pub updated: DateTime<Utc>,
    /// Due date (a calendar date; the work is due by the end of that day).
    #[serde(default)]
    pub due_date: Option<NaiveDate>,
    /// Estimate; carried for consumers, not scored in this model version.
    #[serde(default)]
    pub story_points: Option<f64>,
    /// When the issue entered its current status (from the changelog);
    /// `None` means "since creation".
    #[serde(default)]
    pub status_changed_at: Option<DateTime<Utc>>,
    /// Field changes, any order; the engine sorts what it reads.
    #[serde(default)]
    pub changelog: Vec<ChangeEvent>,
    /// Issues that block this one.
    #[serde(default)]
    pub blocked_by: Vec<LinkedIssue>,
    /// Issues this one blocks.
    #[serde(default)]
    pub blocks: Vec<LinkedIssue>,
    /// Classified comments, any order.
    #[serde(default)]
    pub comments: Vec<CommentSentiment>,
    /// People involved (assignee, reporter, commenters). A set, so the JSON
    /// form is sorted and duplicates cannot inflate the cost of delay.
    #[serde(default)]
    pub people: BTreeSet<String>,
}

impl IssueSnapshot {
    /// Minimal snapshot with empty collections; handy for clients and tests
    /// that fill in only what they have.
    pub fn new(
        key: impl Into<String>,
        project_key: impl Into<String>,
        status_category: StatusCategory,
        created: DateTime<Utc>,
    ) -> Self {
        Self {
            key: key.into(),
            project_key: project_key.into(),
            summary: String::new(),
            status: String::new(),
            status_category,
            priority: None,
            assignee: None,
            created,
            updated: created,
            due_date: None,
            story_points: None,
            status_changed_at: None,
            changelog: Vec::new(),
            blocked_by: Vec::new(),
            blocks: Vec::new(),
            comments: Vec::new(),
            people: BTreeSet::new(),
        }
    }

    /// Distinct people involved: the `people` set plus the assignee and
    /// comment authors (in case the client did not fold them in). Blank
    /// names are ignored.
    pub fn involved_people(&self) -> BTreeSet<String> {
        self.people
            .iter()
            .map(String::as_str)
            .chain(self.assignee.as_deref())
            .chain(self.comments.iter().map(|c| c.author.as_str()))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Keys of blockers that are not done, sorted naturally and deduplicated.
    pub fn unresolved_blockers(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .blocked_by
            .iter()
            .filter(|b| !b.status_category.is_done())
            .map(|b| b.key.clone())
            .collect();
        keys.sort_by(|a, b| crate::util::issue_key_cmp(a, b));
        keys.dedup();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn status_category_from_jira_key() {
        assert_eq!(StatusCategory::from_jira_key("done"), StatusCategory::Done);
        assert_eq!(
            StatusCategory::from_jira_key(" Indeterminate "),
            StatusCategory::Indeterminate
        );
        assert_eq!(StatusCategory::from_jira_key("new"), StatusCategory::New);
        assert_eq!(
            StatusCategory::from_jira_key("undefined"),
            StatusCategory::New
        );
        assert_eq!(StatusCategory::Done.as_str(), "done");
    }

    #[test]
    fn involved_people_unions_and_dedups() {
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let mut s = IssueSnapshot::new("A-1", "A", StatusCategory::New, t);
        s.people = ["alice".to_string(), "bob".to_string(), " ".to_string()].into();
        s.assignee = Some("carol".into());
        s.comments.push(CommentSentiment {
            at: t,
            author: "alice".into(),
            sentiment: Label::Neutral,
            negative_prob: 0.1,
        });
        let p: Vec<_> = s.involved_people().into_iter().collect();
        assert_eq!(p, vec!["alice", "bob", "carol"]);
    }

    #[test]
    fn unresolved_blockers_skip_done_and_dedup() {
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let mut s = IssueSnapshot::new("A-1", "A", StatusCategory::New, t);
        for (k, c) in [
            ("A-10", StatusCategory::New),
            ("A-2", StatusCategory::Indeterminate),
            ("A-3", StatusCategory::Done),
            ("A-2", StatusCategory::Indeterminate),
        ] {
            s.blocked_by.push(LinkedIssue {
                key: k.into(),
                status_category: c,
                summary: String::new(),
            });
        }
        assert_eq!(s.unresolved_blockers(), vec!["A-2", "A-10"]);
    }
}
