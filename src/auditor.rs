//! The third-party checks: talk to a running server over HTTP and verify what
//! it says with RFC 9162 proofs, trusting only a tree head saved earlier. The
//! checking itself is `domain::integrity`; this module fetches and reports.

use std::time::Duration;

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;

use crate::audit::{ConsistencyProof, Expectation, HeadView, InclusionProof};
use crate::domain::hash::Hash;
use crate::domain::integrity::{event_hash, verify_consistency, verify_inclusion};
use crate::domain::StoredEvent;

/// How long one request to the server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Auditor {
    server: String,
    client: reqwest::blocking::Client,
}

fn hash32(s: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    let hash: Hash = s.parse().map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    Ok(*hash.as_bytes())
}

fn hashes(v: &[String], what: &str) -> anyhow::Result<Vec<[u8; 32]>> {
    v.iter().map(|h| hash32(h, what)).collect()
}

impl Auditor {
    pub fn new(server: &str) -> anyhow::Result<Auditor> {
        Ok(Auditor {
            server: server.trim_end_matches('/').to_owned(),
            client: reqwest::blocking::Client::builder().timeout(REQUEST_TIMEOUT).build()?,
        })
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.server);
        let res = self.client.get(&url).send().with_context(|| format!("GET {url}"))?;
        let status = res.status();
        let body = res.text()?;
        if !status.is_success() {
            bail!("GET {url} answered {status}: {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("GET {url} answered something unexpected: {body}"))
    }

    pub fn head(&self) -> anyhow::Result<HeadView> {
        self.get("/v1/audit/head")
    }

    /// Prove that the server's current log extends the tree `saved`. Returns the
    /// current head, which the auditor saves for next time.
    pub fn check_consistency(&self, saved: Expectation) -> anyhow::Result<HeadView> {
        let head = self.head()?;
        if head.seq < saved.size {
            bail!(
                "the log shrank: the saved tree has {} events, the server's head is {}",
                saved.size,
                head.seq
            );
        }
        let head_root = *head.root.as_bytes();
        if saved.size == 0 {
            return Ok(head);
        }
        let p: ConsistencyProof = self.get(&format!(
            "/v1/audit/proof/consistency?first={}&second={}",
            saved.size, head.seq
        ))?;
        if p.first != saved.size || p.second != head.seq {
            bail!(
                "the server proved {} -> {}, not {} -> {}",
                p.first,
                p.second,
                saved.size,
                head.seq
            );
        }
        let proof = hashes(&p.proof, "a proof hash")?;
        // Verify against the saved root and the head's root, not the roots the
        // proof response names.
        if !verify_consistency(saved.size, head.seq, &proof, &saved.root, &head_root) {
            bail!(
                "the consistency proof from {} to {} does not verify: the log does not extend the saved tree (saved root {}, server says {})",
                saved.size,
                head.seq,
                hex::encode(saved.root),
                p.first_root
            );
        }
        Ok(head)
    }

    /// Prove that event `seq`, re-hashed from its content, is in the tree of
    /// `tree` (a saved head) or of the current head.
    pub fn check_inclusion(&self, seq: u64, tree: Option<Expectation>) -> anyhow::Result<(StoredEvent, Expectation)> {
        let tree = match tree {
            Some(t) => t,
            None => {
                let head = self.head()?;
                Expectation {
                    size: head.seq,
                    root: *head.root.as_bytes(),
                }
            }
        };
        #[derive(serde::Deserialize)]
        struct Page {
            events: Vec<StoredEvent>,
        }
        let page: Page = self.get(&format!("/v1/events?after={}&limit=1", seq.saturating_sub(1)))?;
        let event = page
            .events
            .into_iter()
            .next()
            .filter(|e| e.seq == seq)
            .with_context(|| format!("the server has no event {seq}"))?;
        let recomputed = event_hash(&event);
        if recomputed != event.hash {
            bail!(
                "event {seq} does not hash to its stored hash ({} vs {recomputed})",
                event.hash
            );
        }
        let p: InclusionProof = self.get(&format!("/v1/audit/proof/inclusion?seq={seq}&tree_size={}", tree.size))?;
        let path = hashes(&p.audit_path, "a proof hash")?;
        let leaf = *recomputed.as_bytes();
        if p.leaf_index != seq - 1 || !verify_inclusion(seq - 1, tree.size, &leaf, &path, &tree.root) {
            bail!(
                "the inclusion proof of event {seq} in the tree of {} does not verify",
                tree.size
            );
        }
        Ok((event, tree))
    }
}
