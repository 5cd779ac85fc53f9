//! The one error type of the Redis connector.

use syncline_engine::{Error, ErrorKind};

/// What went wrong writing to Redis.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// A table's settings cannot work.
    #[error("Redis target, table `{table}`: {detail}")]
    Config {
        /// The table.
        table: String,
        /// What is wrong and how to fix it.
        detail: String,
    },
    /// The URL or password cannot be used.
    #[error("Redis target: {0}")]
    Settings(String),
    /// Redis could not be reached, or dropped the connection.
    #[error("Redis target: {what} failed: Redis cannot be reached")]
    Connection {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: redis::RedisError,
    },
    /// Redis answered with an error.
    #[error("Redis target: {what} failed")]
    Command {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: redis::RedisError,
    },
    /// Redis refuses what the target needs (cluster mode, an old version,
    /// a key of another type, another pipeline's keys).
    #[error("Redis target: {0}")]
    Refused(String),
    /// Redis no longer holds what it acknowledged: its data (and the
    /// checkpoint with it) was lost.
    #[error("Redis target: {0}")]
    Lost(String),
    /// Bookkeeping read back from Redis does not parse.
    #[error("Redis target: {0}")]
    State(String),
}

impl RedisError {
    /// Classifies a failed command: connection trouble is retryable.
    pub fn command(what: impl Into<String>) -> impl FnOnce(redis::RedisError) -> RedisError {
        let what = what.into();
        move |source| {
            if source.is_io_error()
                || source.is_connection_dropped()
                || source.is_connection_refusal()
                || source.is_timeout()
            {
                RedisError::Connection { what, source }
            } else {
                RedisError::Command { what, source }
            }
        }
    }
}

impl From<RedisError> for Error {
    fn from(e: RedisError) -> Self {
        let kind = match &e {
            RedisError::Config { .. } | RedisError::Settings(_) => ErrorKind::Config,
            RedisError::Connection { .. } => ErrorKind::Connection,
            RedisError::Command { .. } | RedisError::Refused(_) => ErrorKind::Precondition,
            RedisError::Lost(_) | RedisError::State(_) => ErrorKind::State,
        };
        let message = e.to_string();
        match e {
            RedisError::Connection { source, .. } | RedisError::Command { source, .. } => {
                Error::new(kind, message).with_source(source)
            }
            _ => Error::new(kind, message),
        }
    }
}
