//! Stripe webhook signatures: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…][,v0=…]` where
//! each `v1` is HMAC-SHA256 of `"{t}.{raw body}"` under an endpoint secret. Any `v1` matching
//! any configured secret is accepted (Stripe sends several while a secret is being rolled;
//! Keel accepts several secrets for its own rotation); the timestamp must be within the
//! tolerance of now, so a captured delivery cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Stripe's default tolerance.
pub const TOLERANCE_SECS: i64 = 300;

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
        hex::encode(mac(secret, timestamp, body))
    )
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// Checks `header` against the raw `body`; returns the signed timestamp.
pub fn verify<S: AsRef<[u8]>>(
    header: Option<&str>,
    body: &[u8],
    secrets: &[S],
    now: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut t = None;
    let mut v1 = Vec::new();
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
            // A v1 that is not hex can never match; skip it rather than reject the header.
            "v1" => v1.extend(hex::decode(v).ok()),
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
        for sig in &v1 {
            let mut m =
                Hmac::<Sha256>::new_from_slice(secret.as_ref()).expect("HMAC takes any key length");
            m.update(t.to_string().as_bytes());
            m.update(b".");
            m.update(body);
            // Constant-time comparison.
            if m.verify_slice(sig).is_ok() {
                return Ok(t);
            }
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
        let other = hex::encode(mac(b"whsec_zzz", NOW, body));
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
}
