//! The DuckDB dialect Syncline speaks wherever it runs DuckDB: the DuckDB
//! target (`connectors/duckdb`) and the transforms (`transform`) share it,
//! so neither depends on the other.
//!
//! * Engine types to DuckDB types, and values to Arrow columns: [`types`].
//! * Whether SQL text is exactly one query, by DuckDB's parser: [`query`].
//! * Identifiers: [`quote`].

pub mod query;
pub mod read;
pub mod types;

/// A value that does not fit its column.
#[derive(Debug, thiserror::Error)]
pub enum DuckError {
    /// A value does not fit its column.
    #[error("column {column}: {detail}")]
    Value {
        /// Column name.
        column: String,
        /// What does not fit.
        detail: String,
    },
}

/// Quotes an identifier for DuckDB.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}
