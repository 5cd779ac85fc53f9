//! The error every desktop call returns: a contract code and a plain message.

use serde::Serialize;
use syncline_duckdb::DuckDbError;
use syncline_engine::config::ConfigErrors;
use syncline_engine::{Error, ErrorKind};
use ts_rs::TS;

use super::problems;

/// A failed desktop call: a code from the command contract (`config`,
/// `connection`, `io`, `sql`, `not_found`, `busy`, `outside_scope`,
/// `internal`) and a plain message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct Failure {
    /// Contract code.
    pub code: FailureCode,
    /// What went wrong, for people.
    pub message: String,
}

/// What kind of failure a [`Failure`] is (its `code` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    /// The pipeline file or a form value is wrong.
    Config,
    /// A source or target cannot be reached or refuses.
    Connection,
    /// A file could not be read or written.
    Io,
    /// SQL the user wrote failed.
    Sql,
    /// What was asked for does not exist.
    NotFound,
    /// It is already running or in use.
    Busy,
    /// A path outside the folders the studio may use (its workspace and
    /// what the user chose in a dialog).
    OutsideScope,
    /// Something that should not happen.
    Internal,
}

impl FailureCode {
    /// The code as it crosses IPC.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::Config => "config",
            FailureCode::Connection => "connection",
            FailureCode::Io => "io",
            FailureCode::Sql => "sql",
            FailureCode::NotFound => "not_found",
            FailureCode::Busy => "busy",
            FailureCode::OutsideScope => "outside_scope",
            FailureCode::Internal => "internal",
        }
    }
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: FailureCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(FailureCode::NotFound, message)
    }

    /// `busy`.
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(FailureCode::Busy, message)
    }

    /// `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(FailureCode::Internal, message)
    }

    /// `io`.
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(FailureCode::Io, message)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Failure {}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match e.kind() {
            ErrorKind::Config | ErrorKind::Schema => FailureCode::Config,
            ErrorKind::Connection | ErrorKind::Precondition => FailureCode::Connection,
            ErrorKind::Io | ErrorKind::State => FailureCode::Io,
            ErrorKind::Cancelled | ErrorKind::Internal => FailureCode::Internal,
        };
        Failure::new(code, e.chain())
    }
}

impl From<&ConfigErrors> for Failure {
    fn from(errors: &ConfigErrors) -> Self {
        let lines: Vec<String> = problems(errors)
            .into_iter()
            .map(|p| match (p.line, &p.field) {
                (Some(line), Some(field)) => format!("line {line}, `{field}`: {}", p.message),
                (Some(line), None) => format!("line {line}: {}", p.message),
                (None, Some(field)) => format!("`{field}`: {}", p.message),
                (None, None) => p.message,
            })
            .collect();
        Failure::new(FailureCode::Config, lines.join("\n"))
    }
}

impl From<DuckDbError> for Failure {
    fn from(e: DuckDbError) -> Self {
        let code = match &e {
            DuckDbError::NotFound { .. } => FailureCode::NotFound,
            DuckDbError::Query(_) | DuckDbError::Refused { .. } => FailureCode::Sql,
            _ => FailureCode::Io,
        };
        match e {
            DuckDbError::Query(e) => Failure::new(code, e.to_string()),
            DuckDbError::Refused { message, .. } => Failure::new(code, message),
            other => Failure::new(code, Error::from(other).chain()),
        }
    }
}
