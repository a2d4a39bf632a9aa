//! Secrets at rest: API keys are stored as SHA-256 hashes; secrets Keel must read back (webhook
//! signing secrets, later Jira tokens) are sealed with AES-256-GCM under a key id, so keys can be
//! rotated: new values use the primary key, old values still open with the key they name.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::distributions::Alphanumeric;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};

/// Prefix of every API key, so leaked keys are recognisable by secret scanners.
pub const API_KEY_PREFIX: &str = "kl_live_";

/// A freshly generated API key. `secret` is shown to the user once and never stored.
pub struct NewApiKey {
    pub secret: String,
    /// First characters, stored to recognise the key in listings.
    pub prefix: String,
    pub hash: Vec<u8>,
}

fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// 32 alphanumeric characters: about 190 bits of entropy.
pub fn generate_api_key() -> NewApiKey {
    let secret = format!("{API_KEY_PREFIX}{}", random_token(32));
    NewApiKey {
        prefix: secret[..API_KEY_PREFIX.len() + 4].to_string(),
        hash: hash_api_key(&secret),
        secret,
    }
}

/// Keys carry enough entropy that a plain SHA-256 is the right tool (a slow password hash
/// would only slow every request down).
pub fn hash_api_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Secret used to sign outbound webhooks (HMAC-SHA256), shown to the tenant once.
pub fn generate_signing_secret() -> String {
    format!("whsec_{}", random_token(32))
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("KEEL_ENCRYPTION_KEY is invalid: {0}")]
    BadKey(String),
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value uses key id {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("sealed value failed authentication (wrong key or tampered)")]
    Auth,
}

/// AES-256-GCM with a random 96-bit nonce per value. Sealed form: `v1.<key id>.<base64url(nonce ‖ ciphertext)>`.
#[derive(Clone)]
pub struct SecretBox {
    /// (key id, cipher); the first is the primary used for new values.
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SecretBox").field("key_ids", &ids).finish()
    }
}

impl SecretBox {
    /// Parses `KEEL_ENCRYPTION_KEY`: `id:base64key[,id2:base64key2…]` (the first is primary) or a
    /// bare base64 key (id `k1`). Each key is 32 bytes, e.g. from `openssl rand -base64 32`.
    pub fn from_config(spec: &str) -> Result<Self, CryptoError> {
        let mut keys = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, b64) = match part.split_once(':') {
                Some((id, b64)) => (id.trim().to_string(), b64.trim()),
                None => ("k1".to_string(), part),
            };
            if id.is_empty() || id.contains('.') {
                return Err(CryptoError::BadKey(format!(
                    "key id {id:?} must be non-empty and contain no '.'"
                )));
            }
            let bytes = STANDARD
                .decode(b64)
                .map_err(|e| CryptoError::BadKey(format!("key {id:?} is not base64: {e}")))?;
            if bytes.len() != 32 {
                return Err(CryptoError::BadKey(format!(
                    "key {id:?} is {} bytes; AES-256 needs 32",
                    bytes.len()
                )));
            }
            if keys.iter().any(|(k, _)| *k == id) {
                return Err(CryptoError::BadKey(format!("key id {id:?} appears twice")));
            }
            let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes));
            keys.push((id, cipher));
        }
        if keys.is_empty() {
            return Err(CryptoError::BadKey("no key given".into()));
        }
        Ok(Self { keys })
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        format!("v1.{id}.{}", URL_SAFE_NO_PAD.encode(blob))
    }

    pub fn open(&self, sealed: &str) -> Result<String, CryptoError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CryptoError::Malformed);
        };
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_string()))?;
        let blob = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| CryptoError::Malformed)?;
        if blob.len() < 12 + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ct) = blob.split_at(12);
        let pt = cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| CryptoError::Auth)?;
        String::from_utf8(pt).map_err(|_| CryptoError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "HxEdHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";

    #[test]
    fn api_keys_are_prefixed_random_and_hashed() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert!(a.secret.starts_with("kl_live_"));
        assert_eq!(a.secret.len(), 40);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.hash, hash_api_key(&a.secret));
        assert!(a.secret.starts_with(&a.prefix));
    }

    #[test]
    fn seal_open_round_trip_with_random_nonce() {
        let sb = SecretBox::from_config(K1).unwrap();
        let a = sb.seal("hello");
        let b = sb.seal("hello");
        assert_ne!(a, b, "nonce must differ per value");
        assert!(!a.contains("hello"));
        assert_eq!(sb.open(&a).unwrap(), "hello");
    }

    #[test]
    fn rotation_opens_old_values_and_seals_with_primary() {
        let old = SecretBox::from_config(&format!("old:{K1}")).unwrap();
        let sealed_old = old.seal("s");
        let rotated = SecretBox::from_config(&format!("new:{K2},old:{K1}")).unwrap();
        assert_eq!(rotated.open(&sealed_old).unwrap(), "s");
        assert!(rotated.seal("t").starts_with("v1.new."));
    }

    #[test]
    fn tampering_and_unknown_keys_fail() {
        let sb = SecretBox::from_config(K1).unwrap();
        let mut sealed = sb.seal("secret");
        let last = sealed.pop().unwrap();
        sealed.push(if last == 'A' { 'B' } else { 'A' });
        assert!(sb.open(&sealed).is_err());
        let other = SecretBox::from_config(&format!("zz:{K2}")).unwrap();
        assert!(matches!(
            other.open(&sb.seal("x")),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn bad_key_specs_say_what_is_wrong() {
        assert!(SecretBox::from_config("").is_err());
        let short = STANDARD.encode([0u8; 16]);
        let err = SecretBox::from_config(&short).unwrap_err().to_string();
        assert!(err.contains("32"), "{err}");
        assert!(SecretBox::from_config("k:not base64!").is_err());
    }
}
