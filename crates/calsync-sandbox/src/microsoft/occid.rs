//! Occurrence ids: opaque like Graph's (neither the master id nor the date shows through),
//! the same id every time for the same occurrence, and reversible with the sandbox's secret
//! alone, so nothing has to remember the ids handed out.
//!
//! The id is `AAMkAGI2` + base64url(tag ‖ ciphertext): the plaintext is
//! `master id NUL occurrence stamp`, the tag a keyed SHA-256 of it (deterministic, so the
//! same occurrence always gets the same id, and it authenticates: a forged or altered id
//! does not decode), and the ciphertext the plaintext XORed with a keystream of SHA-256
//! blocks over (secret, tag, counter). A synthetic-IV construction: two ids never share a
//! keystream unless they are the same occurrence.

use data_encoding::BASE64URL_NOPAD;
use rand::RngCore;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::recurrence::Occ;

/// Prefix of Graph event ids in this sandbox (stored events use it too).
const PREFIX: &str = "AAMkAGI2";
/// Bytes of the tag (also the keystream nonce).
const TAG: usize = 16;

/// The per-sandbox secret behind occurrence ids; kept in the state file so ids survive a
/// restart.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub(crate) struct OccKey([u8; 32]);

impl std::fmt::Debug for OccKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OccKey([redacted])")
    }
}

impl OccKey {
    pub(crate) fn generate(rng: &mut StdRng) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        Self(key)
    }

    /// The id of occurrence `occ` of series master `master`.
    pub(crate) fn encode(&self, master: &str, occ: Occ) -> String {
        let mut body = format!("{master}\0{}", occ.stamp()).into_bytes();
        let tag = self.tag(&body);
        self.xor(&tag, &mut body);
        let mut raw = tag.to_vec();
        raw.extend_from_slice(&body);
        format!("{PREFIX}{}", BASE64URL_NOPAD.encode(&raw))
    }

    /// The master id and occurrence an id stands for; `None` for anything this key did not
    /// encode (stored event ids included).
    pub(crate) fn decode(&self, id: &str) -> Option<(String, Occ)> {
        let raw = BASE64URL_NOPAD.decode(id.strip_prefix(PREFIX)?.as_bytes()).ok()?;
        if raw.len() <= TAG {
            return None;
        }
        let (tag, body) = raw.split_at(TAG);
        let mut plain = body.to_vec();
        self.xor(tag, &mut plain);
        if self.tag(&plain)[..] != *tag {
            return None;
        }
        let text = String::from_utf8(plain).ok()?;
        let (master, stamp) = text.rsplit_once('\0')?;
        Some((master.to_owned(), Occ::parse_stamp(stamp)?))
    }

    /// Keyed hash of the plaintext, nested so it is not open to length extension.
    fn tag(&self, plain: &[u8]) -> [u8; TAG] {
        let inner =
            Sha256::new().chain_update(self.0).chain_update(b"occurrence-id tag").chain_update(plain).finalize();
        let outer = Sha256::new().chain_update(self.0).chain_update(inner).finalize();
        let mut tag = [0u8; TAG];
        tag.copy_from_slice(&outer[..TAG]);
        tag
    }

    /// XORs `data` with the keystream for `nonce`: block i is SHA-256(secret, nonce, i).
    fn xor(&self, nonce: &[u8], data: &mut [u8]) {
        for (i, chunk) in data.chunks_mut(32).enumerate() {
            let block = Sha256::new()
                .chain_update(self.0)
                .chain_update(b"occurrence-id stream")
                .chain_update(nonce)
                .chain_update((i as u64).to_be_bytes())
                .finalize();
            for (d, k) in chunk.iter_mut().zip(block.iter()) {
                *d ^= k;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn at(s: &str) -> Occ {
        Occ::parse_stamp(s).unwrap()
    }

    #[test]
    fn ids_round_trip_are_stable_and_need_the_key() {
        let key = OccKey::generate(&mut StdRng::seed_from_u64(1));
        let other = OccKey::generate(&mut StdRng::seed_from_u64(2));
        let master = "AAMkAGI2master_id-with-base64url";
        let a = key.encode(master, at("20240318T090000Z"));
        assert_eq!(a, key.encode(master, at("20240318T090000Z")), "stable");
        assert_eq!(key.decode(&a), Some((master.to_owned(), at("20240318T090000Z"))));
        let d = key.encode(master, at("20240318"));
        assert_eq!(key.decode(&d), Some((master.to_owned(), at("20240318"))), "all-day occurrences too");
        assert!(a.starts_with(PREFIX) && !a.contains("master") && !a.contains("2024"), "{a}");
        // The next occurrence shares no visible prefix beyond Graph's.
        let b = key.encode(master, at("20240325T090000Z"));
        assert_ne!(a[PREFIX.len()..PREFIX.len() + 8], b[PREFIX.len()..PREFIX.len() + 8]);
        assert_eq!(other.decode(&a), None, "another sandbox's secret does not decode it");
        let mut forged = a.clone().into_bytes();
        let last = forged.len() - 3;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(key.decode(std::str::from_utf8(&forged).unwrap()), None, "an altered id is refused");
        assert_eq!(key.decode(master), None);
        assert_eq!(key.decode("AAMkAGI2"), None);
    }

    #[test]
    fn the_secret_is_not_printed() {
        let key = OccKey::generate(&mut StdRng::seed_from_u64(1));
        assert_eq!(format!("{key:?}"), "OccKey([redacted])");
    }
}
