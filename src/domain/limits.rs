//! Named limits. Every input the service accepts is bounded by one of these.

/// Largest request body accepted by `POST /v1/events` (the default; configurable).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most events in one atomic batch.
pub const MAX_BATCH_EVENTS: usize = 1000;
/// Most events in one page of `GET /v1/events`.
pub const MAX_PAGE_EVENTS: usize = 1000;
/// Page size of `GET /v1/events` when `limit` is absent.
pub const DEFAULT_PAGE_EVENTS: usize = 100;
/// Largest stored event (canonical JSON). Keeping every record far below sled's
/// inline threshold means sled never writes a separate blob file, whose contents
/// sled 0.34 does not fsync.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Longest name of a location, an actor or a source.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest `report` summary.
pub const MAX_SUMMARY_CHARS: usize = 16 * 1024;
/// Longest reason of a retraction, closure or reopening.
pub const MAX_REASON_CHARS: usize = 2000;
/// Longest source URL.
pub const MAX_URL_CHARS: usize = 2000;
/// Most names (by language) of one location or actor.
pub const MAX_NAMES: usize = 64;
/// Most aliases of one location or actor.
pub const MAX_ALIASES: usize = 32;
/// Most actors named by one `clashes_reported`.
pub const MAX_CLASH_ACTORS: usize = 32;
/// Longest slug (location and actor ids).
pub const MAX_SLUG_CHARS: usize = 64;
