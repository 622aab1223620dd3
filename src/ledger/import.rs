//! `sitrep import`: a log restored from its export, exactly.

use crate::domain::event::StoredEvent;
use crate::domain::fact::Fact;
use crate::domain::integrity::{check_link, MerkleFrontier, GENESIS_HASH};
use crate::domain::limits::MAX_BATCH_EVENTS;
use crate::projection::Projection;
use crate::store::{Staged, Store};

use super::restore::check_and_apply;
use super::{leaf_of, LedgerError};

/// Restore an export into an empty store, exactly: same seqs, times,
/// principals and hashes. Checks the chain and every rule as it goes and
/// writes nothing past the first bad event.
pub fn import(
    store: &dyn Store,
    events: impl Iterator<Item = Result<StoredEvent, String>>,
) -> Result<u64, LedgerError> {
    let head = store.durable_head()?;
    if head.seq != 0 {
        return Err(LedgerError::Import(format!(
            "the store ({}) is not empty (head seq {})",
            store.describe(),
            head.seq
        )));
    }
    let mut projection = Projection::default();
    let mut tree = MerkleFrontier::default();
    let mut chunk: Vec<Staged> = Vec::new();
    let mut prev = GENESIS_HASH;
    let mut count = 0;
    for (n, item) in events.enumerate() {
        let event = item.map_err(|e| LedgerError::Import(format!("line {}: {e}", n + 1)))?;
        let seq = n as u64 + 1;
        let canonical = check_link(&event, seq, &prev).map_err(|reason| LedgerError::Invalid { seq, reason })?;
        let parsed = check_and_apply(&mut projection, &event)?;
        prev = event.hash;
        let fact = Fact::of(event.id, event.version, &parsed);
        let nodes = tree.push(&leaf_of(&event));
        chunk.push(Staged {
            event,
            canonical,
            fact,
            nodes,
        });
        count += 1;
        if chunk.len() >= MAX_BATCH_EVENTS {
            store.append(&chunk)?;
            chunk.clear();
        }
    }
    store.append(&chunk)?;
    Ok(count)
}
