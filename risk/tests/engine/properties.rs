//! Property-style checks over generated inputs (a tiny deterministic PRNG
//! instead of an extra crate).

use chrono::{DateTime, Duration, NaiveDate, Utc, Weekday};
use keel_risk::{
    assess_issue, rollup_portfolio, rollup_sprint, ChangeEvent, CommentSentiment, IssueSnapshot,
    Label, LinkedIssue, RiskLevel, Settings, StatusCategory, Thresholds,
};

/// SplitMix64: small, well-mixed, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

fn category(r: &mut Rng) -> StatusCategory {
    *r.pick(&[
        StatusCategory::New,
        StatusCategory::Indeterminate,
        StatusCategory::Done,
    ])
}

/// A timestamp near `now` most of the time, sometimes absurd.
fn instant(r: &mut Rng, now: DateTime<Utc>) -> DateTime<Utc> {
    match r.below(10) {
        0 => DateTime::<Utc>::MIN_UTC,
        1 => DateTime::<Utc>::MAX_UTC,
        2 => now
            .checked_add_signed(Duration::days(r.below(3650) as i64))
            .unwrap_or(now),
        _ => now
            .checked_sub_signed(Duration::seconds(r.below(3 * 365 * 86_400) as i64))
            .unwrap_or(now),
    }
}

fn day(r: &mut Rng, now: DateTime<Utc>) -> NaiveDate {
    match r.below(12) {
        0 => NaiveDate::MIN,
        1 => NaiveDate::MAX,
        _ => now
            .date_naive()
            .checked_add_signed(Duration::days(r.below(800) as i64 - 600))
            .unwrap_or(NaiveDate::MIN),
    }
}

fn snapshot(r: &mut Rng, i: usize, now: DateTime<Utc>) -> IssueSnapshot {
    let projects = ["ABC", "OPS", "WEB"];
    let project = *r.pick(&projects);
    let mut s = IssueSnapshot::new(
        format!("{project}-{}", r.below(60)),
        project,
        category(r),
        instant(r, now),
    );
    s.status = r
        .pick(&["To Do", "In Progress", "In Review", "Done", ""])
        .to_string();
    s.priority = r.chance(80).then(|| {
        r.pick(&["Highest", "High", "Medium", "Low", "Lowest", "weird", ""])
            .to_string()
    });
    s.assignee = r.chance(70).then(|| format!("user{}", r.below(8)));
    s.due_date = r.chance(70).then(|| day(r, now));
    s.status_changed_at = r.chance(70).then(|| instant(r, now));
    s.story_points = r.chance(50).then(|| r.below(40) as f64 / 2.0);
    let statuses = ["To Do", "In Progress", "In Review", "Done"];
    for _ in 0..r.below(if i.is_multiple_of(7) { 400 } else { 12 }) {
        let field = *r.pick(&["status", "assignee", "priority", "Status"]);
        let from = r.chance(80).then(|| r.pick(&statuses).to_string());
        let to = r.chance(90).then(|| r.pick(&statuses).to_string());
        s.changelog.push(ChangeEvent {
            at: instant(r, now),
            field: field.into(),
            from,
            to,
        });
    }
    for _ in 0..r.below(if i.is_multiple_of(5) { 300 } else { 5 }) {
        let key = format!("{}-{}", r.pick(&projects), r.below(80));
        s.blocked_by.push(LinkedIssue {
            key,
            status_category: category(r),
            summary: String::new(),
        });
    }
    for _ in 0..r.below(4) {
        let key = format!("{}-{}", r.pick(&projects), r.below(80));
        s.blocks.push(LinkedIssue {
            key,
            status_category: category(r),
            summary: String::new(),
        });
    }
    for _ in 0..r.below(if i.is_multiple_of(3) { 500 } else { 10 }) {
        let sentiment = *r.pick(&[Label::Negative, Label::Neutral, Label::Positive]);
        let negative_prob = match r.below(6) {
            0 => f32::NAN,
            _ => r.below(1000) as f32 / 1000.0,
        };
        s.comments.push(CommentSentiment {
            at: instant(r, now),
            author: format!("user{}", r.below(12)),
            sentiment,
            negative_prob,
        });
    }
    for _ in 0..r.below(6) {
        s.people.insert(format!("user{}", r.below(12)));
    }
    s
}

fn settings(r: &mut Rng) -> Settings {
    let days = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];
    let working_days = days.iter().copied().filter(|_| r.chance(60)).collect();
    let daily_rate_per_person = match r.below(8) {
        0 => f64::NAN,
        1 => -10.0,
        2 => f64::INFINITY,
        3 => 1e300,
        _ => r.below(500_000) as f64 / 100.0,
    };
    let mut t = [r.below(101) as u8, r.below(101) as u8, r.below(101) as u8];
    if r.chance(70) {
        t.sort_unstable();
    }
    Settings {
        daily_rate_per_person,
        working_days,
        thresholds: Thresholds {
            medium: t[0],
            high: t[1],
            critical: t[2],
        },
    }
}

#[test]
fn generated_inputs_stay_in_bounds_and_are_deterministic() {
    let mut r = Rng(0x5EED);
    let base = DateTime::parse_from_rfc3339("2024-05-07T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut all = Vec::new();
    let mut snaps = Vec::new();
    let mut levels_seen = std::collections::BTreeSet::new();
    for i in 0..400 {
        let now = match r.below(20) {
            0 => DateTime::<Utc>::MIN_UTC,
            1 => DateTime::<Utc>::MAX_UTC,
            _ => base + Duration::hours(r.below(24 * 400) as i64),
        };
        let s = snapshot(&mut r, i, now);
        let set = if r.chance(50) {
            Settings::default()
        } else {
            settings(&mut r)
        };
        let risk = assess_issue(&s, &set, now);

        assert!(risk.score <= 100, "score {} for {:?}", risk.score, s.key);
        let sum: f64 = risk.factors.iter().map(|f| f.points).sum();
        assert_eq!(risk.score, sum.round().clamp(0.0, 100.0) as u8);
        for f in &risk.factors {
            assert!(
                f.points.is_finite() && f.points >= 0.0 && f.points <= f.max_points,
                "{f:?}"
            );
            assert!(!f.detail.is_empty());
        }
        for x in [
            risk.daily_cost_of_delay,
            risk.cost_so_far,
            risk.negative_sentiment_share,
            risk.age_days,
        ] {
            assert!(
                x.is_finite() && x >= 0.0,
                "non-finite/negative output {x} in {risk:?}"
            );
        }
        assert!((0.0..=1.0).contains(&risk.negative_sentiment_share));
        assert!(risk.overdue_days >= 0);
        if s.status_category == StatusCategory::Done {
            assert_eq!((risk.score, risk.level), (0, RiskLevel::Low));
        } else {
            assert_eq!(
                risk.level,
                RiskLevel::from_score(risk.score, &set.thresholds)
            );
        }
        if risk.overdue_days == 0 {
            assert_eq!(risk.cost_so_far, 0.0);
        }

        // Determinism: same inputs, same bytes; JSON round-trips.
        let a = serde_json::to_string(&risk).unwrap();
        assert_eq!(
            a,
            serde_json::to_string(&assess_issue(&s, &set, now)).unwrap()
        );
        let back: keel_risk::IssueRisk = serde_json::from_str(&a).unwrap();
        assert_eq!(back, risk);

        levels_seen.insert(risk.level);
        all.push(risk);
        snaps.push(s);
    }
    assert!(
        levels_seen.len() >= 3,
        "generator should exercise several levels: {levels_seen:?}"
    );

    // Roll-ups over the whole lot are well-formed and order-independent.
    let sprint = rollup_sprint("1", "S", &all, &snaps);
    assert_eq!(sprint.total as usize, all.len());
    let b = &sprint.by_level;
    assert_eq!(
        b.low + b.medium + b.high + b.critical,
        sprint.total - sprint.done
    );
    assert!(sprint.top_risks.len() <= 5);
    let mut rev = all.clone();
    rev.reverse();
    let mut rev_snaps = snaps.clone();
    rev_snaps.reverse();
    assert_eq!(
        serde_json::to_string(&rollup_sprint("1", "S", &rev, &rev_snaps)).unwrap(),
        serde_json::to_string(&sprint).unwrap()
    );
    assert_eq!(
        serde_json::to_string(&rollup_portfolio(&rev)).unwrap(),
        serde_json::to_string(&rollup_portfolio(&all)).unwrap()
    );
}
