//! Projection checkpoints, so start-up on a large log does not fold it all.
//!
//! On close (and after a long rebuild) the ledger writes the projection to
//! `projection.checkpoint` in the data directory: a SHA-256 of the body, then
//! the body (bincode of the format version, the seq and hash it was taken at,
//! and the projection). At start-up a checkpoint is used only if its digest
//! checks and the log still holds an event with that seq and that hash; the
//! events after it are then folded from their facts, each hash and link checked. Anything else means a
//! full rebuild. The checkpoint is a cache: deleting it is always safe.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::projection::Projection;

/// Bump when the projection's layout or meaning changes.
const FORMAT: u32 = 2;
const FILE_NAME: &str = "projection.checkpoint";

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Write the checkpoint atomically (temp file, fsync, rename, fsync dir).
pub fn save(dir: &Path, projection: &Projection) -> std::io::Result<()> {
    let body = bincode::serialize(&(FORMAT, projection.head_seq(), projection.head_hash(), projection))
        .map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&Sha256::digest(&body))?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path(dir))?;
    File::open(dir)?.sync_all()
}

/// The checkpoint in `dir`, if there is a sound one: (seq, hash, projection).
pub fn load(dir: &Path) -> Result<Option<(u64, String, Projection)>, String> {
    let bytes = match std::fs::read(path(dir)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if bytes.len() < 32 || Sha256::digest(&bytes[32..])[..] != bytes[..32] {
        return Err("its digest does not match".into());
    }
    let (format, seq, hash, projection): (u32, u64, String, Projection) =
        bincode::deserialize(&bytes[32..]).map_err(|e| e.to_string())?;
    if format != FORMAT {
        return Err(format!("format {format}, not {FORMAT}"));
    }
    Ok(Some((seq, hash, projection)))
}
