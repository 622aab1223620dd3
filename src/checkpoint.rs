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
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::domain::hash::Hash;
use crate::projection::Projection;

/// Bump when the projection's layout or meaning changes. A checkpoint of
/// another format is not decoded further (its layout is not this one's): the
/// projection is folded from the log instead.
const FORMAT: u32 = 3;
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

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The checkpoint in `dir`, if there is a sound one: (seq, hash, projection).
/// Read as a stream, so the file is never held in memory beside the projection
/// it decodes to; the digest is checked once the whole body has been read.
pub fn load(dir: &Path) -> Result<Option<(u64, Hash, Projection)>, String> {
    let file = match File::open(path(dir)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut file = file;
    let mut digest = [0u8; 32];
    file.read_exact(&mut digest).map_err(|e| e.to_string())?;
    let mut body = BufReader::with_capacity(
        1 << 20,
        Hashing {
            inner: file,
            hasher: Sha256::new(),
        },
    );
    let format: u32 = bincode::deserialize_from(&mut body).map_err(|e| e.to_string())?;
    if format != FORMAT {
        return Err(format!("format {format}, not {FORMAT}"));
    }
    let decoded: Result<(u64, Hash, Projection), _> = bincode::deserialize_from(&mut body);
    // Whatever is left belongs to the digest too.
    std::io::copy(&mut body, &mut std::io::sink()).map_err(|e| e.to_string())?;
    if body.into_inner().hasher.finalize()[..] != digest {
        return Err("its digest does not match".into());
    }
    let (seq, hash, projection) = decoded.map_err(|e| e.to_string())?;
    Ok(Some((seq, hash, projection)))
}
