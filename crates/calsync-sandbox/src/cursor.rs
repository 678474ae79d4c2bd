//! Opaque page, sync and delta tokens: a small record (log position, query fingerprint,
//! cursor epoch…) serialized and base64url-encoded. Decoding never trusts the content beyond
//! what the caller checks against the current request.

use data_encoding::BASE64URL_NOPAD;
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

pub(crate) fn encode<T: Serialize>(value: &T) -> String {
    BASE64URL_NOPAD.encode(&serde_json::to_vec(value).expect("cursor serializes"))
}

pub(crate) fn decode<T: DeserializeOwned>(token: &str) -> Option<T> {
    let bytes = BASE64URL_NOPAD.decode(token.as_bytes()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A short hash binding a token to the query that produced it.
pub(crate) fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    BASE64URL_NOPAD.encode(&h.finalize()[..9])
}
