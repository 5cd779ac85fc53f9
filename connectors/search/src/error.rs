//! The one error type of the search index connector.

use syncline_engine::{Error, ErrorKind};

/// What went wrong with a search index.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A table's or column's settings cannot work.
    #[error("search index target, table `{table}`: {detail}")]
    Config {
        /// The table.
        table: String,
        /// What is wrong and how to fix it.
        detail: String,
    },
    /// The index folder cannot be used as it is.
    #[error("search index `{path}`: {detail}")]
    Refused {
        /// The index folder.
        path: String,
        /// What stands in the way and how to clear it.
        detail: String,
    },
    /// A value the target must cast (text in a UUID or JSON column) is
    /// not of the column's type: the batch is refused as a whole.
    #[error("search index target: {0}")]
    Cast(String),
    /// Reading or writing the index failed.
    #[error("search index `{path}`: {what} failed")]
    Index {
        /// The index folder.
        path: String,
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: tantivy::TantivyError,
    },
    /// A file of the index folder could not be read or written.
    #[error("search index `{path}`: {what} failed")]
    Io {
        /// The index folder.
        path: String,
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A query does not parse.
    #[error("search query: {0}")]
    Query(String),
    /// Bookkeeping read back from the index does not parse.
    #[error("search index: {0}")]
    State(String),
}

impl From<SearchError> for Error {
    fn from(e: SearchError) -> Self {
        let kind = match &e {
            SearchError::Config { .. } | SearchError::Query(_) => ErrorKind::Config,
            SearchError::Refused { .. } | SearchError::Cast(_) => ErrorKind::Precondition,
            SearchError::Index { .. } | SearchError::Io { .. } => ErrorKind::Io,
            SearchError::State(_) => ErrorKind::State,
        };
        let message = e.to_string();
        match e {
            SearchError::Index { source, .. } => Error::new(kind, message).with_source(source),
            SearchError::Io { source, .. } => Error::new(kind, message).with_source(source),
            _ => Error::new(kind, message),
        }
    }
}
