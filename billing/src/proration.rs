//! Proration of a plan change, in whole cents (local mode; Stripe prorates on its side).

/// What switching from `old_price` to `new_price` mid-period costs now. `period` and `now` are
/// unix seconds. Same interval: the period stays and the price difference is charged for the
/// unused share. New interval: a new period starts now and the unused share of the old price
/// is credited against the new price. Never negative: a downgrade is not refunded.
pub fn charge(
    old_price: i64,
    new_price: i64,
    period: (i64, i64),
    now: i64,
    same_interval: bool,
) -> i64 {
    let total = (period.1 - period.0).max(1) as f64;
    let unused = ((period.1 - now).max(0) as f64 / total).min(1.0);
    let charge = if same_interval {
        ((new_price - old_price) as f64 * unused).round() as i64
    } else {
        new_price - (old_price as f64 * unused).round() as i64
    };
    charge.max(0)
}

#[cfg(test)]
mod tests {
    use super::charge;

    #[test]
    fn upgrades_pay_the_difference_for_the_unused_share_and_downgrades_pay_nothing() {
        // Half of a 30-day period left: starter 2900 → team 9900 costs half the difference.
        assert_eq!(
            charge(2900, 9900, (0, 30 * 86_400), 15 * 86_400, true),
            3500
        );
        assert_eq!(charge(9900, 2900, (0, 30 * 86_400), 15 * 86_400, true), 0);
        // A new (annual) interval: the unused half of 2900 is credited against 29000.
        assert_eq!(
            charge(2900, 29000, (0, 30 * 86_400), 15 * 86_400, false),
            29000 - 1450
        );
        // Past the period end nothing is left to credit.
        assert_eq!(charge(2900, 9900, (0, 100), 500, true), 0);
    }
}
