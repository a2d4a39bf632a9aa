//! Query-string parameters shared by the GET routes: unknown or repeated parameters, numbers,
//! `limit` and the keyset `cursor` are checked the same way (and answer the same 422s)
//! everywhere.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;

/// The query string's parameters, each given at most once. axum's `Query<HashMap<…>>` kept the
/// last of a repeated parameter, so `?status=dead&status=queued` listed queued jobs where the
/// client may have meant either (or both): refused instead, naming it.
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut params = HashMap::new();
        let raw = parts.uri.query().unwrap_or("");
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            if params
                .insert(name.clone().into_owned(), value.into_owned())
                .is_some()
            {
                return Err(ApiError::invalid(
                    &name,
                    "is given more than once (give each query parameter once)",
                ));
            }
        }
        Ok(Params(params))
    }
}

impl std::ops::Deref for Params {
    type Target = HashMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// For a route that takes no query parameters: any is refused rather than silently ignored
/// (a client filtering `/api/billing/credits?expired=false` would otherwise believe it did).
pub struct NoParams;

impl<S: Send + Sync> FromRequestParts<S> for NoParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let q = Params::from_request_parts(parts, state).await?;
        only(&q, &[])?;
        Ok(NoParams)
    }
}

/// 422 naming the first parameter that is not in `allowed`.
pub fn only(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    let mut unknown: Vec<&String> = q
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    unknown.sort(); // the same one named whatever the map's order
    match unknown.first() {
        None => Ok(()),
        Some(k) if allowed.is_empty() => Err(ApiError::invalid(
            k,
            "unknown query parameter (this route takes none)",
        )),
        Some(k) => Err(ApiError::invalid(
            k,
            format!("unknown query parameter (use {})", allowed.join(", ")),
        )),
    }
}

/// A whole number in `range`, written in digits only: `+5`, ` 5`, `5.0` and `1e3` are refused
/// (Rust's integer parsing alone accepts a leading `+`).
pub fn number(
    q: &HashMap<String, String>,
    name: &str,
    range: RangeInclusive<i64>,
    must: impl FnOnce() -> String,
) -> Result<Option<i64>, ApiError> {
    let Some(raw) = q.get(name) else {
        return Ok(None);
    };
    digits(raw)
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|n| range.contains(n))
        .map(Some)
        .ok_or_else(|| ApiError::invalid(name, must()))
}

fn digits(s: &str) -> Option<&str> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

/// `limit`: `default` when absent, else an integer from 1 to `max`.
pub fn limit(q: &HashMap<String, String>, default: i64, max: i64) -> Result<i64, ApiError> {
    Ok(number(q, "limit", 1..=max, || {
        format!("must be an integer from 1 to {max}")
    })?
    .unwrap_or(default))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn numbers_are_digits_in_range() {
        let must = || "must".to_string();
        assert_eq!(number(&q(&[]), "n", 0..=9, must).unwrap(), None);
        assert_eq!(
            number(&q(&[("n", "7")]), "n", 0..=9, must).unwrap(),
            Some(7)
        );
        assert_eq!(
            number(&q(&[("n", "007")]), "n", 0..=9, must).unwrap(),
            Some(7)
        );
        for bad in [
            "+5",
            "-1",
            " 5",
            "5 ",
            "5.0",
            "1e3",
            "",
            "10",
            "99999999999999999999",
        ] {
            assert!(
                number(&q(&[("n", bad)]), "n", 0..=9, must).is_err(),
                "{bad:?}"
            );
        }
    }
}
