//! Project `OPS` ("Keel Demo Ops (sample data)"): the platform team the
//! checkout team depends on. Invented issues and people.

use super::spec::{Kind::*, Pri::*, Spec, St::*, AIKO, LENA, MARCUS, PRIYA, SAM, TOMAS};

pub(crate) const OPS: &[Spec] = &[
    Spec {
        key: "OPS-1",
        kind: Task,
        summary: "Provision a read replica for the payments database",
        status: InProgress,
        priority: Highest,
        escalated_from: Some(High),
        assignee: Some(TOMAS),
        reporter: TOMAS,
        created_days_ago: 19,
        due_in_days: Some(-5),
        points: Some(5.0),
        blocked_by: &["OPS-4"],
        in_sprint: true,
        labels: &["database"],
        comments: &[
            (TOMAS, 400, "Replica sized and the Terraform change is ready."),
            (TOMAS, 160, "Blocked: the replica subnet needs the network policy change in OPS-4 and security has not reviewed it yet."),
            (PRIYA, 60, "This is now holding up the checkout load test and the release. Escalating."),
            (TOMAS, 12, "Security review is booked for tomorrow morning, fingers crossed."),
        ],
        ..Spec::BASE
    },
    Spec {
        key: "OPS-2",
        kind: Task,
        summary: "Rotate the payment gateway API keys",
        status: Done,
        priority: High,
        assignee: Some(TOMAS),
        created_days_ago: 21,
        points: Some(2.0),
        comments: &[(TOMAS, 300, "Keys rotated, old ones revoked, no errors in the logs. Done.")],
        ..Spec::BASE
    },
    Spec {
        key: "OPS-3",
        kind: Task,
        summary: "Raise the payment gateway rate limit with the provider",
        status: InProgress,
        priority: High,
        assignee: Some(PRIYA),
        previous_assignee: Some(TOMAS),
        created_days_ago: 17,
        due_in_days: Some(-2),
        blocked_by: &[],
        comments: &[
            (TOMAS, 380, "Ticket opened with the provider asking for 200 requests per second."),
            (TOMAS, 220, "The provider has not answered in a week. Assigning to Priya to escalate through the account manager."),
            (PRIYA, 100, "Escalated. They want traffic projections first, which is annoying but fair."),
            (MARCUS, 26, "Still no limit increase and DEMO-1 is stuck behind it. This is really painful."),
        ],
        ..Spec::BASE
    },
    Spec {
        key: "OPS-4",
        kind: Task,
        summary: "Network policy change for the replica subnet",
        priority: Medium,
        reporter: TOMAS,
        created_days_ago: 13,
        due_in_days: Some(-1),
        comments: &[(TOMAS, 150, "Needs a security review before anyone can pick it up.")],
        ..Spec::BASE
    },
    Spec {
        key: "OPS-5",
        kind: Story,
        summary: "Apple Pay merchant domain verification",
        priority: Medium,
        assignee: Some(TOMAS),
        created_days_ago: 6,
        due_in_days: Some(14),
        points: Some(3.0),
        ..Spec::BASE
    },
    Spec {
        key: "OPS-6",
        kind: Bug,
        summary: "Noisy disk usage alerts on build agents",
        status: InProgress,
        priority: Low,
        assignee: Some(SAM),
        created_days_ago: 27,
        comments: &[(SAM, 500, "Tuned the threshold on two agents; will roll out to the rest.")],
        ..Spec::BASE
    },
    Spec {
        key: "OPS-7",
        kind: Task,
        summary: "Postgres 16 upgrade rehearsal on staging",
        status: InReview,
        priority: Medium,
        assignee: Some(TOMAS),
        created_days_ago: 12,
        due_in_days: Some(6),
        points: Some(3.0),
        comments: &[(TOMAS, 40, "Rehearsal went smoothly, 4 minutes of downtime. Runbook updated.")],
        ..Spec::BASE
    },
    Spec {
        key: "OPS-8",
        kind: Task,
        summary: "On-call runbook for payment incidents",
        status: Done,
        priority: Medium,
        assignee: Some(AIKO),
        created_days_ago: 22,
        points: Some(2.0),
        ..Spec::BASE
    },
    Spec {
        key: "OPS-9",
        kind: Bug,
        summary: "Nightly backup job overruns its window",
        priority: High,
        assignee: Some(TOMAS),
        created_days_ago: 4,
        due_in_days: Some(-3),
        comments: &[
            (SAM, 80, "The backup ran into business hours again and slowed checkout."),
            (SAM, 10, "Third night in a row now. This is hurting customers and it is still unassigned in practice."),
        ],
        ..Spec::BASE
    },
    Spec {
        key: "OPS-10",
        kind: Task,
        summary: "Decommission the old log cluster",
        priority: Low,
        created_days_ago: 45,
        labels: &["tech-debt"],
        ..Spec::BASE
    },
    Spec {
        key: "OPS-11",
        kind: Task,
        summary: "Automate TLS certificate renewal",
        status: Done,
        priority: Medium,
        assignee: Some(SAM),
        created_days_ago: 33,
        points: Some(3.0),
        comments: &[(LENA, 600, "Thank you, no more midnight certificate surprises!")],
        ..Spec::BASE
    },
    Spec {
        key: "OPS-12",
        kind: Story,
        summary: "Cost dashboard for staging environments",
        status: InProgress,
        priority: Low,
        assignee: Some(SAM),
        created_days_ago: 10,
        due_in_days: Some(9),
        points: Some(5.0),
        comments: &[(PRIYA, 70, "The first version already helped us find two idle clusters. Great progress.")],
        ..Spec::BASE
    },
];
