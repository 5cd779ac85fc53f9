//! The crate's one error type, and the one place a driver error or server
//! error code becomes an engine [`ErrorKind`].

use syncline_engine::{Error, ErrorKind};

/// What went wrong reading MySQL or MariaDB.
#[derive(Debug, thiserror::Error)]
pub enum MyError {
    /// Connecting failed.
    #[error("cannot connect to {target}")]
    Connect {
        /// `mysql://user@host:port/database`.
        target: String,
        /// Cause.
        #[source]
        source: mysql_async::Error,
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
        source: mysql_async::Error,
    },
    /// The server is not set up for what the pipeline asks.
    #[error("{0}")]
    Precondition(String),
    /// A table cannot be read as configured, or changed in a way the source
    /// cannot follow.
    #[error("table {table}: {detail}")]
    Table {
        /// Table.
        table: String,
        /// What is wrong.
        detail: String,
    },
    /// The binary log cannot be read as expected.
    #[error("binary log: {0}")]
    Binlog(String),
    /// The source's stored position does not fit this source.
    #[error("{0}")]
    State(String),
}

impl MyError {
    /// Wraps a failed query: `what` was being done.
    pub(crate) fn query(what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> MyError {
        let what = what.into();
        move |source| MyError::Query { what, source }
    }

    /// The engine's classification.
    pub fn kind(&self) -> ErrorKind {
        match self {
            MyError::Connect { source, .. } => match driver_kind(source) {
                ErrorKind::Connection => ErrorKind::Connection,
                // Access denied, unknown database: fix the settings.
                _ => ErrorKind::Precondition,
            },
            MyError::Query { source, .. } => driver_kind(source),
            MyError::Secret(_) | MyError::Precondition(_) => ErrorKind::Precondition,
            MyError::Table { .. } => ErrorKind::Schema,
            MyError::Binlog(_) | MyError::State(_) => ErrorKind::State,
        }
    }
}

/// Classifies a driver error by its cause and the server's error code.
fn driver_kind(e: &mysql_async::Error) -> ErrorKind {
    match e {
        // Bytes the driver cannot parse (a bad checksum, an event it does
        // not know) fail the same way on every try.
        mysql_async::Error::Io(mysql_async::IoError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            ErrorKind::State
        }
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => ErrorKind::Connection,
        mysql_async::Error::Server(s) => server_kind(s.code),
        _ => ErrorKind::Precondition,
    }
}

/// Classifies a server error code.
fn server_kind(code: u16) -> ErrorKind {
    match code {
        // Server shutdown, lost connection, too many connections, lock wait
        // timeout, deadlock, read-only while failing over: worth another try.
        1040 | 1053 | 1152 | 1153 | 1158..=1161 | 1205 | 1213 | 1290 | 2006 | 2013 => {
            ErrorKind::Connection
        }
        // Unknown table or column, data too long, out of range.
        1054 | 1146 | 1264 | 1406 => ErrorKind::Schema,
        // The binary log position or file is gone (purged), or reading it
        // failed: a position that cannot be followed.
        1236 => ErrorKind::State,
        _ => ErrorKind::Precondition,
    }
}

impl From<MyError> for Error {
    fn from(e: MyError) -> Self {
        let kind = e.kind();
        let message = e.to_string();
        Error::new(kind, message).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_codes_are_classified_once() {
        for (code, kind) in [
            (1053, ErrorKind::Connection),
            (1213, ErrorKind::Connection),
            (2013, ErrorKind::Connection),
            (1146, ErrorKind::Schema),
            (1236, ErrorKind::State),
            (1045, ErrorKind::Precondition),
            (1227, ErrorKind::Precondition),
        ] {
            assert_eq!(server_kind(code), kind, "{code}");
        }
    }
}
