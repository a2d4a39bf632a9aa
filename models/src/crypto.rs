//! Secrets at rest: API keys are stored as SHA-256 hashes; secrets Keel must read back (webhook
//! signing secrets, Jira API tokens) are sealed with AES-256-GCM under a key id, so keys can be
//! rotated: new values use the primary key, old values still open with the key they name (and
//! `keel secrets rotate` re-seals them under the primary). Each value is bound to its tenant and
//! column ([`Field`]), so a ciphertext copied elsewhere in the database does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::distributions::Alphanumeric;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use uuid::Uuid;

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
    #[error("sealed value failed authentication (wrong key, tampered, or sealed for another tenant or field)")]
    Auth,
}

/// Which stored secret a sealed value is. Bound into the ciphertext together with the tenant
/// (AEAD associated data), so a value copied into another tenant's row or another column does
/// not open there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `tenants.signing_secret`: the tenant's outbound-webhook signing secret.
    SigningSecret,
    /// `tenant_jira.token_sealed`: the tenant's Jira API token.
    JiraToken,
}

impl Field {
    /// Every sealed column, in the order `keel secrets rotate` reports them.
    pub const ALL: [Field; 2] = [Field::SigningSecret, Field::JiraToken];

    /// `table.column`, as bound into the ciphertext and printed by `keel secrets rotate`.
    pub fn column(self) -> &'static str {
        match self {
            Field::SigningSecret => "tenants.signing_secret",
            Field::JiraToken => "tenant_jira.token_sealed",
        }
    }
}

/// The associated data of a `v2` value: format, column and tenant.
fn aad(field: Field, tenant: Uuid) -> String {
    format!("keel/v2|{}|{tenant}", field.column())
}

/// AES-256-GCM with a random 96-bit nonce per value. Sealed form:
/// `v2.<key id>.<base64url(nonce ‖ ciphertext)>`, authenticated with [`aad`] (field and tenant).
/// `v1.` values (sealed before the binding existed, without associated data) still open;
/// `keel secrets rotate` rewrites them as `v2`.
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

/// A sealed value's parts: format version, key id, nonce ‖ ciphertext.
fn parse(sealed: &str) -> Result<(&str, &str, Vec<u8>), CryptoError> {
    let mut parts = sealed.splitn(3, '.');
    let (Some(version @ ("v1" | "v2")), Some(id), Some(b64)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(CryptoError::Malformed);
    };
    let blob = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| CryptoError::Malformed)?;
    if blob.len() < 12 + 16 {
        return Err(CryptoError::Malformed);
    }
    Ok((version, id, blob))
}

/// One key's 32 bytes: 64 hex characters (`openssl rand -hex 32`) or base64
/// (`openssl rand -base64 32`).
fn key_bytes(id: &str, text: &str) -> Result<Vec<u8>, CryptoError> {
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).expect("64 hex digits decode")
    } else {
        STANDARD.decode(text).map_err(|e| {
            CryptoError::BadKey(format!(
                "key {id:?} is neither 64 hex characters nor base64 ({e})"
            ))
        })?
    };
    if bytes.len() != 32 {
        return Err(CryptoError::BadKey(format!(
            "key {id:?} is {} bytes; AES-256 needs 32 (openssl rand -hex 32)",
            bytes.len()
        )));
    }
    Ok(bytes)
}

impl SecretBox {
    /// Parses `KEEL_ENCRYPTION_KEY`: `id:key[,id2:key2…]` (the first is primary) or a bare key
    /// (id `k1`). Each key is 32 bytes, as 64 hex characters (`openssl rand -hex 32`) or base64
    /// (`openssl rand -base64 32`).
    pub fn from_config(spec: &str) -> Result<Self, CryptoError> {
        let mut keys = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, text) = match part.split_once(':') {
                Some((id, text)) => (id.trim().to_string(), text.trim()),
                None => ("k1".to_string(), part),
            };
            if id.is_empty() || id.contains('.') {
                return Err(CryptoError::BadKey(format!(
                    "key id {id:?} must be non-empty and contain no '.'"
                )));
            }
            let bytes = key_bytes(&id, text)?;
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

    /// The primary key's id: new values are sealed under it.
    pub fn primary_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Seals `plaintext` as `field` of `tenant`, under the primary key.
    pub fn seal(&self, field: Field, tenant: Uuid, plaintext: &str) -> String {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = aad(field, tenant);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: aad.as_bytes(),
        };
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        format!("v2.{id}.{}", URL_SAFE_NO_PAD.encode(blob))
    }

    /// Opens a value sealed as `field` of `tenant` (or a `v1` value, which names neither).
    pub fn open(&self, field: Field, tenant: Uuid, sealed: &str) -> Result<String, CryptoError> {
        let (version, id, blob) = parse(sealed)?;
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_string()))?;
        let (nonce, ct) = blob.split_at(12);
        let aad = match version {
            "v2" => aad(field, tenant),
            _ => String::new(),
        };
        let payload = Payload {
            msg: ct,
            aad: aad.as_bytes(),
        };
        let pt = cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| CryptoError::Auth)?;
        String::from_utf8(pt).map_err(|_| CryptoError::Malformed)
    }

    /// The value re-sealed under the primary key in the current format, or `None` when it is
    /// already (what `keel secrets rotate` writes back). Fails when it does not open.
    pub fn reseal(
        &self,
        field: Field,
        tenant: Uuid,
        sealed: &str,
    ) -> Result<Option<String>, CryptoError> {
        let plaintext = self.open(field, tenant, sealed)?;
        let (version, id, _) = parse(sealed)?;
        if version == "v2" && id == self.primary_id() {
            return Ok(None);
        }
        Ok(Some(self.seal(field, tenant, &plaintext)))
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

    const T1: Uuid = Uuid::from_u128(1);
    const T2: Uuid = Uuid::from_u128(2);
    use Field::{JiraToken, SigningSecret};

    /// A value as Keel sealed it before values were bound to their tenant and field.
    fn seal_v1(sb: &SecretBox, plaintext: &str) -> String {
        let (id, cipher) = &sb.keys[0];
        let nonce = [7u8; 12];
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .unwrap();
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        format!("v1.{id}.{}", URL_SAFE_NO_PAD.encode(blob))
    }

    #[test]
    fn seal_open_round_trip_with_random_nonce() {
        let sb = SecretBox::from_config(K1).unwrap();
        let a = sb.seal(SigningSecret, T1, "hello");
        let b = sb.seal(SigningSecret, T1, "hello");
        assert_ne!(a, b, "nonce must differ per value");
        assert!(!a.contains("hello"));
        assert!(a.starts_with("v2.k1."), "{a}");
        assert_eq!(sb.open(SigningSecret, T1, &a).unwrap(), "hello");
    }

    #[test]
    fn a_value_copied_to_another_tenant_or_field_does_not_open() {
        let sb = SecretBox::from_config(K1).unwrap();
        let sealed = sb.seal(JiraToken, T1, "jira-token");
        for (field, tenant) in [(JiraToken, T2), (SigningSecret, T1), (SigningSecret, T2)] {
            assert!(
                matches!(sb.open(field, tenant, &sealed), Err(CryptoError::Auth)),
                "{field:?} of {tenant} opened a value sealed for another"
            );
            assert!(sb.reseal(field, tenant, &sealed).is_err());
        }
        assert_eq!(sb.open(JiraToken, T1, &sealed).unwrap(), "jira-token");
    }

    #[test]
    fn v1_values_still_open_and_reseal_binds_them() {
        let old = SecretBox::from_config(&format!("old:{K1}")).unwrap();
        let v1 = seal_v1(&old, "legacy");
        assert_eq!(old.open(SigningSecret, T1, &v1).unwrap(), "legacy");
        assert_eq!(
            old.open(JiraToken, T2, &v1).unwrap(),
            "legacy",
            "v1 names neither"
        );
        // Same key: only the format changes; the result is bound.
        let upgraded = old.reseal(SigningSecret, T1, &v1).unwrap().unwrap();
        assert!(upgraded.starts_with("v2.old."), "{upgraded}");
        assert_eq!(old.open(SigningSecret, T1, &upgraded).unwrap(), "legacy");
        assert!(old.open(SigningSecret, T2, &upgraded).is_err());
        assert_eq!(old.reseal(SigningSecret, T1, &upgraded).unwrap(), None);
        // A new primary: v1 and v2 values under the old key move to it.
        let rotated = SecretBox::from_config(&format!("new:{K2},old:{K1}")).unwrap();
        let only_new = SecretBox::from_config(&format!("new:{K2}")).unwrap();
        for sealed in [&v1, &upgraded] {
            let moved = rotated.reseal(SigningSecret, T1, sealed).unwrap().unwrap();
            assert!(moved.starts_with("v2.new."), "{moved}");
            assert_eq!(only_new.open(SigningSecret, T1, &moved).unwrap(), "legacy");
        }
    }

    #[test]
    fn rotation_opens_old_values_and_seals_with_primary() {
        let old = SecretBox::from_config(&format!("old:{K1}")).unwrap();
        let sealed_old = old.seal(SigningSecret, T1, "s");
        let rotated = SecretBox::from_config(&format!("new:{K2},old:{K1}")).unwrap();
        assert_eq!(rotated.open(SigningSecret, T1, &sealed_old).unwrap(), "s");
        assert!(rotated.seal(SigningSecret, T1, "t").starts_with("v2.new."));
        assert_eq!(rotated.primary_id(), "new");
    }

    #[test]
    fn tampering_and_unknown_keys_fail() {
        let sb = SecretBox::from_config(K1).unwrap();
        let mut sealed = sb.seal(SigningSecret, T1, "secret");
        let last = sealed.pop().unwrap();
        sealed.push(if last == 'A' { 'B' } else { 'A' });
        assert!(sb.open(SigningSecret, T1, &sealed).is_err());
        let other = SecretBox::from_config(&format!("zz:{K2}")).unwrap();
        assert!(matches!(
            other.open(SigningSecret, T1, &sb.seal(SigningSecret, T1, "x")),
            Err(CryptoError::UnknownKey(_))
        ));
        let v2 = sb.seal(SigningSecret, T1, "x");
        let v3 = v2.replacen("v2.", "v3.", 1);
        assert!(matches!(
            sb.open(SigningSecret, T1, &v3),
            Err(CryptoError::Malformed)
        ));
    }

    #[test]
    fn hex_keys_are_accepted_with_or_without_an_id() {
        let bytes = STANDARD.decode(K1).unwrap();
        let hex_key = hex::encode(&bytes);
        assert_eq!(hex_key.len(), 64);
        let from_hex = SecretBox::from_config(&hex_key).unwrap();
        let from_b64 = SecretBox::from_config(K1).unwrap();
        let sealed = from_hex.seal(JiraToken, T1, "same key");
        assert_eq!(from_b64.open(JiraToken, T1, &sealed).unwrap(), "same key");
        let upper =
            SecretBox::from_config(&format!("a:{},b:{K2}", hex_key.to_uppercase())).unwrap();
        assert_eq!(upper.primary_id(), "a");
        assert_eq!(
            upper
                .open(JiraToken, T1, &sealed.replacen(".k1.", ".a.", 1))
                .unwrap(),
            "same key"
        );
        // 62 hex digits are neither a hex key nor 32 bytes of base64.
        let err = SecretBox::from_config(&hex_key[..62])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("KEEL_ENCRYPTION_KEY is invalid"), "{err}");
    }

    #[test]
    fn bad_key_specs_say_what_is_wrong() {
        assert!(SecretBox::from_config("").is_err());
        let short = STANDARD.encode([0u8; 16]);
        let err = SecretBox::from_config(&short).unwrap_err().to_string();
        assert!(err.contains("32"), "{err}");
        let err = SecretBox::from_config("k:not base64!")
            .unwrap_err()
            .to_string();
        assert!(err.contains("KEEL_ENCRYPTION_KEY"), "{err}");
        assert!(err.contains("hex"), "{err}");
    }
}
