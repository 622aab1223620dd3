//! Why an event is refused: field-level validation errors and the rule
//! violations that need the log's state to detect.

use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory, WhiteSpace};
use icu_properties::{CodePointMapData, CodePointSetData};
use serde::Serialize;
use uuid::Uuid;

/// Text that shows nothing: only white space, default-ignorable code points
/// (zero-width spaces and joiners, the BOM, variation selectors, fillers) and
/// control or format characters. Such a name or summary is empty.
pub fn is_blank(text: &str) -> bool {
    let white = CodePointSetData::new::<WhiteSpace>();
    let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>();
    let category = CodePointMapData::<GeneralCategory>::new();
    text.chars().all(|c| {
        white.contains(c)
            || ignorable.contains(c)
            || matches!(category.get(c), GeneralCategory::Control | GeneralCategory::Format)
    })
}

/// One offending member of a posted event. `field` is a dotted path
/// (`data.actor`); inside a batch it starts with the item's index (`[3].data.actor`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why the domain refuses an append. Each variant maps to one stable error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("the event is not valid")]
    Validation(Vec<FieldError>),
    #[error("location '{id}' is not registered")]
    UnknownLocation { field: String, id: String },
    #[error("actor '{id}' is not registered")]
    UnknownActor { field: String, id: String },
    #[error("event {id} does not exist")]
    UnknownEvent { field: String, id: Uuid },
    #[error("stream '{stream}' is at version {current}, not {expected}")]
    VersionConflict {
        field: String,
        stream: String,
        expected: u64,
        current: u64,
    },
    #[error("event id {id} is already used by an event with other content")]
    IdConflict { field: String, id: Uuid },
    #[error("'{stream}' is already registered")]
    AlreadyRegistered { field: String, stream: String },
    #[error("event {id} is already retracted")]
    AlreadyRetracted { field: String, id: Uuid },
}

impl Problem {
    /// A single-field validation failure.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem::Validation(vec![FieldError::new(field, message)])
    }

    /// Prefix every field path with a batch item's index.
    pub fn in_batch_item(self, index: usize) -> Problem {
        let p = |f: String| {
            if f.is_empty() {
                format!("[{index}]")
            } else {
                format!("[{index}].{f}")
            }
        };
        match self {
            Problem::Validation(errors) => Problem::Validation(
                errors
                    .into_iter()
                    .map(|e| FieldError::new(p(e.field), e.message))
                    .collect(),
            ),
            Problem::UnknownLocation { field, id } => Problem::UnknownLocation { field: p(field), id },
            Problem::UnknownActor { field, id } => Problem::UnknownActor { field: p(field), id },
            Problem::UnknownEvent { field, id } => Problem::UnknownEvent { field: p(field), id },
            Problem::VersionConflict {
                field,
                stream,
                expected,
                current,
            } => Problem::VersionConflict {
                field: p(field),
                stream,
                expected,
                current,
            },
            Problem::IdConflict { field, id } => Problem::IdConflict { field: p(field), id },
            Problem::AlreadyRegistered { field, stream } => Problem::AlreadyRegistered {
                field: p(field),
                stream,
            },
            Problem::AlreadyRetracted { field, id } => Problem::AlreadyRetracted { field: p(field), id },
        }
    }

    /// The field errors to show the client (`errors` of the problem document).
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Problem::Validation(errors) => errors.clone(),
            Problem::UnknownLocation { field, .. }
            | Problem::UnknownActor { field, .. }
            | Problem::UnknownEvent { field, .. }
            | Problem::VersionConflict { field, .. }
            | Problem::IdConflict { field, .. }
            | Problem::AlreadyRegistered { field, .. }
            | Problem::AlreadyRetracted { field, .. } => vec![FieldError::new(field.clone(), self.to_string())],
        }
    }
}
