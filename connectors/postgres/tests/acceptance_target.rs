//! The Postgres target against the shared acceptance kit, on the local
//! server (127.0.0.1:5432, user postgres): one database per scenario,
//! dropped when it ends.

#![allow(clippy::unwrap_used)]

mod support;

use async_trait::async_trait;
use syncline_acceptance::{Harness, Target, TextRow, sink_acceptance};
use syncline_engine::config::WriteMode;
use syncline_engine::connector::Sink;
use syncline_engine::model::{DataType, Value};
use syncline_postgres::introspect::quote;
use syncline_postgres::{PostgresSink, PostgresTargetConfig, SslMode};

struct Postgres;

/// A database of its own, dropped at the end.
struct Database {
    db: support::TestDatabase,
}

fn config(database: &str, port: u16, mode: WriteMode) -> PostgresTargetConfig {
    PostgresTargetConfig {
        host: "127.0.0.1".into(),
        port,
        database: database.into(),
        user: "postgres".into(),
        password: None,
        sslmode: SslMode::Disable,
        schema: "kit".into(),
        inputs: vec!["src".into()],
        mode,
    }
}

#[async_trait]
impl Target for Database {
    fn sink(&self, pipeline: &str, mode: WriteMode) -> Box<dyn Sink> {
        Box::new(PostgresSink::new(
            config(&self.db.name, 5432, mode),
            pipeline,
        ))
    }

    async fn rows(&self, table: &str, columns: &[&str]) -> Vec<TextRow> {
        let select: Vec<String> = columns
            .iter()
            .map(|c| format!("{}::text", quote(c)))
            .collect();
        let sql = format!("SELECT {} FROM kit.{}", select.join(", "), quote(table));
        self.db.rows(&sql).await
    }
}

#[async_trait]
impl Harness for Postgres {
    async fn target(&self, scenario: &str) -> Box<dyn Target> {
        let db = support::TestDatabase::create(&format!("kit_{scenario}")).await;
        Box::new(Database { db })
    }

    fn broken_sink(&self) -> Box<dyn Sink> {
        // Port 1 on loopback: nothing listens there.
        Box::new(PostgresSink::new(
            config("postgres", 1, WriteMode::Upsert),
            "kit",
        ))
    }

    fn unstorable(&self) -> (DataType, Value, &'static str, Value) {
        // Postgres text cannot hold NUL.
        (
            DataType::Text,
            Value::Text("plain".into()),
            "plain",
            Value::Text("nul \0 inside".into()),
        )
    }
}

sink_acceptance!(Postgres);
