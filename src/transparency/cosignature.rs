//! C2SP tlog-cosignature, the Ed25519 (`cosignature/v1`) type.
//!
//! A cosignature is a signed-note signature line on a checkpoint:
//! `— <witness name> base64(key id || timestamp || signature)`, where
//!
//! - key id = SHA-256(name || "\n" || 0x04 || 32-byte public key)[:4],
//! - timestamp = u64 big-endian POSIX seconds (at most 2^63 - 1),
//! - signature = Ed25519 over `cosignature/v1\ntime <timestamp>\n` followed by
//!   the whole checkpoint body.
//!
//! The verifier key is `<name>+<key id>+base64(0x04 || public key)`.

use base64::prelude::{Engine, BASE64_STANDARD};
use ed25519_dalek::Signer as _;
use signed_note::{Note, Signature, Verifier};

/// The signature type byte of an Ed25519 cosignature/v1 key.
pub const ALG_COSIGNATURE_V1: u8 = 4;
/// timestamp (8) + Ed25519 signature (64).
const TIMESTAMPED_SIGNATURE_BYTES: usize = 8 + 64;

/// The message a cosignature/v1 signs.
pub fn signed_message(timestamp: u64, checkpoint_text: &[u8]) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    m.extend_from_slice(checkpoint_text);
    m
}

fn key_id(name: &str, public: &ed25519_dalek::VerifyingKey) -> u32 {
    signed_note::key_id(name, &[&[ALG_COSIGNATURE_V1][..], public.as_bytes()].concat())
}

/// A witness's signing side.
pub struct Cosigner {
    name: String,
    id: u32,
    key: ed25519_dalek::SigningKey,
}

impl Cosigner {
    pub fn new(name: &str, key: ed25519_dalek::SigningKey) -> Cosigner {
        Cosigner {
            name: name.to_owned(),
            id: key_id(name, &key.verifying_key()),
            key,
        }
    }

    /// The verifier key of this cosigner, `name+id+base64(0x04 || key)`.
    pub fn vkey(&self) -> String {
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.id,
            BASE64_STANDARD.encode([&[ALG_COSIGNATURE_V1][..], self.key.verifying_key().as_bytes()].concat())
        )
    }

    /// Cosign a checkpoint body at `timestamp`.
    pub fn cosign(&self, checkpoint_text: &[u8], timestamp: u64) -> Signature {
        assert!(
            timestamp <= i64::MAX as u64,
            "the spec bounds the timestamp by 2^63 - 1"
        );
        let sig = self.key.sign(&signed_message(timestamp, checkpoint_text));
        let mut bytes = timestamp.to_be_bytes().to_vec();
        bytes.extend_from_slice(&sig.to_bytes());
        Signature::new(self.name.clone(), self.id, bytes).expect("the name was checked when the key was made")
    }
}

/// A witness's verifier key, parsed and checked.
#[derive(Clone, Debug)]
pub struct CosignatureVerifier {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl CosignatureVerifier {
    pub fn parse(vkey: &str) -> Result<CosignatureVerifier, String> {
        let bad = || format!("'{vkey}' is not a cosignature/v1 verifier key (name+id+base64 of 0x04 and the key)");
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id16), Some(key64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let raw = BASE64_STANDARD.decode(key64).map_err(|_| bad())?;
        let key: [u8; 32] = match raw.split_first() {
            Some((&ALG_COSIGNATURE_V1, key)) => key.try_into().map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| bad())?;
        if !signed_note::is_key_name_valid(name) || id16.len() != 8 {
            return Err(bad());
        }
        let id = u32::from_str_radix(id16, 16).map_err(|_| bad())?;
        if id != key_id(name, &key) {
            return Err(format!("'{vkey}': the key id does not match the name and key"));
        }
        Ok(CosignatureVerifier {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// The timestamp of a valid cosignature `sig` (the bytes after the key id)
    /// on `checkpoint_text`, or `None`.
    pub fn verify_timestamped(&self, checkpoint_text: &[u8], sig: &[u8]) -> Option<u64> {
        if sig.len() != TIMESTAMPED_SIGNATURE_BYTES {
            return None;
        }
        let timestamp = u64::from_be_bytes(sig[..8].try_into().expect("8 bytes"));
        if timestamp > i64::MAX as u64 {
            return None;
        }
        let signature = ed25519_dalek::Signature::from_slice(&sig[8..]).ok()?;
        self.key
            .verify_strict(&signed_message(timestamp, checkpoint_text), &signature)
            .ok()
            .map(|_| timestamp)
    }

    /// Does `note` carry a valid cosignature of this witness?
    pub fn cosigned(&self, note: &Note) -> bool {
        cosignatures_of(note.to_bytes().as_slice())
            .iter()
            .any(|s| s.name() == self.name && s.id() == self.id && self.verify(note.text(), s.signature()))
    }
}

impl Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.verify_timestamped(msg, sig).is_some()
    }
}

/// Every signature line of a signed note (after the blank line), parsed;
/// malformed lines are skipped.
pub fn cosignatures_of(note: &[u8]) -> Vec<Signature> {
    let text = String::from_utf8_lossy(note);
    let sigs = text.rsplit_once("\n\n").map(|(_, s)| s).unwrap_or("");
    sig_lines(sigs)
}

/// Signature lines (`— name base64`), one a line, as a witness answers them.
pub fn sig_lines(text: &str) -> Vec<Signature> {
    text.lines()
        .filter_map(|l| Signature::from_bytes(l.as_bytes()).ok())
        .collect()
}

/// How many of `witnesses` (distinct keys) validly cosigned `note`.
pub fn count_cosigners(note: &Note, witnesses: &[CosignatureVerifier]) -> usize {
    witnesses.iter().filter(|w| w.cosigned(note)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    // C2SP tlog-cosignature: the example cosignature line of
    // `witness.example.com/w1` on the example checkpoint, and the example of
    // the signed message for that checkpoint at "time 1679315147". The spec
    // does not publish the witness's public key, so the test checks the layout
    // (key id, then the big-endian timestamp the message names).
    const C2SP_CHECKPOINT: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    const C2SP_COSIGNATURE: &str = "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==";
    const C2SP_MESSAGE: &str = "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    #[test]
    fn the_c2sp_example_line_carries_a_key_id_and_the_timestamp_of_the_example_message() {
        let sig = Signature::from_bytes(C2SP_COSIGNATURE.as_bytes()).unwrap();
        assert_eq!(sig.name(), "witness.example.com/w1");
        assert_eq!(sig.id(), 0x8d66cf3f);
        assert_eq!(sig.signature().len(), TIMESTAMPED_SIGNATURE_BYTES);
        let timestamp = u64::from_be_bytes(sig.signature()[..8].try_into().unwrap());
        assert_eq!(timestamp, 1679315147);
        assert_eq!(
            String::from_utf8(signed_message(timestamp, C2SP_CHECKPOINT.as_bytes())).unwrap(),
            C2SP_MESSAGE
        );
    }

    #[test]
    fn the_key_id_is_the_spec_formula_with_type_0x04() {
        // The Go vector key (golang.org/x/mod/sumdb/note, note_test.go) reused as
        // a witness key: same name and key, type 0x04 instead of 0x01, so a
        // different key id, computed here from the spec's formula by hand.
        let note_key = crate::transparency::note::PrivateKey::parse(
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        )
        .unwrap();
        let c = Cosigner::new("PeterNeumann", note_key.ed25519().clone());
        let mut h = sha2::Sha256::new();
        use sha2::Digest;
        h.update(b"PeterNeumann\n\x04");
        h.update(note_key.ed25519().verifying_key().as_bytes());
        let want = u32::from_be_bytes(h.finalize()[..4].try_into().unwrap());
        assert_eq!(c.id, want);
        assert_ne!(c.id, 0xc74f20a3);
        let v = CosignatureVerifier::parse(&c.vkey()).unwrap();
        assert_eq!(v.key_id(), want);
        // The note verifier key (type 0x01) is not a cosigner key.
        assert!(
            CosignatureVerifier::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").is_err()
        );
    }

    #[test]
    fn a_cosignature_verifies_on_its_checkpoint_only() {
        let mut seed = [0u8; 32];
        seed[0] = 7;
        let c = Cosigner::new("witness.example/w", ed25519_dalek::SigningKey::from_bytes(&seed));
        let v = CosignatureVerifier::parse(&c.vkey()).unwrap();
        let sig = c.cosign(C2SP_CHECKPOINT.as_bytes(), 1679315147);
        assert_eq!(
            v.verify_timestamped(C2SP_CHECKPOINT.as_bytes(), sig.signature()),
            Some(1679315147)
        );
        // Controls: another checkpoint, another timestamp, a flipped bit.
        let other = C2SP_CHECKPOINT.replace("20852163", "20852164");
        assert!(!v.verify(other.as_bytes(), sig.signature()));
        let mut moved = sig.signature().to_vec();
        moved[7] ^= 1;
        assert!(!v.verify(C2SP_CHECKPOINT.as_bytes(), &moved));
        let mut flipped = sig.signature().to_vec();
        flipped[40] ^= 1;
        assert!(!v.verify(C2SP_CHECKPOINT.as_bytes(), &flipped));
        // In a note, beside the log's signature.
        let note = Note::new(C2SP_CHECKPOINT.as_bytes(), &[sig]).unwrap();
        assert_eq!(count_cosigners(&note, std::slice::from_ref(&v)), 1);
        let bare = Note::new(C2SP_CHECKPOINT.as_bytes(), &[]).unwrap();
        assert_eq!(count_cosigners(&bare, &[v]), 0);
    }
}
