//! A SHA-256 hash: 32 bytes inside, lowercase hex at the edges (JSON, text).
//! Hex is decoded once, where a hash enters; everything inside compares bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; 32]);

impl Hash {
    /// `prev_hash` of the first event: 64 zeros.
    pub const GENESIS: Hash = Hash([0; 32]);

    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Hash {
        Hash(Sha256::digest(bytes).into())
    }

    pub const fn from_bytes(bytes: [u8; 32]) -> Hash {
        Hash(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for Hash {
    type Err = String;

    /// Exactly 64 lowercase hex digits, as the log writes them.
    fn from_str(s: &str) -> Result<Hash, String> {
        let lowercase_hex = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !lowercase_hex {
            return Err(format!("'{s}' is not 64 lowercase hex digits"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| e.to_string())?;
        Ok(Hash(out))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl From<[u8; 32]> for Hash {
    fn from(bytes: [u8; 32]) -> Hash {
        Hash(bytes)
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_at_the_edges_bytes_inside() {
        let h = Hash::of(b"sitrep");
        let text = h.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Hash>().unwrap(), h);
        assert_eq!(
            serde_json::to_value(h).unwrap(),
            serde_json::Value::String(text.clone())
        );
        assert_eq!(
            serde_json::from_value::<Hash>(serde_json::Value::String(text)).unwrap(),
            h
        );
        assert_eq!(Hash::GENESIS.to_string(), "0".repeat(64));
        for bad in ["", "00", &"A".repeat(64), &"g".repeat(64), &"0".repeat(65)] {
            assert!(bad.parse::<Hash>().is_err(), "{bad}");
        }
    }
}
