//! The demo scenario: the Aleppo story of 30 November 2024, encoded as events in
//! `api-spec/examples/aleppo-2024-11-30.json` and embedded in the binary.

use crate::domain::NewEvent;
use crate::ledger::{AppendError, Appended, Ledger};

/// The scenario file, as a client would post it.
pub const ALEPPO: &str = include_str!("../api-spec/examples/aleppo-2024-11-30.json");

/// The principal recorded for the scenario's events.
pub const DEMO_PRINCIPAL: &str = "demo";

/// The scenario's events, parsed with the same checks as a posted batch.
pub fn events() -> Vec<NewEvent> {
    let items: Vec<serde_json::Value> = serde_json::from_str(ALEPPO).expect("the embedded scenario is a JSON array");
    items
        .iter()
        .map(|v| NewEvent::from_json(v).expect("the embedded scenario is valid"))
        .collect()
}

/// Load the scenario as one atomic batch. On a store that already holds it this
/// is an idempotent retry and writes nothing.
pub async fn load(ledger: &Ledger) -> Result<Appended, AppendError> {
    ledger.append(events(), true, DEMO_PRINCIPAL.into()).await
}
