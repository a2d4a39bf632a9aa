//! The compact description of a demo issue ([`Spec`]) and the cast of
//! people. [`super::build`] turns specs into Jira JSON relative to `now`.

/// A demo person (index into [`PEOPLE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct P(pub usize);

pub(crate) const PRIYA: P = P(0);
pub(crate) const MARCUS: P = P(1);
pub(crate) const LENA: P = P(2);
pub(crate) const TOMAS: P = P(3);
pub(crate) const AIKO: P = P(4);
pub(crate) const SAM: P = P(5);
/// An app account: Jira automation. Keel leaves app accounts out of
/// `people`, so the demo shows that too.
pub(crate) const BOT: P = P(6);

/// `(accountId, displayName, email, accountType)`. Invented people; the
/// `demo-` account ids make them easy to spot in stored results.
pub(crate) const PEOPLE: [(&str, &str, &str, &str); 7] = [
    (
        "712020:demo-0001-priya",
        "Priya Raman (demo)",
        "priya@keel.example",
        "atlassian",
    ),
    (
        "712020:demo-0002-marcus",
        "Marcus Okafor (demo)",
        "marcus@keel.example",
        "atlassian",
    ),
    (
        "712020:demo-0003-lena",
        "Lena Fischer (demo)",
        "lena@keel.example",
        "atlassian",
    ),
    (
        "712020:demo-0004-tomas",
        "Tomás Herrera (demo)",
        "tomas@keel.example",
        "atlassian",
    ),
    (
        "712020:demo-0005-aiko",
        "Aiko Tanaka (demo)",
        "aiko@keel.example",
        "atlassian",
    ),
    (
        "712020:demo-0006-sam",
        "Sam Whitfield (demo)",
        "sam@keel.example",
        "atlassian",
    ),
    (
        "557058:demo-automation",
        "Automation for Jira",
        "automation@keel.example",
        "app",
    ),
];

/// Issue type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Story,
    Bug,
    Task,
}

impl Kind {
    pub(crate) fn id_name(self) -> (&'static str, &'static str) {
        match self {
            Kind::Story => ("10001", "Story"),
            Kind::Bug => ("10004", "Bug"),
            Kind::Task => ("10002", "Task"),
        }
    }
}

/// Workflow status; ids and categories as in a default Jira Software
/// workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum St {
    ToDo,
    InProgress,
    InReview,
    Done,
}

impl St {
    /// `(id, name, category id, category key, colour, category name)`.
    pub(crate) fn parts(
        self,
    ) -> (
        &'static str,
        &'static str,
        u32,
        &'static str,
        &'static str,
        &'static str,
    ) {
        match self {
            St::ToDo => ("10000", "To Do", 2, "new", "blue-gray", "To Do"),
            St::InProgress => (
                "3",
                "In Progress",
                4,
                "indeterminate",
                "yellow",
                "In Progress",
            ),
            St::InReview => (
                "10100",
                "In Review",
                4,
                "indeterminate",
                "yellow",
                "In Progress",
            ),
            St::Done => ("10001", "Done", 3, "done", "green", "Done"),
        }
    }
}

/// Priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pri {
    Highest,
    High,
    Medium,
    Low,
}

impl Pri {
    pub(crate) fn id_name(self) -> (&'static str, &'static str) {
        match self {
            Pri::Highest => ("1", "Highest"),
            Pri::High => ("2", "High"),
            Pri::Medium => ("3", "Medium"),
            Pri::Low => ("4", "Low"),
        }
    }
}

/// One demo issue. Times are relative to `now` so that the demo always has
/// overdue, stale and fresh work, whenever it is started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub key: &'static str,
    pub kind: Kind,
    pub summary: &'static str,
    pub status: St,
    pub priority: Pri,
    pub assignee: Option<P>,
    /// Assigned to this person first, then reassigned to `assignee`.
    pub previous_assignee: Option<P>,
    pub reporter: P,
    pub created_days_ago: i64,
    /// Negative: overdue by that many days.
    pub due_in_days: Option<i64>,
    pub points: Option<f64>,
    /// Keys of the issues that block this one.
    pub blocked_by: &'static [&'static str],
    pub labels: &'static [&'static str],
    /// In the active sprint of the demo board.
    pub in_sprint: bool,
    /// Times the issue went In Review → In Progress.
    pub review_bounces: u8,
    /// Priority raised from this one during the life.
    pub escalated_from: Option<Pri>,
    /// `(author, hours before now, text)`, oldest first.
    pub comments: &'static [(P, i64, &'static str)],
}

impl Spec {
    /// Defaults for `..Spec::BASE` in the data tables.
    pub(crate) const BASE: Spec = Spec {
        key: "",
        kind: Kind::Task,
        summary: "",
        status: St::ToDo,
        priority: Pri::Medium,
        assignee: None,
        previous_assignee: None,
        reporter: PRIYA,
        created_days_ago: 10,
        due_in_days: None,
        points: None,
        blocked_by: &[],
        labels: &[],
        in_sprint: false,
        review_bounces: 0,
        escalated_from: None,
        comments: &[],
    };
}
