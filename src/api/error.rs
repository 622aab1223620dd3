//! The wire error: RFC 9457 `application/problem+json` with a stable `code`.
//! One table maps each code to its HTTP status.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use http_api_problem::HttpApiProblem;
use serde::Serialize;

use crate::domain::{FieldError, Problem};
use crate::ledger::AppendError;

/// One table of every stable error code: its variant, its wire name, its
/// HTTP status and its title.
macro_rules! codes {
    ($($variant:ident = ($name:literal, $status:literal, $title:literal),)*) => {
        /// A stable error code, as clients match on it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            pub const ALL: &[Code] = &[$(Code::$variant,)*];

            /// The name on the wire (`code` of the problem).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }

            pub fn status(self) -> StatusCode {
                let status = match self {
                    $(Code::$variant => $status,)*
                };
                StatusCode::from_u16(status).expect("every status in the table is valid")
            }

            pub const fn title(self) -> &'static str {
                match self {
                    $(Code::$variant => $title,)*
                }
            }
        }
    };
}

codes! {
    MalformedRequest = ("malformed_request", 400, "Malformed request"),
    MalformedJson = ("malformed_json", 400, "Malformed JSON"),
    InvalidParameter = ("invalid_parameter", 400, "Invalid query parameter"),
    ValidationFailed = ("validation_failed", 422, "Validation failed"),
    UnknownLocation = ("unknown_location", 422, "Unknown location"),
    UnknownActor = ("unknown_actor", 422, "Unknown actor"),
    UnknownEvent = ("unknown_event", 422, "Unknown event"),
    VersionConflict = ("version_conflict", 409, "Version conflict"),
    IdConflict = ("id_conflict", 409, "Event id conflict"),
    AlreadyRegistered = ("already_registered", 409, "Already registered"),
    AlreadyRetracted = ("already_retracted", 409, "Already retracted"),
    NotFound = ("not_found", 404, "Not found"),
    Unauthorized = ("unauthorized", 401, "Unauthorized"),
    Forbidden = ("forbidden", 403, "Forbidden"),
    RateLimited = ("rate_limited", 429, "Too many requests"),
    MethodNotAllowed = ("method_not_allowed", 405, "Method not allowed"),
    RequestTimeout = ("request_timeout", 408, "Request timeout"),
    PayloadTooLarge = ("payload_too_large", 413, "Payload too large"),
    UriTooLong = ("uri_too_long", 414, "URI too long"),
    UnsupportedMediaType = ("unsupported_media_type", 415, "Unsupported media type"),
    HeaderTooLarge = ("header_too_large", 431, "Request header fields too large"),
    Unavailable = ("unavailable", 503, "Service unavailable"),
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answered as problem+json.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub extra: Vec<(&'static str, serde_json::Value)>,
}

impl ApiError {
    pub fn new(code: Code, detail: impl Into<String>) -> ApiError {
        ApiError {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            extra: Vec::new(),
        }
    }

    pub fn invalid_parameter(name: &str, message: impl std::fmt::Display) -> ApiError {
        let mut e = ApiError::new(Code::InvalidParameter, format!("query parameter '{name}' {message}"));
        e.errors = vec![FieldError::new(name, message.to_string())];
        e
    }

    /// A request header that is not valid, answered like a bad query parameter.
    pub fn invalid_header(name: &str, message: impl std::fmt::Display) -> ApiError {
        let mut e = ApiError::new(Code::InvalidParameter, format!("header '{name}' {message}"));
        e.errors = vec![FieldError::new(name, message.to_string())];
        e
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(Code::NotFound, what)
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
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if self.code == Code::RequestTimeout {
            // The rest of the body is never read: the connection cannot carry another request.
            res.force_close();
        }
        res.content_type("application/problem+json").body(self.problem_json())
    }
}

impl ApiError {
    /// The RFC 9457 body.
    pub fn problem_json(&self) -> Vec<u8> {
        let (status, title) = (self.code.status(), self.code.title());
        let mut problem =
            HttpApiProblem::new(http_api_problem::StatusCode::from_u16(status.as_u16()).expect("valid status"))
                .type_url(format!("urn:sitrep:problem:{}", self.code))
                .title(title)
                .detail(self.detail.clone())
                .value("code", &self.code.as_str());
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
            Problem::Validation(_) => Code::ValidationFailed,
            Problem::UnknownLocation { .. } => Code::UnknownLocation,
            Problem::UnknownActor { .. } => Code::UnknownActor,
            Problem::UnknownEvent { .. } => Code::UnknownEvent,
            Problem::VersionConflict { .. } => Code::VersionConflict,
            Problem::IdConflict { .. } => Code::IdConflict,
            Problem::AlreadyRegistered { .. } => Code::AlreadyRegistered,
            Problem::AlreadyRetracted { .. } => Code::AlreadyRetracted,
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
            AppendError::Unavailable(m) => ApiError::new(Code::Unavailable, format!("{m}; nothing was written")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_name_and_an_error_status() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!((400..600).contains(&code.status().as_u16()));
        }
    }
}
