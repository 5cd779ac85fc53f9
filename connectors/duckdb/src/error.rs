//! The one error type of the DuckDB connector: the target and browsing.

use syncline_engine::{Error, ErrorKind};

/// What went wrong writing to or reading from DuckDB.
#[derive(Debug, thiserror::Error)]
pub enum DuckDbError {
    /// There is no database file there (browsing never creates one).
    #[error("no DuckDB database at {path}")]
    NotFound {
        /// The file.
        path: String,
    },
    /// SQL a person wrote failed (DuckDB's message says why).
    #[error("{0}")]
    Query(#[source] duckdb::Error),
    /// SQL a person wrote is not one query, where only a query may run.
    #[error("{message}")]
    Refused {
        /// Why, in words.
        message: String,
        /// Byte offset in the (trimmed) SQL it concerns.
        offset: usize,
    },
    /// Opening the database file failed.
    #[error("cannot open DuckDB database {path}")]
    Open {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: duckdb::Error,
    },
    /// A statement failed.
    #[error("DuckDB {what} failed")]
    Sql {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: duckdb::Error,
    },
    /// A value does not fit its column.
    #[error("column {column}: {detail}")]
    Value {
        /// Column name.
        column: String,
        /// What does not fit.
        detail: String,
    },
    /// The target table exists with a shape that cannot receive the source's.
    #[error("table {table}: {detail}")]
    Schema {
        /// Table.
        table: String,
        /// What differs.
        detail: String,
    },
    /// The stored checkpoint cannot be read.
    #[error("checkpoint of source {source_name} is unreadable: {detail}")]
    Checkpoint {
        /// Source name.
        source_name: String,
        /// Why.
        detail: String,
    },
    /// The blocking worker stopped.
    #[error("the DuckDB worker stopped unexpectedly")]
    Worker,
}

impl DuckDbError {
    pub(crate) fn sql(what: impl Into<String>) -> impl FnOnce(duckdb::Error) -> DuckDbError {
        let what = what.into();
        move |source| DuckDbError::Sql { what, source }
    }
}

impl From<syncline_duck::DuckError> for DuckDbError {
    fn from(e: syncline_duck::DuckError) -> Self {
        match e {
            syncline_duck::DuckError::Value { column, detail } => {
                DuckDbError::Value { column, detail }
            }
        }
    }
}

impl From<DuckDbError> for Error {
    fn from(e: DuckDbError) -> Self {
        let kind = match &e {
            DuckDbError::NotFound { .. } | DuckDbError::Open { .. } => ErrorKind::Io,
            DuckDbError::Query(_) | DuckDbError::Refused { .. } => ErrorKind::Config,
            DuckDbError::Sql { .. } => ErrorKind::Io,
            DuckDbError::Value { .. } | DuckDbError::Schema { .. } => ErrorKind::Schema,
            DuckDbError::Checkpoint { .. } => ErrorKind::State,
            DuckDbError::Worker => ErrorKind::Internal,
        };
        let message = e.to_string();
        Error::new(kind, message).with_source(e)
    }
}
