//! `sitrep witness`: a C2SP tlog-witness. It keeps, per log it is configured
//! to watch, the latest checkpoint it cosigned, and cosigns a new one only
//! when a consistency proof shows that it extends that one. Two views of one
//! log can then never both be cosigned by it.
//!
//! A second kind of process with its own data directory: one file per log
//! (`logs/<sha256 of the origin, hex>`, the last cosigned checkpoint note),
//! replaced atomically (temp file, fsync, rename, fsync dir) before the
//! cosignature is returned, so a witness killed at any moment comes back with
//! a state it has answered for, or an older one it has not yet answered past.
//!
//! `POST /add-checkpoint`, as the spec says: body `old <size>\n`, up to 63
//! base64 consistency proof lines, an empty line, the signed checkpoint.
//! Answers: 200 with the cosignature line; 400 for a malformed request or an
//! old size beyond the checkpoint; 403 when no trusted key signed it; 404 for
//! an unknown origin; 409 (`text/x.tlog.size`, its size) when the old size is
//! not its size, or the sizes match and the roots differ; 422 when the proof
//! fails. Refusals other than 409 are problem+json, and the witness serves
//! behind the API's HTTP edge, so malformed HTTP, an overlong URI or head, a
//! wrong method and a body that does not arrive in time are refused as the
//! server refuses them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use actix_web::dev::Server;
use actix_web::http::header::{HeaderValue, ALLOW};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use anyhow::Context;
use base64::prelude::{Engine, BASE64_STANDARD};
use sha2::{Digest, Sha256};
use signed_note::{Note, StandardVerifier, Verifier as _, VerifierList};

use super::checkpoint::{parse_note, Checkpoint, MAX_NOTE_BYTES};
use super::cosignature::Cosigner;
use super::note::{verifier, PrivateKey};
use crate::api::{ApiError, Code};
use crate::domain::integrity::verify_consistency;

/// Most consistency proof lines a request may carry (the spec's bound).
pub const MAX_PROOF_LINES: usize = 63;
/// Largest request body: the old size, the proof lines, the checkpoint note.
const MAX_REQUEST_BYTES: usize = 1024 + MAX_PROOF_LINES * 48 + MAX_NOTE_BYTES;
/// The media type of a 409's body.
const SIZE_MEDIA_TYPE: &str = "text/x.tlog.size";
/// The witness's one route.
const ADD_CHECKPOINT: &str = "/add-checkpoint";
/// HTTP worker threads: submissions are few, and serialised per witness.
const WORKERS: usize = 2;

pub struct WitnessSettings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub key: PathBuf,
    /// The logs to witness, by their signed-note verifier keys.
    pub logs: Vec<String>,
    /// Time a client has to send a request body.
    pub body_timeout: std::time::Duration,
}

struct Witness {
    cosigner: Cosigner,
    /// Trusted keys by origin.
    logs: HashMap<String, Vec<StandardVerifier>>,
    dir: PathBuf,
    /// Held from reading a log's state to writing the new one, so two requests
    /// can never both pass the check against the same old state (the race the
    /// spec describes, which would roll the state back).
    lock: Mutex<()>,
    body_timeout: std::time::Duration,
}

pub struct WitnessApp {
    server: Server,
    port: u16,
    /// Turns true when the witness starts shutting down: idle connections close.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl WitnessApp {
    pub async fn build(settings: WitnessSettings) -> anyhow::Result<WitnessApp> {
        let key = PrivateKey::load(&settings.key)
            .with_context(|| format!("cannot use the witness key {}", settings.key.display()))?;
        let cosigner = Cosigner::new(key.name(), key.ed25519().clone());
        let mut logs: HashMap<String, Vec<StandardVerifier>> = HashMap::new();
        for vkey in &settings.logs {
            let v = verifier(vkey).map_err(anyhow::Error::msg)?;
            logs.entry(v.name().to_owned()).or_default().push(v);
        }
        if logs.is_empty() {
            anyhow::bail!("a witness needs at least one --log VKEY to watch");
        }
        let dir = settings.data_dir.join("logs");
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let witness = web::Data::new(Witness {
            cosigner,
            logs,
            dir,
            lock: Mutex::new(()),
            body_timeout: settings.body_timeout,
        });
        let listener = std::net::TcpListener::bind(&settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let vkey = witness.cosigner.vkey();
        let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
        let server = crate::api::serve_routes(listener, WORKERS, 0, stopping_rx, move |cfg| {
            cfg.app_data(witness.clone())
                .service(
                    web::resource(ADD_CHECKPOINT)
                        .route(web::post().to(add_checkpoint))
                        .default_service(web::to(method_not_allowed)),
                )
                .default_service(web::to(not_found));
        })?;
        tracing::info!(listen = %settings.listen, port, vkey = %vkey, logs = settings.logs.len(), "witness serving");
        Ok(WitnessApp { server, port, stopping })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serve until SIGTERM or SIGINT.
    pub async fn run_with_signals(self) -> anyhow::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let handle = self.server.handle();
        let stopping = self.stopping;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = stopping.send(true);
            handle.stop(true).await;
        });
        self.server.await?;
        Ok(())
    }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "a witness answers only POST {ADD_CHECKPOINT}"
    )))
}

/// `405` with `Allow`. The method is not echoed: a made-up one may be tens of kilobytes.
async fn method_not_allowed() -> HttpResponse {
    let mut res = ApiError::new(
        Code::MethodNotAllowed,
        format!("only POST is allowed on {ADD_CHECKPOINT}"),
    )
    .error_response();
    res.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
    res
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::new(Code::MalformedCheckpoint, detail)
}

/// A parsed `add-checkpoint` body.
struct Submission {
    old: u64,
    proof: Vec<[u8; 32]>,
    note: Note,
    checkpoint: Checkpoint,
}

fn parse(body: &[u8]) -> Result<Submission, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
    let (head, rest) = text
        .split_once("\n\n")
        .ok_or_else(|| bad("no empty line before the checkpoint"))?;
    let mut lines = head.split('\n');
    let old = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .filter(|n| !n.is_empty() && (n == &"0" || !n.starts_with('0')) && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| bad("the first line is not 'old <size>'"))?;
    let proof = lines
        .map(|l| {
            BASE64_STANDARD
                .decode(l)
                .ok()
                .and_then(|h| <[u8; 32]>::try_from(h).ok())
                .ok_or_else(|| bad(format!("'{l}' is not a base64 hash")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if proof.len() > MAX_PROOF_LINES {
        return Err(bad(format!("more than {MAX_PROOF_LINES} proof lines")));
    }
    let note =
        Note::from_bytes(rest.as_bytes()).map_err(|e| bad(format!("the checkpoint is not a signed note: {e}")))?;
    let checkpoint = parse_note(&note).map_err(|e| bad(e.to_string()))?;
    Ok(Submission {
        old,
        proof,
        note,
        checkpoint,
    })
}

fn state_path(dir: &Path, origin: &str) -> PathBuf {
    dir.join(hex::encode(Sha256::digest(origin.as_bytes())))
}

/// The last cosigned checkpoint of `origin`, if any.
fn read_state(dir: &Path, origin: &str) -> Result<Option<Checkpoint>, ApiError> {
    let unavailable = |e: String| ApiError::new(Code::Unavailable, format!("the witness state of {origin}: {e}"));
    match std::fs::read(state_path(dir, origin)) {
        Ok(bytes) => {
            let note = Note::from_bytes(&bytes).map_err(|e| unavailable(e.to_string()))?;
            parse_note(&note).map(Some).map_err(|e| unavailable(e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(unavailable(e.to_string())),
    }
}

/// How a checked submission ends.
enum Verdict {
    Cosigned(String),
    Conflict(u64),
}

async fn add_checkpoint(
    req: HttpRequest,
    payload: web::Payload,
    witness: web::Data<Witness>,
) -> Result<HttpResponse, ApiError> {
    // The API's reader: the size limit, and the deadline that cuts off a trickle.
    let body = crate::api::read_body(&req, payload, MAX_REQUEST_BYTES, witness.body_timeout)
        .await
        .map_err(|e| match e.code {
            Code::MalformedJson => bad(e.detail),
            _ => e,
        })?;
    let s = parse(&body)?;
    let origin = s.checkpoint.origin.clone();
    let keys = witness
        .logs
        .get(&origin)
        .ok_or_else(|| ApiError::new(Code::UnknownLog, format!("this witness does not watch '{origin}'")))?;
    let known = VerifierList::new(
        keys.iter()
            .map(|k| Box::new(k.clone()) as Box<dyn signed_note::Verifier>)
            .collect(),
    );
    s.note.verify(&known).map_err(|e| {
        ApiError::new(
            Code::CheckpointUnverified,
            format!("no trusted key of '{origin}' signed this checkpoint: {e}"),
        )
    })?;
    if s.old > s.checkpoint.size {
        return Err(bad(format!(
            "the old size {} is larger than the checkpoint's {}",
            s.old, s.checkpoint.size
        )));
    }
    let w = witness.clone();
    let verdict = web::block(move || check_and_cosign(&w, s))
        .await
        .map_err(|e| ApiError::new(Code::Unavailable, e.to_string()))??;
    match verdict {
        Verdict::Cosigned(line) => Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(line)),
        Verdict::Conflict(size) => Ok(HttpResponse::Conflict()
            .content_type(SIZE_MEDIA_TYPE)
            .body(format!("{size}\n"))),
    }
}

/// Under the lock: check the submission against the stored state, store the
/// new checkpoint durably, then cosign it.
fn check_and_cosign(witness: &Witness, s: Submission) -> Result<Verdict, ApiError> {
    let _guard = witness.lock.lock().unwrap_or_else(|p| p.into_inner());
    let stored = read_state(&witness.dir, &s.checkpoint.origin)?;
    let stored_size = stored.as_ref().map_or(0, |c| c.size);
    if s.old != stored_size {
        return Ok(Verdict::Conflict(stored_size));
    }
    let refusal = match &stored {
        // Same size, another root: a second view of the log.
        Some(old) if old.size == s.checkpoint.size && old.root != s.checkpoint.root => {
            tracing::warn!(origin = %old.origin, size = old.size, "a checkpoint of the cosigned size with another root");
            Some(Ok(Verdict::Conflict(stored_size)))
        }
        // The proof from a tree to itself is empty: any other does not verify.
        Some(old) if old.size == s.checkpoint.size && !s.proof.is_empty() => Some(Err(ApiError::new(
            Code::InconsistentCheckpoint,
            format!(
                "a consistency proof from {} to itself is empty, not {} hashes",
                old.size,
                s.proof.len()
            ),
        ))),
        Some(old) if old.size == s.checkpoint.size => None,
        // Every tree extends the empty one (the proof must then be empty, below).
        Some(old)
            if old.size > 0
                && !verify_consistency(old.size, s.checkpoint.size, &s.proof, &old.root, &s.checkpoint.root) =>
        {
            tracing::warn!(
                origin = %old.origin, old = old.size, new = s.checkpoint.size,
                "a signed checkpoint that does not extend the cosigned one"
            );
            Some(Err(ApiError::new(
                Code::InconsistentCheckpoint,
                format!(
                    "the consistency proof from {} to {} does not verify against the checkpoint this witness cosigned",
                    old.size, s.checkpoint.size
                ),
            )))
        }
        Some(old) if old.size > 0 => None,
        _ if !s.proof.is_empty() => Some(Err(bad("the proof must be empty when the old size is 0"))),
        _ => None,
    };
    if let Some(refused) = refusal {
        return refused;
    }
    super::write_atomically(&state_path(&witness.dir, &s.checkpoint.origin), &s.note.to_bytes())
        .map_err(|e| ApiError::new(Code::Unavailable, format!("cannot save the witness state: {e}")))?;
    // The whole note body as submitted: extension lines, if the log writes
    // any, are part of the cosigned message (tlog-cosignature).
    let sig = witness.cosigner.cosign(s.note.text(), super::signer::unix_now());
    tracing::info!(origin = %s.checkpoint.origin, size = s.checkpoint.size, "cosigned");
    Ok(Verdict::Cosigned(
        String::from_utf8(sig.to_bytes()).expect("a signature line is UTF-8"),
    ))
}
