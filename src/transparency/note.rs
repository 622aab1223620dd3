//! Ed25519 keys as C2SP signed-note writes them.
//!
//! A private key file holds one line, `PRIVATE+KEY+<name>+<key id>+<base64 of
//! 0x01 || 32-byte seed>` (the format of Go's `golang.org/x/mod/sumdb/note`),
//! and is written with mode 0600; a file that group or others can read is
//! refused on load. The verifier key is `<name>+<key id>+<base64 of 0x01 ||
//! public key>`, the key id being SHA-256(name || "\n" || 0x01 || public key)[:4].
//!
//! Signing, parsing and verifying notes is the `signed_note` crate (Cloudflare's
//! port of the Go package, tested there with the Go vectors); this module only
//! reads and writes key files and turns them into its signers and verifiers.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::prelude::{Engine, BASE64_STANDARD};
use signed_note::{StandardSigner, StandardVerifier};

/// The signature type byte of an Ed25519 signed-note key.
pub const ALG_ED25519: u8 = 1;
/// Permission bits a private key file may not have (group and others).
const LOOSE_MODE_BITS: u32 = 0o077;

/// A private key read from its file: the name, the Ed25519 key, and the
/// signed-note signer made from them.
pub struct PrivateKey {
    name: String,
    key: ed25519_dalek::SigningKey,
    signer: StandardSigner,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(
        "{path} can be read by group or others (mode {mode:o}); a private key file must be 0600 (chmod 600 {path})"
    )]
    Loose { path: String, mode: u32 },
    #[error("not a signed-note private key (PRIVATE+KEY+name+id+key) or its key id does not match")]
    Format,
    #[error("'{0}' is not a key name (non-empty, no spaces, no '+')")]
    Name(String),
}

impl PrivateKey {
    /// A fresh random key named `name`.
    pub fn generate(name: &str) -> Result<PrivateKey, KeyError> {
        if !signed_note::is_key_name_valid(name) {
            return Err(KeyError::Name(name.to_owned()));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the OS random source works");
        PrivateKey::from_seed(name, seed)
    }

    fn from_seed(name: &str, seed: [u8; 32]) -> Result<PrivateKey, KeyError> {
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let text = encode_private(name, &key);
        PrivateKey::parse(&text)
    }

    /// Parse the one-line file format.
    pub fn parse(text: &str) -> Result<PrivateKey, KeyError> {
        let text = text.trim_end_matches('\n');
        let signer = StandardSigner::new(text).map_err(|_| KeyError::Format)?;
        let fields: Vec<&str> = text.splitn(5, '+').collect();
        let [_, _, name, _, key64] = fields[..] else {
            return Err(KeyError::Format);
        };
        let raw = BASE64_STANDARD.decode(key64).map_err(|_| KeyError::Format)?;
        let seed: [u8; 32] = match raw.split_first() {
            Some((&ALG_ED25519, seed)) => seed.try_into().map_err(|_| KeyError::Format)?,
            _ => return Err(KeyError::Format),
        };
        Ok(PrivateKey {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
            signer,
        })
    }

    /// Read a key file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<PrivateKey, KeyError> {
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & LOOSE_MODE_BITS != 0 {
            return Err(KeyError::Loose {
                path: path.display().to_string(),
                mode: mode & 0o777,
            });
        }
        PrivateKey::parse(&std::fs::read_to_string(path)?)
    }

    /// Write the key to a new file with mode 0600 (never over an existing one).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(encode_private(&self.name, &self.key).as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signed-note signer (type 0x01) of this key.
    pub fn signer(&self) -> &StandardSigner {
        &self.signer
    }

    pub fn ed25519(&self) -> &ed25519_dalek::SigningKey {
        &self.key
    }

    /// The signed-note verifier key, `name+id+base64`.
    pub fn vkey(&self) -> String {
        signed_note::new_ed25519_verifier_key(&self.name, &self.key.verifying_key())
    }
}

fn encode_private(name: &str, key: &ed25519_dalek::SigningKey) -> String {
    let public = [&[ALG_ED25519][..], key.verifying_key().as_bytes()].concat();
    let private = [&[ALG_ED25519][..], key.as_bytes()].concat();
    format!(
        "PRIVATE+KEY+{name}+{:08x}+{}",
        signed_note::key_id(name, &public),
        BASE64_STANDARD.encode(private)
    )
}

/// A log's verifier key, parsed (and its key id checked).
pub fn verifier(vkey: &str) -> Result<StandardVerifier, String> {
    StandardVerifier::new(vkey.trim()).map_err(|e| format!("'{vkey}' is not an Ed25519 signed-note verifier key: {e}"))
}

#[cfg(test)]
mod tests {
    use signed_note::{Note, Signer, Verifier, VerifierList};

    use super::*;

    // The fixed key and note of golang.org/x/mod/sumdb/note, note_test.go
    // (TestNewVerifier, TestSign, TestOpen), also quoted in the signed_note
    // crate's documentation.
    const GO_SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_SIGNED: &str = "If you think cryptography is the answer to your problem,\n\
                             then you don't know what your problem is.\n\
                             \n\
                             — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn the_go_vector_key_gives_the_go_verifier_key_and_key_id() {
        let key = PrivateKey::parse(GO_SKEY).unwrap();
        assert_eq!(key.name(), "PeterNeumann");
        assert_eq!(key.vkey(), GO_VKEY);
        assert_eq!(key.signer().key_id(), 0xc74f20a3);
        assert_eq!(verifier(GO_VKEY).unwrap().key_id(), 0xc74f20a3);
    }

    #[test]
    fn signing_the_go_text_gives_the_go_signature_byte_for_byte() {
        // Ed25519 is deterministic, so the same key and text give the same note.
        let key = PrivateKey::parse(GO_SKEY).unwrap();
        let mut note = Note::new(GO_TEXT.as_bytes(), &[]).unwrap();
        note.add_sigs(&[key.signer()]).unwrap();
        assert_eq!(String::from_utf8(note.to_bytes()).unwrap(), GO_SIGNED);
    }

    #[test]
    fn the_go_note_verifies_and_a_tampered_one_does_not() {
        let known = VerifierList::new(vec![Box::new(verifier(GO_VKEY).unwrap())]);
        let note = Note::from_bytes(GO_SIGNED.as_bytes()).unwrap();
        assert!(note.verify(&known).is_ok());
        // Control: one changed letter in the text, or in the signature.
        let text = Note::from_bytes(GO_SIGNED.replace("answer", "Answer").as_bytes()).unwrap();
        assert!(text.verify(&known).is_err());
        let sig = Note::from_bytes(GO_SIGNED.replace("x08go", "x08gp").as_bytes()).unwrap();
        assert!(sig.verify(&known).is_err());
    }

    #[test]
    fn a_verifier_key_with_a_wrong_key_id_is_refused() {
        assert!(verifier(&GO_VKEY.replace("c74f20a3", "c74f20a4")).is_err());
        assert!(PrivateKey::parse(&GO_SKEY.replace("c74f20a3", "c74f20a4")).is_err());
    }

    #[test]
    fn a_generated_key_round_trips_through_its_file_and_refuses_loose_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.key");
        let key = PrivateKey::generate("example.org/log").unwrap();
        key.save(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(PrivateKey::load(&path).unwrap().vkey(), key.vkey());
        assert!(key.save(&path).is_err(), "never over an existing key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(PrivateKey::load(&path), Err(KeyError::Loose { .. })));
        assert!(PrivateKey::generate("two words").is_err());
        let v = verifier(&key.vkey()).unwrap();
        assert!(v.verify(b"m", &key.signer().sign(b"m").unwrap()));
    }
}
