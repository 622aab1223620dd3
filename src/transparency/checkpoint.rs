//! C2SP tlog-checkpoint: the note body `<origin>\n<size>\n<base64 root>\n`,
//! signed as a signed-note by the log's key.
//!
//! The root is the RFC 9162 Merkle tree head of the first `size` events (the
//! same tree as `GET /v1/audit/head`, whose root is hex rather than base64).

use base64::prelude::{Engine, BASE64_STANDARD};
use signed_note::{Note, NoteError, Signer, StandardVerifier, Verifier, VerifierList};

/// Largest checkpoint note accepted (body and signatures): a checkpoint is a
/// few hundred bytes; room for many cosignatures.
pub const MAX_NOTE_BYTES: usize = 16 * 1024;

/// A tree head as a checkpoint names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a checkpoint: {0}")]
    Malformed(String),
    #[error("the checkpoint is not signed by {0}: {1}")]
    Unverified(String, String),
    #[error("the checkpoint's origin is '{got}', not '{want}'")]
    WrongOrigin { got: String, want: String },
}

impl Checkpoint {
    /// The note body: origin, size and base64 root, each ending in a newline.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64_STANDARD.encode(self.root)
        )
    }

    /// Parse a note body. Extension lines after the root are allowed by the
    /// spec and ignored here (this log writes none).
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let bad = |m: &str| CheckpointError::Malformed(m.to_owned());
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("the body does not end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin line"))?;
        let size = lines.next().ok_or_else(|| bad("no size line"))?;
        if size.is_empty() || (size.len() > 1 && size.starts_with('0')) || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the size is not a decimal without leading zeros"));
        }
        let size = size.parse::<u64>().map_err(|_| bad("the size is too large"))?;
        let root = lines.next().ok_or_else(|| bad("no root hash line"))?;
        let root: [u8; 32] = BASE64_STANDARD
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("the root is not 32 bytes of base64"))?;
        if lines.any(str::is_empty) {
            return Err(bad("an empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// The signed note of this checkpoint, signed by `signer` (whose name must
    /// be the origin).
    pub fn sign(&self, signer: &dyn Signer) -> Note {
        assert_eq!(signer.name(), self.origin, "a log signs only its own origin");
        let mut note = Note::new(self.text().as_bytes(), &[]).expect("a checkpoint body is a valid note text");
        note.add_sigs(&[signer]).expect("the origin is a valid key name");
        note
    }
}

/// Parse a signed checkpoint and verify it under the log's key: the signature
/// must verify and the origin must be the key's name. Returns the checkpoint
/// and the note (with every signature line, e.g. cosignatures, kept).
pub fn open(bytes: &[u8], log: &StandardVerifier) -> Result<(Checkpoint, Note), CheckpointError> {
    if bytes.len() > MAX_NOTE_BYTES {
        return Err(CheckpointError::Malformed(format!(
            "longer than {MAX_NOTE_BYTES} bytes"
        )));
    }
    let note = Note::from_bytes(bytes).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    let checkpoint = parse_note(&note)?;
    if checkpoint.origin != log.name() {
        return Err(CheckpointError::WrongOrigin {
            got: checkpoint.origin,
            want: log.name().to_owned(),
        });
    }
    let known = VerifierList::new(vec![Box::new(log.clone())]);
    note.verify(&known).map_err(|e| {
        let why = match e {
            NoteError::UnverifiedNote => "no signature by this key".to_owned(),
            other => other.to_string(),
        };
        CheckpointError::Unverified(format!("{}+{:08x}", log.name(), log.key_id()), why)
    })?;
    Ok((checkpoint, note))
}

/// The checkpoint a note carries, unverified.
pub fn parse_note(note: &Note) -> Result<Checkpoint, CheckpointError> {
    let text = std::str::from_utf8(note.text()).map_err(|_| CheckpointError::Malformed("not UTF-8".into()))?;
    Checkpoint::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transparency::note::{verifier, PrivateKey};

    // The example checkpoint of C2SP tlog-checkpoint and tlog-witness.
    const C2SP_EXAMPLE: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    #[test]
    fn the_c2sp_example_parses_and_prints_back_the_same() {
        let c = Checkpoint::parse(C2SP_EXAMPLE).unwrap();
        assert_eq!(c.origin, "example.com/behind-the-sofa");
        assert_eq!(c.size, 20852163);
        assert_eq!(c.text(), C2SP_EXAMPLE);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for bad in [
            "",
            "origin\n",
            "origin\n12\n",
            "origin\n012\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "origin\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "origin\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",
            "origin\n12\nAAAA\n",
            "origin\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",
            "\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "origin\n99999999999999999999\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Checkpoint::parse(&format!("{C2SP_EXAMPLE}extension line\n")).is_ok());
    }

    #[test]
    fn a_signed_checkpoint_opens_under_its_key_and_nothing_else() {
        let key = PrivateKey::generate("example.org/log").unwrap();
        let other = PrivateKey::generate("example.org/log").unwrap();
        let renamed = PrivateKey::generate("example.org/other").unwrap();
        let c = Checkpoint {
            origin: "example.org/log".into(),
            size: 7,
            root: [9; 32],
        };
        let bytes = c.sign(key.signer()).to_bytes();
        let (opened, _) = open(&bytes, &verifier(&key.vkey()).unwrap()).unwrap();
        assert_eq!(opened, c);
        assert!(matches!(
            open(&bytes, &verifier(&other.vkey()).unwrap()),
            Err(CheckpointError::Unverified(..))
        ));
        assert!(matches!(
            open(&bytes, &verifier(&renamed.vkey()).unwrap()),
            Err(CheckpointError::WrongOrigin { .. })
        ));
        // A different root under the same signature.
        let text = String::from_utf8(bytes).unwrap();
        let forged = text.replace(&BASE64_STANDARD.encode([9u8; 32]), &BASE64_STANDARD.encode([8u8; 32]));
        assert!(open(forged.as_bytes(), &verifier(&key.vkey()).unwrap()).is_err());
    }
}
