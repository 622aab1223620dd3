//! Clients that leave: every GET route, asked and abandoned by its clients,
//! gives back what they held. A route whose work outlives its client (a
//! verification folding the log, a feed catching up or waiting) shows here as
//! a feed slot still held or a verification not cancelled.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::process::*;

/// Events of the log: enough that a verification or a filtered catch-up
/// outlasts the moment its client leaves.
const LOG_EVENTS: usize = 30_000;
/// Abandoned requests per target.
const CLIENTS: usize = 3;
/// How long the server may take to be done with clients that left.
const SETTLE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn every_get_route_abandoned_by_its_clients_gives_back_what_they_held() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    large_log(&data, LOG_EVENTS).await;
    let server = ServerProcess::start(&data, &["--max-subscribers", "64"]);
    let event_id = server.json("/v1/events?limit=1").await["events"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut targets: Vec<String> = sitrep::api::ROUTES
        .iter()
        .filter(|(method, _)| *method == "GET")
        .map(|(_, path)| {
            path.replace("/v1/events/{id}", &format!("/v1/events/{event_id}"))
                .replace("{id}", "aleppo")
        })
        .collect();
    // The costly shapes of the routes: filters that match nothing on a long log.
    targets.extend([
        "/v1/events/stream?location=aleppo&type=air_support_provided".to_owned(),
        "/v1/events/stream?type=air_support_provided".to_owned(),
        "/v1/events/stream?location=nowhere".to_owned(),
        "/v1/events/stream?actor=nobody".to_owned(),
        "/v1/audit/proof/inclusion?seq=1".to_owned(),
        "/v1/audit/proof/consistency?first=1".to_owned(),
    ]);
    let addr = server.address.trim_start_matches("http://").to_owned();
    for target in &targets {
        for _ in 0..CLIENTS {
            let mut c = TcpStream::connect(&addr).unwrap();
            c.write_all(format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
                .unwrap();
            // Gone before the answer, or in the middle of it.
        }
    }
    assert_eq!(
        server
            .metric_until("sitrep_sse_subscribers", SETTLE, |v| v == 0.0)
            .await,
        0.0,
        "every feed whose client left is let go"
    );
    let started = server.metric("sitrep_audit_verify_started_total").await;
    assert_eq!(
        server
            .metric_until("sitrep_audit_verify_cancelled_total", SETTLE, |v| v == started)
            .await,
        started,
        "every verification started for clients that left was stopped"
    );
    assert_eq!(server.json("/healthz").await["seq"], LOG_EVENTS, "and it still answers");
}
