//! Response types, shaped like Atlassian's documented JSON.
//!
//! Field names follow Jira Cloud platform REST API v3 and Jira Software
//! (agile) REST API 1.0 exactly (`fields.status.statusCategory.key`,
//! `changelog.histories[].items[].fromString`, ...). Only what Keel reads is
//! modelled; unknown keys are ignored, except on [`IssueFields`] where they
//! are kept in [`IssueFields::extra`] because custom fields (story points)
//! live there.
//!
//! Deserialization is lenient where Jira itself is inconsistent:
//!
//! * date-times accept Jira's `2024-01-15T10:30:00.000+0000`, RFC 3339
//!   (`+10:00`, `Z`, as the agile API writes sprint dates) and epoch
//!   milliseconds;
//! * ids accept strings or numbers;
//! * `fields.comment` accepts the platform API's page object
//!   (`{comments, startAt, maxResults, total}`) or a bare array (as the
//!   agile API's documented example shows);
//! * `null` collections read as empty.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Parses the date-time formats Jira emits; `None` if none fits.
pub fn parse_jira_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    // Jira's own format: 2024-01-15T10:30:00.000+0000 (chrono's %z also
    // accepts +00:00).
    if let Ok(dt) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(dt.with_timezone(&Utc));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    // Offset-less timestamps do occur in some custom fields; read them as UTC.
    if let Ok(dt) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(dt.and_utc());
    }
    None
}

pub(crate) mod de {
    //! Lenient `deserialize_with` helpers (see the module docs).
    use super::*;
    use serde::de::Error;

    pub fn opt_datetime<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => parse_jira_datetime(&s)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("unrecognised date-time {s:?}"))),
            Some(Value::Number(n)) => n
                .as_i64()
                .and_then(DateTime::from_timestamp_millis)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("bad epoch milliseconds {n}"))),
            Some(other) => Err(D::Error::custom(format!(
                "expected a date-time, got {other}"
            ))),
        }
    }

    pub fn opt_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) => {
                let s = s.trim();
                // "2024-02-01", tolerating a full timestamp.
                NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d")
                    .map(Some)
                    .map_err(|_| D::Error::custom(format!("unrecognised date {s:?}")))
            }
        }
    }

    pub fn opt_stringish<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(other) => Some(other.to_string()),
        })
    }

    pub fn stringish<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(opt_stringish(d)?.unwrap_or_default())
    }

    pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Default + Deserialize<'de>,
    {
        Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
    }

    pub fn comment_field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CommentPage>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Page(CommentPage),
            List(Vec<Comment>),
        }
        Ok(match Option::<Either>::deserialize(d)? {
            None => None,
            Some(Either::Page(p)) => Some(p),
            Some(Either::List(comments)) => Some(CommentPage {
                start_at: 0,
                max_results: Some(comments.len() as u64),
                total: Some(comments.len() as u64),
                comments,
            }),
        })
    }
}

/// A Jira user as embedded in issues, comments and changelogs (and returned
/// by `/myself`). Cloud identifies people by `accountId`; `displayName` is
/// for humans and may be hidden by privacy settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JiraUser {
    /// Stable, unique id (e.g. `5b10a2844c20165700ede21g`).
    #[serde(default)]
    pub account_id: Option<String>,
    /// Human name, e.g. "Mia Krystof".
    #[serde(default)]
    pub display_name: Option<String>,
    /// Only visible with the right privacy settings.
    #[serde(default)]
    pub email_address: Option<String>,
    /// Whether the account is active.
    #[serde(default)]
    pub active: Option<bool>,
    /// `"atlassian"` (a person), `"app"` (a bot such as Automation) or
    /// `"customer"`.
    #[serde(default)]
    pub account_type: Option<String>,
    /// IANA zone, e.g. `"Australia/Sydney"`.
    #[serde(default)]
    pub time_zone: Option<String>,
}

impl JiraUser {
    /// The identifier Keel uses for a person: `accountId` (unique and stable
    /// across renames), else `displayName`. `None` when both are blank.
    pub fn person_id(&self) -> Option<&str> {
        [self.account_id.as_deref(), self.display_name.as_deref()]
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|s| !s.is_empty())
    }

    /// Whether this is an app/bot account (Automation for Jira, integrations)
    /// rather than a person.
    pub fn is_app(&self) -> bool {
        self.account_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("app"))
    }
}

/// `fields.status.statusCategory`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCategoryRef {
    /// `"new"`, `"indeterminate"` or `"done"` (`"undefined"` for broken workflows).
    #[serde(default)]
    pub key: String,
    /// Display name, e.g. "In Progress".
    #[serde(default)]
    pub name: Option<String>,
    /// Colour name, e.g. "yellow".
    #[serde(default)]
    pub color_name: Option<String>,
}

/// `fields.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Status id.
    #[serde(default, deserialize_with = "de::opt_stringish")]
    pub id: Option<String>,
    /// Workflow status name, e.g. "In Review".
    #[serde(default)]
    pub name: String,
    /// The coarse bucket; absent in some abbreviated payloads.
    #[serde(default)]
    pub status_category: Option<StatusCategoryRef>,
}

/// A `{id, name}` reference (priority, issue type, resolution).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedRef {
    /// Id.
    #[serde(default, deserialize_with = "de::opt_stringish")]
    pub id: Option<String>,
    /// Name, e.g. "High" or "Story".
    #[serde(default)]
    pub name: String,
}

/// `fields.project`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRef {
    /// Project id.
    #[serde(default, deserialize_with = "de::opt_stringish")]
    pub id: Option<String>,
    /// Project key, e.g. "ED".
    #[serde(default)]
    pub key: String,
    /// Project name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `fields.issuelinks[].type`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IssueLinkType {
    /// Link type id.
    #[serde(default, deserialize_with = "de::opt_stringish")]
    pub id: Option<String>,
    /// e.g. "Blocks".
    #[serde(default)]
    pub name: String,
    /// e.g. "is blocked by".
    #[serde(default)]
    pub inward: String,
    /// e.g. "blocks".
    #[serde(default)]
    pub outward: String,
}

/// The abbreviated fields Jira embeds for the issue on the far end of a link.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkedIssueFields {
    /// Title.
    #[serde(default)]
    pub summary: Option<String>,
    /// Status (with category in Cloud responses).
    #[serde(default)]
    pub status: Option<Status>,
    /// Priority.
    #[serde(default)]
    pub priority: Option<NamedRef>,
    /// Issue type.
    #[serde(default)]
    pub issuetype: Option<NamedRef>,
}

/// `inwardIssue` / `outwardIssue` of a link.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkedIssueRef {
    /// Issue id.
    #[serde(default, deserialize_with = "de::stringish")]
    pub id: String,
    /// Issue key.
    #[serde(default)]
    pub key: String,
    /// Abbreviated fields.
    #[serde(default)]
    pub fields: LinkedIssueFields,
}

/// One entry of `fields.issuelinks`. Seen from the issue that holds it:
/// `inwardIssue: X` reads "this issue *<type.inward>* X" (e.g. "is blocked by
/// X"); `outwardIssue: X` reads "this issue *<type.outward>* X" ("blocks X").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueLink {
    /// Link id.
    #[serde(default, deserialize_with = "de::opt_stringish")]
    pub id: Option<String>,
    /// Link type.
    #[serde(default, rename = "type")]
    pub link_type: IssueLinkType,
    /// The other issue when this issue is on the outward end.
    #[serde(default)]
    pub inward_issue: Option<LinkedIssueRef>,
    /// The other issue when this issue is on the inward end.
    #[serde(default)]
    pub outward_issue: Option<LinkedIssueRef>,
}

/// One comment. `body` is Atlassian Document Format in API v3 and a plain
/// (wiki markup) string in the agile API; [`Comment::text`] handles both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    /// Comment id.
    #[serde(default, deserialize_with = "de::stringish")]
    pub id: String,
    /// Who wrote it.
    #[serde(default)]
    pub author: Option<JiraUser>,
    /// ADF document (or a string).
    #[serde(default)]
    pub body: Value,
    /// When it was posted.
    #[serde(default, deserialize_with = "de::opt_datetime")]
    pub created: Option<DateTime<Utc>>,
    /// When it was last edited.
    #[serde(default, deserialize_with = "de::opt_datetime")]
    pub updated: Option<DateTime<Utc>>,
}

impl Comment {
    /// Plain text of the body (see [`crate::adf::to_plain_text`]).
    pub fn text(&self) -> String {
        crate::adf::to_plain_text(&self.body)
    }
}

/// A page of comments: `fields.comment` and `GET /issue/{key}/comment`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentPage {
    /// Offset of the first comment.
    #[serde(default)]
    pub start_at: u64,
    /// Page size Jira used.
    #[serde(default)]
    pub max_results: Option<u64>,
    /// Total number of comments on the issue.
    #[serde(default)]
    pub total: Option<u64>,
    /// The comments of this page.
    #[serde(default, deserialize_with = "de::null_default")]
    pub comments: Vec<Comment>,
}

impl CommentPage {
    /// Whether Jira holds more comments than this page carries.
    pub fn is_partial(&self) -> bool {
        self.total
            .is_some_and(|t| t > self.start_at + self.comments.len() as u64 || self.start_at > 0)
    }
}

/// `changelog.histories[].items[]`: one field change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeItem {
    /// Field name, e.g. "status", "assignee", "Story Points".
    #[serde(default)]
    pub field: String,
    /// `"jira"` or `"custom"`.
    #[serde(default)]
    pub fieldtype: Option<String>,
    /// Field id, e.g. "status" or "customfield_10016".
    #[serde(default)]
    pub field_id: Option<String>,
    /// Raw previous value (ids: status id, assignee accountId).
    #[serde(default, deserialize_with = "de::opt_stringish")]
    pub from: Option<String>,
    /// Display form of the previous value (status name, person name).
    #[serde(default, deserialize_with = "de::opt_stringish")]
    pub from_string: Option<String>,
    /// Raw new value.
    #[serde(default, deserialize_with = "de::opt_stringish")]
    pub to: Option<String>,
    /// Display form of the new value.
    #[serde(default, deserialize_with = "de::opt_stringish")]
    pub to_string: Option<String>,
}

/// One changelog entry: who changed what, when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// Changelog id (unique per issue; used to merge pages).
    #[serde(default, deserialize_with = "de::stringish")]
    pub id: String,
    /// Who made the change (absent for some system changes).
    #[serde(default)]
    pub author: Option<JiraUser>,
    /// When.
    #[serde(default, deserialize_with = "de::opt_datetime")]
    pub created: Option<DateTime<Utc>>,
    /// The field changes.
    #[serde(default, deserialize_with = "de::null_default")]
    pub items: Vec<ChangeItem>,
}

/// The changelog embedded by `expand=changelog` (`histories`, not `values`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Changelog {
    /// Offset of the first entry.
    #[serde(default)]
    pub start_at: u64,
    /// Page size Jira used.
    #[serde(default)]
    pub max_results: Option<u64>,
    /// Total number of entries on the issue.
    #[serde(default)]
    pub total: Option<u64>,
    /// Entries.
    #[serde(default, deserialize_with = "de::null_default")]
    pub histories: Vec<History>,
}

impl Changelog {
    /// Whether Jira holds more entries than were embedded.
    pub fn is_partial(&self) -> bool {
        self.total
            .is_some_and(|t| t > self.start_at + self.histories.len() as u64 || self.start_at > 0)
    }
}

/// `GET /rest/api/3/issue/{key}/changelog`: a `PageBeanChangelog`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangelogPage {
    /// Offset of the first entry.
    #[serde(default)]
    pub start_at: u64,
    /// Page size.
    #[serde(default)]
    pub max_results: Option<u64>,
    /// Total entries.
    #[serde(default)]
    pub total: Option<u64>,
    /// Whether this is the last page.
    #[serde(default)]
    pub is_last: Option<bool>,
    /// Entries, oldest first.
    #[serde(default, deserialize_with = "de::null_default")]
    pub values: Vec<History>,
}

/// `issue.fields`. Standard fields are typed; everything else (custom fields
/// such as story points) stays in [`IssueFields::extra`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IssueFields {
    /// Title.
    #[serde(default)]
    pub summary: Option<String>,
    /// Workflow status.
    #[serde(default)]
    pub status: Option<Status>,
    /// Priority.
    #[serde(default)]
    pub priority: Option<NamedRef>,
    /// Current assignee; `null` when unassigned.
    #[serde(default)]
    pub assignee: Option<JiraUser>,
    /// Reporter.
    #[serde(default)]
    pub reporter: Option<JiraUser>,
    /// Creation time.
    #[serde(default, deserialize_with = "de::opt_datetime")]
    pub created: Option<DateTime<Utc>>,
    /// Last update.
    #[serde(default, deserialize_with = "de::opt_datetime")]
    pub updated: Option<DateTime<Utc>>,
    /// Resolution time.
    #[serde(default, deserialize_with = "de::opt_datetime")]
    pub resolutiondate: Option<DateTime<Utc>>,
    /// Due date, `"2024-02-01"`.
    #[serde(default, deserialize_with = "de::opt_date")]
    pub duedate: Option<NaiveDate>,
    /// Issue links.
    #[serde(default, deserialize_with = "de::null_default")]
    pub issuelinks: Vec<IssueLink>,
    /// Comments (possibly only the first page).
    #[serde(default, deserialize_with = "de::comment_field")]
    pub comment: Option<CommentPage>,
    /// Project.
    #[serde(default)]
    pub project: Option<ProjectRef>,
    /// Issue type.
    #[serde(default)]
    pub issuetype: Option<NamedRef>,
    /// Labels.
    #[serde(default, deserialize_with = "de::null_default")]
    pub labels: Vec<String>,
    /// Every other field, by id (`customfield_10016`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl IssueFields {
    /// A numeric custom field (story points are a number or `null`; some
    /// sites store them as strings).
    pub fn number(&self, field_id: &str) -> Option<f64> {
        match self.extra.get(field_id)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|v: &f64| v.is_finite())
    }
}

/// One issue, from `GET /issue/{key}`, JQL search or the agile API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JiraIssue {
    /// Issue id, e.g. "10002".
    #[serde(default, deserialize_with = "de::stringish")]
    pub id: String,
    /// Issue key, e.g. "ED-1".
    pub key: String,
    /// REST URL of the issue.
    #[serde(default, rename = "self")]
    pub self_url: Option<String>,
    /// Requested fields.
    #[serde(default)]
    pub fields: IssueFields,
    /// Present with `expand=changelog`; after [`crate::JiraClient::issue`] it
    /// holds every entry, oldest first.
    #[serde(default)]
    pub changelog: Option<Changelog>,
}

impl JiraIssue {
    /// Comments carried by the issue (all of them after
    /// [`crate::JiraClient::issue`]).
    pub fn comments(&self) -> &[Comment] {
        self.fields
            .comment
            .as_ref()
            .map(|c| c.comments.as_slice())
            .unwrap_or(&[])
    }

    /// Changelog entries carried by the issue.
    pub fn histories(&self) -> &[History] {
        self.changelog
            .as_ref()
            .map(|c| c.histories.as_slice())
            .unwrap_or(&[])
    }

    /// Project key: `fields.project.key`, else the part of the issue key
    /// before the last `-`.
    pub fn project_key(&self) -> String {
        if let Some(p) = self.fields.project.as_ref().filter(|p| !p.key.is_empty()) {
            return p.key.clone();
        }
        self.key
            .rsplit_once('-')
            .map(|(p, _)| p.to_string())
            .unwrap_or_else(|| self.key.clone())
    }
}

/// `POST /rest/api/3/search/jql` response (enhanced search, token paging).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage {
    /// Issues of this page.
    #[serde(default, deserialize_with = "de::null_default")]
    pub issues: Vec<JiraIssue>,
    /// Token for the next page; absent on the last page.
    #[serde(default)]
    pub next_page_token: Option<String>,
    /// Whether this is the last page.
    #[serde(default)]
    pub is_last: Option<bool>,
}

/// Agile `GET /sprint/{id}/issue` (and board issue) response: offset paging.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgileIssuePage {
    /// Offset of the first issue.
    #[serde(default)]
    pub start_at: u64,
    /// Page size Jira used (it may lower what was asked for).
    #[serde(default)]
    pub max_results: Option<u64>,
    /// Total issues.
    #[serde(default)]
    pub total: Option<u64>,
    /// Issues.
    #[serde(default, deserialize_with = "de::null_default")]
    pub issues: Vec<JiraIssue>,
}

/// An agile sprint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sprint {
    /// Sprint id.
    pub id: u64,
    /// REST URL.
    #[serde(default, rename = "self")]
    pub self_url: Option<String>,
    /// `"future"`, `"active"` or `"closed"`.
    #[serde(default)]
    pub state: String,
    /// e.g. "sprint 1".
    #[serde(default)]
    pub name: String,
    /// Planned start.
    #[serde(default, deserialize_with = "de::opt_datetime")]
    pub start_date: Option<DateTime<Utc>>,
    /// Planned end.
    #[serde(default, deserialize_with = "de::opt_datetime")]
    pub end_date: Option<DateTime<Utc>>,
    /// When it was completed (closed sprints).
    #[serde(default, deserialize_with = "de::opt_datetime")]
    pub complete_date: Option<DateTime<Utc>>,
    /// When it was created.
    #[serde(default, deserialize_with = "de::opt_datetime")]
    pub created_date: Option<DateTime<Utc>>,
    /// Board the sprint was created on.
    #[serde(default)]
    pub origin_board_id: Option<u64>,
    /// Sprint goal.
    #[serde(default)]
    pub goal: Option<String>,
}

/// Agile `GET /board/{id}/sprint` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SprintPage {
    /// Offset.
    #[serde(default)]
    pub start_at: u64,
    /// Page size.
    #[serde(default)]
    pub max_results: Option<u64>,
    /// Total (not always sent).
    #[serde(default)]
    pub total: Option<u64>,
    /// Whether this is the last page.
    #[serde(default)]
    pub is_last: Option<bool>,
    /// Sprints.
    #[serde(default, deserialize_with = "de::null_default")]
    pub values: Vec<Sprint>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_jira_date_formats() {
        let want = DateTime::parse_from_rfc3339("2024-01-15T10:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for s in [
            "2024-01-15T10:30:00.000+0000",
            "2024-01-15T10:30:00+0000",
            "2024-01-15T20:30:00.000+1000",
            "2024-01-15T20:30:00.000+10:00",
            "2024-01-15T10:30:00Z",
            "2024-01-15T10:30:00.000",
        ] {
            assert_eq!(parse_jira_datetime(s), Some(want), "{s}");
        }
        assert_eq!(parse_jira_datetime("yesterday"), None);
    }

    #[test]
    fn lenient_fields() {
        let f: IssueFields = serde_json::from_value(json!({
            "created": 1705314600000i64,
            "updated": null,
            "duedate": "2024-02-01",
            "issuelinks": null,
            "comment": [{"id": 10000, "body": "plain v2 body", "created": "2024-01-15T10:30:00.000+0000"}],
            "customfield_10016": 5.0,
            "customfield_10028": "3"
        }))
        .unwrap();
        assert_eq!(f.created, parse_jira_datetime("2024-01-15T10:30:00Z"));
        assert_eq!(f.updated, None);
        assert_eq!(f.duedate, NaiveDate::from_ymd_opt(2024, 2, 1));
        assert!(f.issuelinks.is_empty());
        let c = f.comment.as_ref().unwrap();
        assert_eq!(c.comments[0].id, "10000");
        assert_eq!(c.comments[0].text(), "plain v2 body");
        assert!(!c.is_partial());
        assert_eq!(f.number("customfield_10016"), Some(5.0));
        assert_eq!(f.number("customfield_10028"), Some(3.0));
        assert_eq!(f.number("customfield_99999"), None);
    }

    #[test]
    fn bad_date_is_an_error_with_a_path() {
        let err = serde_json::from_value::<IssueFields>(json!({"created": "last tuesday"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unrecognised date-time"), "{err}");
    }

    #[test]
    fn project_key_falls_back_to_issue_key() {
        let i = JiraIssue {
            key: "AB-C-12".into(),
            ..Default::default()
        };
        assert_eq!(i.project_key(), "AB-C");
    }
}
