//! A small curated polarity lexicon for finance and delivery/project text.
//!
//! Why: the training tweets use headline verbs ("slides", "soars", "PT cut"),
//! while earnings reports and Jira comments say "declined", "expanded",
//! "blocked", "regression". A word the tweets never show gets no weight of
//! its own, but every lexicon word also fires one shared `LEX_POS`/`LEX_NEG`
//! feature, whose weight *is* learned from the tweets (from the lexicon words
//! they do contain) and then transfers to the unseen ones. Negated lexicon
//! words fire the opposite polarity.
//!
//! The lists are hand-written, lowercase, exact word forms (no stemming), and
//! sorted (a unit test checks it) so they are easy to review and diff.

use crate::hash::fnv1a64;

/// Polarity of a lexicon word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// Good news / progress.
    Positive,
    /// Bad news / trouble.
    Negative,
}

/// Positive words (sorted, unique).
pub const POSITIVE: &[&str] = &[
    "accelerate",
    "accelerated",
    "accelerating",
    "accretive",
    "achieved",
    "ahead",
    "approval",
    "approved",
    "attractive",
    "awarded",
    "beat",
    "beating",
    "beats",
    "benefit",
    "benefited",
    "best",
    "boom",
    "booming",
    "boost",
    "boosted",
    "boosts",
    "breakthrough",
    "bright",
    "bullish",
    "buyback",
    "buybacks",
    "climb",
    "climbed",
    "climbs",
    "comeback",
    "completed",
    "confident",
    "delivered",
    "doubled",
    "encouraging",
    "exceed",
    "exceeded",
    "exceeding",
    "exceeds",
    "excellent",
    "exceptional",
    "expand",
    "expanded",
    "expanding",
    "expands",
    "expansion",
    "favorable",
    "favourable",
    "fixed",
    "gain",
    "gained",
    "gains",
    "great",
    "grew",
    "growth",
    "higher",
    "highs",
    "impressive",
    "improve",
    "improved",
    "improvement",
    "improves",
    "improving",
    "jump",
    "jumped",
    "jumps",
    "launched",
    "love",
    "merged",
    "milestone",
    "momentum",
    "optimism",
    "optimistic",
    "outpace",
    "outpaced",
    "outperform",
    "outperformed",
    "outperforms",
    "overweight",
    "passed",
    "positive",
    "profit",
    "profitable",
    "profits",
    "promising",
    "raise",
    "raised",
    "raises",
    "rallied",
    "rallies",
    "rally",
    "rebound",
    "rebounded",
    "rebounds",
    "record",
    "recover",
    "recovered",
    "recovery",
    "resolved",
    "resume",
    "resumes",
    "rise",
    "rises",
    "rising",
    "robust",
    "rose",
    "shipped",
    "soar",
    "soared",
    "soaring",
    "soars",
    "solid",
    "strength",
    "strengthened",
    "strong",
    "stronger",
    "strongest",
    "success",
    "successful",
    "successfully",
    "surge",
    "surged",
    "surges",
    "surging",
    "surpassed",
    "thrive",
    "thriving",
    "topped",
    "tops",
    "unblocked",
    "unlock",
    "upbeat",
    "upgrade",
    "upgraded",
    "upgrades",
    "upside",
    "uptrend",
    "verified",
    "win",
    "winner",
    "wins",
    "won",
];

/// Negative words (sorted, unique).
pub const NEGATIVE: &[&str] = &[
    "bankrupt",
    "bankruptcy",
    "bear",
    "bearish",
    "behind",
    "bleak",
    "blocked",
    "blocker",
    "blocking",
    "breach",
    "breached",
    "broke",
    "broken",
    "bug",
    "bugs",
    "cancel",
    "canceled",
    "cancelled",
    "cancels",
    "collapse",
    "collapsed",
    "concern",
    "concerned",
    "concerns",
    "contracted",
    "contraction",
    "cools",
    "crash",
    "crashed",
    "crashes",
    "crisis",
    "cut",
    "cuts",
    "decline",
    "declined",
    "declines",
    "declining",
    "decrease",
    "decreased",
    "deficit",
    "delay",
    "delayed",
    "delays",
    "deteriorated",
    "deterioration",
    "disappoint",
    "disappointed",
    "disappointing",
    "doubt",
    "doubts",
    "downgrade",
    "downgraded",
    "downgrades",
    "downturn",
    "drop",
    "dropped",
    "dropping",
    "drops",
    "error",
    "errors",
    "fail",
    "failed",
    "failing",
    "fails",
    "failure",
    "failures",
    "falling",
    "fear",
    "fears",
    "fell",
    "flaky",
    "fraud",
    "gloom",
    "gloomy",
    "halt",
    "halted",
    "halts",
    "headwinds",
    "hurt",
    "hurts",
    "impairment",
    "incident",
    "inconsistent",
    "insolvency",
    "investigation",
    "lag",
    "lagged",
    "lags",
    "lawsuit",
    "lawsuits",
    "layoff",
    "layoffs",
    "lose",
    "loses",
    "losing",
    "loss",
    "losses",
    "lost",
    "lowered",
    "lowers",
    "lowest",
    "miss",
    "missed",
    "misses",
    "negative",
    "outage",
    "outages",
    "overdue",
    "overrun",
    "panic",
    "penalty",
    "plummet",
    "plummeted",
    "plunge",
    "plunged",
    "plunges",
    "plunging",
    "pressure",
    "pressured",
    "probe",
    "problem",
    "problems",
    "recall",
    "recession",
    "regression",
    "regressions",
    "scandal",
    "selloff",
    "shortage",
    "shortages",
    "shortfall",
    "shrank",
    "shut",
    "shuts",
    "sink",
    "sinking",
    "sinks",
    "slams",
    "slid",
    "slide",
    "slides",
    "slip",
    "slipped",
    "slips",
    "slowdown",
    "slowed",
    "slower",
    "slowing",
    "slump",
    "slumped",
    "slumps",
    "snag",
    "stagnation",
    "struggle",
    "struggles",
    "struggling",
    "stuck",
    "sued",
    "sues",
    "suspended",
    "suspends",
    "threat",
    "threatened",
    "threatens",
    "trim",
    "trimmed",
    "trimming",
    "trims",
    "tumble",
    "tumbled",
    "tumbles",
    "tumbling",
    "turmoil",
    "unable",
    "uncertain",
    "uncertainty",
    "underperform",
    "underweight",
    "warn",
    "warned",
    "warning",
    "warns",
    "weak",
    "weakened",
    "weakening",
    "weakens",
    "weaker",
    "weakness",
    "weighed",
    "weighs",
    "worries",
    "worry",
    "worse",
    "worsened",
    "worsening",
    "worst",
    "writedown",
    "writedowns",
    "wrong",
];

/// Lexicon keyed by FNV-1a 64 of the word, sorted by key, built once.
/// Looking up a `u64` is several times faster than binary-searching strings
/// (which showed up as `memcmp` in profiles of the scorer).
fn table() -> &'static [(u64, &'static str, Polarity)] {
    static T: std::sync::OnceLock<Vec<(u64, &'static str, Polarity)>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t: Vec<_> = POSITIVE
            .iter()
            .map(|w| (*w, Polarity::Positive))
            .chain(NEGATIVE.iter().map(|w| (*w, Polarity::Negative)))
            .map(|(w, p)| (fnv1a64(w.as_bytes()), w, p))
            .collect();
        t.sort_unstable_by_key(|e| e.0);
        t
    })
}

/// Polarity of a normalised (lowercase) word, if it is in the lexicon.
pub fn polarity(word: &str) -> Option<Polarity> {
    if word.len() > MAX_LEN {
        return None;
    }
    let t = table();
    let h = fnv1a64(word.as_bytes());
    let i = t.binary_search_by_key(&h, |e| e.0).ok()?;
    // Confirm the string, so a 64-bit hash collision can never mislabel.
    (t[i].1 == word).then_some(t[i].2)
}

/// Longest lexicon word (checked by a test), a cheap early exit.
const MAX_LEN: usize = 13;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_unique_and_disjoint() {
        for list in [POSITIVE, NEGATIVE] {
            assert!(
                list.windows(2).all(|w| w[0] < w[1]),
                "unsorted near {list:?}"
            );
        }
        for w in POSITIVE {
            assert!(NEGATIVE.binary_search(w).is_err(), "{w} in both lists");
        }
        let longest = POSITIVE.iter().chain(NEGATIVE).map(|w| w.len()).max();
        assert_eq!(longest, Some(MAX_LEN));
        let mut keys: Vec<u64> = table().iter().map(|e| e.0).collect();
        keys.dedup();
        assert_eq!(
            keys.len(),
            POSITIVE.len() + NEGATIVE.len(),
            "hash collision"
        );
    }

    #[test]
    fn lookup() {
        assert_eq!(polarity("beats"), Some(Polarity::Positive));
        assert_eq!(polarity("blocked"), Some(Polarity::Negative));
        assert_eq!(polarity("table"), None);
        assert_eq!(polarity(""), None);
        for w in POSITIVE {
            assert_eq!(polarity(w), Some(Polarity::Positive), "{w}");
        }
        for w in NEGATIVE {
            assert_eq!(polarity(w), Some(Polarity::Negative), "{w}");
        }
    }
}
