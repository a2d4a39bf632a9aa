//! Jira issue → [`keel_risk::IssueSnapshot`], the risk engine's input.
//!
//! | snapshot field | taken from |
//! | --- | --- |
//! | `key`, `project_key` | `key`, `fields.project.key` (else the key's prefix) |
//! | `summary`, `status` | `fields.summary`, `fields.status.name` |
//! | `status_category` | `fields.status.statusCategory.key` |
//! | `priority` | `fields.priority.name` |
//! | `assignee` | `fields.assignee` person id (see below) |
//! | `created`, `updated` | `fields.created`, `fields.updated` (else `created`) |
//! | `due_date` | `fields.duedate` |
//! | `story_points` | the configured custom field, e.g. `fields.customfield_10016` |
//! | `status_changed_at` | newest changelog entry with a `status` item |
//! | `changelog` | every changelog item (see [`to_snapshot`] for values) |
//! | `blocked_by` / `blocks` | "Blocks" links: `inwardIssue` / `outwardIssue` |
//! | `comments` | `fields.comment.comments[]` + the caller's classifier |
//! | `people` | assignee, reporter, commenters, changelog authors (apps excluded) |
//!
//! People are identified by `accountId` (unique, survives renames), falling
//! back to `displayName`, *everywhere* (assignee, comment authors, changelog
//! assignee values), so the engine's people count and hand-off detection
//! compare like with like.

use std::collections::BTreeSet;

use keel_risk::{ChangeEvent, CommentSentiment, IssueSnapshot, Label, LinkedIssue, StatusCategory};

use crate::client::JiraClient;
use crate::error::{truncate, JiraError};
use crate::types::{ChangeItem, IssueLink, JiraIssue, JiraUser, LinkedIssueRef, Status};

/// Longest changelog value kept. The engine compares only status and
/// assignee values; other fields (a description edit) can carry kilobytes
/// that would bloat every stored snapshot.
pub const MAX_CHANGE_VALUE_CHARS: usize = 256;

/// What the caller's sentiment classifier says about one comment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sentiment {
    /// Label; the engine counts `Negative`.
    pub label: Label,
    /// Probability of negative, carried through for consumers.
    pub negative_prob: f32,
}

/// Maps a fetched issue into the risk engine's snapshot.
///
/// `story_points_field` is the custom field id holding the estimate (see
/// [`crate::JiraConfig::story_points_field`]). `classify` receives each
/// comment's plain text (ADF already flattened), in the order of
/// [`JiraIssue::comments`], and returns its sentiment; the sentiment engine
/// lives in another crate, so it is injected. Comments without a `created`
/// time are skipped (the engine needs *when*).
///
/// Changelog values: `status` items use `fromString`/`toString` (names, as
/// the engine counts back-and-forth by name); `assignee` items use
/// `from`/`to` (account ids, consistent with `assignee`), falling back to the
/// strings; other fields use the strings, falling back to the raw values.
///
/// Fails with [`JiraError::Mapping`] when `fields.created` or
/// `fields.status` is missing, which means the fields were not requested.
pub fn to_snapshot<F>(
    issue: &JiraIssue,
    story_points_field: &str,
    mut classify: F,
) -> Result<IssueSnapshot, JiraError>
where
    F: FnMut(&str) -> Sentiment,
{
    let missing = |what: &str| JiraError::Mapping {
        key: issue.key.clone(),
        message: format!("fields.{what} is missing (was it requested?)"),
    };
    let f = &issue.fields;
    let created = f.created.ok_or_else(|| missing("created"))?;
    let status = f.status.as_ref().ok_or_else(|| missing("status"))?;

    let mut snap = IssueSnapshot::new(
        issue.key.clone(),
        issue.project_key(),
        category(status),
        created,
    );
    snap.summary = f.summary.clone().unwrap_or_default();
    snap.status = status.name.clone();
    snap.priority = f
        .priority
        .as_ref()
        .map(|p| p.name.trim().to_string())
        .filter(|p| !p.is_empty());
    snap.assignee = f
        .assignee
        .as_ref()
        .and_then(|a| a.person_id())
        .map(str::to_owned);
    snap.updated = f.updated.unwrap_or(created);
    snap.due_date = f.duedate;
    snap.story_points = f.number(story_points_field.trim());

    let mut people: BTreeSet<String> = BTreeSet::new();
    add_person(f.assignee.as_ref(), &mut people);
    add_person(f.reporter.as_ref(), &mut people);

    for h in issue.histories() {
        add_person(h.author.as_ref(), &mut people);
        let Some(at) = h.created else { continue };
        for item in &h.items {
            let field = item.field.trim();
            if field.eq_ignore_ascii_case("status") {
                snap.status_changed_at = snap.status_changed_at.max(Some(at));
            }
            let (from, to) = change_values(field, item);
            snap.changelog.push(ChangeEvent {
                at,
                field: field.to_string(),
                from,
                to,
            });
        }
    }

    for c in issue.comments() {
        add_person(c.author.as_ref(), &mut people);
        let Some(at) = c.created else { continue };
        let s = classify(&c.text());
        snap.comments.push(CommentSentiment {
            at,
            author: c
                .author
                .as_ref()
                .and_then(|a| a.person_id())
                .unwrap_or_default()
                .to_string(),
            sentiment: s.label,
            negative_prob: s.negative_prob,
        });
    }
    snap.people = people;

    for link in &f.issuelinks {
        if !is_blocks(link) {
            continue;
        }
        // "this issue is blocked by inwardIssue" / "this issue blocks outwardIssue".
        if let Some(other) = &link.inward_issue {
            push_unique(&mut snap.blocked_by, linked(other));
        }
        if let Some(other) = &link.outward_issue {
            push_unique(&mut snap.blocks, linked(other));
        }
    }
    Ok(snap)
}

/// Adds a person (not an app/bot account) to the set.
fn add_person(u: Option<&JiraUser>, people: &mut BTreeSet<String>) {
    if let Some(id) = u.filter(|u| !u.is_app()).and_then(JiraUser::person_id) {
        people.insert(id.to_string());
    }
}

fn category(status: &Status) -> StatusCategory {
    match &status.status_category {
        Some(c) if !c.key.trim().is_empty() => StatusCategory::from_jira_key(&c.key),
        // Abbreviated payloads (linked issues in some responses) may lack the
        // category; recognise the stock "done" names, else assume unresolved.
        _ => match status.name.trim().to_ascii_lowercase().as_str() {
            "done" | "closed" | "resolved" => StatusCategory::Done,
            _ => StatusCategory::New,
        },
    }
}

/// The standard "Blocks" link type (inward "is blocked by", outward
/// "blocks"), recognised by name or, when a site renamed it, by its inward
/// description.
fn is_blocks(link: &IssueLink) -> bool {
    let t = &link.link_type;
    t.name.trim().eq_ignore_ascii_case("blocks")
        || t.inward.trim().eq_ignore_ascii_case("is blocked by")
}

fn linked(other: &LinkedIssueRef) -> LinkedIssue {
    LinkedIssue {
        key: other.key.clone(),
        status_category: other
            .fields
            .status
            .as_ref()
            .map(category)
            .unwrap_or(StatusCategory::New),
        summary: other.fields.summary.clone().unwrap_or_default(),
    }
}

fn push_unique(list: &mut Vec<LinkedIssue>, item: LinkedIssue) {
    if !item.key.is_empty() && !list.iter().any(|l| l.key == item.key) {
        list.push(item);
    }
}

impl JiraClient {
    /// [`to_snapshot`] with this client's configured story-points field.
    pub fn to_snapshot<F>(&self, issue: &JiraIssue, classify: F) -> Result<IssueSnapshot, JiraError>
    where
        F: FnMut(&str) -> Sentiment,
    {
        to_snapshot(issue, &self.config().story_points_field, classify)
    }
}

fn change_values(field: &str, item: &ChangeItem) -> (Option<String>, Option<String>) {
    let pick = |a: &Option<String>, b: &Option<String>| {
        [a, b]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
            .map(|s| truncate(s, MAX_CHANGE_VALUE_CHARS))
    };
    if field.eq_ignore_ascii_case("assignee") {
        (
            pick(&item.from, &item.from_string),
            pick(&item.to, &item.to_string),
        )
    } else {
        (
            pick(&item.from_string, &item.from),
            pick(&item.to_string, &item.to),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate, Utc};
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        crate::types::parse_jira_datetime(s).unwrap()
    }

    fn neutral(_: &str) -> Sentiment {
        Sentiment {
            label: Label::Neutral,
            negative_prob: 0.1,
        }
    }

    fn issue(v: serde_json::Value) -> JiraIssue {
        serde_json::from_value(v).unwrap()
    }

    fn user(id: &str, name: &str) -> serde_json::Value {
        json!({"accountId": id, "displayName": name, "accountType": "atlassian", "active": true})
    }

    #[test]
    fn maps_core_fields() {
        let i = issue(json!({
            "id": "10002", "key": "ED-1",
            "fields": {
                "summary": "Checkout fails",
                "status": {"name": "In Review", "statusCategory": {"key": "indeterminate", "name": "In Progress"}},
                "priority": {"name": "High", "id": "2"},
                "assignee": user("acc-ann", "Ann"),
                "reporter": user("acc-rob", "Rob"),
                "created": "2024-01-15T10:30:00.000+0000",
                "updated": "2024-01-20T08:00:00.000+0000",
                "duedate": "2024-02-01",
                "project": {"key": "ED", "id": "10000"},
                "customfield_10016": 5
            }
        }));
        let s = to_snapshot(&i, "customfield_10016", neutral).unwrap();
        assert_eq!(s.key, "ED-1");
        assert_eq!(s.project_key, "ED");
        assert_eq!(s.summary, "Checkout fails");
        assert_eq!(s.status, "In Review");
        assert_eq!(s.status_category, StatusCategory::Indeterminate);
        assert_eq!(s.priority.as_deref(), Some("High"));
        assert_eq!(s.assignee.as_deref(), Some("acc-ann"));
        assert_eq!(s.created, t("2024-01-15T10:30:00.000+0000"));
        assert_eq!(s.updated, t("2024-01-20T08:00:00.000+0000"));
        assert_eq!(s.due_date, NaiveDate::from_ymd_opt(2024, 2, 1));
        assert_eq!(s.story_points, Some(5.0));
        assert_eq!(s.status_changed_at, None);
        assert_eq!(
            s.people.iter().map(String::as_str).collect::<Vec<_>>(),
            vec!["acc-ann", "acc-rob"]
        );
        // A different story-points field id finds nothing.
        let s = to_snapshot(&i, "customfield_10028", neutral).unwrap();
        assert_eq!(s.story_points, None);
    }

    #[test]
    fn changelog_status_time_values_and_people() {
        let i = issue(json!({
            "key": "ED-2",
            "fields": {
                "status": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}},
                "created": "2024-01-01T09:00:00.000+0000",
                "assignee": null
            },
            "changelog": {"startAt": 0, "maxResults": 3, "total": 3, "histories": [
                {"id": "3", "author": user("acc-bot", "Automation"), "created": "2024-01-05T09:00:00.000+0000",
                 "items": [{"field": "assignee", "fieldtype": "jira", "fieldId": "assignee",
                            "from": "acc-ann", "fromString": "Ann", "to": null, "toString": null}]},
                {"id": "1", "author": user("acc-ann", "Ann"), "created": "2024-01-02T09:00:00.000+0000",
                 "items": [{"field": "status", "fieldtype": "jira", "fieldId": "status",
                            "from": "10000", "fromString": "To Do", "to": "3", "toString": "In Progress"}]},
                {"id": "2", "author": {"accountId": "bot-1", "displayName": "Automation for Jira", "accountType": "app"},
                 "created": "2024-01-03T09:00:00.000+0000",
                 "items": [{"field": "status", "from": "3", "fromString": "In Progress", "to": "10001", "toString": "Done"},
                           {"field": "description", "fromString": null, "toString": "x".repeat(1000)}]}
            ]}
        }));
        let s = to_snapshot(&i, "customfield_10016", neutral).unwrap();
        assert_eq!(s.status_changed_at, Some(t("2024-01-03T09:00:00.000+0000")));
        assert_eq!(s.assignee, None);
        assert_eq!(s.changelog.len(), 4);
        let assignee = s.changelog.iter().find(|e| e.field == "assignee").unwrap();
        assert_eq!(
            (assignee.from.as_deref(), assignee.to.as_deref()),
            (Some("acc-ann"), None)
        );
        let status = s
            .changelog
            .iter()
            .find(|e| e.to.as_deref() == Some("In Progress"))
            .unwrap();
        assert_eq!(status.from.as_deref(), Some("To Do"));
        let desc = s
            .changelog
            .iter()
            .find(|e| e.field == "description")
            .unwrap();
        assert_eq!(desc.from, None);
        assert_eq!(
            desc.to.as_ref().unwrap().chars().count(),
            MAX_CHANGE_VALUE_CHARS + 1
        );
        // App accounts are not people.
        assert_eq!(
            s.people.iter().map(String::as_str).collect::<Vec<_>>(),
            vec!["acc-ann", "acc-bot"]
        );
    }

    #[test]
    fn blocks_links_both_directions() {
        let blocks = json!({"id": "10000", "name": "Blocks", "inward": "is blocked by", "outward": "blocks"});
        let renamed = json!({"id": "10005", "name": "Dependency", "inward": "is blocked by", "outward": "blocks"});
        let relates = json!({"id": "10003", "name": "Relates", "inward": "relates to", "outward": "relates to"});
        let i = issue(json!({
            "key": "ED-3",
            "fields": {
                "status": {"name": "To Do", "statusCategory": {"key": "new"}},
                "created": "2024-01-01T09:00:00.000+0000",
                "issuelinks": [
                    {"id": "1", "type": blocks, "inwardIssue": {"id": "1", "key": "ED-10",
                        "fields": {"summary": "API", "status": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}}}}},
                    {"id": "2", "type": blocks, "inwardIssue": {"id": "2", "key": "ED-11",
                        "fields": {"status": {"name": "Closed"}}}},
                    {"id": "3", "type": blocks, "outwardIssue": {"id": "3", "key": "ED-12",
                        "fields": {"summary": "UI", "status": {"name": "Open"}}}},
                    {"id": "4", "type": renamed, "inwardIssue": {"id": "4", "key": "OPS-1",
                        "fields": {"status": {"name": "Done", "statusCategory": {"key": "done"}}}}},
                    {"id": "5", "type": relates, "inwardIssue": {"id": "5", "key": "ED-99", "fields": {}}},
                    {"id": "6", "type": blocks, "inwardIssue": {"id": "1", "key": "ED-10", "fields": {}}}
                ]
            }
        }));
        let s = to_snapshot(&i, "customfield_10016", neutral).unwrap();
        let keys = |v: &[LinkedIssue]| v.iter().map(|l| l.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&s.blocked_by), vec!["ED-10", "ED-11", "OPS-1"]);
        assert_eq!(keys(&s.blocks), vec!["ED-12"]);
        assert_eq!(s.blocked_by[0].summary, "API");
        assert_eq!(
            s.blocked_by[0].status_category,
            StatusCategory::Indeterminate
        );
        assert_eq!(s.blocked_by[1].status_category, StatusCategory::Done);
        assert_eq!(s.blocks[0].status_category, StatusCategory::New);
        assert_eq!(s.unresolved_blockers(), vec!["ED-10"]);
    }

    #[test]
    fn comments_are_classified_in_order() {
        let body = |t: &str| {
            json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": t}]}]})
        };
        let i = issue(json!({
            "key": "ED-4",
            "fields": {
                "status": {"name": "To Do", "statusCategory": {"key": "new"}},
                "created": "2024-01-01T09:00:00.000+0000",
                "comment": {"startAt": 0, "maxResults": 3, "total": 3, "comments": [
                    {"id": "1", "author": user("acc-ann", "Ann"), "body": body("This is blocked again, very frustrating"),
                     "created": "2024-01-02T09:00:00.000+0000"},
                    {"id": "2", "author": {"displayName": "Legacy Name"}, "body": body("Looks good"),
                     "created": "2024-01-03T09:00:00.000+0000"},
                    {"id": "3", "author": user("acc-ann", "Ann"), "body": body("no date")}
                ]}
            }
        }));
        let mut seen = Vec::new();
        let s = to_snapshot(&i, "customfield_10016", |text| {
            seen.push(text.to_string());
            if text.contains("frustrating") {
                Sentiment {
                    label: Label::Negative,
                    negative_prob: 0.9,
                }
            } else {
                Sentiment {
                    label: Label::Positive,
                    negative_prob: 0.05,
                }
            }
        })
        .unwrap();
        assert_eq!(
            seen,
            vec!["This is blocked again, very frustrating", "Looks good"]
        );
        assert_eq!(s.comments.len(), 2);
        assert_eq!(s.comments[0].sentiment, Label::Negative);
        assert_eq!(s.comments[0].author, "acc-ann");
        assert!((s.comments[0].negative_prob - 0.9).abs() < 1e-6);
        assert_eq!(s.comments[1].author, "Legacy Name");
        assert_eq!(s.comments[1].at, t("2024-01-03T09:00:00.000+0000"));
        assert!(s.people.contains("Legacy Name"));
    }

    #[test]
    fn missing_required_fields_are_mapping_errors() {
        let i = issue(json!({"key": "ED-5", "fields": {"status": {"name": "To Do"}}}));
        let e = to_snapshot(&i, "customfield_10016", neutral).unwrap_err();
        assert!(matches!(e, JiraError::Mapping { .. }));
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("fields.created"), "{e}");
        let i =
            issue(json!({"key": "ED-5", "fields": {"created": "2024-01-01T09:00:00.000+0000"}}));
        assert!(to_snapshot(&i, "customfield_10016", neutral)
            .unwrap_err()
            .to_string()
            .contains("fields.status"));
    }
}
