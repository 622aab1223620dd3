//! The wire error: RFC 9457 `application/problem+json` with a stable `code`.
//! One table maps each code to its HTTP status.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use http_api_problem::HttpApiProblem;
use serde::Serialize;

use crate::domain::{FieldError, Problem};
use crate::ledger::AppendError;

/// Every stable error code, with its HTTP status and title.
const CODES: &[(&str, u16, &str)] = &[
    ("malformed_request", 400, "Malformed request"),
    ("malformed_json", 400, "Malformed JSON"),
    ("invalid_parameter", 400, "Invalid query parameter"),
    ("validation_failed", 422, "Validation failed"),
    ("unknown_location", 422, "Unknown location"),
    ("unknown_actor", 422, "Unknown actor"),
    ("unknown_event", 422, "Unknown event"),
    ("version_conflict", 409, "Version conflict"),
    ("id_conflict", 409, "Event id conflict"),
    ("already_registered", 409, "Already registered"),
    ("already_retracted", 409, "Already retracted"),
    ("not_found", 404, "Not found"),
    ("unauthorized", 401, "Unauthorized"),
    ("forbidden", 403, "Forbidden"),
    ("rate_limited", 429, "Too many requests"),
    ("method_not_allowed", 405, "Method not allowed"),
    ("request_timeout", 408, "Request timeout"),
    ("payload_too_large", 413, "Payload too large"),
    ("uri_too_long", 414, "URI too long"),
    ("unsupported_media_type", 415, "Unsupported media type"),
    ("header_too_large", 431, "Request header fields too large"),
    ("unavailable", 503, "Service unavailable"),
];

fn lookup(code: &str) -> (StatusCode, &'static str) {
    let (_, status, title) = CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .expect("every code used is in the table");
    (StatusCode::from_u16(*status).expect("valid status"), title)
}

/// An error answered as problem+json.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub extra: Vec<(&'static str, serde_json::Value)>,
}

impl ApiError {
    pub fn new(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            extra: Vec::new(),
        }
    }

    pub fn invalid_parameter(name: &str, message: impl std::fmt::Display) -> ApiError {
        let mut e = ApiError::new("invalid_parameter", format!("query parameter '{name}' {message}"));
        e.errors = vec![FieldError::new(name, message.to_string())];
        e
    }

    /// A request header that is not valid, answered like a bad query parameter.
    pub fn invalid_header(name: &str, message: impl std::fmt::Display) -> ApiError {
        let mut e = ApiError::new("invalid_parameter", format!("header '{name}' {message}"));
        e.errors = vec![FieldError::new(name, message.to_string())];
        e
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new("not_found", what)
    }

    fn with(mut self, key: &'static str, value: impl Serialize) -> ApiError {
        self.extra
            .push((key, serde_json::to_value(value).expect("serializable")));
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        lookup(self.code).0
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if self.code == "request_timeout" {
            // The rest of the body is never read: the connection cannot carry another request.
            res.force_close();
        }
        res.content_type("application/problem+json").body(self.problem_json())
    }
}

impl ApiError {
    /// The RFC 9457 body.
    pub fn problem_json(&self) -> Vec<u8> {
        let (status, title) = lookup(self.code);
        let mut problem =
            HttpApiProblem::new(http_api_problem::StatusCode::from_u16(status.as_u16()).expect("valid status"))
                .type_url(format!("urn:sitrep:problem:{}", self.code))
                .title(title)
                .detail(self.detail.clone())
                .value("code", &self.code);
        if !self.errors.is_empty() {
            problem.set_value("errors", &self.errors);
        }
        for (k, v) in &self.extra {
            problem.set_value(*k, v);
        }
        problem.json_bytes()
    }
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> ApiError {
        let errors = p.field_errors();
        let detail = match &p {
            Problem::Validation(es) => es
                .iter()
                .map(|e| {
                    if e.field.is_empty() {
                        e.message.clone()
                    } else {
                        format!("{}: {}", e.field, e.message)
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        let code = match &p {
            Problem::Validation(_) => "validation_failed",
            Problem::UnknownLocation { .. } => "unknown_location",
            Problem::UnknownActor { .. } => "unknown_actor",
            Problem::UnknownEvent { .. } => "unknown_event",
            Problem::VersionConflict { .. } => "version_conflict",
            Problem::IdConflict { .. } => "id_conflict",
            Problem::AlreadyRegistered { .. } => "already_registered",
            Problem::AlreadyRetracted { .. } => "already_retracted",
        };
        let mut e = ApiError::new(code, detail);
        e.errors = errors;
        if let Problem::VersionConflict { expected, current, .. } = p {
            e = e.with("expected_version", expected).with("current_version", current);
        }
        e
    }
}

impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> ApiError {
        match e {
            AppendError::Rejected(p) => p.into(),
            AppendError::Unavailable(m) => ApiError::new("unavailable", format!("{m}; nothing was written")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_status() {
        let mut seen = std::collections::HashSet::new();
        for (code, status, _) in CODES {
            assert!(seen.insert(code), "{code} twice");
            assert!((400..600).contains(status));
        }
    }
}
