//! Audit answers shared by the HTTP API and the command line: the head (seq,
//! hash, Merkle root) and a full re-check of the stored chain, which the
//! server runs once at a time for all its callers ([`Verifier`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::watch;

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

/// Events verified between two looks at the cancel flag.
const CANCEL_CHECK_EVENTS: u64 = 1024;

/// Re-check events 1..=upto: seqs gapless, every hash recomputed, every link,
/// every stored Merkle node, every stored fact derived again from its event,
/// every domain rule re-run in order, and (with `expect`) that the Merkle root
/// at the saved size is the saved root. A storage fault (the store cannot be
/// read) is an `Err`, not a verdict on the log.
pub fn verify_chain(store: &dyn Store, upto: u64, expect: Option<Expectation>) -> Result<VerifyReport, StoreError> {
    let never = AtomicBool::new(false);
    verify_chain_until(store, upto, expect, &never).map(|r| r.expect("a verification nobody cancels finishes"))
}

/// `verify_chain` that gives up, answering `None`, once `cancel` is set (it
/// looks every `CANCEL_CHECK_EVENTS` events).
fn verify_chain_until(
    store: &dyn Store,
    upto: u64,
    expect: Option<Expectation>,
    cancel: &AtomicBool,
) -> Result<Option<VerifyReport>, StoreError> {
    let mut checked = 0u64;
    let mut last_hash = GENESIS_HASH;
    let mut tree = MerkleFrontier::default();
    let mut projection = Projection::default();
    let bad = |checked, seq, reason: String| {
        Ok(Some(VerifyReport::Bad {
            ok: false,
            checked,
            first_bad_seq: seq,
            reason,
        }))
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
        if checked % CANCEL_CHECK_EVENTS == 0 && cancel.load(Ordering::Relaxed) {
            return Ok(None);
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
    Ok(Some(VerifyReport::Ok {
        ok: true,
        checked,
        head: HeadView {
            seq: checked,
            hash: last_hash,
            root: Hash::from_bytes(tree.root()),
        },
    }))
}

fn tree_root_empty() -> [u8; 32] {
    MerkleFrontier::default().root()
}

/// What a verification's answer is about: the log up to `upto` as the store
/// held it at `generation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    upto: u64,
    generation: u64,
}

/// A verification's answer: the report, or why there is none (a storage fault,
/// or the verification stopped).
type Answer = Result<VerifyReport, String>;

/// `GET /v1/audit/verify` for many callers at a cost of one. At most one
/// verification of the log runs at a time; callers that arrive while it runs
/// wait for it and share its answer; the answer is kept and given again while
/// the head and the store stay the same; and a verification whose callers have
/// all left stops within `CANCEL_CHECK_EVENTS` events.
#[derive(Default)]
pub struct Verifier {
    state: Mutex<VerifierState>,
    /// Held by the verification working, so one that was cancelled and is still
    /// winding down never overlaps the next.
    working: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Default)]
struct VerifierState {
    /// The last verdict and what it is about.
    cached: Option<(Key, VerifyReport)>,
    current: Option<Run>,
    runs: u64,
}

/// The verification running and the callers waiting for it.
struct Run {
    id: u64,
    waiters: usize,
    cancel: Arc<AtomicBool>,
    answer: watch::Receiver<Option<Answer>>,
}

/// One caller waiting for run `id`; the last to leave cancels it.
struct Waiter {
    verifier: Arc<Verifier>,
    id: u64,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut state = self.verifier.state.lock().expect("verifier lock");
        let Some(run) = state.current.as_mut().filter(|r| r.id == self.id) else {
            return;
        };
        run.waiters -= 1;
        if run.waiters == 0 {
            run.cancel.store(true, Ordering::Relaxed);
            state.current = None;
        }
    }
}

impl Verifier {
    /// Verify the ledger's log up to its head: the answer kept for this head,
    /// or the one of the verification running (which may have started at an
    /// earlier head), or that of a new one. `Err` says why there is no verdict.
    pub async fn verify(self: &Arc<Self>, ledger: &Arc<crate::ledger::Ledger>) -> Result<VerifyReport, String> {
        let (mut answer, _waiter) = {
            let mut state = self.state.lock().expect("verifier lock");
            let key = Key {
                generation: ledger.store().generation(),
                upto: ledger.read().head_seq(),
            };
            match state.current.as_mut() {
                Some(run) => {
                    run.waiters += 1;
                    let waiter = Waiter {
                        verifier: self.clone(),
                        id: run.id,
                    };
                    (run.answer.clone(), waiter)
                }
                None => {
                    if let Some((_, report)) = state.cached.as_ref().filter(|(k, _)| *k == key) {
                        return Ok(report.clone());
                    }
                    state.runs += 1;
                    let id = state.runs;
                    let cancel = Arc::new(AtomicBool::new(false));
                    let (tx, answer) = watch::channel(None);
                    state.current = Some(Run {
                        id,
                        waiters: 1,
                        cancel: cancel.clone(),
                        answer: answer.clone(),
                    });
                    tokio::spawn(self.clone().run(ledger.clone(), key, id, cancel, tx));
                    (
                        answer,
                        Waiter {
                            verifier: self.clone(),
                            id,
                        },
                    )
                }
            }
        };
        let answer = answer
            .wait_for(Option::is_some)
            .await
            .map_err(|_| "the verification was stopped (the server is shutting down)".to_owned())?;
        answer.clone().expect("waited for an answer")
    }

    /// Run one verification: wait for the previous one to be done, check the
    /// log off the async threads, keep the verdict, tell the waiters.
    async fn run(
        self: Arc<Self>,
        ledger: Arc<crate::ledger::Ledger>,
        key: Key,
        id: u64,
        cancel: Arc<AtomicBool>,
        tx: watch::Sender<Option<Answer>>,
    ) {
        let permit = self.working.clone().lock_owned().await;
        let flag = cancel.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if flag.load(Ordering::Relaxed) {
                return Ok(None);
            }
            crate::metrics::VERIFY_STARTED.inc();
            let report = verify_chain_until(ledger.store(), key.upto, None, &flag);
            if matches!(report, Ok(None)) {
                crate::metrics::VERIFY_CANCELLED.inc();
            }
            report
        })
        .await;
        let answer = match checked {
            Ok(Ok(Some(report))) => Ok(report),
            Ok(Ok(None)) => Err("the verification was stopped: nobody waited for it".to_owned()),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "storage read failed while verifying the log");
                Err(e.to_string())
            }
            Err(e) => Err(format!("the verification failed: {e}")),
        };
        {
            let mut state = self.state.lock().expect("verifier lock");
            if let Ok(report) = &answer {
                state.cached = Some((key, report.clone()));
            }
            if state.current.as_ref().is_some_and(|r| r.id == id) {
                state.current = None;
            }
        }
        tx.send_replace(Some(answer));
    }
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
pub fn inclusion(store: &dyn Store, head: u64, seq: u64, tree_size: u64) -> Result<InclusionProof, ProofError> {
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
pub fn consistency(store: &dyn Store, head: u64, first: u64, second: u64) -> Result<ConsistencyProof, ProofError> {
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
