//! Errors of the Postgres source.

use syncline_engine::{Error, ErrorKind};

/// What went wrong talking to Postgres.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A query failed.
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
    /// A table's shape cannot be synced as configured.
    #[error("table {table}: {detail}")]
    Table {
        /// Table.
        table: String,
        /// What is wrong.
        detail: String,
    },
    /// A value could not be decoded.
    #[error("column {column}: {detail}")]
    Decode {
        /// Column.
        column: String,
        /// What is wrong.
        detail: String,
    },
    /// The stored position does not fit this source.
    #[error("{0}")]
    State(String),
}

impl PgError {
    pub(crate) fn query(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> PgError {
        let what = what.into();
        move |source| PgError::Query { what, source }
    }

    pub(crate) fn replication(
        what: impl Into<String>,
    ) -> impl FnOnce(pg_walstream::ReplicationError) -> PgError {
        let what = what.into();
        move |source| PgError::Replication { what, source }
    }
}

impl From<PgError> for Error {
    fn from(e: PgError) -> Self {
        let kind = match &e {
            PgError::Query { source, .. } => match source {
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => {
                    ErrorKind::Connection
                }
                sqlx::Error::Database(db)
                    if db
                        .code()
                        .is_some_and(|c| c.starts_with("08") || c == "57P01") =>
                {
                    ErrorKind::Connection
                }
                _ => ErrorKind::Precondition,
            },
            PgError::Replication { .. } => ErrorKind::Connection,
            PgError::Precondition(_) => ErrorKind::Precondition,
            PgError::Table { .. } => ErrorKind::Schema,
            PgError::Decode { .. } => ErrorKind::Schema,
            PgError::State(_) => ErrorKind::State,
        };
        let message = e.to_string();
        Error::new(kind, message).with_source(e)
    }
}
