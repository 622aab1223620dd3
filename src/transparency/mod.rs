//! Signed checkpoints and witnesses (C2SP `signed-note`, `tlog-checkpoint`,
//! `tlog-cosignature`, `tlog-witness`): what stops the operator from showing
//! one history to one newsroom and another to the next.
//!
//! - [`note`]: Ed25519 keys in the signed-note formats (private key files,
//!   verifier keys). The note format itself is the `signed_note` crate.
//! - [`checkpoint`]: the tlog-checkpoint body and its signed note.
//! - [`cosignature`]: tlog-cosignature/v1 lines (Ed25519, timestamped).
//! - [`signer`]: the log's side: signs the tree head in the background, never
//!   two inconsistent checkpoints, and gathers witnesses' cosignatures.
//! - [`witness`]: `sitrep witness`, a tlog-witness server with its own state.
//!
//! Each wire format lives in one file; the HTTP handler for
//! `GET /v1/audit/checkpoint` is in `api::audit`.

pub mod checkpoint;
pub mod cosignature;
pub mod note;
pub mod signer;
pub mod witness;

use std::io::Write;
use std::path::Path;

/// Replace `path` with `bytes` atomically and durably: a temp file beside it,
/// fsync, rename over, fsync the directory. A crash leaves the old file or the
/// new one, never a mix.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
