//! Argon2id hashing and verification on memory the calling thread keeps. Each hash needs
//! about 19 MiB; letting argon2 allocate it per call made the allocator's per-thread arenas
//! keep every freed block (a flood of sign-ins grew the process by 19 MiB per check, to
//! gigabytes). Run on the fixed password pool, this bounds hashing memory to one buffer per
//! pool thread, reused for every check.

use std::cell::RefCell;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

thread_local! {
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The largest memory cost a stored hash may ask for (64 MiB); anything above is refused
/// rather than allocated.
const MAX_BLOCKS: usize = 64 * 1024;

fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() < blocks {
            m.resize(blocks, Block::default());
        }
        f(&mut m[..blocks])
    })
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) for `password`, with a fresh salt.
pub(crate) fn hash(password: &[u8]) -> anyhow::Result<String> {
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = Salt::generate();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_memory(params.block_count(), |mem| {
        argon.hash_password_into_with_memory(password, salt.as_ref(), &mut out, mem)
    })
    .map_err(|e| anyhow::anyhow!("hash password: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| anyhow::anyhow!("hash parameters: {e}"))?,
        salt: Some(salt),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("hash output: {e}"))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored`. Anything unparsable is a mismatch.
pub(crate) fn verify(password: &[u8], stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    if params.block_count() > MAX_BLOCKS {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    let computed = with_memory(params.block_count(), |mem| {
        argon.hash_password_into_with_memory(password, salt.as_ref(), &mut out, mem)
    });
    computed.is_ok() && crate::crypto::constant_time_eq(&out, expected.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    #[test]
    fn round_trips_and_agrees_with_the_argon2_crate() {
        let stored = hash(b"correct horse battery").unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(verify(b"correct horse battery", &stored));
        assert!(!verify(b"wrong horse battery", &stored));
        assert!(!verify(b"x", "not a hash"));
        // Hashes made by the crate's own API (every stored hash so far) still verify, and ours
        // verify with it.
        let theirs = argon2::password_hash::PasswordHasher::hash_password(&Argon2::default(), b"old password!")
            .unwrap()
            .to_string();
        assert!(verify(b"old password!", &theirs));
        let parsed = PasswordHash::new(&stored).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse battery", &parsed).is_ok());
    }
}
