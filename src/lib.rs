//! sitrep: an event-sourced situation tracker.
//!
//! Every development in a conflict is appended as an immutable, sourced event
//! to a hash-chained log kept in sled; projections fold the log into the
//! current control status of every location.
//!
//! A tour of the layout, from the bottom up (imports only point down):
//!
//! - [`domain`]: pure and synchronous. Event types, parsing and validation with
//!   field-level errors, the rules that need the log's state (seen through a
//!   trait), the control fold, the hash chain and the Merkle tree head.
//! - [`store`]: the only code that imports sled. Atomic, fsynced appends; reads
//!   that re-check every hash.
//! - [`projection`]: read models rebuilt from the log; bitemporal queries.
//! - [`ledger`]: the single writer (group commit) in front of the store and the
//!   projection.
//! - [`audit`]: chain verification and the tree head, for HTTP and the CLI.
//! - [`auditor`]: the third-party checks a client runs against a server.
//! - [`transparency`]: signed checkpoints, cosignatures, and the witness.
//! - [`formats`]: GeoJSON, CSV and CloudEvents renderings of the log and its
//!   read models, for the API and the command line alike.
//! - [`acled`]: ACLED exports into a running server, through its public API.
//! - [`api`]: the only code that imports actix: routes and problem+json.
//! - [`startup`], [`cli`], [`telemetry`]: wiring.

pub mod acled;
pub mod api;
pub mod audit;
pub mod auditor;
pub mod auth;
pub mod checkpoint;
pub mod cli;
pub mod demo;
pub mod domain;
pub mod formats;
pub mod ledger;
pub mod metrics;
pub mod projection;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod transparency;

#[cfg(test)]
mod roundtrip_tests;
