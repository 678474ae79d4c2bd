//! The sandbox's state on disk (`SandboxConfig::state_file`): accounts, grants and tokens,
//! calendars and events, channels and subscriptions, the sent-mail log, the change sequence
//! and the clock offset, so the embedded default and `calsync sandbox --state FILE` survive
//! a restart. Control switches (faults, latency, paging, push mode) and quota windows are
//! not kept: they belong to a test run, not to the data.
//!
//! Writes are atomic (a temporary file beside the target, fsync, rename). A file that
//! cannot be read or parsed is an error at start, never silently replaced: it may hold the
//! only copy of a newcomer's demo data.

use std::collections::HashMap;
use std::hash::Hash;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::state::World;

/// Bumped when the layout changes incompatibly; an unknown version is refused.
const VERSION: u32 = 1;

#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    /// The generator continues from this seed after a load, as it does in the live world.
    rng_seed: u64,
    clock_offset_ms: i64,
    world: &'a World,
}

#[derive(Deserialize)]
struct Snapshot {
    version: u32,
    rng_seed: u64,
    clock_offset_ms: i64,
    world: World,
}

#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("cannot read the sandbox state file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "the sandbox state file {path} is not a valid state ({reason}); move it away to start with an empty sandbox"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write the sandbox state file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The world and clock offset saved in `path`, or `None` when there is no file yet.
pub(crate) fn load(path: &Path) -> Result<Option<(World, i64)>, StateFileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateFileError::Read { path: path.to_owned(), source }),
    };
    let corrupt = |reason: String| StateFileError::Corrupt { path: path.to_owned(), reason };
    let snap: Snapshot = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if snap.version != VERSION {
        return Err(corrupt(format!("version {} where {VERSION} is expected", snap.version)));
    }
    let mut world = snap.world;
    world.rng = StdRng::seed_from_u64(snap.rng_seed);
    Ok(Some((world, snap.clock_offset_ms)))
}

/// Serializes the world (the caller holds its lock). The generator cannot be saved as it is,
/// so a seed drawn from a copy of it is: the live world's sequence is left alone (a seeded
/// run repeats whenever saves happen), and a restart continues from that seed.
pub(crate) fn snapshot(world: &World, clock_offset_ms: i64) -> Vec<u8> {
    let rng_seed: u64 = world.rng.clone().random();
    serde_json::to_vec(&SnapshotRef { version: VERSION, rng_seed, clock_offset_ms, world })
        .expect("the sandbox world serializes")
}

/// Writes `bytes` to `path` atomically: a crash leaves the old file or the new one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StateFileError> {
    let err = |source| StateFileError::Write { path: path.to_owned(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // The state holds live tokens: a private directory when it is new, a private file always.
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(err)?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let mut f = open.open(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)?;
    // The rename itself is durable only once the directory is.
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
    Ok(())
}

/// Maps with tuple keys, which JSON objects cannot carry, saved as `[[key, value], …]`.
pub(crate) mod pairs {
    use super::*;

    pub(crate) fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &HashMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub(crate) fn deserialize<'de, K, V, D>(d: D) -> Result<HashMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}
