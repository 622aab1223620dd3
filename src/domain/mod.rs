//! The domain: what an event is, what makes it valid, and how a location's
//! history folds into its control status.
//!
//! Pure and synchronous: no IO, no clocks, no sled, no actix. Everything here
//! can be tested with plain values (see the given/when/then tests in each
//! module). The store and the projection call into this layer; it calls
//! nothing above it.

pub mod data;
pub mod envelope;
pub mod event;
pub mod fact;
pub mod fold;
pub mod hash;
pub mod ids;
pub mod integrity;
pub mod jcs;
pub mod json;
pub mod limits;
pub mod precision;
pub mod reference;
pub mod rules;
pub mod source;
pub mod stored;
pub mod time;
pub mod validation;
pub mod vocabulary;

#[cfg(test)]
mod fuzz_tests;

pub use event::{EventData, EventType, NewEvent, Source, StoredEvent};
pub use ids::Slug;
pub use validation::{FieldError, Problem};
