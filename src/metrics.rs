//! Prometheus metrics, process-wide. Served as text by `GET /metrics`.

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    Encoder, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, TextEncoder,
};

/// Events appended (durable).
pub static APPENDED_EVENTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("sitrep_appended_events_total", "Events appended to the log (durable)").expect("metric")
});

/// Append requests by outcome: created, retried, refused, unavailable.
pub static APPEND_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "sitrep_append_requests_total",
        "Append requests by outcome",
        &["outcome"]
    )
    .expect("metric")
});

/// Time from receiving an append to answering it.
pub static APPEND_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "sitrep_append_seconds",
        "Append latency, request parsed to durable answer",
        vec![0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]
    )
    .expect("metric")
});

/// Events per group commit (one sled batch, one fsync).
pub static GROUP_EVENTS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "sitrep_flush_batch_events",
        "Events written per flush (group commit size)",
        vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0]
    )
    .expect("metric")
});

/// Time to write, flush and fsync one group.
pub static FLUSH_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "sitrep_flush_seconds",
        "Time to write, flush and fsync one group",
        vec![0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5]
    )
    .expect("metric")
});

/// Events in the log.
pub static LOG_EVENTS: LazyLock<IntGauge> =
    LazyLock::new(|| register_int_gauge!("sitrep_log_events", "Events in the log (head seq)").expect("metric"));

/// Bytes of the store on disk.
pub static LOG_BYTES: LazyLock<IntGauge> =
    LazyLock::new(|| register_int_gauge!("sitrep_log_bytes", "Size of the sled store on disk").expect("metric"));

/// Durable events not yet in the projection.
pub static PROJECTION_LAG: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "sitrep_projection_lag_events",
        "Durable events the projection has not applied yet"
    )
    .expect("metric")
});

/// Connected live-feed subscribers.
pub static SSE_SUBSCRIBERS: LazyLock<IntGauge> =
    LazyLock::new(|| register_int_gauge!("sitrep_sse_subscribers", "Connected live-feed subscribers").expect("metric"));

/// HTTP answers by route pattern, method and status.
pub static HTTP_RESPONSES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "sitrep_http_responses_total",
        "HTTP responses by route, method and status",
        &["route", "method", "status"]
    )
    .expect("metric")
});

/// HTTP latency by route pattern.
pub static HTTP_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "sitrep_http_request_seconds",
        "HTTP request latency by route",
        &["route"],
        vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0]
    )
    .expect("metric")
});

/// Every registered metric in the Prometheus text format.
pub fn render() -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&prometheus::gather(), &mut out)
        .expect("text encoding never fails");
    String::from_utf8(out).expect("the text format is UTF-8")
}

/// Register every metric now, so a scrape lists each one from the start.
/// Size of the last signed checkpoint.
pub static CHECKPOINT_SIZE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("sitrep_checkpoint_size", "Tree size of the last signed checkpoint").expect("metric")
});

/// Witness cosignatures on the served checkpoint.
pub static CHECKPOINT_COSIGNATURES: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "sitrep_checkpoint_cosignatures",
        "Witness cosignatures on the served checkpoint"
    )
    .expect("metric")
});

/// 1 while the signer refuses to sign (the log does not extend the last
/// signed checkpoint: an older backup or a fork).
pub static CHECKPOINT_REFUSED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "sitrep_checkpoint_refused",
        "1 while signing is refused because the log does not extend the last signed checkpoint"
    )
    .expect("metric")
});

pub fn init() {
    LazyLock::force(&APPENDED_EVENTS);
    LazyLock::force(&APPEND_REQUESTS);
    LazyLock::force(&APPEND_SECONDS);
    LazyLock::force(&GROUP_EVENTS);
    LazyLock::force(&FLUSH_SECONDS);
    LazyLock::force(&LOG_EVENTS);
    LazyLock::force(&LOG_BYTES);
    LazyLock::force(&PROJECTION_LAG);
    LazyLock::force(&SSE_SUBSCRIBERS);
    LazyLock::force(&HTTP_RESPONSES);
    LazyLock::force(&HTTP_SECONDS);
    LazyLock::force(&CHECKPOINT_SIZE);
    LazyLock::force(&CHECKPOINT_COSIGNATURES);
    LazyLock::force(&CHECKPOINT_REFUSED);
    LazyLock::force(&VERIFY_STARTED);
    LazyLock::force(&VERIFY_CANCELLED);
    LazyLock::force(&SSE_CATCH_UP_EVENTS);
    LazyLock::force(&SSE_FELL_BEHIND);
    LazyLock::force(&CSV_EXPORTS);
}

/// Verifications of the whole log started by `GET /v1/audit/verify`.
pub static VERIFY_STARTED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "sitrep_audit_verify_started_total",
        "Verifications of the whole log started (GET /v1/audit/verify)"
    )
    .expect("metric")
});

/// Verifications stopped because every caller waiting for them left.
pub static VERIFY_CANCELLED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "sitrep_audit_verify_cancelled_total",
        "Verifications stopped because no caller waited for them any more"
    )
    .expect("metric")
});

/// `GET /v1/events.csv` answers still being written.
pub static CSV_EXPORTS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("sitrep_csv_exports", "CSV exports of the log being written").expect("metric")
});

/// Stored events the live feed's catch-up read.
pub static SSE_CATCH_UP_EVENTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "sitrep_sse_catch_up_events_total",
        "Stored events read by live-feed subscribers catching up"
    )
    .expect("metric")
});

/// Live-feed subscribers sent back to the store because their buffer was full.
pub static SSE_FELL_BEHIND: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "sitrep_sse_fell_behind_total",
        "Times a live-feed subscriber's buffer was full and it went back to catching up from the store"
    )
    .expect("metric")
});
