//! The log and its read models in the formats other tools read: CSV for
//! spreadsheets, CloudEvents for brokers. Pure rendering from domain types; no
//! IO, no HTTP, so the server and the command line share one rendering.

pub mod cloudevents;
pub mod csv;
pub mod events_csv;
