//! Encryption of provider secrets at rest: AES-256-GCM, a random 96-bit nonce per value, and
//! associated data binding each value to its firm, record and column, so a ciphertext copied to
//! another row (or firm) does not decrypt. Values carry the id of their key, so keys can rotate:
//! the keyring encrypts with its first (newest) key and decrypts with any.
//!
//! Stored form: `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use data_encoding::{BASE64, BASE64URL_NOPAD};
use rand::RngCore;
use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("invalid key specification: {0}")]
    BadKey(String),
    #[error("value was encrypted with key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("stored value is not a calsync ciphertext")]
    Malformed,
    /// Wrong key, tampered value, or a value moved to another row.
    #[error("stored value does not decrypt")]
    Undecryptable,
}

/// Named 256-bit keys, newest first. `Debug` shows the ids only.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, Aes256Gcm)>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("ids", &self.ids().collect::<Vec<_>>()).finish()
    }
}

/// What a sealed value belongs to; it becomes the associated data.
pub struct Binding<'a> {
    pub firm: uuid::Uuid,
    pub record: uuid::Uuid,
    pub column: &'a str,
}

impl Binding<'_> {
    fn aad(&self) -> Vec<u8> {
        format!("calsync|{}|{}|{}", self.firm, self.record, self.column).into_bytes()
    }
}

impl Keyring {
    /// Parses `id:base64key[,id:base64key…]`, newest first.
    pub fn parse(spec: &str) -> Result<Self, CryptoError> {
        let mut keys: Vec<(String, Aes256Gcm)> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, b64) = entry
                .split_once(':')
                .ok_or_else(|| CryptoError::BadKey("each key must look like id:base64key".into()))?;
            if id.is_empty() || id.len() > 16 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(CryptoError::BadKey(format!("key id {id:?} must be 1-16 of [A-Za-z0-9_-]")));
            }
            let raw = BASE64
                .decode(b64.trim().as_bytes())
                .map_err(|_| CryptoError::BadKey(format!("key {id:?} is not valid base64")))?;
            if raw.len() != 32 {
                return Err(CryptoError::BadKey(format!("key {id:?} has {} bytes; 32 are needed", raw.len())));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(CryptoError::BadKey(format!("key id {id:?} appears twice")));
            }
            let cipher = Aes256Gcm::new_from_slice(&raw).map_err(|_| CryptoError::BadKey(format!("key {id:?}")))?;
            keys.push((id.to_owned(), cipher));
        }
        if keys.is_empty() {
            return Err(CryptoError::BadKey("no key given".into()));
        }
        Ok(Self { keys })
    }

    /// A new random key specification `id:base64key`.
    pub fn generate_spec(id: &str) -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        format!("{id}:{}", BASE64.encode(&key))
    }

    pub fn primary_id(&self) -> &str {
        &self.keys[0].0
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    pub fn seal(&self, plaintext: &str, binding: &Binding<'_>) -> String {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let aad = binding.aad();
        let ct = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext.as_bytes(), aad: &aad })
            .expect("AES-GCM encryption of a short value cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        format!("v1.{id}.{}", BASE64URL_NOPAD.encode(&blob))
    }

    pub fn open(&self, sealed: &str, binding: &Binding<'_>) -> Result<String, CryptoError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CryptoError::Malformed);
        };
        let cipher = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, c)| c)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_owned()))?;
        let blob = BASE64URL_NOPAD.decode(b64.as_bytes()).map_err(|_| CryptoError::Malformed)?;
        if blob.len() < 12 + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ct) = blob.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| CryptoError::Malformed)?;
        let aad = binding.aad();
        let pt = cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| CryptoError::Undecryptable)?;
        String::from_utf8(pt).map_err(|_| CryptoError::Undecryptable)
    }

    /// Whether a stored value uses an older key than the newest.
    pub fn is_stale(&self, sealed: &str) -> bool {
        sealed.split('.').nth(1).is_some_and(|id| id != self.primary_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(column: &str) -> Binding<'_> {
        Binding { firm: uuid::Uuid::from_u128(1), record: uuid::Uuid::from_u128(2), column }
    }

    #[test]
    fn seals_and_opens_bound_to_the_row() {
        let ring = Keyring::parse(&Keyring::generate_spec("k1")).unwrap();
        let a = ring.seal("ya29.secret", &binding("access_token"));
        let b = ring.seal("ya29.secret", &binding("access_token"));
        assert_ne!(a, b, "a fresh nonce per value");
        assert!(a.starts_with("v1.k1.") && !a.contains("ya29"));
        assert_eq!(ring.open(&a, &binding("access_token")).unwrap(), "ya29.secret");
        assert_eq!(ring.open(&a, &binding("refresh_token")), Err(CryptoError::Undecryptable));
        let other_row =
            Binding { firm: uuid::Uuid::from_u128(1), record: uuid::Uuid::from_u128(3), column: "access_token" };
        assert_eq!(ring.open(&a, &other_row), Err(CryptoError::Undecryptable));
        let mut tampered = a.clone();
        tampered.pop();
        tampered.push(if a.ends_with('A') { 'B' } else { 'A' });
        assert!(ring.open(&tampered, &binding("access_token")).is_err());
        assert_eq!(ring.open("plain", &binding("access_token")), Err(CryptoError::Malformed));
    }

    #[test]
    fn rotation_reads_old_keys_and_writes_the_newest() {
        let old_spec = Keyring::generate_spec("old");
        let old = Keyring::parse(&old_spec).unwrap();
        let sealed = old.seal("1//refresh", &binding("refresh_token"));
        let both = Keyring::parse(&format!("{},{old_spec}", Keyring::generate_spec("new"))).unwrap();
        assert!(both.is_stale(&sealed));
        assert_eq!(both.open(&sealed, &binding("refresh_token")).unwrap(), "1//refresh");
        let resealed = both.seal("1//refresh", &binding("refresh_token"));
        assert!(!both.is_stale(&resealed) && resealed.starts_with("v1.new."));
        let new_only = Keyring::parse(&Keyring::generate_spec("new")).unwrap();
        assert_eq!(new_only.open(&sealed, &binding("refresh_token")), Err(CryptoError::UnknownKey("old".into())));
    }

    #[test]
    fn key_specs_are_validated() {
        assert!(Keyring::parse("").is_err());
        assert!(Keyring::parse(&format!("a:{}", BASE64.encode(&[1u8; 16]))).is_err());
        let k = BASE64.encode(&[1u8; 32]);
        assert!(Keyring::parse(&format!("a:{k},a:{k}")).is_err());
        assert!(Keyring::parse("a:not base64").is_err());
        assert!(Keyring::parse("bad id!:x").is_err());
        let ring = Keyring::parse(&format!("new:{k}, old:{}", BASE64.encode(&[2u8; 32]))).unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["new", "old"]);
        assert!(!format!("{ring:?}").contains(&k));
    }
}
