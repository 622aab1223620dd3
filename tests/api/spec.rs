//! The spec and the server agree: `api-spec/openapi.yaml` documents exactly the
//! routes the server serves, every real response (successes and every kind of
//! error) validates against the schema the spec gives for its operation, status
//! and content type, and every example in the spec validates against its schema.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, OnceLock};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_demo_app, TestApp};

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
    app: TestApp,
    failures: Vec<String>,
    /// (METHOD template, status) pairs seen, for the coverage summary.
    seen: BTreeSet<(String, String, u16)>,
    count: usize,
}

impl Checker {
    async fn send(&self, method: Method, path: &str, body: Option<(&str, Vec<u8>)>) -> Exchange {
        let mut req = self.app.client.request(method.clone(), self.app.url(path));
        if let Some((ct, bytes)) = body {
            req = req.header("content-type", ct).body(bytes);
        }
        let res = req
            .send()
            .await
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
        let body = res.text().await.unwrap_or_default();
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
        if ex.status != status {
            self.failures.push(format!(
                "expected status {status}, got {}\n  {}",
                ex.status,
                ex.describe()
            ));
        }
        let errs = self.check(&ex);
        if !errs.is_empty() {
            self.failures
                .push(format!("{}\n  - {}", ex.describe(), errs.join("\n  - ")));
        }
        self.count += 1;
        ex.json()
    }

    async fn get(&mut self, path: &str, status: u16) -> Value {
        self.expect(Method::GET, path, None, status).await
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
                // No route: the spec says any other path answers 404 not_found.
                if ex.status != 404 {
                    errs.push(format!("a path without a route answered {}, not 404", ex.status));
                    return errs;
                }
                "#/components/responses/NotFound".to_owned()
            }
            Some(t) => {
                self.seen.insert((ex.method.to_string(), t.to_owned(), ex.status));
                let op_pointer = format!("#/paths/{}/{}", esc(t), method);
                if spec().pointer(&op_pointer[1..]).is_none() {
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

        // Every header the response object documents as required is present.
        if let Some(headers) = response.get("headers").and_then(Value::as_object) {
            for name in headers.keys() {
                let h = at(&deref(format!("{response_pointer}/headers/{}", esc(name))));
                if h["required"] == json!(true) && !ex.headers.contains_key(name.as_str()) {
                    errs.push(format!("documented required header {name} is missing"));
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
        let instance: Value = match serde_json::from_str(&ex.body) {
            Ok(v) => v,
            Err(e) => {
                errs.push(format!("the body is not JSON: {e}"));
                return errs;
            }
        };
        let schema_pointer = format!("{response_pointer}/content/{}/schema", esc(&media));
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

const EVENTS: &str = "/v1/events";

fn src() -> Value {
    json!({"name": "Reuters", "kind": "news_agency", "reliability": "A", "credibility": 2})
}

#[tokio::test]
async fn responses_validate_against_the_spec() {
    let app = spawn_demo_app().await;
    let mut c = Checker {
        app,
        failures: Vec::new(),
        seen: BTreeSet::new(),
        count: 0,
    };

    // --- reads on the demo --------------------------------------------------
    c.get("/healthz", 200).await;
    c.get("/readyz", 200).await;
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
    for id in ["hts", "saa", "russia", "syria-gov"] {
        c.get(&format!("/v1/actors/{id}"), 200).await;
        c.get(&format!("/v1/actors/{id}?{as_of}"), 200).await;
        c.get(&format!("/v1/actors/{id}?at_seq=4"), 200).await;
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
    let receipt = c.post(&withdrew, 201).await;
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
        "/",
        "/v2/events",
        "/v1/events/stream",
        "/v1/audit/proof/inclusion?seq=1&tree_size=2",
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

    // An incoming x-request-id is echoed.
    let res = c
        .app
        .client
        .get(c.app.url("/healthz"))
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
        .app
        .client
        .get(c.app.url("/healthz"))
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

    let Checker {
        app, failures, count, ..
    } = c;
    app.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {count} exchanges disagree with api-spec/openapi.yaml:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
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
}
