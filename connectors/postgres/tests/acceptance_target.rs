//! The Postgres target against the shared acceptance kit, on the local
//! server (127.0.0.1:5432, user postgres): one database per scenario,
//! dropped when it ends.

#![allow(clippy::unwrap_used)]

mod support;

use async_trait::async_trait;
use syncline_acceptance::{Harness, Target, TextRow, TypeCase, sink_acceptance, types};
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

    async fn obstruct(&self, table: &str) {
        // A constraint no new row meets (rows already there are not checked).
        self.db
            .exec(&format!(
                "ALTER TABLE kit.{} ADD CONSTRAINT kit_obstruct CHECK (false) NOT VALID",
                quote(table)
            ))
            .await;
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

    fn unstorable(&self) -> Option<(DataType, Value, &'static str, Value)> {
        // Postgres text cannot hold NUL.
        Some((
            DataType::Text,
            Value::Text("plain".into()),
            "plain",
            Value::Text("nul \0 inside".into()),
        ))
    }

    fn types(&self) -> Vec<TypeCase> {
        // As `::text` shows them (sqlx sessions are in UTC), in
        // `edge_values` order.
        types::cases(&[
            "true",
            "false",
            "-2147483648",
            "2147483647",
            "-9223372036854775808",
            "9223372036854775807",
            "-1.2345678",
            "1e+300",
            "NaN",
            "-Infinity",
            "1234567890123456789012345678.0123456789",
            "-9876543210987654321.0000000001",
            "1.50",
            "-999.99",
            types::TEXT,
            "",
            "line\nbreak\ttab",
            r"\x00ff41105c27",
            r"\x",
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
            r#"{"a": "ü \"q\"", "b": [1, 2.50, null, true], "n": {}}"#,
            "1 year 2 mons 3 days 01:00:00.000001",
            "-1 mons -2 days -00:00:00.000003",
            "{1,NULL,3}",
            r#"{a,"b c","q\"",""}"#,
        ])
    }
}

sink_acceptance!(Postgres);
