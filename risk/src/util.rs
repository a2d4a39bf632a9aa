//! Small numeric and ordering helpers shared by the engine.
//!
//! They exist so that every output float is rounded the same way and every
//! list is ordered the same way, which is what makes the engine's output
//! byte-for-byte reproducible.

use std::cmp::Ordering;

/// Rounds to two decimals for output.
///
/// Non-finite values become `0.0` and negative zero is normalised to `0.0`,
/// so serialized output never contains `NaN`, `inf` or `-0.0` (which JSON
/// cannot represent or which would make two "equal" outputs differ).
/// Magnitudes of 1e15 and above are returned unchanged: they have no cent
/// precision left to round, and scaling them by 100 could overflow.
pub(crate) fn round2(x: f64) -> f64 {
    if !x.is_finite() {
        return 0.0;
    }
    if x.abs() >= 1e15 {
        return x;
    }
    let r = (x * 100.0).round() / 100.0;
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

/// Rounds a non-negative money amount for output.
///
/// Unlike [`round2`], an overflow to infinity saturates at `f64::MAX`
/// instead of collapsing to zero: an absurdly expensive delay must never
/// be reported as free.
pub(crate) fn money(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        0.0
    } else if x.is_infinite() {
        f64::MAX
    } else {
        round2(x)
    }
}

/// Sums money amounts independently of their order.
///
/// Float addition is not associative, so roll-ups sort the amounts before
/// adding them; shuffled input then gives bit-identical totals.
pub(crate) fn sum_money(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    money(xs.into_iter().sum())
}

/// Clamps a value into `[0, 1]`, mapping `NaN` to `0`.
pub(crate) fn unit(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// Orders Jira issue keys naturally: `ABC-2` before `ABC-10`.
///
/// Keys of the form `PREFIX-NUMBER` compare by prefix and then numerically
/// and sort before anything else; other strings compare as plain strings.
/// Splitting the two groups (instead of mixing natural and string order)
/// keeps the order total, which `sort_by` needs; the final tie-break on the
/// raw string separates `ABC-01` from `ABC-1`.
pub fn issue_key_cmp(a: &str, b: &str) -> Ordering {
    match (split_key(a), split_key(b)) {
        (Some((pa, na)), Some((pb, nb))) => pa.cmp(pb).then(na.cmp(&nb)).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

fn split_key(key: &str) -> Option<(&str, u64)> {
    let (prefix, num) = key.rsplit_once('-')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((prefix, num.parse().ok()?))
}

/// Pluralises an English noun for human-readable details.
pub(crate) fn plural(n: u64, singular: &str, plural: &str) -> String {
    if n == 1 {
        format!("{n} {singular}")
    } else {
        format!("{n} {plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round2_handles_edge_values() {
        assert_eq!(round2(1.005_1), 1.01);
        assert_eq!(round2(-0.001), 0.0);
        assert!(round2(-0.001).is_sign_positive());
        assert_eq!(round2(f64::NAN), 0.0);
        assert_eq!(round2(f64::INFINITY), 0.0);
        assert_eq!(round2(2500.0), 2500.0);
    }

    #[test]
    fn money_saturates_and_sums_order_independently() {
        assert_eq!(money(f64::INFINITY), f64::MAX);
        assert_eq!(money(f64::NAN), 0.0);
        assert_eq!(money(-3.0), 0.0);
        assert_eq!(round2(1e300), 1e300);
        let a = vec![0.1, 0.2, 0.3, 1e16, -1e16, 7.77];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(sum_money(a).to_bits(), sum_money(b).to_bits());
        assert_eq!(sum_money(vec![f64::MAX, f64::MAX]), f64::MAX);
        assert_eq!(sum_money(vec![]), 0.0);
    }

    #[test]
    fn issue_keys_sort_naturally() {
        let mut keys = vec!["ABC-10", "ABC-2", "AB-99", "ABC-1", "zzz", "ABC-01"];
        keys.sort_by(|a, b| issue_key_cmp(a, b));
        assert_eq!(
            keys,
            vec!["AB-99", "ABC-01", "ABC-1", "ABC-2", "ABC-10", "zzz"]
        );
    }

    #[test]
    fn issue_key_order_is_total_with_odd_keys() {
        // Mixing natural and string order naively would make this a cycle.
        let keys = ["A-10", "A-2", "A-1z", "", "-", "A-", "-5"];
        for a in keys {
            for b in keys {
                assert_eq!(issue_key_cmp(a, b), issue_key_cmp(b, a).reverse());
                for c in keys {
                    if issue_key_cmp(a, b).is_le() && issue_key_cmp(b, c).is_le() {
                        assert!(issue_key_cmp(a, c).is_le(), "{a} {b} {c}");
                    }
                }
            }
        }
    }

    #[test]
    fn plural_forms() {
        assert_eq!(plural(1, "day", "days"), "1 day");
        assert_eq!(plural(0, "day", "days"), "0 days");
        assert_eq!(plural(3, "issue", "issues"), "3 issues");
    }
}
