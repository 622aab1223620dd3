//! The spec and the server agree: `api-spec/openapi.yaml` documents exactly the
//! routes the server serves, every real response (successes and every kind of
//! error) validates against the schema the spec gives for its operation, status
//! and content type, and every example in the spec validates against its schema.
//! The live feed (`text/event-stream`) is read only up to its first event, and
//! every read is bounded by a timeout, so no request can hang the test.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use sitrep::startup::{Application, Settings};

use crate::helpers::spawn_demo_app;

// ---------------------------------------------------------------------------
// The spec document
// ---------------------------------------------------------------------------

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The spec as JSON (YAML parsed once).
fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/api-spec/openapi.yaml");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"));
        serde_json::to_value(yaml).expect("the spec converts to JSON")
    })
}

/// Escape one JSON-pointer token (RFC 6901).
fn esc(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The value at a `#/...` pointer of the spec.
fn at(pointer: &str) -> &'static Value {
    let p = pointer.strip_prefix('#').unwrap_or(pointer);
    spec()
        .pointer(p)
        .unwrap_or_else(|| panic!("spec has nothing at {pointer}"))
}

/// Follow `$ref`s (local only) from `pointer`; returns the final pointer.
fn deref(mut pointer: String) -> String {
    for _ in 0..16 {
        match at(&pointer).get("$ref").and_then(Value::as_str) {
            Some(r) => {
                assert!(r.starts_with("#/"), "non-local $ref {r} at {pointer}");
                pointer = r.to_owned();
            }
            None => return pointer,
        }
    }
    panic!("$ref loop at {pointer}");
}

/// Every (METHOD, path template) the spec documents.
fn spec_operations() -> BTreeSet<(String, String)> {
    let paths = spec()["paths"].as_object().expect("spec has `paths`");
    let mut ops = BTreeSet::new();
    for (path, item) in paths {
        let item = item
            .as_object()
            .unwrap_or_else(|| panic!("path item {path} is not an object"));
        for key in item.keys() {
            if METHODS.contains(&key.as_str()) {
                ops.insert((key.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// A `#/...` JSON pointer as a URI reference: percent-encode what a URI
/// fragment cannot hold (`{id}` in path templates, mostly).
fn uri_fragment(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for ch in pointer.chars() {
        if ch.is_ascii_alphanumeric() || "#/~-._!$&'()*+,;=:@?".contains(ch) {
            out.push(ch);
        } else {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// A compiled validator for the schema at `pointer`: the whole spec as the root
/// document (so `#/components/...` refs resolve) with a root `$ref` to it.
fn validator(pointer: &str) -> &'static jsonschema::Validator {
    static CACHE: OnceLock<Mutex<HashMap<String, &'static jsonschema::Validator>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap().get(pointer) {
        return v;
    }
    at(pointer); // the pointer must exist
    let mut root = spec().clone();
    root.as_object_mut()
        .expect("spec is an object")
        .insert("$ref".into(), json!(uri_fragment(pointer)));
    let v = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("schema at {pointer} does not compile: {e}"));
    let v: &'static jsonschema::Validator = Box::leak(Box::new(v));
    cache.lock().unwrap().insert(pointer.to_owned(), v);
    v
}

/// Validation errors of `instance` against the schema at `pointer`, one line each.
fn errors_against(pointer: &str, instance: &Value) -> Vec<String> {
    validator(pointer)
        .iter_errors(instance)
        .map(|e| format!("at '{}' (schema {}): {e}", e.instance_path(), e.schema_path()))
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Paths equal routes
// ---------------------------------------------------------------------------

#[test]
fn spec_paths_equal_server_routes() {
    let documented = spec_operations();
    let served: BTreeSet<(String, String)> = sitrep::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        served.len(),
        sitrep::api::ROUTES.len(),
        "ROUTES lists a (method, path) twice: {:?}",
        sitrep::api::ROUTES
    );
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "api-spec/openapi.yaml and sitrep::api::ROUTES disagree.\n\
         served but not in the spec: {undocumented:?}\n\
         in the spec but not served: {unserved:?}"
    );
}

// ---------------------------------------------------------------------------
// 2. Real responses validate against the spec
// ---------------------------------------------------------------------------

/// Longest wait for any answer (headers, a body, the next chunk of a stream).
const WAIT: Duration = Duration::from_secs(30);

/// One server-sent-events message (comments left out), as read off the wire.
struct SseMessage {
    id: Option<String>,
    data: Option<String>,
    /// Fields other than `id` and `data` (`event`, `retry`, unknown ones).
    other: Vec<String>,
    /// Byte offset just past the blank line that ends the message.
    end: usize,
}

/// The complete messages of an event stream (each ended by a blank line; a
/// trailing partial block is ignored), comment-only blocks skipped. Expects
/// `\n` line ends (normalise `\r\n` first).
fn sse_messages(text: &str) -> Vec<SseMessage> {
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(len) = text[start..].find("\n\n") {
        let end = start + len + 2;
        let mut m = SseMessage {
            id: None,
            data: None,
            other: Vec::new(),
            end,
        };
        for line in text[start..start + len].split('\n') {
            if line.is_empty() || line.starts_with(':') {
                continue; // a comment (`: keep-alive`)
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => m.id = Some(value.to_owned()),
                "data" => match &mut m.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => m.data = Some(value.to_owned()),
                },
                other => m.other.push(other.to_owned()),
            }
        }
        if m.id.is_some() || m.data.is_some() || !m.other.is_empty() {
            out.push(m);
        }
        start = end;
    }
    out
}

/// One request and its answer.
struct Exchange {
    method: Method,
    path: String,
    status: u16,
    content_type: Option<String>,
    request_id: Option<String>,
    allow: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Exchange {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn describe(&self) -> String {
        let mut body = self.body.clone();
        if body.len() > 3000 {
            body.truncate(3000);
            body.push_str("...");
        }
        format!(
            "{} {} -> {} ({})\n  body: {body}",
            self.method,
            self.path,
            self.status,
            self.content_type.as_deref().unwrap_or("no content-type")
        )
    }
}

/// The route template of a concrete request path, if any route matches.
fn template_of(path: &str) -> Option<&'static str> {
    let segs: Vec<&str> = path.split('/').collect();
    let matches = |t: &str| {
        let ts: Vec<&str> = t.split('/').collect();
        ts.len() == segs.len()
            && ts
                .iter()
                .zip(&segs)
                .all(|(t, s)| (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s)
    };
    // Literal templates win over templated ones (as in the router).
    let mut candidates: Vec<&'static str> = sitrep::api::ROUTES
        .iter()
        .map(|(_, p)| *p)
        .filter(|p| matches(p))
        .collect();
    candidates.sort_by_key(|p| p.matches('{').count());
    candidates.first().copied()
}

/// Checks every exchange against the spec, collecting failures.
struct Checker {
    /// The server under test, `http://127.0.0.1:<port>`; several servers are
    /// checked in turn (open, and with tokens).
    base: String,
    client: reqwest::Client,
    /// The `Authorization` header sent with every request, if any.
    auth: Option<String>,
    /// The `If-None-Match` header sent with every request, if any.
    if_none_match: Option<String>,
    /// The `Accept` header sent with the next requests, if any.
    accept: Option<String>,
    failures: Vec<String>,
    /// (METHOD template, status) pairs seen, for the coverage summary.
    seen: BTreeSet<(String, String, u16)>,
    /// The headers of the last exchange judged.
    last_headers: reqwest::header::HeaderMap,
    count: usize,
}

impl Checker {
    fn new(base: &str) -> Checker {
        Checker {
            base: base.to_owned(),
            client: reqwest::Client::new(),
            auth: None,
            if_none_match: None,
            accept: None,
            failures: Vec::new(),
            seen: BTreeSet::new(),
            last_headers: Default::default(),
            count: 0,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The last judged exchange's header `name`.
    fn last_header(&self, name: &str) -> Option<String> {
        self.last_headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("<non-ascii>").to_owned())
    }

    async fn send(&self, method: Method, path: &str, body: Option<(&str, Vec<u8>)>) -> Exchange {
        let mut req = self.client.request(method.clone(), self.url(path));
        if let Some(auth) = &self.auth {
            req = req.header("authorization", auth);
        }
        if let Some(tag) = &self.if_none_match {
            req = req.header("if-none-match", tag);
        }
        if let Some(accept) = &self.accept {
            req = req.header("accept", accept);
        }
        if let Some((ct, bytes)) = body {
            req = req.header("content-type", ct).body(bytes);
        }
        let res = tokio::time::timeout(WAIT, req.send())
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no answer within {WAIT:?}"))
            .unwrap_or_else(|e| panic!("{method} {path}: request failed: {e}"));
        let header = |name: &str| {
            res.headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or("<non-ascii>").to_owned())
        };
        let status = res.status().as_u16();
        let content_type = header("content-type");
        let request_id = header("x-request-id");
        let allow = header("allow");
        let headers = res.headers().clone();
        let body = tokio::time::timeout(WAIT, res.text())
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: the body did not end within {WAIT:?}"))
            .unwrap_or_default();
        Exchange {
            method,
            path: path.to_owned(),
            status,
            content_type,
            request_id,
            allow,
            headers,
            body,
        }
    }

    /// Send, check against the spec and the expected status; returns the body.
    async fn expect(&mut self, method: Method, path: &str, body: Option<(&str, Vec<u8>)>, status: u16) -> Value {
        let ex = self.send(method, path, body).await;
        self.judge(&ex, status);
        ex.json()
    }

    /// Check one exchange against the expected status and the spec.
    fn judge(&mut self, ex: &Exchange, status: u16) {
        if ex.status != status {
            self.failures.push(format!(
                "expected status {status}, got {}\n  {}",
                ex.status,
                ex.describe()
            ));
        }
        let errs = self.check(ex);
        if !errs.is_empty() {
            self.failures
                .push(format!("{}\n  - {}", ex.describe(), errs.join("\n  - ")));
        }
        self.last_headers = ex.headers.clone();
        self.count += 1;
    }

    /// Open `GET path` on the live feed: the response once its headers are in.
    async fn stream_open(&mut self, path: &str, last_event_id: Option<&str>) -> Option<reqwest::Response> {
        let mut req = self.client.get(self.url(path)).header("accept", "text/event-stream");
        if let Some(auth) = &self.auth {
            req = req.header("authorization", auth);
        }
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        match tokio::time::timeout(WAIT, req.send()).await {
            Ok(Ok(res)) => Some(res),
            Ok(Err(e)) => {
                self.failures.push(format!("GET {path}: request failed: {e}"));
                None
            }
            Err(_) => {
                self.failures
                    .push(format!("GET {path}: no response headers within {WAIT:?}"));
                None
            }
        }
    }

    /// Read an opened feed up to the end of its first event (never to the end:
    /// a 200 stream does not end), or a non-200 answer to its end; check that
    /// against the spec, then drop the connection. Returns the first event's
    /// `id` and `data` when there is one.
    async fn stream_read(&mut self, path: &str, mut res: reqwest::Response, status: u16) -> Option<(u64, Value)> {
        let header = |name: &str| {
            res.headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or("<non-ascii>").to_owned())
        };
        let code = res.status().as_u16();
        let content_type = header("content-type");
        let request_id = header("x-request-id");
        let allow = header("allow");
        let headers = res.headers().clone();
        let mut first = None;
        let body = if code == 200 {
            if !content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("text/event-stream"))
            {
                self.failures.push(format!(
                    "GET {path}: a 200 from the feed is not text/event-stream: {content_type:?}"
                ));
            }
            let deadline = tokio::time::Instant::now() + WAIT;
            let mut raw: Vec<u8> = Vec::new();
            let body = loop {
                let text = String::from_utf8_lossy(&raw).replace("\r\n", "\n");
                if let Some(m) = sse_messages(&text).into_iter().next() {
                    let id = m.id.as_deref().and_then(|i| i.parse::<u64>().ok());
                    let data = m.data.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok());
                    if let (Some(id), Some(data)) = (id, data) {
                        first = Some((id, data));
                    }
                    break text[..m.end].to_owned();
                }
                match tokio::time::timeout_at(deadline, res.chunk()).await {
                    Ok(Ok(Some(chunk))) => raw.extend_from_slice(&chunk),
                    Ok(Ok(None)) => {
                        self.failures
                            .push(format!("GET {path}: the stream ended before its first event: {text:?}"));
                        break text;
                    }
                    Ok(Err(e)) => {
                        self.failures
                            .push(format!("GET {path}: reading the stream failed: {e}"));
                        break text;
                    }
                    Err(_) => {
                        self.failures
                            .push(format!("GET {path}: no complete event within {WAIT:?}: {text:?}"));
                        break text;
                    }
                }
            };
            drop(res); // closes the connection: the feed never ends on its own
            body
        } else {
            match tokio::time::timeout(WAIT, res.text()).await {
                Ok(body) => body.unwrap_or_default(),
                Err(_) => {
                    self.failures
                        .push(format!("GET {path}: a {code} body did not end within {WAIT:?}"));
                    String::new()
                }
            }
        };
        let ex = Exchange {
            method: Method::GET,
            path: path.to_owned(),
            status: code,
            content_type,
            request_id,
            allow,
            headers,
            body,
        };
        self.judge(&ex, status);
        first
    }

    /// `stream_open` then `stream_read`.
    async fn stream(&mut self, path: &str, last_event_id: Option<&str>, status: u16) -> Option<(u64, Value)> {
        let res = self.stream_open(path, last_event_id).await?;
        self.stream_read(path, res, status).await
    }

    async fn get(&mut self, path: &str, status: u16) -> Value {
        self.expect(Method::GET, path, None, status).await
    }

    /// `GET path` sending `Accept: accept`.
    async fn get_accepting(&mut self, path: &str, accept: &str, status: u16) -> Value {
        self.accept = Some(accept.to_owned());
        let body = self.get(path, status).await;
        self.accept = None;
        body
    }

    async fn post(&mut self, body: &Value, status: u16) -> Value {
        self.post_raw("/v1/events", "application/json", body.to_string().into_bytes(), status)
            .await
    }

    async fn post_raw(&mut self, path: &str, ct: &str, bytes: Vec<u8>, status: u16) -> Value {
        self.expect(Method::POST, path, Some((ct, bytes)), status).await
    }

    /// A body posted expecting success must itself satisfy the request schema.
    fn request_is_valid(&mut self, body: &Value) {
        let pointer = format!(
            "#/paths/{}/post/requestBody/content/application~1json/schema",
            esc("/v1/events")
        );
        let errs = errors_against(&pointer, body);
        if !errs.is_empty() {
            self.failures.push(format!(
                "a body the server accepts does not validate against the request schema\n  body: {body}\n  - {}",
                errs.join("\n  - ")
            ));
        }
    }

    /// Everything the spec says about this exchange; returns the problems found.
    fn check(&mut self, ex: &Exchange) -> Vec<String> {
        let mut errs = Vec::new();
        match &ex.request_id {
            Some(id) if !id.is_empty() => {}
            _ => errs.push("no x-request-id header".to_owned()),
        }
        let path_only = ex.path.split('?').next().unwrap_or(&ex.path);
        let template = template_of(path_only);
        let method = ex.method.as_str().to_lowercase();

        // Find the response object for (method, template, status).
        let response_pointer: String = match template {
            None => {
                // No route: the spec says any other path answers 404 not_found,
                // unless the token check (before routing) refused it first.
                match ex.status {
                    404 => "#/components/responses/NotFound".to_owned(),
                    401 | 403 | 429 => before_routing(ex.status).to_owned(),
                    _ => {
                        errs.push(format!(
                            "a path without a route answered {}, not 404 (nor 401, 403, 429)",
                            ex.status
                        ));
                        return errs;
                    }
                }
            }
            Some(t) => {
                self.seen.insert((ex.method.to_string(), t.to_owned(), ex.status));
                let op_pointer = format!("#/paths/{}/{}", esc(t), method);
                if spec().pointer(&op_pointer[1..]).is_none() && matches!(ex.status, 401 | 403 | 429) {
                    // Refused by the token check, which runs before routing.
                    before_routing(ex.status).to_owned()
                } else if spec().pointer(&op_pointer[1..]).is_none() {
                    // A known path with an undocumented method: 405 from components.
                    if ex.status != 405 {
                        errs.push(format!(
                            "{} is not documented on {t}, yet the server answered {} (not 405)",
                            ex.method, ex.status
                        ));
                        return errs;
                    }
                    let documented: BTreeSet<String> = spec()["paths"][t]
                        .as_object()
                        .map(|o| {
                            o.keys()
                                .filter(|k| METHODS.contains(&k.as_str()))
                                .map(|k| k.to_uppercase())
                                .collect()
                        })
                        .unwrap_or_default();
                    let allowed: BTreeSet<String> = ex
                        .allow
                        .as_deref()
                        .unwrap_or("")
                        .split(',')
                        .map(|m| m.trim().to_owned())
                        .filter(|m| !m.is_empty())
                        .collect();
                    if allowed != documented {
                        errs.push(format!(
                            "Allow header {:?} differs from the methods documented on {t}: {documented:?}",
                            ex.allow
                        ));
                    }
                    "#/components/responses/MethodNotAllowed".to_owned()
                } else {
                    let responses = &at(&op_pointer)["responses"];
                    let key = ex.status.to_string();
                    if responses.get(&key).is_some() {
                        format!("{op_pointer}/responses/{key}")
                    } else if responses.get("default").is_some() {
                        format!("{op_pointer}/responses/default")
                    } else {
                        let documented: Vec<&String> =
                            responses.as_object().map(|o| o.keys().collect()).unwrap_or_default();
                        errs.push(format!(
                            "status {} is not documented for {} {t} (documented: {documented:?})",
                            ex.status, ex.method
                        ));
                        return errs;
                    }
                }
            }
        };
        let response_pointer = deref(response_pointer);
        let response = at(&response_pointer);

        // Every header the response object documents as required is present,
        // and every documented header present satisfies its schema.
        if let Some(headers) = response.get("headers").and_then(Value::as_object) {
            for name in headers.keys() {
                let h_pointer = deref(format!("{response_pointer}/headers/{}", esc(name)));
                let h = at(&h_pointer);
                let Some(value) = ex.headers.get(name.as_str()) else {
                    if h["required"] == json!(true) {
                        errs.push(format!("documented required header {name} is missing"));
                    }
                    continue;
                };
                if h.get("schema").is_none() {
                    continue;
                }
                let text = value.to_str().unwrap_or("<non-ascii>").to_owned();
                let instance = if h["schema"]["type"] == json!("integer") {
                    text.parse::<i64>().map(Value::from).unwrap_or(Value::String(text))
                } else {
                    Value::String(text)
                };
                for e in errors_against(&format!("{h_pointer}/schema"), &instance) {
                    errs.push(format!("header {name}: {instance} {e}"));
                }
            }
        }

        // The body against the schema for the content type.
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            if !ex.body.is_empty() {
                errs.push(format!("{response_pointer} documents no content, yet there is a body"));
            }
            return errs;
        };
        let media = ex
            .content_type
            .as_deref()
            .and_then(|c| c.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !content.contains_key(&media) {
            errs.push(format!(
                "content type {media:?} is not documented at {response_pointer} (documented: {:?})",
                content.keys().collect::<Vec<_>>()
            ));
            return errs;
        }
        if media == "text/event-stream" {
            // Each message: `id` a seq, `data` one JSON document that validates
            // against the schema the spec names in `x-sse-data-schema`.
            let data_pointer = format!("{response_pointer}/content/{}/x-sse-data-schema", esc(&media));
            if spec().pointer(&data_pointer[1..]).is_none() {
                errs.push(format!(
                    "{response_pointer} documents text/event-stream without x-sse-data-schema"
                ));
                return errs;
            }
            let messages = sse_messages(&ex.body);
            if messages.is_empty() {
                errs.push("the stream carried no complete event".to_owned());
            }
            for m in &messages {
                if !m.other.is_empty() {
                    errs.push(format!("undocumented event-stream fields {:?}", m.other));
                }
                let id = m.id.as_deref().and_then(|i| i.parse::<u64>().ok()).filter(|&i| i >= 1);
                if id.is_none() {
                    errs.push(format!("an event whose id is not a seq: {:?}", m.id));
                }
                let Some(data) = m.data.as_deref() else {
                    errs.push("an event without data".to_owned());
                    continue;
                };
                match serde_json::from_str::<Value>(data) {
                    Err(e) => errs.push(format!("event data is not JSON: {e}")),
                    Ok(v) => {
                        errs.extend(errors_against(&data_pointer, &v));
                        // A CloudEvent carries the stored event as its `data`.
                        let seq = if v.get("specversion").is_some() {
                            &v["data"]["seq"]
                        } else {
                            &v["seq"]
                        };
                        if let Some(id) = id {
                            if *seq != json!(id) {
                                errs.push(format!("event id {id} differs from its data's seq {seq}"));
                            }
                        }
                    }
                }
            }
            return errs;
        }
        let schema_pointer = format!("{response_pointer}/content/{}/schema", esc(&media));
        if media == "text/csv" {
            // RFC 4180 with CRLF line ends; a header row of the documented
            // `x-csv-columns`, and every row as wide.
            errs.extend(errors_against(&schema_pointer, &Value::String(ex.body.clone())));
            let columns = &at(&format!("{response_pointer}/content/{}", esc(&media)))["x-csv-columns"];
            if !ex.body.is_empty() && !ex.body.ends_with("\r\n") {
                errs.push("a CSV body that does not end in CRLF".to_owned());
            }
            let mut reader = csv::Reader::from_reader(ex.body.as_bytes());
            match reader.headers() {
                Ok(h) if json!(h.iter().collect::<Vec<_>>()) == *columns => {}
                other => errs.push(format!("CSV header {other:?} is not x-csv-columns {columns}")),
            }
            for (i, row) in reader.records().enumerate() {
                match row {
                    Ok(r) if Some(r.len()) == columns.as_array().map(Vec::len) => {}
                    other => errs.push(format!("CSV row {}: {other:?}", i + 1)),
                }
            }
            return errs;
        }
        if media == "text/plain" {
            // A text body: a string against the schema; the metrics in the
            // Prometheus text format, each one the spec names and no other.
            errs.extend(errors_against(&schema_pointer, &Value::String(ex.body.clone())));
            if template == Some("/metrics") && ex.status == 200 {
                let ct = ex.content_type.as_deref().unwrap_or("").replace(' ', "");
                if !ct.contains(";version=0.0.4") {
                    errs.push(format!("metrics content type {ct:?} lacks version=0.0.4"));
                }
                errs.extend(prometheus_errors(&ex.body, true));
            }
            return errs;
        }
        let instance: Value = match serde_json::from_str(&ex.body) {
            Ok(v) => v,
            Err(e) => {
                errs.push(format!("the body is not JSON: {e}"));
                return errs;
            }
        };
        errs.extend(errors_against(&schema_pointer, &instance));

        // Problems: `status` matches the HTTP status, `type` names the code.
        if media == "application/problem+json" {
            if instance["status"] != json!(ex.status) {
                errs.push(format!(
                    "problem status {} differs from HTTP {}",
                    instance["status"], ex.status
                ));
            }
            if let Some(code) = instance["code"].as_str() {
                if instance["type"] != json!(format!("urn:sitrep:problem:{code}")) {
                    errs.push(format!("problem type {} does not name code {code}", instance["type"]));
                }
            }
        }
        errs
    }
}

/// The component response for a refusal by the token check, which runs before
/// routing (so it can answer on any path).
fn before_routing(status: u16) -> &'static str {
    match status {
        401 => "#/components/responses/Unauthorized",
        403 => "#/components/responses/Forbidden",
        _ => "#/components/responses/RateLimited",
    }
}

/// The metric names `GET /metrics` documents: each backticked `sitrep_...` in
/// its description, labels left off, with whether it has labels (a labelled
/// family is served once it has a first sample).
fn documented_metrics() -> BTreeMap<String, bool> {
    let doc = spec()["paths"]["/metrics"]["get"]["description"]
        .as_str()
        .expect("GET /metrics has a description");
    doc.split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| t.starts_with("sitrep_"))
        .map(|t| (t.split('{').next().unwrap_or(t).to_owned(), t.contains('{')))
        .collect()
}

/// Problems with a Prometheus text format (0.0.4) body: every sample line is
/// `name{labels} value` of a family declared by a `# TYPE` line. With
/// `complete`, the `sitrep_` families are exactly those the spec documents.
fn prometheus_errors(body: &str, complete: bool) -> Vec<String> {
    let mut errs = Vec::new();
    let mut typed = BTreeSet::new();
    let is_name = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for line in body.lines() {
        if line.is_empty() || line.starts_with("# HELP ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            match rest.split(' ').collect::<Vec<_>>()[..] {
                [name, "counter" | "gauge" | "histogram" | "summary" | "untyped"] if is_name(name) => {
                    typed.insert(name.to_owned());
                }
                _ => errs.push(format!("a bad TYPE line: {line:?}")),
            }
            continue;
        }
        if line.starts_with('#') {
            continue; // a comment
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            errs.push(format!("a sample without a value: {line:?}"));
            continue;
        };
        if value.parse::<f64>().is_err() {
            errs.push(format!("a sample whose value is not a number: {line:?}"));
        }
        let name = series.split('{').next().unwrap_or(series);
        if !is_name(name) || (series.contains('{') && !series.ends_with('}')) {
            errs.push(format!("a sample with a bad name or labels: {line:?}"));
            continue;
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        if !typed.contains(family) {
            errs.push(format!("a sample of a family without a TYPE line: {line:?}"));
        }
    }
    if complete {
        let served: BTreeSet<String> = typed.into_iter().filter(|n| n.starts_with("sitrep_")).collect();
        let documented = documented_metrics();
        let missing: Vec<_> = documented
            .iter()
            .filter(|(name, labelled)| !**labelled && !served.contains(*name))
            .map(|(name, _)| name)
            .collect();
        let undocumented: Vec<_> = served.iter().filter(|n| !documented.contains_key(*n)).collect();
        if !missing.is_empty() {
            errs.push(format!("metrics the spec documents are not served: {missing:?}"));
        }
        if !undocumented.is_empty() {
            errs.push(format!(
                "metrics served but not documented in the spec: {undocumented:?}"
            ));
        }
    }
    errs
}

const EVENTS: &str = "/v1/events";

fn src() -> Value {
    json!({"name": "Reuters", "kind": "news_agency", "reliability": "A", "credibility": 2})
}

#[tokio::test]
async fn responses_validate_against_the_spec() {
    // Without tokens the server runs open (on loopback): no request needs a
    // token. The statuses only tokens bring (401, 403, 429) are exercised on
    // servers with tokens at the end.
    let app = spawn_demo_app().await;
    let mut c = Checker::new(&app.address);

    // --- reads on the demo --------------------------------------------------
    c.get("/healthz", 200).await;
    c.get("/readyz", 200).await;
    c.get("/metrics", 200).await;
    let head = c.get("/v1/audit/head", 200).await;
    let head_seq = head["seq"].as_u64().expect("head seq");
    assert!(head_seq > 10, "the demo is loaded: {head}");
    c.get("/v1/audit/verify", 200).await;

    let page = c.get(EVENTS, 200).await;
    let first_id = page["events"][0]["id"].as_str().expect("an event id").to_owned();
    c.get("/v1/events?limit=5", 200).await;
    c.get("/v1/events?after=10&limit=3", 200).await;
    c.get(&format!("/v1/events?after={head_seq}"), 200).await;
    c.get(&format!("/v1/events?after={}", head_seq + 100), 200).await;
    c.get("/v1/events?limit=1000", 200).await;
    c.get("/v1/events?type=control_established", 200).await;
    c.get("/v1/events?type=control_established&limit=2", 200).await;
    c.get("/v1/events?location=aleppo", 200).await;
    c.get("/v1/events?location=aleppo&limit=1", 200).await;
    c.get("/v1/events?actor=hts", 200).await;
    c.get("/v1/events?actor=hts&location=aleppo&type=forces_entered", 200)
        .await;
    c.get("/v1/events?location=nowhere", 200).await;
    for query in [
        "",
        "?limit=3",
        "?after=10&limit=5",
        "?type=control_established",
        "?location=aleppo&actor=hts",
        "?location=nowhere",
        &format!("?after={head_seq}"),
    ] {
        c.get(&format!("/v1/events.csv{query}"), 200).await;
    }
    c.accept = Some("application/cloudevents-batch+json".into());
    for query in [
        "?limit=5",
        "?location=aleppo&limit=2",
        &format!("?after={head_seq}"),
        "?limit=1000",
    ] {
        c.get(&format!("/v1/events{query}"), 200).await;
    }
    c.get("/v1/events?limit=0", 400).await;
    c.accept = Some("application/json;q=0.5, application/cloudevents-batch+json".into());
    c.get("/v1/events?limit=2", 200).await;
    c.accept = None;
    c.get(&format!("/v1/events/{first_id}"), 200).await;
    c.get(&format!("/v1/events/{}", first_id.to_uppercase()), 200).await;

    let as_of = "as_of=2024-11-29T12:00:00Z";
    for base in ["/v1/locations", "/v1/actors"] {
        c.get(base, 200).await;
        c.get(&format!("{base}?{as_of}"), 200).await;
        c.get(&format!("{base}?as_of=2024-11-29T12:00:00%2B03:00"), 200).await;
        c.get(&format!("{base}?as_of=2000-01-01T00:00:00Z"), 200).await;
        c.get(&format!("{base}?at_seq=0"), 200).await;
        c.get(&format!("{base}?at_seq=8"), 200).await;
        c.get(&format!("{base}?at_seq={head_seq}&{as_of}"), 200).await;
    }
    for filter in [
        "kind=city",
        "kind=district",
        "parent=aleppo",
        "controller=hts",
        "controller=saa",
        "status=contested",
        "status=controlled",
        "status=unknown",
        "parent=aleppo&status=controlled&at_seq=20",
    ] {
        c.get(&format!("/v1/locations?{filter}"), 200).await;
    }
    for id in [
        "aleppo",
        "aleppo-governorate",
        "northwest-syria",
        "aleppo-international-airport",
        "abu-al-duhur-airbase",
        "aleppo-south",
    ] {
        c.get(&format!("/v1/locations/{id}"), 200).await;
        c.get(&format!("/v1/locations/{id}?{as_of}"), 200).await;
        c.get(&format!("/v1/locations/{id}?at_seq={head_seq}"), 200).await;
        c.get(&format!("/v1/locations/{id}/events"), 200).await;
        c.get(&format!("/v1/locations/{id}/events?order=occurred"), 200).await;
        c.get(&format!("/v1/locations/{id}/events?order=recorded"), 200).await;
    }
    c.get("/v1/locations/aleppo?at_seq=20&as_of=2024-11-28T00:00:00Z", 200)
        .await;

    // The other formats of the location list, by path and by Accept; and an
    // Accept no read can answer, on every read.
    for path in ["/v1/locations.geojson", "/v1/locations.csv"] {
        c.get(path, 200).await;
        c.get(&format!("{path}?{as_of}&kind=city&status=controlled"), 200).await;
        c.get(&format!("{path}?at_seq=8&parent=aleppo&controller=hts&q=aleppo"), 200)
            .await;
        c.get(&format!("{path}?status=lost"), 400).await;
        c.get(&format!("{path}?format=json"), 400).await;
        c.get_accepting(path, "text/html", 406).await;
    }
    c.get_accepting("/v1/locations.geojson", "text/plain, application/json", 200)
        .await;
    c.get_accepting("/v1/locations.csv", "application/json", 406).await;
    c.get_accepting("/v1/locations", "application/geo+json", 200).await;
    c.get_accepting(
        "/v1/locations?status=contested",
        "application/json;q=0.5, application/geo+json",
        200,
    )
    .await;
    c.get_accepting("/v1/locations.geojson", "application/*", 200).await;
    c.get_accepting("/v1/locations.csv", "text/*", 200).await;
    c.get_accepting("/v1/events.csv?limit=2", "text/csv", 200).await;
    c.get_accepting("/v1/events.csv?limit=2", "application/json", 406).await;
    for path in [
        EVENTS.to_owned(),
        format!("/v1/events/{first_id}"),
        "/v1/locations".to_owned(),
        "/v1/locations/aleppo".to_owned(),
        "/v1/locations/aleppo/events".to_owned(),
        "/v1/actors".to_owned(),
        "/v1/actors/hts".to_owned(),
        "/v1/audit/head".to_owned(),
        "/v1/audit/verify".to_owned(),
        "/v1/audit/proof/inclusion?seq=1".to_owned(),
        "/v1/audit/proof/consistency?first=1".to_owned(),
    ] {
        c.get_accepting(&path, "text/html", 406).await;
        c.get_accepting(&path, "*/*;q=0.1, application/json", 200).await;
    }
    for id in ["hts", "saa", "russia", "syria-gov"] {
        c.get(&format!("/v1/actors/{id}"), 200).await;
        c.get(&format!("/v1/actors/{id}?{as_of}"), 200).await;
        c.get(&format!("/v1/actors/{id}?at_seq=4"), 200).await;
    }

    // --- proofs ---------------------------------------------------------------
    let head_root = head["root"].clone();
    let incl = c.get("/v1/audit/proof/inclusion?seq=3", 200).await;
    if incl["tree_size"] != json!(head_seq) || incl["leaf_index"] != json!(2) || incl["root"] != head_root {
        c.failures.push(format!(
            "inclusion?seq=3 is not a proof in the head tree ({head_seq}, {head_root}): {incl}"
        ));
    }
    let incl17 = c.get("/v1/audit/proof/inclusion?seq=5&tree_size=17", 200).await;
    c.get("/v1/audit/proof/inclusion?seq=1&tree_size=1", 200).await;
    c.get("/v1/audit/proof/inclusion?seq=1&tree_size=2", 200).await;
    c.get("/v1/audit/proof/inclusion?seq=17&tree_size=17", 200).await;
    c.get(&format!("/v1/audit/proof/inclusion?seq={head_seq}"), 200).await;
    c.get(&format!("/v1/audit/proof/inclusion?tree_size={head_seq}&seq=1"), 200)
        .await;
    let cons = c.get("/v1/audit/proof/consistency?first=8&second=17", 200).await;
    if cons["second_root"] != incl17["root"] {
        c.failures.push(format!(
            "the tree of 17 has two roots: consistency {cons} vs inclusion {incl17}"
        ));
    }
    let to_head = c.get("/v1/audit/proof/consistency?first=17", 200).await;
    if to_head["second"] != json!(head_seq)
        || to_head["second_root"] != head_root
        || to_head["first_root"] != incl17["root"]
    {
        c.failures.push(format!(
            "consistency?first=17 does not end at the head ({head_seq}, {head_root}): {to_head}"
        ));
    }
    c.get("/v1/audit/proof/consistency?first=1", 200).await;
    // No signing key on this server.
    c.get("/v1/audit/checkpoint", 404).await;
    c.get("/v1/audit/checkpoint?size=1", 400).await;
    c.get("/v1/audit/proof/consistency?first=1&second=1", 200).await;
    let same = c
        .get(
            &format!("/v1/audit/proof/consistency?first={head_seq}&second={head_seq}"),
            200,
        )
        .await;
    if same["proof"] != json!([]) || same["first_root"] != head_root {
        c.failures.push(format!("equal sizes need an empty proof: {same}"));
    }

    // --- the live feed: read up to the first event only -----------------------
    let all = c.get("/v1/events?limit=1000", 200).await;
    let nth = |seq: u64| all["events"][seq as usize - 1].clone();
    for (path, last_event_id, want) in [
        ("/v1/events/stream".to_owned(), None, 1),
        ("/v1/events/stream?after=0".to_owned(), None, 1),
        ("/v1/events/stream?after=10".to_owned(), None, 11),
        (format!("/v1/events/stream?after={}", head_seq - 1), None, head_seq),
        // Last-Event-ID wins over `after`.
        ("/v1/events/stream?after=1".to_owned(), Some("5"), 6),
        ("/v1/events/stream".to_owned(), Some("0"), 1),
        ("/v1/events/stream?format=stored".to_owned(), None, 1),
    ] {
        match c.stream(&path, last_event_id, 200).await {
            Some((id, e)) if id == want && e == nth(want) => {}
            other => c.failures.push(format!(
                "GET {path} (Last-Event-ID {last_event_id:?}): the first event should be seq {want} exactly as \
                 GET /v1/events has it, got {other:?}"
            )),
        }
    }
    for filter in ["format=cloudevents", "format=cloudevents&after=10&location=aleppo"] {
        let listed = c
            .get(
                &format!("/v1/events?{}&limit=1", filter.replace("format=cloudevents", "")),
                200,
            )
            .await;
        let path = format!("/v1/events/stream?{filter}");
        match c.stream(&path, None, 200).await {
            Some((id, e)) if json!(id) == listed["events"][0]["seq"] && e["data"] == listed["events"][0] => {}
            other => c.failures.push(format!(
                "GET {path}: the first event should be a CloudEvent of {}, got {other:?}",
                listed["events"][0]
            )),
        }
    }
    for filter in [
        "type=control_established",
        "location=aleppo",
        "actor=hts",
        "actor=hts&location=aleppo&type=forces_entered",
        "after=10&type=control_established",
    ] {
        let listed = c.get(&format!("/v1/events?{filter}&limit=1"), 200).await;
        let path = format!("/v1/events/stream?{filter}");
        match c.stream(&path, None, 200).await {
            Some((id, e)) if json!(id) == listed["events"][0]["seq"] && e == listed["events"][0] => {}
            other => c.failures.push(format!(
                "GET {path}: the first event should be GET /v1/events?{filter}'s first, {}, got {other:?}",
                listed["events"][0]
            )),
        }
    }

    // --- appends ------------------------------------------------------------
    let withdrew = json!({
        "id": "0193a0b2-5f1e-7c3a-9a41-2f1d7e6b8c90",
        "type": "forces_entered",
        "location": "aleppo-south",
        "occurred_at": "2024-11-30T18:00:00+03:00",
        "source": {"name": "Syrian army general command", "kind": "official", "claimant": "saa"},
        "data": {"actor": "hts"}
    });
    c.request_is_valid(&withdrew);
    // Opened at the head: the first event it carries is the live one appended next.
    let live_path = format!("/v1/events/stream?after={head_seq}&location=aleppo-south");
    let live = c.stream_open(&live_path, None).await;
    let receipt = c.post(&withdrew, 201).await;
    if let Some(res) = live {
        match c.stream_read(&live_path, res, 200).await {
            Some((id, e)) if json!(id) == receipt["seq"] && e["hash"] == receipt["hash"] => {}
            other => c.failures.push(format!(
                "GET {live_path}: the live event should be the one just appended ({receipt}), got {other:?}"
            )),
        }
    }
    let stored = c
        .get(&format!("/v1/events/{}", withdrew["id"].as_str().unwrap()), 200)
        .await;
    if stored["recorded_by"] != "anonymous" {
        c.failures.push(format!(
            "an open server records `anonymous`, not {}",
            stored["recorded_by"]
        ));
    }
    let retry = c.post(&withdrew, 200).await;
    if receipt != retry {
        c.failures
            .push(format!("a retry answered another receipt: {receipt} then {retry}"));
    }
    // Retry wins over a stale expected_version.
    let mut stale_retry = withdrew.clone();
    stale_retry["expected_version"] = json!(1);
    c.post(&stale_retry, 200).await;
    // Server-assigned id, a registration without source or occurred_at.
    let reg = json!({"type": "location_registered", "location": "aleppo-citadel",
                     "data": {"name": "Aleppo Citadel", "kind": "other", "parent": "aleppo-central",
                              "lat": 36.1993, "lon": 37.1628}});
    c.request_is_valid(&reg);
    c.post(&reg, 201).await;
    let batch = json!([
        {"id": "0193a0b3-0000-7000-8000-000000000001", "type": "actor_registered", "actor": "sdf",
         "data": {"name": "Syrian Democratic Forces", "kind": "non_state_group", "aliases": ["SDF"]}},
        {"id": "0193a0b3-0000-7000-8000-000000000002", "type": "casualties_reported",
         "location": "aleppo-citadel", "occurred_at": "2024-11-30T00:00:00Z", "source": src(),
         "data": {"actor": "sdf", "killed": 3, "wounded": 7, "approximate": true}},
        {"id": "0193a0b3-0000-7000-8000-000000000003", "type": "facility_reopened",
         "location": "aleppo-international-airport", "occurred_at": "2024-12-02T06:00:00Z",
         "source": {"name": "SANA", "kind": "official", "url": "https://sana.sy/en/"},
         "data": {}},
        {"id": "0193a0b3-0000-7000-8000-000000000004", "type": "event_retracted",
         "location": "aleppo-south", "occurred_at": "2024-12-01T00:00:00Z", "source": src(),
         "data": {"event_id": "0193A0B2-5F1E-7C3A-9A41-2F1D7E6B8C90", "reason": "misattributed"}},
        {"id": "0193a0b3-0000-7000-8000-000000000005", "type": "control_established",
         "location": "aleppo-citadel", "occurred_at": "2024-11-30T20:00:00Z", "source": src(),
         "expected_version": 2, "data": {"actor": "hts"}}
    ]);
    c.request_is_valid(&batch);
    c.post(&batch, 201).await;
    c.post(&batch, 200).await;
    c.get("/v1/events/0193a0b3-0000-7000-8000-000000000004", 200).await;
    c.get("/v1/locations/aleppo-citadel", 200).await;
    c.get("/v1/locations/aleppo-citadel/events?order=occurred", 200).await;
    c.get("/v1/locations/aleppo-south/events", 200).await;
    c.get("/v1/actors/sdf", 200).await;
    c.get("/v1/events?type=event_retracted", 200).await;
    c.get("/v1/audit/head", 200).await;
    c.get("/v1/audit/verify", 200).await;

    // Precision, estimates, names, gazetteer ids, shapes and amendments.
    let precise = json!([
        {"type": "location_registered", "location": "al-hamdaniyah",
         "data": {"name": "Al-Hamdaniyah", "kind": "neighbourhood", "parent": "aleppo-south",
                  "names": {"ar": "الحمدانية", "en": "Al-Hamdaniyah"}, "aliases": ["Hamdaniyeh"],
                  "gazetteer": {"geonames": 170063, "wikidata": "Q41183", "osm": "relation/1", "iso3166_2": "SY-02"},
                  "geometry": {"type": "Polygon", "coordinates": [[[37.10, 36.17], [37.14, 36.17], [37.14, 36.20], [37.10, 36.17]]]}}},
        {"type": "control_established", "location": "al-hamdaniyah", "occurred_at": "2024-11-30T00:00:00Z",
         "occurred_precision": "day", "place_precision": "near", "source": src(), "data": {"actor": "hts"}},
        {"type": "casualties_reported", "location": "al-hamdaniyah", "occurred_at": "2024-11-01T00:00:00Z",
         "occurred_precision": "month", "place_precision": "region", "source": src(),
         "data": {"killed_low": 24, "wounded": 3, "wounded_low": 2, "wounded_high": 5}},
        {"type": "location_amended", "location": "al-hamdaniyah",
         "data": {"parent": "aleppo", "geometry": {"type": "MultiPolygon", "coordinates": [[[[37.10, 36.17], [37.14, 36.17], [37.14, 36.20], [37.10, 36.17]]]]}}},
        {"type": "actor_amended", "actor": "sdf", "occurred_at": "2024-01-01T00:00:00Z", "occurred_precision": "year",
         "data": {"names": {"ar": "قوات سوريا الديمقراطية"}, "gazetteer": {"wikidata": "Q1046397"}, "member_of": "russia"}},
        {"type": "location_amended", "location": "aleppo-citadel", "data": {"geometry": {"type": "Point", "coordinates": [37.1628, 36.1993]}}}
    ]);
    c.request_is_valid(&precise);
    c.post(&precise, 201).await;
    for path in [
        "/v1/locations/al-hamdaniyah",
        "/v1/locations/al-hamdaniyah?as_of=2024-11-30T12:00:00Z",
        "/v1/locations/al-hamdaniyah/events?order=occurred",
        "/v1/locations?q=%D8%AD%D9%84%D8%A8",
        "/v1/locations?q=ALEPPO&kind=neighbourhood",
        "/v1/actors?q=%D9%82%D9%88%D8%A7%D8%AA",
        "/v1/actors/sdf",
    ] {
        c.get(path, 200).await;
    }
    for (bad, why) in [
        (
            json!({"type": "report", "location": "aleppo", "occurred_at": "2024-11-30T10:00:00Z",
                "occurred_precision": "day", "source": src(), "data": {"summary": "s"}}),
            "misaligned",
        ),
        (
            json!({"type": "casualties_reported", "location": "aleppo", "occurred_at": "2024-11-30T10:00:00Z",
                "source": src(), "data": {"killed": 3, "killed_low": 4}}),
            "low > best",
        ),
        (
            json!({"type": "location_amended", "location": "aleppo", "data": {"parent": "aleppo-central"}}),
            "cycle",
        ),
        (
            json!({"type": "location_amended", "location": "aleppo",
                "data": {"geometry": {"type": "Point", "coordinates": [37.1, 91]}}}),
            "latitude 91",
        ),
    ] {
        let p = c.post(&bad, 422).await;
        if p["code"] != "validation_failed" {
            c.failures.push(format!("{why}: {p}"));
        }
    }
    for path in ["/v1/locations?q=", "/v1/actors?q=%20"] {
        c.get(path, 400).await;
    }

    // --- errors ---------------------------------------------------------------
    // 400 malformed_json
    c.post_raw(EVENTS, "application/json", b"{\"type\": \"report\",".to_vec(), 400)
        .await;
    c.post_raw(EVENTS, "application/json", Vec::new(), 400).await;
    // 400 invalid_parameter
    c.post_raw(
        "/v1/events?dry_run=1",
        "application/json",
        withdrew.to_string().into_bytes(),
        400,
    )
    .await;
    for path in [
        "/healthz?verbose=1",
        "/readyz?x=1",
        "/metrics?format=json",
        "/v1/events?page=2",
        "/v1/events?limit=0",
        "/v1/events?limit=1001",
        "/v1/events?limit=-1",
        "/v1/events?after=x",
        "/v1/events?type=invasion",
        "/v1/events?location=Not_A_Slug",
        "/v1/events?limit=1&limit=2",
        "/v1/locations?asof=2024-11-29T12:00:00Z",
        "/v1/locations?as_of=yesterday",
        "/v1/locations?at_seq=999999",
        "/v1/locations?status=lost",
        "/v1/locations?kind=castle",
        "/v1/locations/aleppo?at_seq=-1",
        "/v1/locations/aleppo?at_seq=999999",
        "/v1/locations/aleppo/events?order=random",
        "/v1/locations/aleppo/events?as_of=2024-11-29T12:00:00Z",
        "/v1/actors?at_seq=999999",
        "/v1/actors/hts?bogus=1",
        "/v1/audit/head?seq=3",
        "/v1/audit/verify?full=1",
    ] {
        c.get(path, 400).await;
    }
    c.get(&format!("/v1/events/{first_id}?x=1"), 400).await;
    let head_now = c.get("/v1/audit/head", 200).await["seq"].as_u64().expect("head seq");
    let beyond = head_now + 1;
    for path in [
        // inclusion: seq missing, 0, > tree_size, > the head; tree_size 0 or beyond the head;
        // not integers; unknown or repeated parameters
        "/v1/audit/proof/inclusion".to_owned(),
        "/v1/audit/proof/inclusion?tree_size=5".to_owned(),
        "/v1/audit/proof/inclusion?seq=0".to_owned(),
        "/v1/audit/proof/inclusion?seq=0&tree_size=5".to_owned(),
        "/v1/audit/proof/inclusion?seq=6&tree_size=5".to_owned(),
        format!("/v1/audit/proof/inclusion?seq={beyond}"),
        "/v1/audit/proof/inclusion?seq=1&tree_size=0".to_owned(),
        format!("/v1/audit/proof/inclusion?seq=1&tree_size={beyond}"),
        "/v1/audit/proof/inclusion?seq=x".to_owned(),
        "/v1/audit/proof/inclusion?seq=-1".to_owned(),
        "/v1/audit/proof/inclusion?seq=1.5".to_owned(),
        "/v1/audit/proof/inclusion?seq=".to_owned(),
        "/v1/audit/proof/inclusion?seq=1&tree_size=big".to_owned(),
        "/v1/audit/proof/inclusion?seq=1&seq=2".to_owned(),
        "/v1/audit/proof/inclusion?seq=1&size=3".to_owned(),
        "/v1/audit/proof/inclusion?index=0".to_owned(),
        // consistency: first missing, 0, > second; second 0 or beyond the head; ...
        "/v1/audit/proof/consistency".to_owned(),
        "/v1/audit/proof/consistency?second=5".to_owned(),
        "/v1/audit/proof/consistency?first=0".to_owned(),
        "/v1/audit/proof/consistency?first=0&second=5".to_owned(),
        "/v1/audit/proof/consistency?first=9&second=8".to_owned(),
        format!("/v1/audit/proof/consistency?first={beyond}"),
        "/v1/audit/proof/consistency?first=1&second=0".to_owned(),
        "/v1/audit/proof/consistency?first=0&second=0".to_owned(),
        format!("/v1/audit/proof/consistency?first=1&second={beyond}"),
        "/v1/audit/proof/consistency?first=x".to_owned(),
        "/v1/audit/proof/consistency?first=1&second=-2".to_owned(),
        "/v1/audit/proof/consistency?first=1&first=2".to_owned(),
        "/v1/audit/proof/consistency?first=1&to=2".to_owned(),
        "/v1/events.csv?limit=0".to_owned(),
        "/v1/events.csv?limit=x".to_owned(),
        "/v1/events.csv?after=-1".to_owned(),
        "/v1/events.csv?type=invasion".to_owned(),
        "/v1/events.csv?location=Not_A_Slug".to_owned(),
        "/v1/events.csv?actor=".to_owned(),
        "/v1/events.csv?format=csv".to_owned(),
    ] {
        c.get(&path, 400).await;
    }
    // The feed refuses bad parameters (and a Last-Event-ID that is not a seq)
    // before it starts; read through `stream` anyway, so a 200 cannot hang.
    for (path, last_event_id) in [
        ("/v1/events/stream?after=x", None),
        ("/v1/events/stream?after=-1", None),
        ("/v1/events/stream?after=1&after=2", None),
        ("/v1/events/stream?limit=10", None),
        ("/v1/events/stream?colour=red", None),
        ("/v1/events/stream?type=invasion", None),
        ("/v1/events/stream?location=Not_A_Slug", None),
        ("/v1/events/stream?actor=Not_A_Slug", None),
        ("/v1/events/stream?format=xml", None),
        ("/v1/events/stream?format=", None),
        ("/v1/events/stream", Some("abc")),
        ("/v1/events/stream", Some("-1")),
        ("/v1/events/stream?after=3", Some("1.5")),
    ] {
        c.stream(path, last_event_id, 400).await;
    }
    // 422 validation_failed
    let mut typo = withdrew.clone();
    typo["id"] = json!("0193a0b4-0000-7000-8000-000000000001");
    typo["data"] = json!({"actr": "hts"});
    c.post(&typo, 422).await;
    c.post(&json!([]), 422).await;
    c.post(
        &json!({"type": "report", "location": "aleppo", "source": src(), "data": {"summary": "x"}}),
        422,
    )
    .await;
    c.post(&json!([reg.clone(), {"type": "report"}]), 422).await;
    c.post(&json!(42), 422).await;
    // 422 unknown_location / unknown_actor / unknown_event
    c.post(
        &json!({"type": "report", "location": "homs", "occurred_at": "2024-11-30T00:00:00Z",
                "source": src(), "data": {"summary": "quiet"}}),
        422,
    )
    .await;
    c.post(
        &json!({"type": "forces_entered", "location": "aleppo", "occurred_at": "2024-11-30T00:00:00Z",
                "source": src(), "data": {"actor": "wagner"}}),
        422,
    )
    .await;
    c.post(
        &json!({"type": "event_retracted", "location": "aleppo", "occurred_at": "2024-11-30T00:00:00Z",
                "source": src(), "data": {"event_id": "0193a0b5-0000-7000-8000-000000000009", "reason": "no"}}),
        422,
    )
    .await;
    // 409 version_conflict / id_conflict / already_registered / already_retracted
    let conflict = c
        .post(
            &json!({"type": "report", "location": "aleppo", "occurred_at": "2024-11-30T00:00:00Z",
                    "source": src(), "expected_version": 1, "data": {"summary": "late"}}),
            409,
        )
        .await;
    if conflict["code"] != "version_conflict" || !conflict["current_version"].is_u64() {
        c.failures
            .push(format!("expected a version_conflict with current_version: {conflict}"));
    }
    let mut other = withdrew.clone();
    other["data"] = json!({"actor": "saa"});
    c.post(&other, 409).await;
    let mut mixed_new = typo.clone();
    mixed_new["data"] = json!({"actor": "hts"});
    c.post(&json!([withdrew.clone(), mixed_new]), 409).await;
    c.post(
        &json!({"type": "location_registered", "location": "aleppo", "data": {"name": "Aleppo", "kind": "city"}}),
        409,
    )
    .await;
    c.post(
        &json!({"type": "event_retracted", "location": "aleppo-south", "occurred_at": "2024-12-01T00:00:00Z",
                "source": src(), "data": {"event_id": "0193a0b2-5f1e-7c3a-9a41-2f1d7e6b8c90", "reason": "again"}}),
        409,
    )
    .await;
    // 404 not_found
    for path in [
        "/v1/events/0193a0b6-0000-7000-8000-000000000000",
        "/v1/events/not-a-uuid",
        "/v1/locations/homs",
        "/v1/locations/Not_A_Slug",
        "/v1/locations/homs/events",
        "/v1/locations/aleppo?at_seq=1",
        "/v1/actors/wagner",
        "/v1/actors/hts?at_seq=1",
        "/v1/nope",
        "/index.html",
        "/v2/events",
        "/v1/events/stream/1",
        "/v1/audit/proof",
        "/v1/audit/proof/exclusion?seq=1",
    ] {
        c.get(path, 404).await;
    }
    // 415 unsupported_media_type
    c.post_raw(EVENTS, "text/plain", withdrew.to_string().into_bytes(), 415)
        .await;
    c.post_raw(
        EVENTS,
        "application/x-www-form-urlencoded",
        b"type=report".to_vec(),
        415,
    )
    .await;
    // 413 payload_too_large: a JSON body just over 1 MiB.
    let big = json!({"type": "report", "location": "aleppo", "occurred_at": "2024-11-30T00:00:00Z",
                     "source": src(), "data": {"summary": "x".repeat(1024 * 1024 + 16)}});
    c.post(&big, 413).await;
    // 405 method_not_allowed
    c.expect(Method::DELETE, EVENTS, None, 405).await;
    c.expect(Method::PUT, EVENTS, Some(("application/json", b"{}".to_vec())), 405)
        .await;
    c.expect(
        Method::POST,
        "/v1/locations",
        Some(("application/json", b"{}".to_vec())),
        405,
    )
    .await;
    c.expect(Method::DELETE, "/v1/locations/aleppo", None, 405).await;
    c.expect(
        Method::PATCH,
        "/v1/events/0193a0b3-0000-7000-8000-000000000001",
        None,
        405,
    )
    .await;
    c.expect(Method::POST, "/healthz", None, 405).await;
    c.expect(Method::PUT, "/v1/audit/head", None, 405).await;
    c.expect(Method::POST, "/v1/events/stream", None, 405).await;
    c.expect(Method::DELETE, "/v1/audit/proof/inclusion?seq=1", None, 405)
        .await;
    c.expect(
        Method::POST,
        "/v1/audit/proof/consistency",
        Some(("application/json", b"{}".to_vec())),
        405,
    )
    .await;

    // An incoming x-request-id is echoed.
    let res = c
        .client
        .get(c.url("/healthz"))
        .header("x-request-id", "spec-test-42")
        .send()
        .await
        .expect("request sent");
    if res.headers().get("x-request-id").and_then(|v| v.to_str().ok()) != Some("spec-test-42") {
        c.failures.push(format!(
            "x-request-id not echoed: {:?}",
            res.headers().get("x-request-id")
        ));
    }

    // An unacceptable one (too long) is replaced by a generated one.
    let long = "x".repeat(129);
    let res = c
        .client
        .get(c.url("/healthz"))
        .header("x-request-id", &long)
        .send()
        .await
        .expect("request sent");
    match res.headers().get("x-request-id").and_then(|v| v.to_str().ok()) {
        Some(id) if !id.is_empty() && id != long && id.len() <= 128 => {}
        other => c
            .failures
            .push(format!("a 129-char x-request-id was not replaced: {other:?}")),
    }

    revalidated(&mut c).await;

    // Everything again, with tokens.
    app.stop().await;
    with_tokens(&mut c).await;
    rate_limited(&mut c).await;
    signed_checkpoint(&mut c).await;

    // Every documented (operation, status) other than 503 was exercised at least
    // once, so the spec has no response this test never checks.
    let mut unexercised = Vec::new();
    for (method, path) in spec_operations() {
        let responses = &spec()["paths"][&path][method.to_lowercase()]["responses"];
        for status in responses.as_object().into_iter().flat_map(|o| o.keys()) {
            let Ok(code) = status.parse::<u16>() else { continue };
            if code == 503 {
                continue; // needs a storage fault
            }
            if !c.seen.contains(&(method.clone(), path.clone(), code)) {
                unexercised.push(format!("{method} {path} {code}"));
            }
        }
    }
    if !unexercised.is_empty() {
        c.failures.push(format!(
            "documented responses never exercised by this test: {unexercised:?}"
        ));
    }

    let Checker { failures, count, .. } = c;
    assert!(
        failures.is_empty(),
        "{} of {count} exchanges disagree with api-spec/openapi.yaml:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------
// 2b. With tokens: 401, 403, 429 and the roles
// ---------------------------------------------------------------------------

/// A server on the demo with a tokens file, in this process.
struct Secured {
    address: String,
    /// principal -> its bearer token
    tokens: HashMap<String, String>,
    handle: sitrep::startup::StopHandle,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
    _tmp: tempfile::TempDir,
}

impl Secured {
    /// `who`: (principal, role) pairs, one fresh token each; `rate_per_second`
    /// as `--rate-limit` (0: no limit).
    async fn spawn(who: &[(&str, &str)], rate_per_second: u32) -> Secured {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut file = String::from("# principal role sha256-of-the-token\n");
        let mut tokens = HashMap::new();
        for (principal, role) in who {
            let (token, hash) = sitrep::auth::new_token();
            file.push_str(&format!("{principal} {role} {hash}\n"));
            tokens.insert((*principal).to_owned(), token);
        }
        let path = tmp.path().join("tokens");
        std::fs::write(&path, file).expect("tokens file written");
        let mut settings = Settings::new(tmp.path().join("data"), "127.0.0.1:0");
        settings.demo = true;
        settings.workers = 2;
        settings.tokens = Some(path);
        settings.rate_per_second = rate_per_second;
        let app = Application::build(settings)
            .await
            .expect("the server starts with tokens");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.stop_handle();
        let running = tokio::spawn(app.run_until_stopped());
        Secured {
            address,
            tokens,
            handle,
            running,
            _tmp: tmp,
        }
    }

    /// The `Authorization` header of `principal`.
    fn bearer(&self, principal: &str) -> Option<String> {
        Some(format!("Bearer {}", self.tokens[principal]))
    }

    async fn stop(self) {
        self.handle.stop().await;
        self.running.await.expect("server task").expect("server ran");
    }
}

/// Every route that needs a token: all but the probes.
fn guarded_routes() -> Vec<(&'static str, &'static str)> {
    sitrep::api::ROUTES
        .iter()
        .copied()
        .filter(|(_, p)| !matches!(*p, "/healthz" | "/readyz"))
        .collect()
}

/// A concrete request path for a route template.
fn sample_path(template: &str) -> String {
    match template {
        "/v1/events/{id}" => "/v1/events/0193a0b6-0000-7000-8000-000000000000".to_owned(),
        "/v1/locations/{id}" => "/v1/locations/aleppo".to_owned(),
        "/v1/locations/{id}/events" => "/v1/locations/aleppo/events".to_owned(),
        "/v1/actors/{id}" => "/v1/actors/hts".to_owned(),
        "/v1/audit/proof/inclusion" => "/v1/audit/proof/inclusion?seq=1".to_owned(),
        "/v1/audit/proof/consistency" => "/v1/audit/proof/consistency?first=1".to_owned(),
        "/v1/events/stream" => "/v1/events/stream?after=0".to_owned(),
        other => {
            assert!(!other.contains('{'), "no sample path for {other}");
            other.to_owned()
        }
    }
}

/// A valid new event on the demo (server-assigned id: each accepted post appends).
fn sample_event() -> Value {
    json!({"type": "report", "location": "aleppo", "occurred_at": "2024-12-01T00:00:00Z",
           "source": src(), "data": {"summary": "posted with a token"}})
}

/// One request to a route (a feed through `stream`, so a 200 cannot hang).
async fn hit(c: &mut Checker, method: &str, template: &str, status: u16) {
    let path = sample_path(template);
    match (method, template) {
        ("GET", "/v1/events/stream") => {
            c.stream(&path, None, status).await;
        }
        ("POST", _) => {
            c.post_raw(
                &path,
                "application/json",
                sample_event().to_string().into_bytes(),
                status,
            )
            .await;
        }
        (m, _) => {
            c.expect(Method::from_bytes(m.as_bytes()).expect("a method"), &path, None, status)
                .await;
        }
    }
}

/// Every read answered `200` answers its own `ETag` in `If-None-Match` with
/// `304`.
async fn revalidated(c: &mut Checker) {
    let page = c.expect(Method::GET, "/v1/events?limit=1", None, 200).await;
    let event = page["events"][0]["id"].as_str().unwrap_or_default().to_owned();
    for (method, template) in sitrep::api::ROUTES {
        // Streamed answers have no ETag; the checkpoint is answered by a
        // signing server: `signed_checkpoint` revalidates it there.
        if *method != "GET"
            || !template.starts_with("/v1/")
            || matches!(
                *template,
                "/v1/events/stream" | "/v1/events.csv" | "/v1/audit/checkpoint"
            )
        {
            continue;
        }
        let path = match *template {
            "/v1/events/{id}" => format!("/v1/events/{event}"),
            other => sample_path(other),
        };
        c.expect(Method::GET, &path, None, 200).await;
        let Some(tag) = c.last_header("etag") else {
            c.failures.push(format!("GET {path}: no ETag"));
            continue;
        };
        c.if_none_match = Some(tag);
        c.expect(Method::GET, &path, None, 304).await;
        c.if_none_match = None;
    }
}

/// The last answer's `WWW-Authenticate` is `want`.
fn challenge_is(c: &mut Checker, what: &str, want: &str) {
    let got = c.last_header("www-authenticate");
    if got.as_deref() != Some(want) {
        c.failures
            .push(format!("{what}: WWW-Authenticate should be {want:?}, got {got:?}"));
    }
}

async fn with_tokens(c: &mut Checker) {
    let s = Secured::spawn(
        &[
            ("ada", "admin"),
            ("rita", "reader"),
            ("paul", "reporter"),
            ("prom", "metrics"),
        ],
        0,
    )
    .await;
    c.base = s.address.clone();
    const MISSING: &str = "Bearer realm=\"sitrep\"";
    const INVALID: &str = "Bearer realm=\"sitrep\", error=\"invalid_token\"";

    // The probes never need a token, and ignore a wrong one.
    c.auth = None;
    c.get("/healthz", 200).await;
    c.get("/readyz", 200).await;
    c.get("/healthz?verbose=1", 400).await;
    c.expect(Method::POST, "/healthz", None, 405).await;
    c.auth = Some("Bearer st_not-a-token".into());
    c.get("/healthz", 200).await;
    c.get("/readyz", 200).await;

    // 401 on every other route: no token, then an unknown one.
    for (auth, challenge) in [(None, MISSING), (Some("Bearer st_not-a-token"), INVALID)] {
        c.auth = auth.map(str::to_owned);
        for (method, template) in guarded_routes() {
            hit(c, method, template, 401).await;
            challenge_is(c, &format!("{method} {template} with {auth:?}"), challenge);
        }
        // Before routing: an unknown path, an unserved method.
        c.get("/v1/nope", 401).await;
        challenge_is(c, "GET /v1/nope", challenge);
        c.expect(Method::DELETE, EVENTS, None, 401).await;
        challenge_is(c, "DELETE /v1/events", challenge);
    }
    // A malformed Authorization header counts as none; the scheme is case-insensitive.
    let ada = s.tokens["ada"].clone();
    for auth in [
        format!("Basic {ada}"),
        ada.clone(),
        "Bearer".to_owned(),
        format!("Token {ada}"),
    ] {
        c.auth = Some(auth.clone());
        c.get("/v1/locations", 401).await;
        challenge_is(c, &format!("Authorization: {auth}"), MISSING);
        c.get("/metrics", 401).await;
    }
    c.auth = Some(format!("bearer {ada}"));
    c.get("/v1/locations", 200).await;
    // A token of another server's file is unknown here.
    c.auth = Some(format!("Bearer {}", sitrep::auth::new_token().0));
    c.get("/v1/audit/head", 401).await;
    challenge_is(c, "a token not in the file", INVALID);

    // 403: the metrics role may only scrape.
    c.auth = s.bearer("prom");
    for (method, template) in guarded_routes() {
        if template != "/metrics" {
            hit(c, method, template, 403).await;
        }
    }
    c.get("/metrics", 200).await;
    // A reader reads, and may neither append nor scrape (nor POST anywhere).
    c.auth = s.bearer("rita");
    c.post(&sample_event(), 403).await;
    c.get("/metrics", 403).await;
    c.post_raw("/v1/locations", "application/json", b"{}".to_vec(), 403)
        .await;
    c.expect(Method::DELETE, EVENTS, None, 405).await;
    c.get("/v1/nope", 404).await;
    c.get("/v1/locations", 200).await;
    c.get("/v1/locations/aleppo", 200).await;
    c.get("/v1/audit/head", 200).await;
    if c.stream("/v1/events/stream?after=0", None, 200).await.is_none() {
        c.failures.push("a reader cannot follow the feed".to_owned());
    }
    // A reporter appends, recorded under its principal; it may not scrape.
    c.auth = s.bearer("paul");
    c.get("/metrics", 403).await;
    let receipt = c.post(&sample_event(), 201).await;
    if let Some(id) = receipt["id"].as_str() {
        let stored = c.get(&format!("/v1/events/{id}"), 200).await;
        if stored["recorded_by"] != "paul" {
            c.failures.push(format!(
                "an event appended with paul's token is recorded by {}",
                stored["recorded_by"]
            ));
        }
    }
    // An admin does everything.
    c.auth = s.bearer("ada");
    c.post(&sample_event(), 201).await;
    c.get("/v1/events?limit=2", 200).await;
    c.get("/metrics", 200).await;
    c.get("/metrics?name=sitrep_log_events", 400).await;

    c.auth = None;
    s.stop().await;
}

/// `GET /v1/audit/checkpoint` on a server with a signing key.
async fn signed_checkpoint(c: &mut Checker) {
    let tmp = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let key = tmp.path().join("log.key");
    sitrep::transparency::note::PrivateKey::generate("spec.test/log")
        .unwrap()
        .save(&key)
        .unwrap();
    let app = crate::helpers::spawn_with(tmp, |s| {
        s.demo = true;
        s.signing_key = Some(key.clone());
        s.checkpoint_interval = std::time::Duration::from_millis(50);
    })
    .await;
    // The first checkpoint is signed right after start; wait for it (bounded).
    for _ in 0..200 {
        if app
            .client
            .get(app.url("/v1/audit/checkpoint"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let (base, auth) = (std::mem::replace(&mut c.base, app.address.clone()), c.auth.take());
    let ex = c.send(Method::GET, "/v1/audit/checkpoint", None).await;
    c.judge(&ex, 200);
    if !ex.body.starts_with("spec.test/log\n") || ex.content_type.as_deref() != Some("text/plain; charset=utf-8") {
        c.failures
            .push(format!("not a checkpoint of spec.test/log: {}", ex.describe()));
    }
    match c.last_header("etag") {
        Some(tag) => {
            c.if_none_match = Some(tag);
            c.expect(Method::GET, "/v1/audit/checkpoint", None, 304).await;
            c.if_none_match = None;
        }
        None => c.failures.push("GET /v1/audit/checkpoint: no ETag".to_owned()),
    }
    (c.base, c.auth) = (base, auth);
    app.stop().await;
}

/// 429 on every guarded route: a principal held to one request a second.
async fn rate_limited(c: &mut Checker) {
    let s = Secured::spawn(&[("flood", "admin"), ("ada", "admin")], 1).await;
    c.base = s.address.clone();
    c.auth = s.bearer("flood");
    for (method, template) in guarded_routes() {
        let mut limited = false;
        for _ in 0..5 {
            // Spend the second's one request (it may itself be refused), then
            // the route at once: refused unless a new second began in between.
            let burn = c.send(Method::GET, "/v1/audit/head", None).await;
            let status = burn.status;
            c.judge(&burn, status);
            let path = sample_path(template);
            let status = if template == "/v1/events/stream" {
                let Some(res) = c.stream_open(&path, None).await else {
                    break;
                };
                let status = res.status().as_u16();
                c.stream_read(&path, res, status).await;
                status
            } else {
                let body = (method == "POST").then(|| ("application/json", sample_event().to_string().into_bytes()));
                let ex = c
                    .send(Method::from_bytes(method.as_bytes()).expect("a method"), &path, body)
                    .await;
                let status = ex.status;
                c.judge(&ex, status);
                status
            };
            if status == 429 {
                limited = true;
                match c.last_header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
                    Some(secs) if secs >= 1 => {}
                    other => c
                        .failures
                        .push(format!("{method} {path}: 429 with Retry-After {other:?}")),
                }
                break;
            }
        }
        if !limited {
            c.failures
                .push(format!("{method} {template}: no 429 over a rate limit of 1 a second"));
        }
    }
    // The limit is per principal: another one is served meanwhile, and a
    // request without a token is refused as unauthorized, not limited.
    c.auth = s.bearer("ada");
    c.get("/v1/audit/head", 200).await;
    c.auth = None;
    c.get("/v1/audit/head", 401).await;
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 3. Examples validate against their schemas
// ---------------------------------------------------------------------------

/// Collect (schema pointer, example pointer) pairs for JSON Schema `examples`
/// arrays anywhere under a schema.
fn schema_examples(pointer: &str, node: &Value, parent_key: &str, out: &mut Vec<(String, String)>) {
    match node {
        Value::Object(map) => {
            for (k, v) in map {
                let child = format!("{pointer}/{}", esc(k));
                if k == "examples" && parent_key != "properties" {
                    if let Some(items) = v.as_array() {
                        for i in 0..items.len() {
                            out.push((pointer.to_owned(), format!("{child}/{i}")));
                        }
                        continue;
                    }
                }
                schema_examples(&child, v, k, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                schema_examples(&format!("{pointer}/{i}"), v, "", out);
            }
        }
        _ => {}
    }
}

/// (schema pointer, example pointer) for each OpenAPI `examples` map entry of a
/// media type object or a parameter at `pointer`.
fn named_examples(pointer: &str, out: &mut Vec<(String, String)>) {
    let node = at(pointer);
    if let Some(examples) = node.get("examples").and_then(Value::as_object) {
        for name in examples.keys() {
            let ex = deref(format!("{pointer}/examples/{}", esc(name)));
            if at(&ex).get("value").is_some() {
                out.push((format!("{pointer}/schema"), format!("{ex}/value")));
            }
        }
    }
    if node.get("example").is_some() {
        out.push((format!("{pointer}/schema"), format!("{pointer}/example")));
    }
}

fn content_examples(pointer: &str, out: &mut Vec<(String, String)>) {
    if let Some(content) = at(pointer).get("content").and_then(Value::as_object) {
        for media in content.keys() {
            named_examples(&format!("{pointer}/content/{}", esc(media)), out);
        }
    }
}

#[test]
fn every_spec_example_validates_against_its_schema() {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let schemas = &spec()["components"]["schemas"];
    schema_examples("#/components/schemas", schemas, "schemas", &mut pairs);
    for (name, _) in spec()["components"]["responses"]
        .as_object()
        .expect("components/responses")
    {
        content_examples(&format!("#/components/responses/{}", esc(name)), &mut pairs);
    }
    for (name, _) in spec()["components"]["parameters"]
        .as_object()
        .expect("components/parameters")
    {
        named_examples(&format!("#/components/parameters/{}", esc(name)), &mut pairs);
    }
    for (path, item) in spec()["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let op_pointer = format!("#/paths/{}/{method}", esc(path));
            if op.get("requestBody").is_some() {
                content_examples(&deref(format!("{op_pointer}/requestBody")), &mut pairs);
            }
            for (status, _) in op["responses"].as_object().expect("responses") {
                let r = format!("{op_pointer}/responses/{}", esc(status));
                if at(&r).get("$ref").is_none() {
                    content_examples(&r, &mut pairs);
                }
            }
        }
    }
    assert!(pairs.len() > 30, "found only {} examples: {pairs:?}", pairs.len());

    let mut failures = Vec::new();
    for (schema, example) in &pairs {
        let errs = errors_against(schema, at(example));
        if !errs.is_empty() {
            failures.push(format!(
                "example {example} does not validate against {schema}:\n  - {}",
                errs.join("\n  - ")
            ));
        }
    }

    // The shipped demo scenario is a valid batch too.
    let demo: Value = serde_json::from_str(sitrep::demo::ALEPPO).expect("demo scenario is JSON");
    let batch = "#/paths/~1v1~1events/post/requestBody/content/application~1json/schema";
    let errs = errors_against(batch, &demo);
    if !errs.is_empty() {
        failures.push(format!(
            "api-spec/examples/aleppo-2024-11-30.json does not validate against {batch}:\n  - {}",
            errs.join("\n  - ")
        ));
    }

    // The metrics example is the Prometheus text format.
    let metrics = at("#/paths/~1metrics/get/responses/200/content/text~1plain/example")
        .as_str()
        .expect("the metrics example is text");
    for e in prometheus_errors(metrics, false) {
        failures.push(format!("the /metrics example: {e}"));
    }

    assert!(
        failures.is_empty(),
        "{} of {} spec examples are invalid:\n\n{}",
        failures.len(),
        pairs.len() + 1,
        failures.join("\n\n")
    );
}

/// The validation above is not vacuous: wrong bodies are refused.
#[test]
fn the_spec_validator_rejects_wrong_bodies() {
    let ok_location =
        at("#/paths/~1v1~1locations~1{id}/get/responses/200/content/application~1json/examples/now/value");
    let location = "#/paths/~1v1~1locations~1{id}/get/responses/200/content/application~1json/schema";
    assert_eq!(errors_against(location, ok_location), Vec::<String>::new());
    let mut no_control = ok_location.clone();
    no_control.as_object_mut().unwrap().remove("control");
    let mut extra = ok_location.clone();
    extra["colour"] = json!("red");
    let mut contested_one = ok_location.clone();
    contested_one["control"]["status"] = json!("contested");
    let mut bad_since = ok_location.clone();
    bad_since["control"]["since"] = json!("yesterday");
    for wrong in [no_control, extra, contested_one, bad_since] {
        assert!(!errors_against(location, &wrong).is_empty(), "accepted: {wrong}");
    }

    let conflict = deref("#/paths/~1v1~1events/post/responses/409".into());
    let schema = format!("{conflict}/content/application~1problem+json/schema");
    let problem = json!({"type": "urn:sitrep:problem:id_conflict", "title": "Event id conflict",
                         "status": 409, "detail": "d", "code": "id_conflict"});
    assert_eq!(errors_against(&schema, &problem), Vec::<String>::new());
    let mut wrong_code = problem.clone();
    wrong_code["code"] = json!("not_found");
    let mut wrong_status = problem.clone();
    wrong_status["status"] = json!(422);
    for wrong in [wrong_code, wrong_status] {
        assert!(!errors_against(&schema, &wrong).is_empty(), "accepted: {wrong}");
    }

    let event = at("#/components/schemas/StoredEvent/examples/0");
    let stored = "#/components/schemas/StoredEvent";
    assert_eq!(errors_against(stored, event), Vec::<String>::new());
    let mut bad_data = event.clone();
    bad_data["data"] = json!({"actors": ["saa"]});
    let mut upper_id = event.clone();
    upper_id["id"] = json!(event["id"].as_str().unwrap().to_uppercase());
    for wrong in [bad_data, upper_id] {
        assert!(!errors_against(stored, &wrong).is_empty(), "accepted: {wrong}");
    }
    // The feed: the spec's example stream parses into events whose data validate
    // against the schema `x-sse-data-schema` names; a wrong event is refused.
    let media = "#/paths/~1v1~1events~1stream/get/responses/200/content/text~1event-stream";
    let data_schema = format!("{media}/x-sse-data-schema");
    let example = at(&format!("{media}/examples/catch_up/value"))
        .as_str()
        .expect("the stream example is text");
    let messages = sse_messages(example);
    assert_eq!(messages.len(), 2, "two events in {example:?}");
    for m in &messages {
        assert!(m.other.is_empty(), "only id and data fields: {:?}", m.other);
        let data: Value = serde_json::from_str(m.data.as_deref().expect("data")).expect("data is JSON");
        assert_eq!(errors_against(&data_schema, &data), Vec::<String>::new());
        assert_eq!(json!(m.id.as_deref().and_then(|i| i.parse::<u64>().ok())), data["seq"]);
    }
    let mut no_hash = event.clone();
    no_hash.as_object_mut().unwrap().remove("hash");
    assert!(
        !errors_against(&data_schema, &no_hash).is_empty(),
        "accepted: {no_hash}"
    );
}
