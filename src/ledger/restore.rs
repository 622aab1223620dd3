//! Start-up: the projection from a checkpoint plus the events after it, or
//! from the whole log, every hash and link checked.

use crate::domain::event::{NewEvent, StoredEvent};
use crate::domain::fact::Fact;
use crate::domain::hash::Hash;
use crate::domain::integrity::GENESIS_HASH;
use crate::domain::rules;
use crate::projection::Projection;
use crate::store::{Store, StoreError};

use super::LedgerError;

/// Re-parse a stored event, hold it to the domain rules, and apply it.
pub fn check_and_apply(projection: &mut Projection, event: &StoredEvent) -> Result<NewEvent, LedgerError> {
    let invalid = |reason: String| LedgerError::Invalid { seq: event.seq, reason };
    let parsed = event
        .to_new_event()
        .map_err(|p| invalid(format!("{p}: {:?}", p.field_errors())))?;
    if parsed.stream != event.stream().ok_or_else(|| invalid("names no stream".into()))? {
        return Err(invalid("stream mismatch".into()));
    }
    rules::check(&parsed, &*projection).map_err(|p| invalid(p.to_string()))?;
    // Applying checks the seq and the stream version too.
    projection.apply(event, &parsed).map_err(|e| invalid(e.reason))?;
    Ok(parsed)
}

/// The projection at start-up: from a sound checkpoint plus the events after
/// it, or folded from the whole log. Returns it and the number of events folded.
pub fn restore(store: &dyn Store, checkpoints: Option<&std::path::Path>) -> Result<(Projection, u64), LedgerError> {
    let saved = match checkpoints {
        Some(dir) => crate::checkpoint::load(dir),
        None => Ok(None),
    };
    match saved {
        Ok(Some((seq, hash, projection))) => {
            let matches =
                seq <= store.head().seq && (seq == 0 || store.get(seq).ok().flatten().is_some_and(|e| e.hash == hash));
            if matches {
                let from = seq;
                let p = replay(store, projection, seq + 1, hash)?;
                let folded = p.head_seq() - from;
                tracing::info!(checkpoint_seq = from, folded, "projection restored from its checkpoint");
                return Ok((p, folded));
            }
            tracing::warn!(
                seq,
                "the projection checkpoint does not match the log; folding the whole log"
            );
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "the projection checkpoint is unusable; folding the whole log"),
    }
    let p = rebuild(store)?;
    let folded = p.head_seq();
    Ok((p, folded))
}

/// Fold the whole log into a fresh projection, checking every event's hash
/// and link.
pub fn rebuild(store: &dyn Store) -> Result<Projection, LedgerError> {
    replay(store, Projection::default(), 1, GENESIS_HASH)
}

/// Records handed from the reading thread to the folding thread at a time.
const REPLAY_CHUNK: usize = 1024;

/// Fold the events from `from_seq` on into `projection`; `prev_hash` is the
/// hash of the event before `from_seq`. One thread reads the records and checks
/// each hash (SHA-256 over the stored canonical JSON) and link; this one folds
/// their facts in bulk. Rules are not re-run: every event passed them when it
/// was written, and `sitrep verify` re-runs them and re-derives every fact.
fn replay(
    store: &dyn Store,
    mut projection: Projection,
    from_seq: u64,
    prev_hash: Hash,
) -> Result<Projection, LedgerError> {
    // Up to the head as of now: with several servers on one database the log
    // grows while this one folds; what comes later is followed like any append.
    let head = store.durable_head()?;
    let count = (head.seq + 1).saturating_sub(from_seq.max(1)) as usize;
    let mut prev = prev_hash;
    projection.begin_bulk();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<crate::store::Record>, StoreError>>(8);
    std::thread::scope(|scope| -> Result<(), LedgerError> {
        scope.spawn(move || {
            let mut chunk = Vec::with_capacity(REPLAY_CHUNK);
            for item in store.records(from_seq).take(count) {
                let checked = item.and_then(|r| {
                    r.check_hash()?;
                    if r.prev_hash() != prev {
                        return Err(StoreError::Corrupt {
                            seq: r.seq(),
                            reason: format!(
                                "prev_hash {} does not match the hash of seq {}",
                                r.prev_hash(),
                                r.seq() - 1
                            ),
                        });
                    }
                    prev = r.hash();
                    Ok(r)
                });
                match checked {
                    Ok(r) => {
                        chunk.push(r);
                        if chunk.len() == REPLAY_CHUNK
                            && tx
                                .send(Ok(std::mem::replace(&mut chunk, Vec::with_capacity(REPLAY_CHUNK))))
                                .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
            if !chunk.is_empty() {
                let _ = tx.send(Ok(chunk));
            }
        });
        for chunk in rx {
            for r in chunk? {
                let invalid = |reason: String| LedgerError::Invalid { seq: r.seq(), reason };
                let fact = Fact::from_bytes(r.fact()).map_err(invalid)?;
                projection.apply_fact(r.seq(), &fact).map_err(|e| invalid(e.reason))?;
            }
        }
        Ok(())
    })?;
    projection.end_bulk();
    if head.seq != projection.head_seq() {
        return Err(LedgerError::Invalid {
            seq: head.seq,
            reason: format!(
                "the stored head (seq {}) does not match the last event (seq {})",
                head.seq,
                projection.head_seq()
            ),
        });
    }
    if head.seq > 0 {
        let last = store.get(head.seq)?.ok_or_else(|| LedgerError::Invalid {
            seq: head.seq,
            reason: "the head event is missing".into(),
        })?;
        if last.hash != head.hash {
            return Err(LedgerError::Invalid {
                seq: head.seq,
                reason: "the stored head's hash is not the last event's".into(),
            });
        }
        projection.set_head(&last.hash, &last.recorded_at);
    }
    projection.set_tree(store.frontier(head.seq)?);
    Ok(projection)
}
