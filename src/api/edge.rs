//! The edge of HTTP. actix-http answers some requests itself, before any
//! middleware runs: a request head it cannot parse (a URI over 64 KiB among
//! them), one over its 128 KiB head limit, one that does not arrive in time.
//! Its answers have no body. Each connection is wrapped so that those bare
//! answers go out as problem+json like every other refusal.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_http::HttpService;
use actix_service::{map_config, IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::{fn_service, AppConfig, Server};
use actix_web::middleware::from_fn;
use actix_web::rt::net::TcpStream;
use actix_web::{web, App, ResponseError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use super::{configure, request_id, ApiError, AppState, Code, MAX_URI_BYTES};
use crate::startup::{
    CLIENT_DISCONNECT_TIMEOUT, CLIENT_REQUEST_TIMEOUT, KEEP_ALIVE, MAX_CONNECTIONS_PER_WORKER, SHUTDOWN_TIMEOUT,
};

/// Serve the API on `listener` with `workers` threads (0: one per core).
pub fn serve(listener: std::net::TcpListener, state: web::Data<AppState>, workers: usize) -> io::Result<Server> {
    let stopping = state.shutdown.clone();
    let feeds = state.subscribers.limit();
    serve_routes(listener, workers, feeds, stopping, move |cfg| {
        cfg.app_data(state.clone());
        configure(cfg);
    })
}

/// Serve `routes` on `listener` behind this edge and [`request_id`]: the API,
/// and `sitrep witness`, whose refusals follow the same rules. Idle
/// connections close once `stopping` turns true.
///
/// A live feed holds its connection for as long as it is read, so each worker
/// accepts its share of the `feeds` slots besides the connections it keeps for
/// every other request: were the feed's slots counted in those, a full feed
/// could take every connection, and a reporter's append would wait in the
/// accept backlog, unanswered, for as long as the feed's readers stayed.
pub fn serve_routes<F>(
    listener: std::net::TcpListener,
    workers: usize,
    feeds: usize,
    stopping: watch::Receiver<bool>,
    routes: F,
) -> io::Result<Server>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let local = listener.local_addr()?;
    let workers = if workers > 0 {
        workers
    } else {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    };
    let server = Server::build()
        .workers(workers)
        .max_concurrent_connections(MAX_CONNECTIONS_PER_WORKER + feeds.div_ceil(workers))
        .shutdown_timeout(SHUTDOWN_TIMEOUT.as_secs())
        .disable_signals()
        .listen("sitrep-http", listener, move || {
            let app = App::new()
                .wrap(from_fn(super::caching::http_cache))
                .wrap(from_fn(request_id))
                .configure(routes.clone())
                .into_factory()
                .map_err(|e| e.error_response());
            // Idle keep-alive connections close as soon as shutdown begins,
            // rather than holding the stop for the whole shutdown timeout.
            let stopping = stopping.clone();
            let http = HttpService::build()
                .graceful_shutdown_signal(move || {
                    let mut stopping = stopping.clone();
                    async move {
                        let _ = stopping.wait_for(|stop| *stop).await;
                    }
                })
                .keep_alive(KEEP_ALIVE)
                .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
                .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                // A client that closes its side is gone: its request is dropped then,
                // so a verification or a live feed stops working for nobody.
                .h1_allow_half_closed(false)
                .local_addr(local)
                .h1(map_config(app, |_| AppConfig::default()));
            fn_service(|io: TcpStream| async move {
                let peer = io.peer_addr().ok();
                Ok((Edge::new(io), peer))
            })
            .and_then(http)
        })?
        .run();
    Ok(server)
}

/// Where the reader is in the line it reads: just enough to tell a request
/// line whose target runs past [`MAX_URI_BYTES`].
#[derive(Clone, Copy, PartialEq)]
enum Line {
    /// The first token of a line (a method, or a header name with its colon).
    First {
        colon: bool,
    },
    /// The second token of a line that began with a method: the request target.
    Target(usize),
    Rest,
}

/// A connection whose bare error answers from actix-http are rewritten.
struct Edge {
    io: TcpStream,
    line: Line,
    /// A request target longer than [`MAX_URI_BYTES`] arrived since the last answer began.
    long_target: bool,
    /// A rewritten answer, and how much of it is written.
    pending: Vec<u8>,
    sent: usize,
}

impl Edge {
    fn new(io: TcpStream) -> Edge {
        Edge {
            io,
            line: Line::First { colon: false },
            long_target: false,
            pending: Vec::new(),
            sent: 0,
        }
    }

    fn watch(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.line = match (self.line, b) {
                (_, b'\n') => Line::First { colon: false },
                (Line::First { colon }, b' ') => {
                    if colon {
                        Line::Rest
                    } else {
                        Line::Target(0)
                    }
                }
                (Line::First { .. }, b':') => Line::First { colon: true },
                (Line::Target(_), b' ' | b'\r') => Line::Rest,
                (Line::Target(n), _) => {
                    if n + 1 > MAX_URI_BYTES {
                        self.long_target = true;
                    }
                    Line::Target(n + 1)
                }
                (other, _) => other,
            };
        }
    }

    fn flush_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

/// A bare error answer of actix-http at the start of `buf`: its head length
/// and status. The API's own 4xx and 5xx answers always have a content type.
fn bare_error(buf: &[u8]) -> Option<(usize, u16)> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let status: u16 = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    if !(400..500).contains(&status) {
        return None;
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?.to_ascii_lowercase();
    (head.contains("\r\ncontent-length: 0\r\n") && !head.contains("\r\ncontent-type:")).then_some((end, status))
}

/// The problem+json answer for actix-http's bare `status`; `None` leaves it be.
fn rewrite(status: u16, long_target: bool) -> Option<Vec<u8>> {
    let err = match status {
        400 | 431 if long_target => ApiError::new(
            Code::UriTooLong,
            format!("the request URI is longer than {MAX_URI_BYTES} bytes"),
        ),
        400 => ApiError::new(Code::MalformedRequest, "the request is not well-formed HTTP/1.1"),
        431 => ApiError::new(Code::HeaderTooLarge, "the request head is too large"),
        408 => ApiError::new(Code::RequestTimeout, "the request head did not arrive in time"),
        _ => return None,
    };
    let status = err.status_code();
    crate::metrics::HTTP_RESPONSES
        .with_label_values(&["unmatched", "other", status.as_str()])
        .inc();
    let body = err.problem_json();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n{}: {}\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        super::REQUEST_ID,
        uuid::Uuid::now_v7(),
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

impl AsyncRead for Edge {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.watch(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Edge {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.flush_pending(cx))?;
        if let Some((head, status)) = bare_error(buf) {
            if let Some(answer) = rewrite(status, this.long_target) {
                this.pending = answer;
                // The rewritten answer is ours now; a flush finishes it.
                if let Poll::Ready(Err(e)) = this.flush_pending(cx) {
                    return Poll::Ready(Err(e));
                }
                return Poll::Ready(Ok(head));
            }
        }
        if buf.starts_with(b"HTTP/1.") {
            // An answer begins: the request it answers has been read.
            this.long_target = false;
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.flush_pending(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.flush_pending(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_client_errors_are_rewritten() {
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: x\r\n\r\n";
        assert_eq!(bare_error(bare), Some((bare.len(), 400)));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ncontent-type: application/problem+json\r\n\r\n";
        assert_eq!(bare_error(ours), None);
        assert_eq!(bare_error(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(
            bare_error(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"),
            None
        );
    }
}
