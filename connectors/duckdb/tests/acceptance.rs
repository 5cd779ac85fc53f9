//! The DuckDB target against the shared acceptance kit: one database file
//! per scenario, in its own temp folder.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use async_trait::async_trait;
use syncline_acceptance::{Harness, Target, TextRow, sink_acceptance};
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

    fn unstorable(&self) -> (DataType, Value, &'static str, Value) {
        // DuckDB's DECIMAL has no NaN.
        (
            DataType::Decimal {
                precision: 10,
                scale: 2,
            },
            Value::Decimal("1.50".into()),
            "1.50",
            Value::Decimal("NaN".into()),
        )
    }
}

sink_acceptance!(DuckDb);
