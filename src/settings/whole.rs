//! Whole-number settings, read strictly.
//!
//! The `config` crate turns a float into an integer by rounding and the words `yes`/`on`/`true`
//! into 1, so `KEEL_WORKER_CONCURRENCY=1.5` had run two handler slots and
//! `KEEL_WORKER_PREFETCH=yes` one job ahead, without a word. These deserializers ask for the
//! value as it was given (`deserialize_any`) and accept only a whole number that fits the field;
//! `config` then names the key in its error.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// For a `u32`, `u64` or `usize` setting: `#[serde(deserialize_with = "whole::number")]`.
pub fn number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    deserializer.deserialize_any(Whole(PhantomData))
}

/// For an optional one (unset stays `None`; a value present must be a whole number).
pub fn optional<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    number(deserializer).map(Some)
}

struct Whole<T>(PhantomData<T>);

impl<T: TryFrom<u64>> Whole<T> {
    fn fit<E: de::Error>(&self, n: u64) -> Result<T, E> {
        T::try_from(n).map_err(|_| E::invalid_value(Unexpected::Unsigned(n), self))
    }
}

impl<T: TryFrom<u64>> Visitor<'_> for Whole<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a whole number of at most {} digits", digits::<T>())
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        self.fit(n)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        let n = u64::try_from(n).map_err(|_| E::invalid_value(Unexpected::Signed(n), &self))?;
        self.fit(n)
    }

    fn visit_u128<E: de::Error>(self, n: u128) -> Result<T, E> {
        let n = u64::try_from(n)
            .map_err(|_| E::invalid_value(Unexpected::Other("a huge number"), &self))?;
        self.fit(n)
    }

    fn visit_i128<E: de::Error>(self, n: i128) -> Result<T, E> {
        let n = u64::try_from(n)
            .map_err(|_| E::invalid_value(Unexpected::Other("a huge number"), &self))?;
        self.fit(n)
    }

    /// Digits only: no sign, no spaces, no `1e3` (a string reaches here when `config` did not
    /// parse it itself, e.g. a value too long for an `i64`).
    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(E::invalid_value(Unexpected::Str(s), &self));
        }
        let n = s
            .parse::<u64>()
            .map_err(|_| E::invalid_value(Unexpected::Str(s), &self))?;
        self.fit(n)
    }
}

/// Decimal digits of `T`'s largest value, for the message.
fn digits<T: TryFrom<u64>>() -> usize {
    // The largest u64 that fits T: probe the widths Keel's settings use.
    [u64::MAX, u32::MAX.into(), u16::MAX.into(), u8::MAX.into()]
        .into_iter()
        .find(|&m| T::try_from(m).is_ok())
        .map_or(1, |m| m.to_string().len())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct S {
        #[serde(deserialize_with = "super::number", default)]
        n: u32,
        #[serde(deserialize_with = "super::optional", default)]
        o: Option<usize>,
    }

    fn read(key: &str, value: config::Value) -> Result<S, String> {
        config::Config::builder()
            .set_override(key, value)
            .unwrap()
            .build()
            .unwrap()
            .try_deserialize::<S>()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_load() {
        assert_eq!(read("n", 8i64.into()).unwrap().n, 8);
        assert_eq!(read("n", "12".into()).unwrap().n, 12);
        assert_eq!(read("o", 0i64.into()).unwrap().o, Some(0));
        assert_eq!(read("n", "4".into()).unwrap().o, None);
    }

    #[test]
    fn anything_else_is_refused_naming_the_key() {
        for (key, value) in [
            ("n", config::Value::from(1.5)),
            ("n", "1.5".into()),
            ("n", "yes".into()),
            ("n", true.into()),
            ("n", (-1i64).into()),
            ("n", "+5".into()),
            ("n", " 5".into()),
            ("n", "".into()),
            ("n", 4_294_967_296i64.into()),
            ("o", 2.0.into()),
            ("o", "on".into()),
        ] {
            let err = read(key, value.clone()).expect_err(&format!("{key} = {value:?}"));
            assert!(err.contains("whole number"), "{err}");
            assert!(err.contains(&format!("`{key}`")), "{err}");
        }
    }
}
