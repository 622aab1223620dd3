//! The third-party verifier (`sitrep audit ...`) against a real server, and
//! against a forging one.

use std::process::Output;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::process::{rechained, sitrep_output as sitrep};

/// `sitrep audit <command> --server <server> <rest…>`, off the async runtime.
pub(crate) async fn audit(command: &str, server: &str, rest: &[&str]) -> Output {
    let mut args: Vec<String> = vec!["audit".into(), command.into(), "--server".into(), server.into()];
    args.extend(rest.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || sitrep(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}

pub(crate) fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn a_saved_head_is_extended_by_the_log_and_events_are_included() {
    let app = spawn_demo_app().await;
    let head = app.ok("/v1/audit/head").await;
    let saved = format!("{}:{}", head["seq"], head["root"].as_str().unwrap());
    for i in 0..9 {
        app.post_json(&dev(
            "report",
            "aleppo",
            "2024-12-02T00:00:00Z",
            json!({"summary": format!("later {i}")}),
        ))
        .await;
    }
    let ok = audit("check-consistency", &app.address, &["--saved", &saved]).await;
    assert_eq!(ok.status.code(), Some(0), "{}", err(&ok));
    assert!(err(&ok).contains("save 41:"), "{}", err(&ok));
    let inc = audit("check-inclusion", &app.address, &["--seq", "21", "--saved", &saved]).await;
    assert_eq!(inc.status.code(), Some(0), "{}", err(&inc));
    let later = audit("check-inclusion", &app.address, &["--seq", "40"]).await;
    assert_eq!(later.status.code(), Some(0), "{}", err(&later));
    // An event after the saved tree is not in it.
    let outside = audit("check-inclusion", &app.address, &["--seq", "40", "--saved", &saved]).await;
    assert_eq!(outside.status.code(), Some(1), "{}", err(&outside));
}

/// How the forging server alters the real server's consistency proofs.
#[derive(Clone, Copy, Debug)]
enum Forgery {
    None,
    WrongSibling,
    WrongOrder,
    Truncated,
    Extended,
    OtherRoot,
}

async fn forging_proxy(upstream: String, forgery: Forgery) -> (String, actix_web::dev::ServerHandle) {
    let client = web::Data::new(reqwest::Client::new());
    let upstream = web::Data::new(upstream);
    let server = HttpServer::new(move || {
        App::new()
                .app_data(client.clone())
                .app_data(upstream.clone())
                .default_service(web::to(
                    move |req: actix_web::HttpRequest,
                          client: web::Data<reqwest::Client>,
                          upstream: web::Data<String>| async move {
                        let url = format!("{}{}", upstream.as_str(), req.uri());
                        let mut body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
                        if req.path() == "/v1/audit/proof/consistency" {
                            let proof = body["proof"].as_array_mut().unwrap();
                            match forgery {
                                Forgery::None => {}
                                Forgery::WrongSibling => proof[0] = json!("ab".repeat(32)),
                                Forgery::WrongOrder => proof.swap(0, 1),
                                Forgery::Truncated => {
                                    proof.pop();
                                }
                                Forgery::Extended => proof.push(json!("cd".repeat(32))),
                                Forgery::OtherRoot => {}
                            }
                        }
                        if req.path() == "/v1/audit/head" {
                            if let Forgery::OtherRoot = forgery {
                                body["root"] = json!("ef".repeat(32));
                            }
                        }
                        HttpResponse::Ok().json(body)
                    },
                ))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}"), handle)
}

#[tokio::test]
async fn forged_consistency_proofs_are_rejected() {
    let app = spawn_demo_app().await;
    let head = app.ok("/v1/audit/head").await;
    let saved = format!(
        "{}:{}",
        13,
        app.ok("/v1/audit/proof/consistency?first=13&second=32").await["first_root"]
            .as_str()
            .unwrap()
    );
    assert_eq!(head["seq"], 32);
    for forgery in [
        Forgery::None,
        Forgery::WrongSibling,
        Forgery::WrongOrder,
        Forgery::Truncated,
        Forgery::Extended,
        Forgery::OtherRoot,
    ] {
        let (url, handle) = forging_proxy(app.address.clone(), forgery).await;
        let out = audit("check-consistency", &url, &["--saved", &saved]).await;
        let expected = if matches!(forgery, Forgery::None) { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(expected), "{forgery:?}: {}", err(&out));
        handle.stop(true).await;
    }
}

#[tokio::test]
async fn a_rewritten_and_rechained_log_fails_the_check_against_a_saved_head() {
    let app = spawn_demo_app().await;
    let head = app.ok("/v1/audit/head").await;
    let saved = format!("{}:{}", head["seq"], head["root"].as_str().unwrap());
    let dir = app.data_dir().to_owned();
    let tmp = app.stop().await;
    let export = sitrep(&["export", "--data-dir", dir.to_str().unwrap()]);
    let (_, ndjson) = rechained(&export.stdout, |events| {
        events[20]["source"]["name"] = json!("Someone else")
    });
    let file = tmp.path().join("rewritten.ndjson");
    std::fs::write(&file, ndjson).unwrap();
    let restored = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let target = restored.path().join("data");
    assert!(
        sitrep(&["import", "--data-dir", target.to_str().unwrap(), file.to_str().unwrap()])
            .status
            .success()
    );
    let forged = spawn_app_on(restored, false).await;
    assert_eq!(
        forged.ok("/v1/audit/verify").await["ok"],
        true,
        "the re-chained log checks by itself"
    );
    let out = audit("check-consistency", &forged.address, &["--saved", &saved]).await;
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    forged.stop().await;
}
