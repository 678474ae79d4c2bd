//! Identifier and token minting from the sandbox's (optionally seeded) random generator.

use data_encoding::{BASE32_DNSSEC, BASE64URL_NOPAD};
use rand::RngCore;
use rand::rngs::StdRng;

/// A 26-character lowercase base32hex id: valid as a Google event id (`[a-v0-9]{5,1024}`).
pub(crate) fn base32hex_id(rng: &mut StdRng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    BASE32_DNSSEC.encode(&bytes)
}

/// `prefix` followed by `n` random bytes in unpadded base64url.
pub(crate) fn token(rng: &mut StdRng, prefix: &str, n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rng.fill_bytes(&mut bytes);
    format!("{prefix}{}", BASE64URL_NOPAD.encode(&bytes))
}

/// A random (version 4 layout) UUID drawn from the sandbox generator, so seeded runs repeat.
pub(crate) fn uuid(rng: &mut StdRng) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A JWT-shaped string (`eyJ…`): real header and claims, meaningless signature. Clients must
/// treat access tokens as opaque; this only makes them look like the real thing.
pub(crate) fn jwt_like(rng: &mut StdRng, claims: &serde_json::Value) -> String {
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": "sandbox"});
    let mut sig = [0u8; 64];
    rng.fill_bytes(&mut sig);
    format!(
        "{}.{}.{}",
        BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
        BASE64URL_NOPAD.encode(claims.to_string().as_bytes()),
        BASE64URL_NOPAD.encode(&sig)
    )
}
