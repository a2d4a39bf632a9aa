//! Stripe webhook signatures: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…][,v0=…]` where
//! each `v1` is HMAC-SHA256 of `"{t}.{raw body}"` under an endpoint secret. Any `v1` matching
//! any configured secret is accepted (Stripe sends several while a secret is being rolled;
//! Keel accepts several secrets for its own rotation); the timestamp must be within the
//! tolerance of now, so a captured delivery cannot be replayed later.
//!
//! The endpoint is unauthenticated, so its cost must not be the caller's to choose: the header
//! is bounded ([`MAX_HEADER_BYTES`], [`MAX_SIGNATURES`]), values that cannot be a SHA-256 HMAC
//! (64 hex characters) are skipped without decoding, and the body is hashed once per configured
//! secret — never once per `v1` entry. A 1 MiB body with 65,000 `v1` entries had been hashed
//! 65,000 times (about 50 s on one runtime thread).

use hmac::digest::CtOutput;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Stripe's default tolerance.
pub const TOLERANCE_SECS: i64 = 300;

/// Longest `Stripe-Signature` header taken. Stripe's is about 150 bytes (one `t`, one or two
/// `v1` while a secret rolls, sometimes a `v0`).
pub const MAX_HEADER_BYTES: usize = 4096;

/// Most `v1` entries compared (well-formed ones; the rest are ignored as Stripe advises).
pub const MAX_SIGNATURES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "the signature timestamp is {age_secs} s away from now (tolerance {TOLERANCE_SECS} s)"
    )]
    Stale { age_secs: i64 },
    #[error("no v1 signature matches a configured endpoint secret")]
    NoMatch,
}

/// `t=…,v1=…` for `body` signed at `timestamp` with `secret` (what Stripe sends; for tests
/// and tools that play Stripe).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body).into_bytes())
    )
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> CtOutput<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize()
}

/// A `v1` value as the 32 bytes of an HMAC-SHA256, or `None` when it cannot be one.
fn signature_bytes(v: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    (v.len() == 64 && hex::decode_to_slice(v, &mut out).is_ok()).then_some(out)
}

/// Checks `header` against the raw `body`; returns the signed timestamp. Costs one HMAC of
/// the body per secret, whatever the header holds.
pub fn verify<S: AsRef<[u8]>>(
    header: Option<&str>,
    body: &[u8],
    secrets: &[S],
    now: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if header.len() > MAX_HEADER_BYTES {
        return Err(SignatureError::Malformed("longer than 4096 bytes"));
    }
    let mut t = None;
    let mut v1: Vec<[u8; 32]> = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("expected key=value pairs"))?;
        match k {
            "t" => {
                t = Some(
                    v.parse::<i64>()
                        .map_err(|_| SignatureError::Malformed("t is not a unix time"))?,
                )
            }
            // A v1 that is not 64 hex characters can never match; skip it rather than reject
            // the header.
            "v1" => {
                if let Some(sig) = signature_bytes(v) {
                    if v1.len() == MAX_SIGNATURES {
                        return Err(SignatureError::Malformed("more than 16 v1 signatures"));
                    }
                    v1.push(sig);
                }
            }
            _ => {} // v0 (test-mode legacy) and future schemes are ignored, as Stripe advises
        }
    }
    let t = t.ok_or(SignatureError::Malformed("no t= timestamp"))?;
    if v1.is_empty() {
        return Err(SignatureError::Malformed("no v1= signature"));
    }
    let age = now - t;
    if age.abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale { age_secs: age });
    }
    for secret in secrets {
        let expected = mac(secret.as_ref(), t, body);
        // `CtOutput`'s equality is constant-time. Every entry is compared, matched or not.
        let matched = v1.iter().fold(false, |hit, sig| {
            hit | (expected == CtOutput::new((*sig).into()))
        });
        if matched {
            return Ok(t);
        }
    }
    Err(SignatureError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_763_000_000;

    #[test]
    fn a_signed_body_verifies_and_any_v1_or_secret_may_match() {
        let body = br#"{"id":"evt_1"}"#;
        let h = sign(b"whsec_a", NOW, body);
        assert_eq!(verify(Some(&h), body, &["whsec_a"], NOW), Ok(NOW));
        // Rotation: the second configured secret matches.
        assert_eq!(
            verify(Some(&h), body, &["whsec_new", "whsec_a"], NOW + 10),
            Ok(NOW)
        );
        // Several v1 values: the matching one is not the last.
        let other = hex::encode(mac(b"whsec_zzz", NOW, body).into_bytes());
        let sig = h.split_once("v1=").unwrap().1;
        let multi = format!("t={NOW},v1={sig},v1={other},v0=abc");
        assert_eq!(verify(Some(&multi), body, &["whsec_a"], NOW), Ok(NOW));
    }

    #[test]
    fn wrong_secret_tampered_body_stale_and_missing_are_refused() {
        let body = br#"{"id":"evt_1"}"#;
        let h = sign(b"whsec_a", NOW, body);
        assert_eq!(
            verify(Some(&h), body, &["whsec_b"], NOW),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(Some(&h), b"{}", &["whsec_a"], NOW),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(Some(&h), body, &["whsec_a"], NOW + 301),
            Err(SignatureError::Stale { age_secs: 301 })
        );
        assert!(verify(Some(&h), body, &["whsec_a"], NOW + 300).is_ok());
        assert_eq!(
            verify::<&str>(None, body, &[], NOW),
            Err(SignatureError::Missing)
        );
        assert!(matches!(
            verify(Some("garbage"), body, &["whsec_a"], NOW),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify(Some(&format!("t={NOW}")), body, &["whsec_a"], NOW),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn a_flooded_header_is_refused_before_any_hashing() {
        let body = vec![b'x'; 1024 * 1024];
        // The probe's header: 65,000 `v1=00` entries.
        let mut flood = format!("t={NOW}");
        for _ in 0..65_000 {
            flood.push_str(",v1=00");
        }
        assert_eq!(
            verify(Some(&flood), &body, &["whsec_a"], NOW),
            Err(SignatureError::Malformed("longer than 4096 bytes"))
        );
        // Within the size bound, but more well-formed v1 entries than anyone sends.
        let sig = "ab".repeat(32);
        let many = format!("t={NOW}{}", format!(",v1={sig}").repeat(MAX_SIGNATURES + 1));
        assert!(many.len() <= MAX_HEADER_BYTES);
        assert_eq!(
            verify(Some(&many), &body, &["whsec_a"], NOW),
            Err(SignatureError::Malformed("more than 16 v1 signatures"))
        );
        // Exactly the bound is still compared (and fails to match).
        let most = format!("t={NOW}{}", format!(",v1={sig}").repeat(MAX_SIGNATURES));
        assert_eq!(
            verify(Some(&most), &body, &["whsec_a"], NOW),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn values_that_cannot_be_an_hmac_are_ignored_not_decoded() {
        let body = br#"{"id":"evt_1"}"#;
        let good = sign(b"whsec_a", NOW, body);
        let sig = good.split_once("v1=").unwrap().1;
        // Short, long, odd and non-hex values around the real one: skipped, the real one matches.
        let mixed = format!("t={NOW},v1=00,v1={sig}00,v1=zz{},v1={sig}", &sig[2..]);
        assert_eq!(verify(Some(&mixed), body, &["whsec_a"], NOW), Ok(NOW));
        // Only unusable values: there is no signature to check.
        let none = format!("t={NOW},v1=00,v1=xyz");
        assert_eq!(
            verify(Some(&none), body, &["whsec_a"], NOW),
            Err(SignatureError::Malformed("no v1= signature"))
        );
        // Upper-case hex is hex.
        let upper = format!("t={NOW},v1={}", sig.to_uppercase());
        assert_eq!(verify(Some(&upper), body, &["whsec_a"], NOW), Ok(NOW));
    }
}
