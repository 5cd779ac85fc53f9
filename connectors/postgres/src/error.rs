//! The crate's one error type, and the one place a driver error or SQLSTATE
//! becomes an engine [`ErrorKind`].

use std::fmt::Write as _;

use syncline_engine::{Error, ErrorKind};

/// What went wrong talking to Postgres, as the source or the target.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// Connecting failed.
    #[error("cannot connect to {target}")]
    Connect {
        /// `postgres://user@host:port/database`.
        target: String,
        /// Cause.
        #[source]
        source: sqlx::Error,
    },
    /// The password reference cannot be resolved.
    #[error("password: {0}")]
    Secret(String),
    /// A query or statement failed.
    #[error("{what}")]
    Query {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: sqlx::Error,
    },
    /// The replication stream failed.
    #[error("replication: {what}")]
    Replication {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: pg_walstream::ReplicationError,
    },
    /// The database is not set up for what the pipeline asks.
    #[error("{0}")]
    Precondition(String),
    /// A table cannot be read or written as configured.
    #[error("table {table}: {detail}")]
    Table {
        /// Table.
        table: String,
        /// What is wrong.
        detail: String,
    },
    /// A value could not be decoded, or does not fit its column.
    #[error("column {column}: {detail}")]
    Value {
        /// Column.
        column: String,
        /// What is wrong.
        detail: String,
    },
    /// The source's stored position does not fit this source.
    #[error("{0}")]
    State(String),
    /// The target's stored checkpoint cannot be read or written.
    #[error("checkpoint of source {source_name}: {detail}")]
    Checkpoint {
        /// Source name.
        source_name: String,
        /// Why.
        detail: String,
    },
    /// The target was written to before it was opened.
    #[error("the Postgres target was used before it was opened")]
    NotOpen,
}

impl PgError {
    /// Wraps a failed query: `what` was being done.
    pub(crate) fn query(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> PgError {
        let what = what.into();
        move |source| PgError::Query { what, source }
    }

    /// Wraps a failure of the replication stream.
    pub(crate) fn replication(
        what: impl Into<String>,
    ) -> impl FnOnce(pg_walstream::ReplicationError) -> PgError {
        let what = what.into();
        move |source| PgError::Replication { what, source }
    }

    /// The engine's classification.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PgError::Connect { source, .. } => match sql_kind(source) {
                // Wrong password, unknown database: fix the settings.
                ErrorKind::Precondition | ErrorKind::Schema => ErrorKind::Precondition,
                other => other,
            },
            PgError::Query { source, .. } => sql_kind(source),
            PgError::Replication { .. } => ErrorKind::Connection,
            PgError::Secret(_) | PgError::Precondition(_) => ErrorKind::Precondition,
            PgError::Table { .. } | PgError::Value { .. } => ErrorKind::Schema,
            PgError::State(_) | PgError::Checkpoint { .. } => ErrorKind::State,
            PgError::NotOpen => ErrorKind::Internal,
        }
    }

    /// Whether the connection is gone (reconnect before retrying).
    pub(crate) fn connection_lost(&self) -> bool {
        match self {
            PgError::Connect { .. } => self.kind() == ErrorKind::Connection,
            PgError::Query { source, .. } => match source {
                sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                    c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")
                }),
                other => sql_kind(other) == ErrorKind::Connection,
            },
            _ => false,
        }
    }

    /// The error with its causes, for logs.
    pub(crate) fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                let _ = write!(text, ": {cause_text}");
            }
            next = cause.source();
        }
        text
    }
}

/// Classifies a driver error by its cause and SQLSTATE.
fn sql_kind(e: &sqlx::Error) -> ErrorKind {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => ErrorKind::Connection,
        sqlx::Error::Database(db) => sqlstate_kind(db.code().as_deref().unwrap_or_default()),
        _ => ErrorKind::Precondition,
    }
}

/// Classifies a SQLSTATE.
fn sqlstate_kind(code: &str) -> ErrorKind {
    match code {
        c if c.starts_with("08") => ErrorKind::Connection,
        // Shutdown, crash recovery, serialization failure, deadlock,
        // out of resources: worth another try.
        "57P01" | "57P02" | "57P03" | "40001" | "40P01" => ErrorKind::Connection,
        c if c.starts_with("53") => ErrorKind::Connection,
        // Data exceptions and integrity violations: the data does not
        // fit the table.
        c if c.starts_with("22") || c.starts_with("23") => ErrorKind::Schema,
        "42804" | "42703" | "42P01" => ErrorKind::Schema,
        _ => ErrorKind::Precondition,
    }
}

impl From<PgError> for Error {
    fn from(e: PgError) -> Self {
        let kind = e.kind();
        let message = e.to_string();
        Error::new(kind, message).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified_once() {
        for (code, kind) in [
            ("08006", ErrorKind::Connection),
            ("57P01", ErrorKind::Connection),
            ("57P03", ErrorKind::Connection),
            ("40001", ErrorKind::Connection),
            ("40P01", ErrorKind::Connection),
            ("53300", ErrorKind::Connection),
            ("22003", ErrorKind::Schema),
            ("23505", ErrorKind::Schema),
            ("42P01", ErrorKind::Schema),
            ("42501", ErrorKind::Precondition),
            ("55000", ErrorKind::Precondition),
            ("", ErrorKind::Precondition),
        ] {
            assert_eq!(sqlstate_kind(code), kind, "{code}");
        }
    }

    #[test]
    fn connect_failures_are_retried_only_when_the_server_is_unreachable() {
        let unreachable = PgError::Connect {
            target: "postgres://u@h:1/d".into(),
            source: sqlx::Error::PoolTimedOut,
        };
        assert_eq!(unreachable.kind(), ErrorKind::Connection);
        assert!(unreachable.connection_lost());
        let refused = PgError::Connect {
            target: "postgres://u@h:1/d".into(),
            source: sqlx::Error::Configuration("bad".into()),
        };
        assert_eq!(refused.kind(), ErrorKind::Precondition);
        assert!(!refused.connection_lost());
    }

    #[test]
    fn the_chain_names_every_cause_once() {
        let e = PgError::query("reading the slot")(sqlx::Error::PoolTimedOut);
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert_eq!(
            e.chain(),
            format!("reading the slot: {}", sqlx::Error::PoolTimedOut)
        );
        let engine = Error::from(e);
        assert_eq!(engine.kind(), ErrorKind::Connection);
        assert_eq!(engine.message(), "reading the slot");
    }
}
