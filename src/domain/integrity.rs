//! Tamper evidence: the hash chain (SHA-256 over RFC 8785 canonical JSON) and
//! the RFC 9162 Merkle tree head over the events' hashes.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::event::StoredEvent;

/// `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 of the RFC 8785 canonical JSON of `value`.
pub fn canonical_digest(value: &Value) -> [u8; 32] {
    let canonical = serde_json_canonicalizer::to_vec(value).expect("JSON values always canonicalize");
    Sha256::digest(&canonical).into()
}

/// The hash of a stored event: lowercase hex SHA-256 of the JCS canonical JSON
/// of the event object without its `hash` member.
pub fn event_hash(event: &StoredEvent) -> String {
    let mut value = serde_json::to_value(event).expect("stored events always serialize");
    if let Value::Object(m) = &mut value {
        m.remove("hash");
    }
    hex::encode(canonical_digest(&value))
}

/// Why a stored event breaks the chain.
pub fn check_link(event: &StoredEvent, expected_seq: u64, expected_prev: &str) -> Result<(), String> {
    if event.seq != expected_seq {
        return Err(format!("expected seq {expected_seq}, found seq {}", event.seq));
    }
    if event.prev_hash != expected_prev {
        return Err(format!(
            "prev_hash {} does not match the hash of seq {} ({expected_prev})",
            event.prev_hash,
            expected_seq - 1
        ));
    }
    let actual = event_hash(event);
    if event.hash != actual {
        return Err(format!(
            "stored hash {} does not match the recomputed hash {actual}",
            event.hash
        ));
    }
    Ok(())
}

/// RFC 9162 leaf hash: SHA-256(0x00 || leaf).
pub fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// RFC 9162 interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The Merkle tree head of a growing log, kept in O(log n) memory: the roots of
/// the perfect subtrees that make up the first `size` leaves (the frontier).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MerkleFrontier {
    size: u64,
    /// Roots of perfect subtrees, largest (leftmost) first.
    peaks: Vec<[u8; 32]>,
}

impl MerkleFrontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Append one leaf (an event's 32-byte hash).
    pub fn push(&mut self, leaf: &[u8]) {
        let mut node = leaf_hash(leaf);
        // Every trailing one bit of the old size is a perfect subtree of the same
        // height as the new node: merge them.
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self.peaks.pop().expect("a peak per one bit of size");
            node = node_hash(&left, &node);
            size >>= 1;
        }
        self.peaks.push(node);
        self.size += 1;
    }

    /// The tree head: SHA-256 of nothing for the empty tree, else the peaks folded
    /// right to left, as RFC 9162's MTH splits at the largest power of two.
    pub fn root(&self) -> [u8; 32] {
        let mut iter = self.peaks.iter().rev();
        match iter.next() {
            None => Sha256::digest([]).into(),
            Some(last) => iter.fold(*last, |acc, peak| node_hash(peak, &acc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9162 MTH written straight from section 2.1.1, as the reference.
    fn mth(leaves: &[Vec<u8>]) -> [u8; 32] {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn frontier_root_equals_the_rfc_definition_for_every_size() {
        let mut frontier = MerkleFrontier::default();
        let mut leaves = Vec::new();
        assert_eq!(frontier.root(), mth(&leaves));
        for i in 0..70u32 {
            let leaf = Sha256::digest(i.to_be_bytes()).to_vec();
            frontier.push(&leaf);
            leaves.push(leaf);
            assert_eq!(frontier.root(), mth(&leaves), "size {}", leaves.len());
        }
    }

    #[test]
    fn empty_tree_root_is_the_hash_of_nothing() {
        assert_eq!(
            hex::encode(MerkleFrontier::default().root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn canonical_digest_ignores_member_order_and_number_spelling() {
        let a: Value = serde_json::from_str(r#"{"b": 1.0, "a": [true, "x"]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a": [true, "x"], "b": 1}"#).unwrap();
        assert_eq!(canonical_digest(&a), canonical_digest(&b));
        assert_eq!(
            serde_json_canonicalizer::to_string(&a).unwrap(),
            r#"{"a":[true,"x"],"b":1}"#
        );
    }
}
