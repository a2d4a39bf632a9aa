//! Changelog entries of a demo issue, derived from its [`Spec`]: story
//! points set, assignment and reassignment, the status walk (with review
//! bounces) and priority escalation, spread over the life.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::spec::{Spec, St, P, PEOPLE};

/// One changelog entry before rendering: when, who, which field change.
pub(crate) type Event = (DateTime<Utc>, P, Value);

/// The changelog events, oldest first, and its resolution time
/// (when it moved to Done).
pub(crate) fn events(
    s: &Spec,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Vec<Event>, Option<DateTime<Utc>>) {
    let life = (now - created).num_seconds() as f64;
    // Events sit at fixed fractions of the life, so that e.g. an
    // issue "In Progress" since 20 % of its life looks stuck when it is old.
    let at = |fraction: f64| created + Duration::seconds((life * fraction) as i64);
    let person = |p: P| (Some(PEOPLE[p.0].0), Some(PEOPLE[p.0].1));
    let mut events: Vec<Event> = Vec::new();

    if let Some(points) = s.points {
        let v = points.to_string();
        let item = change("Story point estimate", (None, None), (None, Some(&v)));
        events.push((at(0.04), s.reporter, item));
    }
    if let Some(first) = s.previous_assignee.or(s.assignee) {
        events.push((
            at(0.08),
            s.reporter,
            change("assignee", (None, None), person(first)),
        ));
    }
    if let (Some(prev), Some(cur)) = (s.previous_assignee, s.assignee) {
        events.push((
            at(0.14),
            prev,
            change("assignee", person(prev), person(cur)),
        ));
    }
    // To Do -> In Progress (-> In Review -> In Progress)* -> In Review -> Done.
    let mut path = Vec::new();
    if s.status != St::ToDo {
        path.push(St::InProgress);
        for _ in 0..s.review_bounces {
            path.extend([St::InReview, St::InProgress]);
        }
        if matches!(s.status, St::InReview | St::Done) {
            path.push(St::InReview);
        }
        if s.status == St::Done {
            path.push(St::Done);
        }
    }
    let worker = s.assignee.unwrap_or(s.reporter);
    let mut from = St::ToDo;
    let mut resolved = None;
    for (k, to) in path.into_iter().enumerate() {
        let t = at(0.2 + 0.07 * k as f64);
        let (fid, fname, ..) = from.parts();
        let (tid, tname, ..) = to.parts();
        events.push((
            t,
            worker,
            change("status", (Some(fid), Some(fname)), (Some(tid), Some(tname))),
        ));
        if to == St::Done {
            resolved = Some(t);
        }
        from = to;
    }
    if let Some(old) = s.escalated_from {
        let ((fid, fname), (tid, tname)) = (old.id_name(), s.priority.id_name());
        let item = change(
            "priority",
            (Some(fid), Some(fname)),
            (Some(tid), Some(tname)),
        );
        events.push((at(0.5), s.reporter, item));
    }
    events.sort_by_key(|e| e.0);
    (events, resolved)
}

/// A changelog item: `(raw value, display string)` before and after.
fn change(
    field: &str,
    from: (Option<&str>, Option<&str>),
    to: (Option<&str>, Option<&str>),
) -> Value {
    let field_id = if field == "Story point estimate" {
        "customfield_10016"
    } else {
        field
    };
    let fieldtype = if field_id.starts_with("customfield_") {
        "custom"
    } else {
        "jira"
    };
    json!({"field": field, "fieldtype": fieldtype, "fieldId": field_id,
           "from": from.0, "fromString": from.1, "to": to.0, "toString": to.1})
}
