//! DuckDB's part of the shared SQL-target core
//! ([`syncline_engine::apply::sql`]).

use syncline_engine::apply::sql::SqlDialect;
use syncline_engine::model::DataType;

use crate::types::cast_from_stage;
use syncline_duck::quote;

/// DuckDB SQL. Text compares byte by byte already, so keys need no
/// collation; staged lists, JSON, UUIDs and intervals are cast back from
/// their staged form.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DuckDb;

impl SqlDialect for DuckDb {
    fn quote(&self, ident: &str) -> String {
        quote(ident)
    }

    fn cast_staged(&self, expr: &str, t: &DataType) -> String {
        cast_from_stage(expr, t)
    }

    fn last_per_key(&self, stage: &str, keys: &str) -> String {
        format!(
            "(SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY \"_syncline_seq\" DESC) AS _syncline_rn FROM {stage}) WHERE _syncline_rn = 1)"
        )
    }

    fn latest_in_history(&self, table: &str, keys: &str) -> String {
        format!(
            "(SELECT * FROM (
                 SELECT {keys}, \"_op\", row_number() OVER (PARTITION BY {keys} ORDER BY \"_seq\" DESC, rowid DESC) AS _syncline_rn
                 FROM {table}
                 WHERE rowid > (SELECT coalesce(max(rowid), -1) FROM {table} WHERE \"_op\" = 't')
             ) WHERE _syncline_rn = 1) h"
        )
    }

    fn delete_all(&self, table: &str) -> String {
        format!("DELETE FROM {table}")
    }

    fn timestamp(&self, micros: Option<i64>) -> String {
        micros.map_or_else(|| "NULL".to_owned(), |m| format!("make_timestamptz({m})"))
    }
}
