//! Audit answers shared by the HTTP API and the command line: the head (seq,
//! hash, Merkle root) and a full re-check of the stored chain.

use serde::Serialize;

use crate::domain::fact::Fact;
use crate::domain::hash::Hash;
use crate::domain::integrity::{MerkleFrontier, GENESIS_HASH};
use crate::projection::Projection;
use crate::store::{stores_node, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HeadView {
    pub seq: u64,
    pub hash: Hash,
    pub root: Hash,
}

pub fn head_of(p: &Projection) -> HeadView {
    HeadView {
        seq: p.head_seq(),
        hash: p.head_hash(),
        root: Hash::from_bytes(p.merkle_root()),
    }
}

/// The outcome of re-checking the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum VerifyReport {
    Ok {
        ok: bool,
        checked: u64,
        head: HeadView,
    },
    Bad {
        ok: bool,
        checked: u64,
        first_bad_seq: u64,
        reason: String,
    },
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        matches!(self, VerifyReport::Ok { .. })
    }
}

/// A tree head an auditor saved earlier: the log must still extend it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expectation {
    pub size: u64,
    pub root: [u8; 32],
}

impl std::str::FromStr for Expectation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (size, root) = s.split_once(':').ok_or("expected SEQ:ROOT, e.g. 32:9f86d0…")?;
        let size = size.parse::<u64>().map_err(|_| format!("'{size}' is not a seq"))?;
        let root: Hash = root.to_ascii_lowercase().parse()?;
        Ok(Expectation {
            size,
            root: *root.as_bytes(),
        })
    }
}

/// Re-check events 1..=upto: seqs gapless, every hash recomputed, every link,
/// every stored Merkle node, every stored fact derived again from its event,
/// every domain rule re-run in order, and (with `expect`) that the Merkle root
/// at the saved size is the saved root. A storage fault (the store cannot be
/// read) is an `Err`, not a verdict on the log.
pub fn verify_chain(store: &Store, upto: u64, expect: Option<Expectation>) -> Result<VerifyReport, StoreError> {
    let mut checked = 0u64;
    let mut last_hash = GENESIS_HASH;
    let mut tree = MerkleFrontier::default();
    let mut projection = Projection::default();
    let bad = |checked, seq, reason: String| {
        Ok(VerifyReport::Bad {
            ok: false,
            checked,
            first_bad_seq: seq,
            reason,
        })
    };
    if let Some(e) = expect {
        if e.size > upto {
            return bad(
                0,
                upto + 1,
                format!("the saved tree has {} events but the log holds only {upto}", e.size),
            );
        }
    }
    for item in store.records(1) {
        if checked == upto {
            break;
        }
        let (record, event) = match item.and_then(|r| r.event().map(|e| (r, e))) {
            Ok(x) => x,
            Err(StoreError::Corrupt { seq, reason }) => return bad(checked, seq, reason),
            Err(e) => return Err(e),
        };
        if event.prev_hash != last_hash {
            return bad(
                checked,
                event.seq,
                format!(
                    "prev_hash {} does not match the hash of seq {}",
                    event.prev_hash,
                    event.seq - 1
                ),
            );
        }
        // The rules, and the fact the projections fold, again from the event.
        let parsed = match crate::ledger::check_and_apply(&mut projection, &event) {
            Ok(p) => p,
            Err(e) => return bad(checked, event.seq, e.to_string()),
        };
        match Fact::from_bytes(record.fact()) {
            Ok(f) if f == Fact::of(event.id, event.version, &parsed) => {}
            Ok(_) => return bad(checked, event.seq, "the stored fact is not the event's".into()),
            Err(reason) => return bad(checked, event.seq, reason),
        }
        let leaf = *event.hash.as_bytes();
        // The stored Merkle nodes must be the ones the events make.
        for (node, hash) in tree.push(&leaf).into_iter().filter(|(n, _)| stores_node(*n)) {
            match store.node(node) {
                Ok(stored) if stored == hash => {}
                Ok(_) => {
                    return bad(
                        checked,
                        event.seq,
                        format!(
                            "stored Merkle node {}/{} does not match the events",
                            node.level, node.index
                        ),
                    )
                }
                Err(StoreError::Corrupt { reason, .. }) => return bad(checked, event.seq, reason),
                Err(e) => return Err(e),
            }
        }
        checked += 1;
        last_hash = event.hash;
        if let Some(e) = expect {
            if tree.size() == e.size && tree.root() != e.root {
                return bad(
                    checked,
                    e.size,
                    format!(
                        "the Merkle root at size {} is {}, not the saved {}: the first {} events were rewritten",
                        e.size,
                        hex::encode(tree.root()),
                        hex::encode(e.root),
                        e.size
                    ),
                );
            }
        }
    }
    if checked < upto {
        return bad(checked, checked + 1, format!("seq {} is missing", checked + 1));
    }
    if let Some(e) = expect {
        if e.size == 0 && e.root != tree_root_empty() {
            return bad(0, 0, "the saved root of the empty tree is wrong".into());
        }
    }
    Ok(VerifyReport::Ok {
        ok: true,
        checked,
        head: HeadView {
            seq: checked,
            hash: last_hash,
            root: Hash::from_bytes(tree.root()),
        },
    })
}

fn tree_root_empty() -> [u8; 32] {
    MerkleFrontier::default().root()
}

/// `verify_chain` up to `upto` without an expectation.
pub fn verify_store(store: &Store, upto: u64) -> Result<VerifyReport, StoreError> {
    verify_chain(store, upto, None)
}

/// `GET /v1/audit/proof/inclusion`: event `seq` in the tree of `tree_size`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct InclusionProof {
    pub seq: u64,
    pub tree_size: u64,
    pub leaf_index: u64,
    pub audit_path: Vec<String>,
    pub root: String,
}

/// `GET /v1/audit/proof/consistency`: the tree of `first` is a prefix of `second`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ConsistencyProof {
    pub first: u64,
    pub second: u64,
    pub proof: Vec<String>,
    pub first_root: String,
    pub second_root: String,
}

/// Why a proof cannot be given: the sizes asked for.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn hexes(v: Vec<[u8; 32]>) -> Vec<String> {
    v.into_iter().map(hex::encode).collect()
}

/// Build an inclusion proof from the stored tree (O(log n) node reads).
pub fn inclusion(store: &Store, head: u64, seq: u64, tree_size: u64) -> Result<InclusionProof, ProofError> {
    if tree_size == 0 || tree_size > head {
        return Err(ProofError::Bad(format!("must be from 1 to the head ({head})")));
    }
    if seq == 0 || seq > tree_size {
        return Err(ProofError::Bad(format!("must be from 1 to tree_size ({tree_size})")));
    }
    let mut get = |id| store.node(id);
    let path = crate::domain::integrity::inclusion_path(seq - 1, tree_size, &mut get)?;
    let root = crate::domain::integrity::tree_root(tree_size, &mut get)?;
    Ok(InclusionProof {
        seq,
        tree_size,
        leaf_index: seq - 1,
        audit_path: hexes(path),
        root: hex::encode(root),
    })
}

/// Build a consistency proof from the stored tree (O(log n) node reads).
pub fn consistency(store: &Store, head: u64, first: u64, second: u64) -> Result<ConsistencyProof, ProofError> {
    if second == 0 || second > head {
        return Err(ProofError::Bad(format!("must be from 1 to the head ({head})")));
    }
    if first == 0 || first > second {
        return Err(ProofError::Bad(format!("must be from 1 to second ({second})")));
    }
    let mut get = |id| store.node(id);
    let proof = crate::domain::integrity::consistency_proof(first, second, &mut get)?;
    Ok(ConsistencyProof {
        first,
        second,
        proof: hexes(proof),
        first_root: hex::encode(crate::domain::integrity::tree_root(first, &mut get)?),
        second_root: hex::encode(crate::domain::integrity::tree_root(second, &mut get)?),
    })
}
