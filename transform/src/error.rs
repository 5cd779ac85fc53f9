//! The transform crate's one error type.

use serde::Serialize;
use syncline_engine::{Error, ErrorKind};

/// Why a transform could not be checked or run.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// The SQL is wrong (syntax, unknown column, a cast that fails on a row).
    #[error("{}", SqlError::from_duckdb(.0).message)]
    Sql(#[source] duckdb::Error),
    /// The SQL runs, but its output cannot be used as it is.
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: String,
    },
    /// The SQL is not one query; `offset` (bytes into the SQL without its
    /// leading blanks) is where the parser or the offending statement is.
    #[error("{message}")]
    Statement {
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: String,
        /// Byte offset in the trimmed SQL.
        offset: usize,
    },
    /// Rows could not be loaded as the relation `source`.
    #[error("loading rows into `source`: {0}")]
    Load(String),
    /// A result value could not be read back.
    #[error("reading output column `{column}`: {detail}")]
    Read {
        /// The column.
        column: String,
        /// What went wrong.
        detail: String,
    },
    /// The embedded DuckDB failed at something other than the user's SQL.
    #[error("{what}: {source}")]
    Engine {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: duckdb::Error,
    },
}

impl TransformError {
    pub(crate) fn engine(what: &'static str, source: duckdb::Error) -> Self {
        TransformError::Engine { what, source }
    }

    /// How the engine classifies it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TransformError::Sql(_)
            | TransformError::Invalid { .. }
            | TransformError::Statement { .. } => ErrorKind::Config,
            TransformError::Load(_) | TransformError::Read { .. } => ErrorKind::Schema,
            TransformError::Engine { .. } => ErrorKind::Internal,
        }
    }

    /// The SQL error with its position, when the SQL is at fault.
    pub fn sql_error(&self) -> Option<SqlError> {
        match self {
            TransformError::Sql(e) => Some(SqlError::from_duckdb(e)),
            _ => None,
        }
    }
}

impl From<TransformError> for Error {
    fn from(e: TransformError) -> Self {
        Error::new(e.kind(), e.to_string())
    }
}

/// An error in SQL text, with where DuckDB found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SqlError {
    /// DuckDB's message without the quoted SQL line and caret.
    pub message: String,
    /// 1-based line in the SQL text, where DuckDB says.
    pub line: Option<usize>,
    /// 1-based column (in characters) on that line.
    pub column: Option<usize>,
    /// 0-based byte offset in the SQL text.
    pub offset: Option<usize>,
}

impl SqlError {
    /// Takes DuckDB's error apart: `...\n\nLINE 3: <text>\n        ^`.
    pub fn from_duckdb(e: &duckdb::Error) -> Self {
        let full = match e {
            duckdb::Error::DuckDBFailure(_, Some(m)) => m.clone(),
            other => other.to_string(),
        };
        let mut message_lines = Vec::new();
        let mut line = None;
        let mut column = None;
        let mut lines = full.lines().peekable();
        while let Some(l) = lines.next() {
            if let Some(rest) = l.strip_prefix("LINE ")
                && let Some((n, text)) = rest.split_once(':')
                && let Ok(n) = n.trim().parse::<usize>()
            {
                line = Some(n);
                let prefix = l.len() - text.len() + 1; // "LINE n: "
                if let Some(caret) = lines.peek().and_then(|c| c.find('^')) {
                    column = Some(caret.saturating_sub(prefix) + 1);
                    lines.next();
                }
                continue;
            }
            message_lines.push(l);
        }
        let message = message_lines
            .join("\n")
            .trim()
            .trim_end_matches('\n')
            .to_owned();
        SqlError {
            message,
            line,
            column,
            offset: None,
        }
    }

    /// Sets the byte offset from `line`/`column` in `sql`, after moving the
    /// position back by `shift` bytes on its first line (text the engine put
    /// in front of the user's SQL).
    pub(crate) fn locate(mut self, sql: &str, shift: usize) -> Self {
        let (Some(line), Some(column)) = (self.line, self.column) else {
            return self;
        };
        let column = if line == 1 {
            column.saturating_sub(shift).max(1)
        } else {
            column
        };
        let start: usize = sql
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum();
        let text = sql.get(start..).unwrap_or("");
        let within: usize = text
            .chars()
            .take(column.saturating_sub(1))
            .map(char::len_utf8)
            .sum();
        self.column = Some(column);
        self.offset = Some((start + within).min(sql.len()));
        self
    }
}
