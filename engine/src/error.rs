//! The engine's one error type, classified so callers can decide what to do.

use std::fmt;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The pipeline file or connector settings are wrong. Fix the file.
    Config,
    /// A system could not be reached or dropped the connection. Retryable.
    Connection,
    /// The system refused: missing privilege, setting or feature. Fix the system.
    Precondition,
    /// A source's schema cannot be mapped or changed incompatibly.
    Schema,
    /// Stored data or state is not what was expected (corrupt checkpoint, ...).
    State,
    /// Reading or writing local files failed.
    Io,
    /// The work was cancelled (Ctrl-C, stop).
    Cancelled,
    /// A bug: an invariant did not hold.
    Internal,
}

impl ErrorKind {
    /// Whether retrying the same work later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Connection | ErrorKind::Io)
    }

    /// Stable code for machines (`--json`, the desktop app).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Connection => "connection",
            ErrorKind::Precondition => "precondition",
            ErrorKind::Schema => "schema",
            ErrorKind::State => "state",
            ErrorKind::Io => "io",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An engine or connector failure: its kind, what failed, and the cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The classification.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What failed, without the cause chain.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Shorthand for an internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Shorthand for cancellation.
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "cancelled")
    }

    /// The message followed by every cause, `: `-separated.
    pub fn chain(&self) -> String {
        let mut out = self.message.clone();
        let mut next: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(e) = next {
            let text = e.to_string();
            if !out.contains(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            next = e.source();
        }
        out
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<crate::config::ConfigErrors> for Error {
    fn from(e: crate::config::ConfigErrors) -> Self {
        Error::new(ErrorKind::Config, e.render())
    }
}
