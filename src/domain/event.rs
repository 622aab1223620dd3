//! Events: the posted envelope (`NewEvent`), its typed `data` (`EventData`), its
//! `Source`, and the stored form (`StoredEvent`) that the log keeps and serves.
//!
//! Parsing is strict: unknown members are refused, so a typo never silently
//! drops data. Every refusal names the offending field.
//!
//! Each concept has its own module; this one names them together, so
//! `domain::event::X` reaches every one of them.

pub use super::data::*;
pub use super::envelope::*;
pub use super::source::*;
pub use super::stored::*;
pub use super::time::{format_time, parse_time};
pub use super::vocabulary::*;
