//! Secrets: random tokens, their one-way hashes, and loading the keyring that encrypts provider
//! tokens at rest.

use anyhow::Context;
use data_encoding::{BASE32_NOPAD, HEXLOWER};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::path::Path;

/// A new random secret with a readable prefix, e.g. `cs_` for API tokens.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", BASE32_NOPAD.encode(&bytes).to_lowercase())
}

/// The value stored in place of a token: SHA-256, hex. Tokens carry 256 random bits, so a fast
/// hash is enough; what matters is that a database dump holds nothing usable.
pub fn token_hash(token: &str) -> String {
    HEXLOWER.encode(&Sha256::digest(token.as_bytes()))
}

/// Constant-time equality for secrets compared against user input.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub use calsync_store::crypto::Keyring;

/// Reads a development key file, creating one (mode 0600) when it does not exist.
pub fn load_or_generate_keyring(path: &Path) -> anyhow::Result<Keyring> {
    match std::fs::read_to_string(path) {
        Ok(text) => Keyring::parse(text.trim()).with_context(|| format!("key file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("dev{}", chrono::Utc::now().format("%Y%m%d"));
            let spec = Keyring::generate_spec(&id);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            }
            write_private(path, &spec).with_context(|| format!("write key file {}", path.display()))?;
            tracing::warn!(
                path = %path.display(),
                "CALSYNC_ENCRYPTION_KEY is not set: generated a development key file. Back it up: without it \
                 stored calendar tokens cannot be decrypted. Set CALSYNC_ENCRYPTION_KEY in production."
            );
            eprintln!(
                "WARNING: CALSYNC_ENCRYPTION_KEY is not set; generated a development key at {} (keep it safe)",
                path.display()
            );
            Ok(Keyring::parse(&spec)?)
        }
        Err(e) => Err(e).with_context(|| format!("read key file {}", path.display())),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let a = random_token("cs_");
        let b = random_token("cs_");
        assert_ne!(a, b);
        assert!(a.starts_with("cs_") && a.len() == 3 + 52, "{a}");
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(token_hash(&a).len(), 64);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/calsync.key");
        let first = load_or_generate_keyring(&path).unwrap();
        let second = load_or_generate_keyring(&path).unwrap();
        assert_eq!(first.primary_id(), second.primary_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
