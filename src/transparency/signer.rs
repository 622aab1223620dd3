//! The log's side of checkpoints: sign the tree head, keep the last signed
//! checkpoint durably, gather witnesses' cosignatures, serve the result.
//!
//! The invariant this module keeps: **never sign two inconsistent checkpoints
//! under one origin.** Before signing size N with root R, the signer proves,
//! with an RFC 9162 consistency proof built from the stored tree and checked
//! like any auditor would check it, that the tree of the last signed checkpoint
//! (size M, root R_M) is a prefix of the current one. A store restored from an
//! older backup (N < M) or a forked one (the proof fails) is refused: nothing is
//! signed, the refusal is logged and shown by `sitrep_checkpoint_refused`, and
//! `GET /v1/audit/checkpoint` keeps serving the last good checkpoint.
//!
//! The last signed checkpoint is written to `signed.checkpoint` in the data
//! directory (atomically, fsynced) *before* it is served or sent to a witness,
//! so a crash can never let a checkpoint out that the next start does not know.
//!
//! Signing runs in a background task on an interval, never on the append path:
//! appends never wait for a signature or a witness.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use base64::prelude::{Engine, BASE64_STANDARD};
use signed_note::{Note, Signature, StandardVerifier, Verifier as _};
use tokio::sync::watch;

use super::checkpoint::{self, Checkpoint};
use super::cosignature::{sig_lines, CosignatureVerifier};
use super::note::{verifier, PrivateKey};
use crate::domain::integrity::verify_consistency;
use crate::ledger::Ledger;

/// The file, in the data directory, that holds the last signed checkpoint.
pub const STATE_FILE: &str = "signed.checkpoint";
/// Default time between two checkpoints.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Attempts per witness per round (a 409 that teaches the witness's size
/// counts as one); the next round tries again.
const WITNESS_ATTEMPTS: u32 = 4;
/// First pause between two attempts at a witness; doubled after each.
const WITNESS_BACKOFF: Duration = Duration::from_millis(100);
/// How long one request to a witness may take.
const WITNESS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one witness may hold up a round (its attempts together): a slow
/// witness delays the next checkpoint by at most this, never an append.
const WITNESS_ROUND_LIMIT: Duration = Duration::from_secs(10);
/// Largest answer read from a witness.
const MAX_WITNESS_ANSWER_BYTES: usize = 16 * 1024;

/// A witness to submit checkpoints to: `URL+VKEY`, the URL being the witness's
/// submission prefix (`/add-checkpoint` is added) and the key its
/// cosignature/v1 verifier key. The URL ends at the first `+`.
#[derive(Clone, Debug)]
pub struct WitnessTarget {
    pub url: String,
    pub verifier: CosignatureVerifier,
}

impl std::str::FromStr for WitnessTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<WitnessTarget, String> {
        let (url, vkey) = s
            .split_once('+')
            .ok_or_else(|| format!("'{s}' is not URL+VKEY (e.g. http://127.0.0.1:7380+name+id+key)"))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("'{url}' is not an http(s) URL"));
        }
        Ok(WitnessTarget {
            url: url.trim_end_matches('/').to_owned(),
            verifier: CosignatureVerifier::parse(vkey)?,
        })
    }
}

/// A signed checkpoint as served: the note with the log's signature and the
/// cosignatures gathered so far.
pub struct Published {
    pub checkpoint: Checkpoint,
    pub note: Vec<u8>,
    pub cosignatures: usize,
}

/// The signer and what it has published.
pub struct Checkpointer {
    key: PrivateKey,
    log: StandardVerifier,
    path: PathBuf,
    witnesses: Vec<WitnessTarget>,
    interval: Duration,
    published: RwLock<Option<Arc<Published>>>,
    /// Why the last round refused to sign, while it does.
    refused: Mutex<Option<String>>,
    /// The last signed checkpoint as read at start, for [`Checkpointer::run`].
    loaded: Mutex<Option<Signed>>,
}

/// The signer's own record of the last signed checkpoint.
#[derive(Clone)]
struct Signed {
    checkpoint: Checkpoint,
    /// The log's own signature line(s).
    log_sigs: Vec<Signature>,
    /// One slot per witness: its cosignature of this checkpoint, once it gave one.
    cosigs: Vec<Option<Signature>>,
    /// One slot per witness: it refused this checkpoint for good (a failed
    /// proof, a conflict, an unknown key); ask again only with the next one.
    refused: Vec<bool>,
}

impl Signed {
    fn note(&self) -> Note {
        let mut sigs = self.log_sigs.clone();
        sigs.extend(self.cosigs.iter().flatten().cloned());
        Note::new(self.checkpoint.text().as_bytes(), &sigs).expect("a checkpoint body is a valid note text")
    }
}

impl Checkpointer {
    /// Load the key and the last signed checkpoint of `data_dir`, if any. A
    /// state file that does not verify under this key stops the start: the
    /// operator changed keys or the file was altered, and either needs a human.
    pub fn open(
        data_dir: &Path,
        key: &Path,
        witnesses: Vec<WitnessTarget>,
        interval: Duration,
    ) -> anyhow::Result<Checkpointer> {
        let key = PrivateKey::load(key).with_context(|| format!("cannot use the signing key {}", key.display()))?;
        let log = verifier(&key.vkey()).map_err(anyhow::Error::msg)?;
        let c = Checkpointer {
            key,
            log,
            path: data_dir.join(STATE_FILE),
            witnesses,
            interval,
            published: RwLock::new(None),
            refused: Mutex::new(None),
            loaded: Mutex::new(None),
        };
        let signed = c.load()?;
        if let Some(signed) = &signed {
            c.publish(signed);
        }
        *c.loaded.lock().expect("state lock") = signed;
        Ok(c)
    }

    /// The signed-note verifier key of the log.
    pub fn vkey(&self) -> String {
        self.key.vkey()
    }

    /// The checkpoint to serve: the last one signed, with its cosignatures.
    pub fn published(&self) -> Option<Arc<Published>> {
        self.published.read().expect("checkpoint lock").clone()
    }

    /// Why signing is refused, while it is.
    pub fn refused(&self) -> Option<String> {
        self.refused.lock().expect("refusal lock").clone()
    }

    fn load(&self) -> anyhow::Result<Option<Signed>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        };
        let (checkpoint, note) = checkpoint::open(&bytes, &self.log).with_context(|| {
            format!(
                "{} does not hold a checkpoint signed by this key ({}); refusing to sign over it",
                self.path.display(),
                self.key.vkey()
            )
        })?;
        let lines = sig_lines(&String::from_utf8_lossy(&note.to_bytes()));
        let log_sigs = lines
            .iter()
            .filter(|s| s.name() == self.log.name() && s.id() == self.log.key_id())
            .cloned()
            .collect();
        let cosigs = self
            .witnesses
            .iter()
            .map(|w| {
                lines
                    .iter()
                    .find(|s| {
                        s.name() == signed_note::Verifier::name(&w.verifier)
                            && s.id() == w.verifier.key_id()
                            && w.verifier.verify(note.text(), s.signature())
                    })
                    .cloned()
            })
            .collect();
        Ok(Some(Signed {
            checkpoint,
            log_sigs,
            cosigs,
            refused: vec![false; self.witnesses.len()],
        }))
    }

    fn publish(&self, signed: &Signed) {
        let cosignatures = signed.cosigs.iter().flatten().count();
        crate::metrics::CHECKPOINT_SIZE.set(signed.checkpoint.size as i64);
        crate::metrics::CHECKPOINT_COSIGNATURES.set(cosignatures as i64);
        *self.published.write().expect("checkpoint lock") = Some(Arc::new(Published {
            checkpoint: signed.checkpoint.clone(),
            note: signed.note().to_bytes(),
            cosignatures,
        }));
    }

    fn persist(&self, signed: &Signed) -> std::io::Result<()> {
        super::write_atomically(&self.path, &signed.note().to_bytes())
    }

    fn refuse(&self, reason: String) {
        crate::metrics::CHECKPOINT_REFUSED.set(1);
        let mut r = self.refused.lock().expect("refusal lock");
        if r.as_deref() != Some(reason.as_str()) {
            tracing::error!(reason = %reason, "refusing to sign a checkpoint; serving the last good one");
        }
        *r = Some(reason);
    }

    fn accept(&self) {
        crate::metrics::CHECKPOINT_REFUSED.set(0);
        self.refused.lock().expect("refusal lock").take();
    }

    /// Sign on every tick until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, ledger: Arc<Ledger>, mut shutdown: watch::Receiver<bool>) {
        let client = match reqwest::Client::builder().timeout(WITNESS_TIMEOUT).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client for witnesses; checkpoints are not signed");
                return;
            }
        };
        let mut signed = self.loaded.lock().expect("state lock").take();
        let mut witness_sizes: Vec<Option<u64>> = vec![None; self.witnesses.len()];
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            let (last, outcome) = self.round(&ledger, signed.take()).await;
            signed = last;
            if let Err(e) = outcome {
                self.refuse(format!("{e:#}"));
                continue;
            }
            self.accept();
            if let Some(s) = signed.as_mut() {
                self.gather(&client, &ledger, s, &mut witness_sizes).await;
            }
        }
    }

    /// One round: sign the current head if it is new and consistent with the
    /// last signed checkpoint. Returns the last signed checkpoint afterwards
    /// (the new one, or the old one when nothing was signed) and the refusal.
    async fn round(&self, ledger: &Arc<Ledger>, last: Option<Signed>) -> (Option<Signed>, anyhow::Result<()>) {
        let (size, root) = {
            let p = ledger.read();
            (p.head_seq(), p.merkle_root())
        };
        if let Some(last) = &last {
            let (m, r_m) = (last.checkpoint.size, last.checkpoint.root);
            let ledger = ledger.clone();
            let check = tokio::task::spawn_blocking(move || consistent(&ledger, m, &r_m, size, &root))
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("the check did not finish: {e}")));
            if let Err(e) = check {
                return (Some(last.clone()), Err(e));
            }
            if size == m {
                return (Some(last.clone()), Ok(()));
            }
        }
        let checkpoint = Checkpoint {
            origin: self.key.name().to_owned(),
            size,
            root,
        };
        let note = checkpoint.sign(self.key.signer());
        let next = Signed {
            checkpoint,
            log_sigs: sig_lines(&String::from_utf8_lossy(&note.to_bytes())),
            cosigs: vec![None; self.witnesses.len()],
            refused: vec![false; self.witnesses.len()],
        };
        // Durable before it is served or sent anywhere.
        if let Err(e) = self.persist(&next) {
            return (last, Err(anyhow::anyhow!("cannot write {}: {e}", self.path.display())));
        }
        tracing::info!(size, root = %BASE64_STANDARD.encode(root), "checkpoint signed");
        self.publish(&next);
        (Some(next), Ok(()))
    }

    /// Ask every witness that has not cosigned the current checkpoint.
    async fn gather(
        &self,
        client: &reqwest::Client,
        ledger: &Arc<Ledger>,
        signed: &mut Signed,
        sizes: &mut [Option<u64>],
    ) {
        let note = Note::new(signed.checkpoint.text().as_bytes(), &signed.log_sigs)
            .expect("a checkpoint body is a valid note text")
            .to_bytes();
        let asks = self
            .witnesses
            .iter()
            .enumerate()
            .filter(|(i, _)| signed.cosigs[*i].is_none() && !signed.refused[*i])
            .map(|(i, w)| {
                let note = note.clone();
                let checkpoint = signed.checkpoint.clone();
                let known = sizes[i];
                async move {
                    let asked = tokio::time::timeout(
                        WITNESS_ROUND_LIMIT,
                        submit(client, ledger, w, &checkpoint, &note, known),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        (
                            known,
                            Submitted::Failed(anyhow::anyhow!("no answer within {WITNESS_ROUND_LIMIT:?}")),
                        )
                    });
                    (i, asked)
                }
            });
        let mut changed = false;
        for (i, (size, result)) in futures_util::future::join_all(asks).await {
            sizes[i] = size;
            match result {
                Submitted::Cosigned(sig) => {
                    signed.cosigs[i] = Some(sig);
                    changed = true;
                }
                Submitted::Refused(e) => {
                    signed.refused[i] = true;
                    tracing::error!(
                        witness = %self.witnesses[i].url, size = signed.checkpoint.size, error = %e,
                        "the witness refuses this checkpoint"
                    );
                }
                Submitted::Failed(e) => {
                    tracing::warn!(witness = %self.witnesses[i].url, error = %e, "no cosignature yet; trying again next round")
                }
            }
        }
        if changed {
            if let Err(e) = self.persist(signed) {
                tracing::warn!(error = %e, "could not save the cosignatures; serving them anyway");
            }
            self.publish(signed);
        }
    }
}

/// Is the tree of `m` leaves with root `r_m` a prefix of the current tree of
/// `n` leaves with root `r_n`? Proved with a consistency proof from the stored
/// tree, verified against the signed root.
fn consistent(ledger: &Ledger, m: u64, r_m: &[u8; 32], n: u64, r_n: &[u8; 32]) -> anyhow::Result<()> {
    if n < m {
        bail!(
            "the log holds {n} events but a checkpoint of {m} was signed: the store was restored from an older backup or truncated"
        );
    }
    if m == 0 {
        return Ok(());
    }
    let proof = crate::audit::consistency(ledger.store(), n, m, n)
        .map_err(|e| anyhow::anyhow!("cannot build the consistency proof from {m} to {n}: {e}"))?;
    let proof = proof
        .proof
        .iter()
        .map(|h| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out).map(|_| out)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !verify_consistency(m, n, &proof, r_m, r_n) {
        bail!(
            "the log of {n} events does not extend the signed checkpoint of {m} (root {}): the store was forked or rewritten",
            BASE64_STANDARD.encode(r_m)
        );
    }
    Ok(())
}

/// The consistency proof lines from `old` to the checkpoint, base64.
fn proof_lines(ledger: &Ledger, old: u64, new: u64) -> anyhow::Result<Vec<String>> {
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let p = crate::audit::consistency(ledger.store(), new, old, new).map_err(|e| anyhow::anyhow!("{e}"))?;
    p.proof
        .iter()
        .map(|h| Ok(BASE64_STANDARD.encode(hex::decode(h)?)))
        .collect()
}

/// How a submission to a witness ended.
enum Submitted {
    Cosigned(Signature),
    /// The witness will not cosign this checkpoint.
    Refused(anyhow::Error),
    /// Unreachable, a 5xx, or an answer that makes no sense: try again.
    Failed(anyhow::Error),
}

/// Submit one checkpoint to one witness (C2SP tlog-witness `add-checkpoint`),
/// learning its size from a 409. Returns what the witness's size is believed
/// to be afterwards, and its cosignature or why there is none.
async fn submit(
    client: &reqwest::Client,
    ledger: &Arc<Ledger>,
    witness: &WitnessTarget,
    checkpoint: &Checkpoint,
    note: &[u8],
    known: Option<u64>,
) -> (Option<u64>, Submitted) {
    let mut old = known.unwrap_or(0);
    let mut pause = WITNESS_BACKOFF;
    let mut last_err = anyhow::anyhow!("not tried");
    for _ in 0..WITNESS_ATTEMPTS {
        if old > checkpoint.size {
            return (
                Some(old),
                Submitted::Refused(anyhow::anyhow!(
                    "the witness has seen {old} events, more than this log's {}",
                    checkpoint.size
                )),
            );
        }
        let lines = {
            let ledger = ledger.clone();
            let size = checkpoint.size;
            match tokio::task::spawn_blocking(move || proof_lines(&ledger, old, size)).await {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => return (known, Submitted::Failed(e)),
                Err(e) => return (known, Submitted::Failed(anyhow::anyhow!("{e}"))),
            }
        };
        let mut body = format!("old {old}\n");
        for l in &lines {
            body.push_str(l);
            body.push('\n');
        }
        body.push('\n');
        let mut body = body.into_bytes();
        body.extend_from_slice(note);
        let answer = async {
            let res = client
                .post(format!("{}/add-checkpoint", witness.url))
                .header("content-type", "text/plain; charset=utf-8")
                .body(body)
                .send()
                .await?;
            let status = res.status().as_u16();
            let text = res.bytes().await?;
            anyhow::Ok((status, text))
        };
        let (status, text) = match answer.await {
            Ok(a) => a,
            Err(e) => {
                last_err = e;
                tokio::time::sleep(pause).await;
                pause *= 2;
                continue;
            }
        };
        if text.len() > MAX_WITNESS_ANSWER_BYTES {
            return (
                known,
                Submitted::Failed(anyhow::anyhow!(
                    "the witness answered more than {MAX_WITNESS_ANSWER_BYTES} bytes"
                )),
            );
        }
        let text = String::from_utf8_lossy(&text);
        match status {
            200 => {
                let v = &witness.verifier;
                let found = sig_lines(&text).into_iter().find(|s| {
                    s.name() == signed_note::Verifier::name(v)
                        && s.id() == v.key_id()
                        && v.verify(checkpoint.text().as_bytes(), s.signature())
                });
                return match found {
                    Some(sig) => {
                        tracing::info!(witness = %witness.url, size = checkpoint.size, "cosigned");
                        (Some(checkpoint.size), Submitted::Cosigned(sig))
                    }
                    None => (
                        known,
                        Submitted::Failed(anyhow::anyhow!("the witness answered 200 without a valid cosignature")),
                    ),
                };
            }
            409 => match text.trim_end_matches('\n').parse::<u64>() {
                Ok(size) if size == old => {
                    return (
                        Some(size),
                        Submitted::Refused(anyhow::anyhow!(
                            "409: the witness holds a different tree of {size} events than this log"
                        )),
                    )
                }
                Ok(size) => old = size,
                Err(_) => return (known, Submitted::Failed(anyhow::anyhow!("409 without a size: {text}"))),
            },
            status => {
                last_err = anyhow::anyhow!("the witness answered {status}: {}", text.trim());
                if (400..500).contains(&status) {
                    // The witness refuses this checkpoint (bad proof, unknown
                    // key); asking again now would get the same answer.
                    return (Some(old), Submitted::Refused(last_err));
                }
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
    (known, Submitted::Failed(last_err))
}

/// Seconds since the Unix epoch, for cosignature timestamps.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_witness_target_is_a_url_and_a_cosigner_key() {
        let c =
            super::super::cosignature::Cosigner::new("w.example/1", ed25519_dalek::SigningKey::from_bytes(&[3; 32]));
        let t: WitnessTarget = format!("http://127.0.0.1:7380/+{}", c.vkey()).parse().unwrap();
        assert_eq!(t.url, "http://127.0.0.1:7380");
        assert!(format!("127.0.0.1:7380+{}", c.vkey()).parse::<WitnessTarget>().is_err());
        assert!("http://127.0.0.1:7380".parse::<WitnessTarget>().is_err());
    }
}
