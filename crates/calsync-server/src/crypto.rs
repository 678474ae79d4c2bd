//! Secrets: random tokens, their one-way hashes, and the keyring that will encrypt provider tokens
//! at rest.

use anyhow::{Context, bail};
use data_encoding::{BASE32_NOPAD, BASE64, HEXLOWER};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
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

/// Named 256-bit keys, newest first. `Debug` shows the ids only.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, [u8; 32])>,
}

impl Keyring {
    /// Parses `id:base64key[,id:base64key…]`.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut keys: Vec<(String, [u8; 32])> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, b64) = entry.split_once(':').context("each key must look like id:base64key")?;
            if id.is_empty() || id.len() > 16 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                bail!("key id {id:?} must be 1-16 of [A-Za-z0-9_-]");
            }
            let raw = BASE64.decode(b64.as_bytes()).with_context(|| format!("key {id:?} is not valid base64"))?;
            let key: [u8; 32] = raw
                .try_into()
                .map_err(|v: Vec<u8>| anyhow::anyhow!("key {id:?} has {} bytes; 32 are needed", v.len()))?;
            if keys.iter().any(|(k, _)| k == id) {
                bail!("key id {id:?} appears twice");
            }
            keys.push((id.to_owned(), key));
        }
        if keys.is_empty() {
            bail!("no key given");
        }
        Ok(Self { keys })
    }

    /// Reads a development key file, creating one (mode 0600) when it does not exist.
    pub fn load_or_generate(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(text.trim()).with_context(|| format!("key file {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                let id = format!("dev{}", chrono::Utc::now().format("%Y%m%d"));
                let spec = format!("{id}:{}", BASE64.encode(&key));
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
                Self::parse(&spec)
            }
            Err(e) => Err(e).with_context(|| format!("read key file {}", path.display())),
        }
    }

    pub fn primary_id(&self) -> &str {
        &self.keys[0].0
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("ids", &self.ids().collect::<Vec<_>>()).finish()
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
    fn keyring_parsing() {
        let k = BASE64.encode(&[1u8; 32]);
        let ring = Keyring::parse(&format!("new:{k}, old:{}", BASE64.encode(&[2u8; 32]))).unwrap();
        assert_eq!(ring.primary_id(), "new");
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["new", "old"]);
        assert!(!format!("{ring:?}").contains(&k));
        assert!(Keyring::parse("").is_err());
        assert!(Keyring::parse(&format!("a:{}", BASE64.encode(&[1u8; 16]))).is_err());
        assert!(Keyring::parse(&format!("a:{k},a:{k}")).is_err());
        assert!(Keyring::parse("a:not base64").is_err());
    }

    #[test]
    fn key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/calsync.key");
        let first = Keyring::load_or_generate(&path).unwrap();
        let second = Keyring::load_or_generate(&path).unwrap();
        assert_eq!(first.primary_id(), second.primary_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
