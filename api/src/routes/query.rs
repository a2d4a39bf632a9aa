//! Query-string parameters shared by the listing routes: unknown parameters, `limit` and the
//! keyset `cursor` are checked the same way (and answer the same 422s) everywhere.

use std::collections::HashMap;
use std::str::FromStr;

use crate::error::ApiError;

/// 422 naming the first parameter that is not in `allowed`.
pub fn only(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    match q.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(ApiError::invalid(
            k,
            format!("unknown query parameter (use {})", allowed.join(", ")),
        )),
    }
}

/// `limit`: `default` when absent, else an integer from 1 to `max`.
pub fn limit(q: &HashMap<String, String>, default: i64, max: i64) -> Result<i64, ApiError> {
    match q.get("limit") {
        None => Ok(default),
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=max).contains(l))
            .ok_or_else(|| {
                ApiError::invalid("limit", format!("must be an integer from 1 to {max}"))
            }),
    }
}

/// `cursor`: absent, or a value this API handed out as `next_cursor` (an id or a sequence).
pub fn cursor<T: FromStr>(q: &HashMap<String, String>) -> Result<Option<T>, ApiError> {
    q.get("cursor")
        .map(|c| {
            c.parse::<T>()
                .map_err(|_| ApiError::invalid("cursor", "is not a cursor returned by this API"))
        })
        .transpose()
}
