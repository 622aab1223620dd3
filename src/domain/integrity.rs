//! Tamper evidence: the hash chain (SHA-256 over RFC 8785 canonical JSON) and
//! the RFC 9162 Merkle tree head over the events' hashes.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::event::StoredEvent;
use super::hash::Hash;

/// `prev_hash` of the first event.
pub const GENESIS_HASH: Hash = Hash::GENESIS;

/// SHA-256 of the RFC 8785 canonical JSON of `value`.
pub fn canonical_digest(value: &Value) -> [u8; 32] {
    Sha256::digest(super::jcs::to_vec(value)).into()
}

/// The bytes an event's hash covers: the RFC 8785 canonical JSON of the event
/// object without its `hash` member.
pub fn canonical_event(event: &StoredEvent) -> Vec<u8> {
    let mut value = serde_json::to_value(event).expect("stored events always serialize");
    if let Value::Object(m) = &mut value {
        m.remove("hash");
    }
    super::jcs::to_vec(&value)
}

/// The hash of a stored event: the SHA-256 of `canonical_event`.
pub fn event_hash(event: &StoredEvent) -> Hash {
    Hash::of(&canonical_event(event))
}

/// Why a stored event breaks the chain; if it does not, its canonical bytes
/// (`canonical_event`), which its hash was checked against.
pub fn check_link(event: &StoredEvent, expected_seq: u64, expected_prev: &Hash) -> Result<Vec<u8>, String> {
    if event.seq != expected_seq {
        return Err(format!("expected seq {expected_seq}, found seq {}", event.seq));
    }
    if event.prev_hash != *expected_prev {
        return Err(format!(
            "prev_hash {} does not match the hash of seq {} ({expected_prev})",
            event.prev_hash,
            expected_seq - 1
        ));
    }
    let canonical = canonical_event(event);
    let actual = Hash::of(&canonical);
    if event.hash != actual {
        return Err(format!(
            "stored hash {} does not match the recomputed hash {actual}",
            event.hash
        ));
    }
    Ok(canonical)
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
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MerkleFrontier {
    size: u64,
    /// Roots of perfect subtrees, largest (leftmost) first.
    peaks: Vec<[u8; 32]>,
}

impl MerkleFrontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Append one leaf (an event's 32-byte hash). Returns the perfect subtrees
    /// this leaf completes, as `(node, hash)`, smallest first: the leaf itself,
    /// then every subtree it closes.
    pub fn push(&mut self, leaf: &[u8]) -> Vec<(NodeId, [u8; 32])> {
        let index = self.size;
        let mut node = leaf_hash(leaf);
        let mut completed = vec![(NodeId { level: 0, index }, node)];
        // Every trailing one bit of the old size is a perfect subtree of the same
        // height as the new node: merge them.
        let mut size = self.size;
        let mut level = 0;
        while size & 1 == 1 {
            let left = self.peaks.pop().expect("a peak per one bit of size");
            node = node_hash(&left, &node);
            size >>= 1;
            level += 1;
            completed.push((
                NodeId {
                    level,
                    index: ((index + 1) >> level) - 1,
                },
                node,
            ));
        }
        self.peaks.push(node);
        self.size += 1;
        completed
    }

    /// The frontier of a tree of `size` leaves, from its stored perfect subtrees.
    pub fn from_nodes<E>(size: u64, get: &mut impl FnMut(NodeId) -> Result<[u8; 32], E>) -> Result<MerkleFrontier, E> {
        let mut peaks = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1u64 << level) != 0 {
                peaks.push(get(NodeId {
                    level,
                    index: start >> level,
                })?);
                start += 1u64 << level;
            }
        }
        Ok(MerkleFrontier { size, peaks })
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

/// A perfect subtree: leaves `[index * 2^level, (index + 1) * 2^level)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId {
    pub level: u32,
    pub index: u64,
}

/// The largest power of two strictly smaller than `n` (n >= 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// MTH of leaves `[start, end)` from stored perfect subtrees: O(log n) lookups.
/// RFC 9162's recursion only ever asks for ranges whose perfect parts are aligned.
pub fn subtree_root<E>(
    start: u64,
    end: u64,
    get: &mut impl FnMut(NodeId) -> Result<[u8; 32], E>,
) -> Result<[u8; 32], E> {
    let size = end - start;
    debug_assert!(size >= 1);
    if size.is_power_of_two() && start % size == 0 {
        let level = size.trailing_zeros();
        return get(NodeId {
            level,
            index: start >> level,
        });
    }
    let k = split(size);
    let left = subtree_root(start, start + k, get)?;
    let right = subtree_root(start + k, end, get)?;
    Ok(node_hash(&left, &right))
}

/// MTH of the first `size` leaves.
pub fn tree_root<E>(size: u64, get: &mut impl FnMut(NodeId) -> Result<[u8; 32], E>) -> Result<[u8; 32], E> {
    if size == 0 {
        return Ok(Sha256::digest([]).into());
    }
    subtree_root(0, size, get)
}

/// RFC 9162 2.1.3.1: the inclusion proof (audit path) of leaf `m` in the tree
/// of the first `n` leaves. Requires m < n.
pub fn inclusion_path<E>(
    m: u64,
    n: u64,
    get: &mut impl FnMut(NodeId) -> Result<[u8; 32], E>,
) -> Result<Vec<[u8; 32]>, E> {
    fn path<E>(
        m: u64,
        start: u64,
        end: u64,
        get: &mut impl FnMut(NodeId) -> Result<[u8; 32], E>,
        out: &mut Vec<[u8; 32]>,
    ) -> Result<(), E> {
        if end - start == 1 {
            return Ok(());
        }
        let k = split(end - start);
        if m < start + k {
            path(m, start, start + k, get, out)?;
            out.push(subtree_root(start + k, end, get)?);
        } else {
            path(m, start + k, end, get, out)?;
            out.push(subtree_root(start, start + k, get)?);
        }
        Ok(())
    }
    assert!(m < n, "leaf {m} is not in a tree of {n}");
    let mut out = Vec::new();
    path(m, 0, n, get, &mut out)?;
    Ok(out)
}

/// RFC 9162 2.1.4.1: the consistency proof between the trees of the first `m`
/// and the first `n` leaves. Requires 0 < m <= n.
pub fn consistency_proof<E>(
    m: u64,
    n: u64,
    get: &mut impl FnMut(NodeId) -> Result<[u8; 32], E>,
) -> Result<Vec<[u8; 32]>, E> {
    fn subproof<E>(
        m: u64,
        start: u64,
        end: u64,
        complete: bool,
        get: &mut impl FnMut(NodeId) -> Result<[u8; 32], E>,
        out: &mut Vec<[u8; 32]>,
    ) -> Result<(), E> {
        let size = end - start;
        if m == size {
            if !complete {
                out.push(subtree_root(start, end, get)?);
            }
            return Ok(());
        }
        let k = split(size);
        if m <= k {
            subproof(m, start, start + k, complete, get, out)?;
            out.push(subtree_root(start + k, end, get)?);
        } else {
            subproof(m - k, start + k, end, false, get, out)?;
            out.push(subtree_root(start, start + k, get)?);
        }
        Ok(())
    }
    assert!(0 < m && m <= n, "no consistency proof from {m} to {n}");
    let mut out = Vec::new();
    subproof(m, 0, n, true, get, &mut out)?;
    Ok(out)
}

/// RFC 9162 2.1.3.2: does `path` prove that the leaf with hash `leaf` (the
/// event's 32-byte hash, before leaf hashing) is at `index` in the tree of
/// `size` leaves with root `root`?
pub fn verify_inclusion(index: u64, size: u64, leaf: &[u8], path: &[[u8; 32]], root: &[u8; 32]) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = leaf_hash(leaf);
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && &r == root
}

/// RFC 9162 2.1.4.2: does `proof` show that the tree of `first` leaves with
/// root `first_root` is a prefix of the tree of `second` leaves with root
/// `second_root`?
pub fn verify_consistency(
    first: u64,
    second: u64,
    proof: &[[u8; 32]],
    first_root: &[u8; 32],
    second_root: &[u8; 32],
) -> bool {
    if first == 0 || first > second {
        return false;
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    let mut path: Vec<[u8; 32]> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((head, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*head, *head);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && &fr == first_root && &sr == second_root
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

    /// A stored tree built by pushing `n` leaves, as a node lookup.
    fn stored(
        n: u32,
    ) -> (
        Vec<Vec<u8>>,
        std::collections::HashMap<NodeId, [u8; 32]>,
        MerkleFrontier,
    ) {
        let mut f = MerkleFrontier::default();
        let mut nodes = std::collections::HashMap::new();
        let mut leaves = Vec::new();
        for i in 0..n {
            let leaf = Sha256::digest(i.to_be_bytes()).to_vec();
            nodes.extend(f.push(&leaf));
            leaves.push(leaf);
        }
        (leaves, nodes, f)
    }

    #[test]
    fn stored_nodes_give_every_past_root_and_the_frontier() {
        let (leaves, nodes, f) = stored(67);
        let mut get = |id: NodeId| nodes.get(&id).copied().ok_or(id);
        for size in 0..=67u64 {
            assert_eq!(
                tree_root(size, &mut get).unwrap(),
                mth(&leaves[..size as usize]),
                "size {size}"
            );
        }
        assert_eq!(MerkleFrontier::from_nodes(67, &mut get).unwrap(), f);
    }

    #[test]
    fn every_inclusion_and_consistency_proof_verifies_and_forgeries_fail() {
        let (leaves, nodes, _) = stored(33);
        let mut get = |id: NodeId| nodes.get(&id).copied().ok_or(id);
        for n in 1..=33u64 {
            let root = tree_root(n, &mut get).unwrap();
            for m in 0..n {
                let path = inclusion_path(m, n, &mut get).unwrap();
                assert!(verify_inclusion(m, n, &leaves[m as usize], &path, &root), "{m} in {n}");
                assert!(
                    !verify_inclusion(m, n, &leaves[(m as usize + 1) % leaves.len()], &path, &root)
                        || n == 1 && leaves.len() == 1
                );
                if !path.is_empty() {
                    let mut wrong = path.clone();
                    wrong[0][0] ^= 1;
                    assert!(!verify_inclusion(m, n, &leaves[m as usize], &wrong, &root));
                    assert!(!verify_inclusion(
                        m,
                        n,
                        &leaves[m as usize],
                        &path[..path.len() - 1],
                        &root
                    ));
                }
                let mut longer = path.clone();
                longer.push([7; 32]);
                assert!(!verify_inclusion(m, n, &leaves[m as usize], &longer, &root));
            }
            for m in 1..=n {
                let first = tree_root(m, &mut get).unwrap();
                let proof = consistency_proof(m, n, &mut get).unwrap();
                assert!(verify_consistency(m, n, &proof, &first, &root), "{m} -> {n}");
                let mut other = first;
                other[5] ^= 0x40;
                assert!(!verify_consistency(m, n, &proof, &other, &root));
                if proof.len() >= 2 {
                    let mut swapped = proof.clone();
                    swapped.swap(0, 1);
                    assert!(!verify_consistency(m, n, &swapped, &first, &root), "swapped {m} -> {n}");
                }
                if !proof.is_empty() {
                    assert!(!verify_consistency(m, n, &proof[..proof.len() - 1], &first, &root));
                }
                let mut longer = proof.clone();
                longer.push([9; 32]);
                assert!(!verify_consistency(m, n, &longer, &first, &root));
            }
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
