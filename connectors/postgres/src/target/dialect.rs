//! Postgres's part of the shared SQL-target core
//! ([`syncline_engine::apply::sql`]).

use syncline_engine::apply::sql::SqlDialect;
use syncline_engine::model::DataType;

use crate::introspect::quote;

/// Postgres SQL. The staging table has the target's column types, so
/// staged values need no cast; text keys compare under `COLLATE "C"`
/// (byte order, as the source ordered them) whatever the column's
/// collation; the last row per key is a `DISTINCT ON`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Postgres;

impl SqlDialect for Postgres {
    fn quote(&self, ident: &str) -> String {
        quote(ident)
    }

    fn in_key_order(&self, expr: &str, t: &DataType) -> String {
        if *t == DataType::Text {
            format!("({expr} COLLATE \"C\")")
        } else {
            expr.to_owned()
        }
    }

    fn last_per_key(&self, stage: &str, keys: &str) -> String {
        format!(
            "(SELECT DISTINCT ON ({keys}) * FROM {stage} ORDER BY {keys}, \"_syncline_seq\" DESC)"
        )
    }

    fn latest_in_history(&self, table: &str, keys: &str) -> String {
        // Rows since the last truncate: a truncate row's position is that of
        // its batch, and nothing of an earlier batch follows it.
        format!(
            "(SELECT DISTINCT ON ({keys}) {keys}, \"_op\" FROM {table}
              WHERE \"_seq\" >= coalesce((SELECT max(\"_seq\") FROM {table} WHERE \"_op\" = 't'), 0)
                AND \"_op\" <> 't'
              ORDER BY {keys}, \"_seq\" DESC, ctid DESC) h"
        )
    }

    fn delete_all(&self, table: &str) -> String {
        format!("TRUNCATE {table}")
    }

    fn timestamp(&self, micros: Option<i64>) -> String {
        micros.map_or_else(
            || "NULL".to_owned(),
            |m| format!("('epoch'::timestamptz + {m} * interval '1 microsecond')"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_engine::apply::sql::{self, Recorded, Tables};
    use syncline_engine::config::WriteMode;
    use syncline_engine::model::{Column, TableId, TableSchema};

    fn schema() -> TableSchema {
        let column = |name: &str, data_type| Column {
            name: name.into(),
            data_type,
            nullable: true,
        };
        TableSchema {
            id: TableId {
                origin: "src".into(),
                name: "t".into(),
            },
            columns: vec![column("id", DataType::Text), column("v", DataType::Int64)],
            key: vec![0],
            version: 1,
        }
    }

    #[test]
    fn upsert_keeps_the_last_change_of_each_key() {
        let schema = schema();
        let t = Tables {
            table: "\"public\".\"t\"",
            stage: "pg_temp.s",
            schema: &schema,
        };
        let sql = sql::merge(
            &Postgres,
            WriteMode::Upsert,
            t,
            Recorded::Batch {
                seq: 7,
                commit_micros: None,
            },
        )
        .expect("a keyed table merges");
        assert!(sql.contains("DISTINCT ON (\"id\")"), "{sql}");
        assert!(sql.contains("\"_syncline_seq\" DESC"), "{sql}");
    }

    #[test]
    fn text_keys_compare_bytewise_and_times_are_exact() {
        assert_eq!(
            Postgres.in_key_order("h.\"id\"", &DataType::Text),
            "(h.\"id\" COLLATE \"C\")"
        );
        assert_eq!(
            Postgres.in_key_order("h.\"n\"", &DataType::Int64),
            "h.\"n\""
        );
        assert_eq!(Postgres.timestamp(None), "NULL");
        assert!(Postgres.timestamp(Some(1)).contains("1 * interval"));
    }
}
