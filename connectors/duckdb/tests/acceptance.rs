//! The DuckDB target against the shared acceptance kit: one database file
//! per scenario, in its own temp folder.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use async_trait::async_trait;
use syncline_acceptance::{Harness, Target, TextRow, TypeCase, sink_acceptance, types};
use syncline_duckdb::{DuckDbSink, DuckDbTargetConfig, quote, shared};
use syncline_engine::config::WriteMode;
use syncline_engine::connector::Sink;
use syncline_engine::model::{DataType, Value};

struct DuckDb;

struct File {
    dir: tempfile::TempDir,
}

impl File {
    fn path(&self) -> PathBuf {
        self.dir.path().join("target.duckdb")
    }
}

fn config(path: &str, mode: WriteMode) -> DuckDbTargetConfig {
    DuckDbTargetConfig {
        path: path.into(),
        schema: "main".into(),
        inputs: vec!["src".into()],
        mode,
    }
}

#[async_trait]
impl Target for File {
    fn sink(&self, pipeline: &str, mode: WriteMode) -> Box<dyn Sink> {
        Box::new(DuckDbSink::new(
            config("target.duckdb", mode),
            self.dir.path(),
            pipeline,
        ))
    }

    async fn rows(&self, table: &str, columns: &[&str]) -> Vec<TextRow> {
        let select: Vec<String> = columns
            .iter()
            .map(|c| format!("CAST({} AS VARCHAR)", quote(c)))
            .collect();
        let sql = format!("SELECT {} FROM {}", select.join(", "), quote(table));
        let conn = shared::connect(&self.path()).unwrap();
        let mut stmt = conn.prepare(&sql).unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut out = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            out.push(
                (0..columns.len())
                    .map(|i| row.get::<_, Option<String>>(i).unwrap())
                    .collect(),
            );
        }
        out
    }

    async fn obstruct(&self, table: &str) {
        // Another program's row holding the UUID the kit writes, under a
        // unique index of its own (DuckDB adds no constraint to a table
        // that has rows but takes a unique index).
        let conn = shared::connect(&self.path()).unwrap();
        let table = quote(table);
        let uuid = syncline_engine::columnar::format_uuid(&types::UUID);
        conn.execute_batch(&format!(
            "INSERT INTO {table} (id, u) VALUES (-1, '{uuid}');
             CREATE UNIQUE INDEX kit_obstruct ON {table} (u);"
        ))
        .unwrap();
    }
}

#[async_trait]
impl Harness for DuckDb {
    async fn target(&self, _scenario: &str) -> Box<dyn Target> {
        Box::new(File {
            dir: tempfile::tempdir().unwrap(),
        })
    }

    fn broken_sink(&self) -> Box<dyn Sink> {
        // The "database file" is a folder.
        Box::new(DuckDbSink::new(
            config(".", WriteMode::Upsert),
            &std::env::temp_dir(),
            "kit",
        ))
    }

    fn unstorable(&self) -> Option<(DataType, Value, &'static str, Value)> {
        // DuckDB's DECIMAL has no NaN.
        Some((
            DataType::Decimal {
                precision: 10,
                scale: 2,
            },
            Value::Decimal("1.50".into()),
            "1.50",
            Value::Decimal("NaN".into()),
        ))
    }

    fn types(&self) -> Vec<TypeCase> {
        // As `CAST(... AS VARCHAR)` shows them, in `edge_values` order.
        types::cases(&[
            "true",
            "false",
            "-2147483648",
            "2147483647",
            "-9223372036854775808",
            "9223372036854775807",
            "-1.2345678",
            "1e+300",
            "nan",
            "-inf",
            "1234567890123456789012345678.0123456789",
            "-9876543210987654321.0000000001",
            "1.50",
            "-999.99",
            types::TEXT,
            "",
            "line\nbreak\ttab",
            // DuckDB shows a backslash and a quote in bytes as hex too.
            r"\x00\xFFA\x10\x5C\x27",
            "",
            "2024-02-29",
            "0001-01-01",
            "9999-12-31",
            "infinity",
            "-infinity",
            "00:00:00",
            "23:59:59.999999",
            "2024-02-29 13:14:15.123456",
            "1969-12-31 23:59:59.999999",
            "infinity",
            "-infinity",
            "2024-02-29 13:14:15.123456+00",
            "infinity",
            "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
            types::JSON_DOC,
            "1 year 2 months 3 days 01:00:00.000001",
            "-1 month -2 days -00:00:00.000003",
            "[1, NULL, 3]",
            // Quoted where the text needs it.
            r#"[a, b c, 'q"', '']"#,
        ])
    }
}

sink_acceptance!(DuckDb);
